/* herald.mjs - herald.js as an ES module:
 *   import herald, { subscribe, session, publish, unread } from '/herald.mjs';
 * herald.js is a classic script (so that <script src="/herald.js"> works too) that defines
 * globalThis.herald; importing it runs it once, and this module re-exports what it defined. */
import './herald.js';

const herald = globalThis.herald;
export default herald;
export const { subscribe, session, publish, unread, Subscription, Session } = herald;
