// Access control over HTTP (docs/auth.md) with real clients: anonymous refusals on every HTTP
// subscribe transport and POST /pub; the token as ?token= (the `eventsource` package), as
// Authorization: Bearer (curl) and as the herald_token cookie (curl); 403 for another user's
// channel; API keys for publishing and the admin endpoints (/metrics, /channels); a permissions
// file applied across SSE, poll, WebSocket /sub, /ws and POST /pub; allow_anonymous without a
// permissions file; tokens signed by `jose` (RS256, PS256, ES256, ES384, EdDSA) accepted through
// token_public_key (PEM) and token_jwks_file (JWKS with kid); SSE and iframe token expiry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  withHerald, request, run, waitFor, openSSE, openIframe, loadEventSource, parseMetrics, SCALE,
} from '../lib/herald.mjs';
import { wsOpen } from '../lib/wsraw.mjs';
import {
  API_KEY, SECRET, authFlags, bearer, mint, userToken, keyPublish, waitSubs, assert401, assert403, tmpFile, wsJson,
  payloadOf,
} from '../lib/auth.mjs';
import * as jose from 'jose';

const T = { timeout: 60000 * SCALE };
const EventSource = loadEventSource();

/* curl GET with extra args; returns {status, body} (curl -w appends the status line). */
async function curl(h, p, args = []) {
  const r = await run('curl', ['-s', '-S', '--max-time', String(10 * SCALE), '-w', '\n%{http_code}', ...args, h.url(p)]);
  assert.equal(r.code, 0, `curl ${p}: ${r.stderr}`);
  const text = r.stdout.toString();
  const i = text.lastIndexOf('\n');
  return { status: Number(text.slice(i + 1)), body: text.slice(0, i) };
}

/* ---------------------------------------------------------------- anonymous and users */

test('anonymous: 401 with a Bearer challenge on SSE, poll, longpoll, iframe, WebSocket /sub and POST /pub', T, async () => {
  await withHerald(authFlags(), async (h) => {
    for (const mode of ['sse', 'poll', 'longpoll', 'iframe']) {
      const r = await request(h, 'GET', `/sub/user/42?mode=${mode}`);
      assert401(r, `anonymous ${mode}`);
    }
    const sse = await request(h, 'GET', '/sub/user/42', { headers: { Accept: 'text/event-stream' } });
    assert401(sse, 'anonymous SSE by Accept');
    const ws = await wsOpen(h.port, { path: '/sub/user/42' });
    ws.conn.close();
    assert401(ws, 'anonymous WebSocket /sub');
    const pub = await request(h, 'POST', '/pub/user/42', { headers: { 'Content-Length': '2' }, body: 'hi' });
    assert401(pub, 'anonymous POST /pub');
    // nothing was published
    const info = await request(h, 'GET', '/channels/user/42', { headers: bearer(API_KEY) });
    assert.equal(info.json().last_id, '0', 'the refused publish stored nothing');
    // /healthz stays open
    assert.equal((await request(h, 'GET', '/healthz')).status, 200);
  });
});

test('user 42 with ?token= in an EventSource (eventsource package) receives user/42 messages', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const tok = await userToken('42');
    const es = new EventSource(h.url(`/sub/user/42?token=${tok}`));
    const got = [];
    es.addEventListener('message', (e) => got.push(e.data));
    try {
      await waitFor(() => es.readyState === EventSource.OPEN, 5000 * SCALE, 'EventSource open');
      await waitSubs(h, 'user/42');
      await keyPublish(h, 'user/42', 'for 42');
      await keyPublish(h, 'user/42', 'again');
      await waitFor(() => got.length >= 2, 5000 * SCALE, 'two messages');
      assert.deepEqual(got, ['for 42', 'again']);
    } finally {
      es.close();
    }
  });
});

test('curl with Authorization: Bearer and with the herald_token cookie reads user/42; another token cannot', T, async () => {
  await withHerald(authFlags(), async (h) => {
    await keyPublish(h, 'user/42', 'hello 42');
    const tok = await userToken('42');
    const a = await curl(h, '/sub/user/42?mode=poll&last_id=0', ['-H', `Authorization: Bearer ${tok}`]);
    assert.equal(a.status, 200, a.body);
    assert.deepEqual(JSON.parse(a.body).messages.map((m) => m.data), ['hello 42']);
    const c = await curl(h, '/sub/user/42?mode=poll&last_id=0', ['-b', `herald_token=${tok}`]);
    assert.equal(c.status, 200, c.body);
    assert.deepEqual(JSON.parse(c.body).messages.map((m) => m.data), ['hello 42']);
    // the cookie among others
    const c2 = await curl(h, '/sub/user/42?mode=poll&last_id=0', ['-H', `Cookie: theme=dark; herald_token=${tok}; x=1`]);
    assert.equal(c2.status, 200, c2.body);
    const t7 = await userToken('7');
    const other = await curl(h, '/sub/user/42?mode=poll&last_id=0', ['-H', `Authorization: Bearer ${t7}`]);
    assert.equal(other.status, 403, `user 7 on user/42: ${other.body}`);
  });
});

test('user 42 is refused user/7 with 403 insufficient_scope on every subscribe transport and POST /pub', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const tok = await userToken('42');
    for (const mode of ['sse', 'poll', 'longpoll', 'iframe']) {
      assert403(await request(h, 'GET', `/sub/user/7?mode=${mode}`, { headers: bearer(tok) }), `${mode} user/7`);
      assert403(await request(h, 'GET', `/sub/user/7/inbox?mode=${mode}&token=${tok}`), `${mode} user/7/inbox`);
    }
    // a multi-channel subscription with one forbidden channel is refused as a whole
    assert403(await request(h, 'GET', '/sub/user/42,user/7?mode=poll', { headers: bearer(tok) }), 'user/42,user/7');
    const ws = await wsOpen(h.port, { path: `/sub/user/7?token=${tok}` });
    ws.conn.close();
    assert.equal(ws.status, 403, 'WebSocket /sub/user/7');
    // the token grants no publish
    const pub = await request(h, 'POST', '/pub/user/42', { headers: { ...bearer(tok), 'Content-Length': '1' }, body: 'x' });
    assert403(pub, 'POST /pub/user/42 by a token without publish');
    // and its own channel works
    assert.equal((await request(h, 'GET', '/sub/user/42/inbox?mode=poll', { headers: bearer(tok) })).status, 200);
    assert.match(h.out, /auth: 127\.0\.0\.1:\d+ \(user 42\): may not subscribe to 'user\/7'/, 'the refusal is logged');
  });
});

test('API key publishes with Bearer; a wrong key is 401 invalid_token', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const j = await keyPublish(h, 'anything/at/all', 'from the backend');
    assert.equal(j.id, '1');
    const bad = await request(h, 'POST', '/pub/anything/at/all', {
      headers: { ...bearer(`${API_KEY}x`), 'Content-Length': '3' }, body: 'bad',
    });
    assert401(bad, 'wrong API key', true);
    const basic = await request(h, 'POST', '/pub/anything/at/all', {
      headers: { Authorization: `Basic ${Buffer.from(`u:${API_KEY}`).toString('base64')}`, 'Content-Length': '3' }, body: 'bad',
    });
    assert.equal(basic.status, 401, 'a non-Bearer Authorization is refused');
    // curl publishing with the key
    const c = await run('curl', ['-s', '-w', '\n%{http_code}', '-H', `Authorization: Bearer ${API_KEY}`, '--data-binary', 'curl',
      h.url('/pub/anything/at/all')]);
    assert.match(c.stdout.toString(), /"id":"2"[\s\S]*\n200$/);
    const info = await request(h, 'GET', '/channels/anything/at/all', { headers: bearer(API_KEY) });
    assert.equal(info.json().last_id, '2', 'only the two good publishes were stored');
  });
});

test('GET /metrics needs the API key (401 anonymous, 403 for a user) unless metrics_public = true', T, async () => {
  await withHerald(authFlags(), async (h) => {
    assert.equal((await request(h, 'GET', '/metrics')).status, 401, 'anonymous /metrics');
    const tok = await userToken('42');
    assert.equal((await request(h, 'GET', '/metrics', { headers: bearer(tok) })).status, 403, 'user /metrics');
    const ok = await request(h, 'GET', '/metrics', { headers: bearer(API_KEY) });
    assert.equal(ok.status, 200);
    const m = parseMetrics(ok.text);
    assert.ok((m.get('herald_auth_denied_total') ?? 0) >= 2, `herald_auth_denied_total counts the refusals: ${m.get('herald_auth_denied_total')}`);
    assert.ok(m.has('herald_auth_tokens_total{result="ok"}'), 'herald_auth_tokens_total{result="ok"} present');
  });
  await withHerald(authFlags({ 'metrics-public': 'true' }), async (h) => {
    const r = await request(h, 'GET', '/metrics');
    assert.equal(r.status, 200, 'metrics_public: anonymous /metrics');
    assert.match(r.text, /herald_auth_denied_total/);
    // still no channel details for anonymous clients
    assert.equal((await request(h, 'GET', '/channels/user/42')).status, 401);
  });
});

test('GET /channels/{ch}: 200 for the API key and for a subscriber of ch; 403 for another user, 401 anonymous', T, async () => {
  await withHerald(authFlags(), async (h) => {
    await keyPublish(h, 'user/42/inbox', 'x');
    const t42 = await userToken('42');
    const t7 = await userToken('7');
    const k = await request(h, 'GET', '/channels/user/42/inbox', { headers: bearer(API_KEY) });
    assert.equal(k.status, 200);
    assert.equal(k.json().last_id, '1');
    const u = await request(h, 'GET', '/channels/user/42/inbox', { headers: bearer(t42) });
    assert.equal(u.status, 200, `user 42 may read its channel's details: ${u.text}`);
    assert.equal(u.json().last_id, '1');
    assert.equal((await request(h, 'GET', '/channels/user/42/inbox', { headers: bearer(t7) })).status, 403, 'user 7');
    assert.equal((await request(h, 'GET', '/channels/user/42/inbox')).status, 401, 'anonymous');
  });
});

test('a permissions file applies across SSE, poll, WebSocket /sub, /ws and POST /pub', T, async () => {
  const perms = tmpFile('perms', [
    '# test rules',
    'anonymous  subscribe  public/#',
    '',
    'user       pubsub     chat/+',
    'user:ops   publish    alerts/#',
    '',
  ].join('\n'));
  await withHerald(authFlags({ 'permissions-file': perms }), async (h) => {
    const t42 = await mint({ sub: '42' }); // no herald claim: the file decides
    const ops = await mint({ sub: 'ops' });
    // anonymous: public/# yes (SSE, poll, WebSocket), chat no, publish no
    const sse = await openSSE(h, '/sub/public/news');
    assert.equal(sse.status, 200, 'anonymous SSE on public/news');
    sse.close();
    assert.equal((await request(h, 'GET', '/sub/public/a/b?mode=poll')).status, 200, 'anonymous poll public/a/b');
    const ws = await wsOpen(h.port, { path: '/sub/public/news' });
    ws.conn.close();
    assert.equal(ws.status, 101, 'anonymous WebSocket /sub/public/news');
    assert401(await request(h, 'GET', '/sub/chat/room?mode=poll'), 'anonymous chat/room');
    assert.equal((await request(h, 'GET', '/sub/public?mode=poll')).status, 200, 'anonymous on "public" itself (public/# matches it)');
    assert401(await request(h, 'GET', '/sub/publicity?mode=poll'), 'anonymous on publicity');
    assert401(await request(h, 'POST', '/pub/public/news', { headers: { 'Content-Length': '1' }, body: 'x' }), 'anonymous publish');
    // user: chat/+ both ways, not chat/a/b; the anonymous rules are not a user's (docs/auth.md: a token gets
    // the file's `user` and `user:SUB` rules)
    assert403(await request(h, 'GET', '/sub/public/news?mode=poll', { headers: bearer(t42) }), 'user 42 on public/news');
    assert.equal((await request(h, 'GET', '/sub/chat/room?mode=poll', { headers: bearer(t42) })).status, 200);
    assert403(await request(h, 'GET', '/sub/chat/room/deep?mode=poll', { headers: bearer(t42) }), 'user chat/room/deep');
    const up = await request(h, 'POST', '/pub/chat/room', { headers: { ...bearer(t42), 'Content-Length': '4' }, body: 'hi42' });
    assert.equal(up.status, 200, `user publishes to chat/room: ${up.text}`);
    assert403(await request(h, 'POST', '/pub/alerts/fire', { headers: { ...bearer(t42), 'Content-Length': '1' }, body: 'x' }),
      'user 42 on alerts/fire');
    // user:ops: alerts/# publish (and the user rules), no alerts subscribe
    const op = await request(h, 'POST', '/pub/alerts/fire/now', { headers: { ...bearer(ops), 'Content-Length': '4' }, body: 'fire' });
    assert.equal(op.status, 200, `ops publishes to alerts/fire/now: ${op.text}`);
    assert403(await request(h, 'GET', '/sub/alerts/fire/now?mode=poll', { headers: bearer(ops) }), 'ops subscribe alerts');
    // the user channel without a rule
    assert.equal((await request(h, 'GET', '/sub/user/42?mode=poll', { headers: bearer(t42) })).status, 200, 'user_channel');
    // /ws: the same rules
    const c = await wsJson(h, { token: t42 });
    try {
      let { reply } = await c.call({ op: 'subscribe', channel: 'chat/room' });
      assert.equal(reply.ok, true, JSON.stringify(reply));
      ({ reply } = await c.call({ op: 'subscribe', channel: 'alerts/x' }));
      assert.equal(reply.ok, false);
      assert.equal(reply.error.code, 'forbidden');
      ({ reply } = await c.call({ op: 'publish', channel: 'chat/room', data: 'via ws' }));
      assert.equal(reply.ok, true, JSON.stringify(reply));
      ({ reply } = await c.call({ op: 'publish', channel: 'public/news', data: 'no' }));
      assert.equal(reply.ok, false);
      assert.equal(reply.error.code, 'forbidden');
    } finally {
      c.close();
    }
    const info = await request(h, 'GET', '/sub/chat/room?mode=poll&last_id=0', { headers: bearer(t42) });
    assert.deepEqual(info.json().messages.map((m) => m.data), ['hi42', 'via ws']);
  });
});

test('allow_anonymous = true without a permissions file: anonymous clients subscribe and publish; admin stays closed', T, async () => {
  await withHerald(authFlags({ 'allow-anonymous': 'true' }), async (h) => {
    const sse = await openSSE(h, '/sub/anything');
    try {
      assert.equal(sse.status, 200);
      await waitSubs(h, 'anything');
      const r = await request(h, 'POST', '/pub/anything', { headers: { 'Content-Length': '4' }, body: 'anon' });
      assert.equal(r.status, 200, `anonymous publish: ${r.text}`);
      const e = await sse.next();
      assert.equal(e.data, 'anon');
    } finally {
      sse.close();
    }
    assert.equal((await request(h, 'GET', '/metrics')).status, 401, 'metrics still need the key');
    // a bad credential is not downgraded to anonymous
    const bad = await request(h, 'GET', '/sub/anything?mode=poll', { headers: bearer('not.a.token') });
    assert401(bad, 'bad token with allow_anonymous', true);
  });
});

/* ---------------------------------------------------------------- jose: asymmetric tokens */

const ALGS = [
  ['RS256', 'rsa', { modulusLength: 2048 }],
  ['PS256', 'rsa', { modulusLength: 2048 }],
  ['ES256', 'ec', { namedCurve: 'P-256' }],
  ['ES384', 'ec', { namedCurve: 'P-384' }],
  ['EdDSA', 'ed25519', {}],
];
let keysCache = null;
function keyPairs() {
  if (!keysCache) keysCache = ALGS.map(([alg, type, o]) => ({ alg, ...crypto.generateKeyPairSync(type, o) }));
  return keysCache;
}

const joseToken = (k, { sub = '42', kid, ttl = '1h', extra = {} } = {}) =>
  new jose.SignJWT({ herald: { subscribe: ['user/{sub}/#'] }, ...extra })
    .setProtectedHeader(kid ? { alg: k.alg, kid } : { alg: k.alg })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(ttl)
    .sign(k.privateKey);

test('token_public_key (PEM from jose exportSPKI): jose RS256, PS256, ES256, ES384 and EdDSA tokens are accepted', T, async () => {
  const ks = keyPairs();
  const pems = await Promise.all(ks.map((k) => jose.exportSPKI(k.publicKey)));
  const pemFile = tmpFile('pub.pem', pems.join('\n'));
  await withHerald({ 'token-public-key': pemFile, 'api-keys': API_KEY }, async (h) => {
    await keyPublish(h, 'user/42/a', 'signed');
    for (const k of ks) {
      const tok = await joseToken(k);
      const r = await request(h, 'GET', '/sub/user/42/a?mode=poll&last_id=0', { headers: bearer(tok) });
      assert.equal(r.status, 200, `${k.alg}: ${r.status} ${r.text} ${r.headers['www-authenticate']}`);
      assert.equal(r.json().messages[0].data, 'signed');
      // the same token with one signature byte changed is refused
      const parts = tok.split('.');
      const sig = Buffer.from(parts[2], 'base64url');
      sig[sig.length >> 1] ^= 0x01;
      const forged = `${parts[0]}.${parts[1]}.${sig.toString('base64url')}`;
      assert401(await request(h, 'GET', '/sub/user/42/a?mode=poll', { headers: bearer(forged) }), `${k.alg} forged`, true);
    }
    // an HS256 token is not accepted (no HMAC secret configured)
    const hs = await mint({ sub: '42', subscribe: ['user/{sub}/#'] });
    assert401(await request(h, 'GET', '/sub/user/42/a?mode=poll', { headers: bearer(hs) }), 'HS256 without a secret', true);
    // `herald token --private-key` signs with a PEM private key the same server accepts
    const ec = ks.find((k) => k.alg === 'ES256');
    const priv = tmpFile('ec.pem', ec.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const t = await mint({ sub: '42', subscribe: ['user/{sub}/#'], privateKey: priv });
    assert.equal(JSON.parse(Buffer.from(t.split('.')[0], 'base64url')).alg, 'ES256');
    assert.equal((await request(h, 'GET', '/sub/user/42/a?mode=poll', { headers: bearer(t) })).status, 200, 'herald token ES256');
  });
});

test('token_jwks_file (jose exportJWK with kid): every algorithm accepted by its kid; token_algorithms narrows', T, async () => {
  const ks = keyPairs();
  const jwks = { keys: [] };
  for (const [i, k] of ks.entries()) {
    const jwk = await jose.exportJWK(k.publicKey);
    jwks.keys.push({ ...jwk, kid: `k${i}`, alg: k.alg, use: 'sig' });
  }
  const file = tmpFile('jwks.json', JSON.stringify(jwks));
  await withHerald({ 'token-jwks-file': file, 'api-keys': API_KEY }, async (h) => {
    for (const [i, k] of ks.entries()) {
      const tok = await joseToken(k, { kid: `k${i}` });
      const r = await request(h, 'GET', `/sub/user/42?mode=poll&token=${tok}`);
      assert.equal(r.status, 200, `${k.alg} kid k${i}: ${r.status} ${r.headers['www-authenticate']}`);
    }
    // a key pinned to RS256 does not take PS256 (same RSA key, other kid's alg)
    const rsa = ks.find((k) => k.alg === 'RS256');
    const ps = await new jose.SignJWT({}).setProtectedHeader({ alg: 'PS256', kid: 'k0' }).setSubject('42')
      .setExpirationTime('1h').sign(rsa.privateKey);
    assert401(await request(h, 'GET', '/sub/user/42?mode=poll', { headers: bearer(ps) }), 'PS256 on a key pinned to RS256', true);
  });
  await withHerald({ 'token-jwks-file': file, 'token-algorithms': 'ES256' }, async (h) => {
    const es = await joseToken(ks[2], { kid: 'k2' });
    assert.equal((await request(h, 'GET', '/sub/user/42?mode=poll', { headers: bearer(es) })).status, 200, 'ES256 allowed');
    const ed = await joseToken(ks[4], { kid: 'k4' });
    assert401(await request(h, 'GET', '/sub/user/42?mode=poll', { headers: bearer(ed) }), 'EdDSA outside token_algorithms', true);
  });
});

/* ---------------------------------------------------------------- expiry */

test('SSE: a 3 s token gets `event: expired` with {"reason":"token expired"}, then the stream ends', T, async () => {
  await withHerald(authFlags({ 'token-leeway': 0 }), async (h) => {
    const tok = await userToken('42', { ttl: '3s' });
    const exp = payloadOf(tok).exp;
    const es = new EventSource(h.url(`/sub/user/42?token=${tok}`));
    const expired = [];
    const msgs = [];
    es.addEventListener('expired', (e) => expired.push(e.data));
    es.addEventListener('message', (e) => msgs.push(e.data));
    const raw = await openSSE(h, `/sub/user/42?token=${tok}`, { skip: ['unread'] });
    try {
      assert.equal(raw.status, 200);
      await waitFor(() => es.readyState === EventSource.OPEN, 5000 * SCALE, 'EventSource open');
      await waitSubs(h, 'user/42', 2);
      await keyPublish(h, 'user/42', 'before expiry');
      const first = await raw.next();
      assert.equal(first.data, 'before expiry');
      const bound = (exp - Date.now() / 1000 + 5 * SCALE) * 1000;
      const ev = await raw.next(bound);
      assert.ok(ev, 'an event before the end');
      assert.equal(ev.event, 'expired');
      assert.deepEqual(JSON.parse(ev.data), { reason: 'token expired' });
      assert.ok(Date.now() / 1000 >= exp - 1, 'not expired long before exp');
      assert.equal(await raw.next(5000 * SCALE), null, 'the stream ends after event: expired');
      await waitFor(() => expired.length >= 1, 5000 * SCALE, 'EventSource sees event: expired');
      assert.deepEqual(JSON.parse(expired[0]), { reason: 'token expired' });
      assert.deepEqual(msgs, ['before expiry']);
      // its reconnection with the same (expired) token is refused: the EventSource gives up
      await waitFor(() => es.readyState === EventSource.CLOSED, 10000 * SCALE, 'EventSource closed after a refused reconnect');
    } finally {
      es.close();
      raw.close();
    }
  });
});

test('iframe: a 3 s token gets h({"expired":true,...}), then the stream ends', T, async () => {
  await withHerald(authFlags({ 'token-leeway': 0 }), async (h) => {
    const tok = await userToken('42', { ttl: '3s' });
    const exp = payloadOf(tok).exp;
    const s = await openIframe(h, `/sub/user/42?mode=iframe&token=${tok}`, { skip: ['unread'] });
    try {
      assert.equal(s.status, 200);
      const o = await s.next((exp - Date.now() / 1000 + 5 * SCALE) * 1000);
      assert.ok(o, 'an h() call before the end');
      assert.equal(o.expired, true, JSON.stringify(o));
      assert.equal(await s.next(5000 * SCALE), null, 'the stream ends');
    } finally {
      s.close();
    }
  });
});

test('`herald token` claims: sub, iat, exp from --ttl, herald subscribe/publish patterns, extra --claim', T, async () => {
  const t = await mint({ sub: 'u-1', subscribe: ['user/{sub}/#', 'news'], publish: ['chat/+'], ttl: '15m', claim: ['aud="x"'] });
  const p = payloadOf(t);
  assert.equal(p.sub, 'u-1');
  assert.equal(p.exp - p.iat, 900);
  assert.deepEqual(p.herald, { subscribe: ['user/{sub}/#', 'news'], publish: ['chat/+'] });
  assert.equal(p.aud, 'x');
  // its signature is an HMAC-SHA256 over SECRET
  const [a, b, sig] = t.split('.');
  assert.equal(crypto.createHmac('sha256', SECRET).update(`${a}.${b}`).digest('base64url'), sig);
});

test('a held long poll is answered at its token\'s expiry (nothing new, same cursor); the next poll with it is 401', T, async () => {
  await withHerald(authFlags({ 'token-leeway': 0, 'longpoll-timeout': 60 }), async (h) => {
    const tok = await userToken('42', { ttl: '3s' });
    const exp = payloadOf(tok).exp;
    const t0 = Date.now();
    const r = await fetch(`${h.base}/sub/user/42?mode=longpoll&last_id=0&token=${tok}`);
    assert.equal(r.status, 200);
    const j = await r.json();
    assert.equal(j.count, 0);
    assert.equal(j.last_id, '0');
    assert.ok(Date.now() / 1000 >= exp - 1, 'not answered before exp');
    assert.ok(Date.now() - t0 < 30000, 'answered at exp, long before longpoll_timeout');
    const again = await fetch(`${h.base}/sub/user/42?mode=longpoll&last_id=0&token=${tok}`);
    assert.equal(again.status, 401);
  });
});
