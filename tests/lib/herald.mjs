// tests/lib/herald.mjs - helpers for herald's integration tests (node:test).
//
// Every test starts its own server with withHerald(flags, fn): a free loopback port, a fresh
// data directory, a bounded wait for GET /healthz, and on the way out SIGTERM with the
// assertion that the process exits with code 0 within 5 s. Under the ASan+UBSan build a leak
// or a sanitizer report makes the exit code non-zero, so every test also proves a clean
// shutdown. No helper sleeps blindly: every wait is a poll with a deadline.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '../..');
export const HERALD_BIN = process.env.HERALD_BIN
  ? path.resolve(process.env.HERALD_BIN)
  : path.join(ROOT, 'build/herald');
/* The ASan build is ~3x slower; scale bounded waits with HERALD_TIME_SCALE if needed. */
export const SCALE = Number(process.env.HERALD_TIME_SCALE || (/asan/.test(HERALD_BIN) ? 3 : 1));

const require = createRequire(import.meta.url);
export function loadEventSource() {
  return require("eventsource");
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* Polls cond() (sync or async) every `interval` ms until it returns a truthy value, which is
 * returned; throws after timeoutMs with `what` in the message. */
export async function waitFor(cond, timeoutMs = 5000, what = 'condition', interval = 10) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await cond();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) {
      const extra = last instanceof Error ? `: ${last.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${extra}`);
    }
    await sleep(interval);
  }
}

/* Rejects after ms with a message unless p settles first. */
export function withTimeout(p, ms, what = 'operation') {
  let t;
  return Promise.race([
    p,
    new Promise((_, rej) => {
      t = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/* ---------------------------------------------------------------- server process */

function flagArgs(flags) {
  const args = [];
  for (const [k, v] of Object.entries(flags || {})) {
    args.push(`--${k}`, String(v));
  }
  return args;
}

export class Herald {
  constructor(proc, port, dataDir, args) {
    this.proc = proc;
    this.port = port;
    this.host = '127.0.0.1';
    this.base = `http://127.0.0.1:${port}`;
    this.dataDir = dataDir;
    this.args = args;
    this.out = '';
    this.exited = null; // {code, signal} once the process ended
    this.exitPromise = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        this.exited = { code, signal };
        resolve(this.exited);
      });
    });
    const keep = (d) => {
      this.out += d.toString('utf8');
      if (this.out.length > 200000) this.out = this.out.slice(-100000);
    };
    proc.stdout.on('data', keep);
    proc.stderr.on('data', keep);
  }

  url(p) {
    return this.base + p;
  }

  tail(n = 3000) {
    return this.out.slice(-n);
  }

  /* SIGKILL (a crash): no clean shutdown, nothing flushed by herald itself. */
  async kill9() {
    if (!this.exited) this.proc.kill('SIGKILL');
    await this.exitPromise;
    this.stopped = Promise.resolve(this.exited);
    try {
      fs.rmSync(this.dataDir, { recursive: true, force: true });
    } catch {}
  }

  /* SIGTERM, then requires exit code 0 within 5 s (SIGKILL and throw otherwise). Removes the
   * data directory unless keepData (a restart on the same data). */
  async stop({ keepData = false } = {}) {
    if (this.stopped) return this.stopped;
    this.stopped = (async () => {
      if (!this.exited) this.proc.kill('SIGTERM');
      let timer;
      const res = await Promise.race([
        this.exitPromise,
        new Promise((r) => {
          timer = setTimeout(() => r(null), 5000);
        }),
      ]);
      clearTimeout(timer);
      // let the pipes drain so the tail holds any sanitizer report
      await sleep(20);
      if (!keepData) {
        try {
          fs.rmSync(this.dataDir, { recursive: true, force: true });
        } catch {}
      }
      if (!res) {
        this.proc.kill('SIGKILL');
        await this.exitPromise;
        throw new Error(`herald did not exit within 5 s of SIGTERM; output:\n${this.tail()}`);
      }
      if (res.code !== 0) {
        throw new Error(
          `herald exited with code ${res.code} signal ${res.signal} after SIGTERM (want 0); output:\n${this.tail()}`,
        );
      }
      return res;
    })();
    return this.stopped;
  }
}

/* Starts `herald serve --http 127.0.0.1:PORT --mqtt 127.0.0.1:PORT2 --data-dir TMP [--key value ...]`
 * (h.port, h.mqttPort) and waits (bounded)
 * until GET /healthz answers 200. Retries on another port when the process dies at startup. */
/* opts.wrap: a command herald runs under (e.g. ['prlimit', '--nofile=64:64']); opts.readyLog:
 * wait for the "herald listening" line instead of asking /healthz (a server that plain
 * requests cannot reach, e.g. with proxy_protocol). */
export async function startHerald(flags = {}, opts = {}) {
  if (!fs.existsSync(HERALD_BIN)) throw new Error(`herald binary not found: ${HERALD_BIN}`);
  let lastErr;
  for (let attempt = 0; attempt < 4; attempt++) {
    const port = await freePort();
    const mqttPort = await freePort();
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-it-'));
    const f = { 'data-dir': dataDir, mqtt: `127.0.0.1:${mqttPort}`, ...flags };
    const args = ['serve', '--http', `127.0.0.1:${port}`, ...flagArgs(f)];
    const wrap = opts.wrap ?? [];
    const proc = wrap.length
      ? spawn(wrap[0], [...wrap.slice(1), HERALD_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], cwd: dataDir })
      : spawn(HERALD_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dataDir });
    const h = new Herald(proc, port, dataDir, args);
    h.mqttPort = mqttPort;
    const deadline = Date.now() + 10000 * SCALE;
    let up = false;
    while (Date.now() < deadline && !h.exited) {
      if (opts.readyLog) {
        if (/herald listening on/.test(h.out)) {
          up = true;
          break;
        }
        await sleep(15);
        continue;
      }
      try {
        const r = await request(h, 'GET', '/healthz', { timeout: 1000 });
        if (r.status === 200) {
          up = true;
          break;
        }
      } catch {}
      await sleep(15);
    }
    if (up) return h;
    if (!h.exited) {
      proc.kill('SIGKILL');
      await h.exitPromise;
      fs.rmSync(dataDir, { recursive: true, force: true });
      throw new Error(`herald did not answer /healthz in time (${args.join(' ')}); output:\n${h.tail()}`);
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
    lastErr = new Error(`herald exited at startup (${JSON.stringify(h.exited)}): ${args.join(' ')}\n${h.tail()}`);
  }
  throw lastErr;
}

/* Runs fn(h) against a fresh server and always stops it; a failing shutdown fails the test. */
export async function withHerald(flags, fn) {
  if (typeof flags === 'function') {
    fn = flags;
    flags = {};
  }
  const h = await startHerald(flags);
  let result;
  try {
    result = await fn(h);
  } catch (e) {
    try {
      await h.stop();
    } catch (e2) {
      e.message += `\n(also: ${e2.message})`;
    }
    if (h.out) e.message += `\n--- herald output (tail) ---\n${h.tail(1500)}`;
    throw e;
  }
  await h.stop();
  return result;
}

/* ---------------------------------------------------------------- HTTP helpers */

/* One HTTP request on its own connection. Resolves {status, headers, body(Buffer), text, json()}. */
export function request(h, method, p, opts = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: h.port ?? h,
        method,
        path: p,
        headers: opts.headers || {},
        agent: false,
        timeout: opts.timeout ?? 5000 * SCALE,
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          const text = body.toString('utf8');
          resolve({
            status: res.statusCode,
            headers: res.headers,
            body,
            text,
            json() {
              try {
                return JSON.parse(text);
              } catch (e) {
                throw new Error(`${method} ${p}: body is not JSON (${res.statusCode}): ${text.slice(0, 300)}`);
              }
            },
          });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${p}: request timed out`)));
    req.on('error', reject);
    if (opts.signal) {
      opts.signal.addEventListener('abort', () => req.destroy(new Error('aborted')), { once: true });
    }
    if (opts.body !== undefined) req.end(opts.body);
    else req.end();
  });
}

/* POST /pub/{channel}; returns the parsed JSON answer and asserts status 200. */
export async function publish(h, channel, data, opts = {}) {
  let p = `/pub/${channel}`;
  if (opts.event) p += `?event=${encodeURIComponent(opts.event)}`;
  const headers = { ...(opts.headers || {}) };
  const body = Buffer.isBuffer(data) ? data : Buffer.from(String(data), 'utf8');
  headers['Content-Length'] = String(body.length);
  const r = await request(h, 'POST', p, { headers, body });
  if (r.status !== 200) {
    throw new Error(`POST ${p} answered ${r.status}: ${r.text.slice(0, 300)}`);
  }
  return r.json();
}

/* GET /sub/...?mode=poll (or whatever path given); returns parsed JSON, asserting 200. */
/* POST /pub/{ch} without asserting the status: {status, json (null if not JSON), text, ms}. */
export async function tryPublish(h, ch, data, opts = {}) {
  const t0 = Date.now();
  const r = await request(h, 'POST', `/pub/${ch}`, {
    body: data, headers: { 'Content-Length': String(Buffer.byteLength(data)) }, timeout: opts.timeout,
  });
  let json = null;
  try {
    json = JSON.parse(r.text);
  } catch {}
  return { status: r.status, json, text: r.text, ms: Date.now() - t0 };
}

export async function getJSON(h, p, opts = {}) {
  const r = await request(h, 'GET', p, opts);
  if (r.status !== 200) throw new Error(`GET ${p} answered ${r.status}: ${r.text.slice(0, 300)}`);
  return r.json();
}

/* Decodes a poll/iframe message's payload to bytes. */
export function msgBytes(m) {
  return m.encoding === 'base64' ? Buffer.from(m.data, 'base64') : Buffer.from(m.data, 'utf8');
}

/* ---------------------------------------------------------------- raw sockets */

/* Opens a TCP connection, writes `bytes` (string/Buffer or an array written one by one), and
 * collects the reply until the server closes, `until(buf)` is true, or `timeout` ms pass.
 * Resolves {data(Buffer), closed(bool: server ended/reset), timedOut(bool), error}. */
export function rawRequest(port, bytes, opts = {}) {
  const timeout = opts.timeout ?? 3000 * SCALE;
  return new Promise((resolve) => {
    const chunks = [];
    let done = false;
    const sock = net.connect({ host: '127.0.0.1', port: port.port ?? port });
    const finish = (how, err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ data: Buffer.concat(chunks), closed: how === 'closed', timedOut: how === 'timeout', error: err });
    };
    const timer = setTimeout(() => finish('timeout'), timeout);
    sock.on('connect', () => {
      const parts = Array.isArray(bytes) ? bytes : [bytes];
      for (const b of parts) sock.write(b);
    });
    sock.on('data', (c) => {
      chunks.push(c);
      if (opts.until && opts.until(Buffer.concat(chunks))) finish('until');
    });
    sock.on('end', () => finish('closed'));
    sock.on('error', (e) => finish('closed', e));
    sock.on('close', () => finish('closed'));
  });
}

/* Parses as many complete HTTP/1.1 responses as `buf` holds (Content-Length, chunked, or
 * no body for 1xx/204/304; a response without framing takes the rest only if `eof`).
 * Returns [{status, reason, headers(lowercased), body(Buffer), raw}] - incomplete tail is ignored. */
export function parseResponses(buf, eof = false) {
  const out = [];
  let pos = 0;
  while (pos < buf.length) {
    const headEnd = buf.indexOf('\r\n\r\n', pos);
    if (headEnd < 0) break;
    const head = buf.subarray(pos, headEnd).toString('latin1');
    const lines = head.split('\r\n');
    const m = /^HTTP\/(\d\.\d) (\d{3})(?: (.*))?$/.exec(lines[0]);
    if (!m) throw new Error(`bad status line: ${JSON.stringify(lines[0])}`);
    const headers = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      if (i < 0) continue;
      const k = l.slice(0, i).trim().toLowerCase();
      const v = l.slice(i + 1).trim();
      headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
    }
    const status = Number(m[2]);
    let p = headEnd + 4;
    let body;
    if ((status >= 100 && status < 200) || status === 204 || status === 304) {
      body = Buffer.alloc(0);
    } else if (/chunked/i.test(headers['transfer-encoding'] || '')) {
      const parts = [];
      let complete = false;
      for (;;) {
        const le = buf.indexOf('\r\n', p);
        if (le < 0) break;
        const size = parseInt(buf.subarray(p, le).toString('latin1').split(';')[0], 16);
        if (Number.isNaN(size)) throw new Error('bad chunk size');
        if (size === 0) {
          // trailers: until an empty line
          const te = buf.indexOf('\r\n\r\n', le);
          if (buf.subarray(le, le + 4).toString() === '\r\n\r\n') {
            p = le + 4;
            complete = true;
          } else if (te >= 0) {
            p = te + 4;
            complete = true;
          }
          break;
        }
        if (le + 2 + size + 2 > buf.length) break;
        parts.push(buf.subarray(le + 2, le + 2 + size));
        p = le + 2 + size + 2;
      }
      if (!complete) break;
      body = Buffer.concat(parts);
    } else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      if (p + n > buf.length) break;
      body = buf.subarray(p, p + n);
      p += n;
    } else {
      if (!eof) break;
      body = buf.subarray(p);
      p = buf.length;
    }
    out.push({
      status,
      reason: m[3] || '',
      version: m[1],
      headers,
      body,
      text: body.toString('utf8'),
      raw: buf.subarray(pos, p),
    });
    pos = p;
  }
  return out;
}

/* rawRequest + parse: resolves the list of responses received (waits for `count` of them, or
 * for the close). */
export async function rawExchange(port, bytes, opts = {}) {
  const count = opts.count ?? 1;
  const r = await rawRequest(port, bytes, {
    timeout: opts.timeout,
    until: (b) => {
      try {
        return parseResponses(b).length >= count;
      } catch {
        return true;
      }
    },
  });
  r.responses = parseResponses(r.data, r.closed);
  return r;
}

/* A persistent raw connection: write bytes and read responses one after the other. */
export async function rawConn(port) {
  const sock = net.connect({ host: '127.0.0.1', port: port.port ?? port });
  await new Promise((res, rej) => {
    sock.once('connect', res);
    sock.once('error', rej);
  });
  let buf = Buffer.alloc(0);
  let closed = false;
  let wake = null;
  const onData = (c) => {
    buf = Buffer.concat([buf, c]);
    if (wake) wake();
  };
  const onClose = () => {
    closed = true;
    if (wake) wake();
  };
  sock.on('data', onData);
  sock.on('end', onClose);
  sock.on('close', onClose);
  sock.on('error', onClose);
  return {
    sock,
    get closed() {
      return closed;
    },
    write(b) {
      sock.write(b);
    },
    /* waits for the next complete response (bounded) and consumes it */
    async response(timeoutMs = 3000 * SCALE) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const rs = parseResponses(buf, closed);
        if (rs.length > 0) {
          buf = buf.subarray(rs[0].raw.length);
          return rs[0];
        }
        if (closed) throw new Error(`connection closed before a complete response (have ${buf.length} bytes)`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no complete response within ${timeoutMs} ms (have: ${JSON.stringify(buf.toString('latin1').slice(0, 200))})`);
        await new Promise((r) => {
          const t = setTimeout(r, left);
          wake = () => {
            clearTimeout(t);
            wake = null;
            r();
          };
        });
      }
    },
    close() {
      sock.destroy();
    },
    /* stops reading for this helper (another protocol takes the socket over); returns the bytes
     * received after the last response and whether the peer had closed */
    detach() {
      sock.off('data', onData);
      sock.off('end', onClose);
      sock.off('close', onClose);
      sock.off('error', onClose);
      return { rest: buf, closed };
    },
  };
}

/* ---------------------------------------------------------------- SSE reader */

/* SSE parser fed with byte chunks; calls onEvent({id, event, data, lastEventId}) on each
 * dispatch, onRetry(ms), onComment(text). Follows the WHATWG event-stream rules. */
export class SSEParser {
  constructor(cb) {
    this.cb = cb;
    this.buf = Buffer.alloc(0);
    this.data = [];
    this.hasData = false;
    this.event = '';
    this.id = undefined;
    this.lastEventId = '';
    this.dec = new StringDecoder('utf8');
  }

  push(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    let start = 0;
    for (let i = 0; i < this.buf.length; i++) {
      const c = this.buf[i];
      if (c === 0x0a || c === 0x0d) {
        if (c === 0x0d && i + 1 >= this.buf.length) break; // wait for a possible \n
        const line = this.buf.subarray(start, i).toString('utf8');
        if (c === 0x0d && this.buf[i + 1] === 0x0a) i++;
        start = i + 1;
        this.line(line);
      }
    }
    this.buf = this.buf.subarray(start);
  }

  line(l) {
    if (l === '') {
      if (this.hasData) {
        this.cb.onEvent?.({
          id: this.id,
          lastEventId: this.lastEventId,
          event: this.event || 'message',
          data: this.data.join('\n'),
        });
      }
      this.data = [];
      this.hasData = false;
      this.event = '';
      this.id = undefined;
      return;
    }
    if (l[0] === ':') {
      this.cb.onComment?.(l.slice(1));
      return;
    }
    const i = l.indexOf(':');
    let field = l;
    let value = '';
    if (i >= 0) {
      field = l.slice(0, i);
      value = l.slice(i + 1);
      if (value[0] === ' ') value = value.slice(1);
    }
    if (field === 'data') {
      this.data.push(value);
      this.hasData = true;
    } else if (field === 'event') this.event = value;
    else if (field === 'id') {
      this.id = value;
      this.lastEventId = value;
    } else if (field === 'retry') this.cb.onRetry?.(value);
  }
}

/* A queue with a bounded next(ms): push() wakes the waiter; end() makes next() return null once
 * it is empty; next() throws when nothing comes within ms ("<what>: nothing within ..."). */
export function boundedQueue(what) {
  const items = [];
  let waiter = null;
  let ended = false;
  const wake = () => waiter && waiter();
  return {
    items,
    all: [],
    push(x) {
      this.all.push(x);
      items.push(x);
      wake();
    },
    end() {
      ended = true;
      wake();
    },
    get ended() {
      return ended;
    },
    async next(ms = 3000 * SCALE) {
      const deadline = Date.now() + ms;
      for (;;) {
        if (items.length) return items.shift();
        if (ended) return null;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`${what}: nothing within ${ms} ms (${this.all.length} so far)`);
        await new Promise((r) => {
          const t = setTimeout(() => {
            waiter = null;
            r();
          }, left);
          waiter = () => {
            clearTimeout(t);
            waiter = null;
            r();
          };
        });
      }
    },
  };
}

/* Opens an SSE stream over raw http (its own connection); opts.skip: event names next() passes
 * over (still in events[], e.g. ['unread']). Resolves once the response head arrives: {status, headers, events[], comments, retry, next(ms), take(n, ms), ended, close()}.
 * Parsed events queue up; next() returns the next one (bounded) and throws at timeout; it
 * returns null when the stream has ended and nothing is queued. */
export function openSSE(h, p, opts = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port: h.port,
      method: 'GET',
      path: p,
      headers: opts.headers || {},
      agent: false,
    });
    let settled = false;
    const headTimer = setTimeout(() => {
      if (!settled) {
        settled = true;
        req.destroy();
        reject(new Error(`GET ${p}: no response head within ${opts.timeout ?? 5000 * SCALE} ms`));
      }
    }, opts.timeout ?? 5000 * SCALE);
    req.on('error', (e) => {
      if (!settled) {
        settled = true;
        clearTimeout(headTimer);
        reject(e);
      } else if (s) s._end(e);
    });
    let s = null;
    req.on('response', (res) => {
      settled = true;
      clearTimeout(headTimer);
      const queue = boundedQueue(`SSE ${p}`);
      let endedFlag = false;
      let endResolve;
      const ended = new Promise((r) => (endResolve = r));
      s = {
        status: res.statusCode,
        headers: res.headers,
        req,
        res,
        events: [], // every event ever parsed
        comments: 0,
        retry: undefined,
        raw: [],
        rawBytes: 0,
        get ended() {
          return endedFlag;
        },
        endedPromise: ended,
        _end(err) {
          if (endedFlag) return;
          endedFlag = true;
          s.error = err;
          endResolve(err || null);
          queue.end();
        },
        next(ms = 3000 * SCALE) {
          return queue.next(ms);
        },
        /* next event that is not filtered out (e.g. skip heartbeats is automatic) */
        async take(n, ms = 3000 * SCALE) {
          const deadline = Date.now() + ms;
          const got = [];
          while (got.length < n) {
            const e = await s.next(Math.max(1, deadline - Date.now()));
            if (e === null) throw new Error(`SSE ${p}: stream ended after ${got.length}/${n} events`);
            got.push(e);
          }
          return got;
        },
        /* true if nothing is queued (does not wait) */
        pending() {
          return queue.length;
        },
        close() {
          req.destroy();
          res.destroy();
          s._end();
        },
        /* stop reading from the socket (the server's writes back up), and start again */
        pause() {
          res.pause();
        },
        resume() {
          res.resume();
        },
      };
      const parser = new SSEParser({
        onEvent: (e) => {
          s.events.push(e);
          if (!opts.skip?.includes(e.event)) queue.push(e);
        },
        onComment: () => {
          s.comments++;
        },
        onRetry: (v) => {
          s.retry = v;
        },
      });
      res.on('data', (c) => {
        if (opts.keepRaw) s.raw.push(c);
        s.rawBytes += c.length;
        parser.push(c);
      });
      res.on('end', () => s._end());
      res.on('close', () => s._end());
      res.on('error', (e) => s._end(e));
      resolve(s);
    });
    req.end();
  });
}

/* ---------------------------------------------------------------- iframe reader */

/* Extracts the JSON objects passed to h(...) in <script>h(...)</script> blocks of an iframe
 * stream's HTML. Returns {objects, scripts (all script block contents), rest (unconsumed)}. */
export function parseIframe(html) {
  const objects = [];
  const scripts = [];
  const re = /<script\b[^>]*>([\s\S]*?)<\/script>/g;
  let m;
  let last = 0;
  while ((m = re.exec(html))) {
    scripts.push(m[1]);
    last = re.lastIndex;
    const call = /^\s*h\(([\s\S]*)\);?\s*$/.exec(m[1]);
    if (call) objects.push(JSON.parse(call[1]));
  }
  return { objects, scripts, rest: html.slice(last) };
}

/* Opens an iframe stream (chunked HTML); collects the text and the parsed h({...}) objects;
 * opts.skip: notices next() passes over (e.g. ['unread'] for {"unread":true,...}). */
export function openIframe(h, p, opts = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: h.port, method: 'GET', path: p, headers: opts.headers || {}, agent: false });
    const headTimer = setTimeout(() => {
      req.destroy();
      reject(new Error(`GET ${p}: no response head in time`));
    }, 5000 * SCALE);
    req.on('error', (e) => {
      clearTimeout(headTimer);
      reject(e);
    });
    req.on('response', (res) => {
      clearTimeout(headTimer);
      const dec = new StringDecoder('utf8');
      let pendingText = '';
      const q = boundedQueue(`iframe ${p}`);
      const s = {
        status: res.statusCode,
        headers: res.headers,
        html: '',
        objects: q.all,
        get ended() {
          return q.ended;
        },
        next: (ms) => q.next(ms),
        close() {
          req.destroy();
          res.destroy();
          q.end();
        },
      };
      res.on('data', (c) => {
        const t = dec.write(c);
        s.html += t;
        pendingText += t;
        const { objects, rest } = parseIframe(pendingText);
        pendingText = rest;
        for (const o of objects) if (!opts.skip?.some((k) => o[k] === true)) q.push(o);
      });
      const end = () => q.end();
      res.on('end', end);
      res.on('close', end);
      res.on('error', end);
      resolve(s);
    });
    req.end();
  });
}

/* ---------------------------------------------------------------- processes */

/* Spawns a command; resolves {code, signal, stdout, stderr} (bounded by timeoutMs: SIGKILL and
 * reject on overrun). */
export function run(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], ...opts.spawn });
    const out = [];
    const err = [];
    p.stdout.on('data', (c) => out.push(c));
    p.stderr.on('data', (c) => err.push(c));
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} did not finish within ${opts.timeout} ms; stdout=${Buffer.concat(out).toString().slice(0, 500)} stderr=${Buffer.concat(err).toString().slice(0, 500)}`));
    }, opts.timeout ?? 10000 * SCALE);
    p.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    p.on('close', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() });
    });
    if (opts.input !== undefined) p.stdin.end(opts.input);
    else p.stdin.end();
  });
}

/* Spawns a long-running command (e.g. curl -N); collects stdout; stop() kills it. */
export function spawnStream(cmd, args) {
  const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const s = {
    proc: p,
    stdout: Buffer.alloc(0),
    stderr: '',
    exited: null,
    get text() {
      return s.stdout.toString('utf8');
    },
    async stop() {
      if (!s.exited) p.kill('SIGTERM');
      await withTimeout(exitP, 5000, `${cmd} exit`);
    },
  };
  const exitP = new Promise((r) => p.on('close', (code, signal) => r((s.exited = { code, signal }))));
  s.exit = exitP;
  p.stdout.on('data', (c) => (s.stdout = Buffer.concat([s.stdout, c])));
  p.stderr.on('data', (c) => (s.stderr += c.toString()));
  return s;
}

/* ---------------------------------------------------------------- metrics */

/* Parses Prometheus text into a Map of 'name{labels}' -> number. */
export function parseMetrics(text) {
  const m = new Map();
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const mm = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)/.exec(line);
    if (mm) m.set(mm[1].replace(/\s+/g, ''), Number(mm[2]));
  }
  return m;
}

export async function metrics(h) {
  const r = await request(h, 'GET', '/metrics');
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
  return parseMetrics(r.text);
}

/* ---------------------------------------------------------------- TCP proxy */

/* A cuttable TCP proxy in front of herald: cut() resets every live pair; down() makes new
 * connections close at once until up(). */
export async function tcpProxy(targetPort) {
  const pairs = new Set();
  let isDown = false;
  let accepted = 0;
  const srv = net.createServer((c) => {
    if (isDown) {
      c.destroy();
      return;
    }
    accepted++;
    const u = net.connect({ host: '127.0.0.1', port: targetPort });
    const pair = { c, u };
    pairs.add(pair);
    const kill = () => {
      c.destroy();
      u.destroy();
      pairs.delete(pair);
    };
    c.on('error', kill);
    u.on('error', kill);
    c.on('close', kill);
    u.on('close', kill);
    c.pipe(u);
    u.pipe(c);
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: srv.address().port,
    get accepted() {
      return accepted;
    },
    get live() {
      return pairs.size;
    },
    cut() {
      for (const p of [...pairs]) {
        p.c.destroy();
        p.u.destroy();
        pairs.delete(p);
      }
    },
    down() {
      isDown = true;
    },
    up() {
      isDown = false;
    },
    async close() {
      this.cut();
      await new Promise((r) => srv.close(r));
    },
  };
}

/* random bytes including NUL, CR, LF and invalid UTF-8 */
export function nastyBytes(n, seed = 1) {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  if (n >= 6) {
    b[0] = 0x00;
    b[1] = 0x0d;
    b[2] = 0x0a;
    b[3] = 0xff;
    b[4] = 0xc3; // truncated 2-byte sequence
    b[5] = 0x28;
  }
  return b;
}

/* Bounded wait until `channel` shows a subscriber (via /channels) or herald_connections{transport}
 * is at least n. Returns true/false (never throws): callers use it to avoid publish races. */
export async function waitSubscribed(h, channel, transport, n = 1, timeoutMs = 3000 * SCALE) {
  try {
    await waitFor(async () => {
      const r = await request(h, 'GET', `/channels/${channel}`);
      if (r.status === 200 && r.json().subscribers >= n) return true;
      if (transport) {
        const m = await metrics(h);
        if ((m.get(`herald_connections{transport="${transport}"}`) ?? 0) >= n) return true;
      }
      return false;
    }, timeoutMs, 'subscription', 20);
    return true;
  } catch {
    return false;
  }
}
