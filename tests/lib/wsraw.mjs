// tests/lib/wsraw.mjs - a raw WebSocket client over net.Socket for byte-exact protocol tests.
//
// Nothing here is "correct by construction": frame() builds any frame the tests ask for
// (FIN/RSV bits, any opcode, forced 7/16/64-bit length encodings, a declared length that differs
// from the payload, masked with a chosen key or unmasked), and WsRaw writes bytes as given,
// optionally split at chosen offsets. Server frames are decoded as they come; expectClose()
// waits for the server's Close frame (code + reason), waitEnd() for the TCP close.
//
//   const c = await wsOpen(h.port, { path: '/echo' });         // c.status === 101
//   c.sendFrame({ opcode: OP.TEXT, payload: 'hi', fin: false });
//   c.sendFrame({ opcode: OP.CONT, payload: '!' });
//   const f = await c.next();                                    // {opcode, fin, rsv1, payload...}
//   const { code, reason } = await c.expectClose();              // then: await c.waitEnd()
//
// Every wait is bounded (scaled with SCALE for the ASan build) and throws with what it saw.
import crypto from 'node:crypto';
import { rawConn, SCALE } from './herald.mjs';

export const OP = { CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa };
export const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

const toBuf = (x) => (Buffer.isBuffer(x) ? x : Buffer.from(x ?? '', 'utf8'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 section 4.2.2). */
export function acceptFor(key) {
  return crypto.createHash('sha1').update(key + GUID).digest('base64');
}

/* A random valid Sec-WebSocket-Key. */
export function newKey() {
  return crypto.randomBytes(16).toString('base64');
}

/* The payload of a Close frame: 2-byte code then the reason (string or Buffer, taken as bytes). */
export function closePayload(code, reason = '') {
  const r = toBuf(reason);
  const b = Buffer.alloc(2 + r.length);
  b.writeUInt16BE(code, 0);
  r.copy(b, 2);
  return b;
}

/* Builds one frame. opts:
 *   opcode (number, required)      payload (Buffer|string, default empty)
 *   fin = true, rsv1/rsv2/rsv3 = false
 *   mask = true: random non-zero key | a 4-byte Buffer: that key | false: unmasked frame
 *   lenBits = 7 | 16 | 64: force that length encoding (default: the minimal one)
 *   length: the declared payload length, if it should differ from payload.length
 *   headerOnly: return the header (and mask key) without the payload */
export function frame(opts) {
  const payload = toBuf(opts.payload);
  const n = opts.length ?? payload.length;
  const bits = opts.lenBits ?? (n < 126 ? 7 : n <= 0xffff ? 16 : 64);
  const b0 =
    (opts.fin === false ? 0 : 0x80) |
    (opts.rsv1 ? 0x40 : 0) |
    (opts.rsv2 ? 0x20 : 0) |
    (opts.rsv3 ? 0x10 : 0) |
    (opts.opcode & 0x0f);
  let head;
  if (bits === 7) {
    if (n > 125) throw new Error(`frame(): length ${n} does not fit 7 bits`);
    head = Buffer.from([b0, n]);
  } else if (bits === 16) {
    head = Buffer.alloc(4);
    head[0] = b0;
    head[1] = 126;
    head.writeUInt16BE(n, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = b0;
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  const mask = opts.mask ?? true;
  if (mask === false) return opts.headerOnly ? head : Buffer.concat([head, payload]);
  let key = Buffer.isBuffer(mask) ? mask : crypto.randomBytes(4);
  if (!Buffer.isBuffer(mask) && key.readUInt32BE(0) === 0) key = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);
  head[1] |= 0x80;
  if (opts.headerOnly) return Buffer.concat([head, key]);
  const body = Buffer.alloc(payload.length);
  for (let i = 0; i < payload.length; i++) body[i] = payload[i] ^ key[i & 3];
  return Buffer.concat([head, key, body]);
}

/* Decodes one frame at the start of buf: null if incomplete, else the frame and its size. */
export function decodeFrame(buf) {
  if (buf.length < 2) return null;
  const b0 = buf[0];
  const b1 = buf[1];
  let n = b1 & 0x7f;
  let p = 2;
  if (n === 126) {
    if (buf.length < 4) return null;
    n = buf.readUInt16BE(2);
    p = 4;
  } else if (n === 127) {
    if (buf.length < 10) return null;
    n = Number(buf.readBigUInt64BE(2));
    p = 10;
  }
  const masked = (b1 & 0x80) !== 0;
  let key = null;
  if (masked) {
    if (buf.length < p + 4) return null;
    key = buf.subarray(p, p + 4);
    p += 4;
  }
  if (buf.length < p + n) return null;
  let payload = Buffer.from(buf.subarray(p, p + n));
  if (key) for (let i = 0; i < payload.length; i++) payload[i] ^= key[i & 3];
  const f = {
    fin: (b0 & 0x80) !== 0,
    rsv1: (b0 & 0x40) !== 0,
    rsv2: (b0 & 0x20) !== 0,
    rsv3: (b0 & 0x10) !== 0,
    opcode: b0 & 0x0f,
    masked,
    headerLen: p,
    payload,
    size: p + n,
  };
  if (f.opcode === OP.CLOSE) {
    f.code = payload.length >= 2 ? payload.readUInt16BE(0) : null;
    f.reasonBytes = payload.subarray(2);
    f.reason = f.reasonBytes.toString('utf8');
  }
  return f;
}

function describe(f) {
  return f.opcode === OP.CLOSE
    ? `Close(${f.code}, ${JSON.stringify(f.reason)})`
    : `op=${f.opcode} fin=${f.fin} rsv1=${f.rsv1} len=${f.payload.length}`;
}

export class WsRaw {
  constructor(sock, buf) {
    this.sock = sock;
    this.buf = buf;        // undecoded bytes from the server
    this.ended = false;    // the server closed the TCP connection (FIN or reset)
    this.frames = [];      // every frame decoded so far, in order
    this.queue = [];       // frames not yet returned by next()
    this.wake = null;
    sock.on('data', (c) => {
      this.buf = Buffer.concat([this.buf, c]);
      this._decode();
      this._poke();
    });
    const onEnd = () => {
      this.ended = true;
      this._poke();
    };
    sock.on('end', onEnd);
    sock.on('close', onEnd);
    sock.on('error', onEnd);
    this._decode();
  }

  _poke() {
    if (this.wake) this.wake();
  }

  _decode() {
    for (;;) {
      const f = decodeFrame(this.buf);
      if (!f) return;
      this.buf = this.buf.subarray(f.size);
      this.frames.push(f);
      this.queue.push(f);
    }
  }

  /* Waits (bounded) until cond() is true; cond is re-checked on every input or close. */
  async _until(cond, ms, what) {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = cond();
      if (v) return v;
      const left = deadline - Date.now();
      if (left <= 0) {
        const seen = this.frames.map(describe).join(', ') || 'none';
        throw new Error(`ws raw: no ${what} within ${ms} ms (frames seen: ${seen}; tcp closed: ${this.ended})`);
      }
      await new Promise((r) => {
        const t = setTimeout(r, left);
        this.wake = () => {
          clearTimeout(t);
          this.wake = null;
          r();
        };
      });
    }
  }

  /* Writes raw bytes. */
  send(bytes) {
    if (!this.sock.destroyed) this.sock.write(toBuf(bytes));
  }

  /* Builds (see frame()) and writes one frame. */
  sendFrame(opts) {
    this.send(frame(opts));
  }

  /* Writes bytes in pieces split at the given offsets (e.g. [1, 2, 5]; 'each' = every byte),
   * waiting for each write to be flushed plus `gapMs` before the next, so the server reads the
   * pieces separately. Stops early once the server has sent a Close or closed the connection
   * (writing on would only provoke a reset). */
  async sendSplit(bytes, at = 'each', gapMs = 3) {
    const b = toBuf(bytes);
    const cuts = at === 'each' ? Array.from({ length: b.length - 1 }, (_, i) => i + 1) : [...at].sort((x, y) => x - y);
    let prev = 0;
    for (const c of [...cuts, b.length]) {
      if (c <= prev) continue;
      if (this.ended || this.frames.some((f) => f.opcode === OP.CLOSE)) return;
      await new Promise((r) => this.sock.write(b.subarray(prev, c), r));
      prev = c;
      if (c < b.length) await sleep(gapMs);
    }
  }

  /* The next server frame (bounded wait). Returns null when the TCP connection closed first. */
  async next(ms = 3000 * SCALE) {
    await this._until(() => this.queue.length || this.ended, ms, 'frame');
    return this.queue.length ? this.queue.shift() : null;
  }

  /* The next frame that is not a Ping (pings from the heartbeat are skipped). */
  async nextData(ms = 3000 * SCALE) {
    const deadline = Date.now() + ms;
    for (;;) {
      const f = await this.next(Math.max(1, deadline - Date.now()));
      if (!f || f.opcode !== OP.PING) return f;
    }
  }

  /* Reads frames until the server's Close frame; returns {code, reason, reasonBytes, frames}
   * (frames: the others received before it). Throws if the TCP connection ends without one. */
  async expectClose(ms = 3000 * SCALE) {
    const deadline = Date.now() + ms;
    const before = [];
    for (;;) {
      const f = await this.next(Math.max(1, deadline - Date.now()));
      if (!f) {
        throw new Error(`ws raw: TCP closed without a Close frame (frames seen: ${this.frames.map(describe).join(', ') || 'none'})`);
      }
      if (f.opcode === OP.CLOSE) return { code: f.code, reason: f.reason, reasonBytes: f.reasonBytes, frame: f, frames: before };
      before.push(f);
    }
  }

  /* Waits until the server has closed the TCP connection. */
  async waitEnd(ms = 3000 * SCALE) {
    await this._until(() => this.ended, ms, 'TCP close');
  }

  /* Stops / restarts reading from the socket (the server's writes back up meanwhile). */
  pause() {
    this.sock.pause();
  }

  resume() {
    this.sock.resume();
  }

  close() {
    this.sock.destroy();
  }
}

/* Opens a TCP connection and sends a WebSocket handshake. opts:
 *   path = '/echo', method = 'GET', key (default: random), host,
 *   headers: added to / overriding the defaults (Host, Upgrade, Connection, Sec-WebSocket-Key,
 *            Sec-WebSocket-Version: 13); a null value removes that default header
 *   extensions: a Sec-WebSocket-Extensions value to offer
 *   raw: the whole request as a string (replaces everything above)
 *   after: bytes (e.g. frames) written in the same write as the request, before any answer
 * Resolves {status, headers (lowercased), response, key, conn}: conn is a WsRaw holding any
 * bytes that followed the head (frames after a 101). For a non-101 answer the body is read
 * (Content-Length) before resolving. */
export async function wsOpen(port, opts = {}) {
  port = port.port ?? port;
  const key = opts.key ?? newKey();
  let req = opts.raw;
  if (req === undefined) {
    const hs = {
      Host: opts.host ?? `127.0.0.1:${port}`,
      Upgrade: 'websocket',
      Connection: 'Upgrade',
      'Sec-WebSocket-Key': key,
      'Sec-WebSocket-Version': '13',
    };
    if (opts.extensions !== undefined) hs['Sec-WebSocket-Extensions'] = opts.extensions;
    for (const [k, v] of Object.entries(opts.headers || {})) {
      const existing = Object.keys(hs).find((x) => x.toLowerCase() === k.toLowerCase());
      if (existing) delete hs[existing];
      if (v !== null) hs[k] = v;
    }
    req = `${opts.method ?? 'GET'} ${opts.path ?? '/echo'} HTTP/1.1\r\n`;
    for (const [k, v] of Object.entries(hs)) req += `${k}: ${v}\r\n`;
    req += '\r\n';
  }
  const c = await rawConn(port);
  c.sock.setNoDelay(true);
  c.write(opts.after ? Buffer.concat([Buffer.from(req, 'utf8'), toBuf(opts.after)]) : req);
  let resp;
  try {
    resp = await c.response(opts.timeout ?? 3000 * SCALE);
  } catch (e) {
    c.close();
    throw new Error(`ws handshake: ${e.message}`);
  }
  const { rest, closed } = c.detach();
  const conn = new WsRaw(c.sock, rest);
  if (closed) conn.ended = true;
  return { status: resp.status, headers: resp.headers, response: resp, key, conn };
}

/* wsOpen that requires 101 (and the right Sec-WebSocket-Accept); returns the WsRaw. */
export async function wsConnect(port, opts = {}) {
  const r = await wsOpen(port, opts);
  if (r.status !== 101) {
    r.conn.close();
    throw new Error(`ws handshake to ${opts.path ?? '/echo'} answered ${r.status}: ${r.response.text}`);
  }
  if (r.headers['sec-websocket-accept'] !== acceptFor(r.key)) {
    r.conn.close();
    throw new Error(`ws handshake: bad Sec-WebSocket-Accept ${r.headers['sec-websocket-accept']}`);
  }
  r.conn.headers = r.headers;
  return r.conn;
}
