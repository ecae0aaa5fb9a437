// The /ws JSON protocol with the npm `ws` client: welcome, subscribe to many channels on one
// connection (with and without last_id: the reply first, then the exact replay, then live
// messages), refs carried back unchanged, payload encodings, unsubscribe, publish from /ws to
// every other transport, ping, every error code (the connection keeps working after each), the
// 1003 close for binary messages, gap notices on resume and after slow-consumer drops.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  withHerald, publish, request, getJSON, metrics, waitFor, waitSubscribed, loadEventSource, msgBytes, nastyBytes, SCALE,
} from '../lib/herald.mjs';
import { openWS, wsURL } from '../lib/stomp.mjs';

const T = { timeout: 60000 * SCALE };
const EventSource = loadEventSource();

let syncN = 0;

/* Opens /ws and reads the welcome. Adds json(ms) (the next message, parsed; null once closed),
 * req(obj|string), call(obj|string) (sends, then reads until the reply carrying the request's
 * ref: {reply, before} with everything that came first) and sync() (a ping as a barrier:
 * returns what arrived before its reply). */
async function openJ(h, protocols = ['herald.v1']) {
  const c = await openWS(wsURL(h, '/ws'), protocols);
  c.json = async (ms) => {
    const m = await c.next(ms);
    if (!m) return null;
    assert.equal(m.binary, false, 'the /ws protocol sends text messages');
    return JSON.parse(m.data.toString('utf8'));
  };
  c.req = (obj) => c.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
  c.call = async (obj, ms = 5000 * SCALE) => {
    c.req(obj);
    const want = typeof obj === 'object' && obj !== null && !Array.isArray(obj) && 'ref' in obj ? obj.ref : undefined;
    const before = [];
    for (;;) {
      const m = await c.json(ms);
      if (!m) throw new Error(`connection closed (${JSON.stringify(c.closeInfo)}) before the reply to ${JSON.stringify(obj).slice(0, 200)}`);
      // the reply to this request: the same ref, or (an error about the ref itself) ref null
      if (m.op === 'reply' && (want === undefined || m.ref === want || (m.ref === null && m.ok === false))) {
        return { reply: m, before };
      }
      before.push(m);
    }
  };
  c.sync = async () => {
    const ref = `sync-${++syncN}`;
    const { reply, before } = await c.call({ op: 'ping', ref });
    assert.deepEqual(reply, { op: 'reply', ref, ok: true });
    return before;
  };
  c.welcome = await c.json();
  assert.ok(c.welcome, 'welcome message');
  return c;
}

const sansTime = (m) => {
  const { time, ...rest } = m;
  return rest;
};

function checkTime(m) {
  assert.equal(typeof m.time, 'number', `message has a numeric time: ${JSON.stringify(m)}`);
  assert.ok(Number.isInteger(m.time) && Math.abs(m.time - Date.now()) < 120000, `time is epoch milliseconds: ${m.time}`);
}

test('/ws: welcome, subprotocol herald.v1 optional, plain GET refused', T, async () => {
  await withHerald(async (h) => {
    const a = await openJ(h);
    const b = await openJ(h, []);
    try {
      assert.equal(a.protocol, 'herald.v1');
      assert.equal(b.protocol, '');
      const want = { op: 'welcome', protocol: 'herald.v1', max_message: 1048576, auth: false, user: null };
      assert.deepEqual(a.welcome, want);
      assert.deepEqual(b.welcome, want);
      // the welcome is the only thing sent unasked
      assert.deepEqual(await a.sync(), []);
      const r = await request(h, 'GET', '/ws');
      assert.equal(r.status, 426);
      assert.match(String(r.headers.upgrade), /websocket/i);
    } finally {
      a.close();
      b.close();
    }
  });
  await withHerald({ 'ws-max-message': '64k' }, async (h) => {
    const a = await openJ(h);
    try {
      assert.deepEqual(a.welcome, { op: 'welcome', protocol: 'herald.v1', max_message: 65536, auth: false, user: null });
    } finally {
      a.close();
    }
  });
});

test('/ws: several channels on one connection, with and without last_id: reply, exact replay, then live', T, async () => {
  await withHerald(async (h) => {
    for (let i = 1; i <= 5; i++) await publish(h, 'multi/a', `a${i}`);
    for (let i = 1; i <= 3; i++) await publish(h, 'multi.b', `b${i}`);
    await publish(h, 'd', 'd1');
    await publish(h, 'd', 'd2', { event: 'old' });
    const c = await openJ(h);
    try {
      // string last_id, string ref: the reply comes first, then exactly the missed messages
      let r = await c.call({ op: 'subscribe', channel: 'multi/a', last_id: '2', ref: 'sub-a' });
      assert.deepEqual(r.before, []);
      assert.deepEqual(r.reply, { op: 'reply', ref: 'sub-a', ok: true, last_id: '5' });
      const replayA = [await c.json(), await c.json(), await c.json()];
      assert.deepEqual(replayA.map(sansTime), [3, 4, 5].map((i) => (
        { op: 'message', id: String(i), channel: 'multi/a', event: 'message', data: `a${i}` })));
      replayA.forEach(checkTime);
      // the message objects are the polls' objects
      const poll = await getJSON(h, '/sub/multi/a?mode=poll&last_id=2');
      assert.deepEqual(replayA.map(({ op, ...m }) => m), poll.messages);

      // integer last_id 0 (everything in history), integer ref
      r = await c.call({ op: 'subscribe', channel: 'multi.b', last_id: 0, ref: 42 });
      assert.deepEqual(r.before, []);
      assert.deepEqual(r.reply, { op: 'reply', ref: 42, ok: true, last_id: '3' });
      const replayB = [await c.json(), await c.json(), await c.json()];
      assert.deepEqual(replayB.map(sansTime), [1, 2, 3].map((i) => (
        { op: 'message', id: String(i), channel: 'multi.b', event: 'message', data: `b${i}` })));

      // no last_id: no replay, the reply names the newest id
      r = await c.call({ op: 'subscribe', channel: 'd', ref: 'no-cursor' });
      assert.deepEqual(r.reply, { op: 'reply', ref: 'no-cursor', ok: true, last_id: '2' });
      // a channel that does not exist yet; ref 0 (falsy) still comes back
      r = await c.call({ op: 'subscribe', channel: 'fresh', last_id: 0, ref: 0 });
      assert.deepEqual(r.reply, { op: 'reply', ref: 0, ok: true, last_id: '0' });
      // last_id equal to the newest id: nothing to replay
      r = await c.call({ op: 'subscribe', channel: 'multi/c', last_id: '0', ref: 'c' });
      assert.deepEqual(r.reply, { op: 'reply', ref: 'c', ok: true, last_id: '0' });
      assert.deepEqual(await c.sync(), [], 'no replay beyond what was asked');

      // live, interleaved across the channels
      await publish(h, 'multi/a', 'a6');
      await publish(h, 'multi.b', 'b4');
      await publish(h, 'd', 'd3', { event: 'upd' });
      await publish(h, 'fresh', 'f1');
      await publish(h, 'unsubscribed', 'x');
      await publish(h, 'multi/c', 'c1');
      const live = await c.sync();
      assert.deepEqual(live.map(sansTime), [
        { op: 'message', id: '6', channel: 'multi/a', event: 'message', data: 'a6' },
        { op: 'message', id: '4', channel: 'multi.b', event: 'message', data: 'b4' },
        { op: 'message', id: '3', channel: 'd', event: 'upd', data: 'd3' },
        { op: 'message', id: '1', channel: 'fresh', event: 'message', data: 'f1' },
        { op: 'message', id: '1', channel: 'multi/c', event: 'message', data: 'c1' },
      ]);
      live.forEach(checkTime);
      for (const ch of ['multi/a', 'multi.b', 'd', 'fresh', 'multi/c']) {
        assert.equal((await getJSON(h, `/channels/${ch}`)).subscribers, 1, `one subscriber on ${ch}`);
      }
    } finally {
      c.close();
    }
  });
});

test('/ws: refs come back exactly as given (strings and integers)', T, async () => {
  await withHerald(async (h) => {
    const c = await openJ(h);
    try {
      const refs = ['abc', '', 'q"<>&\\é\u2028 ✓', 12345, -7, 0, 9007199254740991, 'r'.repeat(100)];
      for (const ref of refs) {
        const { reply, before } = await c.call({ op: 'ping', ref });
        assert.deepEqual(before, []);
        assert.deepEqual(reply, { op: 'reply', ref, ok: true }, `ref ${JSON.stringify(ref)}`);
      }
      // no ref: the reply still comes, with ref null
      c.req({ op: 'ping' });
      const r = await c.json();
      assert.equal(r.op, 'reply');
      assert.equal(r.ok, true);
      assert.equal(r.ref ?? null, null);
    } finally {
      c.close();
    }
  });
});

test('/ws: a string ref of up to 128 characters is accepted (README: "at most 128 characters")', T, async () => {
  await withHerald(async (h) => {
    const c = await openJ(h);
    try {
      const refused = [];
      for (const ref of ['x'.repeat(126), 'x'.repeat(127), 'x'.repeat(128), '"'.repeat(64), 'é'.repeat(128)]) {
        const { reply } = await c.call({ op: 'ping', ref });
        if (!reply.ok) refused.push(`${JSON.stringify(ref).slice(0, 12)}... (${ref.length} characters): ${reply.error?.code}`);
        else assert.deepEqual(reply, { op: 'reply', ref, ok: true });
      }
      assert.deepEqual(refused, [], 'refs within the documented limit refused');
    } finally {
      c.close();
    }
  });
});

test('/ws: payloads: UTF-8 as JSON strings, binary as base64, exact bytes', T, async () => {
  await withHerald(async (h) => {
    const c = await openJ(h);
    try {
      await c.call({ op: 'subscribe', channel: 'enc', ref: 1 });
      const payloads = [
        Buffer.from('héllo ✓ "quoted" \\ back\nslash\r\n\t{}', 'utf8'),
        Buffer.from([0x00, 0x01, 0x02, 0xff, 0xfe, 0x0d, 0x0a, 0x00, 0xc3, 0x28]),
        Buffer.from('a\u0000b', 'utf8'),
        Buffer.alloc(0),
        Buffer.from('</script><script>alert(1)</script>\u2028', 'utf8'),
        Buffer.from('z'.repeat(100000) + '✓', 'utf8'),
      ];
      for (const p of payloads) await publish(h, 'enc', p);
      const got = await c.sync();
      assert.equal(got.length, payloads.length);
      got.forEach((m, i) => {
        assert.equal(m.op, 'message');
        assert.equal(m.id, String(i + 1));
        assert.ok(msgBytes(m).equals(payloads[i]), `payload ${i} byte-exact`);
      });
      assert.equal(got[0].encoding, undefined, 'UTF-8 text is a plain JSON string');
      assert.equal(got[0].data, payloads[0].toString('utf8'));
      assert.equal(got[1].encoding, 'base64', 'binary is base64');
      assert.equal(got[1].data, payloads[1].toString('base64'));
      assert.equal(got[3].data, '');
      assert.equal(got[5].encoding, undefined);
    } finally {
      c.close();
    }
  });
});

test('/ws: unsubscribe stops delivery; subscribing again resumes', T, async () => {
  await withHerald(async (h) => {
    const c = await openJ(h);
    try {
      await c.call({ op: 'subscribe', channel: 'u1', ref: 1 });
      await c.call({ op: 'subscribe', channel: 'u2', ref: 2 });
      await publish(h, 'u1', 'one');
      assert.deepEqual((await c.sync()).map((m) => m.data), ['one']);
      const { reply, before } = await c.call({ op: 'unsubscribe', channel: 'u1', ref: 'un' });
      assert.deepEqual(before, []);
      assert.deepEqual(reply, { op: 'reply', ref: 'un', ok: true });
      assert.equal((await getJSON(h, '/channels/u1')).subscribers, 0);
      assert.equal((await getJSON(h, '/channels/u2')).subscribers, 1);
      await publish(h, 'u1', 'missed');
      await publish(h, 'u2', 'two');
      const got = await c.sync();
      assert.deepEqual(got.map((m) => [m.channel, m.data]), [['u2', 'two']]);
      // unsubscribing twice is an error
      const again = await c.call({ op: 'unsubscribe', channel: 'u1', ref: 'un2' });
      assert.equal(again.reply.error?.code, 'not_subscribed');
      // subscribe again from the last id seen: the missed message, then live
      const re = await c.call({ op: 'subscribe', channel: 'u1', last_id: '1', ref: 're' });
      assert.deepEqual(re.reply, { op: 'reply', ref: 're', ok: true, last_id: '2' });
      await publish(h, 'u1', 'three');
      assert.deepEqual((await c.sync()).map((m) => [m.channel, m.id, m.data]), [['u1', '2', 'missed'], ['u1', '3', 'three']]);
    } finally {
      c.close();
    }
  });
});

test('/ws: publish reaches SSE (EventSource), /ws and plain WebSocket subscribers', T, async () => {
  await withHerald(async (h) => {
    const es = new EventSource(h.url('/sub/fan'));
    const sse = [];
    for (const t of ['message', 'alert', 'message@base64']) {
      es.addEventListener(t, (e) => sse.push({ type: t, data: e.data, id: e.lastEventId }));
    }
    const other = await openJ(h);
    const plain = await openWS(wsURL(h, '/sub/fan'));
    const pub = await openJ(h);
    try {
      await waitFor(() => es.readyState === EventSource.OPEN, 5000 * SCALE, 'EventSource open');
      await other.call({ op: 'subscribe', channel: 'fan', ref: 's' });
      assert.ok(await waitSubscribed(h, 'fan', null, 3), 'three subscribers on fan');

      let r = await pub.call({ op: 'publish', channel: 'fan', data: 'hello fan', ref: 'p1' });
      assert.deepEqual(r.reply, { op: 'reply', ref: 'p1', ok: true, id: '1', subscribers: 3 });
      r = await pub.call({ op: 'publish', channel: 'fan', data: 'alarm', event: 'alert', ref: 'p2' });
      assert.deepEqual(r.reply, { op: 'reply', ref: 'p2', ok: true, id: '2', subscribers: 3 });
      const bin = Buffer.from([0x00, 0xff, 0x01, 0x00, 0x0a]);
      r = await pub.call({ op: 'publish', channel: 'fan', data: bin.toString('base64'), encoding: 'base64', ref: 3 });
      assert.deepEqual(r.reply, { op: 'reply', ref: 3, ok: true, id: '3', subscribers: 3 });
      r = await pub.call({ op: 'publish', channel: 'fan', data: Buffer.from('über').toString('base64'), encoding: 'base64', ref: 4 });
      assert.deepEqual(r.reply, { op: 'reply', ref: 4, ok: true, id: '4', subscribers: 3 });
      assert.deepEqual(await pub.sync(), [], 'the publisher is not subscribed: nothing comes back');

      // /ws subscriber
      const got = await other.sync();
      assert.deepEqual(got.map(sansTime), [
        { op: 'message', id: '1', channel: 'fan', event: 'message', data: 'hello fan' },
        { op: 'message', id: '2', channel: 'fan', event: 'alert', data: 'alarm' },
        { op: 'message', id: '3', channel: 'fan', event: 'message', data: bin.toString('base64'), encoding: 'base64' },
        { op: 'message', id: '4', channel: 'fan', event: 'message', data: 'über' },
      ]);
      // plain WebSocket: data only, binary frames for binary payloads
      const frames = [];
      for (let i = 0; i < 4; i++) frames.push(await plain.next());
      assert.deepEqual(frames.map((f) => f.binary), [false, false, true, false]);
      assert.deepEqual(frames.map((f) => f.data.toString('utf8')).filter((_, i) => i !== 2), ['hello fan', 'alarm', 'über']);
      assert.ok(frames[2].data.equals(bin), 'binary payload byte-exact on the plain WebSocket');
      // SSE
      await waitFor(() => sse.length >= 4, 5000 * SCALE, '4 SSE events');
      assert.deepEqual(sse, [
        { type: 'message', data: 'hello fan', id: '1' },
        { type: 'alert', data: 'alarm', id: '2' },
        { type: 'message@base64', data: bin.toString('base64'), id: '3' },
        { type: 'message', data: 'über', id: '4' },
      ]);
      // history holds the exact bytes
      const poll = await getJSON(h, '/sub/fan?mode=poll&last_id=0');
      assert.ok(msgBytes(poll.messages[2]).equals(bin));

      // a publisher subscribed to the channel gets its own message too
      await pub.call({ op: 'subscribe', channel: 'fan', ref: 'self-sub' });
      r = await pub.call({ op: 'publish', channel: 'fan', data: 'self', ref: 'p5' });
      assert.deepEqual(r.reply, { op: 'reply', ref: 'p5', ok: true, id: '5', subscribers: 4 });
      const own = [...r.before, ...(await pub.sync())];
      assert.deepEqual(own.map(sansTime), [{ op: 'message', id: '5', channel: 'fan', event: 'message', data: 'self' }]);
    } finally {
      es.close();
      other.close();
      plain.close();
      pub.close();
    }
  });
});

test('/ws: every error code is a typed reply and the connection keeps working', T, async () => {
  await withHerald(async (h) => {
    const c = await openJ(h);
    const watcher = await openJ(h);
    try {
      await watcher.call({ op: 'subscribe', channel: 'ok', ref: 'w' });
      await c.call({ op: 'subscribe', channel: 'dup', ref: 'first' });
      let n = 0;
      const expectError = async (req, code, ref = null) => {
        n++;
        const { reply, before } = await c.call(req);
        assert.deepEqual(before, [], `nothing but the reply for ${JSON.stringify(req).slice(0, 80)}`);
        assert.equal(reply.ok, false, `ok:false for ${JSON.stringify(req).slice(0, 80)}`);
        assert.deepEqual(Object.keys(reply).sort(), ['error', 'ok', 'op', 'ref']);
        assert.equal(reply.error?.code, code, `error code for ${JSON.stringify(req).slice(0, 120)}: ${JSON.stringify(reply)}`);
        assert.equal(typeof reply.error.message, 'string');
        assert.ok(reply.error.message.length > 0);
        assert.deepEqual(reply.ref, ref, `ref in the error reply to ${JSON.stringify(req).slice(0, 80)}`);
        // still working: a ping is answered
        const p = await c.call({ op: 'ping', ref: `alive-${n}` });
        assert.deepEqual(p.reply, { op: 'reply', ref: `alive-${n}`, ok: true });
        assert.equal(c.closeInfo, null, 'connection still open');
      };

      // bad_json
      await expectError('not json', 'bad_json');
      await expectError('{"op":"ping","ref":1', 'bad_json');
      await expectError('', 'bad_json');
      // bad_request: not an object
      await expectError('[1,2]', 'bad_request');
      await expectError('[]', 'bad_request');
      // bad_request: missing / mistyped op
      await expectError({ ref: 'm1' }, 'bad_request', 'm1');
      await expectError({ op: 5, ref: 'm2' }, 'bad_request', 'm2');
      // bad_request: bad ref type
      await expectError({ op: 'ping', ref: { a: 1 } }, 'bad_request');
      await expectError({ op: 'ping', ref: [1] }, 'bad_request');
      await expectError({ op: 'ping', ref: 1.5 }, 'bad_request');
      await expectError({ op: 'ping', ref: true }, 'bad_request');
      await expectError({ op: 'ping', ref: 'x'.repeat(129) }, 'bad_request');
      // bad_request: missing / mistyped fields
      await expectError({ op: 'subscribe', ref: 'c1' }, 'bad_request', 'c1');
      await expectError({ op: 'subscribe', channel: 7, ref: 'c2' }, 'bad_request', 'c2');
      await expectError({ op: 'unsubscribe', ref: 'c3' }, 'bad_request', 'c3');
      await expectError({ op: 'publish', data: 'x', ref: 'c4' }, 'bad_request', 'c4');
      await expectError({ op: 'publish', channel: 'ok', ref: 'd1' }, 'bad_request', 'd1');
      await expectError({ op: 'publish', channel: 'ok', data: 5, ref: 'd2' }, 'bad_request', 'd2');
      await expectError({ op: 'publish', channel: 'ok', data: 'x', encoding: 'hex', ref: 'd3' }, 'bad_request', 'd3');
      // unknown_op
      await expectError({ op: 'frobnicate', ref: 'u1' }, 'unknown_op', 'u1');
      await expectError({ op: 'Subscribe', channel: 'x', ref: 'u2' }, 'unknown_op', 'u2');
      await expectError({ op: '', ref: 'u3' }, 'unknown_op', 'u3');
      // bad_channel
      for (const ch of ['', 'a//b', '$sys', '//lead', '/', 'trail/', 'a/../b', 'sp ace', 'x'.repeat(256), 'a\u0000b']) {
        await expectError({ op: 'subscribe', channel: ch, ref: 'bc' }, 'bad_channel', 'bc');
      }
      await expectError({ op: 'unsubscribe', channel: 'a//b', ref: 'bc2' }, 'bad_channel', 'bc2');
      await expectError({ op: 'publish', channel: '$x', data: 'x', ref: 'bc3' }, 'bad_channel', 'bc3');
      // bad_cursor (and no subscription is left behind)
      for (const last of ['abc', '-1', -1, '1,2', '', '1a', ' 1', '99999999999999999999999']) {
        await expectError({ op: 'subscribe', channel: 'cur', last_id: last, ref: 'cur' }, 'bad_cursor', 'cur');
      }
      assert.equal((await getJSON(h, '/channels/cur')).subscribers, 0);
      const okSub = await c.call({ op: 'subscribe', channel: 'cur', last_id: '0', ref: 'cur-ok' });
      assert.equal(okSub.reply.ok, true, 'a valid subscribe after bad_cursor succeeds');
      // bad_event
      for (const ev of ['has space', 'x'.repeat(65), '', 'é', 'a/b']) {
        await expectError({ op: 'publish', channel: 'ok', data: 'x', event: ev, ref: 'ev' }, 'bad_event', 'ev');
      }
      // bad_data
      await expectError({ op: 'publish', channel: 'ok', data: '!!!!', encoding: 'base64', ref: 'bd' }, 'bad_data', 'bd');
      await expectError({ op: 'publish', channel: 'ok', data: 'QUJD@@@@', encoding: 'base64', ref: 'bd2' }, 'bad_data', 'bd2');
      // already_subscribed / not_subscribed
      await expectError({ op: 'subscribe', channel: 'dup', ref: 'dup' }, 'already_subscribed', 'dup');
      await expectError({ op: 'subscribe', channel: 'dup', last_id: 0, ref: 'dup2' }, 'already_subscribed', 'dup2');
      await expectError({ op: 'unsubscribe', channel: 'never', ref: 'ns' }, 'not_subscribed', 'ns');

      // none of the failed publishes published anything
      assert.equal((await getJSON(h, '/channels/ok')).last_id, '0');
      assert.deepEqual(await watcher.sync(), []);
      // and the connection still subscribes and receives
      await publish(h, 'dup', 'still');
      await publish(h, 'cur', 'here');
      assert.deepEqual((await c.sync()).map((m) => [m.channel, m.data]), [['dup', 'still'], ['cur', 'here']]);
      const p = await c.call({ op: 'publish', channel: 'ok', data: 'fine', ref: 'last' });
      assert.deepEqual(p.reply, { op: 'reply', ref: 'last', ok: true, id: '1', subscribers: 1 });
      assert.deepEqual((await watcher.sync()).map((m) => m.data), ['fine']);
    } finally {
      c.close();
      watcher.close();
    }
  });
});

test('/ws: valid JSON that is not an object (a scalar) is bad_request, not bad_json', T, async () => {
  await withHerald(async (h) => {
    const c = await openJ(h);
    try {
      const wrong = [];
      for (const text of ['"ping"', '42', 'null', 'true']) {
        const { reply } = await c.call(text);
        assert.equal(reply.ok, false);
        if (reply.error.code !== 'bad_request') wrong.push(`${text} -> ${reply.error.code}`);
      }
      assert.deepEqual(wrong, [], 'valid JSON texts (RFC 8259 allows scalars) that are not objects');
      assert.deepEqual(await c.sync(), []);
    } finally {
      c.close();
    }
  });
});

test('/ws: too_many_subscriptions at the 257th subscription (max_subscriptions = 256)', T, async () => {
  await withHerald({ 'max-subscriptions': 256 }, async (h) => {
    const c = await openJ(h);
    try {
      for (let i = 0; i < 256; i++) c.req({ op: 'subscribe', channel: `t${i}`, ref: i });
      for (let i = 0; i < 256; i++) {
        const r = await c.json();
        assert.deepEqual(r, { op: 'reply', ref: i, ok: true, last_id: '0' }, `subscription ${i}`);
      }
      const over = await c.call({ op: 'subscribe', channel: 't256', ref: 'over' });
      assert.equal(over.reply.ok, false);
      assert.equal(over.reply.error.code, 'too_many_subscriptions');
      assert.equal(over.reply.ref, 'over');
      assert.equal((await getJSON(h, '/channels/t256')).subscribers, 0);
      assert.deepEqual(await c.sync(), []);
      // one freed slot can be used again
      assert.equal((await c.call({ op: 'unsubscribe', channel: 't7', ref: 'u' })).reply.ok, true);
      assert.equal((await c.call({ op: 'subscribe', channel: 't256', ref: 'again' })).reply.ok, true);
      await publish(h, 't255', 'last of the first');
      await publish(h, 't256', 'the new one');
      await publish(h, 't7', 'gone');
      await publish(h, 't0', 'first');
      assert.deepEqual((await c.sync()).map((m) => [m.channel, m.data]),
        [['t255', 'last of the first'], ['t256', 'the new one'], ['t0', 'first']]);
    } finally {
      c.close();
    }
  });
});

test('/ws: forbidden when client_publish = false; subscribing still works', T, async () => {
  await withHerald({ 'client-publish': 'false' }, async (h) => {
    const c = await openJ(h);
    try {
      await c.call({ op: 'subscribe', channel: 'ro', ref: 's' });
      const r = await c.call({ op: 'publish', channel: 'ro', data: 'nope', ref: 'f' });
      assert.equal(r.reply.ok, false);
      assert.equal(r.reply.error.code, 'forbidden');
      assert.equal(r.reply.ref, 'f');
      const r2 = await c.call({ op: 'publish', channel: 'ro', data: 'AA==', encoding: 'base64', event: 'e', ref: 'f2' });
      assert.equal(r2.reply.error.code, 'forbidden');
      assert.equal((await getJSON(h, '/channels/ro')).last_id, '0', 'nothing was published');
      assert.deepEqual(await c.sync(), []);
      await publish(h, 'ro', 'from http');
      assert.deepEqual((await c.sync()).map((m) => m.data), ['from http']);
    } finally {
      c.close();
    }
  });
});

test('/ws: a binary message closes with 1003; other connections are untouched', T, async () => {
  await withHerald(async (h) => {
    const bad = await openJ(h);
    const good = await openJ(h);
    try {
      await bad.call({ op: 'subscribe', channel: 'b', ref: 1 });
      await good.call({ op: 'subscribe', channel: 'b', ref: 1 });
      bad.send(Buffer.from(JSON.stringify({ op: 'ping', ref: 'bin' })), true);
      const ci = await bad.waitClosed();
      assert.equal(ci.code, 1003);
      assert.ok(!bad.messages.some((m) => m.data.toString().includes('"bin"')), 'the binary request was not answered');
      await waitFor(async () => (await getJSON(h, '/channels/b')).subscribers === 1, 5000 * SCALE, 'the closed subscription released');
      await publish(h, 'b', 'still');
      assert.deepEqual((await good.sync()).map((m) => m.data), ['still']);
    } finally {
      bad.close();
      good.close();
    }
  });
});

const MSG = 16 * 1024;
const big = (ch, i) => `${ch}:${i}:`.padEnd(MSG, 'x');

test('/ws: a cursor newer than the channel (server restarted) is reported as a gap', T, async () => {
  await withHerald(async (h) => {
    for (let i = 1; i <= 3; i++) await publish(h, 'rs', `m${i}`);
    const c = await openJ(h);
    try {
      const r = await c.call({ op: 'subscribe', channel: 'rs', last_id: '50', ref: 'r' });
      assert.deepEqual(r.reply, { op: 'reply', ref: 'r', ok: true, last_id: '3' });
      const first = await c.json();
      assert.equal(first.op, 'gap');
      assert.equal(first.channel, 'rs');
      assert.equal(first.requested, '50');
      await c.sync();
      await publish(h, 'rs', 'live');
      assert.deepEqual((await c.sync()).map((m) => [m.op, m.id, m.data]), [['message', '4', 'live']]);
    } finally {
      c.close();
    }
  });
});

test('/ws: a replay larger than max_queued_bytes is cut with a gap notice, never silently', T, async () => {
  await withHerald({
    'max-queued-bytes': 65536, 'slow-policy': 'drop', 'history-messages': 1000, 'history-bytes': '64m',
  }, async (h) => {
    const N = 200;
    for (let i = 1; i <= N; i++) await publish(h, 'rp', big('rp', i));
    const c = await openJ(h);
    try {
      const r = await c.call({ op: 'subscribe', channel: 'rp', last_id: 0, ref: 'r' });
      assert.deepEqual(r.reply, { op: 'reply', ref: 'r', ok: true, last_id: String(N) });
      const evs = [];
      for (;;) {
        const m = await c.json(10000 * SCALE);
        assert.ok(m, 'still connected');
        evs.push(m);
        if (Number(m.op === 'gap' ? m.to : m.id) >= N) break;
      }
      await publish(h, 'rp', 'after');
      evs.push(...(await c.sync()));
      const { gaps, prev } = checkDrops(evs, 'rp', N);
      assert.equal(prev, N + 1);
      assert.ok(gaps.length >= 1, `a ${N * MSG}-byte replay through a 64 KiB queue reports its drops`);
    } finally {
      c.close();
    }
  });
});

test('/ws: permessage-deflate: large and small messages arrive intact', T, async () => {
  await withHerald(async (h) => {
    const c = await openWS(wsURL(h, '/ws'), ['herald.v1'], { deflate: true });
    try {
      assert.match(c.ws.extensions, /permessage-deflate/);
      JSON.parse((await c.next()).data); // welcome
      c.send(JSON.stringify({ op: 'subscribe', channel: 'z', ref: 1 }));
      assert.equal(JSON.parse((await c.next()).data).ok, true);
      const payloads = ['tiny', 'abc'.repeat(20000), Buffer.from(nastyBytes(5000, 3))];
      for (const p of payloads) await publish(h, 'z', p);
      for (const p of payloads) {
        const m = JSON.parse((await c.next()).data);
        assert.ok(msgBytes(m).equals(Buffer.isBuffer(p) ? p : Buffer.from(p)), 'payload intact');
      }
    } finally {
      c.close();
    }
  });
});

test('/ws: resume older than history gives op:gap with requested/first_available, then what is left', T, async () => {
  await withHerald({ 'history-messages': 3 }, async (h) => {
    for (let i = 1; i <= 10; i++) await publish(h, 'g', `m${i}`);
    const c = await openJ(h);
    const edge = await openJ(h);
    const within = await openJ(h);
    try {
      const r = await c.call({ op: 'subscribe', channel: 'g', last_id: '1', ref: 'r' });
      assert.deepEqual(r.before, []);
      assert.deepEqual(r.reply, { op: 'reply', ref: 'r', ok: true, last_id: '10' });
      assert.deepEqual(await c.json(), { op: 'gap', channel: 'g', requested: '1', first_available: '8' });
      const rest = await c.sync();
      assert.deepEqual(rest.map((m) => [m.op, m.id, m.data]), [['message', '8', 'm8'], ['message', '9', 'm9'], ['message', '10', 'm10']]);
      await publish(h, 'g', 'm11');
      assert.deepEqual((await c.sync()).map((m) => m.id), ['11']);

      // 6 is just too old (7 is gone), 7 is just recent enough
      await edge.call({ op: 'subscribe', channel: 'g', last_id: 6, ref: 'e' });
      const e = await edge.sync();
      assert.deepEqual(e[0], { op: 'gap', channel: 'g', requested: '6', first_available: '9' });
      assert.deepEqual(e.slice(1).map((m) => m.id), ['9', '10', '11']);
      await within.call({ op: 'subscribe', channel: 'g', last_id: 8, ref: 'w' });
      assert.deepEqual((await within.sync()).map((m) => [m.op, m.id]), [['message', '9'], ['message', '10'], ['message', '11']]);
    } finally {
      c.close();
      edge.close();
      within.close();
    }
  });
});


/* Checks one channel's stream of messages and gap notices after a stall: ids in order outside
 * the gaps, each gap {dropped, from, to} exactly the ids missing before the next message, no
 * loss outside a reported range, payloads intact. Returns the gaps. */
function checkDrops(evs, ch, lastId) {
  let prev = 0;
  const gaps = [];
  for (const e of evs) {
    if (e.op === 'gap') {
      assert.equal(e.channel, ch);
      assert.deepEqual(Object.keys(e).sort(), ['channel', 'dropped', 'from', 'op', 'to'], `gap notice ${JSON.stringify(e)}`);
      assert.equal(typeof e.dropped, 'number');
      assert.equal(e.from, String(prev + 1), `gap starts right after the last message (${prev}): ${JSON.stringify(e)}`);
      assert.equal(Number(e.to) - Number(e.from) + 1, e.dropped, `dropped matches the range: ${JSON.stringify(e)}`);
      prev = Number(e.to);
      gaps.push(e);
    } else {
      assert.equal(e.op, 'message');
      assert.equal(e.channel, ch);
      assert.equal(Number(e.id), prev + 1, `on ${ch}, after ${prev} came ${e.id}: a message lost outside any gap`);
      prev = Number(e.id);
      if (prev <= lastId) assert.equal(e.data, big(ch, prev), `payload of ${ch} ${prev} intact`);
    }
  }
  return { gaps, prev };
}

async function stalledClient(flagsExtra, channels) {
  await withHerald({
    'max-queued-bytes': 65536, 'slow-policy': 'drop', 'history-messages': 100000, 'history-bytes': '64m', ...flagsExtra,
  }, async (h) => {
    const slow = await openJ(h);
    const fast = await openJ(h);
    try {
      for (const ch of channels) {
        await slow.call({ op: 'subscribe', channel: ch, ref: ch });
        await fast.call({ op: 'subscribe', channel: ch, ref: ch });
      }
      slow.ws.pause();
      const drops0 = (await metrics(h)).get('herald_queue_drops_total') ?? 0;
      const count = Object.fromEntries(channels.map((ch) => [ch, 0]));
      let total = 0;
      for (;;) {
        const ch = channels[total % channels.length];
        count[ch]++;
        total++;
        await publish(h, ch, big(ch, count[ch]));
        if (total % 32 === 0) {
          const drops = (await metrics(h)).get('herald_queue_drops_total') ?? 0;
          if (total * MSG >= 2 * 1024 * 1024 && drops > drops0 + 8 * channels.length) break;
          assert.ok(total * MSG < 16 * 1024 * 1024, `no drops after ${total} messages to a stalled client`);
        }
      }
      // the healthy client got everything
      const fastGot = [];
      while (fastGot.length < total) {
        const m = await fast.json(20000 * SCALE);
        assert.ok(m, 'fast client still connected');
        fastGot.push(m);
      }
      assert.ok(!fastGot.some((m) => m.op === 'gap'), 'no gap for the healthy client');

      slow.ws.resume();
      const evs = Object.fromEntries(channels.map((ch) => [ch, []]));
      const accounted = () => channels.every((ch) => {
        const l = evs[ch][evs[ch].length - 1];
        return l && Number(l.op === 'gap' ? l.to : l.id) >= count[ch];
      });
      while (!accounted()) {
        const m = await slow.json(20000 * SCALE);
        assert.ok(m, `slow client still connected under slow_policy=drop (${JSON.stringify(slow.closeInfo)})`);
        assert.ok(m.op === 'message' || m.op === 'gap', `unexpected ${JSON.stringify(m).slice(0, 200)}`);
        evs[m.channel].push(m);
      }
      // then a new message arrives normally on each channel
      for (const ch of channels) await publish(h, ch, 'after');
      const tail = await slow.sync();
      for (const m of tail) evs[m.channel].push(m);
      let gapsTotal = 0;
      for (const ch of channels) {
        const { gaps, prev } = checkDrops(evs[ch], ch, count[ch]);
        assert.equal(prev, count[ch] + 1, `${ch}: stream reached the message published after the stall`);
        assert.equal(evs[ch][evs[ch].length - 1].data, 'after');
        gapsTotal += gaps.length;
        // the dropped range can be fetched from history
        if (gaps.length) {
          const g = gaps[0];
          const j = await getJSON(h, `/sub/${ch}?mode=poll&last_id=${Number(g.from) - 1}`);
          assert.equal(j.gap, false);
          assert.equal(j.messages[0].id, g.from);
          assert.equal(j.messages[0].data, big(ch, Number(g.from)));
        }
      }
      assert.ok(gapsTotal >= 1, 'at least one gap notice');
      assert.deepEqual(await slow.sync(), [], 'nothing more');
    } finally {
      slow.close();
      fast.close();
    }
  });
}

test('/ws: slow consumer with slow_policy=drop gets op:gap {dropped, from, to}; nothing lost outside the range', T, async () => {
  await stalledClient({}, ['flood']);
});

test('/ws: slow consumer with two subscriptions on one connection: a gap per channel', T, async () => {
  await stalledClient({}, ['f1', 'f2']);
});
