// herald.js with access control, in headless Chromium against a real herald started with an
// HMAC token secret (token_leeway 0, so connections end exactly at exp) and an API key for the
// publisher: the `token` option (a function that mints a token in node through `herald token`)
// authorizes user/42 on every transport, sent as ?token= on SSE, iframe and polls and as the first
// /ws op (never in the WebSocket URL); a short-lived token is renewed across its expiry (/ws in
// place, without a new WebSocket; SSE and iframe by reconnecting when the server says "expired";
// polls before the token runs out) and every message published before, across and after the
// expiry arrives exactly once, in order; a forbidden channel ends the subscription with an
// `error` {reason: 'forbidden'} and no retries; a refused token is retried with backoff, not in a
// storm; herald.publish sends its token as Authorization: Bearer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  withHerald, publish, waitFor, sleep, run, HERALD_BIN, launchBrowser, newPage, openPage, screenshot, SCALE,
  SUB_PAGE, startSub as start, viewSub as view, waitView,
} from './lib.mjs';

const T = { timeout: 90000 * SCALE };
const TRANSPORTS = ['websocket', 'sse', 'iframe', 'longpoll', 'poll'];
const SECRET = 'herald-e2e-hmac-secret-0123456789abcdef'; /* at least 32 bytes */
const API_KEY = 'e2e-backend-key-0123456789'; /* at least 16 bytes */
const FLAGS = {
  'token-hmac-secret': SECRET,
  'token-leeway': 0,
  'api-keys': API_KEY,
  'sse-heartbeat': 0.2,
  'iframe-keepalive': 0.2,
};
const FAST = { backoff: { min: 100, max: 400 }, pollInterval: 100, connectTimeout: 3000, idleTimeout: 1500 };
/* how long to keep watching for a duplicate or a retry after what was expected happened */
const SETTLE = 500 * SCALE;

/* Mints a token with the herald binary (o: {sub, ttl, secret}). */
async function mint({ sub = '42', ttl = '1h', secret = SECRET } = {}) {
  const r = await run(HERALD_BIN, ['token', '--token-hmac-secret', secret, '--sub', sub, '--ttl', ttl], { timeout: 10000 * SCALE });
  const tok = r.stdout.toString().trim();
  if (r.code !== 0 || tok.split('.').length !== 3) throw new Error(`herald token failed (${r.code}): ${r.stderr}`);
  return tok;
}

const claimsOf = (tok) => JSON.parse(Buffer.from(tok.split('.')[1], 'base64url').toString());
const pub = (h, ch, data) => publish(h, ch, data, { headers: { Authorization: `Bearer ${API_KEY}` } });



let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

const count = (v, ev) => v.events.filter((e) => e.ev === ev).length;
const errors = (v) => v.events.filter((e) => e.ev === 'error').map((e) => e.info);

const waitOpen = (page, name) => waitView(page, name, (v) => v.state === 'open', 'state open');

/* A page of herald's origin with window.mintToken(spec) (node mints; page.minted counts the
 * calls) and page.sockets / page.requests recording the WebSockets opened and the URLs asked. */
async function withPage(base, name, fn) {
  const page = await newPage(browser);
  page.minted = 0;
  page.sockets = [];
  page.requests = [];
  await page.exposeFunction('mintToken', async (spec) => {
    page.minted++;
    return mint(spec || {});
  });
  page.wsSent = [];
  page.on('websocket', (ws) => {
    page.sockets.push(ws.url());
    ws.on('framesent', (f) => page.wsSent.push(String(f.payload)));
  });
  page.on('request', (r) => page.requests.push(r.url()));
  await openPage(page, base, SUB_PAGE);
  try {
    await fn(page);
  } catch (e) {
    await screenshot(page, name).catch(() => {});
    throw e;
  } finally {
    await page.context().close();
  }
}

function assertNoPageErrors(page) {
  // a refused request (401/403) is logged by Chromium as a failed resource load: expected here
  const network = /^console: (Failed to load resource: |WebSocket connection to .* failed)/;
  assert.deepEqual(page.errors.filter((e) => !network.test(e)), [], 'no page errors');
}

test('a token function authorizes user/42 on every transport: ?token= on HTTP, the first /ws op, never in the WebSocket URL', T, async () => {
  await withHerald(FLAGS, async (h) => {
    const ch = 'user/42';
    await withPage(h.base, 'auth-basic', async (page) => {
      for (const transport of TRANSPORTS) await start(page, transport, ch, { transport, lastId: 0, ...FAST }, { sub: '42', ttl: '1h' });
      for (const transport of TRANSPORTS) await waitOpen(page, transport);
      for (let i = 1; i <= 3; i++) await pub(h, ch, `m${i}`);
      for (const transport of TRANSPORTS) await waitView(page, transport, (v) => v.msgs.length >= 3, '3 messages');
      await sleep(SETTLE);
      for (const transport of TRANSPORTS) {
        const v = await view(page, transport);
        assert.deepEqual(v.msgs.map((m) => [m.id, m.channel, m.data]), [['1', ch, 'm1'], ['2', ch, 'm2'], ['3', ch, 'm3']], transport);
        assert.equal(v.transport, transport);
        assert.equal(count(v, 'open'), 1, `${transport}: opened once`);
        assert.deepEqual(errors(v), [], `${transport}: no errors`);
        assert.equal(v.tokens.length, 1, `${transport}: one token for one connection`);
        if (transport === 'websocket') {
          const auths = v.events.filter((e) => e.ev === 'auth').map((e) => e.info);
          assert.deepEqual(auths, [{ transport, user: '42', expires: claimsOf(v.tokens[0]).exp }], 'the auth event');
        } else {
          assert.equal(count(v, 'auth'), 0, `${transport}: auth events are /ws's`);
        }
      }
      // the token travels in the query of every HTTP subscription, never in the WebSocket URL
      const ws = page.sockets.filter((u) => /\/ws$|\/ws\?/.test(u));
      assert.equal(ws.length, 1, 'one WebSocket');
      assert.doesNotMatch(ws[0], /token/, 'no token in the WebSocket URL');
      // the token is the first op, and the subscribe waits for its reply
      const sent = page.wsSent.map((f) => JSON.parse(f));
      assert.equal(sent[0].op, 'auth', 'auth first');
      assert.equal(sent[0].token, (await view(page, 'websocket')).tokens[0]);
      assert.deepEqual(sent[1], { op: 'subscribe', channel: ch, ref: 1, last_id: '0' }, 'then subscribe');
      for (const mode of ['sse', 'iframe', 'longpoll', 'poll']) {
        const urls = page.requests.filter((u) => u.includes(`mode=${mode}`));
        assert.ok(urls.length >= 1, `${mode} requested`);
        for (const u of urls) assert.match(u, /[?&]token=[\w-]+\.[\w-]+\.[\w-]+(&|$)/, `${mode}: ?token= in ${u}`);
      }
      assertNoPageErrors(page);
    });
  });
});

test('a short-lived token is renewed across its expiry: every message once and in order; /ws refreshes in place', T, async () => {
  await withHerald(FLAGS, async (h) => {
    const ch = 'user/42';
    const ttl = 6; // seconds: /ws refreshes 1 s before exp, the others meet the expiry
    await withPage(h.base, 'auth-refresh', async (page) => {
      const t0 = Date.now();
      for (const transport of TRANSPORTS) await start(page, transport, ch, { transport, lastId: 0, ...FAST }, { sub: '42', ttl: `${ttl}s` });
      for (const transport of TRANSPORTS) await waitOpen(page, transport);

      // publish continuously (every 100 ms) until every subscription has outlived its first
      // token (exp + 1.5 s) and taken a new one, then a few more
      let n = 0;
      const deadline = Date.now() + (ttl + 15) * 1000 * SCALE;
      const firstExp = {};
      for (;;) {
        await pub(h, ch, `m${++n}`);
        let done = true;
        for (const transport of TRANSPORTS) {
          const v = await view(page, transport);
          if (!firstExp[transport] && v.tokens.length) firstExp[transport] = claimsOf(v.tokens[0]).exp * 1000;
          if (!(v.tokens.length >= 2 && Date.now() > firstExp[transport] + 1500)) done = false;
        }
        if (done) break;
        if (Date.now() > deadline) {
          const st = {};
          for (const t of TRANSPORTS) st[t] = (await view(page, t)).tokens.length;
          throw new Error(`not every subscription took a second token within ${ttl + 15} s: ${JSON.stringify(st)}`);
        }
        await sleep(100);
      }
      for (let i = 0; i < 5; i++) await pub(h, ch, `m${++n}`);
      for (const transport of TRANSPORTS) await waitView(page, transport, (v) => v.msgs.length >= n, `${n} messages`);
      await sleep(SETTLE);
      const want = Array.from({ length: n }, (_, i) => [String(i + 1), `m${i + 1}`]);
      for (const transport of TRANSPORTS) {
        const v = await view(page, transport);
        assert.deepEqual(v.msgs.map((m) => [m.id, m.data]), want, `${transport}: every message exactly once, in order`);
        assert.equal(v.transport, transport);
        assert.equal(count(v, 'fallback'), 0, `${transport}: no fallback`);
        assert.equal(count(v, 'gap'), 0, `${transport}: no gap`);
        assert.deepEqual(errors(v), [], `${transport}: no errors (the expiry is not a failure)`);
        assert.ok(v.tokens.length >= 2, `${transport}: the token function was called again`);
        const [a, b] = v.tokens.map(claimsOf);
        assert.ok(b.exp > a.exp, `${transport}: the new token lives longer`);
        if (transport === 'websocket') {
          // refreshed on the open connection: one connection, one open, an auth event per token
          assert.equal(count(v, 'connecting'), 1, 'websocket: never reconnected');
          assert.equal(count(v, 'open'), 1, 'websocket: opened once');
          assert.equal(count(v, 'expired'), 0, 'websocket: never expired');
          assert.deepEqual(v.states, ['open'], 'websocket: state changes');
          const auths = v.events.filter((e) => e.ev === 'auth');
          assert.equal(auths.length, v.tokens.length, 'websocket: every token accepted');
          assert.deepEqual(auths.map((e) => e.info.expires), v.tokens.map((t) => claimsOf(t).exp));
          // the refresh came before the first token's exp: 1 s (10 % of 6 s, at least 1 s) ahead
          const lead = a.exp * 1000 - auths[1].at;
          assert.ok(lead > 0 && lead <= 2000, `websocket: refreshed ${lead} ms before exp`);
        } else if (transport === 'sse' || transport === 'iframe') {
          // the server ends the stream at exp ("expired"), the client comes back with a new token
          assert.ok(count(v, 'expired') >= 1, `${transport}: the expiry was seen`);
          assert.ok(count(v, 'open') >= 2, `${transport}: reconnected`);
          assert.equal(count(v, 'connecting'), count(v, 'open'), `${transport}: every attempt opened`);
        } else {
          // polls take a new token before the old one runs out: no 401 and nothing ended
          assert.equal(count(v, 'open'), 1, `${transport}: never reconnected`);
        }
      }
      assert.equal(page.sockets.filter((u) => /\/ws$/.test(u)).length, 1, 'one WebSocket for the whole test');
      assert.ok(Date.now() - t0 > ttl * 1000, 'the test outlived the tokens');
      assertNoPageErrors(page);
    });
  });
});

test('a forbidden channel ends the subscription with error {reason: forbidden}, without retries or fallback', T, async () => {
  await withHerald(FLAGS, async (h) => {
    const ch = 'user/7'; // user 42 may read user/42 only
    await withPage(h.base, 'auth-forbidden', async (page) => {
      const names = [...TRANSPORTS, 'auto'];
      for (const name of names) await start(page, name, ch, { transport: name, lastId: 0, ...FAST }, { sub: '42', ttl: '1h' });
      for (const name of names) {
        await waitView(page, name, (v) => v.state === 'closed', 'closed');
      }
      await sleep(SETTLE * 2); // any retry would show up as another connecting event
      for (const name of names) {
        const v = await view(page, name);
        assert.equal(v.state, 'closed', name);
        assert.equal(count(v, 'connecting'), 1, `${name}: one attempt, no retry`);
        assert.equal(count(v, 'fallback'), 0, `${name}: no fallback`);
        assert.equal(count(v, 'open'), 0, `${name}: never open`);
        const errs = errors(v);
        assert.equal(errs.length, 1, `${name}: one error`);
        assert.equal(errs[0].reason, 'forbidden', `${name}: reason`);
        assert.equal(errs[0].transport, name === 'auto' ? 'websocket' : name);
        assert.deepEqual(v.events.filter((e) => e.ev === 'closed').map((e) => e.info), [{ reason: 'forbidden' }]);
        assert.deepEqual(v.msgs, []);
      }
      assert.equal(page.minted, names.length, 'one token per subscription');
    });
  });
});

test('a refused token is retried with backoff, not in a storm; without a token the channel is unauthorized', T, async () => {
  await withHerald(FLAGS, async (h) => {
    const ch = 'user/42';
    await withPage(h.base, 'auth-refused', async (page) => {
      // signed with another secret: every attempt gets 401 (/ws: the auth op's "unauthorized")
      const backoff = { min: 1600, max: 6400 };
      for (const transport of TRANSPORTS) {
        await start(page, transport, ch, { ...FAST, transport, lastId: 0, backoff }, { sub: '42', ttl: '1h', secret: 'another-secret-0123456789abcdefghijkl' });
      }
      await start(page, 'anonymous', ch, { ...FAST, transport: 'sse', lastId: 0, backoff });
      const t0 = Date.now();
      for (const name of [...TRANSPORTS, 'anonymous']) {
        await waitView(page, name, (v) => count(v, 'connecting') >= 3, 'three attempts');
      }
      await sleep(Math.max(0, 3000 * SCALE - (Date.now() - t0)));
      const spent = Date.now() - t0;
      for (const name of [...TRANSPORTS, 'anonymous']) {
        const v = await view(page, name);
        const tries = count(v, 'connecting');
        // the first retry is at once, then 1.6, 3.2, 6.4 s... (jittered by up to half)
        assert.ok(tries >= 3 && tries <= 2 + Math.ceil(spent / 800), `${name}: ${tries} attempts in ${spent} ms`);
        assert.ok(errors(v).every((e) => e.reason === 'unauthorized'), `${name}: ${JSON.stringify(errors(v))}`);
        assert.equal(count(v, 'fallback'), 0, `${name}: no fallback`);
        assert.equal(count(v, 'open'), 0, `${name}: never open`);
        assert.notEqual(v.state, 'closed', `${name}: still trying`);
        assert.deepEqual(v.msgs, []);
        if (name !== 'anonymous') assert.equal(v.tokens.length, tries, `${name}: a fresh token for every attempt`);
        // the first retry after a refusal is at once, the next ones wait (backoff.min / 2 at least)
        const at = (ev, i) => v.events.filter((e) => e.ev === ev)[i].at;
        assert.ok(at('connecting', 1) - at('error', 0) < 500, `${name}: first retry at once`);
        assert.ok(at('connecting', 2) - at('error', 1) >= 790, `${name}: then backoff`);
      }
      for (const name of [...TRANSPORTS, 'anonymous']) await page.evaluate((n) => T.close(n), name);
    });
  });
});

test('herald.publish sends its token as Authorization: Bearer', T, async () => {
  await withHerald(FLAGS, async (h) => {
    await withPage(h.base, 'auth-publish', async (page) => {
      const auths = [];
      page.on('request', (r) => {
        if (/\/pub\/news/.test(r.url())) auths.push(r.headers().authorization || null);
      });
      // an API key as the token (a function returning a promise, then a string)
      const a = await page.evaluate((k) => herald.publish('', 'news', 'hello', { event: 'note', token: async () => k }), API_KEY);
      assert.equal(a.id, '1');
      const b = await page.evaluate((k) => herald.publish('', 'news', 'again', { token: k }), API_KEY);
      assert.equal(b.id, '2');
      // no token: 401; a user's token without publish rights: 403
      const anon = await page.evaluate(() => herald.publish('', 'news', 'x').then(() => 'ok', (e) => e.status));
      assert.equal(anon, 401);
      const tok = await mint({ sub: '42' });
      const user = await page.evaluate((t) => herald.publish('', 'news', 'x', { token: () => t }).then(() => 'ok', (e) => e.status), tok);
      assert.equal(user, 403);
      const fn = await page.evaluate(() => herald.publish('', 'news', 'x', { token: () => '' }).then(() => 'ok', (e) => e.message));
      assert.match(fn, /no token/);
      const urls = page.requests.filter((u) => /\/pub\/news/.test(u));
      assert.ok(urls.every((u) => !/token=/.test(u)), 'the token is not in the publish URL');
      assert.deepEqual(auths, [`Bearer ${API_KEY}`, `Bearer ${API_KEY}`, null, `Bearer ${tok}`], 'Authorization headers sent');
    });
  });
});

test('/ws: a refresh that fails lets the server close with 3000; a fresh token reconnects and resumes, nothing lost', T, async () => {
  await withHerald(FLAGS, async (h) => {
    const ch = 'user/42';
    await withPage(h.base, 'auth-ws-3000', async (page) => {
      // the second call of the token function (the refresh, 1 s before exp) gives nothing
      // (a backoff would wait 1 s at least: the reconnect below must come at once)
      await start(page, 'ws', ch, { ...FAST, transport: 'websocket', lastId: 0, backoff: { min: 2000, max: 4000 } }, { sub: '42', ttl: '5s', empty: [2] });
      await waitOpen(page, 'ws');
      let n = 0;
      const deadline = Date.now() + 20000 * SCALE;
      for (;;) {
        await pub(h, ch, `m${++n}`);
        const v = await view(page, 'ws');
        if (count(v, 'open') >= 2 && v.tokens.length >= 2) break;
        if (Date.now() > deadline) throw new Error(`no reconnect after the expiry: ${JSON.stringify(v.events).slice(0, 2000)}`);
        await sleep(100);
      }
      for (let i = 0; i < 5; i++) await pub(h, ch, `m${++n}`);
      await waitView(page, 'ws', (v) => v.msgs.length >= n, `${n} messages`);
      await sleep(SETTLE);
      const v = await view(page, 'ws');
      assert.deepEqual(v.msgs.map((m) => [m.id, m.data]), Array.from({ length: n }, (_, i) => [String(i + 1), `m${i + 1}`]));
      assert.equal(v.calls, 3, 'token calls: connect, failed refresh, reconnect');
      assert.deepEqual(errors(v).map((e) => e.reason), ['token'], 'the failed refresh is reported');
      const expired = v.events.filter((e) => e.ev === 'expired').map((e) => e.info.reason);
      assert.equal(expired.length, 1);
      assert.match(expired[0], /websocket closed \(3000/);
      assert.equal(count(v, 'open'), 2);
      assert.equal(count(v, 'fallback'), 0);
      assert.equal(count(v, 'auth'), 2, 'two tokens accepted (first connection, second connection)');
      assert.equal(page.sockets.filter((u) => /\/ws$/.test(u)).length, 2, 'one new WebSocket');
      // the reconnect was at once: no backoff pause after the close
      const closedAt = v.events.find((e) => e.ev === 'expired').at;
      const reconnectAt = v.events.filter((e) => e.ev === 'connecting')[1].at;
      assert.ok(reconnectAt - closedAt < 500, `reconnected ${reconnectAt - closedAt} ms after the close`);
    });
  });
});

test('a token given to a server without access control changes nothing', T, async () => {
  await withHerald({ 'sse-heartbeat': 0.2, 'iframe-keepalive': 0.2 }, async (h) => {
    const ch = 'open-mode';
    await withPage(h.base, 'auth-open', async (page) => {
      for (const transport of TRANSPORTS) await start(page, transport, ch, { transport, lastId: 0, ...FAST }, { sub: '42', ttl: '1h' });
      for (const transport of TRANSPORTS) await waitOpen(page, transport);
      await publish(h, ch, 'a');
      await publish(h, ch, 'b');
      for (const transport of TRANSPORTS) {
        const v = await waitView(page, transport, (x) => x.msgs.length >= 2, '2 messages');
        assert.deepEqual(v.msgs.map((m) => [m.id, m.data]), [['1', 'a'], ['2', 'b']], transport);
        assert.deepEqual(errors(v), [], `${transport}: no errors`);
        assert.equal(count(v, 'auth'), 0, `${transport}: no auth op on a server without access control`);
      }
      // the welcome says auth: false, so /ws subscribes at once
      assert.deepEqual(page.wsSent.map((f) => JSON.parse(f).op).filter((op) => op !== 'ping'), ['subscribe']);
      assertNoPageErrors(page);
    });
  });
});
