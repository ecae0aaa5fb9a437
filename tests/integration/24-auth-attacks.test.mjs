// Hostile credentials and secure defaults (docs/auth.md, RFC 8725): forged signatures, alg none,
// RS256->HS256 key confusion, unknown kid, exp/nbf/iat, aud/iss, truncated, oversized and
// malformed tokens, bad sub claims - each refused with 401 invalid_token over HTTP (Bearer and
// ?token=), the /ws handshake and MQTT CONNECT, while the server keeps serving a good client;
// tokens and keys never reach the log; open mode refuses a public address without
// allow_anonymous; Host (DNS rebinding), WebSocket Origin, CORS and CSRF checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { withHerald, request, freePort, SCALE } from '../lib/herald.mjs';
import { wsOpen } from '../lib/wsraw.mjs';
import { MqttRaw, PT, connackCode } from '../lib/mqttraw.mjs';
import {
  API_KEY, SECRET, authFlags, bearer, mint, userToken, hmacToken, claims, now, b64u, assert401, tmpFile, keyPublish,
  connectCreds, wsJson, startHeraldOn, serveExpectingExit,
} from '../lib/auth.mjs';
import * as jose from 'jose';

const T = { timeout: 60000 * SCALE };

/* A good client is still served: a valid token reads user/42 (and the process is alive). */
async function stillServes(h, what) {
  assert.equal(h.exited, null, `${what}: herald still running`);
  const good = await userToken('42', h.mintOpts || {});
  const r = await request(h, 'GET', '/sub/user/42?mode=poll', { headers: bearer(good) });
  assert.equal(r.status, 200, `${what}: a good token is still served (${r.status} ${r.text})`);
}

/* tok is refused everywhere a credential is read: 401 invalid_token on poll (Bearer) and SSE
 * (?token=, unless url: false; neither with http: false), 401 on the /ws handshake, CONNACK 0x86 for MQTT v5; then a good
 * client is still served. */
async function refusedEverywhere(h, tok, what, { url = true, http = true } = {}) {
  if (http) assert401(await request(h, 'GET', '/sub/user/42?mode=poll', { headers: bearer(tok) }), `${what} (Bearer)`, true);
  if (url) {
    const q = encodeURIComponent(tok);
    assert401(await request(h, 'GET', `/sub/user/42?token=${q}`), `${what} (?token= SSE)`, true);
    const ws = await wsOpen(h.port, { path: `/ws?token=${q}` });
    ws.conn.close();
    assert401(ws, `${what} (/ws handshake)`, true);
  }
  const m = await MqttRaw.open(h.mqttPort, { v: 5 });
  try {
    m.write(connectCreds({ v: 5, id: 'attacker', user: 'x', pass: tok }));
    const ack = await m.expect(PT.CONNACK);
    assert.equal(connackCode(ack), 0x86, `${what} (MQTT v5 CONNACK 0x${connackCode(ack).toString(16)})`);
  } finally {
    m.destroy();
  }
  await stillServes(h, what);
}

/* the server's setup with a public key (RS256 only), for the key confusion tests */
const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsaPem = rsa.publicKey.export({ type: 'spki', format: 'pem' });

test('forged signatures: another secret, a flipped bit, a signature from another token', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const good = await userToken('42');
    await refusedEverywhere(h, hmacToken(claims('42'), { secret: `${SECRET}-other` }), 'other secret');
    const [a, b, s] = good.split('.');
    const sig = Buffer.from(s, 'base64url');
    sig[0] ^= 0x80;
    await refusedEverywhere(h, `${a}.${b}.${sig.toString('base64url')}`, 'flipped bit');
    const other = await userToken('7');
    await refusedEverywhere(h, `${a}.${other.split('.')[1]}.${s}`, "user 7's payload under 42's signature");
    // escalation: the same token with a widened herald claim, signature kept
    const widened = b64u({ ...JSON.parse(Buffer.from(b, 'base64url')), herald: { subscribe: ['#'] } });
    await refusedEverywhere(h, `${a}.${widened}.${s}`, 'widened claims');
  });
});

test('alg none (and None, NONE, with and without a signature) is refused', T, async () => {
  await withHerald(authFlags(), async (h) => {
    for (const alg of ['none', 'None', 'NONE']) {
      const unsigned = `${b64u({ alg, typ: 'JWT' })}.${b64u(claims('42'))}.`;
      await refusedEverywhere(h, unsigned, `alg ${alg} unsigned`);
      await refusedEverywhere(h, `${unsigned}c2ln`, `alg ${alg} with a signature`);
    }
    // an HMAC signature with alg "HS256 " and an unknown algorithm
    await refusedEverywhere(h, hmacToken(claims('42'), { header: { alg: 'HS256 ' } }), 'alg "HS256 "');
    await refusedEverywhere(h, hmacToken(claims('42'), { header: { alg: 'XS256' } }), 'alg XS256');
  });
});

test('RS256->HS256 key confusion: an HS256 token signed with the RSA public key PEM as secret is refused', T, async () => {
  const pemFile = tmpFile('rsa.pem', rsaPem);
  await withHerald({ 'token-public-key': pemFile, 'api-keys': API_KEY }, async (h) => {
    const rs = await new jose.SignJWT({}).setProtectedHeader({ alg: 'RS256' }).setSubject('42').setExpirationTime('1h')
      .sign(rsa.privateKey);
    assert.equal((await request(h, 'GET', '/sub/user/42?mode=poll', { headers: bearer(rs) })).status, 200, 'RS256 accepted');
    const der = rsa.publicKey.export({ type: 'spki', format: 'der' });
    const pkcs1 = rsa.publicKey.export({ type: 'pkcs1', format: 'pem' });
    for (const [what, secret] of [['PEM', rsaPem], ['PEM without newline', rsaPem.trim()], ['DER', der], ['PKCS#1 PEM', pkcs1]]) {
      for (const [alg, hash] of [['HS256', 'sha256'], ['HS512', 'sha512']]) {
        const t = hmacToken(claims('42'), { header: { alg, typ: 'JWT' }, secret, hash });
        assert401(await request(h, 'GET', '/sub/user/42?mode=poll', { headers: bearer(t) }), `${alg} with the ${what}`, true);
      }
    }
    const t = hmacToken(claims('42'), { secret: rsaPem });
    h.mintOpts = { privateKey: tmpFile('rsa-priv.pem', rsa.privateKey.export({ type: 'pkcs8', format: 'pem' })) };
    await refusedEverywhere(h, t, 'HS256 with the PEM');
  });
});

test('JWKS: a token naming an unknown kid is refused, the known kid accepted', T, async () => {
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...(await jose.exportJWK(ec.publicKey)), kid: 'good', alg: 'ES256' };
  const file = tmpFile('jwks.json', JSON.stringify({ keys: [jwk] }));
  await withHerald({ 'token-jwks-file': file, 'api-keys': API_KEY }, async (h) => {
    const sign = (kid) => new jose.SignJWT({}).setProtectedHeader({ alg: 'ES256', kid }).setSubject('42').setExpirationTime('1h')
      .sign(ec.privateKey);
    const ok = await sign('good');
    assert.equal((await request(h, 'GET', '/sub/user/42?mode=poll', { headers: bearer(ok) })).status, 200, 'kid good');
    h.mintOpts = { privateKey: tmpFile('ec.pem', ec.privateKey.export({ type: 'pkcs8', format: 'pem' })), kid: 'good' };
    await refusedEverywhere(h, await sign('other'), 'unknown kid');
    await refusedEverywhere(h, await sign('goo'), 'kid prefix');
    await refusedEverywhere(h, await sign('good\u0000'), 'kid with NUL');
  });
});

test('exp, nbf and iat: expired, not yet valid and issued in the future are refused (30 s leeway honoured)', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const t = now();
    await refusedEverywhere(h, hmacToken(claims('42', { exp: t - 120 })), 'expired 120 s ago');
    await refusedEverywhere(h, hmacToken(claims('42', { nbf: t + 300 })), 'nbf in 300 s');
    await refusedEverywhere(h, hmacToken(claims('42', { iat: t + 300 })), 'iat in 300 s');
    await refusedEverywhere(h, hmacToken(claims('42', { exp: String(t + 3600) })), 'exp as a string');
    // within the leeway: accepted
    for (const c of [{ exp: t - 5 }, { nbf: t + 5 }, { iat: t + 5 }]) {
      const r = await request(h, 'GET', '/sub/user/42?mode=poll', { headers: bearer(hmacToken(claims('42', { ...c, herald: { subscribe: ['user/{sub}/#'] } }))) });
      assert.equal(r.status, 200, `${JSON.stringify(c)} is within the leeway: ${r.status} ${r.headers['www-authenticate']}`);
    }
  });
});

test('token_audience and token_issuer: wrong or missing aud / iss refused; herald token with the same config accepted', T, async () => {
  const cfg = { 'token-audience': 'herald', 'token-issuer': 'https://app.example' };
  await withHerald(authFlags(cfg), async (h) => {
    h.mintOpts = { config: ['--token-audience', 'herald', '--token-issuer', 'https://app.example'] };
    const good = await userToken('42', h.mintOpts);
    assert.equal((await request(h, 'GET', '/sub/user/42?mode=poll', { headers: bearer(good) })).status, 200);
    const arr = hmacToken(claims('42', { iss: 'https://app.example', aud: ['other', 'herald'] }));
    assert.equal((await request(h, 'GET', '/sub/user/42?mode=poll', { headers: bearer(arr) })).status, 200, 'aud array containing herald');
    const iss = 'https://app.example';
    await refusedEverywhere(h, hmacToken(claims('42', { iss, aud: 'other' })), 'wrong aud');
    await refusedEverywhere(h, hmacToken(claims('42', { iss, aud: ['a', 'b'] })), 'aud array without herald');
    await refusedEverywhere(h, hmacToken(claims('42', { iss })), 'no aud');
    await refusedEverywhere(h, hmacToken(claims('42', { iss: 'https://evil.example', aud: 'herald' })), 'wrong iss');
    await refusedEverywhere(h, hmacToken(claims('42', { iss: 'https://app.example/', aud: 'herald' })), 'iss with a slash');
    await refusedEverywhere(h, hmacToken(claims('42', { aud: 'herald' })), 'no iss');
    // `herald token` without the config prints a token this server refuses
    await refusedEverywhere(h, await userToken('42'), 'token without iss/aud');
  });
});

test('truncated tokens are refused', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const good = await userToken('42');
    const [a, b, s] = good.split('.');
    for (const [what, t] of [
      ['no signature', `${a}.${b}.`], ['two parts', `${a}.${b}`], ['one part', a], ['half a signature', `${a}.${b}.${s.slice(0, 21)}`],
      ['one char short', good.slice(0, -1)], ['payload cut', `${a}.${b.slice(0, 10)}.${s}`], ['four parts', `${good}.${s}`],
      ['empty parts', '..'], ['dot', '.'],
    ]) {
      await refusedEverywhere(h, t, what);
    }
  });
});

test('oversized tokens (> token_max_length) are refused; one just under is accepted', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const big = (n) => {
      let pad = 'x'.repeat(n);
      let t = hmacToken(claims('42', { pad, herald: { subscribe: ['user/{sub}/#'] } }));
      pad = pad.slice(0, pad.length - Math.ceil((t.length - n) * 3 / 4));
      t = hmacToken(claims('42', { pad, herald: { subscribe: ['user/{sub}/#'] } }));
      return t;
    };
    const under = big(8000);
    assert.ok(under.length <= 8192, `${under.length}`);
    const r = await request(h, 'GET', '/sub/user/42?mode=poll', { headers: bearer(under) });
    assert.equal(r.status, 200, `an ${under.length}-byte token is accepted: ${r.headers['www-authenticate']}`);
    const over = big(8300);
    assert.ok(over.length > 8192, `${over.length}`);
    await refusedEverywhere(h, over, `a ${over.length}-byte token`, { url: false });
    // 60 KB: over max_head for HTTP (431), an MQTT password for the token check
    const huge = big(60000);
    assert.equal((await request(h, 'GET', '/sub/user/42?mode=poll', { headers: bearer(huge) })).status, 431);
    await refusedEverywhere(h, huge, 'a 60 KB token', { url: false, http: false });
  });
  await withHerald(authFlags({ 'token-max-length': '1k' }), async (h) => {
    const t = hmacToken(claims('42', { pad: 'y'.repeat(1200) }));
    await refusedEverywhere(h, t, 'token_max_length 1k');
  });
});

test('malformed base64url and JSON, duplicate members, crit and typ are refused', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const hdr = { alg: 'HS256', typ: 'JWT' };
    const signRaw = (hb, pb) => `${hb}.${pb}.${crypto.createHmac('sha256', SECRET).update(`${hb}.${pb}`).digest('base64url')}`;
    // padded base64url, standard base64 alphabet, whitespace, an impossible length
    let c = claims('42');
    let pb = b64u(c);
    for (let i = 0; !/[-_]/.test(pb) || pb.length % 4 === 0; i++) {
      c = claims('42', { f: '?>~'.repeat(i + 1) });
      pb = b64u(c);
    }
    const hb = b64u(hdr);
    assert.equal(signRaw(hb, pb).length > 0, true);
    await refusedEverywhere(h, signRaw(hb, `${pb}${'='.repeat(4 - (pb.length % 4))}`), 'padded payload');
    await refusedEverywhere(h, signRaw(hb, pb.replace(/-/g, '+').replace(/_/g, '/')), 'standard base64 alphabet');
    await refusedEverywhere(h, signRaw(hb, `${pb.slice(0, 8)} ${pb.slice(8)}`), 'a space in the payload');
    await refusedEverywhere(h, signRaw(hb, `${pb}A`.slice(0, pb.length - (pb.length % 4) + 1)), 'impossible length');
    await refusedEverywhere(h, signRaw(hb, `${pb.slice(0, 4)}*${pb.slice(5)}`), "a '*' in the payload");
    // JSON
    await refusedEverywhere(h, hmacToken('{"sub":"42",'), 'truncated JSON');
    await refusedEverywhere(h, hmacToken(`{"sub":"7","sub":"42","exp":${now() + 3600}}`), 'duplicate sub');
    await refusedEverywhere(h, hmacToken(`["sub","42"]`), 'payload an array');
    await refusedEverywhere(h, hmacToken('"42"'), 'payload a string');
    await refusedEverywhere(h, hmacToken(claims('42'), { header: '{"alg":"HS256","alg":"none"}' }), 'duplicate alg');
    await refusedEverywhere(h, hmacToken(claims('42'), { header: 'not json' }), 'header not JSON');
    await refusedEverywhere(h, hmacToken(claims('42'), { header: { alg: 'HS256', crit: ['exp'] } }), 'crit');
    await refusedEverywhere(h, hmacToken(claims('42'), { header: { alg: 'HS256', typ: 'at+jwt' } }), 'typ at+jwt');
    await refusedEverywhere(h, hmacToken(`{"sub":"42","exp":${now() + 3600}}\u0000`), 'NUL after the JSON');
    // typ JWT, absent: accepted
    for (const header of [{ alg: 'HS256' }, { alg: 'HS256', typ: 'JWT' }]) {
      const t = hmacToken(claims('42', { herald: { subscribe: ['user/{sub}/#'] } }), { header });
      assert.equal((await request(h, 'GET', '/sub/user/42?mode=poll', { headers: bearer(t) })).status, 200, JSON.stringify(header));
    }
  });
});

test("sub missing, empty, not a string, too long, or with '/', '+', '#' is refused", T, async () => {
  await withHerald(authFlags(), async (h) => {
    const e = now() + 3600;
    await refusedEverywhere(h, hmacToken({ exp: e }), 'no sub');
    for (const sub of ['', 'a/b', '../7', '42/#', '+', '#', '{sub}', 'a b', 'x'.repeat(129), 'é', 42, null, ['42']]) {
      await refusedEverywhere(h, hmacToken({ sub, exp: e, herald: { subscribe: ['user/+/#'] } }), `sub ${JSON.stringify(sub).slice(0, 20)}`);
    }
    // a sub of 128 safe characters is fine
    const ok = hmacToken({ sub: 'A-z_0.9~:@=!'.padEnd(128, 'k'), exp: e });
    assert.equal((await request(h, 'GET', `/sub/user/${'A-z_0.9~:@=!'.padEnd(128, 'k')}?mode=poll`, { headers: bearer(ok) })).status, 200);
  });
});

test('tokens and API keys never reach the log: good and refused tokens in URLs, headers, /ws and MQTT', T, async () => {
  await withHerald(authFlags({ 'log-level': 'debug' }), async (h) => {
    const good = await userToken('42');
    const bad = `${good.slice(0, -6)}AAAAAA`;
    const other = await userToken('7');
    for (const t of [good, bad, other]) {
      for (const mode of ['poll', 'sse', 'iframe']) {
        const r = await request(h, 'GET', `/sub/user/42?mode=${mode}&token=${t}`, { timeout: 300 }).catch(() => null);
        if (r && t === bad) assert.equal(r.status, 401);
      }
      await request(h, 'GET', `/sub/user/42?mode=nonsense&token=${t}`);
      await request(h, 'GET', `/nowhere?token=${t}`);
      await request(h, 'GET', `/sub/user/42?mode=poll`, { headers: { Cookie: `herald_token=${t}` } });
      const ws = await wsOpen(h.port, { path: `/sub/user/42?token=${t}` });
      ws.conn.close();
      const m = await MqttRaw.open(h.mqttPort, { v: 5 });
      m.write(connectCreds({ v: 5, id: 'log', user: 'x', pass: t }));
      await m.expect(PT.CONNACK);
      m.destroy();
    }
    const c = await wsJson(h);
    await c.call({ op: 'auth', token: bad }).catch(() => {});
    c.close();
    await request(h, 'POST', '/pub/x', { headers: { ...bearer(`${API_KEY}-wrong`), 'Content-Length': '1' }, body: 'x' });
    await keyPublish(h, 'x', 'y');
    await h.stop();
    const log = h.out;
    assert.match(log, /refused credential/, 'refusals are logged');
    for (const [what, secret] of [['good token', good], ['bad token', bad], ['other token', other], ['API key', API_KEY]]) {
      for (const part of secret.split('.')) {
        if (part.length >= 16) assert.ok(!log.includes(part), `${what} (part ${part.slice(0, 12)}...) appears in the log`);
      }
      assert.ok(!log.includes(secret.slice(0, 20)), `${what} prefix appears in the log`);
    }
    assert.ok(!log.includes(SECRET), 'the HMAC secret appears in the log');
  });
});

/* ---------------------------------------------------------------- secure defaults */

test('open mode refuses a non-loopback address unless allow_anonymous = true; access control starts there', T, async () => {
  const port = await freePort();
  const r = await serveExpectingExit(['--http', `0.0.0.0:${port}`]);
  assert.ok(!r.stillRunning, `herald must not start open on 0.0.0.0: ${r.output}`);
  assert.notEqual(r.code, 0, r.output);
  assert.match(r.output, /allow_anonymous/, r.output);
  const short = await serveExpectingExit(['--http', `127.0.0.1:${port}`, '--token-hmac-secret', 'too-short']);
  assert.ok(!short.stillRunning && short.code !== 0, `a secret under 32 bytes is refused: ${short.output}`);
  for (const flags of [{ 'allow-anonymous': 'true' }, { 'token-hmac-secret': SECRET }]) {
    const h = await startHeraldOn('0.0.0.0', flags);
    try {
      assert.equal((await request(h, 'GET', '/healthz')).status, 200);
      const p = await request(h, 'GET', '/sub/x?mode=poll');
      assert.equal(p.status, flags['allow-anonymous'] ? 200 : 401, JSON.stringify(flags));
    } finally {
      await h.stop();
    }
  }
});

test('DNS rebinding: open on loopback, a foreign Host is 403; loopback names and allowed_hosts are served', T, async () => {
  await withHerald(async (h) => {
    const get = (host) => request(h, 'GET', '/sub/x?mode=poll', { headers: { Host: host } });
    assert.equal((await get('evil.example')).status, 403);
    assert.equal((await get(`evil.example:${h.port}`)).status, 403);
    assert.equal((await get('127.0.0.1.evil.example')).status, 403);
    for (const ok of [`127.0.0.1:${h.port}`, `localhost:${h.port}`, 'localhost', `app.localhost:${h.port}`, `[::1]:${h.port}`, '127.1.2.3']) {
      assert.equal((await get(ok)).status, 200, `Host ${ok}`);
    }
    const pub = await request(h, 'POST', '/pub/x', { headers: { Host: 'evil.example', 'Content-Length': '1' }, body: 'x' });
    assert.equal(pub.status, 403, 'publish with a foreign Host');
  });
  await withHerald({ 'allowed-hosts': 'evil.example' }, async (h) => {
    assert.equal((await request(h, 'GET', '/sub/x?mode=poll', { headers: { Host: 'evil.example' } })).status, 200);
    assert.equal((await request(h, 'GET', '/sub/x?mode=poll', { headers: { Host: 'other.example' } })).status, 403);
    assert.equal((await request(h, 'GET', '/sub/x?mode=poll', { headers: { Host: `127.0.0.1:${h.port}` } })).status, 200);
  });
});

test('WebSocket Origin: foreign 403 by default, same origin 101, listed in ws_origins 101', T, async () => {
  await withHerald(async (h) => {
    const open = async (origin, p = '/sub/x') => {
      const r = await wsOpen(h.port, { path: p, headers: origin ? { Origin: origin } : {} });
      r.conn.close();
      return r.status;
    };
    for (const p of ['/sub/x', '/ws', '/stomp', '/mqtt']) {
      assert.equal(await open('https://evil.example', p), 403, `foreign Origin on ${p}`);
    }
    assert.equal(await open(`http://127.0.0.1:${h.port}`), 101, 'same origin');
    assert.equal(await open(`http://127.0.0.1:${h.port + 1}`), 403, 'another port is another origin');
    assert.equal(await open(null), 101, 'no Origin (not a browser)');
  });
  await withHerald({ 'ws-origins': 'https://app.example' }, async (h) => {
    const r = await wsOpen(h.port, { path: '/sub/x', headers: { Origin: 'https://app.example' } });
    r.conn.close();
    assert.equal(r.status, 101, 'listed origin');
    const f = await wsOpen(h.port, { path: '/sub/x', headers: { Origin: 'https://evil.example' } });
    f.conn.close();
    assert.equal(f.status, 403, 'unlisted origin');
  });
});

test('CORS preflight: a listed origin gets Authorization and credentials; with "*" it does not', T, async () => {
  const preflight = (h, origin) => request(h, 'OPTIONS', '/pub/x', {
    headers: { Origin: origin, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization, content-type' },
  });
  await withHerald(authFlags({ 'cors-origins': 'https://app.example' }), async (h) => {
    const r = await preflight(h, 'https://app.example');
    assert.ok(r.status === 204 || r.status === 200, `preflight ${r.status}`);
    assert.equal(r.headers['access-control-allow-origin'], 'https://app.example');
    assert.equal(r.headers['access-control-allow-credentials'], 'true');
    assert.match(r.headers['access-control-allow-headers'] || '', /authorization/i);
    assert.equal((await preflight(h, 'https://evil.example')).status, 403, 'unlisted origin');
  });
  await withHerald(authFlags({ 'cors-origins': '*' }), async (h) => {
    const r = await preflight(h, 'https://any.example');
    assert.ok(r.status === 204 || r.status === 200, `preflight ${r.status}`);
    assert.ok(r.headers['access-control-allow-origin'], 'an allowed origin');
    assert.equal(r.headers['access-control-allow-credentials'], undefined, 'no credentials with *');
    assert.doesNotMatch(r.headers['access-control-allow-headers'] || '', /authorization/i, 'no Authorization with *');
  });
});

test('CSRF: POST /pub from a foreign Origin is 403; from an origin listed in cors_origins 200', T, async () => {
  const post = (h, origin, extra = {}) => request(h, 'POST', '/pub/csrf', {
    headers: { Origin: origin, 'Content-Length': '1', 'Content-Type': 'text/plain', ...extra }, body: 'x',
  });
  await withHerald({ 'cors-origins': 'https://app.example' }, async (h) => {
    assert.equal((await post(h, 'https://evil.example')).status, 403, 'foreign origin');
    assert.equal((await post(h, 'https://app.example')).status, 200, 'listed origin');
    assert.equal((await post(h, `http://127.0.0.1:${h.port}`)).status, 200, 'same origin');
    assert.equal((await request(h, 'POST', '/pub/csrf', { headers: { 'Content-Length': '1' }, body: 'x' })).status, 200, 'no Origin');
    const info = await request(h, 'GET', '/channels/csrf');
    assert.equal(info.json().last_id, '3', 'the refused POST stored nothing');
  });
  await withHerald({ 'cors-origins': '*' }, async (h) => {
    assert.equal((await post(h, 'https://any.example')).status, 200, '* without a cookie');
    assert.equal((await post(h, 'https://any.example', { Cookie: 'session=1' })).status, 403, '* with a cookie');
  });
  // with access control on: the cookie token cannot be used cross-site
  await withHerald(authFlags({ 'cors-origins': 'https://app.example' }), async (h) => {
    const tok = await mint({ sub: '42', publish: ['csrf'] });
    assert.equal((await post(h, 'https://evil.example', { Cookie: `herald_token=${tok}` })).status, 403, 'cookie from evil');
    assert.equal((await post(h, 'https://app.example', { Cookie: `herald_token=${tok}` })).status, 200, 'cookie from app');
  });
});
