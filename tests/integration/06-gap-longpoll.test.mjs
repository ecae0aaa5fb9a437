// History gaps (poll, SSE, iframe), cursors from the future, long-poll holding and timeouts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  withHerald, publish, request, getJSON, openSSE, openIframe, waitSubscribed, SCALE,
} from '../lib/herald.mjs';

const T = { timeout: 30000 * SCALE };

test('gap: cursor older than history -> poll gap:true with gap_info and what is left', T, async () => {
  await withHerald({ 'history-messages': 5 }, async (h) => {
    for (let i = 1; i <= 20; i++) await publish(h, 'g', `m${i}`);
    const j = await getJSON(h, '/sub/g?mode=poll&last_id=2');
    assert.equal(j.gap, true);
    assert.deepEqual(j.gap_info, [{ channel: 'g', requested: '2', first_available: '16' }]);
    assert.deepEqual(j.messages.map((m) => m.id), ['16', '17', '18', '19', '20']);
    assert.deepEqual(j.messages.map((m) => m.data), ['m16', 'm17', 'm18', 'm19', 'm20']);
    assert.equal(j.count, 5);
    assert.equal(j.last_id, '20');

    // last_id=0 (everything in history) on a trimmed channel: also a gap
    const z = await getJSON(h, '/sub/g?mode=poll&last_id=0');
    assert.deepEqual(z.messages.map((m) => m.id), ['16', '17', '18', '19', '20']);

    // cursor exactly one before the first available id: no gap
    const ok = await getJSON(h, '/sub/g?mode=poll&last_id=15');
    assert.equal(ok.gap, false);
    assert.equal(ok.count, 5);
    assert.equal(ok.gap_info, undefined);

    // long poll reports the gap too
    const lp = await getJSON(h, '/sub/g?mode=longpoll&last_id=3');
    assert.equal(lp.gap, true);
    assert.equal(lp.gap_info[0].requested, '3');
    assert.equal(lp.gap_info[0].first_available, '16');
  });
});

test('gap: SSE sends event gap first, then the replay', T, async () => {
  await withHerald({ 'history-messages': 5 }, async (h) => {
    for (let i = 1; i <= 20; i++) await publish(h, 'g', `m${i}`);
    const s = await openSSE(h, '/sub/g', { headers: { 'Last-Event-ID': '2' } });
    try {
      const evs = await s.take(6);
      assert.equal(evs[0].event, 'gap');
      assert.deepEqual(JSON.parse(evs[0].data), { channel: 'g', requested: '2', first_available: '16' });
      assert.deepEqual(evs.slice(1).map((e) => e.id), ['16', '17', '18', '19', '20']);
      assert.deepEqual(evs.slice(1).map((e) => e.data), ['m16', 'm17', 'm18', 'm19', 'm20']);
    } finally {
      s.close();
    }
  });
});

test('gap: iframe calls the callback with {gap:true,...} before the replay', T, async () => {
  await withHerald({ 'history-messages': 5 }, async (h) => {
    for (let i = 1; i <= 20; i++) await publish(h, 'g', `m${i}`);
    const s = await openIframe(h, '/sub/g?mode=iframe&last_id=2');
    try {
      const first = await s.next();
      assert.equal(first.gap, true, `first object: ${JSON.stringify(first)}`);
      const rest = [];
      for (let i = 0; i < 5; i++) rest.push(await s.next());
      assert.deepEqual(rest.map((m) => m.id), ['16', '17', '18', '19', '20']);
    } finally {
      s.close();
    }
  });
});

test('gap: a cursor from the future counts as a gap; replay starts from history', T, async () => {
  await withHerald({ 'history-messages': 5 }, async (h) => {
    for (let i = 1; i <= 20; i++) await publish(h, 'g', `m${i}`);
    const j = await getJSON(h, '/sub/g?mode=poll&last_id=999999');
    assert.equal(j.gap, true);
    assert.equal(j.gap_info.length, 1);
    assert.equal(j.gap_info[0].channel, 'g');
    assert.equal(j.gap_info[0].requested, '999999');
    assert.deepEqual(j.messages.map((m) => m.id), ['16', '17', '18', '19', '20']);
    assert.equal(j.last_id, '20');

    const s = await openSSE(h, '/sub/g', { headers: { 'Last-Event-ID': '999999' } });
    try {
      const [g] = await s.take(1);
      assert.equal(g.event, 'gap');
      assert.equal(JSON.parse(g.data).requested, '999999');
    } finally {
      s.close();
    }
    // a fresh channel with a future cursor, too
    const f = await getJSON(h, '/sub/never-used?mode=poll&last_id=7');
    assert.equal(f.gap, true);
    assert.equal(f.count, 0);
  });
});

test('longpoll is held until a publish, and answers with it', T, async () => {
  await withHerald({ 'longpoll-timeout': 10 }, async (h) => {
    await publish(h, 'lp', 'old');
    let resolvedAt = 0;
    const started = Date.now();
    const pending = request(h, 'GET', '/sub/lp?mode=longpoll&last_id=1').then((r) => {
      resolvedAt = Date.now();
      return r;
    });
    await waitSubscribed(h, 'lp', 'longpoll', 1, 2000 * SCALE);
    // give it a real chance to (wrongly) answer early: a round trip of another request
    await request(h, 'GET', '/healthz');
    assert.equal(resolvedAt, 0, 'longpoll answered before anything was published');
    const pubAt = Date.now();
    await publish(h, 'lp', 'new');
    const r = await pending;
    assert.ok(resolvedAt >= pubAt, 'resolved only after publishing');
    assert.ok(resolvedAt - started < 9000, 'answered by the publish, not the timeout');
    assert.equal(r.status, 200);
    const j = r.json();
    assert.equal(j.count, 1);
    assert.equal(j.messages[0].data, 'new');
    assert.equal(j.messages[0].id, '2');
    assert.equal(j.last_id, '2');
    assert.equal(j.gap, false);
  });
});

test('longpoll timeout answers count 0 with the same cursor after longpoll_timeout', T, async () => {
  await withHerald({ 'longpoll-timeout': 1 }, async (h) => {
    await publish(h, 'lt', 'x');
    const t0 = Date.now();
    const j = await getJSON(h, '/sub/lt?mode=longpoll&last_id=1', { timeout: 8000 * SCALE });
    const dt = Date.now() - t0;
    assert.ok(dt >= 900, `answered after ${dt} ms, before the 1 s timeout`);
    assert.ok(dt < 4000 * SCALE, `answered after ${dt} ms`);
    assert.equal(j.count, 0);
    assert.deepEqual(j.messages, []);
    assert.equal(j.last_id, '1');
    assert.equal(j.gap, false);

    // without last_id: held, then the current cursor
    const j2 = await getJSON(h, '/sub/lt?mode=longpoll', { timeout: 8000 * SCALE });
    assert.equal(j2.count, 0);
    assert.equal(j2.last_id, '1');
  });
});

test('longpoll: everything published between two polls arrives on the next poll', T, async () => {
  await withHerald({ 'longpoll-timeout': 5 }, async (h) => {
    const first = request(h, 'GET', '/sub/lb?mode=longpoll&last_id=0');
    await waitSubscribed(h, 'lb', 'longpoll', 1, 2000 * SCALE);
    await publish(h, 'lb', 'p0');
    const j1 = (await first).json();
    assert.equal(j1.count, 1);
    for (let i = 1; i <= 5; i++) await publish(h, 'lb', `p${i}`);
    const t0 = Date.now();
    const j2 = await getJSON(h, `/sub/lb?mode=longpoll&last_id=${j1.last_id}`);
    assert.ok(Date.now() - t0 < 2000 * SCALE, 'answers at once when messages wait');
    assert.equal(j2.count, 5);
    assert.deepEqual(j2.messages.map((m) => m.data), ['p1', 'p2', 'p3', 'p4', 'p5']);
    assert.equal(j2.last_id, '6');
  });
});

test('longpoll: several waiters on one channel all get the message', T, async () => {
  await withHerald({ 'longpoll-timeout': 5 }, async (h) => {
    const reqs = Array.from({ length: 5 }, () => request(h, 'GET', '/sub/many?mode=longpoll&last_id=0'));
    await waitSubscribed(h, 'many', 'longpoll', 5, 3000 * SCALE);
    const a = await publish(h, 'many', 'all');
    const rs = await Promise.all(reqs);
    for (const r of rs) {
      assert.equal(r.status, 200);
      assert.equal(r.json().messages[0].data, 'all');
    }
    assert.equal(a.subscribers, 5, 'publish answer counts the 5 waiting long polls');
  });
});
