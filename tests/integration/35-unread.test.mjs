// Issue 13 part 3, the push side: every subscription of a user's personal channel is told the
// user's unread counts ({"user","total","channels"}, the body of GET /unread) right after it
// subscribes and whenever they change - a publish on the personal channel or on a channel the
// user tracks (even one no device subscribes to), a read on any device or by the backend, a
// withdrawal, a time-to-live running out - on SSE (event: unread), iframe, /ws ({"op":"unread"})
// and STOMP (a MESSAGE with herald-unread:true); other users are not told; across two nodes
// through Redis a read on one node reaches the devices on the other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withHerald, startHerald, request, openSSE, openIframe, parseMetrics, SCALE } from '../lib/herald.mjs';
import { stompClient } from '../lib/stomp.mjs';
import { API_KEY, authFlags, bearer, mint, keyPublish, wsJson, waitSubs } from '../lib/auth.mjs';
import { startRedis, finishNodes } from '../lib/redis.mjs';

const T = { timeout: 60000 * SCALE };
const tokenOf = (sub) => mint({ sub, subscribe: ['news', 'user/{sub}/#'] });
const sseOpts = (tok) => ({ headers: { Accept: 'text/event-stream', ...bearer(tok) } });

function post(h, p, body, tok = API_KEY) {
  const b = Buffer.from(JSON.stringify(body));
  return request(h, 'POST', p, { headers: { 'Content-Type': 'application/json', 'Content-Length': String(b.length), ...bearer(tok) }, body: b });
}

/* Each device's unread events as {total, channels}, from its own wire format. */
const devices = {
  sse: (s) => async (ms) => {
    for (;;) {
      const e = await s.next(ms);
      if (!e) return null;
      if (e.event === 'unread') return JSON.parse(e.data);
    }
  },
  iframe: (f) => async (ms) => {
    for (;;) {
      const e = await f.next(ms);
      if (!e) return null;
      if (e.unread === true) return e;
    }
  },
  ws: (c) => async (ms) => {
    for (;;) {
      const m = await c.json(ms);
      if (!m) return null;
      if (m.op === 'unread') return m;
    }
  },
  stomp: (sub) => async (ms) => {
    for (;;) {
      const m = await sub.next(ms);
      if (!m) return null;
      if (m.headers['herald-unread'] === 'true') return JSON.parse(m.body);
    }
  },
};

/* Reads unread events until one says total (bounded): events coalesce, so intermediate totals
 * may be skipped, but the last one is the state. */
async function untilTotal(next, total, what, ms = 5000 * SCALE) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await next(Math.max(1, deadline - Date.now())).catch(() => null);
    if (!last) break;
    if (last.total === total) return last;
  }
  assert.fail(`${what}: no unread event with total ${total} (last: ${JSON.stringify(last)})`);
}

test('unread events on SSE, iframe, /ws and STOMP: at subscribe, on publish, on a read by another device or the backend, on a tracked channel, withdrawal and expiry; nobody else is told', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const t42 = await tokenOf('42'), t7 = await tokenOf('7');
    await keyPublish(h, 'user/42', 'before');
    const sse = await openSSE(h, '/sub/@me', sseOpts(t42));
    const ifr = await openIframe(h, `/sub/%40me?mode=iframe&token=${t42}`);
    const ws = await wsJson(h, { token: t42 });
    const st = await stompClient(h, { connectHeaders: { passcode: t42 } });
    const ssub = await st.subscribe('/topic/user/42', { 'herald-unread': 'true' });
    const other = await openSSE(h, '/sub/@me', sseOpts(t7));
    const all = [devices.sse(sse), devices.iframe(ifr), devices.ws(ws), devices.stomp(ssub)];
    const names = ['sse', 'iframe', 'ws', 'stomp'];
    const each = async (total, what) => {
      const got = [];
      for (let i = 0; i < all.length; i++) got.push(await untilTotal(all[i], total, `${names[i]}: ${what}`));
      return got;
    };
    /* at subscribe: the count as it is */
    let got = await each(1, 'at subscribe');
    for (const g of got) {
      assert.equal(g.user, '42');
      assert.deepEqual(g.channels, { broadcast: 0, 'user/42': 1 });
    }
    const o = await devices.sse(other)();
    assert.deepEqual({ user: o.user, total: o.total }, { user: '7', total: 0 });

    /* a publish to the user: +1 on every device */
    await keyPublish(h, 'user/42', 'hello');
    await each(2, 'after a publish');

    /* a read by one device (its token) clears every device */
    let r = await post(h, '/read/user/42', { id: '2' }, t42);
    assert.equal(r.status, 200, r.text);
    got = await each(0, 'after a read');
    assert.deepEqual(got[2].channels, { broadcast: 0, 'user/42': 0 });

    /* a tracked channel nobody here subscribes to: marking it tracks it, its publishes count */
    assert.equal((await post(h, '/read/news', { id: '0' }, t42)).status, 200);
    await keyPublish(h, 'news', 'n1');
    await keyPublish(h, 'news', 'n2');
    got = await each(2, 'after publishes on a tracked channel');
    assert.deepEqual(got[0].channels, { broadcast: 0, 'user/42': 0, news: 2 });

    /* a withdrawal lowers it */
    r = await request(h, 'DELETE', '/channels/news/messages/2', { headers: bearer(API_KEY) });
    assert.equal(r.status, 204, r.text);
    await each(1, 'after a withdrawal');

    /* the backend marks on the user's behalf */
    assert.equal((await post(h, '/read/news?user=42', { id: '1' })).status, 200);
    await each(0, 'after a read by the backend');

    /* a message with a time-to-live counts until it expires */
    assert.equal((await request(h, 'POST', '/pub/user/42?ttl=1', { headers: bearer(API_KEY), body: 'brief' })).status, 200);
    await each(1, 'after a publish with ttl');
    await each(0, 'after its expiry');

    /* the other user heard none of it */
    assert.equal(other.events.filter((e) => e.event === 'unread').length, 1);
    const m = parseMetrics((await request(h, 'GET', '/metrics', { headers: bearer(API_KEY) })).text);
    assert.ok(m.get('herald_unread_events_total') >= 4 * 8, `events: ${m.get('herald_unread_events_total')}`);
    assert.equal(m.get('herald_unread_users_online'), 2);
    assert.equal(m.get('herald_unread_watched_channels'), 2); /* user/42 and news: both have a cursor */
    sse.close();
    ifr.close();
    ws.close();
    await st.close();
    other.close();
    /* nobody online: the watches are let go */
    const until = Date.now() + 5000 * SCALE;
    for (;;) {
      const k = parseMetrics((await request(h, 'GET', '/metrics', { headers: bearer(API_KEY) })).text);
      if (k.get('herald_unread_users_online') === 0 && k.get('herald_unread_watched_channels') === 0) break;
      assert.ok(Date.now() < until, 'the users went offline');
      await new Promise((res) => setTimeout(res, 20));
    }
  });
});

test('a second device gets the count when it subscribes, the first hears nothing of it; after a burst of publishes the last event holds the whole count', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const t42 = await tokenOf('42');
    const a = await openSSE(h, '/sub/@me', sseOpts(t42));
    const ua = devices.sse(a);
    await untilTotal(ua, 0, 'first device');
    await Promise.all(Array.from({ length: 50 }, (_, i) => keyPublish(h, 'user/42', `m${i}`)));
    await untilTotal(ua, 50, 'first device after the burst');
    const unreadEvents = a.events.filter((e) => e.event === 'unread').length;
    assert.ok(unreadEvents <= 51, `at most one event per publish: ${unreadEvents}`);
    const before = a.events.filter((e) => e.event === 'unread').length;
    const b = await openSSE(h, '/sub/@me', sseOpts(t42));
    await untilTotal(devices.sse(b), 50, 'second device at subscribe');
    b.close();
    await waitSubs(h, 'user/42', 1);
    await keyPublish(h, 'user/42', 'after');
    await untilTotal(ua, 51, 'first device after one more');
    /* the second device coming and going told the first nothing new: one event, for the publish */
    assert.equal(a.events.filter((e) => e.event === 'unread').length, before + 1);
    a.close();
  });
});

test('two nodes over Redis: a read on node A clears the badge of a device on node B; a publish on A reaches B\'s count', T, async () => {
  const redis = await startRedis();
  const flags = { engine: 'redis', redis: redis.addr, ...authFlags() };
  const a = await startHerald(flags);
  const b = await startHerald(flags);
  const nodes = [a, b];
  try {
    const t42 = await tokenOf('42');
    const onB = await openSSE(b, '/sub/@me', sseOpts(t42));
    const ub = devices.sse(onB);
    await untilTotal(ub, 0, 'node B at subscribe');
    await waitSubs(b, 'user/42');
    await keyPublish(a, 'user/42', 'one');
    await keyPublish(a, 'user/42', 'two');
    await untilTotal(ub, 2, 'node B after publishes on node A');
    /* tracked on A, published on A: B watches it too */
    assert.equal((await post(a, '/read/news', { id: '0' }, t42)).status, 200);
    await keyPublish(a, 'news', 'n1');
    await untilTotal(ub, 3, 'node B after a publish on a tracked channel');
    const r = await post(a, '/read/user/42', { id: '2' }, t42);
    assert.equal(r.status, 200, r.text);
    await untilTotal(ub, 1, 'node B after a read on node A');
    /* and B's GET /unread agrees */
    const u = await request(b, 'GET', '/unread', { headers: bearer(t42) });
    assert.deepEqual(u.json(), { user: '42', total: 1, channels: { broadcast: 0, 'user/42': 0, news: 1 } });
    onB.close();
    /* the cursors live in Redis: a node started afresh knows them */
    const c = await startHerald(flags);
    nodes.push(c);
    const uc = await request(c, 'GET', '/unread', { headers: bearer(t42) });
    assert.deepEqual(uc.json(), { user: '42', total: 1, channels: { broadcast: 0, 'user/42': 0, news: 1 } });
  } finally {
    await finishNodes(nodes, redis);
  }
});

test('broadcast: POST /publish {"broadcast":true} reaches every /ws user (server-side) and /sub/@all; it counts as unread for every online user; off when broadcast_channel is empty', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const t42 = await tokenOf('42'), t7 = await tokenOf('7');
    const w42 = await wsJson(h, { token: t42 });
    assert.equal(w42.welcome.broadcast, 'broadcast');
    const w7 = await wsJson(h, { token: t7 });
    const all = await openSSE(h, '/sub/@all', sseOpts(t7));
    const feed42 = await openSSE(h, '/sub/@me', sseOpts(t42));
    const u42 = devices.sse(feed42);
    await untilTotal(u42, 0, '42 at subscribe');
    await waitSubs(h, 'broadcast', 3);
    const r = await post(h, '/publish', { broadcast: true, users: ['9'], event: 'notice', data: 'maintenance at 22:00' });
    assert.equal(r.status, 200, r.text);
    const res = r.json().results;
    assert.deepEqual(res[1], { broadcast: true, channel: 'broadcast', id: '1', subscribers: 3 });
    assert.equal(res[0].channel, 'user/9');
    for (const c of [w42, w7]) {
      let m;
      do m = await c.json(); while (m.op !== 'message');
      assert.deepEqual([m.channel, m.event, m.data], ['broadcast', 'notice', 'maintenance at 22:00']);
    }
    const e = await all.next();
    assert.deepEqual([e.event, e.data], ['notice', 'maintenance at 22:00']);
    const got = await untilTotal(u42, 1, '42 after a broadcast');
    assert.deepEqual(got.channels, { broadcast: 1, 'user/42': 0 });
    /* marking it read clears it for that user only */
    assert.equal((await post(h, '/read/broadcast', { id: '1' }, t42)).status, 200);
    await untilTotal(u42, 0, '42 after reading the broadcast');
    assert.equal((await request(h, 'GET', '/unread', { headers: bearer(t7) })).json().total, 1);
    /* a token may not publish to it without the permission: 403 */
    assert.equal((await post(h, '/publish', { broadcast: true, data: 'x' }, t42)).status, 403);
    assert.equal((await post(h, '/publish', { broadcast: 'yes', data: 'x' })).status, 400);
    for (const c of [w42, w7]) c.close();
    all.close();
    feed42.close();
  });
  await withHerald(authFlags({ broadcast_channel: '' }), async (h) => {
    const r = await post(h, '/publish', { broadcast: true, data: 'x' });
    assert.equal(r.status, 400);
    assert.match(r.text, /broadcast is off/);
    const t42 = await tokenOf('42');
    const w = await wsJson(h, { token: t42 });
    assert.equal(w.welcome.broadcast, undefined);
    assert.deepEqual((await request(h, 'GET', '/unread', { headers: bearer(t42) })).json().channels, { 'user/42': 0 });
    w.close();
  });
});
