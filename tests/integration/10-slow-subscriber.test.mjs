// Slow subscribers: an SSE client that stops reading while megabytes are published. With
// slow_policy=drop it gets a gap event (with "dropped") when it reads again and can refetch
// the dropped range from history; with slow_policy=disconnect its connection is closed.
// Either way the server stays healthy for everyone else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  withHerald, rawRequest, publish, request, getJSON, openSSE, metrics, waitFor, waitSubscribed, withTimeout, SCALE,
} from '../lib/herald.mjs';

const T = { timeout: 60000 * SCALE };
const MSG = 16 * 1024;
const msg = (i) => `${i}:`.padEnd(MSG, 'x');

/* publishes 16 KiB messages until `enough()` (checked every 32 messages) once at least
 * minBytes went out, up to maxBytes. Returns the number published. */
async function flood(h, channel, minBytes, maxBytes, enough) {
  let n = 0;
  while (n * MSG < maxBytes) {
    n++;
    await publish(h, channel, msg(n));
    if (n % 32 === 0) {
      // the server answers others while the slow client backs up
      const hz = await withTimeout(request(h, 'GET', '/healthz'), 2000 * SCALE, 'healthz during flood');
      assert.equal(hz.status, 200);
      if (n * MSG >= minBytes && (await enough())) break;
    }
  }
  return n;
}

test('slow_policy=drop: a stalled SSE client gets a gap with "dropped" when it reads again', T, async () => {
  await withHerald({
    'max-queued-bytes': 65536, 'slow-policy': 'drop', 'history-messages': 100000, 'history-bytes': '64m',
  }, async (h) => {
    const fast = await openSSE(h, '/sub/flood'); // a healthy subscriber alongside
    const s = await openSSE(h, '/sub/flood');
    try {
      await waitSubscribed(h, 'flood', 'sse', 2);
      s.pause();
      const drops0 = (await metrics(h)).get('herald_queue_drops_total');
      const n = await flood(h, 'flood', 2 * 1024 * 1024, 8 * 1024 * 1024,
        async () => (await metrics(h)).get('herald_queue_drops_total') > drops0 + 8);
      assert.ok((await metrics(h)).get('herald_queue_drops_total') > drops0, `queue drops counted after ${n} messages`);

      // the healthy subscriber got everything
      const fastGot = await fast.take(n, 20000 * SCALE);
      assert.deepEqual(fastGot.map((e) => Number(e.id)), Array.from({ length: n }, (_, i) => i + 1));
      assert.ok(!fastGot.some((e) => e.event === 'gap'), 'no gap for the fast reader');

      // the slow one resumes reading: it drains until every flood id is accounted for by a
      // message or a gap, then a new message must arrive normally
      s.resume();
      const evs = [];
      let accounted = 0;
      while (accounted < n) {
        const e = await s.next(10000 * SCALE);
        assert.ok(e, 'stream still open under slow_policy=drop');
        evs.push(e);
        if (e.event === 'gap') accounted += JSON.parse(e.data).dropped || 0;
        else accounted = Number(e.id);
      }
      assert.equal(accounted, n, 'messages and gaps account for every published id');
      await publish(h, 'flood', 'after');
      const tail = await s.next(5000 * SCALE);
      assert.ok(tail, 'stream still open');
      evs.push(tail);
      assert.equal(tail.data, 'after', `next event after the drained backlog: ${tail.event} ${tail.data.slice(0, 80)}`);
      const gaps = evs.filter((e) => e.event === 'gap');
      assert.ok(gaps.length >= 1, 'at least one gap event');
      // gaps cover exactly the ids missing around them (summing a run of consecutive gaps)
      let prev = 0;
      let totalDropped = 0;
      let runs = 0;
      let maxRun = 0;
      for (let i = 0; i < evs.length; i++) {
        const e = evs[i];
        if (e.event === 'gap') {
          let run = 0;
          let dropped = 0;
          let j = i;
          for (; j < evs.length && evs[j].event === 'gap'; j++) {
            const g = JSON.parse(evs[j].data);
            assert.equal(g.channel, 'flood');
            assert.equal(typeof g.dropped, 'number', `gap has "dropped": ${evs[j].data}`);
            assert.ok(g.dropped > 0);
            dropped += g.dropped;
            run++;
          }
          const next = evs[j];
          assert.ok(next, 'a message follows the gap');
          assert.equal(Number(next.id) - prev - 1, dropped,
            `gap(s) after id ${prev} say dropped ${dropped} but the next id is ${next.id} (${e.data})`);
          assert.ok(e.data.includes(String(prev + 1)), `gap data names the id range: ${e.data}`);
          totalDropped += dropped;
          prev += dropped;
          runs++;
          maxRun = Math.max(maxRun, run);
          i = j - 1;
        } else {
          assert.equal(Number(e.id), prev + 1, `ids in order outside gaps (after ${prev} came ${e.id})`);
          prev = Number(e.id);
          if (e.data !== 'after') assert.equal(e.data, msg(prev), `payload of id ${prev} intact`);
        }
      }
      assert.equal(prev, n + 1, 'stream reached the message published after the flood');
      assert.ok(totalDropped > 0);

      // the client can resume from the id before the first gap to refetch from history
      const gi = evs.findIndex((e) => e.event === 'gap');
      const before = gi === 0 ? 0 : Number(evs[gi - 1].id);
      const j = await getJSON(h, `/sub/flood?mode=poll&last_id=${before}`);
      assert.equal(j.gap, false);
      assert.equal(j.messages[0].id, String(before + 1));
      assert.equal(j.messages[0].data, msg(before + 1));

      // and the server is healthy
      assert.equal((await request(h, 'GET', '/healthz')).status, 200);
      // docs/api.md: "the dropped messages are replaced by ONE event: gap whose data has
      // dropped:N and the id range"
      assert.equal(maxRun, 1, `${gaps.length} gap events for ${runs} run(s) of dropped messages; ` +
        `consecutive drops must be coalesced into one gap: ${gaps.slice(0, 4).map((g) => g.data).join(' ')}`);
    } finally {
      s.close();
      fast.close();
    }
  });
});

test('slow_policy=disconnect: a stalled SSE client is disconnected', T, async () => {
  await withHerald({ 'max-queued-bytes': 65536, 'slow-policy': 'disconnect' }, async (h) => {
    const fast = await openSSE(h, '/sub/flood');
    const s = await openSSE(h, '/sub/flood');
    try {
      await waitSubscribed(h, 'flood', 'sse', 2);
      s.pause();
      const n = await flood(h, 'flood', 2 * 1024 * 1024, 8 * 1024 * 1024,
        async () => (await getJSON(h, '/channels/flood')).subscribers < 2);
      await waitFor(async () => (await getJSON(h, '/channels/flood')).subscribers === 1, 5000 * SCALE,
        `the stalled subscriber dropped (published ${n})`);
      assert.equal((await metrics(h)).get('herald_connections{transport="sse"}'), 1);
      s.resume();
      // it reads what was sent before the disconnect, then the stream ends
      await withTimeout(s.endedPromise, 10000 * SCALE, 'stalled stream to end');
      const got = s.events.filter((e) => e.event !== 'gap').length;
      assert.ok(got < n, `the stalled client did not get everything (${got} of ${n})`);
      // the fast subscriber got everything, and keeps getting messages
      const fastGot = await fast.take(n, 20000 * SCALE);
      assert.equal(fastGot[n - 1].id, String(n));
      await publish(h, 'flood', 'still here');
      const [last] = await fast.take(1);
      assert.equal(last.data, 'still here');
    } finally {
      s.close();
      fast.close();
    }
  });
});

test('slow_policy=disconnect during the replay itself: the connection is cut and the server stays sound', T, async () => {
  // A resume whose replay alone overflows the queue is disconnected inside stream start-up.
  // Its heartbeat timer must not outlive it: once a later heartbeat proves the timer wheel went
  // past that deadline, the server (ASan build included) must still serve and exit cleanly.
  await withHerald({
    'max-queued-bytes': 1024, 'slow-policy': 'disconnect', 'sse-heartbeat': 1,
  }, async (h) => {
    for (let i = 0; i < 10; i++) await publish(h, 'replay', 'r'.repeat(1000));
    const cut = await rawRequest(h.port,
      'GET /sub/replay?last_id=0 HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n');
    assert.ok(cut.closed, 'the overflowing resume is disconnected');
    const hb = await rawRequest(h.port, 'GET /sub/other HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n',
      { timeout: 5000 * SCALE, until: (b) => b.includes('\r\n:\n\n') });
    assert.ok(!hb.timedOut, 'a heartbeat arrived on another stream (the wheel ran past the cut one)');
    const hz = await request(h, 'GET', '/healthz');
    assert.equal(hz.status, 200);
  });
});
