// Issue 13 parts 1 and 6, the user side: personal feeds without naming them (/ws subscribes an
// authenticated connection to its user channel itself; GET /sub/@me in every /sub mode), only
// the user can read them; the admin API on users (GET /users/{id}, POST /users/{id}/disconnect,
// POST /users/{id}/unsubscribe) with real clients on SSE, iframe, WebSocket /sub, /ws, STOMP
// and MQTT 5, refused without an API key; a disconnect reaching another node through Redis
// within a second.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  withHerald, startHerald, request, openSSE as openSSE_, openIframe as openIframe_, getJSON, waitFor, withTimeout, parseMetrics, SCALE,
} from '../lib/herald.mjs';
import { openWS, wsURL, stompClient } from '../lib/stomp.mjs';
import { mq, tcpURL } from '../lib/mqttjs.mjs';
import { API_KEY, authFlags, bearer, mint, keyPublish, wsJson, waitSubs, assert401 } from '../lib/auth.mjs';
import { startRedis, finishNodes } from '../lib/redis.mjs';

const T = { timeout: 60000 * SCALE };
/* unread events (35-unread tests them) are passed over here */
const openSSE = (h, p, o = {}) => openSSE_(h, p, { skip: ['unread'], ...o });
const openIframe = (h, p, o = {}) => openIframe_(h, p, { skip: ['unread'], ...o });
const tokenOf = (sub) => mint({ sub, subscribe: ['news', 'user/{sub}/#'] });

/* POST path with a JSON body and the API key (or the headers given). */
function postJSON(h, path, body, headers = bearer(API_KEY)) {
  const b = Buffer.from(JSON.stringify(body));
  return request(h, 'POST', path, { headers: { 'Content-Type': 'application/json', 'Content-Length': String(b.length), ...headers }, body: b });
}

async function userStatus(h, id) {
  const r = await request(h, 'GET', `/users/${id}`, { headers: bearer(API_KEY) });
  assert.equal(r.status, 200, r.text);
  return r.json();
}

/* Bounded wait until GET /users/{id} shows n connections in total. */
async function waitConns(h, id, n) {
  await waitFor(async () => Object.values((await userStatus(h, id)).connections).reduce((a, b) => a + b, 0) === n,
    5000 * SCALE, `${n} connection(s) of user ${id}`, 15);
}

/* The next /ws message that is not a reply (bounded). */
async function push(c, ms = 3000 * SCALE) {
  for (;;) {
    const m = await c.json(ms);
    if (!m || (m.op !== 'reply' && m.op !== 'unread')) return m;
  }
}

test('/ws: an authenticated connection gets its personal feed without subscribing; nobody else does', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const t42 = await tokenOf('42'), t7 = await tokenOf('7');
    const a = await wsJson(h, { token: t42 });
    assert.equal(a.welcome.user, '42');
    assert.equal(a.welcome.feed, 'user/42');
    const b = await wsJson(h, { token: t7 });
    assert.equal(b.welcome.feed, 'user/7');
    const anon = await wsJson(h);
    assert.equal(anon.welcome.feed, undefined);
    await waitSubs(h, 'user/42');
    await keyPublish(h, 'user/42', 'for 42');
    const m = await push(a);
    assert.equal(m.op, 'message');
    assert.equal(m.channel, 'user/42');
    assert.equal(m.data, 'for 42');
    /* the auth op of an anonymous connection subscribes it too, and says so */
    const { reply } = await anon.call({ op: 'auth', token: t42 });
    assert.equal(reply.ok, true);
    assert.equal(reply.feed, 'user/42');
    await waitSubs(h, 'user/42', 2);
    /* a token refresh changes nothing: still one feed subscription */
    assert.equal((await a.call({ op: 'auth', token: t42 })).reply.feed, 'user/42');
    /* subscribing to the feed by name takes it over (with its own last_id), no error */
    const sub = await a.call({ op: 'subscribe', channel: 'user/42', last_id: '0' });
    assert.equal(sub.reply.ok, true, JSON.stringify(sub.reply));
    assert.equal((await push(a)).data, 'for 42'); /* replayed from 0 */
    await keyPublish(h, 'user/42', 'second');
    assert.equal((await push(a)).data, 'second');
    assert.equal((await push(anon)).data, 'second');
    await keyPublish(h, 'user/7', 'for 7');
    const m7 = await push(b);
    assert.equal(m7.data, 'for 7');
    while (a.pending()) assert.notEqual((await a.json()).op, 'message', "7's message reached nobody else");
    /* another user cannot name 42's channel */
    const deny = await b.call({ op: 'subscribe', channel: 'user/42' });
    assert.equal(deny.reply.ok, false);
    assert.equal(deny.reply.error.code, 'forbidden');
    for (const c of [a, b, anon]) c.close();
  });
});

test('GET /sub/@me: SSE, poll, long poll, iframe, WebSocket and inside a list; 401 without a user; only the user reads it', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const t42 = await tokenOf('42'), t7 = await tokenOf('7');
    await keyPublish(h, 'user/42', 'one');
    const poll = await getJSON(h, '/sub/@me?mode=poll&last_id=0', { headers: bearer(t42) });
    assert.equal(poll.messages.length, 1);
    assert.equal(poll.messages[0].channel, 'user/42');
    assert.equal(poll.messages[0].data, 'one');
    const multi = await getJSON(h, '/sub/news,@me?mode=poll&last_id=0,0', { headers: bearer(t42) });
    assert.deepEqual(multi.messages.map((x) => x.channel), ['user/42']);
    const sse = await openSSE(h, '/sub/@me', { headers: { Accept: 'text/event-stream', ...bearer(t42) } });
    assert.equal(sse.status, 200);
    const ifr = await openIframe(h, `/sub/%40me?mode=iframe&token=${t42}`);
    const ws = await openWS(wsURL(h, `/sub/@me?token=${t42}`));
    await waitSubs(h, 'user/42', 3);
    const lp = getJSON(h, '/sub/@me?mode=longpoll', { headers: bearer(t42) });
    await waitSubs(h, 'user/42', 4);
    await keyPublish(h, 'user/42', 'two');
    assert.equal((await sse.next()).data, 'two');
    assert.equal((await ifr.next()).data, 'two');
    assert.equal((await ws.next(3000 * SCALE)).data.toString(), 'two');
    assert.equal((await lp).messages[0].data, 'two');
    /* no user: 401; another user's token reads its own feed, and cannot name 42's */
    const r = await request(h, 'GET', '/sub/@me?mode=poll');
    assert.equal(r.status, 401, r.text);
    const rk = await request(h, 'GET', '/sub/@me?mode=poll', { headers: bearer(API_KEY) });
    assert.equal(rk.status, 401, rk.text);
    const own = await getJSON(h, '/sub/@me?mode=poll&last_id=0', { headers: bearer(t7) });
    assert.deepEqual(own.messages, []);
    assert.equal(own.channel, 'user/7');
    const other = await request(h, 'GET', '/sub/user/42?mode=poll', { headers: bearer(t7) });
    assert.equal(other.status, 403, other.text);
    sse.close();
    ifr.close();
    ws.close();
  });
});

test('GET /users/{id}: connections by transport, last_seen; admin endpoints refuse without an API key', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const t42 = await tokenOf('42');
    const none = await userStatus(h, '42');
    assert.deepEqual(none, { user: '42', online: false, connections: {}, last_seen: null, node: 'local' });
    const sse = await openSSE(h, '/sub/news', { headers: { Accept: 'text/event-stream', ...bearer(t42) } });
    const j1 = await wsJson(h, { token: t42 });
    const j2 = await wsJson(h, { token: t42 });
    const st = await stompClient(h, { connectHeaders: { passcode: t42 } });
    const m = await mq(tcpURL(h), { protocolVersion: 5, username: 'x', password: t42, clientId: 'u42' });
    const anon = await openSSE(h, '/sub/news', { headers: { Accept: 'text/event-stream', ...bearer(API_KEY) } });
    await waitConns(h, '42', 5);
    const s = await userStatus(h, '42');
    assert.deepEqual(s.connections, { sse: 1, ws_json: 2, stomp: 1, mqtt: 1 });
    assert.equal(s.online, true);
    assert.equal(s.last_seen, null);
    /* refusals: no credential 401, a user's token 403, bad methods 405, unknown action 404 */
    assert401(await request(h, 'GET', '/users/42'), 'GET /users/42 without a key');
    assert.equal((await request(h, 'GET', '/users/42', { headers: bearer(t42) })).status, 403);
    assert401(await postJSON(h, '/users/42/disconnect', {}, {}), 'disconnect without a key');
    assert.equal((await postJSON(h, '/users/42/disconnect', {}, bearer(t42))).status, 403);
    assert401(await postJSON(h, '/users/42/unsubscribe', { channel: 'news' }, {}), 'unsubscribe without a key');
    assert.equal((await request(h, 'GET', '/users/42/disconnect', { headers: bearer(API_KEY) })).status, 405);
    assert.equal((await request(h, 'POST', '/users/42', { headers: bearer(API_KEY) })).status, 405);
    assert.equal((await request(h, 'GET', '/users/42/nope', { headers: bearer(API_KEY) })).status, 404);
    assert.equal((await postJSON(h, '/users/42/disconnect', { reason: 5 })).status, 400);
    assert.equal((await postJSON(h, '/users/42/disconnect', { bogus: 1 })).status, 400);
    assert.equal((await postJSON(h, '/users/42/disconnect', { reason: 'two\nlines' })).status, 400);
    assert.equal((await postJSON(h, '/users/42/disconnect', { reason: 'x'.repeat(201) })).status, 400);
    assert.equal((await postJSON(h, '/users/42/unsubscribe', {})).status, 400);
    assert.equal((await request(h, 'GET', '/users/a%2Fb', { headers: bearer(API_KEY) })).status, 400);
    assert.equal((await userStatus(h, '42')).online, true); /* none of that touched anything */
    sse.close();
    j1.close();
    j2.close();
    await st.close();
    await m.end();
    await waitConns(h, '42', 0);
    const off = await userStatus(h, '42');
    assert.equal(off.online, false);
    assert.match(off.last_seen, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(Math.abs(Date.parse(off.last_seen) - Date.now()) < 60000);
    const mt = parseMetrics((await request(h, 'GET', '/metrics', { headers: bearer(API_KEY) })).text);
    assert.equal(mt.get('herald_users_offline'), 1);
    assert.equal(mt.get('herald_users_online'), 0);
    anon.close();
  });
});

test('POST /users/{id}/disconnect ends SSE, iframe, /ws, WebSocket /sub, STOMP and MQTT with their goodbyes, not another user', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const t42 = await tokenOf('42'), t7 = await tokenOf('7');
    const sse = await openSSE(h, '/sub/@me', { headers: { Accept: 'text/event-stream', ...bearer(t42) } });
    const ifr = await openIframe(h, `/sub/news?mode=iframe&token=${t42}`);
    const j = await wsJson(h, { token: t42 });
    const wsub = await openWS(wsURL(h, `/sub/news?token=${t42}`));
    const st = await stompClient(h, { connectHeaders: { passcode: t42 } });
    const m5 = await mq(tcpURL(h), { protocolVersion: 5, username: 'x', password: t42, clientId: 'm42' });
    const m3 = await mq(tcpURL(h), { protocolVersion: 4, username: 'x', password: t42, clientId: 'm42b' });
    const other = await openSSE(h, '/sub/@me', { headers: { Accept: 'text/event-stream', ...bearer(t7) } });
    const otherJ = await wsJson(h, { token: t7 });
    await waitConns(h, '42', 7);
    await waitConns(h, '7', 2);
    const r = await postJSON(h, '/users/42/disconnect', { reason: 'logged out <elsewhere>', reconnect: false });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json(), { disconnected: 7, cluster: false });
    const ev = await sse.next();
    assert.equal(ev.event, 'disconnect');
    assert.deepEqual(JSON.parse(ev.data), { reason: 'logged out <elsewhere>', reconnect: false });
    assert.equal(await sse.next(), null); /* the stream ended */
    assert.deepEqual(await ifr.next(), { disconnect: true, reason: 'logged out <elsewhere>', reconnect: false });
    assert.equal(await ifr.next(), null);
    assert.deepEqual(await push(j), { op: 'disconnect', reason: 'logged out <elsewhere>', reconnect: false });
    assert.deepEqual(await j.waitClosed(), { code: 4001, reason: 'logged out <elsewhere>' });
    assert.deepEqual(await wsub.waitClosed(), { code: 4001, reason: 'logged out <elsewhere>' });
    await waitFor(() => st.errors.length === 1 && st.closes.length === 1, 5000 * SCALE, 'STOMP ERROR and close');
    assert.equal(st.errors[0].headers.message, 'disconnected');
    assert.deepEqual(JSON.parse(st.errors[0].body), { reason: 'logged out <elsewhere>', reconnect: false });
    assert.equal(st.closes[0].code, 4001);
    await waitFor(() => m5.closed && m3.closed, 5000 * SCALE, 'MQTT connections closed');
    assert.equal(m5.disconnects.length, 1);
    assert.equal(m5.disconnects[0].reasonCode, 0x98);
    assert.equal(m5.disconnects[0].properties?.reasonString, 'logged out <elsewhere>');
    assert.equal(m3.disconnects.length, 0); /* 3.1.1: the connection just closes */
    /* user 7 is untouched */
    await keyPublish(h, 'user/7', 'still here');
    assert.equal((await other.next()).data, 'still here');
    assert.equal((await push(otherJ)).data, 'still here');
    const s = await userStatus(h, '42');
    assert.equal(s.online, false);
    assert.notEqual(s.last_seen, null);
    assert.equal((await userStatus(h, '7')).online, true);
    /* reconnect: true: SSE gets a retry hint, /ws closes with 4002 */
    const sse2 = await openSSE(h, '/sub/@me', { headers: { Accept: 'text/event-stream', ...bearer(t42) } });
    const j2 = await wsJson(h, { token: t42 });
    await waitConns(h, '42', 2);
    const r2 = await postJSON(h, '/users/42/disconnect', { reconnect: true });
    assert.deepEqual(r2.json(), { disconnected: 2, cluster: false });
    const ev2 = await sse2.next();
    assert.deepEqual(JSON.parse(ev2.data), { reason: 'disconnected', reconnect: true });
    assert.ok(Number(sse2.retry) > 0, `retry hint: ${sse2.retry}`);
    assert.equal((await push(j2)).reconnect, true);
    assert.equal((await j2.waitClosed()).code, 4002);
    /* nobody left: 0 */
    assert.deepEqual((await postJSON(h, '/users/42/disconnect', {})).json(), { disconnected: 0, cluster: false });
    other.close();
    otherJ.close();
    await st.close();
    await m5.end();
    await m3.end();
  });
});

test('POST /users/{id}/unsubscribe ends that channel on every transport of the user', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const t42 = await tokenOf('42'), t7 = await tokenOf('7');
    const only = await openSSE(h, '/sub/news', { headers: { Accept: 'text/event-stream', ...bearer(t42) } });
    const multi = await openSSE(h, '/sub/news,@me', { headers: { Accept: 'text/event-stream', ...bearer(t42) } });
    const j = await wsJson(h, { token: t42 });
    assert.equal((await j.call({ op: 'subscribe', channel: 'news' })).reply.ok, true);
    const st = await stompClient(h, { connectHeaders: { passcode: t42 } });
    const ssub = await st.subscribe('/topic/news');
    const m5 = await mq(tcpURL(h), { protocolVersion: 5, username: 'x', password: t42, clientId: 'u42' });
    await m5.sub('news');
    await m5.sub('user/42');
    const o7 = await openSSE(h, '/sub/news', { headers: { Accept: 'text/event-stream', ...bearer(t7) } });
    await waitSubs(h, 'news', 5); /* MQTT subscriptions are counted apart (the topic tree) */
    const r = await postJSON(h, '/users/42/unsubscribe', { channel: 'news' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json(), { unsubscribed: 5, cluster: false });
    const e1 = await only.next();
    assert.equal(e1.event, 'unsubscribed');
    assert.deepEqual(JSON.parse(e1.data), { channel: 'news', reason: 'admin' });
    assert.equal(await only.next(), null); /* its only channel: the stream ended */
    assert.equal((await multi.next()).event, 'unsubscribed');
    assert.deepEqual(await push(j), { op: 'unsubscribed', channel: 'news', reason: 'admin' });
    await waitSubs(h, 'news', 1);
    await keyPublish(h, 'news', 'after');
    await keyPublish(h, 'user/42', 'mine');
    assert.equal((await o7.next()).data, 'after'); /* the other user kept it */
    const mm = await multi.next();
    assert.equal(mm.data, 'mine'); /* the multi-channel stream goes on with its other channel */
    const jm = await push(j);
    assert.equal(jm.channel, 'user/42');
    const q = await m5.next();
    assert.equal(q.topic, 'user/42');
    assert.equal(ssub.pending(), 0);
    assert.equal(m5.pending(), 0);
    only.close();
    multi.close();
    o7.close();
    j.close();
    await st.close();
    await m5.end();
  });
});

test('two nodes with Redis: a disconnect on one node ends the user\'s streams on the other within a second', T, async () => {
  const redis = await startRedis();
  const nodes = [];
  let failure = null;
  try {
    for (let i = 0; i < 2; i++) nodes.push(await startHerald({ engine: 'redis', redis: redis.addr, ...authFlags() }));
    const [a, b] = nodes;
    const t42 = await tokenOf('42'), t7 = await tokenOf('7');
    const sse = await openSSE(b, '/sub/@me', { headers: { Accept: 'text/event-stream', ...bearer(t42) } });
    const j = await wsJson(b, { token: t42 });
    const m5 = await mq(tcpURL(b), { protocolVersion: 5, username: 'x', password: t42, clientId: 'c42' });
    const o7 = await openSSE(b, '/sub/@me', { headers: { Accept: 'text/event-stream', ...bearer(t7) } });
    await waitConns(b, '42', 3);
    /* GET /users answers for every node (issue 13 part 5: the status goes through Redis) */
    const sa = await userStatus(a, '42');
    assert.deepEqual([sa.online, sa.connections, sa.nodes], [true, { sse: 1, ws_json: 1, mqtt: 1 }, 1]);
    const t0 = Date.now();
    const r = await postJSON(a, '/users/42/disconnect', { reason: 'banned' });
    assert.deepEqual(r.json(), { disconnected: 0, cluster: true });
    const ev = await sse.next(1000 * SCALE);
    assert.equal(ev.event, 'disconnect');
    assert.equal(await sse.next(1000 * SCALE), null);
    assert.equal((await push(j, 1000 * SCALE)).op, 'disconnect');
    assert.equal((await j.waitClosed(1000 * SCALE)).code, 4001);
    await waitFor(() => m5.closed, 1000 * SCALE, 'MQTT closed');
    assert.equal(m5.disconnects[0]?.reasonCode, 0x98);
    const took = Date.now() - t0;
    assert.ok(took < 1000 * SCALE, `ended on the other node in ${took} ms`);
    /* unsubscribe goes across too */
    const j2 = await wsJson(b, { token: t42 });
    await waitConns(b, '42', 1);
    const ru = await postJSON(a, '/users/42/unsubscribe', { channel: 'user/42' });
    assert.deepEqual(ru.json(), { unsubscribed: 0, cluster: true });
    assert.deepEqual(await push(j2, 1000 * SCALE), { op: 'unsubscribed', channel: 'user/42', reason: 'admin' });
    /* user 7 untouched */
    await keyPublish(a, 'user/7', 'hi 7');
    assert.equal((await o7.next(3000 * SCALE)).data, 'hi 7');
    o7.close();
    j2.close();
    await m5.end();
  } catch (e) {
    failure = e;
  }
  await finishNodes(nodes, redis, failure, { tail: 1200 });
});

test('GET /channels: the channels this node holds, by prefix, paged by name; admin only', T, async () => {
  await withHerald(authFlags(), async (h) => {
    for (const c of ['room/b', 'room/a', 'room/c', 'room/a/x', 'other']) await keyPublish(h, c, 'x');
    await keyPublish(h, 'room/a', 'y');
    const t42 = await tokenOf('42');
    const sse = await openSSE(h, '/sub/@me', { headers: { Accept: 'text/event-stream', ...bearer(t42) } });
    await waitSubs(h, 'user/42');
    const get = async (q) => {
      const r = await request(h, 'GET', `/channels${q}`, { headers: bearer(API_KEY) });
      assert.equal(r.status, 200, r.text);
      return r.json();
    };
    const p1 = await get('?prefix=room/&limit=2');
    assert.deepEqual(p1, {
      channels: [{ channel: 'room/a', subscribers: 0, last_id: '2' }, { channel: 'room/a/x', subscribers: 0, last_id: '1' }],
      next_cursor: 'room/a/x',
      node: 'local',
    });
    const p2 = await get(`?prefix=room/&limit=2&cursor=${encodeURIComponent(p1.next_cursor)}`);
    assert.deepEqual(p2.channels.map((c) => c.channel), ['room/b', 'room/c']);
    assert.equal(p2.next_cursor, null);
    const all = await get('');
    assert.deepEqual(all.channels.map((c) => c.channel), ['broadcast', 'other', 'room/a', 'room/a/x', 'room/b', 'room/c', 'user/42']);
    assert.equal(all.channels.find((c) => c.channel === 'user/42').subscribers, 1);
    assert.deepEqual((await get('?prefix=nope')).channels, []);
    assert401(await request(h, 'GET', '/channels'), 'GET /channels without a key');
    assert.equal((await request(h, 'GET', '/channels', { headers: bearer(t42) })).status, 403);
    for (const q of ['?limit=0', '?limit=1001', '?limit=x', `?prefix=${'a'.repeat(300)}`])
      assert.equal((await request(h, 'GET', `/channels${q}`, { headers: bearer(API_KEY) })).status, 400, q);
    assert.equal((await request(h, 'POST', '/channels', { headers: bearer(API_KEY) })).status, 405);
    sse.close();
  });
});
