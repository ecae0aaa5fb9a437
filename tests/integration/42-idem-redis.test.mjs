// Idempotency keys shared by every node with engine = redis: a retry that reaches another node,
// or a node started afresh, replays the first node's answer (same ids, Idempotent-Replay: true)
// and publishes nothing; a key held by a request in flight elsewhere is a 409 (tested at the
// claim level: the claim Redis holds for it is written by hand, and by racing two nodes); keys
// belong to their caller (two API keys do not share them); Redis unreachable is a 503, never a
// second publish.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald, request, waitFor, metrics, SCALE } from '../lib/herald.mjs';
import { API_KEY, authFlags, bearer } from '../lib/auth.mjs';
import { startRedis, finishNodes } from '../lib/redis.mjs';

const T = { timeout: 90000 * SCALE };
const KEY2 = 'it-second-backend-key-0123456789';
const flags = (redis, extra = {}) => ({ engine: 'redis', redis: redis.addr, ...authFlags({ 'api-keys': `${API_KEY} ${KEY2}`, 'metrics-public': true }), ...extra });

function pubKeyed(h, ch, data, key, apiKey = API_KEY) {
  const b = Buffer.from(data);
  return request(h, 'POST', `/pub/${ch}`, {
    headers: { 'Content-Length': String(b.length), 'Idempotency-Key': key, ...bearer(apiKey) }, body: b,
  });
}

function pubMulti(h, body, key) {
  const b = Buffer.from(JSON.stringify(body));
  return request(h, 'POST', '/publish', {
    headers: { 'Content-Type': 'application/json', 'Content-Length': String(b.length), 'Idempotency-Key': key, ...bearer(API_KEY) }, body: b,
  });
}

/* The channel's last id (on any node: the ids are Redis's). */
async function lastId(h, ch) {
  const r = await request(h, 'GET', `/channels/${ch}`, { headers: bearer(API_KEY) });
  assert.equal(r.status, 200, r.text);
  return r.json().last_id;
}

test('engine = redis: a key used on node A replays on node B and on a node started afresh; busy keys 409; callers apart', T, async () => {
  const redis = await startRedis();
  const nodes = [];
  let failure = null;
  try {
    nodes.push(await startHerald(flags(redis)), await startHerald(flags(redis)));
    const [a, b] = nodes;
    /* A publishes, B replays A's answer: the same ids, nothing published again */
    const first = await pubKeyed(a, 'orders', 'one', 'k1');
    assert.equal(first.status, 200, first.text);
    assert.equal(first.headers['idempotent-replay'], undefined);
    const onB = await pubKeyed(b, 'orders', 'one', 'k1');
    assert.equal(onB.status, 200, onB.text);
    assert.equal(onB.headers['idempotent-replay'], 'true');
    assert.equal(onB.text, first.text, 'B answers with A\'s stored answer');
    assert.equal(await lastId(a, 'orders'), first.json().id, 'one message');
    assert.equal((await metrics(b)).get('herald_idempotent_replays_total'), 1);
    /* B keeps the answer in its table: the next retry there is answered without Redis */
    const again = await pubKeyed(b, 'orders', 'one', 'k1');
    assert.equal(again.headers['idempotent-replay'], 'true');
    assert.equal(again.text, first.text);
    /* POST /publish: the per-target answer replays too */
    const m1 = await pubMulti(a, { channels: ['x', 'y'], data: 'multi' }, 'k-multi');
    assert.equal(m1.status, 200, m1.text);
    const m2 = await pubMulti(b, { channels: ['x', 'y'], data: 'multi' }, 'k-multi');
    assert.equal(m2.headers['idempotent-replay'], 'true');
    assert.deepEqual(m2.json(), m1.json());
    assert.equal(await lastId(b, 'x'), '1');
    /* a node started afresh (nothing in its memory) replays it too */
    const c = await startHerald(flags(redis));
    nodes.push(c);
    const onC = await pubKeyed(c, 'orders', 'one', 'k1');
    assert.equal(onC.headers['idempotent-replay'], 'true');
    assert.equal(onC.text, first.text);
    assert.equal(await lastId(c, 'orders'), first.json().id);
    /* the keys are the caller's: the second API key's k1 is its own and publishes */
    const other = await pubKeyed(b, 'orders', 'two', 'k1', KEY2);
    assert.equal(other.status, 200, other.text);
    assert.equal(other.headers['idempotent-replay'], undefined);
    assert.equal(other.json().id, String(Number(first.json().id) + 1));
    const otherA = await pubKeyed(a, 'orders', 'two', 'k1', KEY2);
    assert.equal(otherA.headers['idempotent-replay'], 'true');
    assert.equal(otherA.text, other.text);
    /* what Redis holds: one key per caller and key, PREFIX:idem:SCOPE KEY, expiring with the window */
    const keys = (await redis.cli('--scan', '--pattern', 'herald:idem:*')).split('\n').filter(Boolean).sort();
    assert.equal(keys.length, 3, keys.join(', '));
    const k1Keys = keys.filter((k) => / k1$/.test(k));
    assert.equal(k1Keys.length, 2, 'k1 of each API key');
    assert.match(k1Keys[0], /^herald:idem:k:[0-9a-f]{16} k1$/);
    const ttl = Number(await redis.cli('pttl', k1Keys[0]));
    assert.ok(ttl > 23 * 3600 * 1000 && ttl <= 24 * 3600 * 1000, `the rest of the 24 h window: ${ttl}`);
    /* busy: a key another node holds (its claim written by hand: "P") is a 409 with Retry-After */
    const scope = k1Keys.find((k) => k.includes(keys.find((x) => / k-multi$/.test(x)).split(' ')[0].slice('herald:idem:'.length)));
    assert.ok(scope, 'the first API key\'s scope');
    const held = scope.replace(/ k1$/, ' k-busy');
    assert.equal(await redis.cli('set', held, 'P', 'PX', '60000'), 'OK');
    const busy = await pubKeyed(b, 'busy', 'x', 'k-busy');
    assert.equal(busy.status, 409, busy.text);
    assert.equal(busy.headers['retry-after'], '1');
    assert.match(busy.text, /in flight/);
    assert.equal((await metrics(b)).get('herald_idempotency_conflicts_total'), 1);
    assert.equal((await request(b, 'GET', '/channels/busy', { headers: bearer(API_KEY) })).json().last_id ?? '0', '0');
    /* the holder is gone (its key released): the retry publishes */
    await redis.cli('del', held);
    const free = await pubKeyed(b, 'busy', 'x', 'k-busy');
    assert.equal(free.status, 200, free.text);
    assert.equal(free.headers['idempotent-replay'], undefined);
    /* a real race: the same key on A and B at once publishes once; the other answer is a
     * replay of it or a 409 */
    for (let i = 0; i < 5; i++) {
      const [ra, rb] = await Promise.all([pubKeyed(a, `race${i}`, 'r', `kr${i}`), pubKeyed(b, `race${i}`, 'r', `kr${i}`)]);
      const st = [ra.status, rb.status].sort();
      assert.ok(st[0] === 200 && (st[1] === 200 || st[1] === 409), `answers ${st}: ${ra.text} / ${rb.text}`);
      if (st[1] === 200) assert.equal(ra.json().id, rb.json().id);
      assert.equal(await lastId(a, `race${i}`), '1', 'published once');
    }
  } catch (e) {
    failure = e;
  }
  await finishNodes(nodes, redis, failure, { tail: 1500 });
});

test('engine = redis: Redis unreachable answers a keyed publish 503 (no second publish); afterwards the key works', T, async () => {
  const redis = await startRedis();
  const nodes = [];
  let failure = null;
  try {
    nodes.push(await startHerald(flags(redis, { 'redis-timeout': 1 })));
    const [a] = nodes;
    const ok = await pubKeyed(a, 'down', 'before', 'k0');
    assert.equal(ok.status, 200, ok.text);
    await redis.stop();
    const r = await pubKeyed(a, 'down', 'x', 'k-down');
    assert.equal(r.status, 503, r.text);
    assert.match(r.text, /idempotency store unavailable/);
    assert.equal((await metrics(a)).get('herald_idempotency_keys'), 1, 'k-down left nothing behind');
    await redis.start();
    await waitFor(async () => (await request(a, 'GET', '/readyz')).status === 200, 15000 * SCALE, 'the node to be ready again', 100);
    const r2 = await pubKeyed(a, 'down', 'x', 'k-down');
    assert.equal(r2.status, 200, r2.text);
    assert.equal(r2.headers['idempotent-replay'], undefined);
  } catch (e) {
    failure = e;
  }
  await finishNodes(nodes, redis, failure, { tail: 1500 });
});
