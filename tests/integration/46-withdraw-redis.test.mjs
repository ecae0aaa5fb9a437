// Withdrawal and deletion with engine = redis: DELETE /channels/{ch}/messages/{id} on node A
// tells subscribers on A and on B ("withdrawn"), the message is gone from every node's history
// (poll, long poll, resume), from Redis (a node started afresh loads a tombstone in its place,
// no gap), and a retained MQTT message of that id is cleared; DELETE /channels/{ch} deletes the
// messages on every node while ids continue; 404 for what is not there; 503 when Redis is down.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald, publish, request, getJSON, openSSE, run, waitFor, SCALE } from '../lib/herald.mjs';
import { API_KEY, authFlags, bearer, wsJson } from '../lib/auth.mjs';
import { startRedis, finishNodes } from '../lib/redis.mjs';

const T = { timeout: 90000 * SCALE };
const flags = (redis) => ({ engine: 'redis', redis: redis.addr, ...authFlags({ 'allow-anonymous': 'true' }) });
const admin = bearer(API_KEY);
const datas = async (h, ch, last = 0) => {
  const j = await getJSON(h, `/sub/${ch}?mode=poll&last_id=${last}`);
  return { data: j.messages.map((m) => m.data), ids: j.messages.map((m) => m.id), gap: j.gap };
};

test('engine = redis: a withdrawal made on node A reaches subscribers on A and B, every history, and a node started afresh', T, async () => {
  const redis = await startRedis();
  const nodes = [];
  let failure = null;
  try {
    nodes.push(await startHerald(flags(redis)), await startHerald(flags(redis)));
    const [a, b] = nodes;
    for (let i = 1; i <= 5; i++) await publish(a, 'news', `m${i}`, { headers: admin });
    const sa = await openSSE(a, '/sub/news?last_id=5', { headers: { Accept: 'text/event-stream' } });
    const sb = await openSSE(b, '/sub/news?last_id=5', { headers: { Accept: 'text/event-stream' } });
    const wb = await wsJson(b);
    assert.equal((await wb.call({ op: 'subscribe', channel: 'news' })).reply.ok, true);
    try {
      assert.equal((await request(a, 'DELETE', '/channels/news/messages/9', { headers: admin })).status, 404);
      assert.equal((await request(b, 'DELETE', '/channels/nowhere/messages/1', { headers: admin })).status, 404);
      const r = await request(a, 'DELETE', '/channels/news/messages/3', { headers: admin });
      assert.equal(r.status, 204, r.text);
      for (const s of [sa, sb]) {
        const e = await s.next();
        assert.equal(e.event, 'withdrawn');
        assert.deepEqual(JSON.parse(e.data), { channel: 'news', id: '3' });
      }
      assert.deepEqual(await wb.json(), { op: 'withdrawn', channel: 'news', id: '3' });
      assert.equal((await request(b, 'DELETE', '/channels/news/messages/3', { headers: admin })).status, 404, 'withdrawn already, seen from B');
      /* the newest one too: its place is a tombstone up to the last id */
      assert.equal((await request(b, 'DELETE', '/channels/news/messages/5', { headers: admin })).status, 204);
      assert.equal((await sa.next()).event, 'withdrawn');
      for (const h of [a, b]) {
        const j = await datas(h, 'news');
        assert.deepEqual(j.data, ['m1', 'm2', 'm4'], `history on ${h.base}`);
        assert.equal(j.gap, false);
        const lp = await getJSON(h, '/sub/news?mode=longpoll&last_id=2');
        assert.deepEqual(lp.messages.map((m) => m.id), ['4']);
      }
      /* the stream goes on with the next id */
      await publish(b, 'news', 'm6', { headers: admin });
      assert.equal((await sa.next()).id, '6');
    } finally {
      sa.close();
      sb.close();
      wb.close();
    }
    /* a node started afresh reads Redis: tombstones where the withdrawn ones were, no gap */
    nodes.push(await startHerald(flags(redis)));
    const c = nodes[2];
    const j = await datas(c, 'news');
    assert.deepEqual(j.data, ['m1', 'm2', 'm4', 'm6']);
    assert.deepEqual(j.ids, ['1', '2', '4', '6']);
    assert.equal(j.gap, false, 'a withdrawn message is not a gap');
    const resumed = await datas(c, 'news', 2);
    assert.deepEqual(resumed.ids, ['4', '6']);
    assert.equal(resumed.gap, false);
    /* a retained MQTT message withdrawn on one node is gone for MQTT subscribers of another */
    const pub = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(a.mqttPort), '-t', 'sensors/t', '-m', '21', '-r', '-q', '1']);
    assert.equal(pub.code, 0, pub.stderr);
    const id = (await getJSON(a, '/sub/sensors/t?mode=poll&last_id=0')).messages[0].id;
    assert.equal((await request(a, 'DELETE', `/channels/sensors/t/messages/${id}`, { headers: admin })).status, 204);
    const sub = await run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(c.mqttPort), '-t', 'sensors/t', '-W', '1', '-C', '1']);
    assert.equal(sub.stdout.toString(), '', 'no retained message any more, on any node');
  } catch (e) {
    failure = e;
  }
  await finishNodes(nodes, redis, failure);
});

test('engine = redis: DELETE /channels/{ch} deletes the messages on every node, ids continue; 404; 503 while Redis is down', T, async () => {
  const redis = await startRedis();
  const nodes = [];
  let failure = null;
  try {
    nodes.push(await startHerald(flags(redis)), await startHerald(flags(redis)));
    const [a, b] = nodes;
    for (let i = 1; i <= 3; i++) await publish(a, 'feed', `f${i}`, { headers: admin });
    /* B learns of A's publishes through the feed: a moment later */
    await waitFor(async () => (await datas(b, 'feed')).data.length === 3, 5000 * SCALE, 'the messages on B');
    assert.deepEqual((await datas(b, 'feed')).data, ['f1', 'f2', 'f3']);
    const sb = await openSSE(b, '/sub/feed?last_id=3', { headers: { Accept: 'text/event-stream' } });
    try {
      assert.equal((await request(a, 'DELETE', '/channels/never-used', { headers: admin })).status, 404);
      const r = await request(a, 'DELETE', '/channels/feed', { headers: admin });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual({ ...r.json(), told: 0 }, { channel: 'feed', deleted: true, last_id: '3', told: 0 });
      const e = await sb.next();
      assert.equal(e.event, 'deleted');
      assert.deepEqual(JSON.parse(e.data), { channel: 'feed', last_id: '3' });
      for (const h of [a, b]) assert.deepEqual((await datas(h, 'feed', 3)).data, [], `nothing after 3 on ${h.base}`);
      const from0 = await datas(b, 'feed');
      assert.deepEqual(from0.data, []);
      /* ids continue after the deleted ones */
      await publish(b, 'feed', 'f4', { headers: admin });
      const n = await sb.next();
      assert.equal(n.id, '4');
      assert.equal(n.data, 'f4');
    } finally {
      sb.close();
    }
    nodes.push(await startHerald(flags(redis)));
    assert.deepEqual((await datas(nodes[2], 'feed')).ids, ['4'], 'a node started afresh has only what came after');
    /* Redis down: neither is answered as done */
    await redis.stop();
    const w = await request(a, 'DELETE', '/channels/feed/messages/4', { headers: admin });
    assert.equal(w.status, 503, w.text);
    const d = await request(b, 'DELETE', '/channels/feed', { headers: admin });
    assert.equal(d.status, 503, d.text);
  } catch (e) {
    failure = e;
  }
  await finishNodes(nodes, redis, failure);
});
