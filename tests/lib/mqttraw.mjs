// tests/lib/mqttraw.mjs - hand-built MQTT packets and a raw TCP client for byte-exact tests.
//
// Nothing here is "correct by construction": the builders write what they are told (any fixed
// header flags, any protocol name/level, any remaining length), and MqttRaw writes bytes as
// given and splits what the server sends into packets ({type, flags, body, raw}). Every wait is
// bounded (scaled with SCALE) and throws with what it saw.
import net from 'node:net';
import { SCALE } from './herald.mjs';

export const PT = {
  CONNECT: 1, CONNACK: 2, PUBLISH: 3, PUBACK: 4, PUBREC: 5, PUBREL: 6, PUBCOMP: 7,
  SUBSCRIBE: 8, SUBACK: 9, UNSUBSCRIBE: 10, UNSUBACK: 11, PINGREQ: 12, PINGRESP: 13, DISCONNECT: 14, AUTH: 15,
};

export function varint(n) {
  const out = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

export function str(s) {
  const b = Buffer.isBuffer(s) ? s : Buffer.from(s, 'utf8');
  const l = Buffer.alloc(2);
  l.writeUInt16BE(b.length);
  return Buffer.concat([l, b]);
}

const u16 = (n) => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
};

const u32 = (n) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

/* MQTT 5 property builders: concatenate their results into a property block (without length). */
export const prop = {
  byte: (id, v) => Buffer.from([id, v]),
  u16: (id, v) => Buffer.concat([Buffer.from([id]), u16(v)]),
  u32: (id, v) => Buffer.concat([Buffer.from([id]), u32(v)]),
  str: (id, v) => Buffer.concat([Buffer.from([id]), str(v)]),
  user: (k, v) => Buffer.concat([Buffer.from([0x26]), str(k), str(v)]),
};
export const PROP = {
  MESSAGE_EXPIRY: 0x02, CONTENT_TYPE: 0x03, RESPONSE_TOPIC: 0x08, CORRELATION_DATA: 0x09, SESSION_EXPIRY: 0x11,
  WILL_DELAY: 0x18, RECEIVE_MAX: 0x21, TOPIC_ALIAS_MAX: 0x22, TOPIC_ALIAS: 0x23, MAX_PACKET_SIZE: 0x27,
};

/* Reads a variable byte integer at b[o]: [value, offset after it]. */
export function readVarint(b, o) {
  let v = 0;
  let mul = 1;
  for (;;) {
    const c = b[o++];
    v += (c & 0x7f) * mul;
    mul *= 128;
    if (!(c & 0x80)) return [v, o];
  }
}

/* Reads a property block into [{id, value}] (value: number, string or [name, value] for user
 * properties; binary data as a Buffer). */
export function parseProps(b) {
  const out = [];
  let o = 0;
  const rstr = () => {
    const n = b.readUInt16BE(o);
    const v = b.subarray(o + 2, o + 2 + n);
    o += 2 + n;
    return v;
  };
  while (o < b.length) {
    const id = b[o++];
    if ([0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2a].includes(id)) out.push({ id, value: b[o++] });
    else if ([0x13, 0x21, 0x22, 0x23].includes(id)) { out.push({ id, value: b.readUInt16BE(o) }); o += 2; }
    else if ([0x02, 0x11, 0x18, 0x27].includes(id)) { out.push({ id, value: b.readUInt32BE(o) }); o += 4; }
    else if (id === 0x0b) {
      const [v, next] = readVarint(b, o);
      o = next;
      out.push({ id, value: v });
    } else if (id === 0x26) out.push({ id, value: [rstr().toString(), rstr().toString()] });
    else if (id === 0x09 || id === 0x16) out.push({ id, value: rstr() });
    else out.push({ id, value: rstr().toString() });
  }
  return out;
}

/* fixed header (type << 4 | flags) + remaining length + body */
export function packet(type, flags, body = Buffer.alloc(0), remaining) {
  return Buffer.concat([Buffer.from([(type << 4) | flags]), varint(remaining ?? body.length), body]);
}

/* CONNECT. o: {v: 4|5, id, clean=true, keepalive=0, will: {topic, payload, qos, retain, props},
 * protoName='MQTT', level (overrides v), props (Buffer of v5 properties, default none)} */
export function connect(o = {}) {
  const v = o.v ?? 4;
  let flags = o.clean === false ? 0 : 0x02;
  if (o.will) flags |= 0x04 | ((o.will.qos ?? 0) << 3) | (o.will.retain ? 0x20 : 0);
  const parts = [str(o.protoName ?? 'MQTT'), Buffer.from([o.level ?? v, flags]), u16(o.keepalive ?? 0)];
  if (v === 5) parts.push(varint((o.props ?? Buffer.alloc(0)).length), o.props ?? Buffer.alloc(0));
  parts.push(str(o.id ?? ''));
  if (o.will) {
    const wp = o.will.props ?? Buffer.alloc(0);
    if (v === 5) parts.push(varint(wp.length), wp);
    parts.push(str(o.will.topic), str(Buffer.from(o.will.payload ?? '')));
  }
  return packet(PT.CONNECT, 0, Buffer.concat(parts));
}

/* PUBLISH. o: {v, topic, payload, qos=0, retain, dup, pid, props (v5 property block)} */
export function publishPkt(o) {
  const qos = o.qos ?? 0;
  const flags = (o.dup ? 8 : 0) | (qos << 1) | (o.retain ? 1 : 0);
  const parts = [str(o.topic)];
  if (qos) parts.push(u16(o.pid));
  if (o.v === 5) parts.push(varint((o.props ?? Buffer.alloc(0)).length), o.props ?? Buffer.alloc(0));
  parts.push(Buffer.from(o.payload ?? ''));
  return packet(PT.PUBLISH, o.flags ?? flags, Buffer.concat(parts));
}

/* SUBSCRIBE. o: {v, pid, filters: [[filter, optionsByte]]} */
export function subscribePkt(o) {
  const parts = [u16(o.pid ?? 1)];
  if (o.v === 5) parts.push(varint(0));
  for (const [f, opt] of o.filters) parts.push(str(f), Buffer.from([opt ?? 0]));
  return packet(PT.SUBSCRIBE, 2, Buffer.concat(parts));
}

/* PUBACK/PUBREC/PUBREL/PUBCOMP (PUBREL has flags 2) */
export function ackPkt(type, pid, flags) {
  return packet(type, flags ?? (type === PT.PUBREL ? 2 : 0), u16(pid));
}

export function disconnectPkt(v = 4, reason) {
  if (v === 5 && reason !== undefined) return packet(PT.DISCONNECT, 0, Buffer.from([reason]));
  return packet(PT.DISCONNECT, 0);
}

/* Splits whole packets off buf: returns {pkts, rest}. */
export function splitPackets(buf) {
  const pkts = [];
  let pos = 0;
  for (;;) {
    if (buf.length - pos < 2) break;
    let len = 0;
    let mul = 1;
    let i = pos + 1;
    let ok = false;
    for (let k = 0; k < 4 && i < buf.length; k++, i++) {
      len += (buf[i] & 0x7f) * mul;
      mul *= 128;
      if (!(buf[i] & 0x80)) {
        ok = true;
        i++;
        break;
      }
    }
    if (!ok || i + len > buf.length) break;
    const raw = buf.subarray(pos, i + len);
    pkts.push({ type: buf[pos] >> 4, flags: buf[pos] & 15, body: buf.subarray(i, i + len), raw });
    pos = i + len;
  }
  return { pkts, rest: buf.subarray(pos) };
}

/* Parses a PUBLISH body: {topic, qos, retain, dup, pid, payload, props} (props: v5 only). */
export function parsePublish(p, v = 4) {
  const tl = p.body.readUInt16BE(0);
  const topic = p.body.subarray(2, 2 + tl).toString();
  const qos = (p.flags >> 1) & 3;
  let o = 2 + tl;
  let pid;
  if (qos) {
    pid = p.body.readUInt16BE(o);
    o += 2;
  }
  let props = [];
  if (v === 5) {
    const [len, start] = readVarint(p.body, o);
    props = parseProps(p.body.subarray(start, start + len));
    o = start + len;
  }
  return { topic, qos, retain: !!(p.flags & 1), dup: !!(p.flags & 8), pid, payload: p.body.subarray(o), props };
}

export class MqttRaw {
  static async open(port, opts = {}) {
    const c = new MqttRaw();
    c.sock = net.connect({ host: '127.0.0.1', port, allowHalfOpen: !!opts.allowHalfOpen }); /* allowHalfOpen: it never closes its side by itself */
    await new Promise((res, rej) => {
      c.sock.once('connect', res);
      c.sock.once('error', rej);
    });
    c.buf = Buffer.alloc(0);
    c.pkts = [];
    c.all = [];
    c.closed = false;
    c.v = opts.v ?? 4;
    c.wake = null;
    c.sock.on('data', (d) => {
      const r = splitPackets(Buffer.concat([c.buf, d]));
      c.buf = r.rest;
      c.pkts.push(...r.pkts);
      c.all.push(...r.pkts);
      if (c.wake) c.wake();
    });
    const onClose = () => {
      c.closed = true;
      if (c.wake) c.wake();
    };
    c.sock.on('end', onClose);
    c.sock.on('close', onClose);
    c.sock.on('error', onClose);
    return c;
  }

  write(b) {
    if (!this.sock.destroyed) this.sock.write(b);
  }

  async _wait(cond, ms, what) {
    const deadline = Date.now() + ms;
    for (;;) {
      const r = cond();
      if (r) return r;
      const left = deadline - Date.now();
      if (left <= 0) {
        const seen = this.all.map((p) => `${p.type}/${p.raw.toString('hex')}`).join(' ');
        throw new Error(`raw MQTT: ${what} not within ${ms} ms (closed=${this.closed}; packets: ${seen})`);
      }
      await new Promise((r2) => {
        const t = setTimeout(r2, left);
        this.wake = () => {
          clearTimeout(t);
          this.wake = null;
          r2();
        };
      });
    }
  }

  /* the next packet (null once closed and drained) */
  async next(ms = 3000 * SCALE) {
    await this._wait(() => this.pkts.length || this.closed, ms, 'a packet');
    return this.pkts.shift() ?? null;
  }

  /* the next packet of the given type (others are skipped); throws when closed first */
  async expect(type, ms = 3000 * SCALE) {
    const deadline = Date.now() + ms;
    for (;;) {
      const p = await this.next(Math.max(1, deadline - Date.now()));
      if (!p) throw new Error(`raw MQTT: closed while waiting for packet type ${type} (saw ${this.all.map((q) => q.type).join(',')})`);
      if (p.type === type) return p;
    }
  }

  /* bounded wait for the TCP close */
  waitClosed(ms = 3000 * SCALE) {
    return this._wait(() => this.closed, ms, 'the close');
  }

  destroy() {
    this.sock.destroy();
  }

  /* CONNECT and wait for CONNACK; returns the CONNACK packet */
  async handshake(o = {}) {
    this.v = o.v ?? this.v;
    this.write(connect({ v: this.v, ...o }));
    return this.expect(PT.CONNACK);
  }
}

/* the return/reason code of a CONNACK */
export const connackCode = (p) => p.body[1];
/* the reason code of a v5 DISCONNECT (0 when omitted) */
export const disconnectReason = (p) => (p.body.length ? p.body[0] : 0);
/* the session-present flag of a CONNACK */
export const sessionPresent = (p) => !!(p.body[0] & 1);
/* the properties of a v5 CONNACK */
export function connackProps(p) {
  const [len, o] = readVarint(p.body, 2);
  return parseProps(p.body.subarray(o, o + len));
}
/* the value of property id in a parsed list (undefined when absent) */
export const propOf = (props, id) => props.find((x) => x.id === id)?.value;
