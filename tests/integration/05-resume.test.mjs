// Resume under churn, per transport: a publisher publishes continuously (sequence numbers as
// data) while the client disconnects and reconnects at least 100 times, resuming from its
// cursor each time. At the end it must hold every message exactly once, in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  withHerald, publish, request, openSSE, openIframe, sleep, SCALE,
} from '../lib/herald.mjs';

const T = { timeout: 60000 * SCALE };
const MIN_RECONNECTS = 100;
const MIN_MESSAGES = 300;

/* cycle(cursor, state) does one connect/read/disconnect and returns the messages it got as
 * [{id, data}] (ids as strings), in arrival order. */
async function churn(h, channel, cycle) {
  let published = 0;
  let stop = false;
  let pubErr = null;
  const publisher = (async () => {
    try {
      while (!stop) {
        published++;
        const a = await publish(h, channel, String(published));
        if (a.id !== String(published)) throw new Error(`publish ${published} got id ${a.id}`);
        if (published % 2 === 0) await sleep(1);
      }
    } catch (e) {
      pubErr = e;
    }
  })();

  const got = [];
  let cursor = 0;
  let reconnects = 0;
  const deadline = Date.now() + 12000 * SCALE;
  try {
    // churn while the publisher runs
    while ((reconnects < MIN_RECONNECTS || published < MIN_MESSAGES) && Date.now() < deadline && !pubErr) {
      const msgs = await cycle(cursor, reconnects);
      reconnects++;
      for (const m of msgs) {
        got.push(m);
        cursor = Number(m.id);
      }
    }
  } finally {
    stop = true;
    await publisher;
  }
  if (pubErr) throw pubErr;
  assert.ok(reconnects >= MIN_RECONNECTS, `only ${reconnects} reconnects in time`);
  // drain: keep resuming until the cursor reaches the last published id
  const total = published;
  const drainDeadline = Date.now() + 8000 * SCALE;
  while (cursor < total && Date.now() < drainDeadline) {
    const msgs = await cycle(cursor, reconnects++);
    for (const m of msgs) {
      got.push(m);
      cursor = Number(m.id);
    }
  }
  const ids = got.map((m) => Number(m.id));
  const firstBad = ids.findIndex((id, i) => id !== i + 1);
  assert.equal(firstBad, -1, `message ${firstBad} has id ${ids[firstBad]} (want ${firstBad + 1}); around: ${ids.slice(Math.max(0, firstBad - 3), firstBad + 3)}`);
  assert.equal(got.length, total, `got ${got.length} of ${total} messages`);
  for (const m of got) assert.equal(m.data, m.id, `data matches id for ${m.id}`);
  return { reconnects, total };
}

const FLAGS = { 'history-messages': 100000, 'history-bytes': '64m', 'longpoll-timeout': 1 };

test('resume: sse with Last-Event-ID / last_id across 100+ reconnects', T, async () => {
  await withHerald(FLAGS, async (h) => {
    await churn(h, 'rs', async (cursor, n) => {
      // alternate between the header and the query parameter
      const opts = {};
      let p = `/sub/rs?last_id=${cursor}`;
      if (n % 2 === 1) {
        p = cursor === 0 ? '/sub/rs?last_id=0' : `/sub/rs?last_id=${cursor + 1000000}`; // header must win
        if (cursor !== 0) opts.headers = { 'Last-Event-ID': String(cursor) };
      }
      const s = await openSSE(h, p, opts);
      const out = [];
      try {
        if (s.status !== 200) throw new Error(`SSE status ${s.status}`);
        const want = 1 + (n % 7);
        const until = Date.now() + 100;
        while (out.length < want && Date.now() < until) {
          let e;
          try {
            e = await s.next(Math.max(1, until - Date.now()));
          } catch {
            break; // nothing within the window: disconnect anyway
          }
          if (e === null) throw new Error('server ended the SSE stream');
          if (e.event === 'gap') throw new Error(`unexpected gap: ${e.data}`);
          out.push({ id: e.id, data: e.data });
        }
      } finally {
        s.close();
      }
      return out;
    });
  });
});

test('resume: poll across 100+ reconnects', T, async () => {
  await withHerald(FLAGS, async (h) => {
    await churn(h, 'rp', async (cursor) => {
      const r = await request(h, 'GET', `/sub/rp?mode=poll&last_id=${cursor}`);
      assert.equal(r.status, 200);
      const j = r.json();
      assert.equal(j.gap, false);
      if (j.count === 0) assert.equal(j.last_id, String(cursor));
      else assert.equal(j.last_id, j.messages[j.messages.length - 1].id);
      return j.messages.map((m) => ({ id: m.id, data: m.data }));
    });
  });
});

test('resume: longpoll across 100+ reconnects, some abandoned mid-hold', T, async () => {
  await withHerald(FLAGS, async (h) => {
    await churn(h, 'rl', async (cursor, n) => {
      if (n % 5 === 4) {
        // abandon a request; whatever it would have carried must come on the next one
        const ac = new AbortController();
        const p = request(h, 'GET', `/sub/rl?mode=longpoll&last_id=${cursor}`, { signal: ac.signal }).catch(() => null);
        await sleep(n % 3);
        ac.abort();
        await p;
        return [];
      }
      const r = await request(h, 'GET', `/sub/rl?mode=longpoll&last_id=${cursor}`);
      assert.equal(r.status, 200);
      const j = r.json();
      assert.equal(j.gap, false);
      return j.messages.map((m) => ({ id: m.id, data: m.data }));
    });
  });
});

test('resume: iframe with last_id across 100+ reconnects', T, async () => {
  await withHerald(FLAGS, async (h) => {
    await churn(h, 'ri', async (cursor, n) => {
      const s = await openIframe(h, `/sub/ri?mode=iframe&last_id=${cursor}`);
      const out = [];
      try {
        assert.equal(s.status, 200);
        const want = 1 + (n % 7);
        const until = Date.now() + 100;
        while (out.length < want && Date.now() < until) {
          let m;
          try {
            m = await s.next(Math.max(1, until - Date.now()));
          } catch {
            break;
          }
          if (m === null) throw new Error('server ended the iframe stream');
          if (m.gap) throw new Error(`unexpected gap: ${JSON.stringify(m)}`);
          out.push({ id: m.id, data: m.data });
        }
      } finally {
        s.close();
      }
      return out;
    });
  });
});

test('resume: multi-channel SSE with the composite cursor across 100+ reconnects', T, async () => {
  await withHerald(FLAGS, async (h) => {
    let stop = false;
    const published = { m1: 0, m2: 0 };
    const publisher = (async () => {
      let k = 0;
      while (!stop) {
        const ch = k++ % 3 === 0 ? 'm2' : 'm1';
        published[ch]++;
        await publish(h, ch, `${ch}:${published[ch]}`);
        if (k % 2 === 0) await sleep(1);
      }
    })();
    const got = { m1: [], m2: [] };
    let cursor = [0, 0];
    let reconnects = 0;
    const cycle = async () => {
      // the first connect uses last_id=0,0 (the publisher is already running); then the header
      const s = cursor[0] + cursor[1]
        ? await openSSE(h, '/sub/m1,m2', { headers: { 'Last-Event-ID': cursor.join(',') } })
        : await openSSE(h, '/sub/m1,m2?last_id=0,0');
      const p0 = cursor.join(',');
      try {
        assert.equal(s.status, 200);
        const want = 1 + (reconnects % 7);
        const until = Date.now() + 100;
        let n = 0;
        while (n < want && Date.now() < until) {
          let e;
          try {
            e = await s.next(Math.max(1, until - Date.now()));
          } catch {
            break;
          }
          if (e === null) throw new Error('stream ended');
          if (e.event === 'gap') throw new Error(`unexpected gap after ${p0}: ${e.data}`);
          const [ch, seq] = e.data.split(':');
          got[ch].push(Number(seq));
          const next = e.id.split(',').map(Number);
          assert.equal(next.length, 2, `composite id ${e.id}`);
          cursor = next;
          n++;
        }
      } finally {
        s.close();
        reconnects++;
      }
    };
    const deadline = Date.now() + 12000 * SCALE;
    try {
      while ((reconnects < 100 || published.m1 + published.m2 < 300) && Date.now() < deadline) await cycle();
    } finally {
      stop = true;
      await publisher;
    }
    assert.ok(reconnects >= 100, `${reconnects} reconnects`);
    const drain = Date.now() + 8000 * SCALE;
    while ((cursor[0] < published.m1 || cursor[1] < published.m2) && Date.now() < drain) await cycle();
    for (const ch of ['m1', 'm2']) {
      const want = Array.from({ length: published[ch] }, (_, i) => i + 1);
      const firstBad = got[ch].findIndex((v, i) => v !== i + 1);
      assert.equal(firstBad, -1, `${ch}: message #${firstBad} is ${got[ch][firstBad]}`);
      assert.deepEqual(got[ch], want, `${ch}: every message once, in order`);
    }
  });
});
