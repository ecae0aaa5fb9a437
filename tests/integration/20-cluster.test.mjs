// The Redis engine (engine = redis): several herald nodes share channels through one real
// redis-server (tests/lib/redis.mjs: a free loopback port, a tmp dir, stopped by PID). Publishers on
// every node and every transport (HTTP, /ws, MQTT, STOMP), subscribers on every node and every
// transport (SSE, WebSocket /sub and /ws, long poll, MQTT over TCP and WebSocket, STOMP) see the
// same ids in the same order; resume from an id seen on another node, also on a node started
// later; MQTT retained messages shared; cluster-wide presence; Redis restarts (503 with the reason
// while it is down, no gap and no duplicate once it is back, catch-up of what a node's feed
// missed); a node killed with kill -9 (its clients resume on another node with no loss); start-up
// without Redis. Every herald must stop cleanly (exit 0; under ASan: no leak).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  startHerald, publish, request, getJSON, openSSE, waitFor, withTimeout, freePort, run, sleep, metrics, tryPublish, HERALD_BIN, SCALE,
} from '../lib/herald.mjs';
import { mq, tcpURL, wsMqttURL } from '../lib/mqttjs.mjs';
import { startRedis, finishNodes } from '../lib/redis.mjs';
import { openWS, wsURL, stompClient } from '../lib/stomp.mjs';

const T = { timeout: 60000 * SCALE };
const UNAVAILABLE = 'publish failed: redis is unavailable';

/* Runs fn({redis, nodes, node}) with a redis-server and opts.nodes herald nodes on it (node(flags)
 * starts another one). Afterwards every node still running must stop cleanly (exit 0), then
 * redis-server is stopped and its dir removed - also when fn throws (the nodes' output is added
 * to the error then). */
async function withCluster(opts, fn) {
  const redis = await startRedis({ aof: opts.aof });
  const nodes = [];
  const node = async (flags = {}) => {
    const h = await startHerald({ engine: 'redis', redis: redis.addr, ...opts.flags, ...flags });
    nodes.push(h);
    return h;
  };
  let failure = null;
  try {
    for (let i = 0; i < (opts.nodes ?? 2); i++) await node();
    await fn({ redis, nodes: [...nodes], node });
  } catch (e) {
    failure = e;
  }
  await finishNodes(nodes, redis, failure, { tail: 1200, logTail: 800 });
}

/* ---------------------------------------------------------------- clients */

/* /ws JSON protocol: json(ms) (next parsed message), call(obj) (sends, returns the reply with its
 * ref; messages that came first are kept in c.msgs), msgs (every op:"message"). */
async function openJ(h) {
  const c = await openWS(wsURL(h, '/ws'), ['herald.v1']);
  c.msgs = [];
  c.replies = [];
  let refN = 0;
  const raw = c.next;
  c.json = async (ms) => {
    const m = await raw(ms);
    return m && JSON.parse(m.data.toString('utf8'));
  };
  const welcome = await c.json();
  assert.equal(welcome.op, 'welcome');
  /* a reader that sorts what comes: messages into msgs, replies to their waiters */
  const waiters = new Map();
  (async () => {
    for (;;) {
      let m;
      try {
        m = await c.json(3600000);
      } catch {
        return;
      }
      if (!m) return;
      if (m.op === 'reply' && waiters.has(m.ref)) {
        waiters.get(m.ref)(m);
        waiters.delete(m.ref);
      } else if (m.op === 'reply') c.replies.push(m);
      else c.msgs.push(m);
    }
  })();
  c.call = (obj) => {
    const ref = `r${++refN}`;
    const p = withTimeout(new Promise((res) => waiters.set(ref, res)), 5000 * SCALE, `/ws reply to ${JSON.stringify(obj)}`);
    c.send(JSON.stringify({ ...obj, ref }));
    return p;
  };
  return c;
}

/* GET /channels/CH on h -> subscribers */
const occupancy = async (h, ch) => (await getJSON(h, `/channels/${ch}`)).subscribers;

/* POST /pub without asserting the status: {status, json} */

const idsOf = (evs) => evs.map((e) => e.id);
const range = (a, b) => [...Array(b - a + 1)].map((_, i) => String(a + i));

/* ---------------------------------------------------------------- tests */

test('3 nodes: publishers on every node and transport, interleaved; every subscriber on every node gets ids 1..N in the same order', T, async () => {
  await withCluster({ nodes: 3 }, async ({ nodes: [A, B, C] }) => {
    const ch = 'cluster/orders';
    const N = 51; /* 50 concurrent publishes + a final sentinel */

    /* subscribers: every transport, every node; the ones with a cursor replay from 0, so none can
     * miss the first messages; MQTT and STOMP are subscribed once their SUBACK/RECEIPT came */
    const subs = {};
    for (const [name, h] of [['sse@A', A], ['sse@B', B], ['sse@C', C]]) {
      const s = await openSSE(h, `/sub/${ch}?last_id=0`);
      subs[name] = { close: () => s.close(), list: () => s.events.map((e) => ({ id: e.id, data: e.data, event: e.event })) };
    }
    for (const [name, h] of [['ws-json@A', A], ['ws-json@C', C]]) {
      const c = await openJ(h);
      const r = await c.call({ op: 'subscribe', channel: ch, last_id: 0 });
      assert.equal(r.ok, true, JSON.stringify(r));
      subs[name] = { close: () => c.close(), list: () => c.msgs.map((m) => ({ id: m.id, data: m.data, event: m.op })) };
    }
    {
      const w = await openWS(wsURL(B, `/sub/${ch}?last_id=0`));
      subs['ws-sub@B'] = { close: () => w.close(), list: () => w.messages.map((m) => ({ data: m.data.toString('utf8') })) };
    }
    for (const [name, url] of [['mqtt@B', tcpURL(B)], ['mqtt-ws@C', wsMqttURL(C)]]) {
      const m = await mq(url, { clientId: `sub-${name}`, protocolVersion: 5 });
      await m.sub(ch, { qos: 1 });
      subs[name] = { close: () => m.end(), list: () => m.q.all.map((x) => ({ data: x.payload, qos: x.packet.qos })) };
    }
    {
      const st = await stompClient(C);
      const s = await st.subscribe(`/topic/${ch}`, { 'last-id': '0' });
      subs['stomp@C'] = { close: () => st.close(), list: () => s.messages.map((m) => ({ id: m.headers['herald-id'], data: m.body })) };
    }
    /* long poll on B, cursor 0, following until the sentinel */
    const lp = [];
    const longpoll = (async () => {
      let cur = '0';
      while (!lp.some((m) => m.data === 'sentinel')) {
        const j = await getJSON(B, `/sub/${ch}?mode=longpoll&last_id=${cur}`, { timeout: 30000 * SCALE });
        assert.equal(j.gap, false);
        lp.push(...j.messages);
        cur = j.last_id;
      }
    })();
    subs['longpoll@B'] = { close: () => {}, list: () => lp.map((m) => ({ id: m.id, data: m.data })) };

    /* publishers: HTTP, /ws, MQTT QoS 1 and STOMP SEND on each of A, B, C */
    const nodes = [A, B, C];
    const pubs = [];
    for (const h of nodes) {
      const j = await openJ(h);
      const m = await mq(tcpURL(h), { clientId: `pub-${h.port}`, protocolVersion: 5 });
      const st = await stompClient(h);
      pubs.push({ h, j, m, st });
    }
    const acked = new Map(); /* data -> id, for the publishes whose answer carries the id */
    const sent = [];
    await Promise.all([...Array(N - 1)].map(async (_, i) => {
      const p = pubs[i % 3];
      const data = `m${i}-node${i % 3}-${['http', 'ws', 'mqtt', 'stomp'][i % 4]}`;
      sent.push(data);
      switch (i % 4) {
        case 0:
          acked.set(data, (await publish(p.h, ch, data)).id);
          break;
        case 1: {
          const r = await p.j.call({ op: 'publish', channel: ch, data });
          assert.equal(r.ok, true, JSON.stringify(r));
          acked.set(data, r.id);
          break;
        }
        case 2:
          await p.m.pub(ch, data, { qos: 1 });
          break;
        default:
          await p.st.publish({ destination: `/topic/${ch}`, body: data });
      }
    }));
    const last = await publish(C, ch, 'sentinel');
    assert.equal(last.id, String(N), 'N publishes, ids 1..N');

    for (const [name, s] of Object.entries(subs)) {
      await waitFor(() => s.list().some((m) => m.data === 'sentinel'), 10000 * SCALE, `the sentinel on ${name}`);
    }
    await longpoll;

    /* the reference order: SSE on A (ids 1..N, no dup, no gap) */
    const ref = subs['sse@A'].list();
    assert.deepEqual(idsOf(ref), range(1, N), 'sse@A: ids 1..N, no duplicate, none missing');
    assert.ok(ref.every((e) => e.event === 'message'), 'no gap notice');
    assert.deepEqual(ref.map((e) => e.data).slice(0, -1).sort(), [...sent].sort(), 'every publish delivered once');
    for (const [data, id] of acked) assert.equal(ref[Number(id) - 1].data, data, `the id answered for ${data} is the one delivered`);
    for (const [name, s] of Object.entries(subs)) {
      const got = s.list();
      assert.deepEqual(got.map((m) => m.data), ref.map((e) => e.data), `${name}: the same messages in the same order`);
      if (got[0].id !== undefined) assert.deepEqual(got.map((m) => m.id), range(1, N), `${name}: the same ids`);
      if (got[0].qos !== undefined) {
        assert.ok(got.every((m) => m.qos === 1), `${name}: QoS 1 (subscribed and published at QoS 1 or over HTTP)`);
      }
    }

    for (const s of Object.values(subs)) await s.close();
    for (const p of pubs) {
      p.j.close();
      await p.m.end();
      await p.st.close();
    }
  });
});

test('resume from an id seen on another node (SSE Last-Event-ID, poll, /ws), also on a node started after the publishes', T, async () => {
  await withCluster({ nodes: 2 }, async ({ nodes: [A, B], node }) => {
    const ch = 'cluster/resume';
    for (let i = 1; i <= 10; i++) await publish(i % 2 ? A : B, ch, `m${i}`);
    const onA = await openSSE(A, `/sub/${ch}?last_id=0`);
    const seen = (await onA.take(10)).map((e) => `${e.id}:${e.data}`);
    assert.deepEqual(seen, range(1, 10).map((i) => `${i}:m${i}`));
    const k = '4'; /* the client saw up to 4 on A */
    const want = range(5, 10).map((i) => `${i}:m${i}`);

    const onB = await openSSE(B, `/sub/${ch}`, { headers: { 'Last-Event-ID': k } });
    assert.deepEqual((await onB.take(6)).map((e) => `${e.id}:${e.data}`), want, 'SSE on B resumes after 4');
    let j = await getJSON(B, `/sub/${ch}?mode=poll&last_id=${k}`);
    assert.equal(j.gap, false);
    assert.deepEqual(j.messages.map((m) => `${m.id}:${m.data}`), want, 'poll on B');
    assert.equal(j.last_id, '10');

    /* a node started after every publish: it loads the channel from Redis on first use */
    const D = await node();
    const onD = await openSSE(D, `/sub/${ch}`, { headers: { 'Last-Event-ID': k } });
    assert.deepEqual((await onD.take(6)).map((e) => `${e.id}:${e.data}`), want, 'SSE on the late node D');
    j = await getJSON(D, `/sub/${ch}?mode=poll&last_id=0`);
    assert.equal(j.gap, false);
    assert.deepEqual(j.messages.map((m) => `${m.id}:${m.data}`), seen, 'the whole history on D');
    const wj = await openJ(D);
    const r = await wj.call({ op: 'subscribe', channel: ch, last_id: '7' });
    assert.deepEqual([r.ok, r.last_id], [true, '10']);
    await waitFor(() => wj.msgs.length >= 3, 5000 * SCALE, '/ws replay on D');
    assert.deepEqual(wj.msgs.map((m) => `${m.id}:${m.data}`), ['8:m8', '9:m9', '10:m10']);

    /* live again: a long poll waiting on D, then a publish on B reaches everyone with id 11 */
    const lp = getJSON(D, `/sub/${ch}?mode=longpoll&last_id=10`, { timeout: 20000 * SCALE });
    await waitFor(async () => (await metrics(D)).get('herald_connections{transport="longpoll"}') >= 1,
      5000 * SCALE, 'the long poll parked on D');
    assert.equal((await publish(B, ch, 'm11')).id, '11');
    const lj = await lp;
    assert.deepEqual(lj.messages.map((m) => `${m.id}:${m.data}`), ['11:m11'], 'long poll on D');
    for (const [name, s] of [['A', onA], ['B', onB], ['D', onD]]) {
      const e = await s.next();
      assert.equal(`${e.id}:${e.data}`, '11:m11', `live on ${name}, nothing before it`);
      s.close();
    }
    await waitFor(() => wj.msgs.length >= 4, 5000 * SCALE, '/ws live on D');
    assert.equal(`${wj.msgs[3].id}:${wj.msgs[3].data}`, '11:m11');
    wj.close();
  });
});

test('MQTT across nodes: retained messages (set, replace, clear) shared, also with a node started later; QoS 1 A -> B', T, async () => {
  await withCluster({ nodes: 2 }, async ({ nodes: [A, B], node }) => {
    /* B has used these channels already (a poll makes them): the first message of a channel a
     * node has never seen is the subject of a separate test below (a server bug) */
    for (const t of ['dev/1/state', 'dev/2/state']) await getJSON(B, `/sub/${t}?mode=poll`);
    const pubA = await mq(tcpURL(A), { clientId: 'ret-pub', protocolVersion: 5 });
    const subB = await mq(tcpURL(B), { clientId: 'live-sub', protocolVersion: 5 });
    await subB.sub('dev/+/state', { qos: 1 });
    await pubA.pub('dev/1/state', 'on', { qos: 1, retain: true, properties: { contentType: 'text/plain' } });
    await pubA.pub('dev/2/state', 'off', { qos: 1, retain: true });
    await pubA.pub('dev/2/state', '', { qos: 1, retain: true }); /* clears it */
    /* the live subscriber on B got all three at QoS 1 (no retain flag on live delivery) */
    const live = [await subB.next(), await subB.next(), await subB.next()];
    assert.deepEqual(live.map((m) => [m.topic, m.payload, m.packet.qos, m.packet.retain]), [
      ['dev/1/state', 'on', 1, false], ['dev/2/state', 'off', 1, false], ['dev/2/state', '', 1, false]]);

    /* a new subscriber on B gets the retained message published on A, and not the cleared one */
    const check = async (h, tag, want) => {
      const s = await mq(tcpURL(h), { clientId: `ret-sub-${tag}`, protocolVersion: 5 });
      await s.sub('dev/+/state', { qos: 1 });
      const m = await s.next();
      assert.deepEqual([m.topic, m.payload, m.packet.retain], ['dev/1/state', want, true], `retained on ${tag}`);
      if (want === 'on') assert.equal(m.packet.properties?.contentType, 'text/plain', 'v5 properties kept through Redis');
      await getJSON(h, `/sub/dev/sync-${tag}/state?mode=poll`); /* (see above) */
      await pubA.pub(`dev/sync-${tag}/state`, 'x', { qos: 1 }); /* a barrier: only this may come next */
      const n = await s.next();
      assert.deepEqual([n.topic, n.packet.retain], [`dev/sync-${tag}/state`, false], `only one retained message on ${tag}`);
      await s.end();
    };
    await check(B, 'B', 'on');
    await pubA.pub('dev/1/state', 'off', { qos: 1, retain: true }); /* replaced on A */
    await waitFor(async () => (await getJSON(B, '/sub/dev/1/state?mode=poll&last_id=0')).last_id === '2', 5000 * SCALE, 'the replacement on B');
    await check(B, 'B2', 'off');
    const D = await node(); /* started after: loads the retained messages from Redis */
    await check(D, 'D', 'off');

    /* QoS 1 over MQTT over WebSocket on D, published over MQTT TCP on A */
    const wsD = await mq(wsMqttURL(D), { clientId: 'ws-sub-D', protocolVersion: 4 });
    await wsD.sub('q1/#', { qos: 1 });
    await getJSON(D, '/sub/q1/x?mode=poll'); /* (see above) */
    const ack = await pubA.pub('q1/x', 'hello', { qos: 1 });
    assert.ok(!ack?.reasonCode, `PUBACK success (${ack?.reasonCode})`);
    const m = await wsD.next();
    assert.deepEqual([m.topic, m.payload, m.packet.qos], ['q1/x', 'hello', 1]);

    await wsD.end();
    await subB.end();
    await pubA.end();
  });
});

test('presence: GET /channels/CH on any node counts the subscribers of every node; leaving, and a clean stop, count down', T, async () => {
  await withCluster({ nodes: 3 }, async ({ nodes: [A, B, C] }) => {
    const ch = 'cluster/occupancy'; /* GET /channels/X/presence is a presence list (34-presence) */
    const a1 = await openSSE(A, `/sub/${ch}`);
    const a2 = await openWS(wsURL(A, `/sub/${ch}`));
    const b1 = await openSSE(B, `/sub/${ch}`);
    const b2 = await openJ(B);
    assert.equal((await b2.call({ op: 'subscribe', channel: ch })).ok, true);
    const bounded = 5000 * SCALE; /* nodes report every second */
    await waitFor(async () => (await occupancy(C, ch)) === 4, bounded, '4 subscribers seen from C (2 on A, 2 on B)');
    await waitFor(async () => (await occupancy(A, ch)) === 4, bounded, '4 seen from A');
    await waitFor(async () => (await occupancy(B, ch)) === 4, bounded, '4 seen from B');
    /* and it stays so across the next reports (no flapping while a node rewrites its counts) */
    const until = Date.now() + 1300;
    const seen = new Set();
    while (Date.now() < until) {
      for (const h of [A, B, C]) seen.add(await occupancy(h, ch));
      await sleep(20);
    }
    assert.deepEqual([...seen], [4], 'the count stays 4 over a report period');

    a1.close();
    a2.close();
    await waitFor(async () => (await occupancy(C, ch)) === 2, bounded, '2 left (on B) seen from C');
    b1.close();
    await waitFor(async () => (await occupancy(A, ch)) === 1, bounded, '1 left seen from A');
    /* a node that stops cleanly leaves the count at once */
    await B.stop(); /* b2 is still subscribed there when B goes */
    assert.equal(await occupancy(C, ch), 0, 'a stopped node is no longer counted');
    assert.equal(await occupancy(A, ch), 0);
    b2.close();
  });
});

test('Redis restart (AOF kept): 503 with the reason meanwhile, local serving goes on; afterwards ids continue, no gap, no duplicate, missed messages caught up', T, async () => {
  await withCluster({ nodes: 2, aof: true }, async ({ redis, nodes: [A, B] }) => {
    const ch = 'cluster/restart';
    const sB = await openSSE(B, `/sub/${ch}?last_id=0`);
    for (let i = 1; i <= 5; i++) await publish(i % 2 ? A : B, ch, `m${i}`);
    assert.deepEqual(idsOf(await sB.take(5)), range(1, 5));
    const mqA = await mq(tcpURL(A), { clientId: 'v5-pub', protocolVersion: 5 });
    const wsB = await openJ(B);

    const failsBefore = (B.out.match(/feed connect to .* failed/g) || []).length;
    await redis.stop();

    /* readiness says so (liveness stays up: the node serves what it holds) */
    await waitFor(async () => (await request(A, 'GET', '/readyz')).status === 503, 5000 * SCALE, '/readyz 503 with Redis down', 50);
    assert.deepEqual(JSON.parse((await request(A, 'GET', '/readyz')).text),
      { status: 'not ready', store: 'ok', engine: 'redis down' });
    assert.equal((await request(A, 'GET', '/healthz')).status, 200);

    /* publishes fail, with the reason, on every node and transport */
    for (const h of [A, B]) {
      const r = await tryPublish(h, ch, 'during the outage');
      assert.equal(r.status, 503, r.text);
      assert.deepEqual(r.json, { error: UNAVAILABLE });
    }
    const wr = await wsB.call({ op: 'publish', channel: ch, data: 'during the outage' });
    assert.equal(wr.ok, false);
    assert.equal(wr.error?.code, 'publish_failed');
    await assert.rejects(mqA.pub(ch, 'during the outage', { qos: 1 }), (e) => e.code === 0x80, 'MQTT v5 PUBACK 0x80');

    /* what the nodes hold is still served: history, a new stream, the subscriber stays */
    const j = await getJSON(A, `/sub/${ch}?mode=poll&last_id=2`);
    assert.deepEqual(j.messages.map((m) => m.id), ['3', '4', '5']);
    const sA = await openSSE(A, `/sub/${ch}`, { headers: { 'Last-Event-ID': '3' } });
    assert.deepEqual(idsOf(await sA.take(2)), ['4', '5']);
    assert.equal(sB.ended, false, 'the subscriber on B stays connected');

    /* keep Redis down until B's feed is in a long backoff (its 4th failed attempt: the next
     * one comes 1.6 s later), so what is published right after the restart misses every feed */
    await waitFor(() => (B.out.match(/feed connect to .* failed/g) || []).length >= failsBefore + 4,
      10000 * SCALE, "B's feed to fail 4 times", 20);
    await redis.start();

    /* the first publish after the restart: ids continue (the AOF kept them) */
    const first = await waitFor(async () => {
      const r = await tryPublish(A, ch, 'after-1');
      if (r.status === 200) return r.json;
      assert.equal(r.status, 503, r.text);
      return null;
    }, 5000 * SCALE, 'a publish to succeed after the restart', 50);
    assert.equal(first.id, '6', 'ids continue after the restart');
    assert.deepEqual(JSON.parse((await request(A, 'GET', '/readyz')).text), { status: 'ok', store: 'ok', engine: 'redis up' });
    assert.equal(await redis.feeds(), 0, 'precondition: no feed was subscribed when after-1 was published (it must be caught up)');

    /* B's feed comes back and loads 6 from the stream; then live ones from both nodes */
    for (let i = 2; i <= 10; i++) await publish(i % 2 ? A : B, ch, `after-${i}`);
    assert.equal((await publish(B, ch, 'sentinel')).id, '16');
    const gotB = await sB.take(11, 15000 * SCALE);
    assert.deepEqual(gotB.map((e) => `${e.id}:${e.data}`),
      [...range(6, 15).map((id, i) => `${id}:after-${i + 1}`), '16:sentinel'], 'B: every message after the restart, in order, once');
    assert.ok(gotB.every((e) => e.event === 'message'), 'no gap notice');
    const gotA = await sA.take(11, 15000 * SCALE);
    assert.deepEqual(idsOf(gotA), range(6, 16), 'A (subscribed during the outage): the same');
    assert.equal(sB.ended, false);

    /* every transport publishes again */
    assert.equal((await wsB.call({ op: 'publish', channel: ch, data: 'ws' })).id, '17');
    await mqA.pub(ch, 'mqtt', { qos: 1 });
    assert.deepEqual((await sB.take(2)).map((e) => `${e.id}:${e.data}`), ['17:ws', '18:mqtt']);

    sA.close();
    sB.close();
    wsB.close();
    await mqA.end();
  });
});

test("a node's feed lost (CLIENT KILL TYPE pubsub): what was published meanwhile is caught up from the stream", T, async () => {
  await withCluster({ nodes: 2 }, async ({ redis, nodes: [A, B] }) => {
    const ch = 'cluster/feedloss';
    const sB = await openSSE(B, `/sub/${ch}?last_id=0`);
    await publish(A, ch, 'before');
    assert.deepEqual(idsOf(await sB.take(1)), ['1']);
    let missed = 0;
    for (let round = 0; round < 5 && !missed; round++) {
      await waitFor(async () => (await redis.feeds()) === 2, 5000 * SCALE, 'both feeds subscribed');
      await redis.cli('client', 'kill', 'type', 'pubsub'); /* both feeds drop; they come back after 100 ms */
      await publish(A, ch, `while-down-${round}`);
      if ((await redis.feeds()) === 0) missed++; /* published while no feed listened */
    }
    assert.ok(missed, 'precondition: a publish landed while the feeds were down');
    const n = Number((await publish(B, ch, 'sentinel')).id);
    const got = await sB.take(n - 1, 10000 * SCALE);
    assert.deepEqual(idsOf(got), range(2, n), 'no gap, no duplicate');
    assert.equal(got.at(-1).data, 'sentinel');
    assert.ok(got.every((e) => e.event === 'message'));
    sB.close();
  });
});

test('node kill -9: its clients resume on another node with exactly what they missed; its presence expires', T, async () => {
  await withCluster({ nodes: 2 }, async ({ nodes: [A, B] }) => {
    const ch = 'cluster/failover';
    const sse = await openSSE(A, `/sub/${ch}?last_id=0`);
    const wj = await openJ(A);
    assert.equal((await wj.call({ op: 'subscribe', channel: ch, last_id: 0 })).ok, true);
    for (let i = 1; i <= 5; i++) await publish(i % 2 ? A : B, ch, `m${i}`);
    const k = (await sse.take(5)).at(-1).id;
    assert.equal(k, '5');
    await waitFor(() => wj.msgs.length >= 5, 5000 * SCALE, '/ws on A at 5');
    await waitFor(async () => (await occupancy(B, ch)) === 2, 5000 * SCALE, 'A\'s 2 subscribers seen from B');

    await A.kill9();
    await withTimeout(sse.endedPromise, 5000 * SCALE, 'the SSE stream to end with A');
    await wj.waitClosed();
    for (let i = 6; i <= 10; i++) await publish(B, ch, `m${i}`); /* while the clients are away */

    /* they reconnect to B with their last id */
    const sse2 = await openSSE(B, `/sub/${ch}`, { headers: { 'Last-Event-ID': k } });
    const wj2 = await openJ(B);
    const r = await wj2.call({ op: 'subscribe', channel: ch, last_id: wj.msgs.at(-1).id });
    assert.deepEqual([r.ok, r.last_id], [true, '10']);
    const want = range(6, 10).map((i) => `${i}:m${i}`);
    assert.deepEqual((await sse2.take(5)).map((e) => `${e.id}:${e.data}`), want, 'SSE: exactly the missed ones');
    await waitFor(() => wj2.msgs.length >= 5, 5000 * SCALE, '/ws replay on B');
    assert.deepEqual(wj2.msgs.map((m) => `${m.id}:${m.data}`), want, '/ws: exactly the missed ones');
    await publish(B, ch, 'm11');
    assert.equal((await sse2.next()).id, '11', 'then live, nothing else in between');
    await waitFor(() => wj2.msgs.length >= 6, 5000 * SCALE, '/ws live on B');
    assert.deepEqual(wj2.msgs.map((m) => m.id), range(6, 11));

    /* the dead node's report expires (3.5 s): only the 2 reconnected subscribers remain */
    await waitFor(async () => (await occupancy(B, ch)) === 2 && (await occupancy(B, ch)) === 2, 8000 * SCALE,
      'the killed node\'s subscribers to drop out of the count', 100);
    sse2.close();
    wj2.close();
    await waitFor(async () => (await occupancy(B, ch)) === 0, 5000 * SCALE, 'no subscriber left');
  });
});

test('start-up: a node that cannot reach Redis exits with an error; a bad address is refused', T, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-noredis-'));
  try {
    const dead = await freePort(); /* nothing listens there */
    const base = ['serve', '--http', `127.0.0.1:${await freePort()}`, '--mqtt', '', '--data-dir', dir, '--engine', 'redis'];
    const t0 = Date.now();
    let r = await run(HERALD_BIN, [...base, '--redis', `127.0.0.1:${dead}`], { timeout: 10000 * SCALE });
    const out = r.stderr + r.stdout.toString();
    assert.notEqual(r.code, 0, `exit code ${r.code}: ${out}`);
    assert.match(out, new RegExp(`engine = redis: cannot connect to redis at 127\\.0\\.0\\.1:${dead}`));
    assert.doesNotMatch(out, /Sanitizer|runtime error/, 'no sanitizer report on the way out');
    assert.ok(Date.now() - t0 < 5000 * SCALE, 'it gives up promptly');
    r = await run(HERALD_BIN, [...base, '--redis', 'no-port-here'], { timeout: 10000 * SCALE });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr + r.stdout.toString(), /bad address 'no-port-here'/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/* ---------------------------------------------------------------- once bugs (found by these tests) */

test('Redis down: a publish to a channel this node has not used yet fails with the same 503 reason', T, async () => {
  await withCluster({ nodes: 1 }, async ({ redis, nodes: [A] }) => {
    await publish(A, 'cluster/known', 'x');
    await redis.stop();
    const known = await tryPublish(A, 'cluster/known', 'y');
    assert.deepEqual([known.status, known.json], [503, { error: UNAVAILABLE }]);
    const fresh = await tryPublish(A, 'cluster/never-used-here', 'y');
    assert.equal(fresh.status, 503, fresh.text);
    // the channel cannot be loaded from Redis: the reason must still be Redis, not "publish failed"
    assert.deepEqual(fresh.json, { error: UNAVAILABLE });
    await redis.start(); /* so the node's clean stop finds Redis again */
  });
});

test('resuming on a node whose feed has not delivered the cursor yet is not a gap (the id exists in Redis)', T, async () => {
  await withCluster({ nodes: 2 }, async ({ redis, nodes: [A, B] }) => {
    const ch = 'cluster/ahead';
    await publish(A, ch, 'm1');
    await waitFor(async () => (await getJSON(B, `/sub/${ch}?mode=poll&last_id=0`)).last_id === '1', 5000 * SCALE, 'B at 1');
    /* B's feed down for ~100 ms; a client that saw id 2 on A resumes on B meanwhile */
    let answer = null;
    for (let round = 0; round < 5 && !answer; round++) {
      await waitFor(async () => (await redis.feeds()) === 2, 5000 * SCALE, 'both feeds subscribed');
      await redis.cli('client', 'kill', 'type', 'pubsub');
      const { id } = await publish(A, ch, `m-${round}`);
      const j = await getJSON(B, `/sub/${ch}?mode=poll&last_id=${id}`);
      if ((await redis.feeds()) === 0) answer = { id, j }; /* B's feed was down throughout */
    }
    assert.ok(answer, 'precondition: a resume while B\'s feed was down');
    // a cursor past B's local last id is not a gap when Redis has that id (B catches up first);
    // answering with a gap made herald.js reset its cursor and show duplicates
    assert.equal(answer.j.gap, false, `poll on B: ${JSON.stringify(answer.j)}`);
    assert.deepEqual(answer.j.messages, []);
  });
});

test('an MQTT subscriber gets the first message of a channel its node has never seen (live, and as retained)', T, async () => {
  await withCluster({ nodes: 2 }, async ({ nodes: [A, B] }) => {
    const pubA = await mq(tcpURL(A), { clientId: 'first-pub', protocolVersion: 5 });
    const subB = await mq(tcpURL(B), { clientId: 'first-sub', protocolVersion: 5 });
    await subB.sub('fresh/+', { qos: 1 });
    await pubA.pub('fresh/1', 'first', { qos: 1, retain: true });
    await pubA.pub('fresh/1', 'second', { qos: 1 });
    await publish(A, 'fresh/2', 'first over http');
    await publish(A, 'fresh/2', 'second over http');
    await waitFor(() => subB.q.all.some((m) => m.payload === 'second over http'), 5000 * SCALE, 'the last one on B');
    // the first message of a channel B has never held creates it there; loading its history
    // must stop before that message, or it is taken as "already here" and never delivered to
    // B's MQTT filters nor kept as B's retained message
    assert.deepEqual(subB.q.all.map((m) => `${m.topic}=${m.payload}`),
      ['fresh/1=first', 'fresh/1=second', 'fresh/2=first over http', 'fresh/2=second over http']);
    const late = await mq(tcpURL(B), { clientId: 'first-late', protocolVersion: 5 });
    await late.sub('fresh/1', { qos: 1 });
    const m = await late.next();
    assert.deepEqual([m.topic, m.payload, m.packet.retain], ['fresh/1', 'first', true], 'the retained message on B');
    await late.end();
    await subB.end();
    await pubA.end();
  });
});

test('Redis restarted without its data: the channel counts from 1 again; subscribers on every node are told (a gap notice) and get it', T, async () => {
  await withCluster({ nodes: 2 }, async ({ redis, nodes: [A, B] }) => {
    const ch = 'cluster/amnesia';
    const sB = await openSSE(B, `/sub/${ch}?last_id=0`);
    for (let i = 1; i <= 3; i++) await publish(A, ch, `old ${i}`);
    assert.deepEqual(idsOf(await sB.take(3)), ['1', '2', '3']);
    await redis.stop(); /* no AOF: its data is gone */
    await redis.start();
    await waitFor(async () => (await redis.feeds()) === 2, 10000 * SCALE, 'both feeds back');
    const r = await publish(A, ch, 'new 1');
    assert.equal(r.id, '1', 'redis counts from 1 again');
    // the data epoch changed: B tells its subscriber (ids would go back) before the new message
    const [gap, e] = await sB.take(2, 5000 * SCALE);
    assert.equal(gap.event, 'gap', JSON.stringify(gap));
    assert.deepEqual(JSON.parse(gap.data), { channel: ch, requested: '3', first_available: '1' });
    assert.deepEqual([e.id, e.data], ['1', 'new 1'], 'B delivers it instead of taking it for a duplicate');
    const onA = await getJSON(A, `/sub/${ch}?mode=poll&last_id=0`);
    assert.deepEqual(onA.messages.map((m) => m.data), ['new 1'], 'A started the channel afresh');
    sB.close();
  });
});
