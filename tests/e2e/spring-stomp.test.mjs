// A Spring-style front end pointed at herald, in headless Chromium: sockjs-client 1.6.1 +
// @stomp/stompjs (their browser bundles, from node_modules) connect to `new SockJS('/stomp')`
// with a user's token as CONNECT's passcode, over every SockJS transport forced one at a time
// and with WebSocket blocked, and use the destinations such an application uses:
// - /topic/news (resumed with last-id after a cut: nothing missed, nothing twice),
// - /user/queue/reply (what a backend addresses to the user: POST /pub with users and
//   user_destination, Spring's convertAndSendToUser),
// - /queue/test with client-individual acks: SENDs in a transaction (BEGIN, SEND, SEND, COMMIT)
//   each reach the consumer once; a NACKed message comes again with redelivered:true; a message
//   left unacknowledged when the server restarts (LMDB) comes again after the cut with
//   redelivered:true; one enqueued over HTTP while the client reconnects is not lost.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import {
  startHerald, restartHerald, request, waitFor, launchBrowser, newPage, openPage, screenshot, run, HERALD_BIN, SCALE,
} from './lib.mjs';

const require = createRequire(import.meta.url);
const SOCKJS_JS = require.resolve('sockjs-client/dist/sockjs.min.js');
const STOMP_JS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../node_modules/@stomp/stompjs/bundles/stomp.umd.min.js');

const T = { timeout: 120000 * SCALE };
const SECRET = 'spring-e2e-hmac-secret-0123456789abcdef';
const KEY = 'spring-e2e-backend-key-0123456789';
const FLAGS = { 'token-hmac-secret': SECRET, 'api-keys': KEY, 'sockjs-response-limit': 4096, 'sockjs-heartbeat': 2 };
const admin = { Authorization: `Bearer ${KEY}` };

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

async function mint() {
  const r = await run(HERALD_BIN, ['token', '--token-hmac-secret', SECRET, '--sub', '42', '--subscribe', 'news',
    '--subscribe', 'queue/test', '--publish', 'queue/test', '--publish', 'ready', '--ttl', '1h'], { timeout: 10000 * SCALE });
  const tok = r.stdout.toString().trim();
  if (r.code !== 0) throw new Error(`herald token failed: ${r.stderr}`);
  return tok;
}

async function post(h, p, body, headers = {}) {
  const b = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  const r = await request(h, 'POST', p, { headers: { ...admin, 'Content-Length': String(b.length), ...headers }, body: b });
  assert.equal(r.status, 200, `${p}: ${r.status} ${r.text}`);
  return r.json();
}

const PAGE = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Spring-style STOMP</title></head><body></body></html>`;
/* S.start(transports, token): the app. S.tx(bodies): BEGIN, SEND each to /queue/test, COMMIT. */
const APP = `
window.S = {
  news: [], replies: [], jobs: [], errors: [], connects: 0, lastNews: null, transport: null, nacked: {}, held: [],
  start(transports, token) {
    const c = new StompJs.Client({
      webSocketFactory: () => (S.sock = new SockJS(location.origin + '/stomp', null, transports ? { transports } : {})),
      connectHeaders: { passcode: token },
      reconnectDelay: 300, heartbeatIncoming: 0, heartbeatOutgoing: 0,
      onConnect: () => {
        S.connects++;
        S.transport = S.sock.transport;
        const resume = S.lastNews ? { 'last-id': S.lastNews } : {};
        c.subscribe('/topic/news', (m) => { S.news.push(m.body); S.lastNews = m.headers['message-id'].split('-')[0]; }, resume);
        c.subscribe('/user/queue/reply', (m) => S.replies.push({ body: m.body, dest: m.headers.destination }));
        c.subscribe('/queue/test', (m) => {
          const j = { body: m.body, redelivered: m.headers.redelivered === 'true' };
          S.jobs.push(j);
          if (m.body === 'nack-me' && !S.nacked[m.body]) { S.nacked[m.body] = true; m.nack(); return; }
          if (m.body === 'hold-me' && !j.redelivered) { S.held.push(m); return; } /* never acknowledged */
          m.ack();
        }, { ack: 'client-individual' });
        c.publish({ destination: '/app/ready', body: String(S.connects) }); /* SEND to /app/: a channel */
      },
      onStompError: (f) => S.errors.push(f.headers.message + ': ' + f.body),
    });
    S.client = c;
    c.activate();
  },
  tx(bodies) {
    const t = S.client.begin();
    for (const b of bodies) S.client.publish({ destination: '/queue/test', body: b, headers: { transaction: t.id } });
    t.commit();
  },
  send(body) { S.client.publish({ destination: '/queue/test', body }); },
  view() {
    return { news: S.news.slice(), replies: S.replies.slice(), jobs: S.jobs.slice(), errors: S.errors.slice(),
             connects: S.connects, transport: S.transport };
  },
  stop() { return S.client.deactivate(); },
};`;

const view = (page) => page.evaluate(() => S.view());
const waitView = (page, pred, what, ms = 15000 * SCALE) => waitFor(async () => pred(await view(page)), ms, what, 25);
const count = (list, body) => list.filter((x) => (x.body ?? x) === body).length;

async function spring(transport, { blockWs = false } = {}) {
  let h = await startHerald(FLAGS);
  const page = await newPage(browser);
  try {
    if (blockWs) await page.routeWebSocket(/./, (ws) => ws.close({ code: 1006 }).catch(() => ws.close()));
    await openPage(page, h.base, PAGE);
    await page.addScriptTag({ path: SOCKJS_JS });
    await page.addScriptTag({ path: STOMP_JS });
    await page.addScriptTag({ content: APP });
    await page.evaluate(([t, tok]) => S.start(t, tok), [transport ? [transport] : null, await mint()]);
    await waitView(page, (v) => v.connects === 1, 'CONNECTED');
    const v0 = await view(page);
    if (transport) assert.equal(v0.transport, transport);
    else assert.notEqual(v0.transport, 'websocket', 'WebSocket blocked: a fallback transport');
    /* the SEND to /app/ready says the subscriptions before it were made */
    await waitFor(async () => (await request(h, 'GET', '/sub/ready?mode=poll&last_id=0', { headers: admin })).json().messages.length === 1,
      10000 * SCALE, 'the /app/ SEND');

    // /topic/ and /user/queue/
    await post(h, '/pub/news', 'n1');
    await post(h, '/publish', { users: ['42'], user_destination: '/queue/reply', data: 'reply-1' });
    await post(h, '/publish', { users: ['43'], user_destination: '/queue/reply', data: 'not yours' });
    await waitView(page, (v) => v.news.includes('n1') && v.replies.length >= 1, 'n1 and the reply');
    assert.deepEqual((await view(page)).replies, [{ body: 'reply-1', dest: '/user/queue/reply' }]);

    // /queue/: a transaction of two SENDs, a NACK redelivered, a message held across the cut
    await page.evaluate(() => S.tx(['job-1', 'job-2']));
    await page.evaluate(() => S.send('nack-me'));
    await page.evaluate(() => S.send('hold-me'));
    await waitView(page, (v) => count(v.jobs, 'job-2') === 1 && count(v.jobs, 'nack-me') === 2 && count(v.jobs, 'hold-me') === 1,
      'the queue messages');
    let v = await view(page);
    assert.deepEqual(v.jobs.filter((j) => j.body === 'nack-me').map((j) => j.redelivered), [false, true]);
    assert.equal(count(v.jobs, 'job-1'), 1);

    // the cut: the server restarts (LMDB keeps the queue and the history); meanwhile news and a job arrive
    h = await restartHerald(h);
    await post(h, '/pub/news', 'n2');
    await post(h, '/pub/queue/test', 'job-3');
    await post(h, '/publish', { users: ['42'], user_destination: '/queue/reply', data: 'reply-2' });
    await waitView(page, (v) => v.connects >= 2, 'reconnected', 20000 * SCALE);
    await waitView(page, (v) => v.news.includes('n2') && count(v.jobs, 'job-3') === 1 && count(v.jobs, 'hold-me') === 2,
      'what came during the cut, and the held message again', 20000 * SCALE);
    await post(h, '/pub/news', 'n3');
    await waitView(page, (v) => v.news.includes('n3'), 'n3');
    v = await view(page);
    assert.deepEqual(v.news, ['n1', 'n2', 'n3'], 'the topic resumed with last-id: nothing missed, nothing twice');
    assert.deepEqual(v.jobs.filter((j) => j.body === 'hold-me').map((j) => j.redelivered), [false, true],
      'unacknowledged across the restart: redelivered');
    for (const b of ['job-1', 'job-2', 'job-3']) assert.equal(count(v.jobs, b), 1, `${b} once`);
    assert.deepEqual(v.errors, []);
    /* everything acknowledged: the queue holds nothing */
    await waitFor(async () => {
      const m = (await request(h, 'GET', '/metrics', { headers: admin })).text;
      return /^herald_stomp_queue_messages 0$/m.test(m);
    }, 10000 * SCALE, 'the queue empty');
    await page.evaluate(() => S.stop());
  } catch (e) {
    await screenshot(page, `spring-${transport ?? 'fallback'}`).catch(() => {});
    e.message += `\n--- herald ---\n${h.tail(2000)}`;
    throw e;
  } finally {
    await page.context().close();
    await h.stop();
  }
}

for (const transport of ['websocket', 'xhr-streaming', 'xhr-polling', 'eventsource', 'htmlfile', 'jsonp-polling']) {
  test(`Spring-style front end over SockJS ${transport}: /topic, /user/queue, a transaction to /queue/test, NACK, resume after a cut`, T, () =>
    spring(transport));
}

test('Spring-style front end with WebSocket blocked: the client falls back and everything works', T, () =>
  spring(null, { blockWs: true }));
