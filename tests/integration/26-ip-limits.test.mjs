// Per client address limits: max_connections_per_ip (one address cannot take every slot) and
// max_new_connections_per_ip (a token bucket per address), shared by HTTP and MQTT; exempt
// addresses; counted and logged once. Loopback has many addresses (127.0.0.2 is another client).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { withHerald, metrics, waitFor, SCALE } from '../lib/herald.mjs';

const T = { timeout: 30000 * SCALE };

/* Opens a connection from localAddress, sends req, resolves with the first bytes of the answer
 * ('' when the server closed at once) and the socket (still open when the answer streams). */
function open(port, req, localAddress = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress });
    let got = '';
    const t = setTimeout(() => resolve({ s, text: got }), 3000 * SCALE);
    s.on('data', (d) => {
      got += d.toString();
      if (/\r\n\r\n/.test(got)) {
        clearTimeout(t);
        resolve({ s, text: got });
      }
    });
    s.on('close', () => {
      clearTimeout(t);
      resolve({ s, text: got });
    });
    s.on('error', (e) => (got ? null : reject(e)));
    s.on('connect', () => req && s.write(req));
  });
}

const SSE = 'GET /sub/lim HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n';
const status = (text) => Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 0);

test('max_connections_per_ip: the address gets its share (HTTP 503 with a reason, MQTT closed), others are served', T, async () => {
  await withHerald({ 'max-connections-per-ip': 3, 'per-ip-exempt': '', 'max-new-connections-per-ip': 0 }, async (h) => {
    const held = [];
    for (let i = 0; i < 3; i++) {
      const c = await open(h.port, SSE);
      assert.equal(status(c.text), 200, `stream ${i}`);
      held.push(c.s);
    }
    const over = await open(h.port, SSE);
    assert.equal(status(over.text), 503);
    assert.match(over.text, /too many connections from your address/);
    const mq = await open(h.mqttPort, Buffer.from([0x10, 13, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 60, 0, 1, 0x6c]));
    assert.equal(mq.text, '', 'MQTT from the same address: closed without an answer');
    const other = await open(h.port, SSE, '127.0.0.2');
    assert.equal(status(other.text), 200, 'another address is served');
    other.s.destroy();
    held.pop().destroy(); // a slot of 127.0.0.1 frees up
    await waitFor(async () => {
      const c = await open(h.port, SSE);
      c.s.destroy();
      return status(c.text) === 200;
    }, 5000 * SCALE, 'a new connection once one closed');
    for (const s of held) s.destroy();
    const m = await metrics(h);
    assert.ok(m.get('herald_ip_refused_total{limit="max_connections_per_ip"}') >= 2);
    assert.equal(h.out.split('max_connections_per_ip reached').length - 1, 1, 'logged once per address');
  });
});

test('max_new_connections_per_ip: a burst beyond the rate is refused, the bucket refills; exempt addresses are not limited', T, async () => {
  await withHerald({ 'max-new-connections-per-ip': 5, 'max-connections-per-ip': 0, 'per-ip-exempt': '127.0.0.3' }, async (h) => {
    const codes = []; // from 127.0.0.4, an address nothing else here uses (the harness polls from 127.0.0.1)
    for (let i = 0; i < 20; i++) {
      const c = await open(h.port, 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n', '127.0.0.4');
      codes.push(status(c.text));
      c.s.destroy();
    }
    assert.ok(codes.slice(0, 5).every((c) => c === 200), `the first 5 pass: ${codes}`);
    assert.ok(codes.includes(503), `some of 20 in a burst are refused: ${codes}`);
    const exempt = [];
    for (let i = 0; i < 20; i++) {
      const c = await open(h.port, 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n', '127.0.0.3');
      exempt.push(status(c.text));
      c.s.destroy();
    }
    assert.ok(exempt.every((c) => c === 200), `exempt address never refused: ${exempt}`);
    await waitFor(async () => {
      const c = await open(h.port, 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n', '127.0.0.4');
      c.s.destroy();
      return status(c.text) === 200;
    }, 5000 * SCALE, 'the bucket refills', 250);
    const m = await metrics(h);
    assert.ok(m.get('herald_ip_refused_total{limit="max_new_connections_per_ip"}') >= 1);
  });
});
