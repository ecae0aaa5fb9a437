// Issue 14 part 4, PROXY protocol: with proxy_protocol = true every connection (HTTP and MQTT)
// begins with a PROXY v1 or v2 header from the load balancer; the client it names is the one
// logged and limited per address; a header may arrive in pieces; LOCAL (a health check) keeps
// the TCP peer; a connection without a valid header is closed, counted and logged once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startHerald, waitFor, sleep, parseResponses, SCALE } from '../lib/herald.mjs';

const T = { timeout: 60000 * SCALE };
const v1 = (src, sport = 5555) => Buffer.from(`PROXY TCP4 ${src} 127.0.0.1 ${sport} 80\r\n`);
function v2(cmd, fam, addr) {
  const sig = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
  const head = Buffer.from([0x20 | cmd, fam, addr.length >> 8, addr.length & 255]);
  return Buffer.concat([sig, head, addr]);
}
/* TCP over IPv6 from 2001:db8::7 port 4242 to ::1 port 80 */
const v6addr = Buffer.concat([Buffer.from('20010db8000000000000000000000007', 'hex'), Buffer.alloc(15), Buffer.from([1]),
  Buffer.from([0x10, 0x92, 0, 80])]);

/* Sends the parts (with a pause between them) and collects the answer until the peer closes or ms pass. */
function exchange(port, parts, ms = 1500 * SCALE) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const chunks = [];
    let closed = false;
    s.on('data', (d) => chunks.push(d));
    s.on('error', () => {});
    s.on('close', () => {
      closed = true;
      resolve({ closed, data: Buffer.concat(chunks) });
    });
    s.on('connect', async () => {
      for (const p of parts) {
        s.write(p);
        await sleep(150);
      }
      setTimeout(() => {
        s.destroy();
        resolve({ closed, data: Buffer.concat(chunks) });
      }, ms);
    });
  });
}
const get = (p) => Buffer.from(`GET ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
const statusOf = (r) => parseResponses(r.data, true)[0]?.status;

test('proxy_protocol: v1 and v2 name the client (logs, per-address limits), in pieces too; LOCAL keeps the peer; no header: closed, counted, logged once; MQTT too', T, async () => {
  const h = await startHerald({ proxy_protocol: true, access_log: 'stderr', per_ip_exempt: '', max_connections_per_ip: 1,
    header_timeout: 1 },
    { readyLog: true });
  try {
    let r = await exchange(h.port, [Buffer.concat([v1('203.0.113.9'), get('/healthz')])]);
    assert.equal(statusOf(r), 200);
    assert.match(h.out, /203\.0\.113\.9 \(via 127\.0\.0\.1:\d+\) \[[^\]]+\] "GET \/healthz" 200/);
    r = await exchange(h.port, [Buffer.concat([v2(1, 0x21, v6addr), get('/healthz')])]);
    assert.equal(statusOf(r), 200);
    assert.match(h.out, /2001:db8::7 \(via 127\.0\.0\.1:\d+\) \[[^\]]+\] "GET \/healthz" 200/);
    /* the header in three pieces, then the request */
    const whole = v1('198.51.100.20');
    r = await exchange(h.port, [whole.subarray(0, 7), whole.subarray(7, 20), Buffer.concat([whole.subarray(20), get('/healthz')])]);
    assert.equal(statusOf(r), 200);
    assert.match(h.out, /198\.51\.100\.20 \(via/);
    /* LOCAL: a health check from the balancer itself, logged as the TCP peer */
    r = await exchange(h.port, [Buffer.concat([v2(0, 0x00, Buffer.alloc(0)), get('/metrics')])]);
    assert.equal(statusOf(r), 200);
    assert.match(h.out, /\n[^\n]*127\.0\.0\.1:\d+ \[[^\]]+\] "GET \/metrics" 200/);
    assert.equal(parseResponses(r.data, true)[0].body.toString().match(/reason="proxy_protocol"} (\d+)/)[1], '0');
    /* per-address limits count the named client: a second connection of 198.51.100.1 is refused,
     * another client is not */
    const hold = net.connect(h.port, '127.0.0.1');
    await new Promise((res) => hold.on('connect', res));
    hold.write(Buffer.concat([v1('198.51.100.1'), Buffer.from('GET /sub/x HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n')]));
    await sleep(200);
    r = await exchange(h.port, [Buffer.concat([v1('198.51.100.1'), get('/healthz')])]);
    assert.equal(statusOf(r), 503);
    r = await exchange(h.port, [Buffer.concat([v1('198.51.100.2'), get('/healthz')])]);
    assert.equal(statusOf(r), 200);
    hold.destroy();
    /* no header, a bad one: closed without an answer */
    r = await exchange(h.port, [get('/healthz')]);
    assert.equal(r.data.length, 0);
    assert.ok(r.closed);
    r = await exchange(h.port, [Buffer.from('PROXY TCP4 nonsense\r\n'), get('/healthz')]);
    assert.equal(r.data.length, 0);
    assert.equal(h.out.match(/sent no valid PROXY header in time/g)?.length, 1, 'logged once');
    /* a connection that says nothing is closed at header_timeout */
    const t0 = Date.now();
    r = await exchange(h.port, [], 4000 * SCALE);
    assert.ok(r.closed && Date.now() - t0 < 3500 * SCALE, `closed by the server after ${Date.now() - t0} ms`);
    /* MQTT: CONNECT after the header gets its CONNACK */
    const connect = Buffer.from([0x10, 13, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 2, 0, 30, 0, 1, 0x70]);
    r = await exchange(h.mqttPort, [Buffer.concat([v1('192.0.2.44'), connect])], 500);
    assert.deepEqual([...r.data.subarray(0, 4)], [0x20, 2, 0, 0]);
    r = await exchange(h.port, [Buffer.concat([v1('192.0.2.45'), get('/metrics')])]);
    assert.equal(parseResponses(r.data, true)[0].body.toString().match(/reason="proxy_protocol"} (\d+)/)[1], '3');
  } finally {
    await h.stop();
  }
});
