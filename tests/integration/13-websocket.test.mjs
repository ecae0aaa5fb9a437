// WebSocket (RFC 6455 + RFC 7692 permessage-deflate): plain subscribe with the npm `ws` client,
// compression, the handshake's refusals, every frame rule with the byte-exact raw client
// (tests/lib/wsraw.mjs) asserting the exact Close code, heartbeats, and Close 1001 at shutdown.
// After each protocol violation another subscriber on the same server must still get a message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import zlib from 'node:zlib';
import WebSocket from 'ws';
import {
  withHerald, startHerald, publish, request, waitFor, waitSubscribed, withTimeout, metrics,
  loadEventSource, nastyBytes, parseResponses, SCALE,
} from '../lib/herald.mjs';
import { wsOpen, wsConnect, WsRaw, OP, frame, closePayload, acceptFor, newKey } from '../lib/wsraw.mjs';

const T = { timeout: 60000 * SCALE };
const EventSource = loadEventSource();
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/* ---------------------------------------------------------------- helpers */

/* A `ws` client that records messages ({data: Buffer, binary}), pings and its close. */
function wsc(h, path, opts = {}) {
  const ws = new WebSocket(`ws://127.0.0.1:${h.port}${path}`, opts);
  const c = { ws, msgs: [], pings: 0, errors: [], closed: null, ext: undefined };
  // the negotiated extensions as the server answered them (ws.extensions holds only names)
  ws.on('upgrade', (res) => (c.ext = res.headers['sec-websocket-extensions']));
  ws.on('message', (data, isBinary) => c.msgs.push({ data: Buffer.from(data), binary: isBinary }));
  ws.on('ping', () => c.pings++);
  ws.on('error', (e) => c.errors.push(e));
  c.closedP = new Promise((r) =>
    ws.on('close', (code, reason) => {
      c.closed = { code, reason: reason.toString() };
      r(c.closed);
    }),
  );
  c.opened = withTimeout(
    new Promise((res, rej) => {
      ws.once('open', res);
      ws.once('error', rej);
    }),
    5000 * SCALE,
    `ws open ${path}`,
  );
  c.texts = () => c.msgs.map((m) => m.data.toString('utf8'));
  c.waitMsgs = (n, what = `${n} messages on ${path}`) => waitFor(() => c.msgs.length >= n, 5000 * SCALE, what);
  return c;
}

/* A subscriber on channel "watch": check(tag) publishes tag and requires it to arrive. */
async function watcher(h) {
  const c = wsc(h, '/sub/watch');
  await c.opened;
  assert.ok(await waitSubscribed(h, 'watch', 'websocket'), 'watcher subscribed');
  c.check = async (tag) => {
    await publish(h, 'watch', tag);
    await waitFor(() => c.texts().includes(tag), 5000 * SCALE, `watcher still receives after: ${tag}`);
    assert.equal(c.closed, null, `watcher still open after: ${tag}`);
  };
  return c;
}

/* Text with short-range redundancy (4 letters: Huffman shrinks it even with a 512-byte window)
 * and long-range redundancy (a 3000-byte block repeated: only a >= 4 KB window finds it). */
function compressible(n, seed = 7) {
  let x = seed;
  const block = [];
  for (let i = 0; i < 3000; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    block.push('abcd'[x & 3]);
  }
  return block.join('').repeat(Math.ceil(n / 3000)).slice(0, n);
}

/* A message's payload as permessage-deflate sends it: raw DEFLATE, sync-flushed, tail removed. */
function pmdCompress(buf) {
  const z = zlib.deflateRawSync(buf, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  assert.ok(z.subarray(-4).equals(TAIL));
  return z.subarray(0, -4);
}

function inflate(payload, windowBits = 15) {
  // chunkSize 64: every back-reference beyond the current output chunk is checked against the
  // window, so a stream that needs a larger window than windowBits fails here
  return zlib.inflateRawSync(Buffer.concat([payload, TAIL]), {
    windowBits,
    chunkSize: 64,
    finishFlush: zlib.constants.Z_SYNC_FLUSH,
  });
}

async function bytesSent(h) {
  return (await metrics(h)).get('herald_bytes_sent_total');
}
async function bytesReceived(h) {
  return (await metrics(h)).get('herald_bytes_received_total');
}

/* ---------------------------------------------------------------- plain subscribe */

test('ws client: UTF-8 payloads arrive as text frames, others as binary, byte-exact and in order', T, async () => {
  await withHerald(async (h) => {
    const c = wsc(h, '/sub/t', { perMessageDeflate: false });
    try {
      await c.opened;
      assert.ok(await waitSubscribed(h, 't', 'websocket'));
      const bin = nastyBytes(300, 5);
      const sent = [
        Buffer.from('plain ascii'),
        Buffer.from('héllo wörld € 𝄞 日本'),
        bin,
        Buffer.from('{"json":true,"n":[1,2,3]}'),
        Buffer.from([0xff, 0xfe, 0x00, 0x01]),
        Buffer.from('a\nb\r\nc\0d'), // NUL and newlines are still valid UTF-8
        Buffer.from([0xed, 0xa0, 0x80]), // a UTF-16 surrogate: not UTF-8
        Buffer.from('x'.repeat(70000)), // 64-bit length on the wire
      ];
      for (const b of sent) await publish(h, 't', b);
      await c.waitMsgs(sent.length);
      assert.deepEqual(
        c.msgs.map((m) => m.binary),
        [false, false, true, false, true, false, true, false],
        'text frame iff the payload is valid UTF-8',
      );
      for (let i = 0; i < sent.length; i++) assert.ok(c.msgs[i].data.equals(sent[i]), `message ${i} byte-exact`);
      assert.equal(c.ext, undefined, 'no extension unless offered');
    } finally {
      c.ws.terminate();
    }
  });
});

test('ws client: ?last_id= resumes with exactly the missed messages, then live ones', T, async () => {
  await withHerald(async (h) => {
    const a = wsc(h, '/sub/r');
    await a.opened;
    assert.ok(await waitSubscribed(h, 'r', 'websocket'));
    for (let i = 1; i <= 3; i++) await publish(h, 'r', `m${i}`);
    await a.waitMsgs(3);
    assert.deepEqual(a.texts(), ['m1', 'm2', 'm3']);
    a.ws.close();
    await withTimeout(a.closedP, 5000 * SCALE, 'first client closed');
    await waitFor(async () => (await request(h, 'GET', '/channels/r')).json().subscribers === 0, 5000 * SCALE, 'unsubscribed');
    // missed while away
    for (let i = 4; i <= 6; i++) await publish(h, 'r', `m${i}`);
    const b = wsc(h, '/sub/r?last_id=3');
    try {
      await b.opened;
      await b.waitMsgs(3, 'replay of m4..m6');
      await publish(h, 'r', 'm7');
      await b.waitMsgs(4, 'live m7');
      assert.deepEqual(b.texts(), ['m4', 'm5', 'm6', 'm7'], 'exactly the missed ones, once, then live');
      // a resume from the middle of history
      const c = wsc(h, '/sub/r?last_id=5');
      await c.opened;
      await publish(h, 'r', 'm8');
      await c.waitMsgs(3);
      assert.deepEqual(c.texts(), ['m6', 'm7', 'm8']);
      c.ws.terminate();
      // a cursor at the head replays nothing
      const d = wsc(h, '/sub/r?last_id=8');
      await d.opened;
      await waitSubscribed(h, 'r', 'websocket', 2);
      await publish(h, 'r', 'm9');
      await d.waitMsgs(1);
      assert.deepEqual(d.texts(), ['m9']);
      d.ws.terminate();
    } finally {
      b.ws.terminate();
    }
  });
});

test('ws client: /sub/a,b gets both channels (and nothing else) in publish order', T, async () => {
  await withHerald(async (h) => {
    const c = wsc(h, '/sub/a,b');
    try {
      await c.opened;
      assert.ok(await waitSubscribed(h, 'a', 'websocket'));
      assert.ok(await waitSubscribed(h, 'b', 'websocket'));
      await publish(h, 'a', 'a1');
      await publish(h, 'c', 'c1');
      await publish(h, 'b', 'b1');
      await publish(h, 'a', 'a2');
      await publish(h, 'b', 'b2');
      await c.waitMsgs(4);
      await publish(h, 'a', 'end');
      await c.waitMsgs(5);
      assert.deepEqual(c.texts(), ['a1', 'b1', 'a2', 'b2', 'end']);
    } finally {
      c.ws.terminate();
    }
  });
});

test('one POST /pub reaches WebSocket (ws and raw) and SSE (eventsource) subscribers of the channel', T, async () => {
  await withHerald(async (h) => {
    const c = wsc(h, '/sub/mix');
    const raw = await wsConnect(h.port, { path: '/sub/mix' });
    const es = new EventSource(h.url('/sub/mix'));
    const sse = [];
    es.addEventListener('message', (e) => sse.push(e.data));
    try {
      await c.opened;
      await waitFor(() => es.readyState === EventSource.OPEN, 5000 * SCALE, 'EventSource open');
      assert.ok(await waitSubscribed(h, 'mix', null, 3), 'three subscribers');
      const r = await publish(h, 'mix', 'to everyone ✓');
      assert.equal(r.subscribers, 3, 'publish reached 3 subscribers');
      await c.waitMsgs(1);
      await waitFor(() => sse.length >= 1, 5000 * SCALE, 'SSE event');
      const f = await raw.next();
      assert.equal(c.texts()[0], 'to everyone ✓');
      assert.equal(sse[0], 'to everyone ✓');
      assert.equal(f.opcode, OP.TEXT);
      assert.equal(f.fin, true);
      assert.equal(f.rsv1, false);
      assert.equal(f.masked, false, 'server frames are not masked');
      assert.equal(f.payload.toString(), 'to everyone ✓');
      const m = await metrics(h);
      assert.ok(m.get('herald_connections{transport="websocket"}') >= 2);
      assert.ok(m.get('herald_messages_delivered_total{transport="websocket"}') >= 2);
    } finally {
      c.ws.terminate();
      raw.close();
      es.close();
    }
  });
});

/* ---------------------------------------------------------------- permessage-deflate */

const DEFLATE_CONFIGS = [
  ['perMessageDeflate: true', true, /^permessage-deflate(;|$)/],
  ['serverMaxWindowBits: 10', { serverMaxWindowBits: 10 }, /server_max_window_bits=10/],
  ['clientNoContextTakeover', { clientNoContextTakeover: true }, /client_no_context_takeover/],
];

for (const [name, pmd, extRe] of DEFLATE_CONFIGS) {
  test(`permessage-deflate (${name}): negotiated, large messages both ways intact and compressed on the wire`, T, async () => {
    await withHerald({ echo: 'true' }, async (h) => {
      const c = wsc(h, '/sub/z', { perMessageDeflate: pmd });
      const e = wsc(h, '/echo', { perMessageDeflate: pmd });
      try {
        await c.opened;
        await e.opened;
        for (const x of [c, e]) {
          assert.equal(x.ws.extensions, 'permessage-deflate', 'negotiated');
          assert.match(x.ext, /^permessage-deflate;/);
          assert.match(x.ext, /server_no_context_takeover/, 'server_no_context_takeover always in the answer');
          assert.match(x.ext, extRe);
        }
        assert.ok(await waitSubscribed(h, 'z', 'websocket'));

        // outgoing: a 120 KB compressible message; the window limit still lets it shrink
        const big = compressible(120000);
        const b0 = await bytesSent(h);
        const before = await bytesSent(h);
        const metricsAnswer = before - b0; /* one /metrics answer (its size varies with what is counted) */
        await publish(h, 'z', big);
        await c.waitMsgs(1);
        const after = (await bytesSent(h)) - metricsAnswer;
        assert.equal(c.msgs[0].binary, false);
        assert.equal(c.msgs[0].data.toString(), big, 'arrives intact');
        // bytes_sent covers the frame plus the publish answer (one /metrics answer is taken off)
        const limit = pmd.serverMaxWindowBits ? big.length / 2 : big.length / 10;
        assert.ok(after - before < limit, `server sent ${after - before} bytes for a ${big.length}-byte message (want < ${limit})`);

        // incoming: compressed client messages (the ws client compresses over its 1 KB threshold),
        // several in a row so a client keeping its context back-references earlier messages
        const msgs = [compressible(50000, 1), compressible(50000, 1), compressible(20000, 3) + 'end', 'tiny'];
        const rxBefore = await bytesReceived(h);
        for (const m of msgs) e.ws.send(m);
        await e.waitMsgs(msgs.length);
        const rxAfter = await bytesReceived(h);
        assert.deepEqual(e.texts(), msgs, 'echoed intact, in order');
        assert.ok(e.msgs.every((m) => !m.binary));
        const total = msgs.reduce((a, m) => a + m.length, 0);
        assert.ok(rxAfter - rxBefore < total / 4, `server received ${rxAfter - rxBefore} bytes for ${total} (client compressed)`);
        // binary too
        const bin = Buffer.from(compressible(30000, 9), 'latin1');
        bin[0] = 0xff;
        e.ws.send(bin);
        await e.waitMsgs(msgs.length + 1);
        assert.equal(e.msgs.at(-1).binary, true);
        assert.ok(e.msgs.at(-1).data.equals(bin));
      } finally {
        c.ws.terminate();
        e.ws.terminate();
      }
    });
  });
}

test('permessage-deflate on the wire (raw): RSV1 + shorter payload; window honoured; small or incompressible messages go plain', T, async () => {
  await withHerald(async (h) => {
    const r15 = await wsOpen(h.port, { path: '/sub/w', extensions: 'permessage-deflate; client_max_window_bits' });
    const r10 = await wsOpen(h.port, { path: '/sub/w', extensions: 'permessage-deflate; server_max_window_bits=10' });
    const plain = await wsOpen(h.port, { path: '/sub/w' });
    const conns = [r15.conn, r10.conn, plain.conn];
    try {
      assert.equal(r15.status, 101);
      assert.equal(r15.headers['sec-websocket-extensions'], 'permessage-deflate; server_no_context_takeover');
      assert.equal(r10.headers['sec-websocket-extensions'], 'permessage-deflate; server_no_context_takeover; server_max_window_bits=10');
      assert.equal(plain.headers['sec-websocket-extensions'], undefined);
      assert.ok(await waitSubscribed(h, 'w', 'websocket', 3));

      const big = Buffer.from(compressible(60000));
      await publish(h, 'w', big);
      const f15 = await r15.conn.next();
      const f10 = await r10.conn.next();
      const fp = await plain.conn.next();
      assert.equal(f15.opcode, OP.TEXT);
      assert.equal(f15.rsv1, true, 'RSV1 set: compressed');
      assert.ok(f15.payload.length < big.length / 20, `15-bit window: ${f15.payload.length} bytes`);
      assert.ok(inflate(f15.payload).equals(big), 'inflates to the message');
      assert.throws(() => inflate(f15.payload, 10), /distance too far back/, 'the default uses a window over 1 KB');
      assert.equal(f10.rsv1, true);
      assert.ok(f10.payload.length < big.length, 'still compressed with a small window');
      assert.ok(f10.payload.length > f15.payload.length * 4, 'the small window cannot reach the repeats');
      assert.ok(inflate(f10.payload, 10).equals(big), 'decodes with the 10-bit window the client asked for');
      assert.equal(fp.rsv1, false);
      assert.ok(fp.payload.equals(big));
      // replayed from history: the same compressed bytes as live, per window size (9 for 9..14)
      for (const [ext, bits, same] of [
        ['permessage-deflate', 15, f15],
        ['permessage-deflate; server_max_window_bits=9', 9, f10],
        ['permessage-deflate; server_max_window_bits=14', 14, f10],
      ]) {
        const rc = await wsConnect(h.port, { path: '/sub/w?last_id=0', extensions: ext });
        const f = await rc.next();
        rc.close();
        assert.equal(f.rsv1, true, `replay with ${ext} compressed`);
        assert.ok(f.payload.equals(same.payload), `replay with ${ext}: the shared compressed frame`);
        assert.ok(inflate(f.payload, bits).equals(big), `replay decodes with a ${bits}-bit window`);
      }

      // under ws_deflate_min (64): plain
      for (const small of ['s', 'x'.repeat(63)]) {
        await publish(h, 'w', small);
        const f = await r15.conn.next();
        assert.equal(f.rsv1, false, `${small.length}-byte message is not compressed`);
        assert.equal(f.opcode, OP.TEXT);
        assert.equal(f.payload.toString(), small);
      }
      // at the minimum and compressible: compressed
      await publish(h, 'w', 'y'.repeat(64));
      const f64 = await r15.conn.next();
      assert.equal(f64.rsv1, true, '64-byte compressible message is compressed');
      assert.equal(inflate(f64.payload).toString(), 'y'.repeat(64));
      // incompressible: sent plain
      const rnd = nastyBytes(400, 11);
      await publish(h, 'w', rnd);
      const fr = await r15.conn.next();
      assert.equal(fr.rsv1, false, 'a message that does not shrink goes plain');
      assert.equal(fr.opcode, OP.BINARY);
      assert.ok(fr.payload.equals(rnd));
      // a compressed binary message
      const cb = Buffer.concat([Buffer.from([0xff]), Buffer.alloc(5000, 7)]);
      await publish(h, 'w', cb);
      const fb = await r15.conn.next();
      assert.equal(fb.opcode, OP.BINARY);
      assert.equal(fb.rsv1, true);
      assert.ok(inflate(fb.payload).equals(cb));
    } finally {
      for (const c of conns) c.close();
    }
  });
});

test('permessage-deflate: ws_deflate=false declines the offer; raw compressed client messages are inflated on /echo', T, async () => {
  await withHerald({ 'ws-deflate': 'false', echo: 'true' }, async (h) => {
    const c = wsc(h, '/sub/n', { perMessageDeflate: true });
    try {
      await c.opened;
      assert.equal(c.ws.extensions, '', 'declined');
      assert.equal(c.ext, undefined);
    } finally {
      c.ws.terminate();
    }
    const r = await wsOpen(h.port, { path: '/echo', extensions: 'permessage-deflate' });
    assert.equal(r.headers['sec-websocket-extensions'], undefined);
    r.conn.sendFrame({ opcode: OP.TEXT, rsv1: true, payload: pmdCompress(Buffer.from('hello')) });
    const cl = await r.conn.expectClose();
    assert.equal(cl.code, 1002, 'RSV1 without the extension');
  });
  await withHerald({ echo: 'true' }, async (h) => {
    const c = await wsConnect(h.port, { path: '/echo', extensions: 'permessage-deflate' });
    try {
      const msg = Buffer.from('compressed hello, compressed hello, compressed hello ✓');
      c.sendFrame({ opcode: OP.TEXT, rsv1: true, payload: pmdCompress(msg) });
      let f = await c.next();
      assert.equal(f.opcode, OP.TEXT);
      assert.ok((f.rsv1 ? inflate(f.payload) : f.payload).equals(msg));
      // a compressed message in fragments: RSV1 on the first frame only, split inside the stream
      const big = Buffer.from(compressible(30000, 4));
      const z = pmdCompress(big);
      const cut = [Math.floor(z.length / 3), Math.floor((2 * z.length) / 3)];
      c.sendFrame({ opcode: OP.TEXT, rsv1: true, fin: false, payload: z.subarray(0, cut[0]) });
      c.sendFrame({ opcode: OP.PING, payload: 'mid' });
      c.sendFrame({ opcode: OP.CONT, fin: false, payload: z.subarray(cut[0], cut[1]) });
      c.sendFrame({ opcode: OP.CONT, payload: z.subarray(cut[1]) });
      f = await c.next();
      assert.equal(f.opcode, OP.PONG);
      assert.equal(f.payload.toString(), 'mid');
      f = await c.next();
      assert.equal(f.opcode, OP.TEXT);
      assert.ok((f.rsv1 ? inflate(f.payload) : f.payload).equals(big), 'fragmented compressed message inflated whole');
      // empty compressed messages: an empty stored block (RFC 7692 section 7.2.3.6), zlib's empty flush
      for (const [what, z0] of [['00', B(0)], ['zlib', pmdCompress(B())]]) {
        c.sendFrame({ opcode: OP.TEXT, rsv1: true, payload: z0 });
        f = await c.next();
        assert.equal(f.opcode, OP.TEXT, `compressed empty message (${what})`);
        assert.equal((f.rsv1 ? inflate(f.payload) : f.payload).length, 0);
      }
      // an uncompressed message on the same connection
      c.sendFrame({ opcode: OP.BINARY, payload: Buffer.from([1, 2, 3]) });
      f = await c.next();
      assert.equal(f.opcode, OP.BINARY);
      assert.deepEqual([...f.payload], [1, 2, 3]);
      // RSV1 on a continuation frame is refused
      c.sendFrame({ opcode: OP.TEXT, rsv1: true, fin: false, payload: z.subarray(0, 10) });
      c.sendFrame({ opcode: OP.CONT, rsv1: true, payload: z.subarray(10) });
      const cl = await c.expectClose();
      assert.equal(cl.code, 1002, 'RSV1 on a continuation frame');
      await c.waitEnd();
    } finally {
      c.close();
    }
    // RSV1 on a control frame is refused even with the extension
    const p = await wsConnect(h.port, { path: '/echo', extensions: 'permessage-deflate' });
    p.sendFrame({ opcode: OP.PING, rsv1: true, payload: 'x' });
    assert.equal((await p.expectClose()).code, 1002, 'RSV1 on a ping');
    p.close();
    // compressed text that inflates to invalid UTF-8
    const u = await wsConnect(h.port, { path: '/echo', extensions: 'permessage-deflate' });
    u.sendFrame({ opcode: OP.TEXT, rsv1: true, payload: pmdCompress(Buffer.from([0x61, 0x62, 0xc0, 0xaf, 0x63])) });
    assert.equal((await u.expectClose()).code, 1007, 'inflated text checked for UTF-8');
    u.close();
  });
});

test('permessage-deflate bomb: a small frame inflating past ws_max_message closes with 1009; others unaffected', T, async () => {
  await withHerald({ echo: 'true', 'ws-max-message': '64k' }, async (h) => {
    const w = await watcher(h);
    try {
      // exactly the limit once inflated: accepted
      const ok = Buffer.alloc(65536, 0x41);
      const c0 = await wsConnect(h.port, { path: '/echo', extensions: 'permessage-deflate' });
      c0.sendFrame({ opcode: OP.BINARY, rsv1: true, payload: pmdCompress(ok) });
      const f0 = await c0.next();
      assert.equal(f0.opcode, OP.BINARY);
      assert.ok((f0.rsv1 ? inflate(f0.payload) : f0.payload).equals(ok), '64 KB inflated message accepted');
      c0.close();

      const bomb = pmdCompress(Buffer.alloc(16 << 20)); // 16 MB of zeros in ~16 KB
      assert.ok(bomb.length < 65536);
      const c = await wsConnect(h.port, { path: '/echo', extensions: 'permessage-deflate' });
      c.sendFrame({ opcode: OP.BINARY, rsv1: true, payload: bomb });
      const cl = await c.expectClose(10000 * SCALE);
      assert.equal(cl.code, 1009, `bomb: ${cl.reason}`);
      assert.equal(cl.frames.length, 0, 'nothing echoed');
      await c.waitEnd();
      await w.check('after raw bomb');

      // the same with the ws client compressing 4 MB
      const e = wsc(h, '/echo', { perMessageDeflate: { threshold: 0 } });
      await e.opened;
      e.ws.send(Buffer.alloc(4 << 20, 0x20));
      const closed = await withTimeout(e.closedP, 10000 * SCALE, 'ws client closed');
      assert.equal(closed.code, 1009);
      assert.equal(e.msgs.length, 0);
      await w.check('after ws bomb');
      const m = await metrics(h);
      assert.equal(m.get('herald_connections{transport="websocket"}'), 1, 'only the watcher left');
    } finally {
      w.ws.terminate();
    }
  });
});

/* ---------------------------------------------------------------- handshake */

test('handshake: 426/400/405/403/404 refusals and the RFC accept key', T, async () => {
  await withHerald({ echo: 'true', 'ws-origins': 'http://good.example' }, async (h) => {
    const status = async (what, opts, want, check) => {
      const r = await wsOpen(h.port, opts);
      r.conn.close();
      assert.equal(r.status, want, `${what}: got ${r.status} ${r.response.text}`);
      if (want !== 101) assert.equal(r.headers['sec-websocket-accept'], undefined, `${what}: no accept key`);
      if (check) check(r);
      return r;
    };
    const v13 = (r) => assert.equal(r.headers['sec-websocket-version'], '13', 'Sec-WebSocket-Version: 13');
    for (const path of ['/sub/hs', '/echo']) {
      await status(`${path} no version`, { path, headers: { 'Sec-WebSocket-Version': null } }, 426, v13);
      await status(`${path} version 8`, { path, headers: { 'Sec-WebSocket-Version': '8' } }, 426, v13);
      await status(`${path} version 14`, { path, headers: { 'Sec-WebSocket-Version': '14' } }, 426, v13);
      await status(`${path} no key`, { path, headers: { 'Sec-WebSocket-Key': null } }, 400);
      await status(`${path} short key`, { path, key: 'abc' }, 400);
      await status(`${path} key of 15 bytes`, { path, key: 'AAAAAAAAAAAAAAAAAAAA' }, 400);
      await status(`${path} key of 17 bytes`, { path, key: 'AAAAAAAAAAAAAAAAAAAAAAA=' }, 400);
      await status(`${path} key with bad symbols`, { path, key: 'AAAAAAAAAAAAAAAAAAAA!!==' }, 400);
      await status(`${path} POST`, { path, method: 'POST', headers: { 'Content-Length': '0' } }, 405, (r) =>
        assert.match(r.headers.allow || '', /GET/),
      );
      await status(`${path} bad origin`, { path, headers: { Origin: 'http://evil.example' } }, 403);
      await status(`${path} origin prefix`, { path, headers: { Origin: 'http://good.example.evil' } }, 403);
      await status(`${path} good origin`, { path, headers: { Origin: 'http://good.example' } }, 101);
      await status(`${path} no origin (not a browser)`, { path }, 101);
    }
    await status('GET /echo without Connection: Upgrade', { path: '/echo', headers: { Connection: 'keep-alive' } }, 400);
    await status('HTTP/1.0 handshake', {
      raw: `GET /echo HTTP/1.0\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    }, 400);
    // WebSocket-only endpoints answer a plain GET with 426 and Upgrade: websocket
    for (const p of ['/ws', '/echo']) {
      const r = await request(h, 'GET', p);
      assert.equal(r.status, 426, `plain GET ${p}`);
      assert.match(r.headers.upgrade || '', /websocket/i);
    }
    // RFC 6455 section 1.3's example
    const rfc = await status('RFC key', { path: '/echo', key: 'dGhlIHNhbXBsZSBub25jZQ==' }, 101);
    assert.equal(rfc.headers['sec-websocket-accept'], 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    assert.equal(acceptFor('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    assert.match(rfc.headers.upgrade, /^websocket$/i);
    assert.match(rfc.headers.connection, /upgrade/i);
    // the `ws` client with an allowed and a refused origin
    const good = wsc(h, '/echo', { origin: 'http://good.example' });
    await good.opened;
    good.ws.terminate();
    const bad = wsc(h, '/echo', { origin: 'http://evil.example' });
    await assert.rejects(bad.opened, /403/);
    assert.equal((await request(h, 'GET', '/healthz')).status, 200);
  });
  // /echo exists only with echo = true
  await withHerald(async (h) => {
    const r = await wsOpen(h.port, { path: '/echo' });
    r.conn.close();
    assert.equal(r.status, 404, 'no /echo by default');
  });
});

test('handshake: accepted header variants, extension offers, frames pipelined with the request, Last-Event-ID', T, async () => {
  await withHerald({ echo: 'true' }, async (h) => {
    const open = async (what, opts) => {
      const r = await wsOpen(h.port, { path: '/echo', ...opts });
      assert.equal(r.status, 101, `${what}: ${r.status} ${r.response.text}`);
      assert.equal(r.headers['sec-websocket-accept'], acceptFor(r.key), `${what}: accept key`);
      return r;
    };
    // what browsers send (Firefox: "keep-alive, Upgrade"), in any case
    for (const [what, headers] of [
      ['Connection: keep-alive, Upgrade', { Connection: 'keep-alive, Upgrade' }],
      ['Upgrade: WebSocket', { Upgrade: 'WebSocket' }],
      ['connection: upgrade (lowercase)', { Connection: 'upgrade' }],
    ]) {
      const r = await open(what, { headers });
      r.conn.sendFrame({ opcode: OP.TEXT, payload: what });
      const f = await r.conn.next();
      assert.equal(f.payload.toString(), what, `${what}: works`);
      r.conn.close();
    }
    // extension offers: the first acceptable one wins; bad ones are skipped, never fatal
    for (const [offer, answer] of [
      ['x-webkit-deflate-frame, permessage-deflate; client_max_window_bits', 'permessage-deflate; server_no_context_takeover'],
      ['permessage-deflate; server_max_window_bits=8, permessage-deflate; client_no_context_takeover',
        'permessage-deflate; server_no_context_takeover; client_no_context_takeover'],
      ['permessage-deflate; client_max_window_bits=12', 'permessage-deflate; server_no_context_takeover; client_max_window_bits=12'],
      ['permessage-deflate; server_max_window_bits="11"', 'permessage-deflate; server_no_context_takeover; server_max_window_bits=11'],
      ['permessage-deflate; unknown_param', undefined],
      ['permessage-deflate; server_max_window_bits=16', undefined],
      ['permessage-deflate; client_no_context_takeover; client_no_context_takeover', undefined],
    ]) {
      const r = await open(`offer ${offer}`, { extensions: offer });
      assert.equal(r.headers['sec-websocket-extensions'], answer, `answer to ${offer}`);
      r.conn.close();
    }
    // frames written together with the handshake request are not lost
    const msgs = [frame({ opcode: OP.TEXT, payload: 'early 1' }), frame({ opcode: OP.PING, payload: 'early ping' }), frame({ opcode: OP.BINARY, payload: Buffer.from([9, 8, 7]) })];
    const p = await open('pipelined frames', { after: Buffer.concat(msgs) });
    const got = [await p.conn.next(), await p.conn.next(), await p.conn.next()];
    assert.deepEqual(got.map((f) => [f.opcode, f.payload.toString('hex')]), [
      [OP.TEXT, Buffer.from('early 1').toString('hex')],
      [OP.PONG, Buffer.from('early ping').toString('hex')],
      [OP.BINARY, '090807'],
    ]);
    p.conn.close();
    // a Close right behind the handshake
    const q = await open('pipelined close', { after: frame({ opcode: OP.CLOSE, payload: closePayload(1000) }) });
    assert.equal((await q.conn.expectClose()).code, 1000);
    await q.conn.waitEnd();
    // an upgrade on a keep-alive connection that already served a plain request
    {
      const sock = net.connect({ host: '127.0.0.1', port: h.port });
      await new Promise((res, rej) => sock.once('connect', res).once('error', rej));
      let buf = Buffer.alloc(0);
      const onData = (d) => (buf = Buffer.concat([buf, d]));
      sock.on('data', onData);
      sock.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
      await waitFor(() => parseResponses(buf).length === 1, 3000 * SCALE, 'healthz answer');
      const key = newKey();
      sock.write(`GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      const rs = await waitFor(() => {
        const x = parseResponses(buf);
        return x.length === 2 && x;
      }, 3000 * SCALE, 'upgrade answer');
      assert.equal(rs[0].status, 200);
      assert.equal(rs[1].status, 101, 'upgrade after a keep-alive request');
      assert.equal(rs[1].headers['sec-websocket-accept'], acceptFor(key));
      sock.off('data', onData);
      const k = new WsRaw(sock, buf.subarray(rs[0].raw.length + rs[1].raw.length));
      k.sendFrame({ opcode: OP.TEXT, payload: 'after keep-alive' });
      assert.equal((await k.next()).payload.toString(), 'after keep-alive');
      k.close();
    }
    // /sub refuses bad channels and cursors before upgrading
    const badCursor = await wsOpen(h.port, { path: '/sub/x?last_id=abc' });
    badCursor.conn.close();
    assert.equal(badCursor.status, 400, 'invalid cursor');
    const bad = await wsOpen(h.port, { path: '/sub/a%00b' });
    bad.conn.close();
    assert.equal(bad.status, 400, 'invalid channel name');
    // resumes with Last-Event-ID like ?last_id=
    for (let i = 1; i <= 4; i++) await publish(h, 'le', `m${i}`);
    const le = await wsConnect(h.port, { path: '/sub/le', headers: { 'Last-Event-ID': '2' } });
    assert.equal((await le.next()).payload.toString(), 'm3');
    assert.equal((await le.next()).payload.toString(), 'm4');
    await publish(h, 'le', 'm5');
    assert.equal((await le.next()).payload.toString(), 'm5');
    le.close();
  });
});

/* ---------------------------------------------------------------- frame rules */

const txt = (s, o = {}) => frame({ opcode: OP.TEXT, payload: s, ...o });
const bin = (b, o = {}) => frame({ opcode: OP.BINARY, payload: b, ...o });
const cont = (b, o = {}) => frame({ opcode: OP.CONT, payload: b, ...o });
const close = (p) => frame({ opcode: OP.CLOSE, payload: p });
const B = (...a) => Buffer.from(a);

// [what, frames (written one by one), close code]; max message 1k, on /echo
const VIOLATIONS = [
  ['RSV2 set', [txt('a', { rsv2: true })], 1002],
  ['RSV3 set', [txt('a', { rsv3: true })], 1002],
  ['RSV2+RSV3 on a ping', [frame({ opcode: OP.PING, rsv2: true, rsv3: true })], 1002],
  ['RSV1 without deflate', [txt('a', { rsv1: true })], 1002],
  ...[3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf].map((op) => [`reserved opcode ${op}`, [frame({ opcode: op, payload: 'x' })], 1002]),
  ['reserved opcode after a valid message', [txt('ok'), frame({ opcode: 0x3 })], 1002, 1],
  ['unmasked text frame', [txt('hello', { mask: false })], 1002],
  ['unmasked close frame', [frame({ opcode: OP.CLOSE, payload: closePayload(1000), mask: false })], 1002],
  ['fragmented ping', [frame({ opcode: OP.PING, fin: false, payload: 'p' })], 1002],
  ['fragmented close', [frame({ opcode: OP.CLOSE, fin: false, payload: closePayload(1000) })], 1002],
  ['ping with a 126-byte payload', [frame({ opcode: OP.PING, payload: Buffer.alloc(126, 0x61) })], 1002],
  ['pong with a 126-byte payload', [frame({ opcode: OP.PONG, payload: Buffer.alloc(126, 0x61) })], 1002],
  ['close with a 126-byte payload', [close(closePayload(1000, 'r'.repeat(124)))], 1002],
  ['continuation without a start', [cont('x')], 1002],
  ['non-final continuation without a start', [cont('x', { fin: false })], 1002],
  ['continuation after a complete message', [txt('done'), cont('x')], 1002, 1],
  ['text frame in the middle of a fragmented message', [txt('ab', { fin: false }), txt('cd')], 1002],
  ['binary frame in the middle of a fragmented text', [txt('ab', { fin: false }), cont('c', { fin: false }), bin('d')], 1002],
  ['close with a 1-byte payload', [close(B(0x03))], 1002],
  ...[0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535].map((code) => [`close code ${code}`, [close(closePayload(code))], 1002]),
  ['close reason not UTF-8', [close(closePayload(1000, B(0x6f, 0x6b, 0xff)))], 1007],
  ['close reason with a truncated sequence', [close(closePayload(1000, B(0xe2, 0x82)))], 1007],
  ['invalid UTF-8 text', [txt(B(0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80, 0x65, 0x64))], 1007],
  ['overlong UTF-8', [txt(B(0xc0, 0xaf))], 1007],
  ['code point over U+10FFFF', [txt(B(0xf4, 0x90, 0x80, 0x80))], 1007],
  ['text ending inside a code point', [txt(B(0x61, 0xe2, 0x82))], 1007],
  ['invalid UTF-8 split across fragments', [txt(B(0xce, 0xba, 0xe1), { fin: false }), cont(B(0x28, 0xa1))], 1007],
  ['invalid UTF-8 in an unfinished message (fail fast)', [txt(B(0x61, 0x62), { fin: false }), cont(B(0xff), { fin: false })], 1007],
  ['fragments ending inside a code point', [txt(B(0x61, 0xf0, 0x9f), { fin: false }), cont(B(0x98), { fin: false }), cont(B())], 1007],
  ['frame over ws_max_message', [bin(Buffer.alloc(1025, 1))], 1009],
  ['text frame over ws_max_message', [txt('t'.repeat(1025))], 1009],
  ['header only: 64-bit length 2^40', [frame({ opcode: OP.BINARY, length: 2 ** 40, headerOnly: true })], 1009],
  ['header only: 16-bit length 2000', [frame({ opcode: OP.TEXT, length: 2000, headerOnly: true })], 1009],
  ['header only, no mask key yet: 64-bit length 10^9', [frame({ opcode: OP.BINARY, length: 1e9, headerOnly: true }).subarray(0, 10)], 1009],
  ['fragmented message over the limit', [bin(Buffer.alloc(600, 1), { fin: false }), cont(Buffer.alloc(600, 2))], 1009],
  ['fragmented message over the limit by one byte', [bin(Buffer.alloc(1000, 1), { fin: false }), cont(Buffer.alloc(0), { fin: false }), cont(Buffer.alloc(25, 2))], 1009],
  ['non-minimal 16-bit length', [txt('short', { lenBits: 16 })], 1002],
  ['non-minimal 64-bit length (200 bytes)', [bin(Buffer.alloc(200, 3), { lenBits: 64 })], 1002],
  ['non-minimal 64-bit length (5 bytes)', [txt('short', { lenBits: 64 })], 1002],
  ['64-bit length with the top bit set', [frame({ opcode: OP.BINARY, length: 2 ** 63, headerOnly: true })], 1002],
  // ws_max_fragments is 16 in these runs: 16 frames make a message, the 17th unfinished one closes
  ['message in 17 (empty) frames', [txt('', { fin: false }), ...Array.from({ length: 16 }, () => cont('', { fin: false }))], 1008],
  ['message in 16 frames, then one in 17', [txt('a', { fin: false }), ...Array.from({ length: 14 }, () => cont('b', { fin: false })), cont('c'),
    bin('', { fin: false }), ...Array.from({ length: 16 }, () => cont('', { fin: false }))], 1008, 1],
];

async function expectViolation(h, w, [what, frames, code, echoed = 0], split) {
  const c = await wsConnect(h.port, { path: '/echo' });
  try {
    const bytes = Buffer.concat(frames);
    if (split) await c.sendSplit(bytes, 'each', 1);
    else for (const f of frames) c.send(f);
    const cl = await c.expectClose();
    assert.equal(cl.code, code, `${what}${split ? ' (split at every byte)' : ''}: close ${cl.code} "${cl.reason}" (want ${code})`);
    assert.ok(cl.reason.length > 0, `${what}: the Close carries a reason`);
    assert.equal(cl.frames.filter((f) => f.opcode !== OP.PING).length, echoed, `${what}: ${echoed} message(s) echoed before the close`);
    await c.waitEnd();
  } finally {
    c.close();
  }
  await w.check(`${what}${split ? ' split' : ''}`);
}

test('frame rules: every violation gets its exact Close code, then TCP close; other connections unaffected', T, async () => {
  await withHerald({ echo: 'true', 'ws-max-message': '1k', 'ws-max-fragments': 16 }, async (h) => {
    const w = await watcher(h);
    try {
      for (const v of VIOLATIONS) await expectViolation(h, w, v, false);
      // the same bytes arriving one at a time give the same answers
      for (const v of VIOLATIONS) {
        const n = v[1].reduce((a, f) => a + f.length, 0);
        if (n <= 80) await expectViolation(h, w, v, true);
      }
      const m = await metrics(h);
      assert.equal(m.get('herald_connections{transport="websocket"}'), 1, 'every refused connection is gone');
    } finally {
      w.ws.terminate();
    }
  });
});

test('frame rules: limits are inclusive, valid UTF-8 split across fragments is accepted and echoed', T, async () => {
  await withHerald({ echo: 'true', 'ws-max-message': '1k' }, async (h) => {
    // a message ending inside a code point is refused when its last fragment arrives
    const c = await wsConnect(h.port, { path: '/echo' });
    try {
      c.send(txt(B(0x61, 0xe2), { fin: false }));
      c.send(cont(B(0x82), { fin: false }));
      c.send(cont(B(0xac, 0xf0, 0x9d), { fin: false }));
      c.send(cont(B(), { fin: false }));
      c.send(cont(B(0x84)));
      const f = await c.next();
      assert.equal(f.opcode, OP.CLOSE, 'a message ending inside U+1D11E is refused');
      assert.equal(f.code, 1007);
    } finally {
      c.close();
    }
    const d = await wsConnect(h.port, { path: '/echo' });
    try {
      const expectEcho = async (what, opcode, payload) => {
        const f = await d.nextData();
        assert.ok(f, `${what}: connection still open`);
        assert.equal(f.opcode, opcode, `${what}: opcode ${f.opcode}${f.opcode === OP.CLOSE ? ` ${f.code} ${f.reason}` : ''}`);
        assert.ok(Buffer.from(payload).equals(f.payload), `${what}: payload`);
      };
      // € = e2 82 ac and U+1D11E = f0 9d 84 9e, split between fragments
      d.send(txt(B(0x61, 0xe2), { fin: false }));
      d.send(cont(B(0x82), { fin: false }));
      d.send(cont(B(0xac, 0xf0, 0x9d), { fin: false }));
      d.send(cont(B(), { fin: false }));
      d.send(cont(B(0x84, 0x9e)));
      await expectEcho('code points split across fragments', OP.TEXT, 'a€𝄞');
      // every split point of a multi-byte text, as separate fragments
      const s = Buffer.from('κόσμε €𝄞');
      for (let i = 1; i < s.length; i++) {
        d.send(txt(s.subarray(0, i), { fin: false }));
        d.send(cont(s.subarray(i)));
        await expectEcho(`split at ${i}`, OP.TEXT, s);
      }
      // one byte per fragment
      d.send(txt(s.subarray(0, 1), { fin: false }));
      for (let i = 1; i < s.length; i++) d.send(cont(s.subarray(i, i + 1), { fin: i < s.length - 1 ? false : true }));
      await expectEcho('one byte per fragment', OP.TEXT, s);
      // empty messages, and an empty fragment after a non-empty one
      d.send(txt(''));
      await expectEcho('empty text', OP.TEXT, '');
      d.send(bin(B()));
      await expectEcho('empty binary', OP.BINARY, '');
      d.send(bin(B(7), { fin: false }));
      d.send(cont(B()));
      await expectEcho('fragmented binary ending with an empty fragment', OP.BINARY, B(7));
      // binary is not checked for UTF-8
      d.send(bin(B(0xff, 0xc0, 0xed, 0xa0, 0x80), { fin: false }));
      d.send(cont(B(0xe2)));
      await expectEcho('binary with invalid UTF-8', OP.BINARY, B(0xff, 0xc0, 0xed, 0xa0, 0x80, 0xe2));
      // exactly ws_max_message: as one frame, and in fragments
      const full = Buffer.alloc(1024, 0x5a);
      d.send(bin(full));
      await expectEcho('1024-byte frame', OP.BINARY, full);
      d.send(txt(full.subarray(0, 1000), { fin: false }));
      d.send(cont(full.subarray(1000, 1024)));
      await expectEcho('1024 bytes in fragments', OP.TEXT, full);
      // a control frame at 125 bytes, a pong nobody asked for
      d.send(frame({ opcode: OP.PING, payload: Buffer.alloc(125, 0x70) }));
      await expectEcho('125-byte ping', OP.PONG, Buffer.alloc(125, 0x70));
      d.send(frame({ opcode: OP.PONG, payload: 'unsolicited' }));
      d.send(txt('after pong'));
      await expectEcho('unsolicited pong ignored', OP.TEXT, 'after pong');
      // masking with a zero key, and the same frame split at every byte
      d.send(txt('zero key', { mask: B(0, 0, 0, 0) }));
      await expectEcho('zero mask key', OP.TEXT, 'zero key');
      await d.sendSplit(txt('byte by byte ✓'), 'each', 1);
      await expectEcho('split at every byte', OP.TEXT, 'byte by byte ✓');
      // several frames in one write
      d.send(Buffer.concat([txt('one'), bin(B(2)), txt('three')]));
      await expectEcho('batched 1', OP.TEXT, 'one');
      await expectEcho('batched 2', OP.BINARY, B(2));
      await expectEcho('batched 3', OP.TEXT, 'three');
    } finally {
      d.close();
    }
  });
  // 16-bit and 64-bit lengths (a larger limit)
  await withHerald({ echo: 'true' }, async (h) => {
    const d = await wsConnect(h.port, { path: '/echo' });
    try {
      for (const n of [125, 126, 65535, 65536, 300000]) {
        const p = Buffer.alloc(n, n & 0xff);
        d.send(bin(p));
        const f = await d.nextData();
        assert.equal(f.opcode, OP.BINARY);
        assert.equal(f.payload.length, n, `${n}-byte frame echoed`);
        assert.ok(f.payload.equals(p));
        assert.equal(f.headerLen, n < 126 ? 2 : n <= 0xffff ? 4 : 10, `server uses the minimal length encoding for ${n}`);
      }
    } finally {
      d.close();
    }
  });
});

test('fragmented messages whose first fragment is empty are accepted and echoed', T, async () => {
  await withHerald({ echo: 'true' }, async (h) => {
    const d = await wsConnect(h.port, { path: '/echo' });
    try {
      const cases = [
        ['empty binary in two empty fragments', [bin(B(), { fin: false }), cont(B())], OP.BINARY, B()],
        ['empty text in three empty fragments', [txt('', { fin: false }), cont('', { fin: false }), cont('')], OP.TEXT, B()],
        ['text starting with an empty fragment', [txt('', { fin: false }), cont('abc')], OP.TEXT, Buffer.from('abc')],
      ];
      for (const [what, frames, opcode, payload] of cases) {
        for (const f of frames) d.send(f);
        const f = await d.nextData();
        assert.ok(f, `${what}: the connection is still open (the server survived)`);
        assert.equal(f.opcode, opcode, `${what}: opcode ${f.opcode}${f.opcode === OP.CLOSE ? ` close ${f.code} ${f.reason}` : ''}`);
        assert.ok(f.payload.equals(payload), `${what}: payload`);
      }
    } finally {
      d.close();
    }
    // the same with permessage-deflate: a compressed message whose first frame is empty
    const z = await wsConnect(h.port, { path: '/echo', extensions: 'permessage-deflate' });
    try {
      z.send(txt(B(), { rsv1: true, fin: false }));
      z.send(cont(pmdCompress(Buffer.from('hello hello hello'))));
      const f = await z.nextData();
      assert.ok(f, 'compressed, empty first fragment: the connection is still open (the server survived)');
      assert.equal(f.opcode, OP.TEXT);
      assert.equal((f.rsv1 ? inflate(f.payload) : f.payload).toString(), 'hello hello hello');
    } finally {
      z.close();
    }
  });
});

test('binary or text messages to /sub close with 1003; others unaffected', T, async () => {
  await withHerald(async (h) => {
    const w = await watcher(h);
    try {
      for (const [what, f] of [['text', txt('hello')], ['binary', bin(B(1, 2, 3))], ['fragmented text', Buffer.concat([txt('a', { fin: false }), cont('b')])]]) {
        const c = await wsConnect(h.port, { path: '/sub/only-down' });
        c.send(f);
        const cl = await c.expectClose();
        assert.equal(cl.code, 1003, `${what} to /sub`);
        await c.waitEnd();
        c.close();
        await w.check(`1003 after ${what}`);
      }
      // control frames are fine on /sub
      const c = await wsConnect(h.port, { path: '/sub/only-down' });
      c.sendFrame({ opcode: OP.PING, payload: 'still here?' });
      const p = await c.next();
      assert.equal(p.opcode, OP.PONG);
      assert.equal(p.payload.toString(), 'still here?');
      await waitSubscribed(h, 'only-down', 'websocket');
      await publish(h, 'only-down', 'yes');
      const m = await c.nextData();
      assert.equal(m.payload.toString(), 'yes');
      c.close();
      // a protocol violation on /sub is refused as on /echo
      const v = await wsConnect(h.port, { path: '/sub/only-down' });
      v.send(txt('x', { rsv3: true }));
      assert.equal((await v.expectClose()).code, 1002);
      v.close();
      await w.check('1002 on /sub');
    } finally {
      w.ws.terminate();
    }
  });
});

/* ---------------------------------------------------------------- control frames and closing */

test('pings interleaved with fragments get pongs with the same payload; the message arrives whole', T, async () => {
  await withHerald({ echo: 'true' }, async (h) => {
    for (const split of [false, true]) {
      const c = await wsConnect(h.port, { path: '/echo' });
      try {
        const bytes = Buffer.concat([
          txt('Hello, ', { fin: false }),
          frame({ opcode: OP.PING, payload: 'p1' }),
          cont('frag', { fin: false }),
          frame({ opcode: OP.PING, payload: B(0, 0xff, 0x10) }),
          frame({ opcode: OP.PING }),
          frame({ opcode: OP.PONG, payload: 'ignored' }),
          cont('mented ✓'),
        ]);
        if (split) await c.sendSplit(bytes, 'each', 1);
        else c.send(bytes);
        const got = [];
        for (let i = 0; i < 4; i++) got.push(await c.next());
        assert.deepEqual(
          got.map((f) => [f.opcode, f.fin, f.rsv1, f.payload.toString('hex')]),
          [
            [OP.PONG, true, false, Buffer.from('p1').toString('hex')],
            [OP.PONG, true, false, '00ff10'],
            [OP.PONG, true, false, ''],
            [OP.TEXT, true, false, Buffer.from('Hello, fragmented ✓').toString('hex')],
          ],
          `split=${split}`,
        );
      } finally {
        c.close();
      }
    }
  });
});

test('a client Close is answered with the same code, then the TCP connection closes', T, async () => {
  await withHerald({ echo: 'true' }, async (h) => {
    const c = await wsConnect(h.port, { path: '/echo' });
    c.send(txt('before'));
    c.sendFrame({ opcode: OP.CLOSE, payload: closePayload(1000, 'bye') });
    const cl = await c.expectClose();
    assert.equal(cl.code, 1000);
    assert.deepEqual(cl.frames.map((f) => f.payload.toString()), ['before']);
    await c.waitEnd();
    for (const code of [1001, 1003, 1007, 1011, 3000, 4999]) {
      const d = await wsConnect(h.port, { path: '/echo' });
      d.sendFrame({ opcode: OP.CLOSE, payload: closePayload(code, 'reason ✓') });
      assert.equal((await d.expectClose()).code, code, `close ${code} echoed`);
      await d.waitEnd();
    }
    // a Close in the middle of a fragmented message
    const mid = await wsConnect(h.port, { path: '/echo' });
    mid.send(txt('half of it', { fin: false }));
    mid.sendFrame({ opcode: OP.CLOSE, payload: closePayload(1000, 'bye') });
    const cm = await mid.expectClose();
    assert.equal(cm.code, 1000, 'Close is a control frame: allowed between fragments');
    assert.equal(cm.frames.length, 0);
    await mid.waitEnd();
    // an empty Close is answered with an empty Close
    const e = await wsConnect(h.port, { path: '/echo' });
    e.sendFrame({ opcode: OP.CLOSE });
    const ce = await e.expectClose();
    assert.equal(ce.code, null, 'empty close answered without a code');
    await e.waitEnd();
    // frames after the Close are ignored
    const g = await wsConnect(h.port, { path: '/echo' });
    g.send(Buffer.concat([close(closePayload(1000)), txt('too late'), frame({ opcode: OP.PING, payload: 'too late' })]));
    const cg = await g.expectClose();
    assert.equal(cg.code, 1000);
    await g.waitEnd();
    assert.equal(g.frames.length, 1, 'nothing after the close');
    // the `ws` client sees the clean close
    const w = wsc(h, '/echo');
    await w.opened;
    w.ws.close(1000, 'bye');
    const closed = await withTimeout(w.closedP, 5000 * SCALE, 'ws close');
    assert.equal(closed.code, 1000);
    await waitFor(async () => (await metrics(h)).get('herald_connections{transport="websocket"}') === 0, 5000 * SCALE, 'all closed');
  });
});

test('echo: a client that sends far more than it reads is paused, then every echo arrives in order', T, async () => {
  await withHerald({ echo: 'true', 'max-queued-bytes': '256k' }, async (h) => {
    const c = await wsConnect(h.port, { path: '/echo' });
    const w = wsc(h, '/sub/other');
    try {
      await w.opened;
      c.pause();
      const N = 160;
      const size = 32768;
      const payload = (i) => Buffer.alloc(size, i & 0xff);
      for (let i = 0; i < N; i++) c.sendFrame({ opcode: OP.BINARY, payload: payload(i) }); // 5 MB
      // the server keeps serving others meanwhile
      await waitSubscribed(h, 'other', 'websocket');
      await publish(h, 'other', 'meanwhile');
      await w.waitMsgs(1);
      c.resume();
      for (let i = 0; i < N; i++) {
        const f = await c.nextData(10000 * SCALE);
        assert.ok(f && f.opcode === OP.BINARY, `echo ${i} (got ${f && f.opcode})`);
        assert.ok(f.payload.equals(payload(i)), `echo ${i} in order and intact`);
      }
      c.sendFrame({ opcode: OP.TEXT, payload: 'last' });
      assert.equal((await c.nextData()).payload.toString(), 'last', 'reading resumed');
    } finally {
      c.close();
      w.ws.terminate();
    }
  });
});

test('a client flooding pings without reading the pongs does not make the server queue without bound', T, async () => {
  // README: every connection's write queue is bounded by max_queued_bytes; /echo pauses a peer
  // that sends faster than it reads. Pongs are replies too: the server must stop reading (or
  // drop the peer) instead of queueing megabytes of pongs nobody reads.
  await withHerald({ echo: 'true', 'max-queued-bytes': '64k' }, async (h) => {
    for (const path of ['/sub/flood', '/echo']) {
      const c = await wsConnect(h.port, { path });
      try {
        c.pause(); // never read the pongs
        const ping = frame({ opcode: OP.PING, payload: Buffer.alloc(125, 0x70) });
        const chunk = Buffer.concat(Array(1000).fill(ping)); // 131 KB of pings
        const rx0 = await bytesReceived(h);
        const target = 32 << 20;
        let sent = 0;
        let stuck = false;
        while (sent < target && !c.ended) {
          sent += chunk.length;
          if (!c.sock.write(chunk)) {
            // the kernel buffers are full: wait (bounded) for the server to read more
            const r = await Promise.race([
              new Promise((res) => c.sock.once('drain', () => res('drain'))),
              new Promise((res) => setTimeout(() => res('stuck'), 2000 * SCALE)),
            ]);
            if (r === 'stuck') {
              stuck = true;
              break;
            }
          }
        }
        const read = (await bytesReceived(h)) - rx0;
        assert.ok(
          c.ended || (stuck && read < 16 << 20),
          `${path}: the server read ${(read / 1048576).toFixed(1)} MB of pings and queued their pongs for a peer that ` +
            `reads nothing (max_queued_bytes 64k); want it to stop reading or drop the peer`,
        );
      } finally {
        c.close();
      }
    }
    assert.equal((await request(h, 'GET', '/healthz')).status, 200);
  });
});

for (const policy of ['drop', 'disconnect']) {
  test(`slow WebSocket subscriber (slow_policy=${policy}): whole frames only, no gap frame, the server stays healthy`, T, async () => {
    await withHerald({ 'max-queued-bytes': '64k', 'slow-policy': policy }, async (h) => {
      const w = await watcher(h);
      const c = await wsConnect(h.port, { path: '/sub/slow' });
      try {
        c.pause(); // the kernel buffers fill, then the server's queue
        assert.ok(await waitSubscribed(h, 'slow', 'websocket', 1));
        const N = 300;
        const body = 'x'.repeat(65000);
        for (let i = 0; i < N; i++) await publish(h, 'slow', `${i}:${body}`);
        const drops = (await metrics(h)).get('herald_queue_drops_total');
        assert.ok(drops > 0, `the queue overflowed (${drops} drops)`);
        c.resume();
        const ids = [];
        for (;;) {
          // drop: whatever was queued before the overflow, then nothing (no gap frame on this
          // endpoint, and dropped messages are not re-sent); disconnect: until the TCP close
          const f = policy === 'drop' ? await c.next(1500 * SCALE).catch(() => null) : await c.next(5000 * SCALE);
          if (!f) break;
          assert.equal(f.opcode, OP.TEXT, `only data frames (got ${f.opcode}${f.opcode === OP.CLOSE ? ` ${f.code}` : ''})`);
          const t = f.payload.toString();
          const id = Number(t.slice(0, t.indexOf(':')));
          assert.equal(t, `${id}:${body}`, 'whole, uncorrupted message');
          ids.push(id);
        }
        assert.ok(ids.length > 0 && ids.length < N, `some delivered, some dropped (${ids.length}/${N})`);
        assert.equal(ids[0], 0);
        assert.ok(ids.every((v, i) => i === 0 || v > ids[i - 1]), 'in order, no repeats');
        if (policy === 'drop') {
          assert.equal(c.ended, false, 'drop keeps the connection');
          await publish(h, 'slow', 'after');
          assert.equal((await c.nextData()).payload.toString(), 'after', 'live delivery continues');
        } else {
          assert.equal(c.ended, true, 'disconnect closes the connection');
          await waitFor(async () => (await metrics(h)).get('herald_connections{transport="websocket"}') === 1, 5000 * SCALE, 'slow subscriber gone');
        }
        await w.check(`slow subscriber (${policy})`);
      } finally {
        c.close();
        w.ws.terminate();
      }
    });
  });
}

test('a subscriber that closes TCP without a Close frame (FIN or reset) is unsubscribed', T, async () => {
  await withHerald(async (h) => {
    const subs = async () => (await request(h, 'GET', '/channels/gone')).json().subscribers;
    const a = await wsConnect(h.port, { path: '/sub/gone' });
    assert.ok(await waitSubscribed(h, 'gone', 'websocket'));
    a.sock.end();
    await waitFor(async () => (await subs()) === 0, 5000 * SCALE, 'unsubscribed after FIN');
    await a.waitEnd();
    const b = await wsConnect(h.port, { path: '/sub/gone' });
    b.send(txt('half', { fin: false })); // in the middle of a message, too
    assert.ok(await waitSubscribed(h, 'gone', 'websocket'));
    b.sock.resetAndDestroy();
    await waitFor(async () => (await subs()) === 0, 5000 * SCALE, 'unsubscribed after reset');
    await waitFor(async () => (await metrics(h)).get('herald_connections{transport="websocket"}') === 0, 5000 * SCALE, 'no connections');
    const r = await publish(h, 'gone', 'nobody');
    assert.equal(r.subscribers, 0);
  });
});

/* ---------------------------------------------------------------- heartbeat */

test('heartbeat: quiet connections are pinged; silent ones dropped; an auto-ponging client stays', T, async () => {
  await withHerald({ 'ws-ping-interval': 0.2, 'ws-ping-timeout': 0.3 }, async (h) => {
    const alive = wsc(h, '/sub/hb');
    await alive.opened;
    const t0 = Date.now();
    const silent = await wsConnect(h.port, { path: '/sub/hb' });
    try {
      const ping = await silent.next(3000 * SCALE);
      assert.ok(ping, 'a frame before the close');
      assert.equal(ping.opcode, OP.PING, 'the server pings a quiet connection');
      assert.ok(Date.now() - t0 >= 150, `not before the interval (${Date.now() - t0} ms)`);
      const tPing = Date.now();
      // never answered: dropped after the timeout
      await silent.waitEnd(3000 * SCALE);
      assert.ok(Date.now() - tPing >= 200, `dropped ${Date.now() - tPing} ms after the ping (timeout 300 ms)`);

      // a raw client that answers each ping keeps its connection
      const polite = await wsConnect(h.port, { path: '/sub/hb' });
      let pongs = 0;
      while (pongs < 4) {
        const f = await polite.next(3000 * SCALE);
        assert.ok(f && f.opcode === OP.PING, `ping ${pongs + 1} (got ${f && f.opcode})`);
        polite.sendFrame({ opcode: OP.PONG, payload: f.payload });
        pongs++;
      }
      assert.equal(polite.ended, false, 'answering pings keeps the connection');
      polite.close();

      // the ws client answered several pings automatically and is still connected
      await waitFor(() => alive.pings >= 5, 10000 * SCALE, '5 pings to the ws client');
      assert.equal(alive.closed, null, 'ws client still connected');
      assert.equal(alive.ws.readyState, WebSocket.OPEN);
      await publish(h, 'hb', 'still alive');
      await alive.waitMsgs(1);
      assert.equal(alive.texts()[0], 'still alive');
    } finally {
      silent.close();
      alive.ws.terminate();
    }
  });
});

/* ---------------------------------------------------------------- shutdown */

test('server shutdown sends Close 1001 to every WebSocket', T, async () => {
  // not withHerald: the SIGTERM is the subject here (h.stop() still requires exit code 0)
  const h = await startHerald({ echo: 'true' });
  const raws = [];
  const clients = [];
  let stop = null;
  try {
    raws.push(await wsConnect(h.port, { path: '/sub/bye' }));
    raws.push(await wsConnect(h.port, { path: '/echo', extensions: 'permessage-deflate' }));
    clients.push(wsc(h, '/sub/bye', { perMessageDeflate: true }), wsc(h, '/echo'));
    for (const c of clients) await c.opened;
    // one raw client is in the middle of a fragmented message
    raws[1].send(txt('half', { fin: false }));
    assert.ok(await waitSubscribed(h, 'bye', 'websocket', 2));
    stop = h.stop(); // SIGTERM
    for (const r of raws) {
      const cl = await r.expectClose(5000 * SCALE);
      assert.equal(cl.code, 1001, `raw client: close ${cl.code} ${cl.reason}`);
      await r.waitEnd(5000 * SCALE);
    }
    for (const c of clients) {
      const cl = await withTimeout(c.closedP, 5000 * SCALE, 'ws client close');
      assert.equal(cl.code, 1001);
    }
  } finally {
    for (const r of raws) r.close();
    for (const c of clients) c.ws.terminate();
    await (stop ?? h.stop()); // throws unless herald exited with code 0
  }
});

/* Fail fast inside a frame (Autobahn 6.4.x): text is checked for UTF-8 as its bytes arrive, also
 * inside a frame whose header announced far more than has come, so the Close 1007 comes before
 * the sender has sent the rest. The client never sends the rest: a server that waited for the
 * whole frame would answer nothing (expectClose would time out). */
test('WebSocket fails fast (1007) on invalid UTF-8 inside a frame still arriving, and across fragments', T, async () => {
  await withHerald({ echo: 'true', 'ws-max-message': '1m' }, async (h) => {
    const big = Buffer.alloc(64 * 1024, 0x61); // 64 KiB of "a"
    const cases = [
      // [what, bytes to send (a prefix of the frames), where the invalid byte is]
      ['0xff 100 bytes into a 64 KiB text frame', () => {
        const p = Buffer.from(big);
        p[100] = 0xff;
        return txt(p).subarray(0, 14 + 1000); // header (2 + 64-bit length 8 + mask 4), the first 1000 bytes
      }],
      ['an overlong form in a 60000-byte frame (16-bit length)', () => {
        const p = Buffer.alloc(60000, 0x62);
        p[5000] = 0xc0;
        p[5001] = 0xaf;
        return txt(p).subarray(0, 8 + 6000);
      }],
      ['a surrogate in a continuation frame announcing 64 KiB', () => {
        const p = Buffer.from(big);
        p.set([0xed, 0xa0, 0x80], 10);
        return Buffer.concat([txt('valid start ✓', { fin: false }), cont(p).subarray(0, 14 + 64)]);
      }],
      ['a bad continuation byte after a lead byte that ended the first fragment', () => {
        const p = Buffer.from(big);
        p[0] = 0x28; // "(" where a continuation byte of the E2 must come
        return Buffer.concat([txt(B(0x61, 0xe2), { fin: false }), cont(p, { fin: false }).subarray(0, 14 + 2)]);
      }],
    ];
    for (const [what, bytes] of cases) {
      const c = await wsConnect(h.port, { path: '/echo' });
      try {
        await c.sendSplit(bytes(), [7, 13, 500], 5); // in pieces: the check runs on each of them
        const cl = await c.expectClose(3000 * SCALE);
        assert.equal(cl.code, 1007, `${what}: close ${cl.code} ${cl.reason}`);
        assert.deepEqual(cl.frames.filter((f) => f.opcode !== OP.PING), [], `${what}: nothing echoed`);
        await c.waitEnd();
      } finally {
        c.close();
      }
    }
    // binary and compressed frames are not checked while they arrive: the connection stays
    const d = await wsConnect(h.port, { path: '/echo' });
    try {
      const p = Buffer.from(big);
      p[3] = 0xff;
      const f = bin(p);
      await d.sendSplit(f, [14 + 10, 14 + 30000], 20);
      const e = await d.nextData();
      assert.equal(e.opcode, OP.BINARY, `binary echoed (${e.opcode} ${e.code ?? ''})`);
      assert.ok(e.payload.equals(p));
    } finally {
      d.close();
    }
    // another connection is unaffected
    const ok = await wsConnect(h.port, { path: '/echo' });
    try {
      ok.send(txt('still fine'));
      const e = await ok.nextData();
      assert.equal(e.payload.toString(), 'still fine');
    } finally {
      ok.close();
    }
  });
});

test('WebSocket: valid text split at every byte (header, mask key, inside code points), several frames per read, all echoed', T, async () => {
  await withHerald({ echo: 'true' }, async (h) => {
    const c = await wsConnect(h.port, { path: '/echo' });
    try {
      const s = Buffer.from('κόσμε € 𝄞 ✓ '.repeat(12)); // over 125 bytes: a 16-bit length
      await c.sendSplit(txt(s), 'each', 1);
      let e = await c.nextData();
      assert.equal(e.opcode, OP.TEXT, `echoed (${e.opcode} ${e.code ?? ''} ${e.reason ?? ''})`);
      assert.ok(e.payload.equals(s), 'one frame split at every byte');
      // fragments split at every byte, each fragment cut inside code points
      const frags = Buffer.concat([txt(s.subarray(0, 7), { fin: false }), cont(s.subarray(7, 150), { fin: false }), cont(s.subarray(150))]);
      await c.sendSplit(frags, 'each', 1);
      e = await c.nextData();
      assert.ok(e.payload.equals(s), 'fragments split at every byte');
      // a whole frame and the start of the next in one write, the rest later
      const two = Buffer.concat([txt('first ✓'), txt(s)]);
      await c.sendSplit(two, [txt('first ✓').length + 20, two.length - 3], 10);
      e = await c.nextData();
      assert.equal(e.payload.toString(), 'first ✓');
      e = await c.nextData();
      assert.ok(e.payload.equals(s), 'the second frame, read in three pieces');
    } finally {
      c.close();
    }
  });
});
