// Backpressure: a client that sends requests without reading the answers cannot make herald
// hold more than its configured bytes (HTTP pipelining, MQTT requests); an MQTT client must send
// CONNECT within header_timeout. Memory is read from /proc/PID/status; every flood is bounded in
// time and bytes, and the server must go on serving others afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { withHerald, request, metrics, waitFor, withTimeout, sleep, SCALE, HERALD_BIN } from '../lib/herald.mjs';
import { openWS } from '../lib/stomp.mjs';

const T = { timeout: 60000 * SCALE };
const MB = 1024 * 1024;
/* AddressSanitizer keeps freed blocks in quarantine (up to 256 MB), so the ASan build's RSS grows
 * with the replies it wrote and freed: its bound only catches unbounded growth. */
const BOUND = (/asan/.test(HERALD_BIN) ? 320 : 48) * MB;

function rssBytes(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]) * 1024;
}

/* Writes chunk to a fresh connection on port for ms (or until limit bytes are accepted by the
 * kernel) without ever reading; returns {written, sock}. Writes stop when the socket would block
 * (the server stopped reading: that is the point) and go on when it drains. */
async function flood(port, first, chunk, { ms = 3000, limit = 400 * MB } = {}) {
  const sock = net.connect(port, '127.0.0.1');
  sock.on('error', () => {});
  await new Promise((res, rej) => {
    sock.once('connect', res);
    sock.once('error', rej);
  });
  sock.pause(); // never read: the answers pile up in the server's write queue
  if (first) sock.write(first);
  let written = 0;
  const until = Date.now() + ms;
  while (Date.now() < until && written < limit && !sock.destroyed) {
    if (!sock.write(chunk)) {
      // the kernel buffers are full: wait a little for a drain that will not come while paused
      await Promise.race([new Promise((r) => sock.once('drain', r)), sleep(50)]);
      continue;
    }
    written += chunk.length;
  }
  return { written, sock };
}

/* Floods port as flood() does and asserts what every flood must show: RSS bounded, the connection
 * paused (herald_read_pauses_total), and, once the client reads, at least `answers` bytes of
 * answers arriving. */
async function floodIsBounded(t, h, port, first, chunk, what, answers) {
  const before = rssBytes(h.proc.pid);
  const { written, sock } = await flood(port, first, chunk, { ms: 3000 * SCALE });
  const grown = rssBytes(h.proc.pid) - before;
  const sent = (written / MB).toFixed(1);
  t.diagnostic(`${what} flood: ${sent} MB sent, RSS +${(grown / MB).toFixed(1)} MB`);
  assert.ok(grown < BOUND, `RSS grew by ${(grown / MB).toFixed(1)} MB while ${sent} MB of ${what} were sent`);
  const m = await metrics(h);
  assert.ok(m.get('herald_read_pauses_total') >= 1, `the ${what} connection was paused`);
  let got = 0;
  sock.on('data', (d) => { got += d.length; });
  sock.resume();
  await waitFor(() => got >= answers, 10000 * SCALE, `${what}: answers once reading resumes`);
  sock.destroy();
}

test('HTTP pipelining without reading the answers: herald stops reading, memory stays bounded', T, async (t) => {
  await withHerald({ 'max-queued-bytes': '256k', 'header-timeout': 30 }, async (h) => {
    // each request earns a ~150-byte answer; 64 requests per write. A server that parses on
    // regardless queues an answer per request: ~3x what was written.
    const one = 'GET /channels/flood HTTP/1.1\r\nHost: localhost\r\n\r\n';
    await floodIsBounded(t, h, h.port, null, Buffer.from(one.repeat(64)), 'HTTP requests', 256 * 1024);
    const r = await request(h, 'GET', '/healthz');
    assert.equal(r.status, 200, 'others are still served');
  });
});

test('MQTT: PINGREQs without reading the PINGRESPs do not grow memory past the queue limit', T, async (t) => {
  await withHerald({ 'max-queued-bytes': '256k' }, async (h) => {
    // CONNECT (v3.1.1, client id "f", clean session), then PINGREQ after PINGREQ; unbounded, each
    // 2-byte PINGREQ queues a 2-byte reply block (~80 bytes with its bookkeeping)
    const connect = Buffer.from([0x10, 13, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 0, 0, 1, 0x66]);
    const ping = Buffer.alloc(2 * 4096);
    for (let i = 0; i < ping.length; i += 2) ping[i] = 0xc0;
    await floodIsBounded(t, h, h.mqttPort, connect, ping, 'MQTT PINGREQs', 4 + 2 * 1000);
  });
});

test('MQTT: a connection that sends no CONNECT within header_timeout is closed and counted', T, async () => {
  await withHerald({ 'header-timeout': 1 }, async (h) => {
    const socks = [];
    for (let i = 0; i < 5; i++) {
      const s = net.connect(h.mqttPort, '127.0.0.1');
      s.on('error', () => {});
      s.closedAt = null;
      s.on('close', () => { s.closedAt = Date.now(); });
      await new Promise((r) => s.once('connect', r));
      if (i % 2) s.write(Buffer.from([0x10])); // one byte of a CONNECT, then nothing
      socks.push(s);
    }
    const t0 = Date.now();
    await waitFor(() => socks.every((s) => s.closedAt), 8000 * SCALE, 'every silent MQTT connection closed');
    assert.ok(Date.now() - t0 >= 500, 'not closed before the deadline');
    const m = await metrics(h);
    assert.equal(m.get('herald_connect_timeouts_total'), 5);
    // a real client in time is unaffected
    const ok = net.connect(h.mqttPort, '127.0.0.1');
    const connack = await new Promise((res, rej) => {
      ok.once('data', res);
      ok.once('error', rej);
      ok.write(Buffer.from([0x10, 13, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 60, 0, 1, 0x67]));
    });
    assert.deepEqual([...connack], [0x20, 2, 0, 0]);
    ok.destroy();
  });
});

test('MQTT over WebSocket: no CONNECT within header_timeout closes the WebSocket (1008) and is counted; keepalive 0 after CONNECT is not cut', T, async () => {
  await withHerald({ 'header-timeout': 0.5 }, async (h) => {
    const silent = await openWS(`ws://127.0.0.1:${h.port}/mqtt`, ['mqtt']);
    const t0 = Date.now();
    const info = await silent.waitClosed(5000 * SCALE);
    assert.equal(info.code, 1008);
    assert.ok(Date.now() - t0 >= 300, 'not closed before the deadline');
    assert.equal((await metrics(h)).get('herald_connect_timeouts_total'), 1);
    const ok = await openWS(`ws://127.0.0.1:${h.port}/mqtt`, ['mqtt']);
    ok.send(Buffer.from([0x10, 13, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 0, 0, 1, 0x67]), true); // keepalive 0
    assert.deepEqual([...(await ok.next()).data], [0x20, 2, 0, 0]);
    await sleep(1000);
    ok.send(Buffer.from([0xc0, 0]), true); // PINGREQ after the deadline: still connected
    assert.deepEqual([...(await ok.next()).data], [0xd0, 0]);
    ok.close();
  });
});

test('send_timeout: connections that never read what they earned are closed (HTTP pipelining, MQTT with keep-alive 0, an SSE subscriber); a slow but reading one stays', T, async () => {
  await withHerald({ 'max-queued-bytes': '64k', 'send-timeout': 1 }, async (h) => {
    const one = 'GET /channels/flood HTTP/1.1\r\nHost: localhost\r\n\r\n';
    const http = (await flood(h.port, null, Buffer.from(one.repeat(64)), { ms: 3000 * SCALE })).sock;
    const connect = Buffer.from([0x10, 13, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 0, 0, 1, 0x66]); // keep-alive 0
    const ping = Buffer.alloc(2 * 4096);
    for (let i = 0; i < ping.length; i += 2) ping[i] = 0xc0;
    const mqtt = (await flood(h.mqttPort, connect, ping, { ms: 3000 * SCALE })).sock;
    /* an SSE subscriber that stops reading while messages keep coming */
    const sse = net.connect(h.port, '127.0.0.1');
    sse.on('error', () => {});
    await new Promise((r) => sse.once('connect', r));
    sse.write('GET /sub/st HTTP/1.1\r\nHost: localhost\r\n\r\n');
    sse.pause();
    /* and one that reads, slowly but steadily */
    let got = 0;
    const slow = net.connect(h.port, '127.0.0.1');
    slow.on('error', () => {});
    await new Promise((r) => slow.once('connect', r));
    slow.write('GET /sub/st HTTP/1.1\r\nHost: localhost\r\n\r\n');
    slow.on('data', (d) => {
      got += d.length;
      slow.pause();
      setTimeout(() => slow.resume(), 100);
    });
    const closed = (s) => new Promise((r) => (s.destroyed ? r() : s.once('close', r)));
    const big = 'x'.repeat(60000);
    const t0 = Date.now();
    const pub = setInterval(() => request(h, 'POST', '/pub/st', { body: big, headers: { 'Content-Length': '60000' } }).catch(() => {}), 50);
    try {
      await waitFor(async () => (await metrics(h)).get('herald_send_timeouts_total') >= 3, 10000 * SCALE,
        'three send timeouts', 200);
    } finally {
      clearInterval(pub);
    }
    /* a paused socket does not see the close: reading again, each finds its end */
    for (const s of [http, mqtt, sse]) s.resume();
    await withTimeout(Promise.all([closed(http), closed(mqtt), closed(sse)]), 10000 * SCALE, 'the three never-reading connections closed');
    assert.ok(Date.now() - t0 >= 800, 'not before send_timeout');
    assert.ok(!slow.destroyed, 'a slow reader is not cut');
    assert.ok(got > 100000, `the slow reader got ${got} bytes`);
    slow.destroy();
    assert.equal((h.out.match(/made no progress for send_timeout/g) || []).length, 1, 'logged once');
  });
});
