// TLS on every listener (issue 14 parts 1 and 6), with a throwaway CA made by the openssl CLI:
// HTTPS with curl --cacert (publish, poll, SSE, long poll), Node's https (iframe, a slow reader
// under a large backlog), the eventsource package, WSS with `ws` (/sub WebSocket and /ws),
// stompjs over WSS, MQTT.js over mqtts:// and wss://.../mqtt, mosquitto_sub/pub --cafile over
// mqtts and with client certificates (optional and required modes, the certificate's CN as the
// MQTT user), paho over mqtts; ALPN, SNI, tls_min_version, a plain request to the HTTPS port, a
// stalled handshake cut at tls_handshake_timeout, bad certificate and key files refused at start,
// certificates reloaded on SIGHUP under open connections, and `herald pub/sub --url https://`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import {
  withHerald, getJSON, run, spawnStream, waitFor, waitSubscribed, withTimeout, sleep, metrics, loadEventSource,
  boundedQueue, SSEParser, freePort, HERALD_BIN, SCALE,
} from '../lib/herald.mjs';
import { mq } from '../lib/mqttjs.mjs';
import { WebSocket, Client, Versions } from '../lib/stomp.mjs';
import { serveExpectingExit, tmpFile, API_KEY } from '../lib/auth.mjs';
import { makePKI, startTLS, tlsConnect } from '../lib/tls.mjs';

const T = { timeout: 60000 * SCALE };
const EventSource = loadEventSource();
const PY = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

let pki;
let CA;
before(() => {
  pki = makePKI();
  CA = fs.readFileSync(pki.ca);
});
after(() => pki?.clean());

/* Runs fn(h) against a herald with https and mqtts; always stops it (exit 0 required). */
async function withTLS(flags, fn) {
  if (typeof flags === 'function') [flags, fn] = [{}, flags];
  const h = await startTLS(pki, flags);
  try {
    await fn(h);
  } catch (e) {
    e.message += `\n--- herald output (tail) ---\n${h.tail(2500)}`;
    try {
      await h.stop();
    } catch {}
    throw e;
  }
  await h.stop();
}

/* One HTTPS request (agent: false) trusting the test CA. */
function req(h, method, p, { body, headers = {}, ca = CA, servername } = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const r = https.request({ host: '127.0.0.1', port: h.httpsPort, method, path: p, headers, ca, servername: servername ?? 'localhost', agent: false },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString(), socket: res.socket }));
        res.on('error', reject);
      });
    r.on('error', reject);
    r.end(body);
  }), 10000 * SCALE, `HTTPS ${method} ${p}`);
}

const pub = async (h, ch, data) => {
  const r = await req(h, 'POST', `/pub/${ch}`, { body: data, headers: { 'Content-Length': Buffer.byteLength(data) } });
  assert.equal(r.status, 200, r.text);
  return JSON.parse(r.text);
};

/* An SSE stream over HTTPS: events queue; res.pause()/resume() control reading. */
function openSSEs(h, p) {
  return withTimeout(new Promise((resolve, reject) => {
    const r = https.request({ host: '127.0.0.1', port: h.httpsPort, path: p, ca: CA, servername: 'localhost', agent: false,
      headers: { Accept: 'text/event-stream' } }, (res) => {
      const q = boundedQueue(`SSE over TLS ${p}`);
      const parser = new SSEParser({ onEvent: (e) => q.push(e) });
      res.on('data', (c) => parser.push(c));
      res.on('end', () => q.end());
      res.on('error', () => q.end());
      resolve({ res, q, next: (ms) => q.next(ms), close: () => r.destroy() });
    });
    r.on('error', reject);
    r.end();
  }), 5000 * SCALE, `SSE over TLS ${p}`);
}

const curl = (args, opts) => run('curl', ['-sS', '--cacert', pki.ca, ...args], opts);

/* ---------------------------------------------------------------- HTTPS */

test('curl --cacert over HTTPS: publish, poll, SSE, long poll; ALPN http/1.1; plain listeners unchanged', T, async () => {
  await withTLS(async (h) => {
    const p = await curl(['-d', 'over tls', `${h.https}/pub/t1`]);
    assert.equal(p.code, 0, p.stderr);
    assert.equal(JSON.parse(p.stdout).id, '1');
    const poll = await curl([`${h.https}/sub/t1?mode=poll&last_id=0`]);
    assert.equal(JSON.parse(poll.stdout).messages[0].data, 'over tls');
    // the same channel over plain HTTP: one namespace
    assert.equal((await getJSON(h, '/sub/t1?mode=poll&last_id=0')).messages[0].data, 'over tls');

    const sse = spawnStream('curl', ['-sSN', '--cacert', pki.ca, '-H', 'Last-Event-ID: 0', `${h.https}/sub/t1`]);
    try {
      await waitFor(() => sse.text.includes('data: over tls'), 5000 * SCALE, 'curl SSE replays over TLS');
      await waitSubscribed(h, 't1', 'sse');
      await pub(h, 't1', 'live over tls');
      await waitFor(() => sse.text.includes('data: live over tls'), 5000 * SCALE, 'curl SSE live message');
    } finally {
      await sse.stop();
    }
    const lp = run('curl', ['-sS', '--cacert', pki.ca, `${h.https}/sub/t1?mode=longpoll&last_id=2`]);
    await waitSubscribed(h, 't1', 'longpoll');
    await pub(h, 't1', 'woke the long poll');
    const lpr = await lp;
    assert.equal(JSON.parse(lpr.stdout).messages[0].data, 'woke the long poll');

    // ALPN: http/1.1 chosen from what the client offers; a client offering none still works
    const s = await tlsConnect(h.httpsPort, { ca: CA, ALPNProtocols: ['h2', 'http/1.1'] });
    assert.equal(s.alpnProtocol, 'http/1.1');
    assert.equal(s.getProtocol(), 'TLSv1.3');
    s.destroy();
    const s2 = await tlsConnect(h.httpsPort, { ca: CA, maxVersion: 'TLSv1.2' });
    assert.equal(s2.getProtocol(), 'TLSv1.2');
    assert.match(s2.getCipher().name, /ECDHE-ECDSA-(AES128-GCM|AES256-GCM|CHACHA20)/);
    s2.destroy();
    const m = await metrics(h);
    assert.ok(m.get('herald_tls_handshakes_total{listener="https",result="ok"}') >= 5);
  });
});

test('HTTPS: iframe stream, and a slow reader of 6 MB of backlog gets every message in order', T, async () => {
  await withTLS({ 'max-queued-bytes': '64m', 'history-messages': 10 }, async (h) => {
    const ifr = await withTimeout(new Promise((resolve, reject) => {
      https.get({ host: '127.0.0.1', port: h.httpsPort, path: '/sub/fr?mode=iframe', ca: CA, servername: 'localhost', agent: false },
        (res) => {
          let text = '';
          res.on('data', (c) => {
            text += c;
            if (text.includes('iframe over tls')) {
              res.destroy();
              resolve(text);
            }
          });
          waitSubscribed(h, 'fr', 'iframe').then(() => pub(h, 'fr', 'iframe over tls')).catch(reject);
        }).on('error', reject);
    }), 10000 * SCALE, 'iframe over TLS');
    assert.match(ifr, /<script>/);

    // 200 messages of 32 KiB while the reader is paused: the server's writes hit a full socket
    // (SSL_write wants to write) and must resume with the same bytes; then everything arrives
    const s = await openSSEs(h, '/sub/flood');
    await waitSubscribed(h, 'flood', 'sse');
    s.res.pause();
    const N = 200;
    const body = (i) => `${String(i).padStart(5, '0')}:${'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(910)}`;
    for (let i = 1; i <= N; i++) await pub(h, 'flood', body(i));
    await sleep(200);
    s.res.resume();
    for (let i = 1; i <= N; i++) {
      const e = await s.next(10000 * SCALE);
      assert.equal(e.id, String(i));
      assert.equal(e.data, body(i), `message ${i} intact`);
    }
    s.close();
  });
});

test('eventsource package over HTTPS, with the test CA', T, async () => {
  await withTLS(async (h) => {
    await pub(h, 'es', 'history');
    const es = new EventSource(`${h.https}/sub/es`, { headers: { 'Last-Event-ID': '0' }, https: { ca: CA } });
    const q = boundedQueue('eventsource over TLS');
    es.onmessage = (e) => q.push(e);
    try {
      assert.equal((await q.next(5000 * SCALE)).data, 'history');
      await waitSubscribed(h, 'es', 'sse');
      await pub(h, 'es', 'live');
      const e = await q.next(5000 * SCALE);
      assert.equal(e.data, 'live');
      assert.equal(e.lastEventId, '2');
    } finally {
      es.close();
    }
    // without the CA, the certificate is refused (the client's verification works)
    const bad = new EventSource(`${h.https}/sub/es`);
    const err = await withTimeout(new Promise((r) => (bad.onerror = r)), 5000 * SCALE, 'eventsource refuses');
    bad.close();
    assert.ok(err);
  });
});

test('plain HTTP sent to the HTTPS port gets a 400 that says so; counted as not_tls', T, async () => {
  await withTLS(async (h) => {
    const r = await run('curl', ['-sS', `http://127.0.0.1:${h.httpsPort}/healthz`]);
    assert.match(r.stdout.toString(), /plain HTTP request was sent to the HTTPS port/);
    const m = await metrics(h);
    assert.equal(m.get('herald_tls_handshake_failures_total{listener="https",reason="not_tls"}'), 1);
    assert.match(h.out, /TLS handshake failed: the peer does not speak TLS/);
  });
});

/* ---------------------------------------------------------------- WSS */

const wssURL = (h, p) => `wss://localhost:${h.httpsPort}${p}`;

function openWSS(url, protocols = []) {
  return withTimeout(new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { ca: CA, perMessageDeflate: false });
    const q = boundedQueue(url);
    ws.on('message', (d) => q.push(d.toString()));
    ws.on('close', () => q.end());
    ws.once('open', () => resolve({ ws, q, next: (ms) => q.next(ms) }));
    ws.once('error', reject);
  }), 5000 * SCALE, `WSS ${url}`);
}

test('WSS: /sub WebSocket and the /ws JSON protocol over TLS', T, async () => {
  await withTLS(async (h) => {
    const a = await openWSS(wssURL(h, '/sub/wsc'));
    const b = await openWSS(wssURL(h, '/ws'));
    try {
      await waitSubscribed(h, 'wsc', 'websocket');
      await pub(h, 'wsc', 'to the socket');
      assert.equal(await a.next(5000 * SCALE), 'to the socket');
      const welcome = JSON.parse(await b.next(5000 * SCALE));
      assert.equal(welcome.op, 'welcome');
      b.ws.send(JSON.stringify({ op: 'subscribe', channel: 'wsc', last_id: '0' }));
      let m;
      do m = JSON.parse(await b.next(5000 * SCALE)); while (m.op !== 'message');
      assert.equal(m.data, 'to the socket');
      b.ws.send(JSON.stringify({ op: 'publish', channel: 'wsc', data: 'from /ws over tls' }));
      assert.equal(await a.next(5000 * SCALE), 'from /ws over tls');
    } finally {
      a.ws.terminate();
      b.ws.terminate();
    }
  });
});

test('stompjs over WSS: SUBSCRIBE and SEND', T, async () => {
  await withTLS(async (h) => {
    const versions = new Versions(['1.2']);
    const got = boundedQueue('STOMP over WSS');
    let ws;
    const client = new Client({
      webSocketFactory: () => (ws = new WebSocket(wssURL(h, '/stomp'), versions.protocolVersions(), { ca: CA })),
      stompVersions: versions,
      reconnectDelay: 0,
      heartbeatIncoming: 0,
      heartbeatOutgoing: 0,
      debug: () => {},
    });
    const connected = new Promise((r) => (client.onConnect = r));
    client.activate();
    try {
      const f = await withTimeout(connected, 5000 * SCALE, 'STOMP CONNECTED over WSS');
      assert.equal(f.headers.version, '1.2');
      assert.equal(ws.protocol, 'v12.stomp');
      client.subscribe('/topic/st', (m) => got.push(m.body));
      await waitSubscribed(h, 'st', 'stomp');
      await pub(h, 'st', 'stomp over tls');
      assert.equal(await got.next(5000 * SCALE), 'stomp over tls');
      client.publish({ destination: '/topic/st', body: 'sent over tls' });
      assert.equal(await got.next(5000 * SCALE), 'sent over tls');
    } finally {
      await client.deactivate();
    }
  });
});

/* ---------------------------------------------------------------- MQTT over TLS */

test('MQTT.js over mqtts:// and wss://.../mqtt; ALPN mqtt on mqtts', T, async () => {
  await withTLS(async (h) => {
    const a = await mq(`mqtts://localhost:${h.mqttsPort}`, { ca: CA, clientId: 'tls-a' });
    const b = await mq(`wss://localhost:${h.httpsPort}/mqtt`, { ca: CA, clientId: 'tls-b', protocolVersion: 5 });
    try {
      await a.sub('m/+');
      await b.sub('m/#');
      await a.pub('m/1', 'from mqtts');
      assert.equal((await a.next()).payload, 'from mqtts');
      assert.equal((await b.next()).payload, 'from mqtts');
      await pub(h, 'm/2', 'from https');
      assert.equal((await a.next()).payload, 'from https');
      assert.equal((await b.next()).payload, 'from https');
    } finally {
      await a.end();
      await b.end();
    }
    const s = await tlsConnect(h.mqttsPort, { ca: CA, ALPNProtocols: ['mqtt'] });
    assert.equal(s.alpnProtocol, 'mqtt');
    s.destroy();
  });
});

test('mosquitto_sub/pub --cafile over mqtts; paho over mqtts', T, async () => {
  await withTLS(async (h) => {
    const port = String(h.mqttsPort);
    const sub = spawnStream('stdbuf', ['-oL', 'mosquitto_sub', '-h', 'localhost', '-p', port, '--cafile', pki.ca, '-t', 'mq/x', '-C', '2', '-d']);
    try {
      await waitFor(() => /SUBACK/.test(sub.stdout.toString()) || sub.exited, 10000 * SCALE, 'mosquitto_sub SUBACK');
      const p = await run('mosquitto_pub', ['-h', 'localhost', '-p', port, '--cafile', pki.ca, '-t', 'mq/x', '-m', 'mosquitto over tls']);
      assert.equal(p.code, 0, p.stderr);
      await pub(h, 'mq/x', 'https to mosquitto');
      const exit = await withTimeout(sub.exit, 10000 * SCALE, 'mosquitto_sub exit');
      assert.equal(exit.code, 0, sub.stderr);
      assert.match(sub.text, /mosquitto over tls/);
      assert.match(sub.text, /https to mosquitto/);
    } finally {
      if (!sub.exited) await sub.stop();
    }
    // a wrong CA: mosquitto refuses the server's certificate
    const bad = await run('mosquitto_pub', ['-h', 'localhost', '-p', port, '--cafile', pki.rogueCA, '-t', 'mq/x', '-m', 'x']);
    assert.notEqual(bad.code, 0);
    await waitFor(async () => (await metrics(h)).get('herald_tls_handshake_failures_total{listener="mqtts",reason="refused"}') >= 1,
      5000 * SCALE, 'the refusal counted');

    const py = `
import ssl, sys, paho.mqtt.client as mqtt
got = []
c = mqtt.Client(client_id="paho-tls", protocol=mqtt.MQTTv311)
c.tls_set(ca_certs=sys.argv[1])
c.on_connect = lambda c, u, f, rc: c.subscribe("py/t", 1)
c.on_subscribe = lambda c, u, m, q: c.publish("py/t", "paho over tls", 1)
def on_message(c, u, m):
    got.append(m.payload.decode()); c.disconnect()
c.on_message = on_message
c.connect("localhost", int(sys.argv[2]), 30)
c.loop_forever(timeout=1.0)
print(got[0])
`;
    const r = await run(PY, ['-c', py, pki.ca, port], { timeout: 20000 * SCALE });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString().trim(), 'paho over tls');
  });
});

test('client certificates on mqtts: optional (with and without), required (without is refused)', T, async () => {
  const port = (h) => String(h.mqttsPort);
  const pubArgs = (h, extra) => ['-h', 'localhost', '-p', port(h), '--cafile', pki.ca, '-t', 'cc/x', '-m', 'hello', ...extra];
  await withTLS({ 'tls-ca': pki.ca }, async (h) => {
    assert.equal((await run('mosquitto_pub', pubArgs(h, []))).code, 0, 'optional: no certificate is fine');
    const ok = await run('mosquitto_pub', pubArgs(h, ['--cert', pki.client.cert, '--key', pki.client.key]));
    assert.equal(ok.code, 0, ok.stderr);
    const rogue = await run('mosquitto_pub', pubArgs(h, ['--cert', pki.rogue.cert, '--key', pki.rogue.key]));
    assert.notEqual(rogue.code, 0, 'a certificate from another CA is refused');
    // https never asks for one (a browser would prompt)
    const s = await tlsConnect(h.httpsPort, { ca: CA, cert: fs.readFileSync(pki.rogue.cert), key: fs.readFileSync(pki.rogue.key) });
    s.destroy();
  });
  await withTLS({ 'tls-ca': pki.ca, 'tls-require-client-cert': 'true' }, async (h) => {
    const none = await run('mosquitto_pub', pubArgs(h, []));
    assert.notEqual(none.code, 0, 'required: no certificate, no connection');
    const ok = await run('mosquitto_pub', pubArgs(h, ['--cert', pki.client.cert, '--key', pki.client.key]));
    assert.equal(ok.code, 0, ok.stderr);
    const m = await metrics(h);
    assert.ok(m.get('herald_tls_handshake_failures_total{listener="mqtts",reason="client_cert"}') >= 1);
    assert.match(h.out, /no valid client certificate/);
  });
});

test('mqtt_cert_identity: the certificate CN is the MQTT user, whatever CONNECT says', T, async () => {
  const rules = tmpFile('rules', 'user:device-7 subscribe devices/7/#\nuser:device-7 publish devices/7/#\n');
  await withTLS({
    'tls-ca': pki.ca, 'tls-require-client-cert': 'true', 'mqtt-cert-identity': 'true', 'permissions-file': rules,
    'api-keys': API_KEY,
  }, async (h) => {
    const opts = { ca: CA, cert: fs.readFileSync(pki.client.cert), key: fs.readFileSync(pki.client.key) };
    const a = await mq(`mqtts://localhost:${h.mqttsPort}`, { ...opts, clientId: 'dev7', username: 'someone-else', password: 'x' });
    try {
      const g = await a.sub('devices/7/#');
      assert.equal(g[0].qos, 0, 'device-7 may read devices/7/#');
      await assert.rejects(a.sub('devices/8/#'), (e) => e.packet?.granted?.[0] === 128, 'but not devices/8/#');
      await a.pub('devices/7/temp', '21.5');
      assert.equal((await a.next()).payload, '21.5');
      const u = await getJSON(h, '/users/device-7', { headers: { Authorization: `Bearer ${API_KEY}` } });
      assert.equal(u.online, true);
      assert.equal(u.connections.mqtt, 1);
    } finally {
      await a.end();
    }
  });
});

/* ---------------------------------------------------------------- policy, SNI, deadlines */

test('tls_min_version = 1.3 refuses TLS 1.2 clients; SNI serves the directory certificate by name', T, async () => {
  await withTLS({ 'tls-min-version': '1.3', 'tls-sni-certs': `${pki.dir}/sni` }, async (h) => {
    await assert.rejects(tlsConnect(h.httpsPort, { ca: CA, maxVersion: 'TLSv1.2' }));
    await waitFor(async () => (await metrics(h)).get('herald_tls_handshake_failures_total{listener="https",reason="version"}') === 1,
      5000 * SCALE, 'version failure counted');
    const other = await tlsConnect(h.httpsPort, { ca: CA, servername: 'api.other.test' });
    assert.equal(other.getPeerCertificate().subject.CN, 'other.test');
    other.destroy();
    const main = await tlsConnect(h.httpsPort, { ca: CA, servername: 'localhost' });
    assert.equal(main.getPeerCertificate().subject.CN, 'localhost');
    main.destroy();
    const r = await curl(['--resolve', `x.other.test:${h.httpsPort}:127.0.0.1`, `https://x.other.test:${h.httpsPort}/healthz`]);
    assert.equal(r.code, 0, r.stderr);
  });
});

test('a handshake that stalls is cut at tls_handshake_timeout (counted, logged once)', T, async () => {
  await withTLS({ 'tls-handshake-timeout': '0.5', 'header-timeout': 30 }, async (h) => {
    const t0 = Date.now();
    const closed = [];
    for (const bytes of [Buffer.alloc(0), Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])]) { // nothing; half a ClientHello
      const s = net.connect(h.httpsPort, '127.0.0.1');
      s.on('connect', () => bytes.length && s.write(bytes));
      s.on('error', () => {});
      closed.push(withTimeout(new Promise((r) => s.on('close', r)), 5000 * SCALE, 'stalled handshake closed'));
    }
    await Promise.all(closed);
    const took = Date.now() - t0;
    assert.ok(took >= 400, `closed after ${took} ms, not before the deadline`);
    assert.ok(took < 3000 * SCALE, `closed after ${took} ms`);
    const m = await metrics(h);
    assert.equal(m.get('herald_tls_handshakes_total{listener="https",result="timeout"}'), 2);
    assert.equal((h.out.match(/TLS handshake not done within tls_handshake_timeout/g) || []).length, 1);
    // a healthy client is unaffected, and its own header_timeout starts from accept as before
    assert.equal((await req(h, 'GET', '/healthz')).status, 200);
  });
});

/* CPU seconds herald used so far (utime + stime). */
const cpuOf = (h) => {
  const f = fs.readFileSync(`/proc/${h.proc.pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};

test('a record that arrives in pieces is waited for, not spun on; a request split across records works', T, async () => {
  await withTLS(async (h) => {
    const raw = net.connect(h.httpsPort, '127.0.0.1');
    await new Promise((r) => raw.once('connect', r));
    const s = await tlsConnect(h.httpsPort, { ca: CA, socket: raw });
    // the head of an application-data record announcing 200 bytes, and 10 of them
    raw.write(Buffer.concat([Buffer.from([0x17, 0x03, 0x03, 0x00, 0xc8]), Buffer.alloc(10, 1)]));
    await sleep(100);
    const c0 = cpuOf(h);
    await sleep(1000);
    const used = cpuOf(h) - c0;
    assert.ok(used < 0.2, `herald used ${used} s of CPU in 1 s waiting for the rest of a record`);
    raw.destroy();
    s.destroy();
    // a request written in many small records arrives whole
    const t = await tlsConnect(h.httpsPort, { ca: CA });
    const got = new Promise((r) => {
      let text = '';
      t.on('data', (d) => {
        text += d;
        if (text.includes('"status"')) r(text);
      });
    });
    for (const part of ['GET /heal', 'thz HTTP/1.1\r\n', 'Host: localhost\r\n', '\r\n']) {
      t.write(part);
      await sleep(20);
    }
    assert.match(await withTimeout(got, 5000 * SCALE, 'answer'), /^HTTP\/1\.1 200/);
    t.destroy();
  });
});

test('a bad certificate or key file is a one-line start-up error naming the key and the file', T, async () => {
  const base = ['--http', `127.0.0.1:${await freePort()}`, '--https', `127.0.0.1:${await freePort()}`];
  const cases = [
    [['--tls-cert', `${pki.dir}/missing.crt`, '--tls-key', pki.server.key], /tls_cert \S+missing\.crt: No such file or directory/],
    [['--tls-cert', pki.server.cert, '--tls-key', `${pki.dir}/missing.key`], /tls_key \S+missing\.key: No such file or directory/],
    [['--tls-cert', pki.server.cert, '--tls-key', pki.client.key], /tls_key \S+client\.key: does not match tls_cert \S+server\.crt/],
    [['--tls-cert', pki.server.key, '--tls-key', pki.server.key], /tls_cert \S+server\.key: not a PEM certificate/],
    [['--tls-cert', pki.server.cert], /https needs tls_cert and tls_key/],
    [['--tls-cert', pki.server.cert, '--tls-key', pki.server.key, '--tls-sni-certs', `${pki.dir}/nodir`], /tls_sni_certs \S+nodir: No such file/],
    [['--tls-cert', pki.server.cert, '--tls-key', pki.server.key, '--tls-require-client-cert', 'true'], /tls_require_client_cert needs tls_ca/],
  ];
  for (const [args, want] of cases) {
    const r = await serveExpectingExit([...base, ...args]);
    assert.notEqual(r.code, 0, `${args.join(' ')}: must not start\n${r.output}`);
    assert.ok(!r.stillRunning);
    const errs = r.output.split('\n').filter((l) => / error /.test(l));
    assert.equal(errs.length, 1, `one error line: ${r.output}`);
    assert.match(errs[0], want);
  }
  // check-config says the same, exit 2
  const c = await run(HERALD_BIN, ['check-config', ...base, '--tls-cert', pki.server.cert, '--tls-key', pki.client.key]);
  assert.equal(c.code, 2);
  assert.match(c.stderr, /does not match tls_cert/);
});

/* ---------------------------------------------------------------- reload */

test('SIGHUP reloads the certificate: open connections keep working, new ones see the new one; a bad file keeps the old', T, async () => {
  await withTLS(async (h) => {
    const fp = (s) => s.getPeerCertificate().fingerprint256;
    const first = await tlsConnect(h.httpsPort, { ca: CA });
    const oldFp = fp(first);
    first.destroy();
    const sse = await openSSEs(h, '/sub/rl');
    const m = await mq(`mqtts://localhost:${h.mqttsPort}`, { ca: CA, clientId: 'reload' });
    try {
      await m.sub('rl');
      await waitSubscribed(h, 'rl', 'sse');
      fs.copyFileSync(pki.server2.cert, pki.live.cert);
      fs.copyFileSync(pki.server2.key, pki.live.key);
      h.proc.kill('SIGHUP');
      await waitFor(() => /https: certificates reloaded/.test(h.out) && /mqtts: certificates reloaded/.test(h.out), 5000 * SCALE, 'reload logged');
      await pub(h, 'rl', 'after the reload');
      assert.equal((await sse.next(5000 * SCALE)).data, 'after the reload', 'the open HTTPS stream goes on');
      assert.equal((await m.next()).payload, 'after the reload', 'the open mqtts connection goes on');
      const fresh = await tlsConnect(h.httpsPort, { ca: CA });
      const newFp = fp(fresh);
      fresh.destroy();
      assert.notEqual(newFp, oldFp, 'a new connection gets the new certificate');
      assert.equal(newFp, new (await import('node:crypto')).X509Certificate(fs.readFileSync(pki.server2.cert)).fingerprint256);

      // a broken key: the reload fails, the current certificate stays
      fs.writeFileSync(pki.live.key, 'not a key\n');
      h.proc.kill('SIGHUP');
      await waitFor(() => /certificates not reloaded, the old ones stay in use: tls_key/.test(h.out), 5000 * SCALE, 'failed reload logged');
      const still = await tlsConnect(h.httpsPort, { ca: CA });
      assert.equal(fp(still), newFp);
      still.destroy();
      const mm = await metrics(h);
      assert.equal(mm.get('herald_tls_reloads_total{listener="https",result="ok"}'), 1);
      assert.equal(mm.get('herald_tls_reloads_total{listener="https",result="failed"}'), 1);
      assert.equal(h.exited, null, 'SIGHUP never stops herald');
    } finally {
      sse.close();
      await m.end();
      fs.copyFileSync(pki.server.cert, pki.live.cert);
      fs.copyFileSync(pki.server.key, pki.live.key);
    }
  });
});

/* ---------------------------------------------------------------- the CLI */

test('herald pub/sub --url https:// --cacert; the server name is verified', T, async () => {
  await withTLS(async (h) => {
    const p = await run(HERALD_BIN, ['pub', '--url', h.https, '--cacert', pki.ca, 'cli', 'over https']);
    assert.equal(p.code, 0, p.stderr);
    assert.equal(JSON.parse(p.stdout).id, '1');
    const byIP = await run(HERALD_BIN, ['pub', '--url', `https://127.0.0.1:${h.httpsPort}`, '--cacert', pki.ca, 'cli', 'by ip']);
    assert.equal(byIP.code, 0, byIP.stderr);
    const s = await run(HERALD_BIN, ['sub', '--url', h.https, '--cacert', pki.ca, '-n', '2', '--last-id', '0', 'cli']);
    assert.equal(s.code, 0, s.stderr);
    assert.equal(s.stdout.toString(), 'over https\nby ip\n');
    const env = await run(HERALD_BIN, ['pub', 'cli', 'env'], { spawn: { env: { ...process.env, HERALD_URL: h.https, HERALD_CACERT: pki.ca } } });
    assert.equal(env.code, 0, env.stderr);

    const noCA = await run(HERALD_BIN, ['pub', '--url', h.https, 'cli', 'x']);
    assert.equal(noCA.code, 1);
    assert.match(noCA.stderr, /certificate verify failed/);
    const plain = await run(HERALD_BIN, ['pub', '--url', `https://127.0.0.1:${h.port}`, '--cacert', pki.ca, 'cli', 'x']);
    assert.equal(plain.code, 1, 'TLS to the plain port fails cleanly');
  });
  // a server whose certificate names other.test only: localhost and 127.0.0.1 are refused
  await withTLS({ 'tls-cert': pki.sni.cert, 'tls-key': pki.sni.key }, async (h) => {
    for (const host of ['localhost', '127.0.0.1']) {
      const wrongName = await run(HERALD_BIN, ['pub', '--url', `https://${host}:${h.httpsPort}`, '--cacert', pki.ca, 'cli', 'x']);
      assert.equal(wrongName.code, 1, host);
      assert.match(wrongName.stderr, /certificate verify failed: .*mismatch/i);
    }
  });
});
