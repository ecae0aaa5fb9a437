// Issue 13 part 2, "targeting in one call": POST /publish (one message, many channels and
// users, each its own id in its own channel, a per-target answer) reaching SSE, WebSocket /sub
// and /ws subscribers; per-target access checks with tokens and API keys; max_publish_targets;
// idempotent retries (Idempotency-Key / idempotency_key) answered from the stored answer with no
// duplicate delivered, scoped per caller, surviving kill -9 with the LMDB store, forgotten after
// idempotency_window, 409 while the first is in flight (Redis paused); unknown publish
// parameters refused on POST /pub, POST /publish and /ws.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  withHerald, startHerald, request, publish, openSSE, waitFor, metrics, getJSON, SCALE,
} from '../lib/herald.mjs';
import { openWS, wsURL } from '../lib/stomp.mjs';
import { API_KEY, authFlags, bearer, mint, userToken, wsJson, waitSubs } from '../lib/auth.mjs';
import { startRedis } from '../lib/redis.mjs';

const T = { timeout: 60000 * SCALE };

/* POST /publish with a JSON body (object or raw string) and extra headers. */
function pubMulti(h, body, headers = {}, p = '/publish') {
  const b = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  return request(h, 'POST', p, { headers: { 'Content-Type': 'application/json', 'Content-Length': String(b.length), ...headers }, body: b });
}

/* POST /pub/ch with extra headers (the raw answer). */
function pubRaw(h, ch, data, headers = {}) {
  const b = Buffer.from(data);
  return request(h, 'POST', `/pub/${ch}`, { headers: { 'Content-Length': String(b.length), ...headers }, body: b });
}

/* Bounded wait until the server reports a subscriber on ch (open mode: no credential needed). */
async function subscribed(h, ch, headers = {}) {
  await waitFor(async () => (await request(h, 'GET', `/channels/${ch}`, { headers })).json().subscribers >= 1, 5000 * SCALE, `a subscriber on ${ch}`, 15);
}

async function lastId(h, ch, headers = {}) {
  return (await request(h, 'GET', `/channels/${ch}`, { headers })).json().last_id;
}

test('POST /publish: channels and users each get the message with their own id, on SSE, WebSocket /sub and /ws', T, async () => {
  await withHerald({}, async (h) => {
    await publish(h, 'a', 'earlier'); /* a's next id is 2, b's and user/42's are 1 */
    await publish(h, 'a', 'earlier 2');
    const sse = await openSSE(h, '/sub/user/42', { headers: { Accept: 'text/event-stream' }, skip: ['unread'] });
    const ws = await openWS(wsURL(h, '/sub/a'));
    const wj = await wsJson(h);
    assert.equal((await wj.call({ op: 'subscribe', channel: 'b' })).reply.ok, true);
    await subscribed(h, 'user/42');
    await subscribed(h, 'a');
    await subscribed(h, 'b');
    const r = await pubMulti(h, { channels: ['a', 'b'], users: ['42'], event: 'note', data: 'hello all' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json(), {
      results: [
        { channel: 'a', id: '3', subscribers: 1 },
        { channel: 'b', id: '1', subscribers: 1 },
        { user: '42', channel: 'user/42', id: '1', subscribers: 1 },
      ],
    });
    const ev = await sse.next();
    assert.equal(ev.id, '1');
    assert.equal(ev.event, 'note');
    assert.equal(ev.data, 'hello all');
    const wm = await ws.next(3000 * SCALE);
    assert.equal(wm.data.toString(), 'hello all');
    const jm = await wj.json(3000 * SCALE);
    assert.equal(jm.op, 'message');
    assert.equal(jm.channel, 'b');
    assert.equal(jm.id, '1');
    assert.equal(jm.event, 'note');
    /* POST /pub (no channel) is the same route; base64 data */
    const r2 = await pubMulti(h, { channels: ['a'], data: Buffer.from([0xff, 0, 0xfe]).toString('base64'), encoding: 'base64' }, {}, '/pub');
    assert.equal(r2.status, 200, r2.text);
    assert.equal(r2.json().results[0].id, '4');
    const poll = await getJSON(h, '/sub/a?mode=poll&last_id=3');
    assert.equal(poll.messages[0].encoding, 'base64');
    assert.equal(poll.messages[0].data, '/wD+');
    sse.close();
    ws.close();
    wj.close();
  });
});

test('POST /publish access: each target is checked; one the token may not publish to fails alone; 401/403 when none', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const tok = await mint({ sub: '9', subscribe: ['chat/#'], publish: ['chat/+'] });
    const r = await pubMulti(h, { channels: ['chat/1', 'news', 'chat/2'], users: ['7'], data: 'x' }, bearer(tok));
    assert.equal(r.status, 200, r.text);
    const res = r.json().results;
    assert.deepEqual(res[0], { channel: 'chat/1', id: '1', subscribers: 0 });
    assert.deepEqual(res[1], { channel: 'news', error: { status: 403, message: 'forbidden' } });
    assert.deepEqual(res[2], { channel: 'chat/2', id: '1', subscribers: 0 });
    assert.deepEqual(res[3], { user: '7', channel: 'user/7', error: { status: 403, message: 'forbidden' } });
    assert.equal(await lastId(h, 'news', bearer(API_KEY)), '0', 'nothing reached the refused channel');
    assert.equal(await lastId(h, 'user/7', bearer(API_KEY)), '0');
    /* a token that may publish to none of them: 403; no credential: 401 */
    const reader = await userToken('9');
    const none = await pubMulti(h, { channels: ['news'], users: ['7'], data: 'x' }, bearer(reader));
    assert.equal(none.status, 403, none.text);
    const anon = await pubMulti(h, { channels: ['news'], data: 'x' });
    assert.equal(anon.status, 401, anon.text);
    /* an API key publishes anywhere, users included */
    const k = await pubMulti(h, { channels: ['news'], users: ['7'], data: 'x' }, bearer(API_KEY));
    assert.equal(k.status, 200, k.text);
    assert.deepEqual(k.json().results.map((x) => x.id), ['1', '1']);
  });
});

test('max_publish_targets: more targets is a 400, counted and logged once; bad requests are 400', T, async () => {
  await withHerald({ max_publish_targets: 3 }, async (h) => {
    const ok = await pubMulti(h, { channels: ['a', 'b'], users: ['1'], data: 'x' });
    assert.equal(ok.status, 200, ok.text);
    for (let i = 0; i < 2; i++) {
      const r = await pubMulti(h, { channels: ['a', 'b'], users: ['1', '2'], data: 'x' });
      assert.equal(r.status, 400);
      assert.match(r.json().error, /too many targets \(at most 3: max_publish_targets\)/);
    }
    const m = await metrics(h);
    assert.equal(m.get('herald_limit_hits_total{limit="max_publish_targets"}'), 2);
    assert.equal(h.out.split('max_publish_targets (3)').length - 1, 1, 'logged once');
    for (const [body, why] of [
      [{ channels: [], data: 'x' }, /no target/],
      [{ channels: ['a/'], data: 'x' }, /invalid channel name/],
      [{ users: ['a/b'], data: 'x' }, /invalid user id/],
      [{ channels: ['a'] }, /data/],
      ['not json', /not valid JSON/],
    ]) {
      const r = await pubMulti(h, body);
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
      assert.match(r.json().error, why);
    }
    assert.equal(await lastId(h, 'a'), '1', 'refused requests published nothing');
  });
});

test('idempotent retries answer the stored answer and deliver nothing twice; other callers have their own keys', T, async () => {
  await withHerald(authFlags({ 'api-keys': `${API_KEY} second-backend-key-0123456789`, metrics_public: true }), async (h) => {
    const sse = await openSSE(h, '/sub/idem?last_id=0', { headers: { Accept: 'text/event-stream', ...bearer(API_KEY) } });
    await waitSubs(h, 'idem');
    const K = bearer(API_KEY);
    const first = await pubRaw(h, 'idem', 'one', { ...K, 'Idempotency-Key': 'order-1042' });
    assert.equal(first.status, 200);
    assert.equal(first.headers['idempotent-replay'], undefined);
    const again = await pubRaw(h, 'idem', 'one', { ...K, 'Idempotency-Key': 'order-1042' });
    assert.equal(again.status, 200);
    assert.equal(again.headers['idempotent-replay'], 'true');
    assert.equal(again.text, first.text, 'the same answer, the same id');
    /* POST /publish: key in the body or the header */
    const m1 = await pubMulti(h, { channels: ['idem', 'idem2'], data: 'two', idempotency_key: 'batch 7' }, K);
    const m2 = await pubMulti(h, { channels: ['idem', 'idem2'], data: 'two' }, { ...K, 'Idempotency-Key': 'batch 7' });
    assert.equal(m1.status, 200);
    assert.equal(m2.headers['idempotent-replay'], 'true');
    assert.equal(m2.text, m1.text);
    assert.equal(m1.json().results[0].id, '2');
    /* a different key, another API key, a user: each publishes */
    const other = await pubRaw(h, 'idem', 'three', { ...bearer('second-backend-key-0123456789'), 'Idempotency-Key': 'order-1042' });
    assert.equal(other.status, 200);
    assert.equal(other.headers['idempotent-replay'], undefined);
    assert.equal(other.json().id, '3');
    const u1 = await mint({ sub: 'u1', publish: ['idem'] });
    const u2 = await mint({ sub: 'u2', publish: ['idem'] });
    const a = await pubRaw(h, 'idem', 'four', { ...bearer(u1), 'Idempotency-Key': 'order-1042' });
    const b = await pubRaw(h, 'idem', 'five', { ...bearer(u2), 'Idempotency-Key': 'order-1042' });
    const a2 = await pubRaw(h, 'idem', 'four', { ...bearer(u1), 'Idempotency-Key': 'order-1042' });
    assert.deepEqual([a.json().id, b.json().id, a2.json().id], ['4', '5', '4']);
    assert.equal(a2.headers['idempotent-replay'], 'true');
    const marker = await pubRaw(h, 'idem', 'end', K);
    assert.equal(marker.json().id, '6');
    const got = await sse.take(6);
    assert.deepEqual(got.map((e) => `${e.id}:${e.data}`), ['1:one', '2:two', '3:three', '4:four', '5:five', '6:end'],
      'every publish delivered once, no retry delivered');
    /* different keys header vs body, and a bad key */
    const diff = await pubMulti(h, { channels: ['idem'], data: 'x', idempotency_key: 'a' }, { ...K, 'Idempotency-Key': 'b' });
    assert.equal(diff.status, 400);
    const bad = await pubRaw(h, 'idem', 'x', { ...K, 'Idempotency-Key': 'k'.repeat(129) });
    assert.equal(bad.status, 400);
    const m = await metrics(h);
    assert.equal(m.get('herald_idempotent_replays_total'), 3);
    sse.close();
  });
});

test('idempotency keys survive kill -9 with the LMDB store (same data_dir)', T, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-idem-'));
  try {
    const flags = { data_dir: path.join(dir, 'data'), durability: 'sync' };
    let h = await startHerald(flags);
    let first, firstMulti;
    try {
      first = await pubRaw(h, 'crash', 'once', { 'Idempotency-Key': 'k-1' });
      firstMulti = await pubMulti(h, { channels: ['crash', 'crash2'], data: 'twice', idempotency_key: 'k-2' });
      assert.equal(first.status, 200);
      assert.equal(firstMulti.status, 200);
    } finally {
      await h.kill9();
    }
    h = await startHerald(flags);
    try {
      const again = await pubRaw(h, 'crash', 'once', { 'Idempotency-Key': 'k-1' });
      assert.equal(again.status, 200);
      assert.equal(again.headers['idempotent-replay'], 'true');
      assert.equal(again.json().id, first.json().id);
      const againMulti = await pubMulti(h, { channels: ['crash', 'crash2'], data: 'twice', idempotency_key: 'k-2' });
      assert.equal(againMulti.headers['idempotent-replay'], 'true');
      assert.deepEqual(againMulti.json().results.map((x) => x.id), firstMulti.json().results.map((x) => x.id));
      const hist = await getJSON(h, '/sub/crash?mode=poll&last_id=0');
      assert.deepEqual(hist.messages.map((m) => `${m.id}:${m.data}`), ['1:once', '2:twice'], 'nothing was published again');
      assert.match(h.out, /idempotency: 2 keys loaded/);
    } finally {
      await h.stop();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('idempotency_window: after it, the same key publishes again (memory store)', T, async () => {
  await withHerald({ store: 'memory', idempotency_window: 1 }, async (h) => {
    const a = await pubRaw(h, 'w', 'x', { 'Idempotency-Key': 'k' });
    const b = await pubRaw(h, 'w', 'x', { 'Idempotency-Key': 'k' });
    assert.equal(b.headers['idempotent-replay'], 'true');
    assert.equal(b.json().id, a.json().id);
    await waitFor(async () => (await metrics(h)).get('herald_idempotency_keys') === 0, 5000 * SCALE, 'the key to expire', 50);
    const c = await pubRaw(h, 'w', 'x', { 'Idempotency-Key': 'k' });
    assert.equal(c.headers['idempotent-replay'], undefined);
    assert.equal(c.json().id, '2');
  });
  /* 0 turns it off: every request publishes */
  await withHerald({ store: 'memory', idempotency_window: 0 }, async (h) => {
    await pubRaw(h, 'w', 'x', { 'Idempotency-Key': 'k' });
    const b = await pubRaw(h, 'w', 'x', { 'Idempotency-Key': 'k' });
    assert.equal(b.json().id, '2');
  });
});

test('a retry while the first is still in flight gets 409 with Retry-After: 1 (Redis paused)', T, async () => {
  const r = await startRedis();
  try {
    await withHerald({ engine: 'redis', redis: r.addr, redis_timeout: 10 }, async (h) => {
      await publish(h, 'slow', 'warm up'); /* the channel is loaded */
      r.proc.kill('SIGSTOP');
      let firstP;
      try {
        firstP = pubRaw(h, 'slow', 'x', { 'Idempotency-Key': 'k' });
        await waitFor(async () => (await metrics(h)).get('herald_idempotency_keys') === 1, 5000 * SCALE, 'the first request to be in flight', 20);
        const busy = await pubRaw(h, 'slow', 'x', { 'Idempotency-Key': 'k' });
        assert.equal(busy.status, 409, busy.text);
        assert.equal(busy.headers['retry-after'], '1');
      } finally {
        r.proc.kill('SIGCONT');
      }
      const first = await firstP;
      assert.equal(first.status, 200, first.text);
      const again = await pubRaw(h, 'slow', 'x', { 'Idempotency-Key': 'k' });
      assert.equal(again.headers['idempotent-replay'], 'true');
      assert.equal(again.json().id, first.json().id);
      assert.equal((await metrics(h)).get('herald_idempotency_conflicts_total'), 1);
    });
  } finally {
    await r.destroy();
  }
});

test('unknown publish parameters are an error on POST /pub, POST /publish and /ws', T, async () => {
  await withHerald({}, async (h) => {
    for (const q of ['tll=60', 'delya=5', 'evnet=x', 'event=a&att=1']) {
      const r = await request(h, 'POST', `/pub/p?${q}`, { headers: { 'Content-Length': '1' }, body: 'x' });
      assert.equal(r.status, 400, q);
      assert.match(r.json().error, /^unknown parameter: (tll|delya|evnet|att)$/);
    }
    const ok = await request(h, 'POST', '/pub/p?event=a', { headers: { 'Content-Length': '1' }, body: 'x' });
    assert.equal(ok.status, 200);
    const m = await pubMulti(h, { channels: ['p'], data: 'x', tll: 60 });
    assert.equal(m.status, 400);
    assert.equal(m.json().error, 'unknown field: tll');
    const mq = await pubMulti(h, { channels: ['p'], data: 'x' }, {}, '/publish?delay=3');
    assert.equal(mq.status, 400);
    assert.equal(mq.json().error, 'unknown parameter: delay');
    const wj = await wsJson(h);
    const { reply } = await wj.call({ op: 'publish', channel: 'p', data: 'x', tll: 60 });
    assert.equal(reply.ok, false);
    assert.equal(reply.error.code, 'bad_request');
    assert.equal(reply.error.message, 'unknown field: tll');
    const good = await wj.call({ op: 'publish', channel: 'p', data: 'x', event: 'e' });
    assert.equal(good.reply.ok, true);
    wj.close();
    assert.equal(await lastId(h, 'p'), '2', 'only the two valid publishes happened');
  });
});
