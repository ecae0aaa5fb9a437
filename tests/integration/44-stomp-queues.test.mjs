// STOMP destinations beyond /topic/, with @stomp/stompjs (and raw frames where the exact ERROR
// matters): /queue/NAME (competing consumers in round robin, ack modes auto, client and
// client-individual, NACK and a consumer's departure redeliver with redelivered:true, prefetch,
// durable across a restart of herald on LMDB, transactions, the bounds stomp_queue_max and
// stomp_max_queues refusing with an ERROR / HTTP 507), /user/queue/NAME and /user/topic/NAME
// (each user only their own; a backend reaches them with POST /pub/... and POST /pub with users
// and user_destination; anonymous connections refused), and /app/NAME (send only).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  withHerald, startHerald, publish, request, getJSON, waitFor, metrics, tryPublish, SCALE,
} from '../lib/herald.mjs';
import { rawStomp, frame, stompClient } from '../lib/stomp.mjs';
import { API_KEY, authFlags, bearer, mint, keyPublish } from '../lib/auth.mjs';
import { startRedis } from '../lib/redis.mjs';

const T = { timeout: 60000 * SCALE };
const SHORT = 300 * SCALE; // "nothing more arrives": a bounded wait that must time out

const SEND = (dest, body, headers = []) => frame('SEND', [['destination', dest], ...headers], body);
const SUB = (dest, id, headers = []) => frame('SUBSCRIBE', [['destination', dest], ['id', id], ...headers]);

/* Publishes n messages to /queue/q through STOMP SENDs with receipts. */
async function sendAll(c, q, bodies) {
  for (const b of bodies) await c.publish({ destination: `/queue/${q}`, body: b });
}

/* Collects what arrives on sub within a bounded quiet period. */
async function drain(sub, ms = SHORT) {
  const got = [];
  for (;;) {
    const m = await sub.next(ms).catch(() => null);
    if (!m) return got;
    got.push(m);
  }
}

test('STOMP queues: competing consumers get each message once, in round robin; any route publishes into the queue', T, async () => {
  await withHerald(async (h) => {
    const a = await stompClient(h);
    const b = await stompClient(h);
    const p = await stompClient(h);
    try {
      const sa = await a.subscribe('/queue/work');
      const sb = await b.subscribe('/queue/work');
      const bodies = Array.from({ length: 10 }, (_, i) => `job ${i}`);
      await sendAll(p, 'work', bodies.slice(0, 8));
      await publish(h, 'queue/work', bodies[8]); // HTTP into the queue
      await publish(h, 'queue/work', bodies[9]);
      const got = [];
      await waitFor(() => sa.pending() + sb.pending() >= 10, 5000 * SCALE, 'ten deliveries');
      const ga = await drain(sa);
      const gb = await drain(sb);
      for (const m of [...ga, ...gb]) {
        assert.equal(m.headers.destination, '/queue/work');
        assert.equal(m.headers.redelivered, undefined);
        got.push(m.body);
      }
      assert.deepEqual([...got].sort(), [...bodies].sort(), 'every message once, none twice');
      assert.equal(ga.length, 5, 'round robin: half each');
      assert.equal(gb.length, 5);
      // ack:auto acknowledged them when written: the queue is empty
      await waitFor(async () => (await metrics(h)).get('herald_stomp_queue_messages') === 0, 5000 * SCALE, 'queue empty');
      const m = await metrics(h);
      assert.equal(m.get('herald_stomp_queue_delivered_total'), 10);
      assert.equal(m.get('herald_stomp_queue_acked_total'), 10);
      // a topic subscriber of the queue's channel observes without consuming
      const obs = await p.subscribe('/topic/queue/work');
      await publish(h, 'queue/work', 'observed');
      assert.equal((await obs.next()).body, 'observed');
      const one = (await drain(sa)).length + (await drain(sb)).length;
      assert.equal(one, 1, 'the observer did not take it from the consumers');
    } finally {
      await a.close();
      await b.close();
      await p.close();
    }
  });
});

test('STOMP queues: client-individual ack, prefetch-count, NACK redelivers to another consumer with redelivered:true', T, async () => {
  await withHerald(async (h) => {
    const a = await stompClient(h);
    const b = await stompClient(h);
    try {
      const sa = await a.subscribe('/queue/ind', { ack: 'client-individual', 'prefetch-count': '2' });
      await sendAll(b, 'ind', ['m1', 'm2', 'm3', 'm4']);
      const m1 = await sa.next();
      const m2 = await sa.next();
      assert.deepEqual([m1.body, m2.body], ['m1', 'm2']);
      assert.ok(m1.headers.ack, 'client modes carry an ack header');
      await assert.rejects(sa.next(SHORT), 'prefetch-count 2: no third message before an ack');
      // acknowledging m2 alone (individual) makes room for m3; m1 stays unacknowledged
      m2.ack({ receipt: 'ack-m2' });
      await a.receipt('ack-m2');
      assert.equal((await sa.next()).body, 'm3');
      await assert.rejects(sa.next(SHORT));
      // a second consumer joins; a NACK of m1 gives it to the other consumer, marked redelivered
      const sb = await b.subscribe('/queue/ind', { ack: 'client-individual', 'prefetch-count': '5' });
      const first = await sb.next(); // m4 (was waiting for room)
      assert.equal(first.body, 'm4');
      m1.nack({ receipt: 'nack-m1' });
      await a.receipt('nack-m1');
      const re = await sb.next();
      assert.equal(re.body, 'm1');
      assert.equal(re.headers.redelivered, 'true');
      assert.equal(re.headers.destination, '/queue/ind');
      re.ack();
      first.ack({ receipt: 'ack-b' });
      await b.receipt('ack-b');
      const m = await metrics(h);
      assert.equal(m.get('herald_stomp_queue_inflight'), 1, 'm3 is still with a');
      assert.ok(m.get('herald_stomp_queue_redelivered_total') >= 1);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

test('STOMP queues: ack:client is cumulative; a consumer that leaves hands its unacknowledged messages on', T, async () => {
  await withHerald(async (h) => {
    const a = await stompClient(h);
    const p = await stompClient(h);
    let b;
    try {
      const sa = await a.subscribe('/queue/cum', { ack: 'client' });
      await sendAll(p, 'cum', ['c1', 'c2', 'c3', 'c4', 'c5']);
      const got = [];
      for (let i = 0; i < 5; i++) got.push(await sa.next());
      got[2].ack({ receipt: 'ack-c3' }); // c1..c3
      await a.receipt('ack-c3');
      await waitFor(async () => (await metrics(h)).get('herald_stomp_queue_messages') === 2, 5000 * SCALE, 'two left');
      // UNSUBSCRIBE gives c4 and c5 back; the next consumer gets them, redelivered
      sa.sub.unsubscribe({ receipt: 'unsub' });
      await a.receipt('unsub');
      b = await stompClient(h);
      const sb = await b.subscribe('/queue/cum', { ack: 'client' });
      const r4 = await sb.next();
      const r5 = await sb.next();
      assert.deepEqual([r4.body, r5.body], ['c4', 'c5']);
      assert.equal(r4.headers.redelivered, 'true');
      assert.equal(r5.headers.redelivered, 'true');
      // a dropped connection too: b goes without acknowledging, a third consumer gets them
      b.ws.terminate();
      const sa2 = await a.subscribe('/queue/cum', { ack: 'client-individual' });
      const again = [await sa2.next(), await sa2.next()];
      assert.deepEqual(again.map((m) => m.body), ['c4', 'c5']);
      again.forEach((m) => m.ack());
      await a.receipt('sync', 5000 * SCALE).catch(() => {});
    } finally {
      await a.close();
      await p.close();
      if (b) await b.close();
    }
  });
});

test('STOMP queues: a restart of herald (LMDB, after kill -9) redelivers what was not acknowledged, and not what was', T, async () => {
  const h = await startHerald();
  const dataDir = h.dataDir;
  let h2;
  try {
    const p = await stompClient(h);
    const c = await stompClient(h);
    const s = await c.subscribe('/queue/durable', { ack: 'client-individual' });
    await sendAll(p, 'durable', ['d1', 'd2', 'd3']);
    const got = [await s.next(), await s.next(), await s.next()];
    assert.deepEqual(got.map((m) => m.body), ['d1', 'd2', 'd3']);
    got[1].ack({ receipt: 'ack-d2' }); // acknowledged: must not come back
    await c.receipt('ack-d2');
    s.sub.unsubscribe({ receipt: 'u' }); // d1 and d3 go back to the queue
    await c.receipt('u');
    await p.publish({ destination: '/queue/durable', body: 'd4' }); // never delivered
    // a crash, not a clean shutdown: what was answered must already be in the store
    h.proc.kill('SIGKILL');
    await h.exitPromise;
    h.stopped = Promise.resolve(h.exited);
    await p.close();
    await c.close();
    h2 = await startHerald({ 'data-dir': dataDir });
    const c2 = await stompClient(h2);
    try {
      const s2 = await c2.subscribe('/queue/durable', { ack: 'client-individual' });
      const after = [];
      await waitFor(() => s2.pending() >= 3, 5000 * SCALE, 'three messages after the restart');
      after.push(...(await drain(s2)));
      assert.deepEqual(after.map((m) => m.body), ['d1', 'd3', 'd4']);
      assert.equal(after[0].headers.redelivered, 'true');
      assert.equal(after[1].headers.redelivered, 'true');
      assert.equal(after[2].headers.redelivered, undefined, 'd4 was never handed out');
      for (const m of after) m.ack();
      await c2.publish({ destination: '/topic/sync', body: 'x' }); // the acks are processed before this receipt
    } finally {
      await c2.close();
    }
    await h2.stop({ keepData: true });
    // everything acknowledged: nothing comes back after another restart
    h2 = await startHerald({ 'data-dir': dataDir });
    const c3 = await stompClient(h2);
    try {
      const s3 = await c3.subscribe('/queue/durable');
      await assert.rejects(s3.next(SHORT), 'nothing left');
    } finally {
      await c3.close();
    }
  } finally {
    await h.stop().catch(() => {});
    if (h2) await h2.stop();
  }
});

test('STOMP queues: max_history_memory (trim) never trims a queue: its messages wait for a consumer', T, async () => {
  await withHerald({ 'max-history-memory': '1m', 'history-bytes': '1m' }, async (h) => {
    const big = 'q'.repeat(20000);
    for (let i = 0; i < 20; i++) await publish(h, 'queue/keep', `${i}:${big}`); // 400 KB in the queue
    for (let i = 0; i < 80; i++) await publish(h, `other/${i % 4}`, 'x'.repeat(20000)); // 1.6 MB elsewhere
    const m = await metrics(h);
    assert.ok(m.get('herald_limit_hits_total{limit="max_history_memory"}') > 0, 'other channels were trimmed');
    const c = await stompClient(h);
    try {
      const s = await c.subscribe('/queue/keep', { ack: 'client', 'prefetch-count': '50' });
      await waitFor(() => s.pending() >= 20, 5000 * SCALE, 'twenty queue messages');
      const got = await drain(s);
      assert.deepEqual(got.map((x) => Number(x.body.split(':')[0])), Array.from({ length: 20 }, (_, i) => i));
      got[19].ack({ receipt: 'all' });
      await c.receipt('all');
    } finally {
      await c.close();
    }
    await waitFor(async () => (await metrics(h)).get('herald_stomp_queues') === 0, 5000 * SCALE, 'the empty queue forgotten');
    // its acknowledged messages left the channel's history
    assert.equal((await getJSON(h, '/sub/queue/keep?mode=poll&last_id=0')).messages.length, 0);
  });
});

test('STOMP queues: SENDs in a transaction enter the queue at COMMIT, never after ABORT', T, async () => {
  await withHerald(async (h) => {
    const p = await stompClient(h);
    const c = await stompClient(h);
    try {
      const s = await c.subscribe('/queue/test');
      const tx = p.client.begin('t1');
      p.client.publish({ destination: '/queue/test', body: 'aborted', headers: { transaction: tx.id } });
      tx.abort();
      const tx2 = p.client.begin('t2');
      p.client.publish({ destination: '/queue/test', body: 'one', headers: { transaction: tx2.id } });
      p.client.publish({ destination: '/queue/test', body: 'two', headers: { transaction: tx2.id } });
      await assert.rejects(s.next(SHORT), 'nothing before COMMIT');
      tx2.commit();
      assert.equal((await s.next()).body, 'one');
      assert.equal((await s.next()).body, 'two');
      await assert.rejects(s.next(SHORT), 'the aborted SEND never arrives');
    } finally {
      await p.close();
      await c.close();
    }
  });
});

test('STOMP queues: stomp_queue_max and stomp_max_queues refuse (ERROR, HTTP 507/503), counted and logged', T, async () => {
  await withHerald({ 'stomp-queue-max': '3', 'stomp-max-queues': '2' }, async (h) => {
    const p = await stompClient(h);
    try {
      await sendAll(p, 'b', ['1', '2', '3']);
    } finally {
      await p.close();
    }
    const s = await rawStomp(h);
    s.send(SEND('/queue/b', 'four', [['receipt', 'r-full']]));
    const e = await s.expect('ERROR');
    assert.equal(e.get('message'), 'queue full');
    assert.equal(e.get('receipt-id'), 'r-full');
    assert.match(e.text, /stomp_queue_max/);
    await s.waitClosed();
    const r = await tryPublish(h, 'queue/b', 'five');
    assert.equal(r.status, 507, 'HTTP publishes into a full queue are refused too');
    // consuming makes room again
    const c = await stompClient(h);
    try {
      const sub = await c.subscribe('/queue/b', { ack: 'client-individual' });
      const m = await sub.next();
      assert.equal(m.body, '1');
      m.ack({ receipt: 'a1' });
      await c.receipt('a1');
      assert.equal((await tryPublish(h, 'queue/b', 'four')).status, 200);
      // a second queue is fine, a third is not
      await c.publish({ destination: '/queue/b2', body: 'x' });
      const s3 = await rawStomp(h);
      s3.send(SEND('/queue/b3', 'y', [['receipt', 'r-q3']]));
      const e3 = await s3.expect('ERROR');
      assert.equal(e3.get('message'), 'too many queues');
      await s3.waitClosed();
      assert.notEqual((await tryPublish(h, 'queue/b4', 'z')).status, 200);
    } finally {
      await c.close();
    }
    const m = await metrics(h);
    assert.ok(m.get('herald_stomp_queue_refused_total{limit="stomp_queue_max"}') >= 2);
    assert.ok(m.get('herald_stomp_queue_refused_total{limit="stomp_max_queues"}') >= 2);
    assert.equal(m.get('herald_stomp_queues'), 2);
    assert.match(h.out, /stomp_queue_max \(3\)/);
    assert.match(h.out, /stomp_max_queues reached/);
  });
});

test('STOMP /user/: each user gets only their own; a backend reaches them by channel and by users', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const tokA = await mint({ sub: 'alice' });
    const tokB = await mint({ sub: 'bob' });
    const tokSend = await mint({ sub: 'carol', publish: ['user/+/queue/#'] });
    const a = await stompClient(h, { connectHeaders: { passcode: tokA } });
    const b = await stompClient(h, { connectHeaders: { passcode: tokB } });
    const c = await stompClient(h, { connectHeaders: { passcode: tokSend } });
    try {
      const aq = await a.subscribe('/user/queue/reply');
      const at = await a.subscribe('/user/topic/news');
      const bq = await b.subscribe('/user/queue/reply');
      // a backend: POST /pub/{channel} with the API key
      await keyPublish(h, 'user/alice/queue/reply', 'for alice');
      await keyPublish(h, 'user/bob/queue/reply', 'for bob');
      const fa = await aq.next();
      assert.equal(fa.body, 'for alice');
      assert.equal(fa.headers.destination, '/user/queue/reply', 'the destination subscribed to, as Spring sends it');
      assert.equal((await bq.next()).body, 'for bob');
      await assert.rejects(aq.next(SHORT), 'alice gets only hers');
      // POST /pub with users and user_destination
      const body = JSON.stringify({ users: ['alice', 'bob'], user_destination: '/queue/reply', data: 'to both' });
      const r = await request(h, 'POST', '/pub', {
        headers: { ...bearer(API_KEY), 'Content-Type': 'application/json', 'Content-Length': String(body.length) }, body,
      });
      assert.equal(r.status, 200, r.text);
      assert.equal((await aq.next()).body, 'to both');
      assert.equal((await bq.next()).body, 'to both');
      const tb = JSON.stringify({ users: ['alice'], user_destination: '/topic/news', data: 'news' });
      const r2 = await request(h, 'POST', '/pub', {
        headers: { ...bearer(API_KEY), 'Content-Type': 'application/json', 'Content-Length': String(tb.length) }, body: tb,
      });
      assert.equal(r2.status, 200, r2.text);
      assert.equal((await at.next()).body, 'news');
      // Spring's form: SEND to /user/{id}/queue/NAME, permission-checked
      await c.publish({ destination: '/user/bob/queue/reply', body: 'from carol' });
      assert.equal((await bq.next()).body, 'from carol');
      await assert.rejects(aq.next(SHORT));
      // alice may not send to bob (no publish rule), nor subscribe to bob's through /topic/
      const ra = await rawStomp(h, { connectHeaders: [['accept-version', '1.2'], ['passcode', tokA]] });
      ra.send(SEND('/user/bob/queue/reply', 'sneaky', [['receipt', 'r-x']]));
      assert.equal((await ra.expect('ERROR')).get('message'), 'forbidden');
      await ra.waitClosed();
      const rb = await rawStomp(h, { connectHeaders: [['accept-version', '1.2'], ['passcode', tokA]] });
      rb.send(SUB('/topic/user/bob/queue/reply', '1'));
      assert.equal((await rb.expect('ERROR')).get('message'), 'forbidden');
      await rb.waitClosed();
      await assert.rejects(bq.next(SHORT), 'bob got nothing from alice');
      // an API-key connection is nobody's user: /user/ is refused
      const rk = await rawStomp(h, { connectHeaders: [['accept-version', '1.2'], ['passcode', API_KEY]] });
      rk.send(SUB('/user/queue/reply', '1', [['receipt', 'r-k']]));
      const ek = await rk.expect('ERROR');
      assert.equal(ek.get('message'), 'forbidden');
      assert.match(ek.text, /need a user/);
      await rk.waitClosed();
      // an admin unsubscribe ends a user's queue subscription too; its messages stay queued
      const tokQ = await mint({ sub: 'dave', subscribe: ['queue/#'] });
      const d = await stompClient(h, { connectHeaders: { passcode: tokQ } });
      try {
        const dq = await d.subscribe('/queue/jobs', { ack: 'client-individual' });
        await keyPublish(h, 'queue/jobs', 'j1');
        const j1 = await dq.next();
        assert.equal(j1.body, 'j1');
        const body2 = JSON.stringify({ channel: 'queue/jobs' });
        const u = await request(h, 'POST', '/users/dave/unsubscribe', {
          headers: { ...bearer(API_KEY), 'Content-Type': 'application/json', 'Content-Length': String(body2.length) },
          body: body2,
        });
        assert.equal(u.status, 200, u.text);
        await keyPublish(h, 'queue/jobs', 'j2');
        await assert.rejects(dq.next(SHORT), 'no longer a consumer');
        const mq = (await request(h, 'GET', '/metrics', { headers: bearer(API_KEY) })).text;
        assert.match(mq, /herald_stomp_queue_messages 2\n/, 'j1 (given back) and j2 wait in the queue');
      } finally {
        await d.close();
      }
    } finally {
      await a.close();
      await b.close();
      await c.close();
    }
  });
});

test('STOMP /user/ without a user, and /app/ for sending', T, async () => {
  await withHerald(async (h) => {
    // open mode (loopback, no access control): connections are anonymous
    const s = await rawStomp(h);
    s.send(SUB('/user/queue/reply', '1', [['receipt', 'r-anon']]));
    const e = await s.expect('ERROR');
    assert.equal(e.get('message'), 'forbidden');
    assert.equal(e.get('receipt-id'), 'r-anon');
    await s.waitClosed();
    // SEND to /app/NAME publishes to channel NAME
    const c = await stompClient(h);
    try {
      const sub = await c.subscribe('/topic/chat');
      await c.publish({ destination: '/app/chat', body: 'hi' });
      assert.equal((await sub.next()).body, 'hi');
      assert.equal((await getJSON(h, '/channels/chat')).last_id, '1');
    } finally {
      await c.close();
    }
    // a queue does not take last-id; a bad prefetch-count is an ERROR
    const s2 = await rawStomp(h);
    s2.send(SUB('/queue/x', '1', [['last-id', '0']]));
    assert.match((await s2.expect('ERROR')).get('message'), /last-id/);
    await s2.waitClosed();
    const s3 = await rawStomp(h);
    s3.send(SUB('/queue/x', '1', [['prefetch-count', 'lots']]));
    assert.match((await s3.expect('ERROR')).get('message'), /prefetch-count/);
    await s3.waitClosed();
  });
});

test('STOMP queues with engine = redis: /queue/ is refused with an ERROR saying so; /topic/ and /user/ work', T, async () => {
  const redis = await startRedis();
  let h;
  try {
    h = await startHerald({ engine: 'redis', redis: redis.addr });
    const s = await rawStomp(h);
    s.send(SUB('/queue/jobs', '1', [['receipt', 'r-redis']]));
    const e = await s.expect('ERROR');
    assert.equal(e.get('message'), 'queues are not available');
    assert.equal(e.get('receipt-id'), 'r-redis');
    assert.match(e.text, /engine = redis/);
    await s.waitClosed();
    const c = await stompClient(h);
    try {
      const sub = await c.subscribe('/topic/queue/jobs'); // an ordinary channel there
      await publish(h, 'queue/jobs', 'plain');
      assert.equal((await sub.next()).body, 'plain');
      await c.publish({ destination: '/app/queue/jobs', body: 'via app' });
      assert.equal((await sub.next()).body, 'via app');
    } finally {
      await c.close();
    }
  } finally {
    if (h) await h.stop();
    await redis.destroy();
  }
});
