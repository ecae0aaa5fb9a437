// Access control on the WebSocket transports (docs/auth.md): the /ws JSON protocol with the npm
// `ws` client (refusals with unauthorized/forbidden, the auth op, in-place refresh without losing
// a message, refresh by another user refused, narrowing refresh, close 3000 at expiry),
// WebSocket /sub expiry, and STOMP with @stomp/stompjs (passcode = token or API key,
// Authorization header, ERROR frames for bad credentials, forbidden SUBSCRIBE/SEND, expiry).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withHerald, request, waitFor, SCALE } from '../lib/herald.mjs';
import { openWS, wsURL, stompClient, rawStomp, frame } from '../lib/stomp.mjs';
import {
  API_KEY, authFlags, bearer, mint, userToken, keyPublish, waitSubs, wsJson, payloadOf, assert401, hmacToken, claims, b64u,
  now,
} from '../lib/auth.mjs';
import { wsOpen } from '../lib/wsraw.mjs';

const T = { timeout: 60000 * SCALE };

/* Reads /ws pushes until one satisfies pred (bounded); returns it and what came before. */
async function until(c, pred, ms = 5000 * SCALE, what = 'message') {
  const deadline = Date.now() + ms;
  const before = [];
  for (;;) {
    const m = await c.json(Math.max(1, deadline - Date.now())).catch((e) => {
      throw new Error(`${what}: ${e.message}; before: ${JSON.stringify(before).slice(0, 300)}`);
    });
    if (!m) throw new Error(`${what}: /ws closed (${JSON.stringify(c.closeInfo)}) first; before: ${JSON.stringify(before).slice(0, 300)}`);
    if (pred(m)) return { m, before };
    before.push(m);
  }
}

/* ---------------------------------------------------------------- /ws */

test('/ws anonymous: subscribe and publish refused with unauthorized; the auth op then makes it user 42', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const c = await wsJson(h);
    try {
      let { reply } = await c.call({ op: 'subscribe', channel: 'user/42/inbox' });
      assert.equal(reply.ok, false);
      assert.equal(reply.error.code, 'unauthorized', JSON.stringify(reply));
      ({ reply } = await c.call({ op: 'publish', channel: 'user/42/inbox', data: 'x' }));
      assert.equal(reply.ok, false);
      assert.equal(reply.error.code, 'unauthorized', JSON.stringify(reply));
      ({ reply } = await c.call({ op: 'auth', token: await userToken('42') }));
      assert.equal(reply.ok, true, JSON.stringify(reply));
      ({ reply } = await c.call({ op: 'subscribe', channel: 'user/42/inbox' }));
      assert.equal(reply.ok, true, JSON.stringify(reply));
      ({ reply } = await c.call({ op: 'subscribe', channel: 'user/7/inbox' }));
      assert.equal(reply.ok, false);
      assert.equal(reply.error.code, 'forbidden', JSON.stringify(reply));
      ({ reply } = await c.call({ op: 'publish', channel: 'user/42/inbox', data: 'no publish right' }));
      assert.equal(reply.ok, false);
      assert.equal(reply.error.code, 'forbidden', JSON.stringify(reply));
      await keyPublish(h, 'user/42/inbox', 'hello');
      await keyPublish(h, 'user/7/inbox', 'not for 42');
      const { m } = await until(c, (x) => x.op === 'message');
      assert.equal(m.channel, 'user/42/inbox');
      assert.equal(m.data, 'hello');
      // a bad token in the auth op: unauthorized, the connection stays user 42
      ({ reply } = await c.call({ op: 'auth', token: 'e30.e30.AAAA' }));
      assert.equal(reply.ok, false);
      assert.equal(reply.error.code, 'unauthorized');
      ({ reply } = await c.call({ op: 'subscribe', channel: 'user/42/other' }));
      assert.equal(reply.ok, true, 'still user 42 after a refused auth');
    } finally {
      c.close();
    }
  });
});

test('/ws handshake: the token as ?token= or Authorization: Bearer; a bad one is 401', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const tok = await userToken('42');
    for (const opts of [{ token: tok }, { headers: bearer(tok) }, { headers: { Cookie: `herald_token=${tok}` } }]) {
      const c = await wsJson(h, opts);
      try {
        const { reply } = await c.call({ op: 'subscribe', channel: 'user/42/a' });
        assert.equal(reply.ok, true, `${JSON.stringify(Object.keys(opts))}: ${JSON.stringify(reply)}`);
      } finally {
        c.close();
      }
    }
    const bad = await wsOpen(h.port, { path: `/ws?token=${tok.slice(0, -3)}` });
    bad.conn.close();
    assert401(bad, '/ws with a bad token', true);
  });
});

test('/ws auth op with every kind of bad token: a JSON reply with code unauthorized each time, the connection stays', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const good = await userToken('42');
    const [a, b, sig] = good.split('.');
    const bad = [
      'e30.e30.AAAA', '', '.', 'x', `${a}.${b}`, `${a}.${b}.`, `${a}.${b}.${sig.slice(0, -2)}`, `${a}=.${b}.${sig}`,
      `${b64u({ alg: 'none' })}.${b}.`, hmacToken(claims('42'), { secret: 'another secret, 32 bytes or more...' }),
      hmacToken(claims('42', { exp: now() - 3600 })), hmacToken(claims('42', { nbf: now() + 3600 })),
      hmacToken({ exp: now() + 60 }), hmacToken({ sub: 'a/b', exp: now() + 60 }), hmacToken('{"sub":"42",'),
      hmacToken(claims('42'), { header: { alg: 'HS256', crit: ['x'] } }), hmacToken(claims('42'), { header: '{"alg":"HS256"' }),
      hmacToken(claims('42'), { header: { alg: 'HS256', typ: 'x"y\\z' } }), 'a\"b.c"d.e\\f', `${API_KEY}x`,
      hmacToken(claims('42', { pad: 'p'.repeat(9000) })),
    ];
    const c = await wsJson(h);
    try {
      for (const t of bad) {
        const { reply } = await c.call({ op: 'auth', token: t });
        assert.equal(reply.ok, false, `token ${JSON.stringify(t).slice(0, 60)}: ${JSON.stringify(reply)}`);
        const want = t === '' ? ['bad_request', 'unauthorized'] : ['unauthorized'];
        assert.ok(want.includes(reply.error.code), `token ${JSON.stringify(t).slice(0, 60)}: ${JSON.stringify(reply)}`);
        assert.equal(typeof reply.error.message, 'string');
      }
      const { reply } = await c.call({ op: 'auth', token: good });
      assert.equal(reply.ok, true, 'a good token after all that');
    } finally {
      c.close();
    }
  });
});

test('/ws refresh: a new token of the same user before expiry keeps the connection; no message lost', T, async () => {
  await withHerald(authFlags({ 'token-leeway': 0 }), async (h) => {
    const first = await userToken('42', { ttl: '3s' });
    const exp = payloadOf(first).exp;
    const c = await wsJson(h, { token: first });
    try {
      const { reply: s } = await c.call({ op: 'subscribe', channel: 'user/42/feed' });
      assert.equal(s.ok, true);
      const ids = [];
      let refreshed = null;
      let n = 0;
      // publish one message at a time (each read back before the next) until well past the first
      // token's exp; refresh in the middle
      const stopAt = (exp + 1.5) * 1000;
      while (Date.now() < stopAt) {
        n++;
        await keyPublish(h, 'user/42/feed', `m${n}`);
        if (n === 10) {
          c.req({ op: 'auth', token: await userToken('42', { ttl: '1h' }), ref: 'refresh' });
        }
        const { m, before } = await until(c, (x) => x.op === 'message', 5000 * SCALE, `message m${n}`);
        for (const b of before) {
          if (b.op === 'reply' && b.ref === 'refresh') refreshed = b;
          else assert.fail(`unexpected push ${JSON.stringify(b)}`);
        }
        assert.equal(m.data, `m${n}`);
        ids.push(Number(m.id));
      }
      if (!refreshed) refreshed = (await until(c, (x) => x.op === 'reply' && x.ref === 'refresh')).m;
      assert.equal(refreshed.ok, true, JSON.stringify(refreshed));
      assert.ok(n > 10, `published across the refresh (${n})`);
      assert.deepEqual(ids, Array.from({ length: n }, (_, i) => i + 1), 'ids contiguous');
      assert.equal(c.closeInfo, null, 'still open after the first token expired');
      const { reply } = await c.call({ op: 'ping' });
      assert.equal(reply.ok, true);
    } finally {
      c.close();
    }
  });
});

test('/ws refresh with another user\'s token is refused; the connection stays user 42', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const c = await wsJson(h, { token: await userToken('42') });
    try {
      let { reply } = await c.call({ op: 'auth', token: await userToken('7') });
      assert.equal(reply.ok, false, JSON.stringify(reply));
      assert.ok(['forbidden', 'unauthorized'].includes(reply.error.code), JSON.stringify(reply));
      ({ reply } = await c.call({ op: 'subscribe', channel: 'user/7/inbox' }));
      assert.equal(reply.ok, false, 'did not become user 7');
      ({ reply } = await c.call({ op: 'subscribe', channel: 'user/42/inbox' }));
      assert.equal(reply.ok, true, 'still user 42');
      // an API key is not a user either
      ({ reply } = await c.call({ op: 'auth', token: API_KEY }));
      assert.equal(reply.ok, false, `user -> API key: ${JSON.stringify(reply)}`);
      ({ reply } = await c.call({ op: 'publish', channel: 'user/7/inbox', data: 'x' }));
      assert.equal(reply.ok, false, 'did not become the publisher');
    } finally {
      c.close();
    }
  });
});

test('/ws refresh with a narrower token ends the subscriptions it no longer allows with "unsubscribed"', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const c = await wsJson(h, { token: await mint({ sub: '42', subscribe: ['user/{sub}/#', 'news'] }) });
    try {
      assert.equal((await c.call({ op: 'subscribe', channel: 'news' })).reply.ok, true);
      assert.equal((await c.call({ op: 'subscribe', channel: 'user/42/a' })).reply.ok, true);
      const { reply, before } = await c.call({ op: 'auth', token: await userToken('42') });
      assert.equal(reply.ok, true, JSON.stringify(reply));
      const all = [...before];
      if (!all.some((m) => m.op === 'unsubscribed')) all.push((await until(c, (m) => m.op === 'unsubscribed')).m);
      assert.deepEqual(all.filter((m) => m.op === 'unsubscribed'), [{ op: 'unsubscribed', channel: 'news', reason: 'forbidden' }]);
      await keyPublish(h, 'news', 'gone');
      await keyPublish(h, 'user/42/a', 'kept');
      const { m, before: b2 } = await until(c, (x) => x.op === 'message');
      assert.equal(m.data, 'kept');
      assert.deepEqual(b2, []);
    } finally {
      c.close();
    }
  });
});

test('/ws: a 3 s token ends the connection with close 3000 after exp', T, async () => {
  await withHerald(authFlags({ 'token-leeway': 0 }), async (h) => {
    const tok = await userToken('42', { ttl: '3s' });
    const exp = payloadOf(tok).exp;
    const c = await wsJson(h, { token: tok });
    const { reply } = await c.call({ op: 'subscribe', channel: 'user/42/a' });
    assert.equal(reply.ok, true);
    const info = await c.waitClosed((exp - Date.now() / 1000 + 6 * SCALE) * 1000);
    assert.equal(info.code, 3000, JSON.stringify(info));
    assert.ok(Date.now() / 1000 >= exp - 1, `closed at ${Date.now() / 1000}, exp ${exp}`);
  });
});

test('WebSocket /sub: a 3 s token ends the connection with close 3000', T, async () => {
  await withHerald(authFlags({ 'token-leeway': 0 }), async (h) => {
    const tok = await userToken('42', { ttl: '3s' });
    const exp = payloadOf(tok).exp;
    const c = await openWS(wsURL(h, `/sub/user/42?token=${tok}`));
    await waitSubs(h, 'user/42');
    await keyPublish(h, 'user/42', 'live');
    const m = await c.next();
    assert.equal(m.data.toString(), 'live');
    const info = await c.waitClosed((exp - Date.now() / 1000 + 6 * SCALE) * 1000);
    assert.equal(info.code, 3000, JSON.stringify(info));
  });
});

/* ---------------------------------------------------------------- STOMP */

test('STOMP (stompjs) passcode = token: its destination works; another user\'s /topic/user/7 gets ERROR', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const st = await stompClient(h, { connectHeaders: { login: 'x', passcode: await userToken('42') } });
    try {
      const sub = await st.subscribe('/topic/user/42/inbox');
      await keyPublish(h, 'user/42/inbox', 'stomp hello');
      const m = await sub.next();
      assert.equal(m.body, 'stomp hello');
      assert.equal(m.headers.destination, '/topic/user/42/inbox');
      st.client.subscribe('/topic/user/7', () => assert.fail('no message for user/7'));
      await waitFor(() => st.errors.length >= 1, 5000 * SCALE, 'ERROR for /topic/user/7');
      assert.ok(st.errors[0].headers.message, 'ERROR has a message header');
      await waitFor(() => st.closes.length >= 1, 5000 * SCALE, 'the connection closes after ERROR');
      assert.equal(st.closes[0].code, 3003, `close code ${JSON.stringify(st.closes[0])}`);
    } finally {
      await st.close();
    }
    assert.match(h.out, /\(user 42\): may not subscribe to 'user\/7'/);
  });
});

test('STOMP: a bad passcode and an anonymous CONNECT get ERROR and close 3000', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const tok = await userToken('42');
    await assert.rejects(
      stompClient(h, { connectHeaders: { login: 'x', passcode: `${tok.slice(0, -2)}xx` } }),
      /STOMP ERROR/,
      'stompjs is refused with a forged token',
    );
    for (const [what, headers] of [
      ['forged token', [['accept-version', '1.2'], ['host', 'h'], ['login', 'x'], ['passcode', `${tok.slice(0, -2)}xx`]]],
      ['wrong API key', [['accept-version', '1.2'], ['host', 'h'], ['passcode', `${API_KEY}-no`]]],
      ['anonymous', [['accept-version', '1.2'], ['host', 'h']]],
    ]) {
      const s = await rawStomp(h, { connect: false });
      s.send(frame('CONNECT', headers));
      const f = await s.expect('ERROR');
      assert.ok(f.get('message'), `${what}: message header`);
      const info = await s.waitClosed();
      assert.equal(info.code, 3000, `${what}: close ${JSON.stringify(info)}`);
    }
    // the server still takes good clients
    const ok = await stompClient(h, { connectHeaders: { passcode: tok } });
    await ok.close();
  });
});

test('STOMP: SEND without publish rights gets ERROR; with the API key as passcode SEND works everywhere', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const reader = await stompClient(h, { connectHeaders: { passcode: await userToken('42') } });
    const sub = await reader.subscribe('/topic/user/42/inbox');
    const backend = await stompClient(h, { connectHeaders: { passcode: API_KEY } });
    try {
      await backend.publish({ destination: '/topic/user/42/inbox', body: 'from backend' });
      assert.equal((await sub.next()).body, 'from backend');
      reader.client.publish({ destination: '/topic/user/42/inbox', body: 'self' });
      await waitFor(() => reader.errors.length >= 1, 5000 * SCALE, 'ERROR for SEND');
      const info = await request(h, 'GET', '/channels/user/42/inbox', { headers: bearer(API_KEY) });
      assert.equal(info.json().last_id, '1', 'the refused SEND stored nothing');
    } finally {
      await reader.close();
      await backend.close();
    }
  });
});

test('STOMP: CONNECT with an Authorization: Bearer header', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const st = await stompClient(h, { connectHeaders: { Authorization: `Bearer ${await userToken('42')}` } });
    try {
      const sub = await st.subscribe('/topic/user/42');
      await keyPublish(h, 'user/42', 'hdr');
      assert.equal((await sub.next()).body, 'hdr');
    } finally {
      await st.close();
    }
  });
});

test('STOMP: a 3 s token ends with ERROR "token expired" and close 3000', T, async () => {
  await withHerald(authFlags({ 'token-leeway': 0 }), async (h) => {
    const tok = await userToken('42', { ttl: '3s' });
    const exp = payloadOf(tok).exp;
    const s = await rawStomp(h, { connectHeaders: [['accept-version', '1.2'], ['host', 'h'], ['heart-beat', '0,0'], ['passcode', tok]] });
    s.send(frame('SUBSCRIBE', [['id', '1'], ['destination', '/topic/user/42/x'], ['receipt', 'r1']]));
    await s.expect('RECEIPT');
    const f = await s.nextFrame((exp - Date.now() / 1000 + 6 * SCALE) * 1000);
    assert.ok(f, 'a frame before the close');
    assert.equal(f.command, 'ERROR');
    assert.equal(f.get('message'), 'token expired');
    const info = await s.waitClosed();
    assert.equal(info.code, 3000, JSON.stringify(info));
    // stompjs, too
    const tok2 = await userToken('42', { ttl: '3s' });
    const st = await stompClient(h, { connectHeaders: { passcode: tok2 } });
    try {
      await waitFor(() => st.errors.length >= 1, (payloadOf(tok2).exp - Date.now() / 1000 + 6 * SCALE) * 1000, 'stompjs ERROR');
      assert.equal(st.errors[0].headers.message, 'token expired');
    } finally {
      await st.close();
    }
  });
});
