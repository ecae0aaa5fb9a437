// The Redis engine off the critical path (engine = redis): no Redis command blocks herald's event
// loop. With a real redis-server of our own (free loopback port, stopped by PID): while Redis is
// paused (CLIENT PAUSE), the node goes on serving everything that does not need Redis (health,
// heartbeats, WebSocket pings, long polls answered from history) and its publishes wait, then
// complete in order, none lost or duplicated; a channel first used meanwhile answers once Redis
// does; a command unanswered for redis_timeout fails cleanly (503) and the connection is made
// again; redis_max_inflight bounds what waits (503 at once beyond it, counted, logged once).
// Redis that lost its data (FLUSHALL) is noticed through the data epoch: subscribers get a gap
// notice rather than ids going back. Security and deployment: requirepass and an ACL user with the
// minimal rules the README gives (a wrong password refused at start-up, never printed or logged),
// redis_db and redis_prefix keeping deployments apart on one Redis, and Sentinel: a real failover
// (master killed) after which herald publishes through the new master.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  startHerald, request, getJSON, openSSE, waitFor, withTimeout, run, metrics, tryPublish, HERALD_BIN, SCALE, freePort,
} from '../lib/herald.mjs';
import { startRedis, startSentinel, sentinelCommand, finishNodes } from '../lib/redis.mjs';
import { openWS, wsURL } from '../lib/stomp.mjs';
import { mq, tcpURL } from '../lib/mqttjs.mjs';

const T = { timeout: 60000 * SCALE };
const UNAVAILABLE = 'publish failed: redis is unavailable';


async function publishOk(h, ch, data) {
  const r = await tryPublish(h, ch, data);
  assert.equal(r.status, 200, `publish ${data}: ${r.text}`);
  return r.json;
}

/* Runs fn(redis, node) with a redis-server and a node(flags) starter; every node must stop cleanly
 * (exit 0: under ASan, no leak), also when fn throws (their output is added to the error). */
async function withRedis(opts, fn) {
  const redis = await startRedis(opts);
  const nodes = [];
  const node = async (flags = {}) => {
    const h = await startHerald({ engine: 'redis', redis: redis.addr, ...flags });
    nodes.push(h);
    return h;
  };
  let failure = null;
  try {
    await fn(redis, node);
  } catch (e) {
    failure = e;
  }
  await redis.cli('client', 'unpause').catch(() => {});
  await finishNodes(nodes, redis, failure);
}

const ids = (evs) => evs.map((e) => e.id);
const range = (a, b) => [...Array(b - a + 1)].map((_, i) => String(a + i));

/* ---------------------------------------------------------------- a paused Redis */

test('Redis paused: the node keeps serving (healthz, SSE heartbeats, WebSocket pings, a long poll from history) while its publishes wait; then they complete in order, none lost or duplicated', T, async () => {
  await withRedis({}, async (redis, node) => {
    const h = await node({ 'redis-timeout': 30, 'sse-heartbeat': 0.2 });
    const ch = 'async/paused';
    for (let i = 1; i <= 3; i++) await publishOk(h, ch, `m${i}`);
    const sse = await openSSE(h, `/sub/${ch}`, { headers: { 'Last-Event-ID': '3' } });
    const ws = await openWS(wsURL(h, `/sub/${ch}`));
    await waitFor(async () => (await getJSON(h, `/channels/${ch}`)).subscribers === 2, 5000 * SCALE, 'both subscribed');

    const pauseMs = 2500 * SCALE;
    await redis.cli('client', 'pause', String(pauseMs), 'all');
    const pubs = range(1, 5).map((i) => tryPublish(h, ch, `p${i}`, { timeout: pauseMs + 10000 * SCALE }));
    let settled = 0;
    pubs.forEach((p) => p.then(() => settled++, () => settled++));
    await waitFor(async () => (await metrics(h)).get('herald_redis_commands_in_flight') >= 5, 2000 * SCALE, 'the publishes sent to the paused Redis');

    /* everything that does not need Redis is served at once meanwhile */
    let t = Date.now();
    const hz = await request(h, 'GET', '/healthz');
    assert.equal(hz.status, 200);
    assert.ok(Date.now() - t < 500 * SCALE, `GET /healthz answered in ${Date.now() - t} ms while Redis is paused`);
    t = Date.now();
    const lp = await getJSON(h, `/sub/${ch}?mode=longpoll&last_id=1`);
    assert.deepEqual(lp.messages.map((m) => `${m.id}:${m.data}`), ['2:m2', '3:m3'], 'a long poll answered from history');
    assert.ok(Date.now() - t < 500 * SCALE, `the long poll answered in ${Date.now() - t} ms`);
    const beats = sse.comments;
    await waitFor(() => sse.comments >= beats + 2, 2000 * SCALE, 'SSE heartbeats while Redis is paused');
    t = Date.now();
    await withTimeout(new Promise((res) => {
      ws.ws.once('pong', res);
      ws.ws.ping();
    }), 1000 * SCALE, 'a WebSocket pong while Redis is paused');
    assert.ok(Date.now() - t < 500 * SCALE, `pong in ${Date.now() - t} ms`);
    assert.equal(settled, 0, 'the publishes are still waiting for Redis');
    assert.equal(sse.events.length, 0, 'nothing delivered before Redis answered');

    /* Redis answers: every publish completes, ids continue without a hole, each delivered once */
    const res = await Promise.all(pubs);
    for (const r of res) assert.equal(r.status, 200, r.text);
    const byId = new Map(res.map((r, i) => [r.json.id, `p${i + 1}`]));
    assert.deepEqual([...byId.keys()].sort((a, b) => a - b), range(4, 8), 'ids 4..8, contiguous');
    const got = await sse.take(5, 5000 * SCALE);
    assert.deepEqual(ids(got), range(4, 8), 'SSE: 4..8 in order');
    for (const e of got) assert.equal(e.data, byId.get(e.id), `id ${e.id} carries the publish answered with it`);
    await waitFor(() => ws.messages.length >= 5, 5000 * SCALE, 'the WebSocket subscriber');
    assert.deepEqual(ws.messages.map((m) => m.data.toString()), got.map((e) => e.data), 'WebSocket: the same, in the same order');
    assert.equal((await publishOk(h, ch, 'after')).id, '9');
    assert.equal((await sse.next()).id, '9', 'no duplicate before the next message');
    sse.close();
    ws.ws.close();
  });
});

test('a channel first used on a node while Redis is paused: its subscribers replay once Redis answers (SSE, short poll), and nothing blocks meanwhile', T, async () => {
  await withRedis({}, async (redis, node) => {
    const A = await node();
    const ch = 'async/cold';
    for (let i = 1; i <= 4; i++) await publishOk(A, ch, `m${i}`);
    const B = await node({ 'redis-timeout': 30 }); /* started after: the channel is cold there */
    const pauseMs = 2000 * SCALE;
    await redis.cli('client', 'pause', String(pauseMs), 'all');
    const t0 = Date.now();
    const sse = await openSSE(B, `/sub/${ch}`, { headers: { 'Last-Event-ID': '2' } });
    assert.equal(sse.status, 200, 'the stream starts at once');
    const poll = getJSON(B, `/sub/${ch}?mode=poll&last_id=1`, { timeout: pauseMs + 10000 * SCALE });
    let polled = false;
    poll.then(() => (polled = true), () => {});
    const hz = await request(B, 'GET', '/healthz');
    assert.equal(hz.status, 200);
    assert.ok(Date.now() - t0 < pauseMs, 'healthz answered while the channel loads');
    assert.equal(sse.events.length, 0);
    assert.equal(polled, false, 'the short poll waits for the channel to load');
    const got = await sse.take(2, pauseMs + 5000 * SCALE);
    assert.deepEqual(got.map((e) => `${e.id}:${e.data}`), ['3:m3', '4:m4'], 'the replay, once loaded: no gap');
    const j = await poll;
    assert.equal(j.gap, false);
    assert.deepEqual(j.messages.map((m) => m.id), ['2', '3', '4'], 'the poll answered with the loaded history');
    assert.equal((await publishOk(A, ch, 'm5')).id, '5');
    assert.deepEqual([(await sse.next(5000 * SCALE)).id], ['5'], 'then live');
    sse.close();
  });
});

test('a command unanswered for redis_timeout fails its publishes cleanly (503) and the connection is made again; none lost, none duplicated, ids contiguous', T, async () => {
  await withRedis({}, async (redis, node) => {
    const h = await node({ 'redis-timeout': 0.5 });
    const ch = 'async/deadline';
    await publishOk(h, ch, 'm1');
    await publishOk(h, ch, 'm2');
    const sse = await openSSE(h, `/sub/${ch}?last_id=2`);
    const pauseMs = 3000 * SCALE;
    await redis.cli('client', 'pause', String(pauseMs), 'all');
    const t0 = Date.now();
    const res = await Promise.all(range(1, 4).map((i) => tryPublish(h, ch, `late${i}`)));
    for (const r of res) {
      assert.equal(r.status, 503, r.text);
      assert.deepEqual(r.json, { error: UNAVAILABLE });
    }
    assert.ok(Date.now() - t0 < pauseMs, `answered (503) before Redis came back: ${Date.now() - t0} ms`);
    await waitFor(() => /commands: no answer from 127\.0\.0\.1:\d+ within 500 ms/.test(h.out), 2000 * SCALE, 'the deadline logged');

    /* Redis back: publishing works again, on a new connection */
    const after = await waitFor(async () => {
      const r = await tryPublish(h, ch, 'after');
      return r.status === 200 ? r.json : null;
    }, pauseMs + 10000 * SCALE, 'a publish to succeed again', 100);
    const last = Number((await publishOk(h, ch, 'sentinel')).id);
    assert.equal(last, Number(after.id) + 1);
    const got = await sse.take(last - 2, 5000 * SCALE);
    assert.deepEqual(ids(got), range(3, last), 'ids contiguous after 2, each once');
    const datas = got.map((e) => e.data);
    assert.equal(datas.filter((d) => d === 'after').length, 1);
    for (let i = 1; i <= 4; i++) assert.ok(datas.filter((d) => d === `late${i}`).length <= 1, `late${i} at most once`);
    assert.ok(got.every((e) => e.event === 'message'), 'no gap notice');
    const m = await metrics(h);
    assert.ok(m.get('herald_redis_timeouts_total{conn="commands"}') >= 1, 'counted');
    assert.ok(m.get('herald_redis_connects_total{conn="commands"}') >= 2, 'the connection was made again');
    sse.close();
  });
});

test('redis_max_inflight: beyond it publishes fail at once with 503 (counted, logged once) instead of queueing; the ones in flight complete', T, async () => {
  await withRedis({}, async (redis, node) => {
    const h = await node({ 'redis-timeout': 30, 'redis-max-inflight': 3 });
    const ch = 'async/limit';
    await publishOk(h, ch, 'm1');
    const pauseMs = 2500 * SCALE;
    await redis.cli('client', 'pause', String(pauseMs), 'all');
    const t0 = Date.now();
    const all = range(1, 8).map((i) => tryPublish(h, ch, `x${i}`, { timeout: pauseMs + 10000 * SCALE }));
    const fast = [];
    all.forEach((p) => p.then((r) => Date.now() - t0 < pauseMs && fast.push(r)));
    await waitFor(() => fast.length >= 1, 2000 * SCALE, 'a publish refused while Redis is paused');
    assert.ok(fast.every((r) => r.status === 503 && r.json?.error === UNAVAILABLE), JSON.stringify(fast));
    const res = await Promise.all(all);
    const ok = res.filter((r) => r.status === 200);
    assert.ok(ok.length >= 1 && ok.length <= 3, `the ones in flight completed (${ok.length})`);
    assert.deepEqual(ok.map((r) => r.json.id).sort((a, b) => a - b), range(2, 1 + ok.length), 'contiguous ids');
    for (const r of res) assert.ok(r.status === 200 || r.status === 503, r.text);
    const m = await metrics(h);
    assert.ok(m.get('herald_redis_refused_total{reason="limit"}') >= 1);
    assert.equal((h.out.match(/redis_max_inflight/g) || []).length, 1, 'logged once');
    await waitFor(async () => (await tryPublish(h, ch, 'again')).status === 200, 5000 * SCALE, 'publishing again', 100);
  });
});

/* ---------------------------------------------------------------- the data epoch */

test('Redis lost its data (FLUSHALL): every node notices (the data epoch), live and resuming subscribers get a gap notice, never ids going back', T, async () => {
  await withRedis({}, async (redis, node) => {
    const A = await node();
    const B = await node();
    const ch = 'async/epoch';
    for (let i = 1; i <= 5; i++) await publishOk(A, ch, `old${i}`);
    const live = await openSSE(B, `/sub/${ch}?last_id=0`);
    assert.deepEqual(ids(await live.take(5)), range(1, 5));
    await redis.cli('flushall');
    assert.equal((await publishOk(A, ch, 'new1')).id, '1', 'redis counts from 1 again');

    const [gap, e] = await live.take(2, 5000 * SCALE);
    assert.equal(gap.event, 'gap', 'the live subscriber on the other node is told first');
    assert.deepEqual(JSON.parse(gap.data), { channel: ch, requested: '5', first_available: '1' });
    assert.deepEqual([e.id, e.data], ['1', 'new1']);
    /* resuming with the old cursor: a gap, then what the new epoch has */
    const j = await getJSON(A, `/sub/${ch}?mode=poll&last_id=5`);
    assert.equal(j.gap, true);
    assert.deepEqual(j.gap_info, [{ channel: ch, requested: '5', first_available: '1' }]);
    assert.deepEqual(j.messages.map((m) => `${m.id}:${m.data}`), ['1:new1']);
    assert.equal(j.last_id, '1');
    const resumed = await openSSE(B, `/sub/${ch}`, { headers: { 'Last-Event-ID': '5' } });
    const [g2, e2] = await resumed.take(2);
    assert.equal(g2.event, 'gap');
    assert.deepEqual([e2.id, e2.data], ['1', 'new1']);
    for (const h of [A, B]) {
      assert.ok((await metrics(h)).get('herald_redis_epoch_changes_total') >= 1);
      assert.match(h.out, /the data epoch changed/);
    }
    live.close();
    resumed.close();
  });
});

/* ---------------------------------------------------------------- security */

const PASSWORD = 'it-redis-pass-0123456789';

/* herald serve that must exit at start-up: {code, out} (bounded) */
async function serveExit(args) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-redis-auth-'));
  try {
    const r = await run(HERALD_BIN, ['serve', '--http', `127.0.0.1:${await freePort()}`, '--mqtt', '', '--data-dir', dir,
      '--engine', 'redis', ...args], { timeout: 10000 * SCALE });
    return { code: r.code, out: r.stderr + r.stdout.toString() };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/* Two nodes publish and subscribe across each other, count presence, and a retained MQTT message
 * published on one is there for a node started later: every kind of command herald sends
 * (scripts, the feed, HGETALL at start-up). */
async function exercise(node, flags, ch) {
  const A = await node(flags);
  const B = await node(flags);
  await publishOk(A, ch, 'one');
  const s = await openSSE(B, `/sub/${ch}?last_id=0`);
  assert.deepEqual((await s.take(1)).map((e) => e.data), ['one']);
  await publishOk(B, ch, 'two');
  assert.deepEqual((await s.take(1)).map((e) => `${e.id}:${e.data}`), ['2:two']);
  await waitFor(async () => (await getJSON(A, `/channels/${ch}`)).subscribers === 1, 5000 * SCALE, 'presence across nodes');
  s.close();
  /* an idempotency key the nodes share (redis_idem.c: a script with SET and GET, then SET) */
  const keyed = (h) => request(h, 'POST', `/pub/${ch}-idem`, { headers: { 'Idempotency-Key': `k-${ch}`, 'Content-Length': '1' }, body: Buffer.from('i') });
  const k1 = await keyed(A), k2 = await keyed(B);
  assert.equal(k1.status, 200, k1.text);
  assert.equal(k2.headers['idempotent-replay'], 'true', k2.text);
  assert.equal(k2.text, k1.text);
  const pub = await mq(tcpURL(A), { clientId: `ret-${A.port}`, protocolVersion: 5 });
  await pub.pub(`${ch}/state`, 'kept', { qos: 1, retain: true });
  await pub.end();
  const C = await node(flags);
  const sub = await mq(tcpURL(C), { clientId: `ret-sub-${C.port}`, protocolVersion: 5 });
  await sub.sub(`${ch}/state`, { qos: 1 });
  const m = await sub.next();
  assert.deepEqual([m.payload, m.packet.retain], ['kept', true], 'the retained message, read at start-up');
  await sub.end();
  return [A, B, C];
}

test('AUTH with requirepass: redis_password and redis_password_file work; a wrong or missing password is refused at start-up with a clear message; the password is never printed or logged', T, async () => {
  await withRedis({ args: ['--requirepass', PASSWORD], auth: { password: PASSWORD } }, async (redis, node) => {
    let x = await serveExit(['--redis', redis.addr, '--redis-password', 'not-the-password']);
    assert.notEqual(x.code, 0);
    assert.match(x.out, /engine = redis: redis at 127\.0\.0\.1:\d+ refused the credentials \(AUTH\): WRONGPASS/);
    assert.doesNotMatch(x.out, /not-the-password/, 'the password is not logged');
    x = await serveExit(['--redis', redis.addr]);
    assert.notEqual(x.code, 0);
    assert.match(x.out, /wants a password \(set redis_password or redis_password_file\): NOAUTH/);
    assert.doesNotMatch(x.out, /Sanitizer|runtime error/);

    const cfg = await run(HERALD_BIN, ['serve', '--print-config', '--redis-password', PASSWORD], { timeout: 5000 * SCALE });
    assert.equal(cfg.code, 0);
    assert.doesNotMatch(cfg.stdout.toString(), new RegExp(PASSWORD), '--print-config never shows it');

    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'herald-pw-')), 'redis.pw');
    fs.writeFileSync(file, `${PASSWORD}\n`, { mode: 0o600 });
    try {
      const [A, B, C] = await exercise(node, { 'redis-password-file': file }, 'auth/file');
      const D = await node({ 'redis-password': PASSWORD });
      assert.equal((await publishOk(D, 'auth/file', 'three')).id, '3');
      for (const h of [A, B, C, D]) assert.doesNotMatch(h.out, new RegExp(PASSWORD), 'never logged');
    } finally {
      fs.rmSync(path.dirname(file), { recursive: true, force: true });
    }
  });
});

/* The ACL rules the README gives for herald's user (prefix herald, db 3). */
const ACL_RULES = ['~herald:*', '&herald:3:m:*', '+eval', '+hgetall', '+select', '+ping', '+role', '+psubscribe',
  '+del', '+srem', '+get', '+set', '+incr', '+xadd', '+xrange', '+hset', '+hdel', '+hget', '+pexpire', '+sadd',
  '+smembers', '+exists', '+publish',
  /* presence and users across nodes (redis_presence.c) */
  '+time', '+zadd', '+zscore', '+zrangebyscore', '+zrange', '+zrem', '+spop', '+hkeys', '+hexists', '+hlen', '+persist',
  '+sismember',
  /* read cursors shared by every node (redis_kv.c) */
  '+hscan'];
/* idempotency keys (redis_idem.c) need nothing more: SET and GET (in a script), SET, DEL */

test('an ACL user (redis_user) with the minimal rules of the README, on redis_db 3: everything works; a wrong password for the user is refused at start-up', T, async () => {
  await withRedis({ args: ['--requirepass', 'admin-pass-0123456789'], auth: { password: 'admin-pass-0123456789' } }, async (redis, node) => {
    assert.equal(await redis.cli('acl', 'setuser', 'herald', 'reset', 'on', `>${PASSWORD}`, ...ACL_RULES), 'OK');
    const flags = { 'redis-user': 'herald', 'redis-password': PASSWORD, 'redis-db': 3 };
    const x = await serveExit(['--redis', redis.addr, '--redis-user', 'herald', '--redis-password', 'wrong-0123456789']);
    assert.notEqual(x.code, 0);
    assert.match(x.out, /refused the credentials \(AUTH as user herald\): WRONGPASS/);
    assert.doesNotMatch(x.out, /wrong-0123456789/);
    const [A, , C] = await exercise(node, flags, 'acl/ch');
    assert.equal(await redis.cli('-n', '3', 'get', 'herald:id:acl/ch'), '2', 'the keys live in db 3');
    assert.equal(await redis.cli('-n', '0', 'exists', 'herald:id:acl/ch'), '0');
    /* a node that has not used the channel loads it with the user's rights */
    const j = await getJSON(C, '/sub/acl/ch?mode=poll&last_id=0');
    assert.deepEqual(j.messages.map((m) => m.data), ['one', 'two']);
    for (const h of [A, C]) assert.doesNotMatch(h.out, /NOPERM|no permissions|failed/, 'no command was refused');
  });
});

test('redis_db and redis_prefix keep deployments on one Redis apart: ids, histories and the pub/sub feed', T, async () => {
  await withRedis({}, async (redis, node) => {
    const X = await node({ 'redis-db': 1 });
    const Y = await node({ 'redis-db': 2 });
    const Z = await node({ 'redis-db': 1, 'redis-prefix': 'other' });
    const ch = 'apart/ch';
    const sY = await openSSE(Y, `/sub/${ch}?last_id=0`);
    const sZ = await openSSE(Z, `/sub/${ch}?last_id=0`);
    assert.equal((await publishOk(X, ch, 'x1')).id, '1');
    assert.equal((await publishOk(X, ch, 'x2')).id, '2');
    assert.equal((await publishOk(Y, ch, 'y1')).id, '1', 'db 2 counts on its own');
    assert.equal((await publishOk(Z, ch, 'z1')).id, '1', 'prefix other counts on its own');
    assert.deepEqual((await sY.take(1)).map((e) => e.data), ['y1'], 'nothing of db 1 reached db 2');
    assert.deepEqual((await sZ.take(1)).map((e) => e.data), ['z1'], 'nothing of prefix herald reached prefix other');
    assert.equal(await redis.cli('-n', '1', 'get', 'other:id:apart/ch'), '1');
    assert.equal(await redis.cli('-n', '1', 'get', 'herald:id:apart/ch'), '2');
    assert.equal(await redis.cli('-n', '2', 'get', 'herald:id:apart/ch'), '1');
    sY.close();
    sZ.close();
  });
});

/* ---------------------------------------------------------------- Sentinel */

test('Sentinel: herald finds the master through redis_sentinel, and after a real failover (master killed) publishes through the new one; subscribers go on', T, async (t) => {
  const cmd = await sentinelCommand();
  if (!cmd) {
    t.skip('redis-sentinel cannot be run here (Debian package redis-sentinel)');
    return;
  }
  const master = await startRedis();
  let replica = null;
  let sentinel = null;
  const nodes = [];
  let failure = null;
  try {
    replica = await startRedis({ args: ['--replicaof', '127.0.0.1', String(master.port)] });
    await waitFor(async () => /master_link_status:up/.test(await replica.cli('info', 'replication')), 10000 * SCALE, 'the replica in sync');
    sentinel = await startSentinel({ cmd, masterPort: master.port });
    await waitFor(async () => (await sentinel.cli('sentinel', 'replicas', 'mymaster')).includes(String(replica.port)), 10000 * SCALE, 'the sentinel to know the replica', 50);
    const flags = { engine: 'redis', 'redis-sentinel': sentinel.addr, 'redis-master-name': 'mymaster', 'redis-timeout': 1 };
    const A = await startHerald(flags);
    nodes.push(A);
    const B = await startHerald(flags);
    nodes.push(B);
    assert.match(A.out, new RegExp(`the sentinels name 127\\.0\\.0\\.1:${master.port} as master 'mymaster'`));
    const ch = 'sentinel/ch';
    const s = await openSSE(B, `/sub/${ch}?last_id=0`);
    for (let i = 1; i <= 3; i++) await publishOk(A, ch, `m${i}`);
    assert.deepEqual(ids(await s.take(3)), range(1, 3));
    assert.equal(await master.cli('wait', '1', '2000'), '1', 'the replica has every write');

    await master.kill();
    await waitFor(async () => (await sentinel.master()) === `127.0.0.1:${replica.port}`, 15000 * SCALE, 'the failover', 100);
    const r = await waitFor(async () => {
      const x = await tryPublish(A, ch, 'after failover');
      if (x.status === 200) return x.json;
      assert.equal(x.status, 503, x.text);
      return null;
    }, 15000 * SCALE, 'a publish through the new master', 100);
    assert.equal(r.id, '4', 'ids continue on the new master');
    assert.deepEqual((await s.take(1, 10000 * SCALE)).map((e) => `${e.id}:${e.data}`), ['4:after failover'], 'the subscriber on the other node goes on');
    assert.equal((await publishOk(B, ch, 'from B')).id, '5');
    assert.equal((await s.next(5000 * SCALE)).id, '5');
    assert.match(A.out, /connected again to 127\.0\.0\.1:\d+ \(the master the sentinels named\)/);
    s.close();
  } catch (e) {
    failure = e;
  }
  const stops = await Promise.allSettled(nodes.map((h) => h.stop()));
  for (const x of [sentinel, replica, master]) if (x) await (x.destroy ? x.destroy() : x.stop()).catch(() => {});
  const bad = stops.filter((x) => x.status === 'rejected').map((x) => x.reason.message);
  if (failure) {
    nodes.forEach((h, i) => (failure.message += `\n--- node ${i} output (tail) ---\n${h.tail(2000)}`));
    if (sentinel) failure.message += `\n--- sentinel log ---\n${sentinel.log.slice(-1500)}`;
    throw failure;
  }
  if (bad.length) throw new Error(bad.join('\n'));
});
