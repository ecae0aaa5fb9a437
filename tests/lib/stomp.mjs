// tests/lib/stomp.mjs - WebSocket helpers for the /ws and /stomp integration tests: a queued
// WebSocket (npm `ws`), a raw STOMP frame reader/writer over it (so tests can send exact bytes
// and read the exact ERROR frames), and an @stomp/stompjs client wrapper. Every wait is bounded.
import WebSocket from 'ws';
import { Client, Versions } from '@stomp/stompjs';
import { SCALE, withTimeout, boundedQueue } from './herald.mjs';

export { WebSocket, Client, Versions };

export const wsURL = (h, p) => `ws://127.0.0.1:${h.port}${p}`;

/* Opens a WebSocket (resolves once open; rejects on a refused handshake). Messages queue up as
 * {data: Buffer, binary}; next(ms) returns the next one, or null once closed and drained.
 * closed resolves {code, reason} when the connection ends. */
export function openWS(url, protocols = [], opts = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { perMessageDeflate: opts.deflate ?? false, ...opts.ws });
    const q = boundedQueue(`WebSocket ${url}`);
    let closeInfo = null;
    let closedResolve;
    const closed = new Promise((r) => (closedResolve = r));
    let opened = false;
    const t = setTimeout(() => {
      if (!opened) {
        ws.terminate();
        reject(new Error(`WebSocket ${url}: not open within ${5000 * SCALE} ms`));
      }
    }, 5000 * SCALE);
    ws.on('message', (data, binary) => q.push({ data: Buffer.isBuffer(data) ? data : Buffer.concat(data), binary }));
    ws.on('close', (code, reason) => {
      closeInfo = { code, reason: reason.toString() };
      q.end();
      closedResolve(closeInfo);
    });
    ws.on('error', (e) => {
      if (!opened) {
        clearTimeout(t);
        reject(e);
      }
    });
    ws.on('unexpected-response', (req, res) => {
      clearTimeout(t);
      reject(new Error(`WebSocket ${url}: handshake answered ${res.statusCode}`));
      req.destroy();
    });
    ws.on('open', () => {
      opened = true;
      clearTimeout(t);
      resolve({
        ws,
        url,
        get protocol() {
          return ws.protocol;
        },
        messages: q.all,
        next: (ms) => q.next(ms),
        pending: () => q.items.length,
        send(data, binary = false) {
          ws.send(data, { binary });
        },
        closed,
        get closeInfo() {
          return closeInfo;
        },
        /* bounded wait for the close; resolves {code, reason} */
        waitClosed(ms = 5000 * SCALE) {
          return withTimeout(closed, ms, `${url} to close`);
        },
        close() {
          if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close();
        },
        terminate() {
          ws.terminate();
        },
      });
    });
  });
}

/* ---------------------------------------------------------------- raw STOMP frames */

/* Builds a frame: headers is [[name, value], ...] or an object, written as given (no
 * escaping: tests send exact bytes). body is a string or Buffer. Returns a Buffer. */
export function frame(cmd, headers = [], body = '') {
  const hs = Array.isArray(headers) ? headers : Object.entries(headers);
  const head = `${cmd}\n${hs.map(([k, v]) => `${k}:${v}\n`).join('')}\n`;
  return Buffer.concat([Buffer.from(head, 'utf8'), Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8'), Buffer.from([0])]);
}

/* STOMP 1.2 header unescaping (\r \n \c \\). */
export function unescapeHeader(v) {
  return v.replace(/\\([rnc\\])/g, (_, c) => ({ r: '\r', n: '\n', c: ':', '\\': '\\' })[c]);
}

/* Parses whole frames off the front of buf. Returns {frames, heartbeats, rest}. A frame:
 * {command, headers: [[name, rawValue]], raw(name) (first raw value), get(name) (first value,
 * unescaped except in CONNECTED), body: Buffer, text}. Throws on a malformed server frame. */
export function parseFrames(buf) {
  const frames = [];
  let heartbeats = 0;
  let p = 0;
  for (;;) {
    // heart-beats
    while (p < buf.length && (buf[p] === 0x0a || (buf[p] === 0x0d && buf[p + 1] === 0x0a))) {
      p += buf[p] === 0x0d ? 2 : 1;
      heartbeats++;
    }
    if (p >= buf.length) break;
    const headEnd = buf.indexOf('\n\n', p);
    if (headEnd < 0) break;
    const lines = buf.subarray(p, headEnd).toString('utf8').split('\n').map((l) => l.replace(/\r$/, ''));
    const command = lines.shift();
    const headers = lines.map((l) => {
      const i = l.indexOf(':');
      if (i < 0) throw new Error(`server frame ${command}: header line without ':': ${JSON.stringify(l)}`);
      return [l.slice(0, i), l.slice(i + 1)];
    });
    const bs = headEnd + 2;
    const clh = headers.find(([k]) => k === 'content-length');
    let bodyEnd;
    if (clh) {
      bodyEnd = bs + Number(clh[1]);
      if (buf.length < bodyEnd + 1) break;
      if (buf[bodyEnd] !== 0) throw new Error(`server frame ${command}: no NUL after content-length ${clh[1]} body`);
    } else {
      bodyEnd = buf.indexOf(0, bs);
      if (bodyEnd < 0) break;
    }
    const body = Buffer.from(buf.subarray(bs, bodyEnd));
    const raw = (name) => headers.find(([k]) => k === name)?.[1];
    frames.push({
      command,
      headers,
      raw,
      get: (name) => {
        const v = raw(name);
        return v === undefined || command === 'CONNECTED' ? v : unescapeHeader(v);
      },
      body,
      text: body.toString('utf8'),
    });
    p = bodyEnd + 1;
  }
  return { frames, heartbeats, rest: buf.subarray(p) };
}

/* A raw STOMP session over a WebSocket at /stomp. connect: send CONNECT (with connectHeaders,
 * default accept-version:1.2) and wait for CONNECTED (s.connected). nextFrame(ms) returns the
 * next server frame (or null once closed); heartbeats counts the server's EOLs; wsMessages
 * the WebSocket messages received (with their binary flag). */
export async function rawStomp(h, opts = {}) {
  const conn = await openWS(wsURL(h, '/stomp'), opts.protocols ?? ['v12.stomp', 'v11.stomp']);
  const q = boundedQueue('STOMP frames');
  const s = {
    conn,
    frames: q.all,
    heartbeats: 0,
    wsMessages: [],
    connected: null,
    /* the next server frame (bounded); null once closed; throws on a malformed server frame */
    async nextFrame(ms) {
      const f = await q.next(ms);
      if (!f && s.parseError) throw s.parseError;
      return f;
    },
    send(data, binary = false) {
      conn.send(data, binary);
    },
    closed: conn.closed,
    waitClosed: (ms) => conn.waitClosed(ms),
    close() {
      conn.close();
    },
    /* bounded: the next frame, which must be `command` */
    async expect(command, ms) {
      const f = await s.nextFrame(ms);
      if (!f) throw new Error(`connection closed (${JSON.stringify(conn.closeInfo)}) while waiting for ${command}`);
      if (f.command !== command) {
        throw new Error(`want ${command}, got ${f.command} ${JSON.stringify(f.headers)} ${JSON.stringify(f.text)}`);
      }
      return f;
    },
  };
  let buf = Buffer.alloc(0);
  let parseError = null;
  conn.ws.on('message', (data, binary) => {
    const b = Buffer.isBuffer(data) ? data : Buffer.concat(data);
    s.wsMessages.push({ data: b, binary });
    buf = Buffer.concat([buf, b]);
    try {
      const r = parseFrames(buf);
      s.heartbeats += r.heartbeats;
      buf = r.rest;
      for (const f of r.frames) q.push(f);
    } catch (e) {
      parseError = e;
      s.parseError = e;
      q.end();
    }
  });
  conn.closed.then(() => q.end());
  if (opts.connect !== false) {
    s.send(frame('CONNECT', opts.connectHeaders ?? [['accept-version', '1.2'], ['host', 'localhost']]));
    s.connected = await s.expect('CONNECTED');
  }
  if (parseError) throw parseError;
  return s;
}

/* ---------------------------------------------------------------- @stomp/stompjs */

/* Connects an @stomp/stompjs Client (no reconnection) and resolves once CONNECTED:
 * {client, connected (the CONNECTED frame), ws (the underlying WebSocket), errors (ERROR
 * frames), closes ({code, reason}), heartbeats (EOLs seen), subscribe(), receipt(), publish(),
 * close()}. */
export async function stompClient(h, opts = {}) {
  const versions = new Versions(opts.versions ?? ['1.2', '1.1']);
  const st = { errors: [], closes: [], heartbeats: 0, ws: null, connected: null, unhandled: [] };
  let receiptN = 0;
  let onConnected;
  let onFail;
  const ready = new Promise((res, rej) => {
    onConnected = res;
    onFail = rej;
  });
  const client = new Client({
    webSocketFactory: () => {
      st.ws = new WebSocket(wsURL(h, '/stomp'), versions.protocolVersions(), { perMessageDeflate: false });
      return st.ws;
    },
    stompVersions: versions,
    reconnectDelay: 0,
    heartbeatIncoming: opts.heartbeatIncoming ?? 0,
    heartbeatOutgoing: opts.heartbeatOutgoing ?? 0,
    connectHeaders: opts.connectHeaders ?? {},
    debug: () => {},
    onConnect: (f) => onConnected(f),
    onStompError: (f) => {
      st.errors.push(f);
      onFail(new Error(`STOMP ERROR: ${f.headers.message} ${f.body}`));
    },
    onWebSocketClose: (e) => {
      st.closes.push({ code: e.code, reason: e.reason });
      onFail(new Error(`WebSocket closed (${e.code}) before CONNECTED`));
    },
    onHeartbeatReceived: () => {
      st.heartbeats++;
    },
    onUnhandledMessage: (m) => st.unhandled.push(m),
  });
  st.client = client;
  client.activate();
  try {
    st.connected = await withTimeout(ready, 5000 * SCALE, 'STOMP CONNECTED');
  } catch (e) {
    await client.deactivate().catch(() => {});
    throw e;
  }
  /* a promise of the RECEIPT frame for id (bounded) */
  st.receipt = (id, ms = 5000 * SCALE) =>
    withTimeout(new Promise((r) => client.watchForReceipt(id, r)), ms, `RECEIPT ${id}`);
  /* SUBSCRIBE with a receipt, resolved once the server confirmed it. Returns {sub, next(ms),
   * messages} */
  st.subscribe = async (destination, headers = {}) => {
    const q = boundedQueue(`STOMP ${destination}`);
    const rid = `sub-${++receiptN}`;
    const got = st.receipt(rid);
    const sub = client.subscribe(destination, (m) => q.push(m), { ...headers, receipt: rid });
    await got;
    return { sub, id: sub.id, messages: q.all, next: (ms) => q.next(ms), pending: () => q.items.length };
  };
  /* SEND with a receipt; resolves once the server confirmed it */
  st.publish = async (params) => {
    const rid = `send-${++receiptN}`;
    const got = st.receipt(rid);
    client.publish({ ...params, headers: { ...(params.headers || {}), receipt: rid } });
    return got;
  };
  st.close = async () => {
    await withTimeout(client.deactivate(), 5000 * SCALE, 'stompjs deactivate').catch(() => {
      try {
        st.ws?.terminate();
      } catch {}
    });
  };
  return st;
}
