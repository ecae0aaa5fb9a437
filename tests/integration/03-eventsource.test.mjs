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

/* Payloads with line breaks, as the event-stream format delivers them (WHATWG HTML, "Server-sent
 * events": a line ends at LF, CR or CRLF; data lines join with LF): [published, what onmessage
 * sees]. Only invalid UTF-8 goes base64-encoded, under "message@base64". */
const LINES = [
  ['a\nb', 'a\nb'],
  ['cr\rcr', 'cr\ncr'],
  ['crlf\r\ncrlf', 'crlf\ncrlf'],
  ['trailing newline\n', 'trailing newline\n'],
  ['empty\n\nline', 'empty\n\nline'],
  ['data: looks like a field\nid: 99\nevent: x\n\nretry: 1', 'data: looks like a field\nid: 99\nevent: x\n\nretry: 1'],
  [' leading space', ' leading space'],
  ['\n', '\n'],
  ['\r', '\n'],
  ['\r\n\r\n', '\n\n'],
  ['', ''],
  ['nul\0inside', 'nul\0inside'],
  ['lone cr at the end\r', 'lone cr at the end\n'],
  ['\ufeffBOM first', '\ufeffBOM first'],
];
const BIN = Buffer.from([0xff, 0x00, 0x0d, 0x0a, 0xc3]);

test('EventSource onmessage gets multi-line payloads as the format says (CR, CRLF as LF); binary as message@base64; resume across them', T, async () => {
  await withHerald({ 'sse-retry': 100 }, async (h) => {
    const proxy = await tcpProxy(h.port);
    const es = new EventSource(`http://127.0.0.1:${proxy.port}/sub/ml`);
    try {
      const got = [];
      es.onmessage = (e) => got.push({ data: e.data, id: e.lastEventId });
      es.addEventListener('message@base64', (e) => got.push({ b64: e.data, id: e.lastEventId }));
      await waitFor(() => es.readyState === EventSource.OPEN, 5000 * SCALE, 'EventSource open');
      await waitSubscribed(h, 'ml', 'sse');
      const half = 7;
      for (const [p] of LINES.slice(0, half)) await publish(h, 'ml', p);
      await waitFor(() => got.length >= half, 5000 * SCALE, 'first half');
      // cut; the rest (and the binary one) is published while the client is away
      proxy.down();
      proxy.cut();
      await waitFor(async () => (await fetch(h.url('/channels/ml')).then((x) => x.json())).subscribers === 0,
        5000 * SCALE, 'server notices the cut');
      for (const [p] of LINES.slice(half)) await publish(h, 'ml', p);
      await publish(h, 'ml', BIN);
      proxy.up();
      await waitFor(() => got.length >= LINES.length + 1, 10000 * SCALE, 'the rest after the reconnect');
      await publish(h, 'ml', 'live\r\nagain');
      await waitFor(() => got.length >= LINES.length + 2, 5000 * SCALE, 'a live one after the reconnect');
      assert.deepEqual(got.slice(0, LINES.length), LINES.map(([, want], i) => ({ data: want, id: String(i + 1) })));
      const bin = got[LINES.length];
      assert.equal(bin.id, String(LINES.length + 1));
      assert.ok(Buffer.from(bin.b64, 'base64').equals(BIN), 'binary payload byte for byte');
      assert.deepEqual(got[LINES.length + 1], { data: 'live\nagain', id: String(LINES.length + 2) });
      assert.equal(got.length, LINES.length + 2, 'each message exactly once');
      assert.ok(proxy.accepted >= 2, 'reconnected');
    } finally {
      es.close();
      await proxy.close();
    }
  });
});
