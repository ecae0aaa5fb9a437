// Multi-channel subscriptions: /sub/a,b with composite cursors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  withHerald, publish, request, getJSON, openSSE, waitSubscribed, loadEventSource, waitFor, tcpProxy, SCALE,
} from '../lib/herald.mjs';

const T = { timeout: 30000 * SCALE };

test('SSE /sub/a,b receives from both channels; id is the composite cursor; data stays raw', T, async () => {
  await withHerald(async (h) => {
    const s = await openSSE(h, '/sub/a,b');
    try {
      await waitSubscribed(h, 'b', 'sse');
      await publish(h, 'a', 'a1');
      await publish(h, 'b', 'b1');
      await publish(h, 'a', 'a2\nsecond line');
      await publish(h, 'b', Buffer.from([0xff, 0x00]));
      const evs = await s.take(4);
      assert.deepEqual(evs.map((e) => e.id), ['1,0', '1,1', '2,1', '2,2']);
      assert.deepEqual(evs.slice(0, 3).map((e) => e.data), ['a1', 'b1', 'a2\nsecond line']);
      assert.equal(evs[3].event, 'message@base64');
      assert.ok(Buffer.from(evs[3].data, 'base64').equals(Buffer.from([0xff, 0x00])));
    } finally {
      s.close();
    }
    // resume with the composite cursor
    await publish(h, 'b', 'b3');
    await publish(h, 'a', 'a3');
    const s2 = await openSSE(h, '/sub/a,b', { headers: { 'Last-Event-ID': '2,2' } });
    try {
      const evs = await s2.take(2);
      const byData = Object.fromEntries(evs.map((e) => [e.data, e.id]));
      assert.deepEqual(Object.keys(byData).sort(), ['a3', 'b3']);
      // whichever order the replay uses, the final cursor covers both
      assert.equal(evs[1].id, '3,3');
    } finally {
      s2.close();
    }
  });
});

test('poll /sub/a,b?last_id=1,0 returns what is after the per-channel cursor', T, async () => {
  await withHerald(async (h) => {
    await publish(h, 'a', 'a1');
    await publish(h, 'a', 'a2');
    await publish(h, 'b', 'b1');
    await publish(h, 'c', 'c1'); // not subscribed
    const j = await getJSON(h, '/sub/a,b?mode=poll&last_id=1,0');
    assert.equal(j.count, 2);
    assert.equal(j.last_id, '2,1');
    assert.equal(j.gap, false);
    const got = j.messages.map((m) => `${m.channel}:${m.id}:${m.data}`).sort();
    assert.deepEqual(got, ['a:2:a2', 'b:1:b1']);

    const none = await getJSON(h, '/sub/a,b?mode=poll&last_id=2,1');
    assert.equal(none.count, 0);
    assert.equal(none.last_id, '2,1');

    const cur = await getJSON(h, '/sub/a,b,c?mode=poll');
    assert.equal(cur.last_id, '2,1,1');
    assert.equal(cur.count, 0);
  });
});

test('longpoll /sub/a,b wakes on either channel', T, async () => {
  await withHerald({ 'longpoll-timeout': 5 }, async (h) => {
    const p = request(h, 'GET', '/sub/a,b?mode=longpoll&last_id=0,0');
    await waitSubscribed(h, 'b', 'longpoll');
    await publish(h, 'b', 'wake');
    const j = (await p).json();
    assert.equal(j.count, 1);
    assert.equal(j.messages[0].channel, 'b');
    assert.equal(j.last_id, '0,1');
  });
});

test('up to 16 channels per subscription; 17 is rejected', T, async () => {
  await withHerald(async (h) => {
    const names = Array.from({ length: 17 }, (_, i) => `ch${i}`);
    const ok = await request(h, 'GET', `/sub/${names.slice(0, 16).join(',')}?mode=poll`);
    assert.equal(ok.status, 200);
    assert.equal(ok.json().last_id, Array(16).fill('0').join(','));
    const bad = await request(h, 'GET', `/sub/${names.join(',')}?mode=poll`);
    assert.ok(bad.status >= 400 && bad.status < 500, `17 channels answered ${bad.status}`);
    assert.equal(typeof bad.json().error, 'string');
  });
});

test('EventSource on /sub/a,b resumes every channel with the composite Last-Event-ID', T, async () => {
  const EventSource = loadEventSource();
  await withHerald({ 'sse-retry': 100 }, async (h) => {
    const proxy = await tcpProxy(h.port);
    const es = new EventSource(`http://127.0.0.1:${proxy.port}/sub/x,y`);
    const got = [];
    es.addEventListener('message', (e) => got.push([e.lastEventId, e.data]));
    try {
      await waitFor(() => es.readyState === EventSource.OPEN, 5000 * SCALE, 'open');
      await waitSubscribed(h, 'y', 'sse');
      await publish(h, 'x', 'x1');
      await publish(h, 'y', 'y1');
      await waitFor(() => got.length === 2, 5000 * SCALE, '2 events');
      assert.deepEqual(got, [['1,0', 'x1'], ['1,1', 'y1']]);
      proxy.down();
      proxy.cut();
      await waitFor(async () => (await getJSON(h, '/channels/x')).subscribers === 0, 5000 * SCALE, 'cut noticed');
      await publish(h, 'y', 'y2');
      await publish(h, 'x', 'x2');
      proxy.up();
      await waitFor(() => got.length >= 4, 10000 * SCALE, 'replay after reconnect');
      assert.deepEqual(got.slice(2).map((g) => g[1]).sort(), ['x2', 'y2']);
      assert.equal(got[3][0], '2,2');
      await publish(h, 'x', 'x3');
      await waitFor(() => got.length >= 5, 5000 * SCALE, 'live after reconnect');
      assert.deepEqual(got[4], ['3,2', 'x3']);
      assert.equal(got.length, 5, 'nothing delivered twice');
    } finally {
      es.close();
      await proxy.close();
    }
  });
});

test('multi-channel poll capped by poll_max_messages: the cursor covers only what was returned', T, async () => {
  await withHerald({ 'poll-max-messages': 3 }, async (h) => {
    for (let i = 1; i <= 5; i++) {
      await publish(h, 'a', `a${i}`);
      await publish(h, 'b', `b${i}`);
    }
    const seen = [];
    let cursor = '0,0';
    for (let round = 0; round < 8 && seen.length < 10; round++) {
      const j = await getJSON(h, `/sub/a,b?mode=poll&last_id=${cursor}`);
      assert.ok(j.count <= 3);
      assert.equal(j.gap, false);
      seen.push(...j.messages.map((m) => m.data));
      cursor = j.last_id;
    }
    assert.deepEqual([...seen].sort(), ['a1', 'a2', 'a3', 'a4', 'a5', 'b1', 'b2', 'b3', 'b4', 'b5']);
    assert.equal(seen.length, 10, 'nothing twice');
    assert.deepEqual(seen.filter((d) => d[0] === 'a'), ['a1', 'a2', 'a3', 'a4', 'a5'], 'per-channel order');
    assert.deepEqual(seen.filter((d) => d[0] === 'b'), ['b1', 'b2', 'b3', 'b4', 'b5'], 'per-channel order');
    assert.equal(cursor, '5,5');
  });
});

test('multi-channel gaps: gap_info per channel in polls, gap event before the channel replay in SSE', T, async () => {
  await withHerald({ 'history-messages': 3 }, async (h) => {
    for (let i = 1; i <= 10; i++) await publish(h, 'a', `a${i}`);
    for (let i = 1; i <= 2; i++) await publish(h, 'b', `b${i}`);
    const j = await getJSON(h, '/sub/a,b?mode=poll&last_id=1,0');
    assert.equal(j.gap, true);
    assert.deepEqual(j.gap_info, [{ channel: 'a', requested: '1', first_available: '8' }]);
    assert.deepEqual(j.messages.map((m) => m.data).sort(), ['a10', 'a8', 'a9', 'b1', 'b2']);
    assert.equal(j.last_id, '10,2');

    const s = await openSSE(h, '/sub/b,a', { headers: { 'Last-Event-ID': '0,2' } });
    try {
      const evs = await s.take(6);
      const gi = evs.findIndex((e) => e.event === 'gap');
      assert.ok(gi >= 0, 'a gap event');
      assert.deepEqual(JSON.parse(evs[gi].data), { channel: 'a', requested: '2', first_available: '8' });
      // the gap comes before the replay of its channel
      const firstA = evs.findIndex((e) => e.data[0] === 'a' && e.event !== 'gap');
      assert.ok(gi < firstA, 'gap before channel a replay');
      const msgs = evs.filter((e) => e.event !== 'gap');
      assert.deepEqual(msgs.map((e) => e.data).sort(), ['a10', 'a8', 'a9', 'b1', 'b2']);
      assert.equal(evs[5].id, '2,10');
    } finally {
      s.close();
    }
  });
});
