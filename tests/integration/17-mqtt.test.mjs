// MQTT 3.1.1 / 5.0 (first slice): real clients (mosquitto_pub/sub, MQTT.js over TCP and over
// WebSocket at /mqtt, python paho-mqtt via py/mqtt_client.py) for wildcards, QoS 0/1/2 both ways,
// retained messages, wills, session takeover, assigned client ids, shared subscriptions,
// no-local and subscription identifiers; cross-transport delivery (POST /pub -> MQTT at the
// subscription's QoS; MQTT -> SSE, poll history, WebSocket /sub and /ws); then raw TCP clients
// (tests/lib/mqttraw.mjs) for QoS 2 exactly-once, keepalive, and every protocol violation
// (each followed by a check that another client on the same server still receives).
//
// Persistent sessions, offline queues, redelivery, will delay, message expiry, topic aliases,
// flow control and property pass-through are in 18-mqtt-sessions.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mq, tcpURL, wsMqttURL } from '../lib/mqttjs.mjs';
import {
  withHerald, startHerald, publish, request, getJSON, waitFor, waitSubscribed, withTimeout, boundedQueue,
  rawExchange, run, spawnStream, loadEventSource, SCALE,
} from '../lib/herald.mjs';
import { openWS, wsURL } from '../lib/stomp.mjs';
import {
  PT, MqttRaw, connect, publishPkt, subscribePkt, ackPkt, disconnectPkt, packet, parsePublish, connackCode,
  disconnectReason, varint, str,
} from '../lib/mqttraw.mjs';

const T = { timeout: 60000 * SCALE };
const EventSource = loadEventSource();
const here = path.dirname(fileURLToPath(import.meta.url));
const PY = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

/* Bounded: after a sentinel message arrives on q, asserts nothing else was queued before it. */
async function expectOnly(w, sentinelTopic, what) {
  const m = await w.next();
  assert.equal(m.topic, sentinelTopic, `${what}: expected only the sentinel, got ${m.topic} ${m.payload}`);
}

/* A probe: another MQTT.js client on the same server still receives a POST /pub. */
async function stillServes(h, tag) {
  const p = await mq(tcpURL(h), { clientId: `probe-${tag}` });
  try {
    await p.sub(`probe/${tag}`, { qos: 1 });
    await publish(h, `probe/${tag}`, `alive ${tag}`);
    const m = await p.next();
    assert.equal(m.payload, `alive ${tag}`, `server still serves after ${tag}`);
  } finally {
    await p.end();
  }
}

/* ---------------------------------------------------------------- mosquitto clients */

for (const V of ['mqttv311', 'mqttv5']) {
  test(`mosquitto_sub/pub (${V}): + and # wildcards match exactly the documented topics`, T, async () => {
    await withHerald(async (h) => {
      const port = String(h.mqttPort);
      const want = [
        ['a/b/c', 'm1'], ['a/zz/c', 'm2'], ['x', 'm4'], ['x/y/z', 'm5'], ['x/end', 'last'],
      ];
      const sub = spawnStream('stdbuf', ['-oL', 'mosquitto_sub', '-h', '127.0.0.1', '-p', port, '-V', V, '-d', '-v', '-q', '1',
        '-t', 'a/+/c', '-t', 'x/#', '-C', String(want.length), '-W', String(Math.ceil(20 * SCALE)), '-i', 'msub']);
      try {
        await waitFor(() => /SUBACK/.test(sub.text) || sub.exited, 10000 * SCALE, 'mosquitto_sub SUBACK');
        assert.ok(!sub.exited, `mosquitto_sub exited early: ${sub.stderr}`);
        const pubs = [['a/b/c', 'm1'], ['a/b/d', 'no1'], ['a/b/x/c', 'no2'], ['a/zz/c', 'm2'], ['y/x', 'no3'],
          ['ax/b/c', 'no4'], ['x', 'm4'], ['x/y/z', 'm5'], ['x/end', 'last']];
        for (const [t, m] of pubs) {
          const r = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '-V', V, '-q', '1', '-t', t, '-m', m]);
          assert.equal(r.code, 0, `mosquitto_pub ${t}: ${r.stderr}`);
        }
        const exit = await withTimeout(sub.exit, 20000 * SCALE, 'mosquitto_sub exit');
        assert.equal(exit.code, 0, `mosquitto_sub exit; stderr: ${sub.stderr}`);
        const lines = sub.text.split('\n').filter((l) => l && !l.startsWith('Client ') && !l.startsWith('Subscribed'));
        assert.deepEqual(lines, want.map(([t, m]) => `${t} ${m}`));
      } finally {
        await sub.stop().catch(() => {});
      }
    });
  });
}

test('$-topics: "#" never matches them; a v5 QoS 1 PUBLISH to $x/y gets PUBACK 0x90 and reaches nobody', T, async () => {
  await withHerald(async (h) => {
    const all = await mq(tcpURL(h), { clientId: 'all', protocolVersion: 5 });
    const raw = await MqttRaw.open(h.mqttPort, { v: 5 });
    try {
      await all.sub('#', { qos: 1 });
      await all.sub('+/y', { qos: 1 });
      const ca = await raw.handshake({ v: 5, id: 'dollar' });
      assert.equal(connackCode(ca), 0);
      raw.write(publishPkt({ v: 5, topic: '$x/y', payload: 'hidden', qos: 1, pid: 3 }));
      const ack = await raw.expect(PT.PUBACK);
      assert.equal(ack.body.readUInt16BE(0), 3);
      assert.equal(ack.body[2], 0x90, 'PUBACK reason: topic name invalid');
      raw.write(publishPkt({ v: 5, topic: 'x/y', payload: 'visible', qos: 1, pid: 4 }));
      await raw.expect(PT.PUBACK);
      // '#' and '+/y' both match x/y: one copy each (MQTT.js merges them into messages)
      const m = await all.next();
      assert.equal(m.topic, 'x/y');
      assert.equal(m.payload, 'visible');
      assert.ok(!raw.closed, 'the publisher stays connected');
    } finally {
      raw.destroy();
      await all.end();
    }
  });
});

/* ---------------------------------------------------------------- HTTP -> MQTT */

for (const pv of [4, 5]) {
  test(`POST /pub reaches MQTT.js (v${pv}) wildcard subscribers at their subscription QoS 0/1/2`, T, async () => {
    await withHerald(async (h) => {
      const c = await mq(tcpURL(h), { clientId: `q${pv}`, protocolVersion: pv });
      try {
        const g = await c.sub({ 'q0/+': { qos: 0 }, 'q1/#': { qos: 1 }, 'q2/+/z': { qos: 2 } });
        assert.deepEqual(g.map((x) => x.qos), [0, 1, 2], 'granted QoS');
        await publish(h, 'q0/a', 'zero');
        await publish(h, 'q1/a/b', 'one');
        await publish(h, 'q2/a/z', 'two');
        await publish(h, 'q2/a/y', 'not matched');
        await publish(h, 'q0/end', 'end');
        const got = [];
        for (let i = 0; i < 4; i++) got.push(await c.next());
        assert.deepEqual(got.map((m) => [m.topic, m.payload, m.packet.qos, m.packet.retain]), [
          ['q0/a', 'zero', 0, false], ['q1/a/b', 'one', 1, false], ['q2/a/z', 'two', 2, false], ['q0/end', 'end', 0, false]]);
        assert.ok(got[1].packet.messageId > 0 && got[2].packet.messageId > 0, 'QoS > 0 packets carry ids');
        // the QoS 2 flow completed (MQTT.js sent PUBREC/PUBCOMP); the session still works
        await publish(h, 'q2/b/z', 'again');
        const again = await c.next();
        assert.deepEqual([again.payload, again.packet.qos], ['again', 2]);
        assert.equal(c.pending(), 0);
      } finally {
        await c.end();
      }
    });
  });
}

/* ---------------------------------------------------------------- MQTT -> other transports */

test('MQTT publishes reach SSE, WebSocket /sub and /ws subscribers, and the history (poll + resume)', T, async () => {
  await withHerald(async (h) => {
    const sse = [];
    const es = new EventSource(h.url('/sub/room/1'));
    es.addEventListener('message', (e) => sse.push({ data: e.data, id: e.lastEventId }));
    const plain = await openWS(wsURL(h, '/sub/room/1'));
    const wsj = await openWS(wsURL(h, '/ws'), ['herald.v1']);
    const c = await mq(tcpURL(h), { clientId: 'pubber', protocolVersion: 5 });
    try {
      await wsj.next(); // welcome
      wsj.send(JSON.stringify({ op: 'subscribe', channel: 'room/1', ref: 1 }));
      assert.equal(JSON.parse((await wsj.next()).data).ok, true);
      await waitFor(() => es.readyState === EventSource.OPEN, 5000 * SCALE, 'EventSource open');
      assert.ok(await waitSubscribed(h, 'room/1', null, 3), 'three subscribers');
      await c.pub('room/1', 'first ✓', { qos: 1 });
      await c.pub('room/1', 'second', { qos: 2 });
      await c.pub('room/1', 'third', { qos: 0 });

      const pl = [];
      for (let i = 0; i < 3; i++) pl.push((await plain.next()).data.toString());
      assert.deepEqual(pl, ['first ✓', 'second', 'third']);
      const js = [];
      for (let i = 0; i < 3; i++) js.push(JSON.parse((await wsj.next()).data));
      assert.deepEqual(js.map((j) => [j.op, j.channel, j.id, j.data]), [
        ['message', 'room/1', '1', 'first ✓'], ['message', 'room/1', '2', 'second'], ['message', 'room/1', '3', 'third']]);
      await waitFor(() => sse.length >= 3, 5000 * SCALE, 'three SSE events');
      assert.deepEqual(sse, [{ data: 'first ✓', id: '1' }, { data: 'second', id: '2' }, { data: 'third', id: '3' }]);

      const j = await getJSON(h, '/sub/room/1?mode=poll&last_id=0');
      assert.deepEqual(j.messages.map((m) => [m.id, m.data]), [['1', 'first ✓'], ['2', 'second'], ['3', 'third']]);
      const r = await getJSON(h, `/sub/room/1?mode=poll&last_id=${j.messages[0].id}`);
      assert.deepEqual(r.messages.map((m) => m.data), ['second', 'third'], 'resume after the first');
    } finally {
      es.close();
      plain.close();
      wsj.close();
      await c.end();
    }
  });
});

/* ---------------------------------------------------------------- retained */

test('retained: set, replace, delivered on subscribe with the retain flag, cleared by an empty payload', T, async () => {
  await withHerald(async (h) => {
    const p = await mq(tcpURL(h), { clientId: 'rpub', protocolVersion: 5 });
    try {
      await p.pub('ret/a', 'v1', { qos: 1, retain: true });
      await p.pub('ret/a', 'v2', { qos: 1, retain: true }); // replaces
      await p.pub('ret/b', 'b1', { qos: 0, retain: true });
      await p.pub('other/x', 'o', { qos: 1, retain: true });
      for (const pv of [4, 5]) {
        const s = await mq(tcpURL(h), { clientId: `rs${pv}`, protocolVersion: pv });
        try {
          await s.sub('ret/+', { qos: 1 });
          const got = [await s.next(), await s.next()].sort((x, y) => x.topic.localeCompare(y.topic));
          assert.deepEqual(got.map((m) => [m.topic, m.payload, m.packet.retain]), [['ret/a', 'v2', true], ['ret/b', 'b1', true]], `v${pv}`);
          assert.equal(got[0].packet.qos, 1, 'retained QoS 1 message at sub QoS 1');
          assert.equal(got[1].packet.qos, 0, 'retained QoS 0 message stays QoS 0');
          // a live message to a retained topic: retain flag 0 for a normal subscription
          await p.pub('ret/a', 'live', { qos: 1 });
          const live = await s.next();
          assert.deepEqual([live.payload, live.packet.retain], ['live', false]);
          assert.equal(s.pending(), 0);
        } finally {
          await s.end();
        }
      }
      // a non-retained publish does not replace the retained message
      const s1 = await mq(tcpURL(h), { clientId: 'rs-after-live', protocolVersion: 5 });
      await s1.sub('ret/a', { qos: 0 });
      const m1 = await s1.next();
      assert.deepEqual([m1.payload, m1.packet.retain], ['v2', true]);
      await s1.end();
      // clear ret/a with an empty retained payload
      await p.pub('ret/a', '', { qos: 1, retain: true });
      const s2 = await mq(tcpURL(h), { clientId: 'rs-cleared', protocolVersion: 4 });
      try {
        await s2.sub('ret/#', { qos: 0 });
        const only = await s2.next();
        assert.deepEqual([only.topic, only.payload, only.packet.retain], ['ret/b', 'b1', true], 'only ret/b is retained now');
        await publish(h, 'ret/end', 'sentinel');
        await expectOnly(s2, 'ret/end', 'after clearing ret/a');
      } finally {
        await s2.end();
      }
    } finally {
      await p.end();
    }
  });
});

test('retained (v5): retain handling 2 sends none, 1 only on a new subscription; retain-as-published keeps the flag', T, async () => {
  await withHerald(async (h) => {
    const p = await mq(tcpURL(h), { clientId: 'rpub5', protocolVersion: 5 });
    const s = await mq(tcpURL(h), { clientId: 'rh', protocolVersion: 5 });
    try {
      await p.pub('rh/t', 'kept', { qos: 1, retain: true });
      await s.sub('rh/t', { qos: 1, rh: 2 });
      await publish(h, 'rh/t', 'live after rh2');
      const m = await s.next();
      assert.deepEqual([m.payload, m.packet.retain], ['live after rh2', false], 'rh=2: no retained message first');
      // rh=1 on a new filter: sent; re-subscribing the same filter with rh=1: not sent again
      await s.sub('rh/+', { qos: 1, rh: 1 });
      const r1 = await s.next();
      assert.deepEqual([r1.topic, r1.payload, r1.packet.retain], ['rh/t', 'kept', true]);
      await s.sub('rh/+', { qos: 1, rh: 1 });
      await s.sub('rh/+', { qos: 1, rh: 0 }); // rh=0: sent on every subscribe
      const r0 = await s.next();
      assert.deepEqual([r0.payload, r0.packet.retain], ['kept', true]);
      assert.equal(s.pending(), 0, 'the rh=1 re-subscribe sent nothing');

      const rap = await mq(tcpURL(h), { clientId: 'rap', protocolVersion: 5 });
      try {
        await rap.sub('rap/yes', { qos: 0, rap: true, rh: 2 });
        await rap.sub('rap/no', { qos: 0, rap: false, rh: 2 });
        await p.pub('rap/yes', 'y', { qos: 1, retain: true });
        await p.pub('rap/no', 'n', { qos: 1, retain: true });
        const a = await rap.next();
        const b = await rap.next();
        assert.deepEqual([a.topic, a.packet.retain], ['rap/yes', true], 'retain-as-published keeps retain=1');
        assert.deepEqual([b.topic, b.packet.retain], ['rap/no', false], 'without it retain=0');
      } finally {
        await rap.end();
      }
    } finally {
      await p.end();
      await s.end();
    }
  });
});

/* ---------------------------------------------------------------- QoS round trips */

for (const [name, urlOf] of [['TCP', tcpURL], ['WebSocket /mqtt', wsMqttURL]]) {
  for (const pv of [4, 5]) {
    test(`MQTT.js v${pv} over ${name}: QoS 0/1/2 publish callbacks complete and subscribers get min(pub, sub) QoS`, T, async () => {
      await withHerald(async (h) => {
        const a = await mq(urlOf(h), { clientId: `a${pv}`, protocolVersion: pv });
        const b = await mq(urlOf(h), { clientId: `b${pv}`, protocolVersion: pv });
        try {
          assert.equal(a.connack.returnCode ?? a.connack.reasonCode ?? 0, 0);
          await a.sub('rt/q2', { qos: 2 });
          await b.sub('rt/q1', { qos: 1 });
          for (const q of [0, 1, 2]) {
            const r = await b.pub('rt/q2', `b-q${q}`, { qos: q });
            // publishAsync resolves only once the flow completed (PUBACK, or PUBREC/PUBREL/PUBCOMP)
            assert.equal(r?.qos ?? 0, q, `publish QoS ${q} completed`);
          }
          for (const q of [0, 1, 2]) {
            const m = await a.next();
            assert.deepEqual([m.topic, m.payload, m.packet.qos], ['rt/q2', `b-q${q}`, q]);
          }
          await a.pub('rt/q1', 'a-q2', { qos: 2 });
          const m = await b.next();
          assert.deepEqual([m.payload, m.packet.qos], ['a-q2', 1], 'downgraded to the subscription QoS');
          // binary payload byte-exact
          const bin = Buffer.from([0, 255, 1, 254, 0x0d, 0x0a]);
          await a.pub('rt/q1', bin, { qos: 1 });
          assert.ok((await b.next()).raw.equals(bin));
          assert.equal(a.pending() + b.pending(), 0);
        } finally {
          await a.end();
          await b.end();
        }
      });
    });
  }
}

test('paho-mqtt (3.1.1 and 5): QoS 1 and 2 round trips complete and deliver once', T, async () => {
  await withHerald(async (h) => {
    for (const ver of ['311', '5']) {
      const r = await run(PY, [path.join(here, 'py/mqtt_client.py'), 'roundtrip', '127.0.0.1', String(h.mqttPort), ver],
        { timeout: 30000 * SCALE });
      assert.equal(r.code, 0, `paho ${ver} exit; stdout=${r.stdout} stderr=${r.stderr}`);
      const out = JSON.parse(r.stdout.toString().trim().split('\n').pop());
      assert.equal(out.connack, 0, `paho ${ver} connack`);
      assert.deepEqual(out.granted, [2]);
      assert.deepEqual(out.published, [true, true], 'wait_for_publish completed for QoS 1 and 2');
      assert.deepEqual(out.received.map((m) => [m.topic, m.payload, m.qos]).sort(),
        [['paho/t', 'q1', 1], ['paho/t', 'q2', 2]], `paho ${ver}: each exactly once`);
    }
    // paho publishes also land in the history
    const j = await getJSON(h, '/sub/paho/t?mode=poll&last_id=0');
    assert.deepEqual(j.messages.map((m) => m.data), ['q1', 'q2', 'q1', 'q2']);
  });
});

test('QoS 2 exactly once: a PUBLISH resent with DUP before PUBREL is not published again', T, async () => {
  await withHerald(async (h) => {
    const s = await mq(tcpURL(h), { clientId: 'eo-sub', protocolVersion: 5 });
    for (const v of [4, 5]) {
      const c = await MqttRaw.open(h.mqttPort, { v });
      try {
        assert.equal(connackCode(await c.handshake({ v, id: `eo${v}` })), 0);
        await s.sub('eo/t', { qos: 2 });
        c.write(publishPkt({ v, topic: 'eo/t', payload: `once v${v}`, qos: 2, pid: 7 }));
        const rec1 = await c.expect(PT.PUBREC);
        assert.equal(rec1.body.readUInt16BE(0), 7);
        assert.equal(rec1.flags, 0);
        c.write(publishPkt({ v, topic: 'eo/t', payload: `once v${v}`, qos: 2, pid: 7, dup: true }));
        const rec2 = await c.expect(PT.PUBREC);
        assert.equal(rec2.body.readUInt16BE(0), 7);
        c.write(ackPkt(PT.PUBREL, 7));
        const comp = await c.expect(PT.PUBCOMP);
        assert.equal(comp.body.readUInt16BE(0), 7);
        if (v === 5 && comp.body.length > 2) assert.equal(comp.body[2], 0, 'PUBCOMP success');
        // after PUBREL the id is free again: a new message with pid 7 is a new message
        c.write(publishPkt({ v, topic: 'eo/t', payload: `second v${v}`, qos: 2, pid: 7 }));
        await c.expect(PT.PUBREC);
        c.write(ackPkt(PT.PUBREL, 7));
        await c.expect(PT.PUBCOMP);
        const m1 = await s.next();
        const m2 = await s.next();
        assert.deepEqual([m1.payload, m2.payload], [`once v${v}`, `second v${v}`]);
        await publish(h, 'eo/t', 'sentinel');
        await expectOnly(s, 'eo/t', 'exactly once');
      } finally {
        c.destroy();
      }
    }
    const j = await getJSON(h, '/sub/eo/t?mode=poll&last_id=0');
    assert.deepEqual(j.messages.map((m) => m.data), ['once v4', 'second v4', 'sentinel', 'once v5', 'second v5', 'sentinel'],
      'history holds each QoS 2 message once');
    await s.end();
  });
});

/* ---------------------------------------------------------------- CONNECT rules */

test('session takeover: v5 first client gets DISCONNECT 0x8E, v3 first client is closed; the new one works', T, async () => {
  await withHerald(async (h) => {
    for (const pv of [5, 4]) {
      const first = await mq(tcpURL(h), { clientId: `dup${pv}`, protocolVersion: pv });
      await first.sub('to/x', { qos: 0 });
      const second = await mq(tcpURL(h), { clientId: `dup${pv}`, protocolVersion: pv });
      try {
        await waitFor(() => first.closed, 5000 * SCALE, 'the first client closed');
        if (pv === 5) {
          assert.equal(first.disconnects.length, 1, 'one DISCONNECT');
          assert.equal(first.disconnects[0].reasonCode, 0x8e);
        } else {
          assert.equal(first.disconnects.length, 0);
        }
        assert.ok(!second.closed, 'the second stays');
        await second.sub('to/x', { qos: 1 });
        await publish(h, 'to/x', `after takeover ${pv}`);
        assert.equal((await second.next()).payload, `after takeover ${pv}`);
        assert.equal(first.pending(), 0, 'the old connection got nothing');
      } finally {
        await first.end();
        await second.end();
      }
    }
    // across carriers: a WebSocket session taken over by a TCP one (v5) and back
    const ws1 = await mq(wsMqttURL(h), { clientId: 'cross', protocolVersion: 5 });
    const tcp2 = await mq(tcpURL(h), { clientId: 'cross', protocolVersion: 5 });
    await waitFor(() => ws1.closed, 5000 * SCALE, 'the WebSocket session closed');
    assert.equal(ws1.disconnects[0]?.reasonCode, 0x8e);
    const ws3 = await mq(wsMqttURL(h), { clientId: 'cross', protocolVersion: 5 });
    await waitFor(() => tcp2.closed, 5000 * SCALE, 'the TCP session closed');
    assert.equal(tcp2.disconnects[0]?.reasonCode, 0x8e);
    await ws3.sub('to/cross', { qos: 1 });
    await publish(h, 'to/cross', 'cross ok');
    assert.equal((await ws3.next()).payload, 'cross ok');
    await ws1.end();
    await tcp2.end();
    await ws3.end();
  });
});

test('empty client id: v5 gets an assigned id in CONNACK; v3 with clean session 0 gets CONNACK 0x02', T, async () => {
  await withHerald(async (h) => {
    const a = await mq(tcpURL(h), { clientId: '', protocolVersion: 5 });
    const b = await mq(tcpURL(h), { clientId: '', protocolVersion: 5 });
    try {
      const ida = a.connack.properties?.assignedClientIdentifier;
      const idb = b.connack.properties?.assignedClientIdentifier;
      assert.ok(ida && idb, `assigned ids: ${JSON.stringify(a.connack)}`);
      assert.notEqual(ida, idb, 'distinct assigned ids');
      assert.ok(!a.closed, 'two empty-id clients coexist');
      assert.equal(a.connack.sessionPresent, false);
    } finally {
      await a.end();
      await b.end();
    }
    // v3 empty id + clean session 1: accepted (no assigned id property in 3.1.1)
    const c3 = await MqttRaw.open(h.mqttPort);
    const ok = await c3.handshake({ v: 4, id: '' });
    assert.deepEqual([...ok.body], [0, 0]);
    c3.destroy();
    // v3 empty id + clean session 0: identifier rejected, then closed
    const c = await MqttRaw.open(h.mqttPort);
    const nack = await c.handshake({ v: 4, id: '', clean: false });
    assert.equal(connackCode(nack), 0x02);
    await c.waitClosed();
    // client id longer than 256 bytes: v3 CONNACK 0x02, v5 CONNACK 0x85; exactly 256 is fine
    const long3 = await MqttRaw.open(h.mqttPort);
    assert.equal(connackCode(await long3.handshake({ v: 4, id: 'i'.repeat(257) })), 0x02);
    await long3.waitClosed();
    const long5 = await MqttRaw.open(h.mqttPort, { v: 5 });
    assert.equal(connackCode(await long5.handshake({ v: 5, id: 'i'.repeat(257) })), 0x85);
    await long5.waitClosed();
    const ok256 = await MqttRaw.open(h.mqttPort, { v: 5 });
    assert.equal(connackCode(await ok256.handshake({ v: 5, id: 'i'.repeat(256) })), 0);
    ok256.destroy();
    // clean session 0 with an id is served as a clean session (session present 0)
    const p = await MqttRaw.open(h.mqttPort);
    const pa = await p.handshake({ v: 4, id: 'persist', clean: false });
    assert.deepEqual([...pa.body], [0, 0], 'accepted, session present 0');
    p.destroy();
  });
});

/* ---------------------------------------------------------------- wills */

test('will: published on an abrupt close, discarded by DISCONNECT, kept by v5 DISCONNECT 0x04', T, async () => {
  await withHerald(async (h) => {
    const s = await mq(tcpURL(h), { clientId: 'will-sub', protocolVersion: 5 });
    try {
      await s.sub('will/#', { qos: 1 });
      // abrupt close (v3 and v5)
      for (const v of [4, 5]) {
        const c = await MqttRaw.open(h.mqttPort, { v });
        assert.equal(connackCode(await c.handshake({ v, id: `w${v}`, will: { topic: `will/${v}`, payload: `gone ${v}`, qos: 1 } })), 0);
        c.destroy();
        const m = await s.next();
        assert.deepEqual([m.topic, m.payload, m.packet.qos], [`will/${v}`, `gone ${v}`, 1]);
      }
      // normal DISCONNECT: no will
      for (const v of [4, 5]) {
        const c = await MqttRaw.open(h.mqttPort, { v });
        await c.handshake({ v, id: `wn${v}`, will: { topic: 'will/normal', payload: 'must not appear' } });
        c.write(disconnectPkt(v, v === 5 ? 0 : undefined));
        await c.waitClosed();
      }
      // v5 DISCONNECT 0x04: will published
      const k = await MqttRaw.open(h.mqttPort, { v: 5 });
      await k.handshake({ v: 5, id: 'wk', will: { topic: 'will/kept', payload: 'with will' } });
      k.write(disconnectPkt(5, 0x04));
      await k.waitClosed();
      const mk = await s.next();
      assert.deepEqual([mk.topic, mk.payload], ['will/kept', 'with will']);
      await publish(h, 'will/end', 'sentinel');
      await expectOnly(s, 'will/end', 'no will after a normal DISCONNECT');
      // a retained will is retained
      const r = await MqttRaw.open(h.mqttPort);
      await r.handshake({ v: 4, id: 'wr', will: { topic: 'will/ret', payload: 'ret will', retain: true } });
      r.destroy();
      assert.equal((await s.next()).payload, 'ret will');
      const late = await mq(tcpURL(h), { clientId: 'late' });
      await late.sub('will/ret');
      const lm = await late.next();
      assert.deepEqual([lm.payload, lm.packet.retain], ['ret will', true]);
      await late.end();
      // MQTT.js will over WebSocket, abrupt close
      const wc = await mq(wsMqttURL(h), { clientId: 'wsw', protocolVersion: 4, will: { topic: 'will/ws', payload: 'ws gone', qos: 0 } });
      wc.c.stream.destroy();
      const wm = await s.next();
      assert.deepEqual([wm.topic, wm.payload], ['will/ws', 'ws gone']);
      wc.c.end(true);
    } finally {
      await s.end();
    }
  });
});

/* ---------------------------------------------------------------- keepalive */

test('keepalive: a silent client with keepalive 1 is dropped after ~1.5 s (v5: DISCONNECT 0x8D); a pinging one stays', T, async () => {
  await withHerald(async (h) => {
    const pinger = await MqttRaw.open(h.mqttPort);
    await pinger.handshake({ v: 4, id: 'pinger', keepalive: 1 });
    const iv = setInterval(() => pinger.write(packet(PT.PINGREQ, 0)), 400);
    try {
      for (const v of [5, 4]) {
        const c = await MqttRaw.open(h.mqttPort, { v });
        await c.handshake({ v, id: `ka${v}`, keepalive: 1 });
        const t0 = Date.now();
        if (v === 5) {
          const d = await c.expect(PT.DISCONNECT, 6000 * SCALE);
          assert.equal(disconnectReason(d), 0x8d);
        }
        await c.waitClosed(6000 * SCALE);
        const dt = Date.now() - t0;
        assert.ok(dt >= 1300, `dropped after ${dt} ms (want about 1500)`);
        assert.ok(dt <= 4000 * SCALE, `dropped after ${dt} ms (want about 1500)`);
      }
      assert.ok(!pinger.closed, 'the pinging client is still connected');
      assert.ok(pinger.all.filter((p) => p.type === PT.PINGRESP).length >= 3, 'PINGRESPs');
    } finally {
      clearInterval(iv);
      pinger.destroy();
    }
  });
});

/* ---------------------------------------------------------------- v5 subscription features */

test('shared subscriptions: $share/g/filter splits messages between members; a normal subscriber gets all', T, async () => {
  await withHerald(async (h) => {
    const a = await mq(tcpURL(h), { clientId: 'sa', protocolVersion: 5 });
    const b = await mq(tcpURL(h), { clientId: 'sb', protocolVersion: 4 });
    const all = await mq(tcpURL(h), { clientId: 'sall', protocolVersion: 5 });
    try {
      await a.sub('$share/g/sh/+', { qos: 1 });
      await b.sub('$share/g/sh/+', { qos: 1 });
      await all.sub('sh/+', { qos: 1 });
      const N = 20;
      for (let i = 0; i < N; i++) await publish(h, `sh/${i % 3}`, `m${i}`);
      const everything = [];
      for (let i = 0; i < N; i++) everything.push((await all.next()).payload);
      assert.deepEqual(everything, Array.from({ length: N }, (_, i) => `m${i}`));
      await waitFor(() => a.q.all.length + b.q.all.length >= N, 5000 * SCALE, 'shared deliveries');
      const ga = a.q.all.map((m) => m.payload);
      const gb = b.q.all.map((m) => m.payload);
      assert.ok(ga.length > 0 && gb.length > 0, `both members got some (a=${ga.length}, b=${gb.length})`);
      assert.deepEqual([...ga, ...gb].sort(), everything.slice().sort(), 'together all, exactly once');
      assert.ok(Math.abs(ga.length - gb.length) <= 1, 'round robin');
      assert.ok(a.q.all.every((m) => m.topic.startsWith('sh/')), 'topic is the real topic');
      // retained messages are not sent to a shared subscription
      await all.pub('sh/r', 'retained', { qos: 1, retain: true });
      await waitFor(() => a.q.all.length + b.q.all.length >= N + 1, 5000 * SCALE, 'retained publish to the group');
      const c = await mq(tcpURL(h), { clientId: 'sc', protocolVersion: 5 });
      await c.sub('$share/g2/sh/r', { qos: 1 });
      await publish(h, 'sh/r', 'live');
      const first = await c.next();
      assert.deepEqual([first.payload, first.packet.retain], ['live', false], 'no retained message on a shared subscribe');
      await c.end();
    } finally {
      await a.end();
      await b.end();
      await all.end();
    }
  });
});

test('v5 no-local: own publishes are not echoed (others still get them); subscription identifiers are carried', T, async () => {
  await withHerald(async (h) => {
    const me = await mq(tcpURL(h), { clientId: 'me', protocolVersion: 5 });
    const other = await mq(tcpURL(h), { clientId: 'other', protocolVersion: 5 });
    try {
      await me.sub('nl/t', { qos: 1, nl: true });
      await other.sub('nl/t', { qos: 1 });
      await me.pub('nl/t', 'mine', { qos: 1 });
      assert.equal((await other.next()).payload, 'mine');
      await other.pub('nl/t', 'theirs', { qos: 1 });
      assert.equal((await other.next()).payload, 'theirs', 'no no-local for the other client: its own publish echoed');
      const m = await me.next();
      assert.equal(m.payload, 'theirs', 'no-local subscriber got the other client message first, not its own');
      assert.equal(m.packet.properties?.subscriptionIdentifier, undefined, 'no id when none was given');
      assert.equal(me.pending(), 0);

      await other.sub('sid/+', { qos: 0, properties: { subscriptionIdentifier: 42 } });
      await other.sub('sid/q1', { qos: 1, properties: { subscriptionIdentifier: 268435455 } });
      await publish(h, 'sid/x', 'zero');
      const s0 = await other.next();
      assert.equal(s0.payload, 'zero');
      assert.equal(s0.packet.qos, 0);
      assert.deepEqual([s0.packet.properties?.subscriptionIdentifier].flat(), [42]);
      await publish(h, 'sid/q1', 'both');
      const ids = [];
      for (let i = 0; i < 2; i++) {
        const x = await other.next();
        assert.equal(x.payload, 'both');
        ids.push(...[x.packet.properties?.subscriptionIdentifier].flat());
      }
      assert.deepEqual(ids.sort((p, q) => p - q), [42, 268435455], 'one copy per matching subscription, each with its id');
    } finally {
      await me.end();
      await other.end();
    }
  });
});

test('UNSUBSCRIBE stops delivery; v5 UNSUBACK says 0x11 for a filter never subscribed', T, async () => {
  await withHerald(async (h) => {
    for (const pv of [4, 5]) {
      const c = await mq(tcpURL(h), { clientId: `un${pv}`, protocolVersion: pv });
      try {
        await c.sub('un/+', { qos: 1 });
        await c.sub('keep/t', { qos: 1 });
        await publish(h, 'un/a', 'before');
        assert.equal((await c.next()).payload, 'before');
        await withTimeout(c.c.unsubscribeAsync(['un/+', 'never/sub']), 5000 * SCALE, 'unsubscribe');
        await publish(h, 'un/a', 'after');
        await publish(h, 'keep/t', 'sentinel');
        await expectOnly(c, 'keep/t', `v${pv} after UNSUBSCRIBE`);
      } finally {
        await c.end();
      }
    }
    // raw: invalid filters are refused in the SUBACK, the valid one in the same packet granted
    for (const v of [4, 5]) {
      const r = await MqttRaw.open(h.mqttPort, { v });
      try {
        await r.handshake({ v, id: `bf${v}` });
        r.write(subscribePkt({ v, pid: 9, filters: [['ok/+', 2], ['other/#', 0]] }));
        const sa = await r.expect(PT.SUBACK);
        assert.equal(sa.body.readUInt16BE(0), 9);
        const codes = [...sa.body.subarray(v === 5 ? 3 : 2)];
        assert.deepEqual(codes, [2, 0], `v${v} SUBACK codes`);
        await publish(h, 'ok/x', `granted ${v}`);
        const pp = parsePublish(await r.expect(PT.PUBLISH), v);
        assert.deepEqual([pp.topic, pp.payload.toString(), pp.qos], ['ok/x', `granted ${v}`, 2]);
        r.write(ackPkt(PT.PUBREC, pp.pid));
        await r.expect(PT.PUBREL);
        r.write(ackPkt(PT.PUBCOMP, pp.pid));
        // UNSUBSCRIBE (flags 2): v5 UNSUBACK carries 0x00 / 0x11 (no subscription existed)
        const ub = [Buffer.from([0, 10])];
        if (v === 5) ub.push(varint(0));
        ub.push(str('ok/+'), str('never/sub'));
        r.write(packet(PT.UNSUBSCRIBE, 2, Buffer.concat(ub)));
        const ua = await r.expect(PT.UNSUBACK);
        assert.equal(ua.body.readUInt16BE(0), 10);
        if (v === 5) assert.deepEqual([...ua.body.subarray(3)], [0x00, 0x11], 'UNSUBACK reason codes');
        else assert.equal(ua.body.length, 2, 'v3 UNSUBACK has no payload');
        await publish(h, 'ok/x', 'after unsubscribe');
        r.write(packet(PT.PINGREQ, 0));
        await r.expect(PT.PINGRESP);
        assert.ok(!r.pkts.length && !r.all.some((q) => q.type === PT.PUBLISH && parsePublish(q, v).payload.toString() === 'after unsubscribe'),
          'nothing after UNSUBSCRIBE');
        assert.ok(!r.closed);
      } finally {
        r.destroy();
      }
    }
  });
});

/* ---------------------------------------------------------------- MQTT over WebSocket */

test('MQTT over WebSocket (raw ws): a packet split across messages and packets packed into one; text closes 1003', T, async () => {
  await withHerald(async (h) => {
    const w = await openWS(wsURL(h, '/mqtt'), ['mqtt']);
    try {
      assert.equal(w.protocol, 'mqtt');
      const cn = connect({ v: 5, id: 'rawws' });
      w.send(cn.subarray(0, 3), true);
      w.send(cn.subarray(3), true);
      const sub = subscribePkt({ v: 5, pid: 1, filters: [['rw/t', 1]] });
      const ping = packet(PT.PINGREQ, 0);
      // SUBSCRIBE + PINGREQ + the first half of a PUBLISH in one message, the rest in the next
      const pub = publishPkt({ v: 5, topic: 'rw/t', payload: 'split pub', qos: 1, pid: 5 });
      w.send(Buffer.concat([sub, ping, pub.subarray(0, 4)]), true);
      w.send(pub.subarray(4), true);
      const types = [];
      const msgs = [];
      while (types.length < 5) {
        const m = await w.next();
        assert.ok(m, `closed early after ${types}`);
        assert.equal(m.binary, true, 'MQTT packets go in binary messages');
        msgs.push(m.data);
        types.push(m.data[0] >> 4);
      }
      // CONNACK, SUBACK, PINGRESP, then PUBACK and the PUBLISH to ourselves in either order
      assert.deepEqual(types.slice(0, 3), [PT.CONNACK, PT.SUBACK, PT.PINGRESP]);
      assert.deepEqual(types.slice(3).sort(), [PT.PUBLISH, PT.PUBACK].sort());
      const pm = msgs[types.indexOf(PT.PUBLISH)];
      const pp = parsePublish({ type: 3, flags: pm[0] & 15, body: pm.subarray(2) }, 5);
      assert.deepEqual([pp.topic, pp.payload.toString(), pp.qos], ['rw/t', 'split pub', 1]);
      w.send('a text message');
      const cl = await w.waitClosed();
      assert.equal(cl.code, 1003);
    } finally {
      w.terminate();
    }
    await stillServes(h, 'after-text');
  });
});

test('MQTT over WebSocket: MQTT.js v4 and v5 subscribe and publish across TCP and WebSocket', T, async () => {
  await withHerald(async (h) => {
    const w4 = await mq(wsMqttURL(h), { clientId: 'w4', protocolVersion: 4 });
    const w5 = await mq(wsMqttURL(h), { clientId: 'w5', protocolVersion: 5 });
    const t = await mq(tcpURL(h), { clientId: 't5', protocolVersion: 5 });
    try {
      assert.equal(w5.connack.properties?.sharedSubscriptionAvailable, true);
      assert.equal(w5.connack.properties?.topicAliasMaximum, 64);
      await w4.sub('ws/#', { qos: 1 });
      await w5.sub('ws/+', { qos: 2 });
      await t.sub('ws/+', { qos: 0 });
      await t.pub('ws/a', 'from tcp', { qos: 1 });
      await w4.pub('ws/b', 'from ws4', { qos: 2 });
      await w5.pub('ws/c', 'from ws5', { qos: 1 });
      await publish(h, 'ws/d', 'from http');
      // MQTT.js hands a QoS 2 message to the app only after PUBREL, so a client subscribed at
      // QoS 2 may see a later QoS 1 message first: compare per message, not in arrival order
      const names = ['from tcp', 'from ws4', 'from ws5', 'from http'];
      for (const [c, q] of [[w4, [1, 1, 1, 1]], [w5, [1, 2, 1, 2]], [t, [0, 0, 0, 0]]]) {
        const got = new Map();
        for (let i = 0; i < 4; i++) {
          const m = await c.next();
          got.set(m.payload, m.packet.qos);
        }
        assert.deepEqual([...got.keys()].sort(), [...names].sort());
        assert.deepEqual(names.map((n) => got.get(n)), q, `QoS for ${c.c.options.clientId}`);
      }
      // on the clients without QoS 2 deliveries the order is the publish order
      for (const c of [w4, t]) assert.equal(c.q.all.map((m) => m.payload).join('|'), names.join('|'));
    } finally {
      await w4.end();
      await w5.end();
      await t.end();
    }
  });
});

test('WebSocket handshake to /mqtt without the "mqtt" subprotocol is refused with 400', T, async () => {
  await withHerald(async (h) => {
    const hs = (proto) => `GET /mqtt HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${proto ? `Sec-WebSocket-Protocol: ${proto}\r\n` : ''}\r\n`;
    for (const p of [null, 'mqttv3.1', 'stomp']) {
      const r = await rawExchange(h.port, hs(p));
      assert.equal(r.responses[0]?.status, 400, `protocol ${p}: ${r.data.toString().slice(0, 200)}`);
    }
    const ok = await rawExchange(h.port, hs('foo, mqtt'));
    assert.equal(ok.responses[0]?.status, 101);
    assert.equal(ok.responses[0].headers['sec-websocket-protocol'], 'mqtt');
  });
});

/* ---------------------------------------------------------------- violations (raw) */

test('malformed input over raw TCP: each violation gets its answer, other clients keep working', T, async () => {
  await withHerald({ 'mqtt-max-packet': 1024 }, async (h) => {
    const v5connect = (id) => connect({ v: 5, id });
    const cases = [
      {
        name: 'bad protocol name (3.1.1 level)',
        bytes: [connect({ v: 4, id: 'x', protoName: 'MQTX' })],
        check: async (c) => {
          const p = await c.expect(PT.CONNACK);
          assert.equal(p.raw.toString('hex'), '20020001', 'CONNACK 0x01 unacceptable protocol version (3.1.1 form)');
          await c.waitClosed();
        },
      },
      {
        name: 'bad protocol name (level 5)',
        bytes: [connect({ v: 5, id: 'x', protoName: 'MQTX' })],
        check: async (c) => {
          const p = await c.expect(PT.CONNACK);
          assert.equal(p.raw.toString('hex'), '20020001', 'CONNACK 0x01 (3.1.1 form, which 5.0 clients read too)');
          await c.waitClosed();
        },
      },
      {
        name: 'unsupported protocol level 3',
        bytes: [connect({ v: 4, id: 'x', level: 3, protoName: 'MQIsdp' })],
        check: async (c) => {
          const p = await c.expect(PT.CONNACK);
          assert.equal(p.raw.toString('hex'), '20020001');
          await c.waitClosed();
        },
      },
      {
        name: 'unsupported protocol level 6',
        bytes: [connect({ v: 4, id: 'x', level: 6 })],
        check: async (c) => {
          const p = await c.expect(PT.CONNACK);
          assert.equal(connackCode(p), 0x01);
          await c.waitClosed();
        },
      },
      {
        name: 'first packet not CONNECT (SUBSCRIBE)',
        bytes: [subscribePkt({ pid: 1, filters: [['a', 0]] })],
        check: async (c) => {
          await c.waitClosed();
          assert.ok(!c.all.some((p) => p.type === PT.SUBACK), 'no SUBACK');
        },
      },
      {
        name: 'first packet not CONNECT (PINGREQ)',
        bytes: [packet(PT.PINGREQ, 0)],
        check: async (c) => {
          await c.waitClosed();
          assert.ok(!c.all.some((p) => p.type === PT.PINGRESP), 'no PINGRESP');
        },
      },
      {
        name: 'v3: reserved flag bits on PINGREQ after CONNECT',
        bytes: [connect({ v: 4, id: 'rf3' }), packet(PT.PINGREQ, 1)],
        check: async (c) => {
          await c.expect(PT.CONNACK);
          await c.waitClosed();
          assert.ok(!c.all.some((p) => p.type === PT.PINGRESP || p.type === PT.DISCONNECT));
        },
      },
      {
        name: 'v3: SUBSCRIBE with flags 0 (must be 2)',
        bytes: [connect({ v: 4, id: 'rf3s' }), packet(PT.SUBSCRIBE, 0, Buffer.concat([Buffer.from([0, 1]), str('a'), Buffer.from([0])]))],
        check: async (c) => {
          await c.expect(PT.CONNACK);
          await c.waitClosed();
          assert.ok(!c.all.some((p) => p.type === PT.SUBACK));
        },
      },
      {
        name: 'v5: reserved flag bits after CONNECT -> DISCONNECT 0x81',
        bytes: [v5connect('rf5'), packet(PT.PINGREQ, 1)],
        check: async (c) => {
          await c.expect(PT.CONNACK);
          const d = await c.expect(PT.DISCONNECT);
          assert.equal(disconnectReason(d), 0x81);
          await c.waitClosed();
        },
      },
      {
        name: 'v5: packet over mqtt_max_packet -> DISCONNECT 0x95',
        bytes: [v5connect('big'), publishPkt({ v: 5, topic: 'big/t', payload: Buffer.alloc(2000, 0x61) })],
        check: async (c) => {
          await c.expect(PT.CONNACK);
          const d = await c.expect(PT.DISCONNECT);
          assert.equal(disconnectReason(d), 0x95);
          await c.waitClosed();
        },
      },
      {
        name: 'v5: declared length over mqtt_max_packet, body never sent -> DISCONNECT 0x95',
        bytes: [v5connect('bigdecl'), Buffer.concat([Buffer.from([0x30]), varint(100000), str('t')])],
        check: async (c) => {
          await c.expect(PT.CONNACK);
          const d = await c.expect(PT.DISCONNECT);
          assert.equal(disconnectReason(d), 0x95);
          await c.waitClosed();
        },
      },
      {
        name: 'v5: PUBLISH QoS 0 to a wildcard topic -> DISCONNECT 0x90',
        bytes: [v5connect('wild'), publishPkt({ v: 5, topic: 'a/+/c', payload: 'x' })],
        check: async (c) => {
          await c.expect(PT.CONNACK);
          const d = await c.expect(PT.DISCONNECT);
          assert.equal(disconnectReason(d), 0x90);
          await c.waitClosed();
        },
      },
      {
        name: 'v5: PUBLISH QoS 0 to "#" -> DISCONNECT 0x90',
        bytes: [v5connect('wild2'), publishPkt({ v: 5, topic: 'a/#', payload: 'x' })],
        check: async (c) => {
          await c.expect(PT.CONNACK);
          const d = await c.expect(PT.DISCONNECT);
          assert.equal(disconnectReason(d), 0x90);
          await c.waitClosed();
        },
      },
      {
        name: 'v3: PUBLISH to a wildcard topic -> close',
        bytes: [connect({ v: 4, id: 'wild3' }), publishPkt({ v: 4, topic: 'a/+', payload: 'x', qos: 1, pid: 1 })],
        check: async (c) => {
          await c.expect(PT.CONNACK);
          await c.waitClosed();
          assert.ok(!c.all.some((p) => p.type === PT.PUBACK), 'no PUBACK');
        },
      },
      {
        name: 'v3: SUBSCRIBE with an invalid filter a/#/b -> close',
        bytes: [connect({ v: 4, id: 'bf3' }), subscribePkt({ v: 4, pid: 2, filters: [['ok/+', 1], ['a/#/b', 1]] })],
        check: async (c) => {
          await c.expect(PT.CONNACK);
          await c.waitClosed();
          assert.ok(!c.all.some((p) => p.type === PT.SUBACK));
        },
      },
      {
        name: 'v5: SUBSCRIBE with an invalid filter a/b+ -> DISCONNECT 0x81',
        bytes: [v5connect('bf5'), subscribePkt({ v: 5, pid: 2, filters: [['a/b+', 0]] })],
        check: async (c) => {
          await c.expect(PT.CONNACK);
          const d = await c.expect(PT.DISCONNECT);
          assert.equal(disconnectReason(d), 0x81);
          await c.waitClosed();
        },
      },
      {
        name: 'v5: second CONNECT -> DISCONNECT 0x82',
        bytes: [v5connect('twice'), v5connect('twice')],
        check: async (c) => {
          await c.expect(PT.CONNACK);
          const d = await c.expect(PT.DISCONNECT);
          assert.equal(disconnectReason(d), 0x82);
          await c.waitClosed();
        },
      },
      {
        name: 'v5: PUBLISH QoS 3 -> DISCONNECT 0x81',
        bytes: [v5connect('q3'), publishPkt({ v: 5, topic: 'a', payload: 'x', flags: 6, qos: 0 })],
        check: async (c) => {
          await c.expect(PT.CONNACK);
          const d = await c.expect(PT.DISCONNECT);
          assert.equal(disconnectReason(d), 0x81);
          await c.waitClosed();
        },
      },
      {
        name: 'remaining length with a 5th continuation byte',
        bytes: [connect({ v: 4, id: 'vl' }), Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])],
        check: async (c) => {
          await c.expect(PT.CONNACK);
          await c.waitClosed();
        },
      },
    ];
    for (const k of cases) {
      const watcher = await mq(tcpURL(h), { clientId: 'watcher', protocolVersion: 5 });
      await watcher.sub('probe/#', { qos: 1 });
      const c = await MqttRaw.open(h.mqttPort);
      try {
        for (const b of k.bytes) c.write(b);
        await k.check(c).catch((e) => {
          e.message = `${k.name}: ${e.message}`;
          throw e;
        });
        await stillServes(h, k.name.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').toLowerCase().slice(0, 40));
        assert.ok(!watcher.closed, `${k.name}: the watcher is still connected`);
        assert.equal(watcher.q.all.length, 1, `${k.name}: the watcher saw the probe only`);
      } finally {
        c.destroy();
        await watcher.end();
      }
    }
  });
});

/* ---------------------------------------------------------------- shutdown */

test('server shutdown sends v5 DISCONNECT 0x8B to TCP clients and closes v3 ones; exit is clean', T, async () => {
  const h = await startHerald();
  let c5;
  let c3;
  let w;
  try {
    c5 = await MqttRaw.open(h.mqttPort, { v: 5 });
    await c5.handshake({ v: 5, id: 'sd5' });
    c5.write(subscribePkt({ v: 5, pid: 1, filters: [['sd/#', 1]] }));
    await c5.expect(PT.SUBACK);
    c3 = await MqttRaw.open(h.mqttPort);
    await c3.handshake({ v: 4, id: 'sd3' });
    w = await mq(wsMqttURL(h), { clientId: 'sdws', protocolVersion: 5 });
    const stopped = h.stop();
    const d = await c5.expect(PT.DISCONNECT, 5000 * SCALE);
    assert.equal(disconnectReason(d), 0x8b);
    await c5.waitClosed(5000 * SCALE);
    await c3.waitClosed(5000 * SCALE);
    assert.ok(!c3.all.some((p) => p.type === PT.DISCONNECT), 'no DISCONNECT to a 3.1.1 client');
    await waitFor(() => w.closed, 5000 * SCALE, 'the WebSocket MQTT client closed');
    await stopped;
  } finally {
    c5?.destroy();
    c3?.destroy();
    w?.c.end(true);
    await h.stop();
  }
});

test('session takeover publishes the old connection will (no will delay), v3 and v5', T, async () => {
  await withHerald(async (h) => {
    const watcher = await mq(tcpURL(h), { clientId: 'will-watcher' });
    try {
      await watcher.sub('wills/#', { qos: 1 });
      for (const pv of [4, 5]) {
        const first = await mq(tcpURL(h), {
          clientId: `tk${pv}`,
          protocolVersion: pv,
          will: { topic: `wills/tk${pv}`, payload: Buffer.from(`gone ${pv}`), qos: 1, retain: false },
        });
        const second = await mq(tcpURL(h), { clientId: `tk${pv}`, protocolVersion: pv });
        try {
          const m = await watcher.next();
          assert.equal(m.topic, `wills/tk${pv}`);
          assert.equal(m.payload, `gone ${pv}`);
          await waitFor(() => first.closed, 5000 * SCALE, 'the first client closed');
        } finally {
          await first.end();
          await second.end();
        }
      }
      assert.equal(watcher.pending(), 0, 'each will once');
    } finally {
      await watcher.end();
    }
  });
});

test('$SYS/ statistics reach $SYS subscribers (at once on subscribe, then every interval), never "#"', T, async () => {
  await withHerald({ 'mqtt-sys-interval': '0.2' }, async (h) => {
    const all = await mq(tcpURL(h), { clientId: 'hash-only' });
    const sys = await mq(tcpURL(h), { clientId: 'sys-watcher' });
    try {
      await all.sub('#', { qos: 0 });
      await sys.sub('$SYS/broker/clients/connected', { qos: 0 });
      const first = await sys.next();
      assert.equal(first.topic, '$SYS/broker/clients/connected');
      assert.ok(first.packet.retain, 'the current value comes at once, flagged retained');
      // the next update counts both sessions
      const m = await waitFor(async () => {
        const x = await sys.next();
        return Number(x.payload) === 2 ? x : null;
      }, 5000 * SCALE, 'an update counting 2 clients');
      assert.equal(m.topic, '$SYS/broker/clients/connected');
      await publish(h, 'sentinel/x', 'end');
      await expectOnly(all, 'sentinel/x', '"#" does not match $SYS topics');
    } finally {
      await all.end();
      await sys.end();
    }
  });
});
