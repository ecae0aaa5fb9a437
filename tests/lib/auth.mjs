// tests/lib/auth.mjs - helpers for the access-control integration tests (21-24-auth-*.test.mjs):
// tokens minted by `herald token` and by hand (HS256 with node's crypto, for the malformed and
// hostile ones), key files in a temporary directory, an API-key-aware waitSubscribed, the /ws
// JSON protocol over `ws`, MQTT CONNECT packets with user name / password for the raw client,
// and starting herald on an address of the test's choosing (tests/lib/herald.mjs always binds
// 127.0.0.1). Every wait is bounded; every process started here is stopped by its PID.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  HERALD_BIN, SCALE, Herald, freePort, request, run, sleep, waitFor, publish,
} from './herald.mjs';
import { openWS, wsURL } from './stomp.mjs';
import { PT, packet, str, varint } from './mqttraw.mjs';

/* 35 bytes: token_hmac_secret wants at least 32 */
export const SECRET = 'herald-it-hmac-secret-0123456789abc';
/* 24 bytes: api keys want at least 16 */
export const API_KEY = 'it-backend-key-0123456789';
export const bearer = (t) => ({ Authorization: `Bearer ${t}` });
export const now = () => Math.floor(Date.now() / 1000);

/* The flags of a server with tokens (HMAC) and an API key, plus extra. */
export const authFlags = (extra = {}) => ({ 'token-hmac-secret': SECRET, 'api-keys': API_KEY, ...extra });

/* ---------------------------------------------------------------- temporary files */

let tmpRoot = null;
/* A file in this process's temporary directory (removed when the process exits). */
export function tmpFile(name, content, mode = 0o600) {
  if (!tmpRoot) {
    tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-auth-'));
    process.on('exit', () => {
      try {
        fs.rmSync(tmpRoot, { recursive: true, force: true });
      } catch {}
    });
  }
  const p = path.join(tmpRoot, `${Date.now()}-${crypto.randomBytes(4).toString('hex')}-${name}`);
  fs.writeFileSync(p, content, { mode });
  return p;
}

/* ---------------------------------------------------------------- tokens */

export const b64u = (x) =>
  Buffer.from(Buffer.isBuffer(x) ? x : typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');

/* A hand-made JWS: header and payload are objects (JSON-encoded) or strings (taken as the exact
 * JSON text); signed with HMAC (sha256 by default) over secret. */
export function hmacToken(payload, { header = { alg: 'HS256', typ: 'JWT' }, secret = SECRET, hash = 'sha256' } = {}) {
  const input = `${b64u(header)}.${b64u(payload)}`;
  const sig = crypto.createHmac(hash, secret).update(input).digest('base64url');
  return `${input}.${sig}`;
}

/* Claims of a valid token for user sub (1 h), merged with extra. */
export const claims = (sub = '42', extra = {}) => ({ sub, iat: now(), exp: now() + 3600, ...extra });

/* Mints a token with `herald token`. o: {sub, subscribe: [], publish: [], ttl, alg, privateKey,
 * kid, claim: ['name=JSON'], config: [extra configuration args], secret (default SECRET; null:
 * none)}. Returns the token; fails the test when the command does not exit 0. */
export async function mint(o = {}) {
  const args = ['token'];
  const secret = o.secret === undefined ? SECRET : o.secret;
  if (secret !== null && !o.privateKey) args.push('--token-hmac-secret', secret);
  args.push('--sub', o.sub ?? '42');
  for (const p of o.subscribe ?? []) args.push('--subscribe', p);
  for (const p of o.publish ?? []) args.push('--publish', p);
  if (o.ttl) args.push('--ttl', String(o.ttl));
  if (o.alg) args.push('--alg', o.alg);
  if (o.privateKey) args.push('--private-key', o.privateKey);
  if (o.kid) args.push('--kid', o.kid);
  for (const c of o.claim ?? []) args.push('--claim', c);
  args.push(...(o.config ?? []));
  const r = await run(HERALD_BIN, args, { timeout: 10000 * SCALE });
  const tok = r.stdout.toString().trim();
  assert.equal(r.code, 0, `herald ${args.join(' ')} failed: ${r.stderr}`);
  assert.match(tok, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, `herald token printed a JWS: ${tok}`);
  return tok;
}

/* The standard token of these tests: user/{sub}/# to read, nothing to publish. */
export const userToken = (sub = '42', o = {}) => mint({ sub, subscribe: ['user/{sub}/#'], ...o });

/* Decodes a token's payload (to check what `herald token` put in it). */
export const payloadOf = (t) => JSON.parse(Buffer.from(t.split('.')[1], 'base64url').toString());

/* ---------------------------------------------------------------- HTTP helpers */

/* POST /pub with the API key (asserts 200). */
export const keyPublish = (h, ch, data, opts = {}) =>
  publish(h, ch, data, { ...opts, headers: { ...bearer(API_KEY), ...(opts.headers || {}) } });

/* GET /channels/ch with the API key. */
export async function channelInfo(h, ch) {
  const r = await request(h, 'GET', `/channels/${ch}`, { headers: bearer(API_KEY) });
  assert.equal(r.status, 200, `GET /channels/${ch} with the API key: ${r.status} ${r.text}`);
  return r.json();
}

/* Bounded wait until ch has at least n subscribers (asked with the API key). */
export function waitSubs(h, ch, n = 1, ms = 5000 * SCALE) {
  return waitFor(async () => (await channelInfo(h, ch)).subscribers >= n, ms, `${n} subscriber(s) on ${ch}`, 15);
}

/* Asserts a 401 refusal with a Bearer challenge (invalid: with error="invalid_token"). */
export function assert401(r, what, invalid = false) {
  assert.equal(r.status, 401, `${what}: status (body ${r.text ?? r.response?.text})`);
  const wa = r.headers['www-authenticate'];
  assert.ok(wa, `${what}: WWW-Authenticate present`);
  assert.match(wa, /^Bearer\b/, `${what}: WWW-Authenticate is a Bearer challenge: ${wa}`);
  assert.match(wa, /realm="herald"/, `${what}: realm: ${wa}`);
  if (invalid) assert.match(wa, /error="invalid_token"/, `${what}: error="invalid_token": ${wa}`);
}

/* Asserts a 403 refusal with error="insufficient_scope". */
export function assert403(r, what) {
  assert.equal(r.status, 403, `${what}: status (body ${r.text})`);
  assert.match(r.headers['www-authenticate'] || '', /error="insufficient_scope"/, `${what}: WWW-Authenticate`);
}

/* ---------------------------------------------------------------- /ws JSON protocol */

let refN = 0;
/* Opens /ws (opts.token: as ?token=; opts.headers: handshake headers) and reads the welcome.
 * Adds json(ms), req(obj) and call(obj) (sends with a fresh ref unless given; resolves {reply,
 * before}: the reply and the pushes that came first). */
export async function wsJson(h, opts = {}) {
  const q = opts.token ? `?token=${encodeURIComponent(opts.token)}` : '';
  const c = await openWS(wsURL(h, `/ws${q}`), ['herald.v1'], { ws: { headers: opts.headers || {} } });
  c.json = async (ms) => {
    const m = await c.next(ms);
    if (!m) return null;
    const text = m.data.toString('utf8');
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new Error(`/ws sent a message that is not JSON (${e.message}): ${text.slice(0, 300)}`);
    }
  };
  c.req = (obj) => c.send(JSON.stringify(obj));
  c.call = async (obj, ms = 5000 * SCALE) => {
    const o = 'ref' in obj ? obj : { ...obj, ref: `r${++refN}` };
    c.req(o);
    const before = [];
    for (;;) {
      const m = await c.json(ms);
      if (!m) throw new Error(`/ws closed (${JSON.stringify(c.closeInfo)}) before the reply to ${JSON.stringify(o).slice(0, 200)}`);
      if (m.op === 'reply' && m.ref === o.ref) return { reply: m, before };
      before.push(m);
    }
  };
  c.welcome = await c.json();
  assert.equal(c.welcome?.op, 'welcome', `/ws welcome: ${JSON.stringify(c.welcome)}`);
  return c;
}

/* ---------------------------------------------------------------- MQTT CONNECT with credentials */

/* CONNECT with user name and/or password (mqttraw's connect() has none). o: {v: 4|5, id,
 * clean=true, keepalive=0, user, pass, will: {topic, payload, qos, retain}, props (v5 Buffer),
 * sessionExpiry (v5 seconds)} */
export function connectCreds(o = {}) {
  const v = o.v ?? 4;
  let flags = o.clean === false ? 0 : 0x02;
  if (o.will) flags |= 0x04 | ((o.will.qos ?? 0) << 3) | (o.will.retain ? 0x20 : 0);
  if (o.user !== undefined) flags |= 0x80;
  if (o.pass !== undefined) flags |= 0x40;
  const ka = Buffer.alloc(2);
  ka.writeUInt16BE(o.keepalive ?? 0);
  const parts = [str('MQTT'), Buffer.from([v, flags]), ka];
  if (v === 5) {
    let props = o.props ?? Buffer.alloc(0);
    if (o.sessionExpiry !== undefined) {
      const b = Buffer.alloc(5);
      b[0] = 0x11;
      b.writeUInt32BE(o.sessionExpiry, 1);
      props = Buffer.concat([props, b]);
    }
    parts.push(varint(props.length), props);
  }
  parts.push(str(o.id ?? ''));
  if (o.will) {
    if (v === 5) parts.push(varint(0));
    parts.push(str(o.will.topic), str(Buffer.from(o.will.payload ?? '')));
  }
  if (o.user !== undefined) parts.push(str(o.user));
  if (o.pass !== undefined) parts.push(str(o.pass));
  return packet(PT.CONNECT, 0, Buffer.concat(parts));
}

/* The reason codes of a SUBACK (v3: return codes). */
export function subackCodes(p, v) {
  let o = 2;
  if (v === 5) {
    let len = 0;
    let mul = 1;
    for (;;) {
      const b = p.body[o++];
      len += (b & 0x7f) * mul;
      mul *= 128;
      if (!(b & 0x80)) break;
    }
    o += len;
  }
  return [...p.body.subarray(o)];
}

/* ---------------------------------------------------------------- servers on other addresses */

/* Starts `herald serve --http ADDR:PORT --mqtt '' --data-dir TMP [flags]` on the given host
 * (e.g. 0.0.0.0) and waits (bounded) until 127.0.0.1:PORT/healthz answers 200. Returns a
 * Herald (stop() as usual). */
export async function startHeraldOn(host, flags = {}) {
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-it-'));
  const args = ['serve', '--http', `${host}:${port}`, '--mqtt', '', '--data-dir', dataDir];
  for (const [k, v] of Object.entries(flags)) args.push(`--${k}`, String(v));
  const proc = spawn(HERALD_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dataDir });
  const h = new Herald(proc, port, dataDir, args);
  const deadline = Date.now() + 10000 * SCALE;
  while (Date.now() < deadline && !h.exited) {
    try {
      if ((await request(h, 'GET', '/healthz', { timeout: 1000 })).status === 200) return h;
    } catch {}
    await sleep(15);
  }
  if (!h.exited) proc.kill('SIGKILL');
  await h.exitPromise;
  fs.rmSync(dataDir, { recursive: true, force: true });
  throw new Error(`herald did not start (${args.join(' ')}): ${JSON.stringify(h.exited)}\n${h.tail()}`);
}

/* Runs `herald serve` with args that should make it refuse to start: resolves {code, signal,
 * output} once it exited (bounded; a server that keeps running is killed and reported as
 * code null). */
export async function serveExpectingExit(args) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-it-'));
  try {
    const proc = spawn(HERALD_BIN, ['serve', '--data-dir', dataDir, '--mqtt', '', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'], cwd: dataDir,
    });
    let out = '';
    proc.stdout.on('data', (d) => (out += d));
    proc.stderr.on('data', (d) => (out += d));
    const exited = new Promise((r) => proc.on('exit', (code, signal) => r({ code, signal })));
    let t;
    const res = await Promise.race([exited, new Promise((r) => (t = setTimeout(() => r(null), 5000 * SCALE)))]);
    clearTimeout(t);
    if (!res) {
      proc.kill('SIGTERM');
      const e = await Promise.race([exited, sleep(5000).then(() => null)]);
      if (!e) {
        proc.kill('SIGKILL');
        await exited;
      }
      return { code: null, signal: null, output: out, stillRunning: true };
    }
    await sleep(20);
    return { ...res, output: out };
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}
