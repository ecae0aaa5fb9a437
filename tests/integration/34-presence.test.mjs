// Issue 13 part 5, presence: GET /channels/{ch}/presence lists who is subscribed (users with
// their connections, anonymous ones counted) on SSE, iframe, WebSocket /sub, /ws, STOMP, MQTT
// over TCP and WebSocket (long polls are not counted); join/leave events reach the channel's
// other subscribers on SSE, iframe, /ws and STOMP when a user's first connection subscribes and
// its last one goes (none for anonymous subscribers); presence off -> 404, per namespace;
// max_presence_users / _entries / _channels; who may ask; and across nodes through Redis: lists
// summed over the nodes, a join on one node seen on another, GET /users/{id} for every node, a
// killed node's entries gone within presence_node_timeout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  withHerald, startHerald, request, openSSE, openIframe, getJSON, waitFor, parseMetrics, run, HERALD_BIN, SCALE,
} from '../lib/herald.mjs';
import { openWS, wsURL, stompClient } from '../lib/stomp.mjs';
import { mq, tcpURL, wsMqttURL } from '../lib/mqttjs.mjs';
import { API_KEY, authFlags, bearer, mint, keyPublish, wsJson } from '../lib/auth.mjs';
import { startRedis, finishNodes } from '../lib/redis.mjs';

const T = { timeout: 60000 * SCALE };
const SSE = { Accept: 'text/event-stream' };
const tok = (sub) => mint({ sub, subscribe: ['room/+', 'quiet/+', 'user/{sub}/#'] });

async function presence(h, ch, headers = bearer(API_KEY)) {
  const r = await request(h, 'GET', `/channels/${ch}/presence`, { headers });
  assert.equal(r.status, 200, `GET /channels/${ch}/presence: ${r.status} ${r.text}`);
  return r.json();
}

/* Bounded wait until the presence of ch satisfies pred; returns it. */
async function waitPresence(h, ch, pred, what) {
  return waitFor(async () => {
    const p = await presence(h, ch);
    if (pred(p)) return p;
    throw new Error(`last answer ${JSON.stringify(p)}`);
  }, 5000 * SCALE, what, 15);
}

/* Presence events and messages of a watcher, the same shape on every transport:
 * {ev: 'join'|'leave'|'message', channel, user, data}. Events of channels the test did not name
 * (a /ws connection's server-side subscriptions: its user feed, broadcast) are passed over. */
function watcher(kind, conn, sub, chans = ['room/1', 'quiet/1', 'news']) {
  const norm = {
    sse: async (ms) => {
      const e = await conn.next(ms);
      if (!e) return null;
      if (e.event === 'join' || e.event === 'leave') return { ev: e.event, ...JSON.parse(e.data) };
      return { ev: 'message', data: e.data };
    },
    iframe: async (ms) => {
      const o = await conn.next(ms);
      if (!o) return null;
      if (o.join || o.leave) return { ev: o.join ? 'join' : 'leave', channel: o.channel, user: o.user };
      return { ev: 'message', data: o.data };
    },
    ws: async (ms) => {
      for (;;) {
        const m = await conn.json(ms);
        if (!m) return null;
        if (m.op === 'join' || m.op === 'leave') return { ev: m.op, channel: m.channel, user: m.user };
        if (m.op === 'message') return { ev: 'message', channel: m.channel, data: m.data };
      }
    },
    stomp: async (ms) => {
      const m = await sub.next(ms);
      if (!m) return null;
      for (const ev of ['join', 'leave'])
        if (m.headers[`herald-${ev}`] === 'true') return { ev, ...JSON.parse(m.body) };
      return { ev: 'message', data: m.body };
    },
  }[kind];
  const next = async (ms) => {
    for (;;) {
      const e = await norm(ms);
      if (!e || e.ev === 'message' || chans.includes(e.channel)) return e;
    }
  };
  return {
    kind,
    /* the next event matching pred (bounded); returns {hit, skipped} */
    async until(pred, what, ms = 5000 * SCALE) {
      const skipped = [];
      const deadline = Date.now() + ms;
      for (;;) {
        const e = await next(Math.max(1, deadline - Date.now())).catch((err) => {
          throw new Error(`${kind} watcher: ${what}: ${err.message}; skipped ${JSON.stringify(skipped)}`);
        });
        if (!e) throw new Error(`${kind} watcher ended waiting for ${what}; skipped ${JSON.stringify(skipped)}`);
        if (pred(e)) return { hit: e, skipped };
        skipped.push(e);
      }
    },
  };
}
const isEv = (ev, user, channel = 'room/1') => (e) => e.ev === ev && e.user === user && e.channel === channel;

test('presence lists users and anonymous subscribers on every transport; long polls do not count; closing uncounts', T, async () => {
  await withHerald(authFlags({ presence: 'true' }), async (h) => {
    const [t42, t7] = await Promise.all([tok('42'), tok('7')]);
    const sse = await openSSE(h, '/sub/room/1', { headers: { ...SSE, ...bearer(t42) } });
    const ifr = await openIframe(h, `/sub/room/1?mode=iframe&token=${t7}`);
    const wsub = await openWS(wsURL(h, `/sub/room/1?token=${t42}`));
    const j42 = await wsJson(h, { token: t42 });
    const j7 = await wsJson(h, { token: t7 });
    for (const j of [j42, j7]) assert.equal((await j.call({ op: 'subscribe', channel: 'room/1' })).reply.ok, true);
    const st = await stompClient(h, { connectHeaders: { passcode: t42 } });
    await st.subscribe('/topic/room/1');
    const m7 = await mq(tcpURL(h), { protocolVersion: 5, username: 'x', password: t7, clientId: 'p7' });
    await m7.sub('room/1');
    const mw = await mq(wsMqttURL(h), { protocolVersion: 4, username: 'x', password: t42, clientId: 'p42' });
    await mw.sub('room/1');
    await mw.sub('room/#'); /* a wildcard filter names no channel: not counted */
    const anon = await openSSE(h, '/sub/room/1', { headers: { ...SSE, ...bearer(API_KEY) } });
    const lp = getJSON(h, '/sub/room/1?mode=longpoll', { headers: bearer(t42) }); /* a request: not counted */
    lp.catch(() => {}); /* awaited below */
    const want = { channel: 'room/1', users: { 42: { connections: 5 }, 7: { connections: 3 } }, anonymous: 1, connections: 9 };
    const p = await waitPresence(h, 'room/1', (x) => x.connections === 9, '9 connections');
    assert.deepEqual(p, want);
    const raw = (await request(h, 'GET', '/channels/room/1/presence', { headers: bearer(API_KEY) })).text;
    assert.ok(raw.indexOf('"42"') < raw.indexOf('"7"'), `users sorted by id (bytes): ${raw}`);
    await keyPublish(h, 'room/1', 'done');
    assert.equal((await lp).messages[0].data, 'done');
    /* each close uncounts its connection */
    sse.close();
    await waitPresence(h, 'room/1', (x) => x.users['42']?.connections === 4, '42 down to 4');
    j7.close();
    await mw.end();
    await waitPresence(h, 'room/1', (x) => x.users['42']?.connections === 3 && x.users['7']?.connections === 2, '42: 3, 7: 2');
    ifr.close();
    await m7.end(); /* the session ends with its connection: 7 is gone */
    const q = await waitPresence(h, 'room/1', (x) => !x.users['7'], '7 gone');
    assert.deepEqual(q, { channel: 'room/1', users: { 42: { connections: 3 } }, anonymous: 1, connections: 4 });
    wsub.close();
    j42.close();
    await st.close();
    anon.close();
    await waitPresence(h, 'room/1', (x) => x.connections === 0, 'nobody left');
    /* the tables empty out (the /ws connections' own feeds, user/42 and user/7, were counted too) */
    await waitFor(async () => {
      const m = parseMetrics((await request(h, 'GET', '/metrics', { headers: bearer(API_KEY) })).text);
      return m.get('herald_presence_channels') === 0 && m.get('herald_presence_entries') === 0;
    }, 3000 * SCALE, 'no channel tracked any more (herald_presence_channels 0)', 15);
  });
});

test('join and leave reach SSE, iframe, /ws and STOMP subscribers: first connection joins, last one leaves; anonymous and MQTT', T, async () => {
  await withHerald(authFlags({ presence: 'true', 'join-leave': 'true' }), async (h) => {
    const [tw1, tw2, tw3, tw4, t42, tx] = await Promise.all(['w1', 'w2', 'w3', 'w4', '42', 'x'].map(tok));
    const w = [];
    w.push(watcher('sse', await openSSE(h, '/sub/room/1', { headers: { ...SSE, ...bearer(tw1) } })));
    const j = await wsJson(h, { token: tw2 });
    assert.equal((await j.call({ op: 'subscribe', channel: 'room/1' })).reply.ok, true);
    w.push(watcher('ws', j));
    const st = await stompClient(h, { connectHeaders: { passcode: tw3 } });
    w.push(watcher('stomp', st, await st.subscribe('/topic/room/1')));
    w.push(watcher('iframe', await openIframe(h, `/sub/room/1?mode=iframe&token=${tw4}`)));
    for (const x of w) await x.until(isEv('join', 'w4'), 'the last watcher\'s join'); /* everyone is in */
    /* 42's first connection: a join for every watcher */
    const a = await openSSE(h, '/sub/room/1', { headers: { ...SSE, ...bearer(t42) } });
    for (const x of w) assert.deepEqual((await x.until((e) => e.ev !== 'message', '42 joins')).hit, { ev: 'join', channel: 'room/1', user: '42' });
    /* a second connection of 42, an anonymous one: nothing; the next event is x's join */
    const b = await wsJson(h, { token: t42 });
    assert.equal((await b.call({ op: 'subscribe', channel: 'room/1' })).reply.ok, true);
    const anon = await openSSE(h, '/sub/room/1', { headers: { ...SSE, ...bearer(API_KEY) } });
    await waitPresence(h, 'room/1', (p) => p.users['42']?.connections === 2 && p.anonymous === 1, '42 twice, one anonymous');
    const xs = await openSSE(h, '/sub/room/1', { headers: { ...SSE, ...bearer(tx) } });
    for (const x of w) assert.deepEqual((await x.until((e) => e.ev !== 'message', 'x joins')).hit, { ev: 'join', channel: 'room/1', user: 'x' });
    /* 42 closes one of two: no leave; x closes: x leaves; then 42's last: 42 leaves */
    a.close();
    await waitPresence(h, 'room/1', (p) => p.users['42']?.connections === 1, '42 once');
    xs.close();
    anon.close();
    for (const x of w) assert.deepEqual((await x.until((e) => e.ev !== 'message', 'x leaves')).hit, { ev: 'leave', channel: 'room/1', user: 'x' });
    b.close();
    for (const x of w) assert.deepEqual((await x.until((e) => e.ev !== 'message', '42 leaves')).hit, { ev: 'leave', channel: 'room/1', user: '42' });
    /* an MQTT client counts (exact filter) and joins and leaves like any other */
    const m = await mq(tcpURL(h), { protocolVersion: 5, username: 'x', password: t42, clientId: 'j42' });
    await m.sub('room/1');
    for (const x of w) await x.until(isEv('join', '42'), 'MQTT 42 joins');
    await m.end();
    for (const x of w) await x.until(isEv('leave', '42'), 'MQTT 42 leaves');
    /* the events were never mistaken for messages: a message still comes through as one */
    await keyPublish(h, 'room/1', 'still here');
    for (const x of w) assert.equal((await x.until((e) => e.ev === 'message', 'the message')).hit.data, 'still here');
    j.close();
    await st.close();
  });
});

test('presence per namespace: off -> 404; a namespace\'s keys win; join_leave off there -> no events', T, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-presence-'));
  try {
    const conf = path.join(dir, 'herald.conf');
    fs.writeFileSync(conf, `[presence]\npresence = false\njoin_leave = true\n\n[namespace rooms]\npattern = room/#\npresence = true\n\n[namespace quiet]\npattern = quiet/#\npresence = true\njoin_leave = false\n`);
    const printed = (await run(HERALD_BIN, ['serve', '--config', conf, '--print-config'])).stdout.toString();
    assert.match(printed, /\[namespace quiet\]\npattern = "quiet\/#"[\s\S]*?presence = true\njoin_leave = false\n/);
    await withHerald(authFlags({ config: conf }), async (h) => {
      const [tw, t42] = await Promise.all([tok('w'), tok('42')]);
      const r = await request(h, 'GET', '/channels/news/presence', { headers: bearer(API_KEY) });
      assert.equal(r.status, 404, r.text);
      assert.deepEqual(r.json(), { error: 'presence is not enabled for this channel' });
      assert.equal((await presence(h, 'room/1')).connections, 0);
      /* one watcher on both: 42 joins quiet/1 (no event there), then room/1: the next event is room/1's */
      const x = watcher('sse', await openSSE(h, '/sub/quiet/1,room/1', { headers: { ...SSE, ...bearer(tw) } }));
      await x.until(isEv('join', 'w'), 'the watcher\'s own join on room/1');
      const q = await openSSE(h, '/sub/quiet/1', { headers: { ...SSE, ...bearer(t42) } });
      await waitPresence(h, 'quiet/1', (p) => p.users['42'], '42 on quiet/1');
      const rm = await openSSE(h, '/sub/room/1', { headers: { ...SSE, ...bearer(t42) } });
      const { hit, skipped } = await x.until((e) => e.ev !== 'message', '42 joins room/1');
      assert.deepEqual(hit, { ev: 'join', channel: 'room/1', user: '42' });
      assert.deepEqual(skipped, []);
      /* a channel with join_leave only (global) is tracked for its events but not listed */
      const n1 = watcher('sse', await openSSE(h, '/sub/news', { headers: { ...SSE, ...bearer(API_KEY) } }));
      const n42 = await openSSE(h, '/sub/news', { headers: { ...SSE, ...bearer(await mint({ sub: '42', subscribe: ['news'] })) } });
      assert.deepEqual((await n1.until((e) => e.ev !== 'message', '42 joins news')).hit, { ev: 'join', channel: 'news', user: '42' });
      for (const s of [q, rm, n42]) s.close();
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('limits: max_presence_users cuts the answer ("truncated"), max_presence_entries and _channels stop counting (metric, logged once)', T, async () => {
  await withHerald(authFlags({ presence: 'true', 'max-presence-users': 2, 'max-presence-entries': 3, 'max-presence-channels': 2 }), async (h) => {
    const toks = await Promise.all(['u3', 'u1', 'u2', 'u4'].map(tok));
    const s = [];
    for (const t of toks.slice(0, 3)) s.push(await openSSE(h, '/sub/room/1', { headers: { ...SSE, ...bearer(t) } }));
    const p = await waitPresence(h, 'room/1', (x) => x.connections === 3, '3 users');
    assert.deepEqual(p, { channel: 'room/1', users: { u1: { connections: 1 }, u2: { connections: 1 } }, anonymous: 0, connections: 3, truncated: true });
    /* a fourth user is past max_presence_entries: subscribed, not counted */
    s.push(await openSSE(h, '/sub/room/1', { headers: { ...SSE, ...bearer(toks[3]) } }));
    await keyPublish(h, 'room/1', 'hi');
    assert.equal((await s[3].next()).data, 'hi');
    assert.equal((await presence(h, 'room/1')).connections, 3);
    /* channels: room/1 and room/2 are tracked, room/3 is not */
    s.push(await openSSE(h, '/sub/room/2', { headers: { ...SSE, ...bearer(API_KEY) } }));
    await waitPresence(h, 'room/2', (x) => x.anonymous === 1, 'room/2 tracked');
    s.push(await openSSE(h, '/sub/room/3', { headers: { ...SSE, ...bearer(API_KEY) } }));
    await keyPublish(h, 'room/3', 'hi');
    assert.equal((await s[5].next()).data, 'hi');
    assert.deepEqual(await presence(h, 'room/3'), { channel: 'room/3', users: {}, anonymous: 0, connections: 0 });
    const m = parseMetrics((await request(h, 'GET', '/metrics', { headers: bearer(API_KEY) })).text);
    assert.equal(m.get('herald_presence_refused_total{limit="max_presence_entries"}'), 1);
    assert.equal(m.get('herald_presence_refused_total{limit="max_presence_channels"}'), 1);
    assert.ok(m.get('herald_presence_truncated_total') >= 2, 'every answer cut is counted');
    assert.equal(m.get('herald_presence_channels'), 2);
    assert.equal(m.get('herald_presence_entries'), 3);
    for (const x of s) x.close();
    await waitFor(() => /max_presence_entries \(3\)/.test(h.out) && /max_presence_channels \(2\)/.test(h.out) && /max_presence_users \(2\)/.test(h.out),
      3000 * SCALE, 'each limit logged');
    assert.equal(h.out.match(/more than max_presence_entries/g).length, 1, 'logged once');
  });
});

test('who may read a presence list: an API key or a token allowed to subscribe; 401 / 403 / 405 otherwise', T, async () => {
  await withHerald(authFlags({ presence: 'true' }), async (h) => {
    const ok = await request(h, 'GET', '/channels/room/1/presence', { headers: bearer(await tok('42')) });
    assert.equal(ok.status, 200, ok.text);
    assert.equal((await request(h, 'GET', '/channels/room%2F1/presence', { headers: bearer(API_KEY) })).status, 200);
    const no = await request(h, 'GET', '/channels/room/1/presence', { headers: bearer(await mint({ sub: '9', subscribe: ['other'] })) });
    assert.equal(no.status, 403, no.text);
    assert.equal((await request(h, 'GET', '/channels/room/1/presence')).status, 401);
    const post = await request(h, 'POST', '/channels/room/1/presence', { headers: { ...bearer(API_KEY), 'Content-Length': '0' } });
    assert.equal(post.status, 405, post.text);
    assert.equal((await request(h, 'GET', '/channels/a%20b/presence', { headers: bearer(API_KEY) })).status, 400);
  });
});

test('two nodes with Redis: lists sum every node, joins cross nodes, GET /users sees every node, a killed node stops counting within presence_node_timeout', T, async () => {
  const redis = await startRedis();
  const nodes = [];
  let failure = null;
  try {
    const flags = { engine: 'redis', redis: redis.addr, presence: 'true', 'join-leave': 'true', 'presence-node-timeout': 2, ...authFlags() };
    for (let i = 0; i < 3; i++) nodes.push(await startHerald(flags));
    const [a, b, c] = nodes;
    const [tw, t42, t7] = await Promise.all([tok('w'), tok('42'), tok('7')]);
    const wb = watcher('sse', await openSSE(b, '/sub/room/1', { headers: { ...SSE, ...bearer(tw) } }));
    await wb.until(isEv('join', 'w'), 'the watcher\'s own join');
    /* 42 on node A: the watcher on node B hears of it */
    const ja = await wsJson(a, { token: t42 });
    assert.equal((await ja.call({ op: 'subscribe', channel: 'room/1' })).reply.ok, true);
    assert.deepEqual((await wb.until((e) => e.ev !== 'message', '42 joins on A')).hit, { ev: 'join', channel: 'room/1', user: '42' });
    /* 42 again on node C, 7 on C (STOMP), an anonymous one on A */
    const sc = await openSSE(c, '/sub/room/1', { headers: { ...SSE, ...bearer(t42) } });
    const st = await stompClient(c, { connectHeaders: { passcode: t7 } });
    await st.subscribe('/topic/room/1');
    const anon = await openSSE(a, '/sub/room/1', { headers: { ...SSE, ...bearer(API_KEY) } });
    const { hit, skipped } = await wb.until((e) => e.ev !== 'message', '7 joins on C');
    assert.deepEqual(hit, { ev: 'join', channel: 'room/1', user: '7' });
    assert.deepEqual(skipped, [], '42 on a second node: no second join');
    const want = { channel: 'room/1', users: { 42: { connections: 2 }, 7: { connections: 1 }, w: { connections: 1 } }, anonymous: 1, connections: 5, nodes: 3 };
    for (const n of [a, b, c]) assert.deepEqual(await waitPresence(n, 'room/1', (p) => p.connections === 5, 'every node'), want);
    /* GET /users/{id} answers for every node */
    const u42 = await getJSON(b, '/users/42', { headers: bearer(API_KEY) });
    assert.deepEqual(u42, { user: '42', online: true, connections: { ws_json: 1, sse: 1 }, last_seen: null, nodes: 2 });
    /* the publish answer says its count is the node's */
    const pub = await keyPublish(a, 'room/1', 'to all');
    assert.equal(pub.subscribers_scope, 'node');
    assert.equal((await wb.until((e) => e.ev === 'message', 'the message from A')).hit.data, 'to all');
    /* node C dies without a word: its share stops counting, 7 leaves (42 stays: it is on A) */
    const t0 = Date.now();
    await c.kill9();
    const after = await waitPresence(a, 'room/1', (p) => p.connections === 3, 'C\'s share gone');
    assert.deepEqual(after, { channel: 'room/1', users: { 42: { connections: 1 }, w: { connections: 1 } }, anonymous: 1, connections: 3, nodes: 2 });
    const gone = await wb.until((e) => e.ev !== 'message', '7 leaves', 8000 * SCALE);
    assert.deepEqual(gone.hit, { ev: 'leave', channel: 'room/1', user: '7' });
    const took = Date.now() - t0;
    assert.ok(took < 4000 * SCALE, `C's users left ${took} ms after it died (presence_node_timeout 2 s)`);
    const u7 = await getJSON(a, '/users/7', { headers: bearer(API_KEY) });
    assert.equal(u7.online, false);
    assert.match(u7.last_seen, /^\d{4}-\d\d-\d\dT/);
    assert.deepEqual((await getJSON(a, '/users/42', { headers: bearer(API_KEY) })).connections, { ws_json: 1 });
    /* 42's last connection goes: a leave */
    ja.close();
    assert.deepEqual((await wb.until((e) => e.ev !== 'message', '42 leaves')).hit, { ev: 'leave', channel: 'room/1', user: '42' });
    anon.close();
    sc.close();
    await st.close().catch(() => {});
    /* nodes that stop cleanly take their share with them */
    await Promise.all([a.stop(), b.stop()]);
    assert.equal(await redis.cli('--scan', '--pattern', 'herald:pr:*'), '');
    assert.equal(await redis.cli('zcard', 'herald:pn'), '0');
  } catch (e) {
    failure = e;
  }
  await finishNodes(nodes, redis, failure, { tail: 1500 });
});
