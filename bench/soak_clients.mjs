// bench/soak_clients.mjs - the soak benchmark's clients that `herald bench` does not drive
// (bench/soak.sh starts it next to two load generators). One node process holds:
//
//   hot      subscribers of the hot channel on the transports the load generator lacks: the /ws
//            JSON protocol, STOMP over WebSocket, MQTT over WebSocket (/mqtt) and iframe streams.
//            Each checks that every id (or, for MQTT, the load generator's sequence number) from
//            the first it saw on arrives once: one skipped and never seen is missing, a repeat is
//            a duplicate. A connection herald closes is counted and reopened from its last id.
//   reconn   subscribers that drop their connection (a reset, no goodbye) every 2-6 s and come
//            back 0.2-1 s later, resuming from the last id: SSE (Last-Event-ID), /ws (subscribe
//            with last_id), STOMP (the last-id header), MQTT over TCP (a persistent session at
//            QoS 1: the broker keeps what arrives while the client is away). They must see no
//            gap and no duplicate; MQTT redeliveries flagged DUP are QoS 1's right and are
//            counted apart.
//   flood    one client per protocol that never reads: HTTP requests pipelined, MQTT PINGREQ and
//            SUBSCRIBE, a WebSocket /sub subscriber sending pings, an SSE subscriber, a /ws client
//            sending ping ops, a STOMP client sending SUBSCRIBE/UNSUBSCRIBE with receipts. Each
//            writes as long as the socket takes bytes: herald must stop reading it (backpressure)
//            and hold it at max_queued_bytes. A flood connection herald closes is reopened 1 s later.
//
// Stall probe (--herald-pid): herald's process state every 50 ms (time in 'D', waiting for the
// disk, and where: wchan) and the time a GET /healthz takes every 200 ms, to tell a stall of
// herald (its loop blocked) from a busy machine.
//
// Latency: the load generator's payloads start with "<scheduled_us> <seq> " on CLOCK_MONOTONIC,
// the clock of process.hrtime() too, so delivery latency is measured across processes.
//
// SIGUSR2 prints one JSON line on stdout about the interval since the previous one, with the
// history herald holds (GET /channels/C of the hot channel and of every many-channel). SIGTERM
// ends the run: the reconnecting clients come back one last time, every client waits (at most
// 15 s) until it has the hot channel's last id, the ids still missing at the end are counted,
// and a final JSON line is printed. Everything is bounded: --max-seconds stops the process.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../tests/package.json', import.meta.url));
const WebSocket = require('ws');

/* ---------------------------------------------------------------- options */

const opt = {
  url: 'http://127.0.0.1:8080', mqttPort: 1883, hot: 'soak/hot', hotMessages: 0, many: '', manyCount: 0,
  tokens: '', apiKey: '', heraldPid: 0, wsjson: 20, stomp: 20, mqttws: 20, iframe: 4, reconn: 8,
  floods: 'http,mqtt,ws,sse,wsjson,stomp', maxSeconds: 900,
};
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
  if (!(k in opt) || i + 1 >= process.argv.length) {
    console.error(`soak_clients: unknown option ${process.argv[i]}`);
    process.exit(1);
  }
  opt[k] = typeof opt[k] === 'number' ? Number(process.argv[i + 1]) : process.argv[i + 1];
}
const base = new URL(opt.url);
const HOST = base.hostname, PORT = Number(base.port);
const WSBASE = `ws://${HOST}:${PORT}`;
const tokens = opt.tokens ? fs.readFileSync(opt.tokens, 'utf8').split('\n').filter(Boolean) : [];
let tokenNext = 0;
const takeToken = () => (tokens.length ? tokens[tokenNext++ % tokens.length] : '');
const log = (...a) => console.error('[soak-js]', ...a);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rand = (lo, hi) => lo + Math.random() * (hi - lo);
const nowUs = () => Number(process.hrtime.bigint() / 1000n);
let stopping = false; // SIGTERM: no more drops, no more floods
let finishing = false; // final catch-up phase

/* ---------------------------------------------------------------- accounting */

const tallies = new Map(); // "group/kind" -> counters
function tally(name) {
  if (!tallies.has(name))
    tallies.set(name, { latency: name.startsWith('hot/'), clients: 0, deliveries: 0, missing: 0, dups: 0,
      redelivered: 0, late: 0, gaps: 0, reconnects: 0, closed_by_server: 0, bad: 0, errors: 0 });
  return tallies.get(name);
}
let lat = []; // latency samples (us) of this interval, of the hot group (a resume's replay is late by design)
const firstErrors = [];
function noteError(t, what) {
  t.errors++;
  if (firstErrors.length < 5) firstErrors.push(what);
}

/* The payload "<sched_us> <seq> ...": records the latency (hot group only); returns seq or -1. */
function payloadSeq(t, data) {
  const m = /^(\d+) (\d+) /.exec(typeof data === 'string' ? data : data.toString('latin1', 0, 48));
  if (!m) {
    t.bad++;
    return -1;
  }
  if (t.latency) lat.push(Math.max(0, nowUs() - Number(m[1])));
  return Number(m[2]);
}

/* One subscriber's check: every id (or sequence number) from the first it saw on, once. Ids skipped
 * wait in miss: one that comes later is late, not lost (sequence numbers of several publisher
 * connections may be reordered; herald's ids never are); what is still in miss is missing. */
class Order {
  constructor(t) {
    this.t = t;
    this.last = null; // the highest seen
    this.miss = new Set();
    this.trailing = 0; // at the end: ids after the last one seen that never came
  }
  get missing() {
    return this.miss.size + this.trailing;
  }
  /* Returns true for a new id. A DUP-flagged repeat (MQTT QoS 1) is a redelivery, not a duplicate. */
  see(id, dupFlag = false) {
    const t = this.t;
    if (this.last !== null && id <= this.last) {
      if (this.miss.delete(id)) {
        t.late++;
        t.deliveries++;
        return true;
      }
      if (dupFlag) t.redelivered++;
      else t.dups++;
      return false;
    }
    if (this.last !== null) for (let k = this.last + 1; k < id; k++) this.miss.add(k);
    this.last = id;
    t.deliveries++;
    return true;
  }
}

/* ---------------------------------------------------------------- wire helpers */

function wsKey() {
  return crypto.randomBytes(16).toString('base64');
}

/* A masked client frame (opcode op) with payload p. */
function wsFrame(op, p) {
  const buf = Buffer.isBuffer(p) ? p : Buffer.from(p);
  const mask = crypto.randomBytes(4);
  const n = buf.length;
  const head = n < 126 ? Buffer.from([0x80 | op, 0x80 | n])
    : n < 65536 ? Buffer.from([0x80 | op, 0x80 | 126, n >> 8, n & 255])
      : null;
  if (!head) throw new Error('frame too big');
  const out = Buffer.alloc(head.length + 4 + n);
  head.copy(out, 0);
  mask.copy(out, head.length);
  for (let i = 0; i < n; i++) out[head.length + 4 + i] = buf[i] ^ mask[i & 3];
  return out;
}

function upgradeRequest(path, proto) {
  return `GET ${path} HTTP/1.1\r\nHost: ${HOST}:${PORT}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${wsKey()}\r\n` +
    (proto ? `Sec-WebSocket-Protocol: ${proto}\r\n` : '') + '\r\n';
}

const mqttStr = (s) => {
  const b = Buffer.from(s);
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 255]), b]);
};
function mqttVarint(n) {
  const out = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n) b |= 128;
    out.push(b);
  } while (n);
  return Buffer.from(out);
}
const mqttPacket = (first, body) => Buffer.concat([Buffer.from([first]), mqttVarint(body.length), body]);
/* CONNECT v3.1.1 with user "bench" and the token as password. */
function mqttConnect(id, token, clean, keepAlive) {
  const flags = (token ? 0xc0 : 0) | (clean ? 0x02 : 0);
  const body = [mqttStr('MQTT'), Buffer.from([4, flags, keepAlive >> 8, keepAlive & 255]), mqttStr(id)];
  if (token) body.push(mqttStr('bench'), mqttStr(token));
  return mqttPacket(0x10, Buffer.concat(body));
}
const mqttSubscribe = (pid, topic, qos) =>
  mqttPacket(0x82, Buffer.concat([Buffer.from([pid >> 8, pid & 255]), mqttStr(topic), Buffer.from([qos])]));
const mqttPuback = (pid) => Buffer.from([0x40, 2, pid >> 8, pid & 255]);
const MQTT_PINGREQ = Buffer.from([0xc0, 0]);

/* Splits a byte stream into MQTT packets: push(bytes) calls onPacket({type, flags, body}). */
class MqttReader {
  constructor(onPacket) {
    this.buf = Buffer.alloc(0);
    this.onPacket = onPacket;
  }
  push(d) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      let len = 0, mul = 1, i = 1;
      for (;; i++) {
        if (i >= this.buf.length) return;
        len += (this.buf[i] & 127) * mul;
        mul *= 128;
        if (!(this.buf[i] & 128)) break;
        if (i > 4) throw new Error('bad MQTT length');
      }
      if (this.buf.length < i + 1 + len) return;
      const p = { type: this.buf[0] >> 4, flags: this.buf[0] & 15, body: this.buf.subarray(i + 1, i + 1 + len) };
      this.buf = this.buf.subarray(i + 1 + len);
      this.onPacket(p);
    }
  }
}

/* A PUBLISH body: {topic, pid, payload, qos, dup}. */
function mqttPublish(p) {
  const tl = p.body.readUInt16BE(0);
  const topic = p.body.toString('utf8', 2, 2 + tl);
  const qos = (p.flags >> 1) & 3;
  let o = 2 + tl, pid = 0;
  if (qos) {
    pid = p.body.readUInt16BE(o);
    o += 2;
  }
  return { topic, pid, qos, dup: !!(p.flags & 8), payload: p.body.subarray(o) };
}

/* STOMP frame text: command, headers (escaped as 1.2 asks), body, NUL. */
const stompEsc = (v) => String(v).replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/:/g, '\\c');
function stompFrame(cmd, headers, body = '') {
  let s = cmd + '\n';
  for (const [k, v] of Object.entries(headers)) s += `${k}:${stompEsc(v)}\n`;
  return s + '\n' + body + '\0';
}
/* Parses every STOMP frame in one WebSocket message (heart-beat EOLs are skipped). */
function stompParse(text) {
  const out = [];
  let s = text;
  for (;;) {
    s = s.replace(/^[\r\n]+/, '');
    if (!s) return out;
    const he = s.indexOf('\n\n');
    if (he < 0) return out;
    const lines = s.slice(0, he).split('\n');
    const headers = {};
    for (const l of lines.slice(1)) {
      const c = l.indexOf(':');
      if (c > 0 && !(l.slice(0, c) in headers))
        headers[l.slice(0, c)] = l.slice(c + 1).replace(/\\c/g, ':').replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
    }
    const nul = s.indexOf('\0', he + 2);
    const end = nul < 0 ? s.length : nul;
    out.push({ command: lines[0].replace(/\r$/, ''), headers, body: s.slice(he + 2, end) });
    s = s.slice(end + 1);
  }
}

/* ---------------------------------------------------------------- subscribers */

/* Every subscriber: open(g) connects (resuming from order.last), drop() resets the connection.
 * Each connection has a generation g; events of an older one are ignored (a reset connection's
 * close event can come after its successor opened). A connection that ends without drop() is
 * counted as closed by the server and reopened 0.5 s later. */
class Sub {
  constructor(group, kind, i) {
    this.name = `${group}/${kind}`;
    this.t = tally(this.name);
    this.t.clients++;
    this.order = new Order(this.t);
    this.kind = kind;
    this.i = i;
    this.token = takeToken();
    this.live = false;
    this.dropped = false;
    this.gen = 0;
    this.opens = 0;
  }
  start() {
    this.opens++;
    if (this.opens > 1) this.t.reconnects++;
    this.dropped = false;
    this.open(++this.gen);
  }
  ended(g, why) {
    if (g !== this.gen) return;
    const g2 = ++this.gen;
    this.live = false;
    this.t.closed_by_server++;
    if (this.t.closed_by_server <= 3) log(`${this.name}#${this.i} closed by the server${why ? `: ${why}` : ''}`);
    this.close();
    setTimeout(() => g2 === this.gen && (!stopping || finishing) && this.start(), 500);
  }
  drop() {
    this.gen++;
    this.dropped = true;
    this.live = false;
    this.close();
  }
}

class SseSub extends Sub {
  open(g) {
    const headers = { Accept: 'text/event-stream' };
    if (this.order.last !== null) headers['Last-Event-ID'] = String(this.order.last);
    const q = this.token ? `?token=${this.token}` : '';
    this.req = http.get({ host: HOST, port: PORT, path: `/sub/${opt.hot}${q}`, headers, agent: false }, (res) => {
      if (res.statusCode !== 200) {
        noteError(this.t, `SSE answered ${res.statusCode}`);
        res.resume();
        return;
      }
      this.live = true;
      res.setEncoding('utf8');
      let buf = '';
      res.on('data', (d) => {
        if (g !== this.gen) return;
        buf += d;
        let k;
        while ((k = buf.indexOf('\n\n')) >= 0) {
          this.event(buf.slice(0, k));
          buf = buf.slice(k + 2);
        }
      });
      res.on('close', () => this.ended(g, 'stream ended'));
    });
    this.req.on('error', (e) => this.ended(g, e.code || e.message));
  }
  event(block) {
    let id = null, ev = 'message', data = null;
    for (const l of block.split('\n')) {
      if (l.startsWith('id:')) id = l.slice(3).trim();
      else if (l.startsWith('event:')) ev = l.slice(6).trim();
      else if (l.startsWith('data:') && data === null) data = l.slice(5).replace(/^ /, '');
    }
    if (ev === 'gap') this.t.gaps++;
    else if (ev === 'message' && id !== null && data !== null) {
      payloadSeq(this.t, data);
      this.order.see(Number(id));
    } else if (data !== null) this.t.bad++;
  }
  close() {
    if (this.req) this.req.destroy();
  }
}

class WsJsonSub extends Sub {
  open(g) {
    const ws = (this.ws = new WebSocket(`${WSBASE}/ws`, ['herald.v1'], { perMessageDeflate: false }));
    ws.on('open', () => {
      if (this.token) ws.send(JSON.stringify({ op: 'auth', token: this.token, ref: 'a' }));
      const sub = { op: 'subscribe', channel: opt.hot, ref: 's' };
      if (this.order.last !== null) sub.last_id = String(this.order.last);
      ws.send(JSON.stringify(sub));
    });
    ws.on('message', (d) => {
      if (g !== this.gen) return;
      let m;
      try {
        m = JSON.parse(d.toString());
      } catch {
        this.t.bad++;
        return;
      }
      if (m.op === 'message') {
        payloadSeq(this.t, m.data);
        this.order.see(Number(m.id));
      } else if (m.op === 'gap') this.t.gaps++;
      else if (m.op === 'reply' && m.ref === 's') {
        if (m.ok) this.live = true;
        else noteError(this.t, `/ws subscribe refused: ${JSON.stringify(m.error)}`);
      } else if (m.op === 'reply' && !m.ok) noteError(this.t, `/ws ${m.ref}: ${JSON.stringify(m.error)}`);
    });
    ws.on('close', (code) => this.ended(g, `close ${code}`));
    ws.on('error', () => {});
  }
  close() {
    if (this.ws) this.ws.terminate();
  }
}

class StompSub extends Sub {
  open(g) {
    const ws = (this.ws = new WebSocket(`${WSBASE}/stomp`, ['v12.stomp'], { perMessageDeflate: false }));
    ws.on('open', () => {
      const h = { 'accept-version': '1.2', host: HOST, 'heart-beat': '0,0' };
      if (this.token) h.passcode = this.token;
      ws.send(stompFrame('CONNECT', h));
    });
    ws.on('message', (d) => {
      if (g !== this.gen) return;
      for (const f of stompParse(d.toString())) {
        if (f.command === 'CONNECTED') {
          const h = { id: 'hot', destination: `/topic/${opt.hot}`, ack: 'auto' };
          if (this.order.last !== null) h['last-id'] = String(this.order.last);
          ws.send(stompFrame('SUBSCRIBE', h));
          this.live = true;
        } else if (f.command === 'MESSAGE') {
          if (f.headers['herald-gap'] === 'true') this.t.gaps++;
          else {
            payloadSeq(this.t, f.body);
            this.order.see(Number(f.headers['herald-id']));
          }
        } else if (f.command === 'ERROR') noteError(this.t, `STOMP ERROR ${f.headers.message}`);
      }
    });
    ws.on('close', (code) => this.ended(g, `close ${code}`));
    ws.on('error', () => {});
  }
  close() {
    if (this.ws) this.ws.terminate();
  }
}

/* MQTT subscriber of the hot channel, over TCP or WebSocket (/mqtt). Orders by the payload's
 * sequence number (MQTT has no ids). persistent: clean session 0 at QoS 1, so a reconnect gets
 * what arrived while away. */
class MqttSub extends Sub {
  constructor(group, kind, i, overWs, persistent) {
    super(group, kind, i);
    this.overWs = overWs;
    this.persistent = persistent;
    this.clientId = `soak-${group}-${kind}-${i}-${process.pid}`;
  }
  open(g) {
    const reader = new MqttReader((p) => g === this.gen && this.packet(p));
    const send = (b) => (this.overWs ? this.ws.send(b) : this.sock.write(b));
    this.send = send;
    const hello = () => send(mqttConnect(this.clientId, this.token, !this.persistent, 60));
    const onData = (d) => {
      if (g !== this.gen) return;
      try {
        reader.push(d);
      } catch (e) {
        noteError(this.t, e.message);
        this.close();
      }
    };
    if (this.overWs) {
      const ws = (this.ws = new WebSocket(`${WSBASE}/mqtt`, ['mqtt'], { perMessageDeflate: false }));
      ws.on('open', hello);
      ws.on('message', onData);
      ws.on('close', (code) => this.ended(g, `close ${code}`));
      ws.on('error', () => {});
    } else {
      const s = (this.sock = net.connect(opt.mqttPort, HOST));
      s.setNoDelay(true);
      s.on('connect', hello);
      s.on('data', onData);
      s.on('close', () => this.ended(g, 'connection closed'));
      s.on('error', () => {});
    }
    clearInterval(this.pinger);
    this.pinger = setInterval(() => this.live && send(MQTT_PINGREQ), 20000);
  }
  packet(p) {
    if (p.type === 2) { // CONNACK
      if (p.body[1] !== 0) noteError(this.t, `CONNACK ${p.body[1]}`);
      else if (!(this.persistent && p.body[0] & 1)) this.send(mqttSubscribe(1, opt.hot, this.persistent ? 1 : 0));
      else this.live = true; // the session kept the subscription
    } else if (p.type === 9) { // SUBACK
      if (p.body[2] >= 0x80) noteError(this.t, `SUBACK ${p.body[2]}`);
      this.live = true;
    } else if (p.type === 3) { // PUBLISH
      const m = mqttPublish(p);
      if (m.qos === 1) this.send(mqttPuback(m.pid));
      const seq = payloadSeq(this.t, m.payload);
      if (seq >= 0) this.order.see(seq, m.dup);
    }
  }
  close() {
    clearInterval(this.pinger);
    if (this.ws) this.ws.terminate();
    if (this.sock) this.sock.resetAndDestroy();
  }
}

class IframeSub extends Sub {
  open(g) {
    const q = `?mode=iframe${this.token ? `&token=${this.token}` : ''}`;
    this.req = http.get({ host: HOST, port: PORT, path: `/sub/${opt.hot}${q}`, agent: false }, (res) => {
      if (res.statusCode !== 200) {
        noteError(this.t, `iframe answered ${res.statusCode}`);
        res.resume();
        return;
      }
      this.live = true;
      res.setEncoding('utf8');
      let buf = '';
      res.on('data', (d) => {
        if (g !== this.gen) return;
        buf += d;
        let k;
        while ((k = buf.indexOf('</script>')) >= 0) {
          const s = buf.slice(0, k);
          buf = buf.slice(k + 9);
          const j = s.lastIndexOf('<script>h(');
          if (j < 0 || !s.endsWith(')')) continue;
          let m;
          try {
            m = JSON.parse(s.slice(j + 10, -1));
          } catch {
            this.t.bad++;
            continue;
          }
          if (m.gap) this.t.gaps++;
          else if (m.id !== undefined) {
            payloadSeq(this.t, m.data);
            this.order.see(Number(m.id));
          }
        }
      });
      res.on('close', () => this.ended(g, 'stream ended'));
    });
    this.req.on('error', (e) => this.ended(g, e.code || e.message));
  }
  close() {
    if (this.req) this.req.destroy();
  }
}

/* Drops sub every 2-6 s and brings it back 0.2-1 s later, until SIGTERM. */
async function cycle(sub) {
  while (!stopping) {
    await sleep(rand(2000, 6000));
    if (stopping) break;
    sub.drop();
    await sleep(rand(200, 1000));
    if (!stopping) sub.start();
  }
}

/* ---------------------------------------------------------------- floods */

const floods = {};

/* One never-reading client: opens port, writes first, then next() chunks for as long as the
 * socket takes them (next() returning null: nothing more to send, just hold the connection). */
async function flood(name, port, first, next) {
  const st = (floods[name] = { conns: 0, closes: 0, open: false, accepted: 0, acceptedNow: 0 });
  while (!stopping) {
    const sock = net.connect(port, HOST);
    sock.on('error', () => {});
    const ok = await new Promise((r) => {
      sock.once('connect', () => r(true));
      sock.once('error', () => r(false));
    });
    if (!ok) {
      await sleep(1000);
      continue;
    }
    st.conns++;
    st.open = true;
    sock.pause(); // never read: herald's answers pile up
    let closed = false;
    sock.once('close', () => (closed = true));
    sock.write(first);
    let k = 0;
    while (!stopping && !closed) {
      st.acceptedNow = sock.bytesWritten - sock.writableLength;
      const chunk = next();
      if (!chunk) {
        await sleep(1000);
        continue;
      }
      if (!sock.write(chunk)) {
        await new Promise((r) => { // a drain, or 1 s (it will not come while herald holds us)
          const done = () => {
            clearTimeout(t);
            sock.off('drain', done);
            r();
          };
          const t = setTimeout(done, 1000);
          sock.once('drain', done);
        });
      } else if (++k % 16 === 0) await new Promise((r) => setImmediate(r));
    }
    st.accepted += sock.bytesWritten - sock.writableLength;
    st.acceptedNow = 0;
    st.open = false;
    if (!stopping) st.closes++;
    sock.destroy();
    await sleep(1000);
  }
}

function startFloods() {
  const want = new Set(opt.floods.split(',').filter(Boolean));
  const tq = (t) => (t ? `?token=${t}` : '');
  if (want.has('http')) {
    const reqs = Buffer.from(`GET /healthz HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`.repeat(64));
    flood('http', PORT, Buffer.alloc(0), () => reqs);
  }
  if (want.has('mqtt')) {
    const t = takeToken();
    let pid = 0;
    flood('mqtt', opt.mqttPort, mqttConnect(`soak-flood-${process.pid}`, t, true, 0), () => {
      const b = [];
      for (let i = 0; i < 32; i++) {
        pid = (pid % 65535) + 1;
        b.push(MQTT_PINGREQ, mqttSubscribe(pid, 'soak/flood/mqtt', 0));
      }
      return Buffer.concat(b);
    });
  }
  if (want.has('ws')) {
    const t = takeToken();
    flood('ws', PORT, Buffer.from(upgradeRequest(`/sub/${opt.hot}${tq(t)}`, '')), () => {
      const b = [];
      for (let i = 0; i < 64; i++) b.push(wsFrame(9, 'soak'));
      return Buffer.concat(b);
    });
  }
  if (want.has('sse')) {
    const t = takeToken();
    const req = `GET /sub/${opt.hot}${tq(t)} HTTP/1.1\r\nHost: ${HOST}\r\nAccept: text/event-stream\r\n\r\n`;
    flood('sse', PORT, Buffer.from(req), () => null);
  }
  if (want.has('wsjson')) {
    const t = takeToken();
    const hello = [wsFrame(1, JSON.stringify({ op: 'subscribe', channel: opt.hot, ref: 's' }))];
    if (t) hello.unshift(wsFrame(1, JSON.stringify({ op: 'auth', token: t, ref: 'a' })));
    let ref = 0;
    flood('wsjson', PORT, Buffer.concat([Buffer.from(upgradeRequest('/ws', 'herald.v1')), ...hello]), () => {
      const b = [];
      for (let i = 0; i < 32; i++) b.push(wsFrame(1, JSON.stringify({ op: 'ping', ref: ++ref })));
      return Buffer.concat(b);
    });
  }
  if (want.has('stomp')) {
    const t = takeToken();
    const h = { 'accept-version': '1.2', host: HOST, 'heart-beat': '0,0' };
    if (t) h.passcode = t;
    const hello = [wsFrame(1, stompFrame('CONNECT', h)),
      wsFrame(1, stompFrame('SUBSCRIBE', { id: 'hot', destination: `/topic/${opt.hot}`, ack: 'auto' }))];
    let n = 0;
    flood('stomp', PORT, Buffer.concat([Buffer.from(upgradeRequest('/stomp', 'v12.stomp')), ...hello]), () => {
      const b = [];
      for (let i = 0; i < 16; i++) {
        n++;
        const sub = { id: `f${n}`, destination: '/topic/soak/flood/stomp', receipt: `s${n}` };
        b.push(wsFrame(1, stompFrame('SUBSCRIBE', sub)));
        b.push(wsFrame(1, stompFrame('UNSUBSCRIBE', { id: `f${n}`, receipt: `u${n}` })));
      }
      return Buffer.concat(b);
    });
  }
}

/* ---------------------------------------------------------------- herald's view */

const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
function getJSON(path) {
  return new Promise((resolve) => {
    const headers = opt.apiKey ? { Authorization: `Bearer ${opt.apiKey}` } : {};
    const req = http.get({ host: HOST, port: PORT, path, agent, headers }, (res) => {
      let b = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (b += d));
      res.on('end', () => {
        try {
          resolve(res.statusCode === 200 ? JSON.parse(b) : null);
        } catch {
          resolve(null);
        }
      });
    });
    req.setTimeout(10000, () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

/* The history herald holds for the hot channel and the many-channels: messages and bytes. */
async function history() {
  const names = [opt.hot];
  for (let i = 0; i < opt.manyCount; i++) names.push(`${opt.many}-${i}`);
  let messages = 0, bytes = 0, failed = 0, next = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next < names.length) {
      const ch = await getJSON(`/channels/${names[next++]}`);
      if (!ch || !ch.history) failed++;
      else {
        messages += ch.history.messages;
        bytes += ch.history.bytes;
      }
    }
  }));
  return { messages, bytes, failed };
}

/* ---------------------------------------------------------------- stall probe */

/* What herald is doing when it is slow: every 50 ms its state from /proc/PID/stat ('D' = waiting
 * for the disk, e.g. in fsync) and, then, its wchan; every 200 ms the time a GET /healthz takes. */
const probe = { samples: 0, dstate: 0, dRun: 0, dLongest: 0, wchan: new Map(), healthz: [] };
function probeStart() {
  if (!opt.heraldPid) return;
  setInterval(() => {
    let st;
    try {
      st = fs.readFileSync(`/proc/${opt.heraldPid}/stat`, 'latin1');
    } catch {
      return;
    }
    const state = st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3);
    probe.samples++;
    if (state === 'D') {
      probe.dstate++;
      probe.dRun++;
      probe.dLongest = Math.max(probe.dLongest, probe.dRun);
      try {
        const w = fs.readFileSync(`/proc/${opt.heraldPid}/wchan`, 'latin1') || '?';
        probe.wchan.set(w, (probe.wchan.get(w) || 0) + 1);
      } catch {
        /* gone */
      }
    } else probe.dRun = 0;
  }, 50).unref();
  const ping = () => {
    const t0 = nowUs();
    const req = http.get({ host: HOST, port: PORT, path: '/healthz', agent }, (res) => {
      res.resume();
      res.on('end', () => {
        probe.healthz.push(nowUs() - t0);
        setTimeout(ping, 200).unref();
      });
    });
    req.setTimeout(30000, () => req.destroy());
    req.on('error', () => setTimeout(ping, 200).unref());
  };
  ping();
}

/* The probe's figures since the previous call. */
function probeTake() {
  const h = probe.healthz.sort((a, b) => a - b);
  const out = { samples: probe.samples, d_state_ms: probe.dstate * 50, d_longest_ms: probe.dLongest * 50,
    wchan: Object.fromEntries(probe.wchan), healthz_n: h.length, healthz_p99_ms: pct(h, 0.99),
    healthz_max_ms: h.length ? h[h.length - 1] / 1000 : -1 };
  Object.assign(probe, { samples: 0, dstate: 0, dLongest: probe.dRun, wchan: new Map(), healthz: [] });
  return out;
}

/* ---------------------------------------------------------------- reports */

const subs = [];
let nint = 0;
let prev = new Map();
let tPrev = Date.now();

function pct(sorted, p) {
  return sorted.length ? sorted[Math.round(p * (sorted.length - 1))] / 1000 : -1;
}

function snapshot(final) {
  for (const t of tallies.values()) t.missing = 0;
  for (const x of subs) x.t.missing += x.order.missing;
  const s = [...lat].sort((a, b) => a - b);
  lat = [];
  const groups = {};
  let deliveries = 0, missing = 0, dups = 0, gaps = 0, redelivered = 0, closed = 0, errors = 0, bad = 0;
  for (const [name, t] of tallies) {
    const p = prev.get(name) || {};
    groups[name] = { ...t, deliveries_interval: t.deliveries - (p.deliveries || 0),
      reconnects_interval: t.reconnects - (p.reconnects || 0) };
    deliveries += t.deliveries - (final ? 0 : p.deliveries || 0);
    missing += t.missing;
    dups += t.dups;
    gaps += t.gaps;
    redelivered += t.redelivered;
    closed += t.closed_by_server;
    errors += t.errors;
    bad += t.bad;
  }
  prev = new Map([...tallies].map(([k, v]) => [k, { ...v }]));
  const fl = {};
  for (const [k, st] of Object.entries(floods))
    fl[k] = { conns: st.conns, closes: st.closes, open: st.open,
      accepted_kb: Math.round((st.accepted + st.acceptedNow) / 1024) };
  const now = Date.now();
  const out = { interval: final ? 'final' : ++nint, interval_s: (now - tPrev) / 1000, clients: subs.length,
    live: subs.filter((x) => x.live).length, deliveries, lat_p50_ms: pct(s, 0.5), lat_p99_ms: pct(s, 0.99),
    lat_max_ms: s.length ? s[s.length - 1] / 1000 : -1, missing, dups, redelivered, gaps, closed_by_server: closed,
    bad, errors, groups, floods: fl, probe: probeTake(), first_errors: firstErrors };
  tPrev = now;
  return out;
}

let reporting = Promise.resolve();
process.on('SIGUSR2', () => {
  reporting = reporting.then(async () => {
    const out = snapshot(false);
    out.history = await history();
    process.stdout.write(JSON.stringify(out) + '\n');
  });
});

/* SIGTERM: bring everyone back, wait for the hot channel's last id, count what is missing. */
async function finish() {
  if (stopping) return;
  stopping = true;
  finishing = true;
  await reporting;
  for (const s of subs) if (!s.live && s.dropped) s.start();
  const ch = await getJSON(`/channels/${opt.hot}`);
  const lastId = ch ? Number(ch.last_id) : null;
  const lastSeq = opt.hotMessages - 1;
  const want = (s) => (s instanceof MqttSub ? lastSeq : lastId);
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline && subs.some((s) => s.order.last === null || s.order.last < want(s))) await sleep(100);
  let trailing = 0, never = 0;
  for (const s of subs) {
    const w = want(s);
    if (s.order.last === null) never++;
    else if (w !== null && w >= 0 && s.order.last < w) {
      s.order.trailing = w - s.order.last;
      trailing += s.order.trailing;
    }
  }
  const out = snapshot(true);
  out.hot_last_id = lastId;
  out.trailing_missing = trailing;
  out.never_delivered = never;
  out.history = await history();
  process.stdout.write(JSON.stringify(out) + '\n');
  for (const s of subs) s.drop();
  agent.destroy();
  setTimeout(() => process.exit(0), 200);
}
process.on('SIGTERM', finish);
process.on('SIGINT', finish);
setTimeout(() => {
  log(`--max-seconds ${opt.maxSeconds} passed: stopping`);
  finish();
}, opt.maxSeconds * 1000).unref();

/* ---------------------------------------------------------------- start */

for (let i = 0; i < opt.wsjson; i++) subs.push(new WsJsonSub('hot', 'wsjson', i));
for (let i = 0; i < opt.stomp; i++) subs.push(new StompSub('hot', 'stomp', i));
for (let i = 0; i < opt.mqttws; i++) subs.push(new MqttSub('hot', 'mqttws', i, true, false));
for (let i = 0; i < opt.iframe; i++) subs.push(new IframeSub('hot', 'iframe', i));
const cycling = [];
for (let i = 0; i < opt.reconn; i++) {
  cycling.push(new SseSub('reconn', 'sse', i), new WsJsonSub('reconn', 'wsjson', i), new StompSub('reconn', 'stomp', i),
    new MqttSub('reconn', 'mqtt', i, false, true));
}
subs.push(...cycling);
for (const s of subs) s.start();
for (const s of cycling) cycle(s);
startFloods();
probeStart();
log(`${subs.length} subscribers (${cycling.length} reconnecting), floods: ${Object.keys(floods).join(',') || 'none'}`);
process.stderr.write('[soak-js] started\n');
