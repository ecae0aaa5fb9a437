// The `eventsource` npm client (v2, W3C EventSource for Node): messages, multi-line data, named
// events, and automatic reconnection with Last-Event-ID through a cuttable TCP proxy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  withHerald, publish, waitFor, waitSubscribed, tcpProxy, loadEventSource, SCALE,
} from '../lib/herald.mjs';

const T = { timeout: 30000 * SCALE };
const EventSource = loadEventSource();

function collect(es, types) {
  const got = [];
  for (const t of types) {
    es.addEventListener(t, (e) => got.push({ type: t, data: e.data, lastEventId: e.lastEventId }));
  }
  return got;
}

test('EventSource receives messages, multi-line data intact, and named events', T, async () => {
  await withHerald(async (h) => {
    const es = new EventSource(h.url('/sub/es'));
    try {
      const got = collect(es, ['message', 'news-event']);
      await waitFor(() => es.readyState === EventSource.OPEN, 5000 * SCALE, 'EventSource open');
      await waitSubscribed(h, 'es', 'sse');
      await publish(h, 'es', 'plain');
      await publish(h, 'es', 'a\nb\nc');
      await publish(h, 'es', 'named payload', { event: 'news-event' });
      await publish(h, 'es', '{"json":true}');
      await waitFor(() => got.length >= 4, 5000 * SCALE, '4 events');
      assert.deepEqual(got, [
        { type: 'message', data: 'plain', lastEventId: '1' },
        { type: 'message', data: 'a\nb\nc', lastEventId: '2' },
        { type: 'news-event', data: 'named payload', lastEventId: '3' },
        { type: 'message', data: '{"json":true}', lastEventId: '4' },
      ]);
    } finally {
      es.close();
    }
  });
});

test('EventSource reconnects after the connection is cut and resumes with Last-Event-ID exactly once', T, async () => {
  await withHerald({ 'sse-retry': 100 }, async (h) => {
    const proxy = await tcpProxy(h.port);
    const es = new EventSource(`http://127.0.0.1:${proxy.port}/sub/rc`);
    const errors = [];
    es.addEventListener('error', (e) => errors.push(e));
    try {
      const got = collect(es, ['message']);
      await waitFor(() => es.readyState === EventSource.OPEN, 5000 * SCALE, 'EventSource open');
      await waitSubscribed(h, 'rc', 'sse');
      for (let i = 1; i <= 3; i++) await publish(h, 'rc', `m${i}`);
      await waitFor(() => got.length >= 3, 5000 * SCALE, 'first 3 messages');

      for (let round = 0; round < 3; round++) {
        // cut the stream and keep the proxy refusing while messages are published
        proxy.down();
        proxy.cut();
        await waitFor(async () => {
          const r = await fetch(h.url('/channels/rc')).then((x) => x.json());
          return r.subscribers === 0;
        }, 5000 * SCALE, 'server notices the cut subscriber');
        const base = got.length;
        for (let i = 1; i <= 3; i++) await publish(h, 'rc', `m${base + i}`);
        const accepted = proxy.accepted;
        proxy.up();
        await waitFor(() => got.length >= base + 3, 10000 * SCALE, `messages published while cut (round ${round})`);
        assert.ok(proxy.accepted > accepted, 'the client reconnected through the proxy');
        // and live delivery continues on the new connection
        await publish(h, 'rc', `m${base + 4}`);
        await waitFor(() => got.length >= base + 4, 5000 * SCALE, 'live message after reconnect');
      }
      // nothing more arrives: every message exactly once, in order
      const n = got.length;
      assert.deepEqual(got.map((g) => g.data), Array.from({ length: n }, (_, i) => `m${i + 1}`));
      assert.deepEqual(got.map((g) => g.lastEventId), Array.from({ length: n }, (_, i) => String(i + 1)));
      assert.equal(n, 3 + 3 * 4);
      assert.ok(errors.length >= 3, 'EventSource saw the cuts');
    } finally {
      es.close();
      await proxy.close();
    }
  });
});
