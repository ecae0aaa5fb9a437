// herald.session in headless Chromium against a real herald with access control (an HMAC token
// secret and an API key for the backend): a session follows the token user's personal feed
// (/sub/@me, or the feed the /ws auth reply names) on every transport, with messages named by
// their real channel (user/42); its unread counts are the server's - pushed by the server on the
// streams (`unread` notices: no GET /unread), asked with GET /unread on polls - so a read on one
// device reaches the others; markRead (POST /read with Authorization: Bearer) and markAllRead
// (the feed and a tracked channel); a channel the user may not read is refused with 403; an
// admin disconnect with reconnect:false ends sessions and plain subscriptions on WebSocket, SSE
// and iframe for good (no reconnect), reconnect:true reconnects and resumes; a plain /ws
// subscription with a token does not mix in the server-side feed's messages; messages whose
// event names look like notices stay messages; herald.mjs exports session.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  withHerald, publish, request, waitFor, sleep, run, HERALD_BIN, launchBrowser, newPage, openPage, screenshot, SCALE,
} from './lib.mjs';

const T = { timeout: 90000 * SCALE };
const STREAMS = ['websocket', 'sse', 'iframe'];
const TRANSPORTS = [...STREAMS, 'longpoll', 'poll'];
const SECRET = 'herald-e2e-hmac-secret-0123456789abcdef';
const API_KEY = 'e2e-backend-key-0123456789';
const FLAGS = { 'token-hmac-secret': SECRET, 'api-keys': API_KEY, 'sse-heartbeat': 0.2, 'iframe-keepalive': 0.2 };
const FAST = { backoff: { min: 100, max: 400 }, pollInterval: 100, connectTimeout: 3000, idleTimeout: 1500, unreadPoll: 300 };
const SETTLE = 500 * SCALE;
const WAIT = 10000 * SCALE;
const ADMIN = { Authorization: `Bearer ${API_KEY}` };

/* Mints a token with the herald binary: {sub, ttl, subscribe: [patterns]}. */
async function mint({ sub = '42', ttl = '1h', subscribe = [] } = {}) {
  const args = ['token', '--token-hmac-secret', SECRET, '--sub', sub, '--ttl', ttl];
  for (const p of subscribe) args.push('--subscribe', p);
  const r = await run(HERALD_BIN, args, { timeout: 10000 * SCALE });
  const tok = r.stdout.toString().trim();
  if (r.code !== 0 || tok.split('.').length !== 3) throw new Error(`herald token failed (${r.code}): ${r.stderr}`);
  return tok;
}

const pub = (h, ch, data, event) => publish(h, ch, data, { headers: ADMIN, event });

async function admin(h, method, path, body) {
  const b = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const headers = { ...ADMIN };
  if (b) headers['Content-Length'] = String(b.length);
  const r = await request(h, method, path, { headers, body: b });
  assert.equal(r.status, 200, `${method} ${path}: ${r.text}`);
  return r.json();
}

/* The recording page: S.start(name, options, kind) starts herald.session(options) (kind
 * 'subscribe': herald.subscribe(options.url, options.channel, ...)) and records messages, events,
 * states and unread counts; S.call(name, method, ...args) awaits a method and reports its result or
 * error; S.view(name) shows it all. */
const PAGE = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>herald.session e2e</title></head><body>
<script src="/herald.js"></script>
<script>
window.S = {
  s: {},
  start(name, options, kind) {
    const rec = { msgs: [], events: [], states: [], unreads: [] };
    const o = Object.assign({}, options);
    let s;
    if (kind === 'subscribe') {
      s = herald.subscribe('', o.channel, (m) => rec.msgs.push(m), o);
    } else {
      o.onMessage = (m) => rec.msgs.push(m);
      s = herald.session(o);
    }
    for (const ev of ['connecting', 'open', 'fallback', 'gap', 'error', 'closed', 'auth', 'expired', 'disconnect', 'withdrawn']) {
      s.on(ev, (info) => rec.events.push({ ev, info, at: Date.now() }));
    }
    s.on('unread', (u) => rec.unreads.push(u));
    s.on('state', (st) => rec.states.push(st));
    this.s[name] = { s, rec };
  },
  view(name) {
    const { s, rec } = this.s[name];
    return { state: s.state, transport: s.transport, lastId: s.lastId, feed: s.feed, user: s.user || null,
      unread: s.unread || null, known: s.unreadKnown || false, ...rec };
  },
  async call(name, method, ...args) {
    try {
      return { ok: true, value: await this.s[name].s[method](...args) };
    } catch (e) {
      return { ok: false, message: e.message, status: e.status };
    }
  },
  close(name) {
    this.s[name].s.close();
  },
};
</script></body></html>`;

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

const start = (page, name, options, kind) => page.evaluate(([n, o, k]) => S.start(n, o, k), [name, options, kind]);
const view = (page, name) => page.evaluate((n) => S.view(n), name);
const call = (page, name, method, ...args) => page.evaluate(([n, m, a]) => S.call(n, m, ...a), [name, method, args]);
const count = (v, ev) => v.events.filter((e) => e.ev === ev).length;
/* Unread counts without the channels at 0 (the server may track more channels for everyone). */
const unread = (u) => ({ total: u.total, channels: Object.fromEntries(Object.entries(u.channels).filter(([, k]) => k)) });
const errors = (v) => v.events.filter((e) => e.ev === 'error').map((e) => e.info);

async function waitView(page, name, pred, what, ms = WAIT) {
  let last;
  try {
    return await waitFor(async () => {
      last = await view(page, name);
      return pred(last) && last;
    }, ms, `${name}: ${what}`, 25);
  } catch (e) {
    e.message += `\nlast view: ${JSON.stringify(last).slice(0, 3000)}`;
    throw e;
  }
}

const waitOpen = (page, name) => waitView(page, name, (v) => v.state === 'open', 'state open');
const waitTotal = (page, name, total) => waitView(page, name, (v) => v.known && v.unread.total === total, `unread total ${total}`);

/* A page of herald's origin recording the URLs it asks for (page.requests). */
async function withPage(base, name, fn) {
  const page = await newPage(browser);
  page.requests = [];
  page.on('request', (r) => page.requests.push(`${r.method()} ${r.url()}`));
  await openPage(page, base, PAGE);
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
  const network = /^console: (Failed to load resource: |WebSocket connection to .* failed)/;
  assert.deepEqual(page.errors.filter((e) => !network.test(e)), [], 'no page errors');
}

test('a session follows the personal feed on every transport with the server\'s unread count; a read on one device reaches all', T, async () => {
  await withHerald(FLAGS, async (h) => {
    const tok = await mint({ sub: '42' });
    await withPage(h.base, 'session-transports', async (page) => {
      for (const t of TRANSPORTS) await start(page, t, { token: tok, transport: t, lastId: 0, ...FAST });
      for (const t of TRANSPORTS) await waitOpen(page, t);
      for (const t of TRANSPORTS) await waitTotal(page, t, 0);
      for (let i = 1; i <= 3; i++) await pub(h, 'user/42', `n${i}`, 'note');
      for (const t of TRANSPORTS) {
        const v = await waitView(page, t, (x) => x.msgs.length >= 3 && x.unread.total === 3, '3 messages, 3 unread');
        assert.deepEqual(v.msgs.map((m) => [m.id, m.channel, m.event, m.data]), [
          ['1', 'user/42', 'note', 'n1'], ['2', 'user/42', 'note', 'n2'], ['3', 'user/42', 'note', 'n3'],
        ], `${t}: the feed's messages, named by their channel`);
        assert.deepEqual(unread(v.unread), { total: 3, channels: { 'user/42': 3 } }, `${t}: the server's count`);
        assert.equal(v.feed, 'user/42', `${t}: the feed's name`);
        assert.equal(v.transport, t);
      }
      // reading on one "device" (the WebSocket session) clears every other one
      const r = await call(page, 'websocket', 'markRead');
      assert.equal(r.ok, true, JSON.stringify(r));
      assert.deepEqual(r.value, { channel: 'user/42', read: '3', unread: 0, total: 0 });
      for (const t of TRANSPORTS) await waitTotal(page, t, 0);
      const u = await request(h, 'GET', '/unread', { headers: { Authorization: `Bearer ${tok}` } });
      assert.deepEqual(u.json().user, '42');
      assert.deepEqual(unread(u.json()), { total: 0, channels: {} }, 'the server agrees');
      assert.equal(u.json().channels['user/42'], 0);
      await pub(h, 'user/42', 'n4');
      for (const t of TRANSPORTS) await waitView(page, t, (x) => x.msgs.length === 4 && x.unread.total === 1, 'n4, 1 unread');
      await sleep(SETTLE);
      for (const t of TRANSPORTS) {
        const v = await view(page, t);
        assert.equal(v.msgs.length, 4, `${t}: each message once`);
        assert.equal(count(v, 'open'), 1, `${t}: opened once`);
        assert.deepEqual(errors(v), [], `${t}: no errors`);
        assert.equal(v.user, '42', `${t}: the user`);
      }
      assertNoPageErrors(page);
    });
  });
});

test('on the streams the counts are pushed (no GET /unread); on polls the session asks GET /unread', T, async () => {
  await withHerald(FLAGS, async (h) => {
    const tok = await mint({ sub: '7' });
    await withPage(h.base, 'session-push', async (page) => {
      // (unreadWait: a slow machine must not make the session ask before the push comes)
      for (const t of STREAMS) await start(page, t, { token: tok, transport: t, ...FAST, unreadWait: 5000 * SCALE });
      for (const t of STREAMS) await waitTotal(page, t, 0);
      await pub(h, 'user/7', 'a');
      await pub(h, 'user/7', 'b');
      for (const t of STREAMS) await waitTotal(page, t, 2);
      let r = await call(page, 'sse', 'markRead', 'user/7', '1');
      assert.deepEqual(r.value, { channel: 'user/7', read: '1', unread: 1, total: 1 });
      for (const t of STREAMS) await waitTotal(page, t, 1);
      // a backend's read (POST /read?user=) reaches the devices too
      await admin(h, 'POST', '/read/user/7?user=7', { id: '2' });
      for (const t of STREAMS) await waitTotal(page, t, 0);
      const asked = page.requests.filter((u) => /\/unread(\?|$)/.test(u));
      assert.deepEqual(asked, [], 'no GET /unread: the server pushed every count');
      for (const t of STREAMS) {
        const totals = (await view(page, t)).unreads.map((x) => x.total);
        assert.equal(totals[0], 0, `${t}: the first count right after subscribing`);
        assert.ok(totals.includes(2), `${t}: ${totals}`);
        assert.deepEqual(totals.slice(totals.lastIndexOf(2)), [2, 1, 0], `${t}: the counts as they changed`);
        assert.ok(totals.every((x, i) => i === 0 || x !== totals[i - 1]), `${t}: each change told once: ${totals}`);
      }
    });
    await withPage(h.base, 'session-polls', async (page) => {
      for (const t of ['longpoll', 'poll']) await start(page, t, { token: tok, transport: t, ...FAST });
      for (const t of ['longpoll', 'poll']) await waitOpen(page, t);
      for (const t of ['longpoll', 'poll']) await waitTotal(page, t, 0);
      await pub(h, 'user/7', 'c');
      for (const t of ['longpoll', 'poll']) await waitTotal(page, t, 1);
      const asked = page.requests.filter((u) => /^GET .*\/unread$/.test(u));
      assert.ok(asked.length >= 2, `GET /unread asked (${asked.length})`);
      assertNoPageErrors(page);
    });
  });
});

test('markRead and markAllRead: the feed and a tracked channel, Authorization: Bearer; another user\'s channel is refused', T, async () => {
  await withHerald(FLAGS, async (h) => {
    const tok = await mint({ sub: '42', subscribe: ['news'] });
    await withPage(h.base, 'session-markread', async (page) => {
      await start(page, 's', { token: tok, transport: 'sse', lastId: 0, ...FAST });
      await waitTotal(page, 's', 0);
      // the backend makes "news" a channel the user tracks (read up to now), then news come
      await pub(h, 'news', 'old');
      await admin(h, 'POST', '/read/news?user=42', { id: '1' });
      await pub(h, 'news', 'fresh 1');
      await pub(h, 'news', 'fresh 2');
      await pub(h, 'user/42', 'for you');
      let v = await waitTotal(page, 's', 3);
      assert.deepEqual(unread(v.unread).channels, { 'user/42': 1, news: 2 });
      assert.deepEqual(v.msgs.map((m) => m.data), ['for you'], 'the session follows the feed only');
      // a channel other than the feed needs the id read up to
      let r = await call(page, 's', 'markRead', 'news');
      assert.equal(r.ok, false);
      assert.match(r.message, /needs the id/);
      r = await call(page, 's', 'markRead', 'news', '2');
      assert.deepEqual(r.value, { channel: 'news', read: '2', unread: 1, total: 2 });
      v = await waitTotal(page, 's', 2);
      assert.deepEqual(unread(v.unread).channels, { 'user/42': 1, news: 1 });
      // another user's channel: 403, the count unchanged
      r = await call(page, 's', 'markRead', 'user/43', '1');
      assert.equal(r.ok, false);
      assert.equal(r.status, 403);
      // every channel with unread messages: the feed up to the last delivered, news to its newest
      r = await call(page, 's', 'markAllRead');
      assert.equal(r.ok, true, JSON.stringify(r));
      assert.deepEqual(r.value.map((a) => [a.channel, a.read, a.unread]).sort(), [['news', '3', 0], ['user/42', '1', 0]]);
      v = await waitTotal(page, 's', 0);
      assert.equal(v.unread.channels['user/42'], 0);
      assert.equal(v.unread.channels.news, 0);
      const reads = [];
      page.on('request', (q) => {
        if (/\/read\//.test(q.url())) reads.push({ url: q.url(), auth: q.headers().authorization, body: q.postData() });
      });
      await call(page, 's', 'markRead', 'user/42', '1');
      assert.equal(reads.length, 1);
      assert.equal(reads[0].auth, `Bearer ${tok}`, 'the token as Authorization: Bearer');
      assert.deepEqual(JSON.parse(reads[0].body), { id: '1' });
      assert.doesNotMatch(reads[0].url, /token=/, 'never in the URL');
      assert.deepEqual(errors(await view(page, 's')), []);
    });
  });
});

test('an admin disconnect with reconnect:false ends sessions and subscriptions for good; reconnect:true resumes', T, async () => {
  await withHerald(FLAGS, async (h) => {
    const tok = await mint({ sub: '42' });
    await withPage(h.base, 'session-disconnect', async (page) => {
      for (const t of STREAMS) await start(page, t, { token: tok, transport: t, ...FAST });
      await start(page, 'plain-sse', { channel: 'user/42', token: tok, transport: 'sse', ...FAST }, 'subscribe');
      const names = [...STREAMS, 'plain-sse'];
      for (const n of names) await waitOpen(page, n);
      await waitFor(async () => (await admin(h, 'GET', '/users/42')).connections.sse >= 2, WAIT, 'connections registered');
      const bye = await admin(h, 'POST', '/users/42/disconnect', { reason: 'logged out', reconnect: false });
      assert.ok(bye.disconnected >= 4, JSON.stringify(bye));
      for (const n of names) await waitView(page, n, (v) => v.state === 'closed', 'closed');
      const closedAt = Date.now();
      await sleep(1500 * SCALE); // several backoff periods (100-400 ms)
      for (const n of names) {
        const v = await view(page, n);
        const transport = n === 'plain-sse' ? 'sse' : n;
        assert.deepEqual(v.events.filter((e) => e.ev === 'disconnect').map((e) => e.info), [{ transport, reason: 'logged out', reconnect: false }], n);
        assert.deepEqual(v.events.filter((e) => e.ev === 'closed').map((e) => e.info), [{ reason: 'disconnected', message: 'logged out' }], n);
        assert.equal(v.state, 'closed', `${n}: stays closed`);
        assert.equal(v.events.filter((e) => e.ev === 'connecting' && e.at >= closedAt).length, 0, `${n}: no reconnect`);
        assert.deepEqual(errors(v), [], `${n}: a goodbye is not an error`);
      }
      const st = await admin(h, 'GET', '/users/42');
      assert.equal(st.online, false, `nothing reconnected: ${JSON.stringify(st)}`);

      // reconnect: true - the goodbye is told, then the session connects again and resumes
      for (const t of STREAMS) await start(page, `re-${t}`, { token: tok, transport: t, ...FAST });
      for (const t of STREAMS) await waitOpen(page, `re-${t}`);
      await pub(h, 'user/42', 'before');
      for (const t of STREAMS) await waitView(page, `re-${t}`, (v) => v.msgs.length === 1, 'before');
      await admin(h, 'POST', '/users/42/disconnect', { reason: 'maintenance', reconnect: true });
      for (const t of STREAMS) await waitView(page, `re-${t}`, (v) => count(v, 'open') === 2, 'open again');
      await pub(h, 'user/42', 'after');
      for (const t of STREAMS) {
        const v = await waitView(page, `re-${t}`, (x) => x.msgs.length >= 2, 'after');
        assert.deepEqual(v.msgs.map((m) => m.data), ['before', 'after'], t);
        assert.deepEqual(v.events.filter((e) => e.ev === 'disconnect').map((e) => e.info), [{ transport: t, reason: 'maintenance', reconnect: true }]);
        assert.equal(count(v, 'closed'), 0);
        assert.equal(v.transport, t, `${t}: no fallback`);
      }
      assertNoPageErrors(page);
    });
  });
});

test('a /ws subscription with a token gets its own channel only (not the server-side feed); notice-like event names stay messages', T, async () => {
  await withHerald(FLAGS, async (h) => {
    const tok = await mint({ sub: '42', subscribe: ['news'] });
    await withPage(h.base, 'session-mixing', async (page) => {
      await start(page, 'news', { channel: 'news', token: tok, transport: 'websocket', lastId: 0, ...FAST }, 'subscribe');
      for (const t of ['sse', 'iframe']) await start(page, t, { token: tok, transport: t, lastId: 0, ...FAST });
      for (const n of ['news', 'sse', 'iframe']) await waitOpen(page, n);
      await pub(h, 'user/42', 'personal 1');
      await pub(h, 'news', 'headline 1');
      await pub(h, 'user/42', 'x', 'disconnect');
      await pub(h, 'user/42', 'y', 'unread');
      await pub(h, 'user/42', 'z', 'gap');
      await pub(h, 'news', 'headline 2');
      const v = await waitView(page, 'news', (x) => x.msgs.length >= 2, '2 headlines');
      await sleep(SETTLE);
      assert.deepEqual((await view(page, 'news')).msgs.map((m) => [m.id, m.channel, m.data]), [['1', 'news', 'headline 1'], ['2', 'news', 'headline 2']]);
      assert.equal(v.state, 'open');
      for (const t of ['sse', 'iframe']) {
        const s = await waitView(page, t, (x) => x.msgs.length >= 4, '4 messages');
        assert.deepEqual(s.msgs.map((m) => [m.event, m.data]), [['message', 'personal 1'], ['disconnect', 'x'], ['unread', 'y'], ['gap', 'z']], t);
        assert.equal(s.state, 'open', `${t}: a message named "disconnect" does not end it`);
        assert.equal(count(s, 'gap'), 0);
      }
      // herald.mjs exports the session API
      const mod = await page.evaluate(async () => {
        const m = await import('/herald.mjs');
        return { session: typeof m.session, Session: typeof m.Session, same: m.session === window.herald.session };
      });
      assert.deepEqual(mod, { session: 'function', Session: 'function', same: true });
      assertNoPageErrors(page);
    });
  });
});
