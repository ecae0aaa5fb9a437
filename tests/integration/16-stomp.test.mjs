// STOMP 1.2/1.1 over WebSocket at /stomp: first with the @stomp/stompjs client (version
// negotiation, MESSAGE headers, SEND to every other transport, binary bodies with NUL bytes,
// receipts, ack modes, last-id resume, heart-beats), then raw frames over a `ws` WebSocket
// (every violation gives one ERROR frame with a message header, receipt-id when asked, then the
// close; frames split across or packed into WebSocket messages; header escaping; repeated
// headers). After each error another STOMP client on the same server still receives messages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  withHerald, publish, request, getJSON, waitFor, waitSubscribed, loadEventSource, msgBytes, nastyBytes, SCALE,
} from '../lib/herald.mjs';
import { openWS, wsURL, rawStomp, frame, stompClient } from '../lib/stomp.mjs';

const T = { timeout: 60000 * SCALE };
const EventSource = loadEventSource();

const poll = (h, ch) => getJSON(h, `/sub/${ch}?mode=poll&last_id=0`);
const bytesOf = (m) => Buffer.from(m.binaryBody);

/* ---------------------------------------------------------------- @stomp/stompjs */

test('STOMP: stompjs negotiates 1.2; a client offering only 1.1 gets 1.1', T, async () => {
  await withHerald(async (h) => {
    const c12 = await stompClient(h);
    const c11 = await stompClient(h, { versions: ['1.1'] });
    try {
      assert.equal(c12.connected.headers.version, '1.2');
      assert.equal(c12.ws.protocol, 'v12.stomp');
      assert.equal(c12.connected.headers['heart-beat'], '10000,10000');
      assert.match(c12.connected.headers.server, /^herald\//);
      assert.ok(c12.connected.headers.session, 'session header');
      assert.equal(c11.connected.headers.version, '1.1');
      assert.equal(c11.ws.protocol, 'v11.stomp');
      assert.notEqual(c11.connected.headers.session, c12.connected.headers.session, 'sessions differ');
      // both receive
      const s12 = await c12.subscribe('/topic/v');
      const s11 = await c11.subscribe('/topic/v');
      await publish(h, 'v', 'to both');
      assert.equal((await s12.next()).body, 'to both');
      const m11 = await s11.next();
      assert.equal(m11.body, 'to both');
      assert.equal(m11.headers.destination, '/topic/v');
      assert.equal(m11.headers.subscription, s11.id);
    } finally {
      await c12.close();
      await c11.close();
    }
    // raw: the highest common version wins whatever the order; STOMP works as CONNECT
    for (const [av, want, cmd] of [['1.1,1.2', '1.2', 'CONNECT'], ['1.2,1.1', '1.2', 'STOMP'], ['1.0,1.1', '1.1', 'CONNECT'],
      ['1.1', '1.1', 'STOMP'], ['1.0,1.2,2.0', '1.2', 'CONNECT']]) {
      const s = await rawStomp(h, { connect: false });
      try {
        s.send(frame(cmd, [['accept-version', av], ['host', 'x']]));
        const f = await s.expect('CONNECTED');
        assert.equal(f.get('version'), want, `${cmd} accept-version:${av}`);
      } finally {
        s.close();
      }
    }
  });
});

test('STOMP: SUBSCRIBE /topic/NAME receives POST /pub messages with the documented headers', T, async () => {
  await withHerald(async (h) => {
    const c = await stompClient(h);
    try {
      const sub = await c.subscribe('/topic/news');
      const seg = await c.subscribe('/topic/a/b.c');
      assert.equal((await getJSON(h, '/channels/news')).subscribers, 1);
      const text = 'hello ✓ world';
      const p1 = await publish(h, 'news', text);
      const p2 = await publish(h, 'news', 'alarm', { event: 'alert' });
      const bin = Buffer.from([0xff, 0x00, 0x01, 0xfe]);
      const p3 = await publish(h, 'news', bin);
      const p4 = await publish(h, 'a/b.c', 'nested');
      const m1 = await sub.next();
      assert.equal(m1.command, 'MESSAGE');
      assert.equal(m1.body, text);
      assert.equal(m1.headers.destination, '/topic/news');
      assert.equal(m1.headers['content-type'], 'text/plain;charset=utf-8');
      assert.equal(m1.headers['content-length'], String(Buffer.byteLength(text)));
      assert.equal(m1.headers['herald-id'], p1.id);
      assert.equal(m1.headers.subscription, sub.id);
      assert.ok(m1.headers['message-id'], 'message-id');
      assert.equal(m1.headers.ack, undefined, 'no ack header in auto mode');
      assert.equal(m1.headers.event, undefined, 'no event header for "message"');
      const m2 = await sub.next();
      assert.equal(m2.body, 'alarm');
      assert.equal(m2.headers.event, 'alert');
      assert.equal(m2.headers['herald-id'], p2.id);
      const m3 = await sub.next();
      assert.equal(m3.headers['content-type'], 'application/octet-stream');
      assert.equal(m3.headers['content-length'], '4');
      assert.equal(m3.headers['herald-id'], p3.id);
      assert.ok(bytesOf(m3).equals(bin), 'binary body byte-exact');
      const ids = new Set([m1, m2, m3].map((m) => m.headers['message-id']));
      assert.equal(ids.size, 3, 'message-ids are unique');
      const m4 = await seg.next();
      assert.equal(m4.headers.destination, '/topic/a/b.c');
      assert.equal(m4.headers.subscription, seg.id);
      assert.equal(m4.headers['herald-id'], p4.id);
      assert.equal(m4.body, 'nested');
      assert.equal(sub.pending() + seg.pending(), 0, 'nothing else');
    } finally {
      await c.close();
    }
  });
});

test('STOMP: SEND reaches SSE, plain WebSocket and /ws subscribers', T, async () => {
  await withHerald(async (h) => {
    const es = new EventSource(h.url('/sub/sx'));
    const sse = [];
    for (const t of ['message', 'alert']) es.addEventListener(t, (e) => sse.push({ type: t, data: e.data, id: e.lastEventId }));
    const plain = await openWS(wsURL(h, '/sub/sx'));
    const wsj = await openWS(wsURL(h, '/ws'), ['herald.v1']);
    const c = await stompClient(h);
    try {
      await wsj.next(); // welcome
      wsj.send(JSON.stringify({ op: 'subscribe', channel: 'sx', ref: 1 }));
      assert.equal(JSON.parse((await wsj.next()).data).ok, true);
      await waitFor(() => es.readyState === EventSource.OPEN, 5000 * SCALE, 'EventSource open');
      assert.ok(await waitSubscribed(h, 'sx', null, 3), 'three subscribers');
      const r1 = await c.publish({ destination: '/topic/sx', body: 'from stomp ✓' });
      assert.match(r1.headers['receipt-id'], /^send-/);
      await c.publish({ destination: '/topic/sx', body: 'alarm', headers: { event: 'alert' } });

      const p1 = await plain.next();
      const p2 = await plain.next();
      assert.deepEqual([p1.data.toString(), p2.data.toString()], ['from stomp ✓', 'alarm']);
      const j1 = JSON.parse((await wsj.next()).data);
      const j2 = JSON.parse((await wsj.next()).data);
      assert.deepEqual([j1.op, j1.channel, j1.id, j1.event, j1.data], ['message', 'sx', '1', 'message', 'from stomp ✓']);
      assert.deepEqual([j2.op, j2.channel, j2.id, j2.event, j2.data], ['message', 'sx', '2', 'alert', 'alarm']);
      await waitFor(() => sse.length >= 2, 5000 * SCALE, 'two SSE events');
      assert.deepEqual(sse, [{ type: 'message', data: 'from stomp ✓', id: '1' }, { type: 'alert', data: 'alarm', id: '2' }]);
    } finally {
      es.close();
      plain.close();
      wsj.close();
      await c.close();
    }
  });
});

test('STOMP: SEND with a binary body holding NUL bytes arrives byte-exact (poll and another STOMP client)', T, async () => {
  await withHerald(async (h) => {
    const rx = await stompClient(h);
    const tx = await stompClient(h);
    try {
      const sub = await rx.subscribe('/topic/bin');
      const body = nastyBytes(300, 7);
      body[150] = 0;
      await tx.publish({ destination: '/topic/bin', binaryBody: new Uint8Array(body), headers: { 'content-type': 'application/octet-stream' } });
      const utf = Buffer.from('a\u0000b ✓ \u0000', 'utf8');
      await tx.publish({ destination: '/topic/bin', binaryBody: new Uint8Array(utf) });
      const empty = await tx.publish({ destination: '/topic/bin', body: '' });
      assert.ok(empty);

      const j = await poll(h, 'bin');
      assert.equal(j.count, 3);
      assert.equal(j.messages[0].encoding, 'base64');
      assert.ok(msgBytes(j.messages[0]).equals(body), 'poll: binary body byte-exact');
      assert.ok(msgBytes(j.messages[1]).equals(utf), 'poll: UTF-8 body with NULs exact');
      assert.equal(j.messages[1].encoding, undefined);
      assert.equal(j.messages[2].data, '');

      const m1 = await sub.next();
      assert.equal(m1.headers['content-type'], 'application/octet-stream');
      assert.equal(m1.headers['content-length'], '300');
      assert.ok(bytesOf(m1).equals(body), 'STOMP subscriber: binary body byte-exact');
      const m2 = await sub.next();
      assert.equal(m2.headers['content-type'], 'text/plain;charset=utf-8');
      assert.ok(bytesOf(m2).equals(utf), 'STOMP subscriber: UTF-8 body with NULs exact');
      const m3 = await sub.next();
      assert.equal(m3.headers['content-length'], '0');
      assert.equal(bytesOf(m3).length, 0);
    } finally {
      await rx.close();
      await tx.close();
    }
  });
});

test('STOMP: receipts for SUBSCRIBE, SEND, UNSUBSCRIBE and DISCONNECT', T, async () => {
  await withHerald(async (h) => {
    const c = await stompClient(h);
    let disconnectFrame = null;
    c.client.onDisconnect = (f) => {
      disconnectFrame = f;
    };
    try {
      const sub = await c.subscribe('/topic/rc'); // resolved by its RECEIPT
      const bar = await c.subscribe('/topic/barrier');
      const r = await c.publish({ destination: '/topic/rc', body: 'one' });
      assert.equal(r.command, 'RECEIPT');
      assert.equal((await sub.next()).body, 'one');
      const ur = c.receipt('unsub-1');
      sub.sub.unsubscribe({ receipt: 'unsub-1' });
      assert.equal((await ur).headers['receipt-id'], 'unsub-1');
      assert.equal((await getJSON(h, '/channels/rc')).subscribers, 0, 'UNSUBSCRIBE released the subscription');
      await publish(h, 'rc', 'after unsubscribe');
      await publish(h, 'barrier', 'b');
      assert.equal((await bar.next()).body, 'b');
      assert.equal(sub.pending(), 0, 'nothing delivered after UNSUBSCRIBE');
      assert.equal(c.unhandled.length, 0);
    } finally {
      await c.close();
    }
    assert.ok(disconnectFrame, 'DISCONNECT was answered with a RECEIPT');
    assert.equal(disconnectFrame.command, 'RECEIPT');
    assert.match(disconnectFrame.headers['receipt-id'], /^close-/);

    // raw: the SUBSCRIBE receipt comes before the replay; DISCONNECT's receipt, then close 1000
    await publish(h, 'rr', 'old1');
    await publish(h, 'rr', 'old2');
    const s = await rawStomp(h);
    s.send(frame('SUBSCRIBE', [['destination', '/topic/rr'], ['id', 's1'], ['last-id', '0'], ['receipt', 'r-sub']]));
    assert.equal((await s.expect('RECEIPT')).raw('receipt-id'), 'r-sub');
    assert.equal((await s.expect('MESSAGE')).text, 'old1');
    assert.equal((await s.expect('MESSAGE')).text, 'old2');
    s.send(frame('SEND', [['destination', '/topic/rr'], ['receipt', 'r-send']], 'new'));
    const after = [await s.nextFrame(), await s.nextFrame()];
    assert.deepEqual(after.map((f) => f.command).sort(), ['MESSAGE', 'RECEIPT']);
    s.send(frame('DISCONNECT', [['receipt', 'bye-1']]));
    const bye = await s.expect('RECEIPT');
    assert.equal(bye.raw('receipt-id'), 'bye-1');
    assert.equal((await s.waitClosed()).code, 1000);
    await waitFor(async () => (await getJSON(h, '/channels/rr')).subscribers === 0, 5000 * SCALE, 'subscription released');
  });
});

test('STOMP: ack client-individual: ACK and NACK per message; a second ACK is an ERROR', T, async () => {
  await withHerald(async (h) => {
    const c = await stompClient(h);
    try {
      const sub = await c.subscribe('/topic/ci', { ack: 'client-individual' });
      for (let i = 1; i <= 3; i++) await publish(h, 'ci', `m${i}`);
      const [m1, m2, m3] = [await sub.next(), await sub.next(), await sub.next()];
      for (const m of [m1, m2, m3]) {
        assert.ok(m.headers.ack, 'ack header in client-individual mode');
        assert.equal(m.headers.ack, m.headers['message-id']);
      }
      let r = c.receipt('a2');
      m2.ack({ receipt: 'a2' });
      await r;
      r = c.receipt('n1');
      m1.nack({ receipt: 'n1' });
      await r;
      r = c.receipt('a3');
      m3.ack({ receipt: 'a3' });
      await r;
      assert.equal(c.errors.length, 0);
      // m2 is no longer pending
      m2.ack({ receipt: 'again' });
      await waitFor(() => c.errors.length === 1 && c.closes.length === 1, 5000 * SCALE, 'ERROR and close');
      assert.match(c.errors[0].headers.message, /not pending/);
      assert.equal(c.errors[0].headers['receipt-id'], 'again');
    } finally {
      await c.close();
    }
  });
});

test('STOMP: ack client is cumulative', T, async () => {
  await withHerald(async (h) => {
    const c = await stompClient(h);
    try {
      const sub = await c.subscribe('/topic/cc', { ack: 'client' });
      for (let i = 1; i <= 3; i++) await publish(h, 'cc', `m${i}`);
      const [m1, m2, m3] = [await sub.next(), await sub.next(), await sub.next()];
      assert.equal(m1.headers.ack, m1.headers['message-id']);
      let r = c.receipt('a2');
      m2.ack({ receipt: 'a2' }); // acknowledges m1 too
      await r;
      r = c.receipt('a3');
      m3.ack({ receipt: 'a3' }); // m3 was still pending
      await r;
      assert.equal(c.errors.length, 0);
      m1.ack({ receipt: 'a1' }); // covered by the ACK of m2
      await waitFor(() => c.errors.length === 1, 5000 * SCALE, 'ERROR');
      assert.match(c.errors[0].headers.message, /not pending/);
      await waitFor(() => c.closes.length === 1, 5000 * SCALE, 'close after ERROR');
    } finally {
      await c.close();
    }
  });
});

test('STOMP: 1.1 acknowledges with message-id', T, async () => {
  await withHerald(async (h) => {
    const c = await stompClient(h, { versions: ['1.1'] });
    try {
      const sub = await c.subscribe('/topic/c11', { ack: 'client-individual' });
      await publish(h, 'c11', 'x');
      await publish(h, 'c11', 'y');
      const [m1, m2] = [await sub.next(), await sub.next()];
      let r = c.receipt('a1');
      m1.ack({ receipt: 'a1' });
      await r;
      r = c.receipt('n2');
      m2.nack({ receipt: 'n2' });
      await r;
      assert.equal(c.errors.length, 0);
    } finally {
      await c.close();
    }
  });
});

test('STOMP: stomp_max_unacked: a client-ack subscription over the limit gets an ERROR', T, async () => {
  await withHerald({ 'stomp-max-unacked': 3 }, async (h) => {
    const c = await stompClient(h);
    const auto = await stompClient(h);
    try {
      const sub = await c.subscribe('/topic/mu', { ack: 'client-individual' });
      const asub = await auto.subscribe('/topic/mu');
      for (let i = 1; i <= 3; i++) await publish(h, 'mu', `m${i}`);
      const got = [await sub.next(), await sub.next(), await sub.next()];
      const r = c.receipt('a1');
      got[0].ack({ receipt: 'a1' });
      await r;
      await publish(h, 'mu', 'm4'); // 3 outstanding again: fine
      assert.equal((await sub.next()).body, 'm4');
      assert.equal(c.errors.length, 0);
      await publish(h, 'mu', 'm5'); // a 4th outstanding: over the limit
      await waitFor(() => c.errors.length === 1 && c.closes.length === 1, 5000 * SCALE, 'ERROR and close');
      assert.match(c.errors[0].headers.message, /unacknowledged/);
      // an auto subscriber has no such limit
      for (let i = 6; i <= 10; i++) await publish(h, 'mu', `m${i}`);
      const all = [];
      for (let i = 0; i < 10; i++) all.push((await asub.next()).body);
      assert.deepEqual(all, Array.from({ length: 10 }, (_, i) => `m${i + 1}`));
      assert.equal(auto.errors.length, 0);
    } finally {
      await c.close();
      await auto.close();
    }
  });
});

/* Drives a raw client-ack subscription through a deterministic mix of deliveries and ACK/NACKs
 * that wraps the server's ring of pending ids (stomp_max_unacked 4) many times; every ACK of a
 * pending id must be confirmed, and at the end an ACK of an id no longer pending is an ERROR. */
async function ackRing(h, mode) {
  const s = await rawStomp(h);
  const ch = `ring-${mode}`;
  try {
    s.send(SUB(`/topic/${ch}`, 'r', [['ack', mode], ['receipt', 'sub']]));
    await s.expect('RECEIPT');
    let pending = []; // ack ids in delivery order
    const acked = [];
    let seed = 12345;
    const rnd = (n) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    let n = 0;
    for (let step = 0; step < 120; step++) {
      if (pending.length < 4 && (pending.length === 0 || rnd(3) > 0)) {
        n++;
        await publish(h, ch, `m${n}`);
        const m = await s.expect('MESSAGE');
        assert.equal(m.text, `m${n}`);
        assert.equal(m.raw('ack'), m.raw('message-id'));
        pending.push(m.raw('ack'));
        continue;
      }
      const i = rnd(pending.length);
      const id = pending[i];
      const cmd = rnd(4) === 0 ? 'NACK' : 'ACK';
      s.send(frame(cmd, [['id', id], ['receipt', `a${step}`]]));
      const r = await s.expect('RECEIPT');
      assert.equal(r.raw('receipt-id'), `a${step}`);
      if (mode === 'client') {
        acked.push(...pending.slice(0, i + 1));
        pending = pending.slice(i + 1);
      } else {
        acked.push(id);
        pending.splice(i, 1);
      }
    }
    assert.ok(n > 20, `${n} deliveries`);
    // still pending ones can be acknowledged; an acknowledged one cannot
    for (const id of pending.slice().reverse()) {
      s.send(frame('ACK', [['id', id], ['receipt', `fin-${id}`]]));
      await s.expect('RECEIPT');
      if (mode === 'client') break; // the newest covers the rest
    }
    s.send(frame('ACK', [['id', acked[acked.length - 1]], ['receipt', 'late']]));
    const e = await s.expect('ERROR');
    assert.equal(e.raw('receipt-id'), 'late');
    assert.match(e.get('message'), /pending/);
    await s.waitClosed();
  } finally {
    s.close();
  }
}

test('STOMP: the pending-ack ring wraps correctly (client and client-individual, stomp_max_unacked 4)', T, async () => {
  await withHerald({ 'stomp-max-unacked': 4 }, async (h) => {
    await ackRing(h, 'client-individual');
    await ackRing(h, 'client');
  });
});

test('STOMP: 256 subscriptions per connection (max_subscriptions); the 257th is an ERROR', T, async () => {
  await withHerald({ 'max-subscriptions': 256 }, async (h) => {
    const s = await rawStomp(h);
    try {
      const frames = [];
      for (let i = 0; i < 255; i++) frames.push(SUB(`/topic/s${i}`, `id${i}`));
      frames.push(SUB('/topic/s255', 'id255', [['receipt', 'r256']]));
      s.send(Buffer.concat(frames));
      assert.equal((await s.expect('RECEIPT')).raw('receipt-id'), 'r256', '256 subscriptions accepted');
      await publish(h, 's255', 'to the 256th');
      assert.equal((await s.expect('MESSAGE')).raw('subscription'), 'id255');
      s.send(SUB('/topic/s256', 'over', [['receipt', 'r257']]));
      const e = await s.expect('ERROR');
      assert.equal(e.raw('receipt-id'), 'r257');
      await s.waitClosed();
      await waitFor(async () => (await getJSON(h, '/channels/s0')).subscribers === 0, 5000 * SCALE, 'subscriptions released');
    } finally {
      s.close();
    }
  });
});

test('STOMP: last-id resumes from history, then live', T, async () => {
  await withHerald(async (h) => {
    for (let i = 1; i <= 5; i++) await publish(h, 'res', `m${i}`);
    const c = await stompClient(h);
    try {
      const sub = await c.subscribe('/topic/res', { 'last-id': '2' });
      const all = await c.subscribe('/topic/res', { 'last-id': '0' });
      const none = await c.subscribe('/topic/res', { 'last-id': '5' });
      await publish(h, 'res', 'm6');
      const got = [];
      for (let i = 0; i < 4; i++) got.push(await sub.next());
      assert.deepEqual(got.map((m) => [m.headers['herald-id'], m.body]), [['3', 'm3'], ['4', 'm4'], ['5', 'm5'], ['6', 'm6']]);
      const gotAll = [];
      for (let i = 0; i < 6; i++) gotAll.push((await all.next()).headers['herald-id']);
      assert.deepEqual(gotAll, ['1', '2', '3', '4', '5', '6']);
      assert.equal((await none.next()).headers['herald-id'], '6');
      assert.equal(sub.pending() + all.pending() + none.pending(), 0);
    } finally {
      await c.close();
    }
  });
});

test('STOMP: a last-id older than history gets a herald-gap MESSAGE first (ackable), then what is left', T, async () => {
  await withHerald({ 'history-messages': 3 }, async (h) => {
    for (let i = 1; i <= 6; i++) await publish(h, 'gone', `m${i}`);
    const c = await stompClient(h);
    try {
      const sub = await c.subscribe('/topic/gone', { 'last-id': '1', ack: 'client-individual' });
      const gap = await sub.next();
      assert.equal(gap.headers['herald-gap'], 'true');
      assert.equal(gap.headers['content-type'], 'application/json');
      assert.deepEqual(JSON.parse(gap.body), { channel: 'gone', requested: '1', first_available: '4' });
      gap.ack(); // acknowledging the notice is allowed and changes nothing
      const got = [];
      for (let i = 0; i < 3; i++) {
        const m = await sub.next();
        got.push([m.headers['herald-id'], m.body]);
        m.ack();
      }
      assert.deepEqual(got, [['4', 'm4'], ['5', 'm5'], ['6', 'm6']]);
      await c.publish({ destination: '/topic/other', body: 'still connected' }); // no ERROR after the ACKs
      assert.equal(c.errors.length, 0);
    } finally {
      await c.close();
    }
  });
});

test('STOMP: heart-beats: CONNECTED offers stomp_heartbeat; the server sends EOLs and drops silent clients', T, async () => {
  await withHerald({ 'stomp-heartbeat': 0.2 }, async (h) => {
    const c = await stompClient(h, { heartbeatIncoming: 200, heartbeatOutgoing: 200 });
    const quiet = await rawStomp(h, { connectHeaders: [['accept-version', '1.2'], ['heart-beat', '0,0']] });
    const wants = await rawStomp(h, { connectHeaders: [['accept-version', '1.2'], ['heart-beat', '0,100']] });
    const silent = await rawStomp(h, { connectHeaders: [['accept-version', '1.2'], ['heart-beat', '100,0']] });
    try {
      assert.equal(c.connected.headers['heart-beat'], '200,200');
      assert.equal(quiet.connected.get('heart-beat'), '200,200');
      await waitFor(() => c.heartbeats >= 5, 5000 * SCALE, 'server heart-beats seen by stompjs');
      await waitFor(() => wants.heartbeats >= 3, 5000 * SCALE, 'server heart-beats on the raw client that asked');
      assert.equal(quiet.heartbeats, 0, 'no heart-beats to a client that did not want them');
      // the silent client (it promised one every 200 ms) is dropped after twice that
      const err = await silent.expect('ERROR', 5000 * SCALE);
      assert.match(err.get('message'), /heart-beat/);
      await silent.waitClosed();
      // the stompjs client, which sends its heart-beats, is still connected and receives
      assert.equal(c.closes.length, 0);
      assert.equal(c.errors.length, 0);
      const sub = await c.subscribe('/topic/hb');
      await publish(h, 'hb', 'alive');
      assert.equal((await sub.next()).body, 'alive');
      assert.equal(quiet.conn.closeInfo, null, 'the client without heart-beats is not dropped');
    } finally {
      await c.close();
      quiet.close();
      wants.close();
      silent.close();
    }
  });
  await withHerald({ 'stomp-heartbeat': 0 }, async (h) => {
    const s = await rawStomp(h, { connectHeaders: [['accept-version', '1.2'], ['heart-beat', '100,100']] });
    try {
      assert.equal(s.connected.get('heart-beat'), '0,0');
    } finally {
      s.close();
    }
  });
});

/* ---------------------------------------------------------------- raw frames: errors */

/* Sets up a watcher (another STOMP client on /topic/alive) and returns check(name): a message
 * published after an error still reaches it. */
async function aliveWatcher(h) {
  const w = await stompClient(h);
  const sub = await w.subscribe('/topic/alive');
  let n = 0;
  return {
    async check(name) {
      n++;
      await publish(h, 'alive', `after ${name}`);
      const m = await sub.next();
      assert.equal(m.body, `after ${name}`, `the watcher still receives after "${name}"`);
      assert.equal(w.errors.length + w.closes.length, 0);
    },
    close: () => w.close(),
  };
}

/* One error case on a fresh raw session: optional setup frames (each with the frame it waits
 * for), then the bad bytes; expects exactly one ERROR frame (message header, receipt-id as
 * asked), nothing after it, and the close. */
async function stompError(h, c) {
  const s = await rawStomp(h, { connect: c.connect !== false, connectHeaders: c.connectHeaders });
  try {
    for (const [bytes, waitCmd] of c.setup || []) {
      s.send(bytes);
      if (waitCmd) await s.expect(waitCmd);
    }
    for (const b of [].concat(c.bytes)) s.send(b);
    const err = await s.expect('ERROR');
    const msg = err.get('message');
    assert.ok(msg && msg.length > 0, `${c.name}: ERROR has a message header`);
    if (c.message) assert.match(msg, c.message, `${c.name}: message header`);
    assert.equal(err.raw('receipt-id'), c.receipt, `${c.name}: receipt-id`);
    if (c.check) c.check(err);
    const ci = await s.waitClosed();
    assert.ok([1002, 1003, 1007, 1008, 1009].includes(ci.code), `${c.name}: closed with a Close frame after the ERROR (code ${ci.code})`);
    assert.equal(s.frames[s.frames.length - 1], err, `${c.name}: nothing after the ERROR`);
    assert.equal(s.frames.filter((f) => f.command === 'ERROR').length, 1, `${c.name}: one ERROR frame`);
    return err;
  } finally {
    s.close();
  }
}

const SEND = (dest, extra = [], body = 'x') => frame('SEND', [['destination', dest], ...extra], body);
const SUB = (dest, id, extra = []) => frame('SUBSCRIBE', [['destination', dest], ['id', id], ...extra]);

const ERROR_CASES = [
  { name: 'frame before CONNECT', connect: false, bytes: SEND('/topic/nc', [['receipt', 'r-nc']]), receipt: 'r-nc', message: /CONNECT/ },
  { name: 'SUBSCRIBE before CONNECT', connect: false, bytes: SUB('/topic/nc', '1') },
  { name: 'unknown command', bytes: frame('FOO'), message: /unknown command/ },
  { name: 'lower-case command', bytes: 'send\ndestination:/topic/nc\n\nx\0' },
  { name: 'server frame from the client', bytes: frame('MESSAGE', [['receipt', 'r-m']]), receipt: 'r-m' },
  { name: 'header line without ":"', bytes: 'SEND\ndestination/topic/nc\n\nx\0', message: /:/ },
  { name: 'undefined escape \\t in a SEND header', bytes: 'SEND\ndestination:/topic/nc\nfoo:bar\\tbaz\n\nx\0', message: /escape/ },
  { name: 'backslash at the end of a header', bytes: 'SEND\ndestination:/topic/nc\nfoo:bar\\\n\nx\0', message: /escape/ },
  { name: 'CR not followed by LF', bytes: 'SEND\rdestination:/topic/nc\n\nx\0' },
  { name: 'SEND without destination', bytes: frame('SEND', [['receipt', 'r-md']], 'x'), receipt: 'r-md', message: /destination/ },
  { name: 'SUBSCRIBE without destination', bytes: frame('SUBSCRIBE', [['id', '1'], ['receipt', 'r-md2']]), receipt: 'r-md2', message: /destination/ },
  { name: 'SEND to /exchange/x', bytes: SEND('/exchange/x', [['receipt', 'r-q']]), receipt: 'r-q', message: /destination/ },
  { name: 'SUBSCRIBE to /temp-queue/x', bytes: SUB('/temp-queue/x', '1', [['receipt', 'r-q2']]), receipt: 'r-q2' },
  { name: 'SUBSCRIBE to /app/x (only sent to)', bytes: SUB('/app/x', '1', [['receipt', 'r-q3']]), receipt: 'r-q3', message: /destination/ },
  { name: 'SEND to /topic/ (no name)', bytes: SEND('/topic/') },
  { name: 'SEND to an invalid channel', bytes: SEND('/topic/a//b') },
  { name: 'SUBSCRIBE without id', bytes: frame('SUBSCRIBE', [['destination', '/topic/t'], ['receipt', 'r-id']]), receipt: 'r-id', message: /id/ },
  { name: 'SUBSCRIBE with an empty id', bytes: SUB('/topic/t', '') },
  { name: 'SUBSCRIBE id over 128 bytes', bytes: SUB('/topic/t', 'i'.repeat(129)) },
  {
    name: 'duplicate subscription id',
    setup: [[SUB('/topic/t', 'dup', [['receipt', 'ok']]), 'RECEIPT']],
    bytes: SUB('/topic/other', 'dup', [['receipt', 'r-dup']]),
    receipt: 'r-dup',
  },
  { name: 'UNSUBSCRIBE of an unknown id', bytes: frame('UNSUBSCRIBE', [['id', 'nope'], ['receipt', 'r-un']]), receipt: 'r-un' },
  { name: 'UNSUBSCRIBE without id', bytes: frame('UNSUBSCRIBE') },
  { name: 'ACK of a non-pending id', bytes: frame('ACK', [['id', '99-1'], ['receipt', 'r-ack']]), receipt: 'r-ack', message: /pending/ },
  { name: 'NACK of a non-pending id', bytes: frame('NACK', [['id', '1-1']]), message: /pending/ },
  { name: 'ACK with a malformed id', bytes: frame('ACK', [['id', 'abc']]) },
  { name: 'ACK without id', bytes: frame('ACK') },
  {
    name: 'ACK of an auto-mode message',
    setup: [[SUB('/topic/auto', 'a', [['receipt', 'ok']]), 'RECEIPT'], [SEND('/topic/auto'), 'MESSAGE']],
    bytes: null, // filled in by the test: ACK of the MESSAGE's message-id
  },
  { name: 'bad ack mode', bytes: SUB('/topic/t', '1', [['ack', 'bogus'], ['receipt', 'r-am']]), receipt: 'r-am', message: /ack/ },
  {
    name: 'CONNECT with accept-version:1.0 only',
    connect: false,
    bytes: frame('CONNECT', [['accept-version', '1.0'], ['host', 'x']]),
    check: (e) => assert.equal(e.raw('version'), '1.1,1.2'),
  },
  {
    name: 'CONNECT without accept-version (1.0)',
    connect: false,
    bytes: frame('CONNECT', [['host', 'x']]),
    check: (e) => assert.equal(e.raw('version'), '1.1,1.2'),
  },
  { name: 'CONNECT twice', bytes: frame('CONNECT', [['accept-version', '1.2'], ['receipt', 'r-c2']]), receipt: 'r-c2' },
  ...['abc', '10', '1,2,3', '-1,0', '1, 2', ',', '99999999999,0'].map((hb) => ({
    name: `malformed heart-beat ${hb}`,
    connect: false,
    bytes: frame('CONNECT', [['accept-version', '1.2'], ['heart-beat', hb]]),
    message: /heart-beat/,
  })),
  { name: 'BEGIN without a transaction header', bytes: frame('BEGIN', [['receipt', 'r-b']]), receipt: 'r-b', message: /transaction/ },
  {
    name: 'BEGIN of an open transaction',
    setup: [[frame('BEGIN', [['transaction', 't1'], ['receipt', 'b1']]), 'RECEIPT']],
    bytes: frame('BEGIN', [['transaction', 't1']]),
    message: /already open/,
  },
  { name: 'COMMIT of no open transaction', bytes: frame('COMMIT', [['transaction', 't1']]), message: /transaction/ },
  { name: 'ABORT of no open transaction', bytes: frame('ABORT', [['transaction', 't1']]), message: /transaction/ },
  { name: 'SEND in no open transaction', bytes: SEND('/topic/nc', [['transaction', 't1'], ['receipt', 'r-tx']]), receipt: 'r-tx', message: /transaction/ },
  {
    name: 'ACK in a transaction of a message that is not pending fails at COMMIT',
    setup: [
      [frame('BEGIN', [['transaction', 't2'], ['receipt', 'b2']]), 'RECEIPT'],
      [frame('ACK', [['id', '5-1'], ['transaction', 't2'], ['receipt', 'a2']]), 'RECEIPT'],
    ],
    bytes: frame('COMMIT', [['transaction', 't2'], ['receipt', 'c2']]),
    receipt: 'c2',
    message: /not pending/,
  },
  { name: 'SEND with an invalid event header', bytes: SEND('/topic/nc', [['event', 'bad event']]), message: /event/ },
  { name: 'content-length not matching the body', bytes: 'SEND\ndestination:/topic/nc\ncontent-length:3\n\nabcdef\0', message: /NUL/ },
  { name: 'content-length not a number', bytes: 'SEND\ndestination:/topic/nc\ncontent-length:3x\n\nabc\0' },
  { name: 'SUBSCRIBE with a malformed last-id', bytes: SUB('/topic/t', '1', [['last-id', 'abc'], ['receipt', 'r-li']]), receipt: 'r-li' },
  {
    name: 'undefined escape \\r in 1.1',
    connectHeaders: [['accept-version', '1.1']],
    bytes: 'SUBSCRIBE\ndestination:/topic/t\nid:a\\rb\n\n\0',
    message: /escape/,
  },
  {
    name: 'frames after a bad one in the same message are ignored',
    bytes: 'COMMIT\ntransaction:none\n\n\0' + 'SEND\ndestination:/topic/nc\n\nignored\0',
  },
];

test('STOMP raw: every violation gets one ERROR (message, receipt-id when asked), then the close', T, async () => {
  await withHerald(async (h) => {
    const watcher = await aliveWatcher(h);
    try {
      for (const c of ERROR_CASES) {
        if (c.name === 'ACK of an auto-mode message') {
          const s = await rawStomp(h);
          try {
            s.send(SUB('/topic/auto', 'a', [['receipt', 'ok']]));
            await s.expect('RECEIPT');
            await publish(h, 'auto', 'x');
            const m = await s.expect('MESSAGE');
            assert.equal(m.raw('ack'), undefined);
            s.send(frame('ACK', [['id', m.raw('message-id')], ['receipt', 'r-auto']]));
            const e = await s.expect('ERROR');
            assert.equal(e.raw('receipt-id'), 'r-auto');
            assert.match(e.get('message'), /pending/);
            assert.ok((await s.waitClosed()).code >= 1002);
          } finally {
            s.close();
          }
        } else {
          await stompError(h, c);
        }
        await watcher.check(c.name);
      }
      // nothing the rejected frames carried was published
      assert.equal((await getJSON(h, '/channels/nc')).last_id, '0', 'no rejected SEND published anything');
      assert.equal((await getJSON(h, '/channels/t')).subscribers, 0);
    } finally {
      await watcher.close();
    }
  });
});

test('STOMP raw: a malformed frame whose receipt header was readable gets receipt-id in its ERROR', T, async () => {
  // README: every violation, "malformed header or escape" included, gets an ERROR "(and
  // receipt-id when asked)". Here the receipt header is well-formed and comes before the fault.
  await withHerald(async (h) => {
    const watcher = await aliveWatcher(h);
    try {
      const missing = [];
      for (const [name, bytes, rid] of [
        ['undefined escape in a later header', 'SEND\ndestination:/topic/m\nreceipt:r-esc\nfoo:bar\\tbaz\n\nx\0', 'r-esc'],
        ['content-length not matching the body', 'SEND\ndestination:/topic/m\nreceipt:r-cl\ncontent-length:3\n\nabcdef\0', 'r-cl'],
        ['invalid content-length', 'SEND\ndestination:/topic/m\nreceipt:r-icl\ncontent-length:x\n\nabc\0', 'r-icl'],
      ]) {
        const s = await rawStomp(h);
        try {
          s.send(bytes);
          const e = await s.expect('ERROR');
          assert.ok(e.get('message'));
          if (e.raw('receipt-id') !== rid) missing.push(`${name}: receipt-id ${e.raw('receipt-id')} (want ${rid})`);
          await s.waitClosed();
        } finally {
          s.close();
        }
        await watcher.check(name);
      }
      assert.deepEqual(missing, []);
    } finally {
      await watcher.close();
    }
  });
});

test('STOMP raw: SEND with client_publish = false gets an ERROR; subscribing still works', T, async () => {
  await withHerald({ 'client-publish': 'false' }, async (h) => {
    const watcher = await aliveWatcher(h);
    try {
      await stompError(h, { name: 'SEND disabled', bytes: SEND('/topic/ro', [['receipt', 'r-ro']]), receipt: 'r-ro', message: /publish/ });
      assert.equal((await getJSON(h, '/channels/ro')).last_id, '0');
      await watcher.check('SEND disabled');
      // stompjs sees the ERROR too
      const c = await stompClient(h);
      try {
        c.client.publish({ destination: '/topic/ro', body: 'x' });
        await waitFor(() => c.errors.length === 1 && c.closes.length === 1, 5000 * SCALE, 'ERROR and close');
      } finally {
        await c.close();
      }
      await watcher.check('stompjs SEND disabled');
    } finally {
      await watcher.close();
    }
  });
});

test('STOMP raw: bodies over ws_max_message get an ERROR; within it, split bodies are fine', T, async () => {
  await withHerald({ 'ws-max-message': '1k' }, async (h) => {
    const watcher = await aliveWatcher(h);
    try {
      // the content-length alone says it is too large
      await stompError(h, {
        name: 'content-length over the limit',
        bytes: 'SEND\ndestination:/topic/big\ncontent-length:2000\nreceipt:r-big\n\n',
        message: /large/,
        receipt: 'r-big',
      });
      await watcher.check('content-length over the limit');
      // no content-length: the body grows over the limit across WebSocket messages
      await stompError(h, {
        name: 'body over the limit across messages',
        bytes: ['SEND\ndestination:/topic/big\n\n', 'y'.repeat(600), 'y'.repeat(600), 'y'.repeat(600) + '\0'],
        message: /large/,
      });
      await watcher.check('body over the limit across messages');
      assert.equal((await getJSON(h, '/channels/big')).last_id, '0');
      // a body just within the limit, in two messages, is published
      const s = await rawStomp(h);
      try {
        s.send('SEND\ndestination:/topic/big\nreceipt:ok\n\n' + 'z'.repeat(500));
        s.send('z'.repeat(500) + '\0');
        await s.expect('RECEIPT');
      } finally {
        s.close();
      }
      const j = await poll(h, 'big');
      assert.equal(j.messages[0].data, 'z'.repeat(1000));
      // one WebSocket message over ws_max_message is refused by the WebSocket layer: 1009
      const t = await rawStomp(h);
      t.send(SEND('/topic/big', [], 'w'.repeat(2000)));
      assert.equal((await t.waitClosed()).code, 1009);
      await watcher.check('oversized WebSocket message');
      assert.equal((await getJSON(h, '/channels/big')).last_id, '1');
    } finally {
      await watcher.close();
    }
  });
});

/* ---------------------------------------------------------------- raw frames: framing */

test('STOMP raw: frames split across WebSocket messages, several frames in one message', T, async () => {
  await withHerald(async (h) => {
    const rx = await stompClient(h);
    const s = await rawStomp(h);
    try {
      const sub = await rx.subscribe('/topic/split');
      // split in a header
      s.send('SEND\ndestination:/to');
      s.send('pic/split\n\nhello\0');
      assert.equal((await sub.next()).body, 'hello');
      // split between CR and LF
      s.send('SEND\r');
      s.send('\ndestination:/topic/split\r\n\r\nbody2\0');
      assert.equal((await sub.next()).body, 'body2');
      // split in a content-length body holding a NUL
      s.send('SEND\ndestination:/topic/split\ncontent-length:5\n\nab\0');
      s.send('cd\0');
      assert.ok(bytesOf(await sub.next()).equals(Buffer.from('ab\0cd')));
      // one byte per message
      const whole = frame('SEND', [['destination', '/topic/split'], ['event', 'bytewise']], 'one byte at a time');
      for (const b of whole) s.send(Buffer.from([b]), true);
      const bw = await sub.next();
      assert.equal(bw.body, 'one byte at a time');
      assert.equal(bw.headers.event, 'bytewise');
      // two frames in one message, with heart-beat EOLs around them
      s.send(Buffer.concat([Buffer.from('\n\r\n'), frame('SEND', [['destination', '/topic/split']], 'first'), Buffer.from('\n'),
        frame('SEND', [['destination', '/topic/split']], 'second'), Buffer.from('\n\n')]));
      assert.equal((await sub.next()).body, 'first');
      assert.equal((await sub.next()).body, 'second');
      // a frame's end and the next one's start in one message
      s.send(Buffer.concat([frame('SEND', [['destination', '/topic/split']], 'third'), Buffer.from('SEND\ndestination:/topic/sp')]));
      s.send('lit\n\nfourth\0');
      assert.equal((await sub.next()).body, 'third');
      assert.equal((await sub.next()).body, 'fourth');
      // SUBSCRIBE and SEND in one message: the subscription sees the SEND
      s.send(Buffer.concat([SUB('/topic/self', 'me', [['receipt', 'r1']]), SEND('/topic/self', [], 'to myself')]));
      assert.equal((await s.expect('RECEIPT')).raw('receipt-id'), 'r1');
      const m = await s.expect('MESSAGE');
      assert.equal(m.text, 'to myself');
      assert.equal(m.raw('subscription'), 'me');
      assert.equal(sub.pending(), 0);
      const j = await poll(h, 'split');
      assert.equal(j.count, 8);
      assert.equal(s.conn.closeInfo, null);
    } finally {
      await rx.close();
      s.close();
    }
  });
});

test('STOMP raw: MESSAGE frames go as WebSocket text when UTF-8, binary otherwise', T, async () => {
  await withHerald(async (h) => {
    const s = await rawStomp(h);
    try {
      s.send(SUB('/topic/wt', 'w', [['receipt', 'r']]));
      await s.expect('RECEIPT');
      await publish(h, 'wt', 'text ✓');
      const n0 = s.wsMessages.length;
      await publish(h, 'wt', Buffer.from([0xff, 0x00]));
      const m1 = await s.expect('MESSAGE');
      const m2 = await s.expect('MESSAGE');
      assert.equal(m1.text, 'text ✓');
      assert.ok(m2.body.equals(Buffer.from([0xff, 0x00])));
      const msgs = s.wsMessages.filter((x) => x.data.toString('latin1').startsWith('MESSAGE'));
      assert.deepEqual(msgs.map((x) => x.binary), [false, true]);
      assert.ok(s.wsMessages.length > n0);
    } finally {
      s.close();
    }
  });
});

test('STOMP raw: a subscription id that is not UTF-8 makes its MESSAGE frames binary WebSocket messages', T, async () => {
  await withHerald(async (h) => {
    const s = await rawStomp(h);
    try {
      const id = Buffer.from([0x69, 0xff, 0x6a]);
      s.send(Buffer.concat([Buffer.from('SUBSCRIBE\ndestination:/topic/nu\nid:'), id, Buffer.from('\nreceipt:ok\n\n\0')]), true);
      await s.expect('RECEIPT');
      await publish(h, 'nu', 'plain text');
      const m = await s.expect('MESSAGE');
      assert.equal(m.text, 'plain text');
      const last = s.wsMessages[s.wsMessages.length - 1];
      assert.equal(last.binary, true, 'a text frame must be valid UTF-8, so this MESSAGE goes binary');
      assert.ok(last.data.includes(Buffer.concat([Buffer.from('subscription:'), id, Buffer.from('\n')])), 'subscription id bytes as sent');
      assert.equal(s.conn.closeInfo, null);
    } finally {
      s.close();
    }
  });
});

test('STOMP raw: RECEIPT and ERROR frames echoing a non-UTF-8 receipt header are still valid WebSocket messages', T, async () => {
  // The server never sends invalid UTF-8 in a WebSocket text message (RFC 6455 8.1; the client
  // fails the connection): MESSAGE frames already switch to binary for such ids. RECEIPT and
  // ERROR frames that carry the receipt back must do the same (or refuse with a valid ERROR).
  await withHerald(async (h) => {
    const watcher = await aliveWatcher(h);
    try {
      const bad = Buffer.from([0x72, 0xff, 0x31]);
      const problems = [];
      for (const [name, dest] of [['RECEIPT for SEND', '/topic/u'], ['ERROR for an unsupported destination', '/exchange/u']]) {
        const s = await rawStomp(h);
        try {
          s.send(Buffer.concat([Buffer.from(`SEND\ndestination:${dest}\nreceipt:`), bad, Buffer.from('\n\nx\0')]), true);
          const f = await s.nextFrame(5000 * SCALE);
          if (!f) problems.push(`${name}: no frame, connection failed with ${JSON.stringify(s.conn.closeInfo)}`);
          else assert.ok(['RECEIPT', 'ERROR'].includes(f.command), `${name}: ${f.command}`);
          if (f?.command === 'ERROR') await s.waitClosed();
        } finally {
          s.close();
        }
        await watcher.check(name);
      }
      assert.deepEqual(problems, []);
    } finally {
      await watcher.close();
    }
  });
});

test('STOMP raw: header escaping round-trips; CONNECT is not unescaped; the first repeated header wins', T, async () => {
  await withHerald(async (h) => {
    // 1.2: \c \n \\ \r in a subscription id come back escaped in MESSAGE
    const s = await rawStomp(h);
    const s11 = await rawStomp(h, { connectHeaders: [['accept-version', '1.1']] });
    try {
      const escId = 'a\\cb\\nc\\\\d\\re';
      s.send(frame('SUBSCRIBE', [['destination', '/topic/esc'], ['id', escId], ['receipt', 'r\\c1']]));
      const rc = await s.expect('RECEIPT');
      assert.equal(rc.raw('receipt-id'), 'r\\c1', 'receipt-id escaped as sent');
      assert.equal(rc.get('receipt-id'), 'r:1');
      const p = await publish(h, 'esc', 'e');
      const m = await s.expect('MESSAGE');
      assert.equal(m.raw('subscription'), escId, 'subscription header escaped in MESSAGE');
      assert.equal(m.get('subscription'), 'a:b\nc\\d\re');
      assert.equal(m.raw('herald-id'), p.id);
      // the escaped id names the subscription for UNSUBSCRIBE
      s.send(frame('UNSUBSCRIBE', [['id', escId], ['receipt', 'u']]));
      await s.expect('RECEIPT');
      assert.equal((await getJSON(h, '/channels/esc')).subscribers, 0);
      // a destination with an escaped ':' is channel x:y, and MESSAGE escapes it back
      s.send(frame('SUBSCRIBE', [['destination', '/topic/x\\cy'], ['id', 'xy'], ['receipt', 'r2']]));
      await s.expect('RECEIPT');
      await publish(h, 'x:y', 'colon');
      const mx = await s.expect('MESSAGE');
      assert.equal(mx.raw('destination'), '/topic/x\\cy');
      assert.equal(mx.text, 'colon');

      // 1.1: \c and \n, no \r
      s11.send(frame('SUBSCRIBE', [['destination', '/topic/esc'], ['id', 'x\\cy\\nz'], ['receipt', 'r']]));
      await s11.expect('RECEIPT');
      await publish(h, 'esc', 'e11');
      const m11 = await s11.expect('MESSAGE');
      assert.equal(m11.raw('subscription'), 'x\\cy\\nz');
    } finally {
      s.close();
      s11.close();
    }

    // CONNECT headers are taken raw: a backslash there is no escape error
    const c = await rawStomp(h, { connectHeaders: [['accept-version', '1.2'], ['login', 'a\\tb'], ['passcode', 'p\\q']] });
    assert.equal(c.connected.command, 'CONNECTED');
    c.close();

    // repeated headers: the first occurrence wins
    const r = await rawStomp(h);
    try {
      r.send(frame('SEND', [['destination', '/topic/first'], ['destination', '/topic/second'], ['event', 'one'], ['event', 'two'],
        ['receipt', 'rep']], 'dup'));
      await r.expect('RECEIPT');
      const first = await poll(h, 'first');
      assert.equal(first.count, 1);
      assert.equal(first.messages[0].event, 'one');
      assert.equal(first.messages[0].data, 'dup');
      assert.equal((await poll(h, 'second')).count, 0);
      r.send('SEND\ndestination:/topic/cl\ncontent-length:3\ncontent-length:5\nreceipt:cl\n\nabc\0');
      await r.expect('RECEIPT');
      assert.equal((await poll(h, 'cl')).messages[0].data, 'abc');
      r.send(frame('SUBSCRIBE', [['destination', '/topic/rid'], ['id', 'first'], ['id', 'second'], ['receipt', 'rs']]));
      await r.expect('RECEIPT');
      await publish(h, 'rid', 'x');
      assert.equal((await r.expect('MESSAGE')).raw('subscription'), 'first');
      r.send(frame('UNSUBSCRIBE', [['id', 'first'], ['receipt', 'ru']]));
      await r.expect('RECEIPT');
    } finally {
      r.close();
    }
  });
});

test('STOMP declines permessage-deflate', T, async () => {
  await withHerald(async (h) => {
    const c = await openWS(wsURL(h, '/stomp'), ['v12.stomp'], { deflate: true });
    try {
      assert.equal(c.ws.extensions, '');
      assert.equal(c.protocol, 'v12.stomp');
    } finally {
      c.close();
    }
  });
});

test('STOMP: a plain GET on /stomp is refused with 426', T, async () => {
  await withHerald(async (h) => {
    const r = await request(h, 'GET', '/stomp');
    assert.equal(r.status, 426);
  });
});

test('STOMP transactions: SENDs are held until COMMIT, in order; ABORT and DISCONNECT drop them', T, async () => {
  await withHerald(async (h) => {
    const s = await rawStomp(h);
    const sub = await rawStomp(h);
    try {
      sub.send(SUB('/topic/tx', 's1', [['receipt', 'sub']]));
      await sub.expect('RECEIPT');
      s.send(frame('BEGIN', [['transaction', 'a'], ['receipt', 'b']]));
      await s.expect('RECEIPT');
      s.send(SEND('/topic/tx', [['transaction', 'a'], ['receipt', 's1']], 'one'));
      await s.expect('RECEIPT');
      s.send(SEND('/topic/tx', [['transaction', 'a']], 'two'));
      // a second transaction aborted: its SEND never happens
      s.send(frame('BEGIN', [['transaction', 'b']]));
      s.send(SEND('/topic/tx', [['transaction', 'b']], 'aborted'));
      s.send(frame('ABORT', [['transaction', 'b'], ['receipt', 'ab']]));
      await s.expect('RECEIPT');
      // a SEND outside the transaction goes at once, before the held ones
      s.send(SEND('/topic/tx', [['receipt', 'now']], 'zero'));
      await s.expect('RECEIPT');
      assert.equal((await getJSON(h, '/channels/tx')).last_id, '1', 'held SENDs are not published before COMMIT');
      s.send(frame('COMMIT', [['transaction', 'a'], ['receipt', 'c']]));
      const r = await s.expect('RECEIPT');
      assert.equal(r.get('receipt-id'), 'c');
      const bodies = [];
      for (let i = 0; i < 3; i++) bodies.push((await sub.expect('MESSAGE')).text);
      assert.deepEqual(bodies, ['zero', 'one', 'two']);
      // a transaction still open when the client disconnects is dropped
      s.send(frame('BEGIN', [['transaction', 'c']]));
      s.send(SEND('/topic/tx', [['transaction', 'c']], 'never'));
      s.send(frame('DISCONNECT', [['receipt', 'bye']]));
      await s.expect('RECEIPT');
      await s.waitClosed();
      assert.equal((await getJSON(h, '/channels/tx')).last_id, '3', 'a transaction open at DISCONNECT is aborted');
    } finally {
      s.close();
      sub.close();
    }
  });
});

test('STOMP: a WebSocket that sends no CONNECT within header_timeout gets an ERROR and is closed (counted)', T, async () => {
  await withHerald({ header_timeout: 0.3 }, async (h) => {
    const s = await rawStomp(h, { connect: false });
    const t0 = Date.now();
    const err = await s.expect('ERROR', 3000 * SCALE);
    assert.equal(err.get('message'), 'no CONNECT in time');
    assert.ok(Date.now() - t0 >= 200, 'not before the deadline');
    assert.equal((await s.waitClosed()).code, 1008);
    const m = await request(h, 'GET', '/metrics');
    assert.match(m.text, /herald_connect_timeouts_total 1\n/);
    /* a client that connects in time is not affected (no heart-beats: the deadline is stopped) */
    const ok = await rawStomp(h);
    await new Promise((r) => setTimeout(r, 600));
    ok.send(frame('SUBSCRIBE', [['id', '1'], ['destination', '/topic/t'], ['receipt', 'r']]));
    assert.equal((await ok.expect('RECEIPT')).get('receipt-id'), 'r');
    ok.close();
  });
});
