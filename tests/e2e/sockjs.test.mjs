// SockJS in headless Chromium: sockjs-client 1.6.1 (dist/sockjs.min.js) and @stomp/stompjs (its
// UMD bundle), both loaded from node_modules into a page of herald's origin, connect to /stomp
// over every SockJS transport forced one at a time (websocket, xhr-streaming, xhr-polling,
// eventsource, htmlfile, jsonp-polling), and with WebSocket blocked in the page (the client's
// own fallback). Each: CONNECTED, SUBSCRIBE /topic/x, a message published by POST /pub, a SEND
// that a poll sees, a burst past sockjs_response_limit (streaming responses end and the client
// opens the next without losing anything), then a cut by the server (a restart: every session
// and transport gone) after which stompjs reconnects, resubscribes and receives again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import {
  startHerald, restartHerald, publish, getJSON, waitFor, launchBrowser, newPage, openPage, screenshot, SCALE,
} from './lib.mjs';

const require = createRequire(import.meta.url);
const SOCKJS_JS = require.resolve('sockjs-client/dist/sockjs.min.js');
const STOMP_JS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../node_modules/@stomp/stompjs/bundles/stomp.umd.min.js');

const T = { timeout: 90000 * SCALE };
const FLAGS = { 'sockjs-response-limit': 4096, 'sockjs-heartbeat': 2, 'sockjs-disconnect-delay': 2, store: 'memory' };

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/* The page: S.start(transports|null) connects stompjs over SockJS and records what comes. */
const PAGE = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>SockJS e2e</title></head><body><pre id="log"></pre></body></html>`;
const SETUP = `
window.S = {
  msgs: [], connects: 0, closes: [], errors: [], transport: null,
  start(transports) {
    const opts = transports ? { transports } : {};
    const c = new StompJs.Client({
      webSocketFactory: () => (S.sock = new SockJS(location.origin + '/stomp', null, opts)),
      reconnectDelay: 300, heartbeatIncoming: 0, heartbeatOutgoing: 0,
      onConnect: () => {
        S.connects++;
        S.transport = S.sock.transport;
        c.subscribe('/topic/x', (m) => { S.msgs.push(m.body); document.getElementById('log').textContent += m.body + '\\n'; },
                    { receipt: 'sub-' + S.connects });
      },
      onStompError: (f) => S.errors.push(f.headers.message),
      onWebSocketClose: (e) => S.closes.push(e.code),
    });
    c.watchForReceipt = c.watchForReceipt.bind(c);
    S.client = c;
    c.activate();
  },
  send(body) { S.client.publish({ destination: '/topic/y', body }); },
  view() { return { msgs: S.msgs.slice(), connects: S.connects, closes: S.closes.slice(), errors: S.errors.slice(), transport: S.transport }; },
  stop() { return S.client.deactivate(); },
};`;

async function load(page, h) {
  await openPage(page, h.base, PAGE);
  await page.addScriptTag({ path: SOCKJS_JS });
  await page.addScriptTag({ path: STOMP_JS });
  await page.addScriptTag({ content: SETUP });
}

const view = (page) => page.evaluate(() => S.view());
const waitView = (page, pred, what, ms = 10000 * SCALE) =>
  waitFor(async () => pred(await view(page)), ms, what, 25);
const subscribers = async (h) => (await getJSON(h, '/channels/x')).subscribers;

async function runTransport(transport, { blockWs = false } = {}) {
  let h = await startHerald(FLAGS);
  const page = await newPage(browser);
  try {
    // blocked as a proxy would: the WebSocket handshake goes nowhere and the connection closes
    if (blockWs) await page.routeWebSocket(/./, (ws) => ws.close({ code: 1006 }).catch(() => ws.close()));
    await load(page, h);
    await page.evaluate((t) => S.start(t), transport ? [transport] : null);
    await waitView(page, (v) => v.connects === 1, 'CONNECTED');
    const v0 = await view(page);
    if (transport) assert.equal(v0.transport, transport);
    else assert.notEqual(v0.transport, 'websocket', 'WebSocket blocked: a fallback transport');
    await waitFor(async () => (await subscribers(h)) >= 1, 5000 * SCALE, 'subscribed');
    await publish(h, 'x', 'first "quoted" </script> é');
    await waitView(page, (v) => v.msgs.includes('first "quoted" </script> é'), 'the first message');
    // SEND from the browser reaches the channel (a poll sees it)
    await page.evaluate(() => S.send('from the browser'));
    await waitFor(async () => (await getJSON(h, '/sub/y?mode=poll&last_id=0')).messages.some((m) => m.data === 'from the browser'),
      5000 * SCALE, 'the SEND published');
    // a burst past sockjs_response_limit: nothing lost, in order
    const burst = Array.from({ length: 30 }, (_, i) => `b${i} ${'z'.repeat(200)}`);
    for (const b of burst) await publish(h, 'x', b);
    await waitView(page, (v) => v.msgs.length >= 31, 'the burst');
    assert.deepEqual((await view(page)).msgs.slice(1, 31), burst);
    // the server goes away and comes back: stompjs reconnects over a new session and resubscribes
    h = await restartHerald(h);
    await waitView(page, (v) => v.connects >= 2, 'reconnected', 20000 * SCALE);
    await waitFor(async () => (await subscribers(h)) >= 1, 10000 * SCALE, 'resubscribed');
    await publish(h, 'x', 'after the cut');
    await waitView(page, (v) => v.msgs.includes('after the cut'), 'a message after the cut');
    const v = await view(page);
    assert.deepEqual(v.errors, []);
    assert.equal(v.msgs.filter((m) => m === 'after the cut').length, 1);
    await page.evaluate(() => S.stop());
  } catch (e) {
    await screenshot(page, `sockjs-${transport ?? 'fallback'}`).catch(() => {});
    e.message += `\n--- herald ---\n${h.tail(1500)}`;
    throw e;
  } finally {
    await page.context().close();
    await h.stop();
  }
}

for (const transport of ['websocket', 'xhr-streaming', 'xhr-polling', 'eventsource', 'htmlfile', 'jsonp-polling']) {
  test(`SockJS in Chromium over ${transport}: STOMP subscribe, publish, send, burst, resume after a cut`, T, () =>
    runTransport(transport));
}

test('SockJS in Chromium with WebSocket blocked: the client falls back and STOMP works', T, () =>
  runTransport(null, { blockWs: true }));

/* The iframe transports: the page at /stomp/iframe.html loads sockjs_url, here a URL of herald's
 * origin that the test answers from node_modules (no CDN offline). */
for (const transport of ['iframe-eventsource', 'iframe-htmlfile', 'iframe-xhr-polling']) {
  test(`SockJS in Chromium over ${transport} (the iframe page loading sockjs_url)`, T, async () => {
    const h = await startHerald({ ...FLAGS, 'sockjs-url': '/static/sockjs.min.js' });
    const page = await newPage(browser);
    try {
      await page.context().route(/\/static\/sockjs\.min\.js$/, (r) => r.fulfill({ path: SOCKJS_JS, contentType: 'application/javascript' }));
      await load(page, h);
      await page.evaluate((t) => S.start(t), [transport]);
      await waitView(page, (v) => v.connects === 1, 'CONNECTED');
      assert.equal((await view(page)).transport, transport);
      await waitFor(async () => (await subscribers(h)) >= 1, 5000 * SCALE, 'subscribed');
      await publish(h, 'x', 'through the iframe');
      await waitView(page, (v) => v.msgs.includes('through the iframe'), 'the message');
      await page.evaluate(() => S.stop());
    } catch (e) {
      await screenshot(page, `sockjs-${transport}`).catch(() => {});
      e.message += `\n--- herald ---\n${h.tail(1500)}`;
      throw e;
    } finally {
      await page.context().close();
      await h.stop();
    }
  });
}
