// MQTT sessions that outlive their connections, and the MQTT 5 features that ride on them:
// persistent sessions with mosquitto_sub, paho and MQTT.js (v3.1.1 and v5, TCP and WebSocket)
// receiving what was published while they were away; redelivery with DUP and PUBREL again on
// reconnect; QoS 2 exactly once across a disconnect in the middle of the handshake (both
// directions); the bounded offline queue and its drop-oldest policy; session expiry (v5, capped,
// DISCONNECT rules); will delay; message expiry; topic aliases; receive maximum; maximum packet
// size; user properties, content type and request/response properties passed through.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { withHerald, publish, getJSON, waitFor, sleep, run, metrics, SCALE } from '../lib/herald.mjs';
import { mq, tcpURL, wsMqttURL } from '../lib/mqttjs.mjs';
import {
  PT, PROP, MqttRaw, publishPkt, subscribePkt, ackPkt, disconnectPkt, parsePublish, prop, propOf,
  sessionPresent, connackProps, disconnectReason,
} from '../lib/mqttraw.mjs';

const T = { timeout: 60000 * SCALE };
const here = path.dirname(fileURLToPath(import.meta.url));
const PY = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

/* Publishes n QoS 1 messages "pfx-1".."pfx-n" on topic over HTTP. */
async function publishN(h, topic, pfx, n) {
  for (let i = 1; i <= n; i++) await publish(h, topic, `${pfx}-${i}`);
}

/* Reads n PUBLISHes from a raw client (acking QoS 1 ones unless ack is false). */
async function readPublishes(c, n, { v = 4, ack = true } = {}) {
  const out = [];
  while (out.length < n) {
    const p = parsePublish(await c.expect(PT.PUBLISH), v);
    out.push(p);
    if (ack && p.qos === 1) c.write(ackPkt(PT.PUBACK, p.pid));
  }
  return out;
}

/* Asserts that no PUBLISH arrives within ms. */
async function noPublish(c, ms = 300) {
  await sleep(ms);
  const p = c.pkts.find((q) => q.type === PT.PUBLISH);
  assert.ok(!p, `unexpected PUBLISH ${p && p.raw.toString('hex')}`);
}

/* ---------------------------------------------------------------- real clients */

for (const V of ['mqttv311', 'mqttv5']) {
  test(`mosquitto_sub (${V}) with a persistent session gets what was published while it was away, in order`, T, async () => {
    await withHerald(async (h) => {
      const base = ['-h', '127.0.0.1', '-p', String(h.mqttPort), '-V', V, '-i', `mosq-${V}`, '-c', '-q', '1'];
      const expiry = V === 'mqttv5' ? ['-x', '300'] : [];
      const first = await run('mosquitto_sub', [...base, ...expiry, '-t', 'away/#', '-E'], { timeout: 10000 * SCALE });
      assert.equal(first.code, 0, first.stderr);
      await publishN(h, 'away/http', 'h', 3);
      const pub = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(h.mqttPort), '-V', V, '-q', '1',
        '-t', 'away/mqtt', '-m', 'm-1'], { timeout: 10000 * SCALE });
      assert.equal(pub.code, 0, pub.stderr);
      const back = await run('mosquitto_sub', [...base, ...expiry, '-t', 'away/#', '-C', '4', '-W', String(10 * SCALE)],
        { timeout: 15000 * SCALE });
      assert.equal(back.code, 0, back.stderr);
      assert.deepEqual(back.stdout.toString().trim().split('\n'), ['h-1', 'h-2', 'h-3', 'm-1']);
    });
  });
}

for (const ver of ['311', '5']) {
  test(`paho-mqtt (${ver}) resumes its persistent session: session present and the missed messages once`, T, async () => {
    await withHerald(async (h) => {
      const py = (n) => run(PY, [path.join(here, 'py/mqtt_client.py'), 'session', '127.0.0.1', String(h.mqttPort), ver,
        `paho-s-${ver}`, String(n)], { timeout: 20000 * SCALE });
      const a = await py(0);
      assert.equal(a.code, 0, a.stderr + a.stdout);
      assert.equal(JSON.parse(a.stdout.toString().trim().split('\n').pop()).present, false);
      await publishN(h, 'paho/s/x', 'p', 4);
      const b = await py(4);
      assert.equal(b.code, 0, b.stderr + b.stdout);
      const r = JSON.parse(b.stdout.toString().trim().split('\n').pop());
      assert.equal(r.present, true);
      assert.deepEqual(r.received, ['p-1', 'p-2', 'p-3', 'p-4']);
    });
  });
}

for (const [name, url] of [['TCP', tcpURL], ['WebSocket', wsMqttURL]]) {
  test(`MQTT.js v5 over ${name}: session expiry keeps the session; clean start discards it`, T, async () => {
    await withHerald(async (h) => {
      const opts = { clientId: `js-${name}`, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 300 } };
      const a = await mq(url(h), opts);
      assert.equal(a.connack.sessionPresent, false);
      await a.sub('js/+', { qos: 2 });
      await a.end();
      await publish(h, 'js/a', 'while away 1');
      await publish(h, 'js/b', 'while away 2');
      const b = await mq(url(h), opts);
      try {
        assert.equal(b.connack.sessionPresent, true);
        assert.deepEqual([(await b.next()).payload, (await b.next()).payload], ['while away 1', 'while away 2']);
        await publish(h, 'js/c', 'live'); /* the subscription is still there: no SUBSCRIBE this time */
        assert.equal((await b.next()).payload, 'live');
      } finally {
        await b.end();
      }
      const c = await mq(url(h), { ...opts, clean: true });
      try {
        assert.equal(c.connack.sessionPresent, false);
        await publish(h, 'js/d', 'nobody');
        await sleep(200);
        assert.equal(c.pending(), 0, 'clean start dropped the subscription');
      } finally {
        await c.end();
      }
    });
  });
}

test('MQTT.js v4: clean session 1 keeps nothing; clean session 0 keeps QoS 0 and QoS 1 subscriptions', T, async () => {
  await withHerald(async (h) => {
    const a = await mq(tcpURL(h), { clientId: 'v4-keep', clean: false });
    await a.sub('k0/#', { qos: 0 });
    await a.sub('k1/#', { qos: 1 });
    await a.end();
    const z = await mq(tcpURL(h), { clientId: 'v4-clean', clean: true });
    await z.sub('k1/#', { qos: 1 });
    await z.end();
    await publish(h, 'k0/x', 'zero');
    await publish(h, 'k1/x', 'one');
    const b = await mq(tcpURL(h), { clientId: 'v4-keep', clean: false });
    const zz = await mq(tcpURL(h), { clientId: 'v4-clean', clean: false });
    try {
      assert.equal(b.connack.sessionPresent, true);
      const got = [await b.next(), await b.next()].map((m) => `${m.topic}=${m.payload}/q${m.packet.qos}`).sort();
      assert.deepEqual(got, ['k0/x=zero/q0', 'k1/x=one/q1']);
      assert.equal(zz.connack.sessionPresent, false, 'a clean session is not kept');
      await sleep(150);
      assert.equal(zz.pending(), 0);
    } finally {
      await b.end();
      await zz.end();
    }
  });
});

/* ---------------------------------------------------------------- redelivery (raw) */

test('redelivery: unacknowledged QoS 1 PUBLISHes come again with DUP and the same packet ids, in order', T, async () => {
  await withHerald(async (h) => {
    let c = await MqttRaw.open(h.mqttPort);
    await c.handshake({ v: 4, id: 'dup1', clean: false });
    c.write(subscribePkt({ pid: 1, filters: [['re/#', 1]] }));
    await c.expect(PT.SUBACK);
    await publishN(h, 're/x', 'r', 3);
    const first = await readPublishes(c, 3, { ack: false });
    assert.deepEqual(first.map((p) => [p.dup, p.payload.toString()]), [[false, 'r-1'], [false, 'r-2'], [false, 'r-3']]);
    c.write(ackPkt(PT.PUBACK, first[0].pid)); /* only the first is acknowledged */
    await sleep(100);
    c.destroy();
    await publish(h, 're/x', 'r-4'); /* published while away */
    c = await MqttRaw.open(h.mqttPort);
    try {
      const ca = await c.handshake({ v: 4, id: 'dup1', clean: false });
      assert.equal(sessionPresent(ca), true);
      const again = await readPublishes(c, 3);
      assert.deepEqual(again.map((p) => [p.dup, p.pid, p.payload.toString()]),
        [[true, first[1].pid, 'r-2'], [true, first[2].pid, 'r-3'], [false, again[2].pid, 'r-4']]);
      await noPublish(c);
      c.destroy();
      c = await MqttRaw.open(h.mqttPort); /* everything was acknowledged: nothing comes again */
      await c.handshake({ v: 4, id: 'dup1', clean: false });
      await noPublish(c);
    } finally {
      c.destroy();
    }
  });
});

test('QoS 2 out, disconnect after PUBREC: the reconnect gets PUBREL again (not the PUBLISH) and PUBCOMP ends it', T, async () => {
  await withHerald(async (h) => {
    let c = await MqttRaw.open(h.mqttPort, { v: 5 });
    await c.handshake({ v: 5, id: 'q2out', clean: false, props: prop.u32(PROP.SESSION_EXPIRY, 60) });
    c.write(subscribePkt({ v: 5, pid: 1, filters: [['q2o/t', 2]] }));
    await c.expect(PT.SUBACK);
    await publish(h, 'q2o/t', 'once');
    await publish(h, 'q2o/t', 'twice');
    const [a, b] = await readPublishes(c, 2, { v: 5 });
    assert.equal(a.qos, 2);
    c.write(ackPkt(PT.PUBREC, a.pid));
    const rel = await c.expect(PT.PUBREL);
    assert.equal(rel.body.readUInt16BE(0), a.pid);
    c.destroy(); /* PUBCOMP never sent; b never PUBRECed */
    c = await MqttRaw.open(h.mqttPort, { v: 5 });
    try {
      const ca = await c.handshake({ v: 5, id: 'q2out', clean: false, props: prop.u32(PROP.SESSION_EXPIRY, 60) });
      assert.equal(sessionPresent(ca), true);
      const p1 = await c.next();
      assert.equal(p1.type, PT.PUBREL, 'first the PUBREL of the message the client already has');
      assert.equal(p1.body.readUInt16BE(0), a.pid);
      const p2 = parsePublish(await c.expect(PT.PUBLISH), 5);
      assert.deepEqual([p2.dup, p2.pid, p2.payload.toString()], [true, b.pid, 'twice']);
      c.write(ackPkt(PT.PUBCOMP, a.pid));
      c.write(ackPkt(PT.PUBREC, b.pid));
      await c.expect(PT.PUBREL);
      c.write(ackPkt(PT.PUBCOMP, b.pid));
      await noPublish(c);
    } finally {
      c.destroy();
    }
  });
});

test('QoS 2 in, exactly once across a disconnect in the middle of the handshake (PUBLISH resent with DUP)', T, async () => {
  await withHerald(async (h) => {
    const sub = await mq(tcpURL(h), { clientId: 'q2in-sub', protocolVersion: 5 });
    await sub.sub('q2i/#', { qos: 2 });
    let c = await MqttRaw.open(h.mqttPort);
    try {
      await c.handshake({ v: 4, id: 'q2in', clean: false });
      c.write(publishPkt({ topic: 'q2i/t', payload: 'exactly once', qos: 2, pid: 42 }));
      const rec = await c.expect(PT.PUBREC);
      assert.equal(rec.body.readUInt16BE(0), 42);
      c.destroy(); /* gone before PUBREL */
      c = await MqttRaw.open(h.mqttPort);
      const ca = await c.handshake({ v: 4, id: 'q2in', clean: false });
      assert.equal(sessionPresent(ca), true);
      c.write(publishPkt({ topic: 'q2i/t', payload: 'exactly once', qos: 2, pid: 42, dup: true }));
      const rec2 = await c.expect(PT.PUBREC);
      assert.equal(rec2.body.readUInt16BE(0), 42);
      c.write(ackPkt(PT.PUBREL, 42));
      const comp = await c.expect(PT.PUBCOMP);
      assert.equal(comp.body.readUInt16BE(0), 42);
      /* a PUBLISH with the same id after PUBCOMP is a new message */
      c.write(publishPkt({ topic: 'q2i/t', payload: 'second', qos: 2, pid: 42 }));
      await c.expect(PT.PUBREC);
      c.write(ackPkt(PT.PUBREL, 42));
      await c.expect(PT.PUBCOMP);
      assert.equal((await sub.next()).payload, 'exactly once');
      assert.equal((await sub.next()).payload, 'second');
      await sleep(200);
      assert.equal(sub.pending(), 0, 'no duplicate');
      const hist = await getJSON(h, '/sub/q2i/t?mode=poll&last_id=0');
      assert.deepEqual(hist.messages.map((m) => m.data), ['exactly once', 'second'], 'history has each once');
    } finally {
      c.destroy();
      await sub.end();
    }
  });
});

/* ---------------------------------------------------------------- offline queue */

test('offline queue: bounded by mqtt_max_queued, the oldest dropped and counted; mqtt_queue_qos0 = false keeps only QoS > 0', T, async () => {
  await withHerald({ 'mqtt_max_queued': 5, 'mqtt_queue_qos0': 'false' }, async (h) => {
    let c = await MqttRaw.open(h.mqttPort);
    await c.handshake({ v: 4, id: 'ovf', clean: false });
    c.write(subscribePkt({ pid: 1, filters: [['ovf/q1', 1], ['ovf/q0', 0]] }));
    await c.expect(PT.SUBACK);
    c.destroy();
    await waitFor(async () => (await metrics(h)).get('herald_connections{transport="mqtt"}') === 0, 3000 * SCALE, 'gone');
    const before = (await metrics(h)).get('herald_queue_drops_total');
    await publishN(h, 'ovf/q1', 'm', 8);
    await publish(h, 'ovf/q0', 'qos0 not kept');
    c = await MqttRaw.open(h.mqttPort);
    try {
      await c.handshake({ v: 4, id: 'ovf', clean: false });
      const got = await readPublishes(c, 5);
      assert.deepEqual(got.map((p) => p.payload.toString()), ['m-4', 'm-5', 'm-6', 'm-7', 'm-8']);
      await noPublish(c);
      assert.equal((await metrics(h)).get('herald_queue_drops_total') - before, 3);
    } finally {
      c.destroy();
    }
  });
});

test('offline queue: bounded in bytes by mqtt_max_queued_bytes, the oldest dropped, logged once', T, async () => {
  await withHerald({ 'mqtt_max_queued_bytes': '64k' }, async (h) => {
    let c = await MqttRaw.open(h.mqttPort);
    await c.handshake({ v: 4, id: 'big', clean: false });
    c.write(subscribePkt({ pid: 1, filters: [['big/q', 1]] }));
    await c.expect(PT.SUBACK);
    c.destroy();
    await waitFor(async () => (await metrics(h)).get('herald_connections{transport="mqtt"}') === 0, 3000 * SCALE, 'gone');
    const before = (await metrics(h)).get('herald_queue_drops_total');
    const pad = 'x'.repeat(20000);
    for (let i = 1; i <= 10; i++) await publish(h, 'big/q', `${i}:${pad}`); // 10 x ~20 KB against a 64 KB bound
    c = await MqttRaw.open(h.mqttPort);
    try {
      await c.handshake({ v: 4, id: 'big', clean: false });
      const got = await readPublishes(c, 3);
      assert.deepEqual(got.map((p) => p.payload.toString().split(':')[0]), ['8', '9', '10'], 'the newest three fit in 64 KB');
      await noPublish(c);
      assert.equal((await metrics(h)).get('herald_queue_drops_total') - before, 7);
      assert.equal(h.out.split('mqtt_max_queued_bytes').length - 1, 1, 'the overflow is logged once');
    } finally {
      c.destroy();
    }
  });
});

/* ---------------------------------------------------------------- session expiry */

test('session expiry (v5): kept within the interval, gone after it; capped by mqtt_session_expiry and said in CONNACK', T, async () => {
  await withHerald({ 'mqtt_session_expiry': 1 }, async (h) => {
    let c = await MqttRaw.open(h.mqttPort, { v: 5 });
    const ca = await c.handshake({ v: 5, id: 'exp', clean: false, props: prop.u32(PROP.SESSION_EXPIRY, 3600) });
    assert.equal(propOf(connackProps(ca), PROP.SESSION_EXPIRY), 1, 'granted 1 s, not the 3600 asked');
    c.write(subscribePkt({ v: 5, pid: 1, filters: [['exp/t', 1]] }));
    await c.expect(PT.SUBACK);
    c.destroy();
    c = await MqttRaw.open(h.mqttPort, { v: 5 });
    assert.equal(sessionPresent(await c.handshake({ v: 5, id: 'exp', clean: false, props: prop.u32(PROP.SESSION_EXPIRY, 1) })), true);
    c.destroy();
    await sleep(1600);
    c = await MqttRaw.open(h.mqttPort, { v: 5 });
    try {
      assert.equal(sessionPresent(await c.handshake({ v: 5, id: 'exp', clean: false })), false, 'expired');
      await publish(h, 'exp/t', 'after expiry');
      await noPublish(c, 200);
    } finally {
      c.destroy();
    }
  });
});

test('DISCONNECT (v5): session expiry 0 on CONNECT cannot be raised (0x82); raising a non-zero one keeps the session', T, async () => {
  await withHerald(async (h) => {
    const c = await MqttRaw.open(h.mqttPort, { v: 5 });
    await c.handshake({ v: 5, id: 'dz' });
    c.write(Buffer.concat([Buffer.from([0xe0, 7, 0, 5]), prop.u32(PROP.SESSION_EXPIRY, 60)]));
    const d = await c.expect(PT.DISCONNECT);
    assert.equal(disconnectReason(d), 0x82);
    await c.waitClosed();
    let k = await MqttRaw.open(h.mqttPort, { v: 5 });
    await k.handshake({ v: 5, id: 'dr', clean: false, props: prop.u32(PROP.SESSION_EXPIRY, 1) });
    k.write(subscribePkt({ v: 5, pid: 1, filters: [['dr/t', 1]] }));
    await k.expect(PT.SUBACK);
    k.write(Buffer.concat([Buffer.from([0xe0, 7, 0, 5]), prop.u32(PROP.SESSION_EXPIRY, 120)]));
    await k.waitClosed();
    await sleep(1500); /* past the 1 s from CONNECT */
    await publish(h, 'dr/t', 'kept');
    k = await MqttRaw.open(h.mqttPort, { v: 5 });
    try {
      assert.equal(sessionPresent(await k.handshake({ v: 5, id: 'dr', clean: false, props: prop.u32(PROP.SESSION_EXPIRY, 120) })), true);
      const [p] = await readPublishes(k, 1, { v: 5 });
      assert.equal(p.payload.toString(), 'kept');
    } finally {
      k.destroy();
    }
  });
});

/* ---------------------------------------------------------------- will delay */

test('will delay (v5): published after the delay, and not at all when the client comes back in time', T, async () => {
  await withHerald(async (h) => {
    const watch = await mq(tcpURL(h), { clientId: 'will-watch', protocolVersion: 5 });
    await watch.sub('wd/#', { qos: 1 });
    const open = async (id, delay) => {
      const c = await MqttRaw.open(h.mqttPort, { v: 5 });
      await c.handshake({ v: 5, id, clean: false, props: prop.u32(PROP.SESSION_EXPIRY, 60),
        will: { topic: `wd/${id}`, payload: `${id} gone`, qos: 1, props: prop.u32(PROP.WILL_DELAY, delay) } });
      return c;
    };
    try {
      const late = await open('late', 1);
      const back = await open('back', 1);
      const t0 = Date.now();
      late.destroy();
      back.destroy();
      await sleep(300);
      assert.equal(watch.pending(), 0, 'nothing before the delay');
      const again = await open('back', 1); /* back in time: its will is not sent */
      const m = await watch.next(3000 * SCALE);
      assert.equal(m.topic, 'wd/late');
      assert.equal(m.payload, 'late gone');
      assert.ok(Date.now() - t0 >= 900, `will after about 1 s, got ${Date.now() - t0} ms`);
      await sleep(1200);
      assert.equal(watch.pending(), 0, 'the returning client\'s will never went out');
      again.write(disconnectPkt(5));
      await again.waitClosed();
    } finally {
      await watch.end();
    }
  });
});

/* ---------------------------------------------------------------- message expiry */

test('message expiry (v5): expired messages are not delivered from the queue or as retained; the rest carry the time left', T, async () => {
  await withHerald(async (h) => {
    let c = await MqttRaw.open(h.mqttPort, { v: 5 });
    await c.handshake({ v: 5, id: 'mexp', clean: false, props: prop.u32(PROP.SESSION_EXPIRY, 60) });
    c.write(subscribePkt({ v: 5, pid: 1, filters: [['mx/+', 1]] }));
    await c.expect(PT.SUBACK);
    c.destroy();
    const p = await mq(tcpURL(h), { clientId: 'mx-pub', protocolVersion: 5 });
    await p.pub('mx/short', 'short', { qos: 1, properties: { messageExpiryInterval: 1 } });
    await p.pub('mx/long', 'long', { qos: 1, properties: { messageExpiryInterval: 600 } });
    await p.pub('mx/retained', 'fleeting', { qos: 1, retain: true, properties: { messageExpiryInterval: 1 } });
    await p.end();
    await sleep(1300);
    c = await MqttRaw.open(h.mqttPort, { v: 5 });
    try {
      await c.handshake({ v: 5, id: 'mexp', clean: false, props: prop.u32(PROP.SESSION_EXPIRY, 60) });
      const [m] = await readPublishes(c, 1, { v: 5 });
      assert.equal(m.payload.toString(), 'long');
      const left = propOf(m.props, PROP.MESSAGE_EXPIRY);
      assert.ok(left <= 599 && left >= 590, `time left ${left}`);
      await noPublish(c, 200);
      const s = await mq(tcpURL(h), { clientId: 'mx-late', protocolVersion: 5 });
      await s.sub('mx/retained', { qos: 1 });
      await sleep(200);
      assert.equal(s.pending(), 0, 'an expired retained message is not sent');
      await s.end();
    } finally {
      c.destroy();
    }
  });
});

/* ---------------------------------------------------------------- topic aliases */

test('topic aliases (v5): MQTT.js publishing with aliases reaches subscribers under the full topic', T, async () => {
  await withHerald(async (h) => {
    const s = await mq(tcpURL(h), { clientId: 'ta-sub', protocolVersion: 5 });
    await s.sub('ta/#', { qos: 1 });
    const p = await mq(tcpURL(h), { clientId: 'ta-pub', protocolVersion: 5, autoAssignTopicAlias: true });
    try {
      assert.equal(p.connack.properties.topicAliasMaximum, 64);
      for (let i = 0; i < 3; i++) await p.pub('ta/long/topic/name', `a${i}`, { qos: 1 });
      await p.pub('ta/other', 'b', { qos: 1 });
      const got = [];
      for (let i = 0; i < 4; i++) {
        const m = await s.next();
        got.push(`${m.topic}=${m.payload}`);
      }
      assert.deepEqual(got, ['ta/long/topic/name=a0', 'ta/long/topic/name=a1', 'ta/long/topic/name=a2', 'ta/other=b']);
    } finally {
      await p.end();
      await s.end();
    }
  });
});

test('topic aliases (raw v5): set then used; an unknown alias is 0x82, one over the maximum 0x94', T, async () => {
  await withHerald({ 'mqtt_topic_aliases': 2 }, async (h) => {
    const s = await mq(tcpURL(h), { clientId: 'tar-sub', protocolVersion: 5 });
    await s.sub('tar/#', { qos: 0 });
    const c = await MqttRaw.open(h.mqttPort, { v: 5 });
    try {
      await c.handshake({ v: 5, id: 'tar' });
      c.write(publishPkt({ v: 5, topic: 'tar/x', payload: 'set', props: prop.u16(PROP.TOPIC_ALIAS, 2) }));
      c.write(publishPkt({ v: 5, topic: '', payload: 'used', props: prop.u16(PROP.TOPIC_ALIAS, 2) }));
      c.write(publishPkt({ v: 5, topic: 'tar/y', payload: 'plain' }));
      assert.deepEqual([await s.next(), await s.next(), await s.next()].map((m) => `${m.topic}=${m.payload}`),
        ['tar/x=set', 'tar/x=used', 'tar/y=plain']);
      c.write(publishPkt({ v: 5, topic: '', payload: 'unknown', props: prop.u16(PROP.TOPIC_ALIAS, 1) }));
      assert.equal(disconnectReason(await c.expect(PT.DISCONNECT)), 0x82);
      const d = await MqttRaw.open(h.mqttPort, { v: 5 });
      await d.handshake({ v: 5, id: 'tar2' });
      d.write(publishPkt({ v: 5, topic: 'tar/z', payload: 'over', props: prop.u16(PROP.TOPIC_ALIAS, 3) }));
      assert.equal(disconnectReason(await d.expect(PT.DISCONNECT)), 0x94);
      d.destroy();
      await sleep(100);
      assert.equal(s.pending(), 0, 'neither refused publish was delivered');
    } finally {
      c.destroy();
      await s.end();
    }
  });
});

/* ---------------------------------------------------------------- flow control */

test('receive maximum (v5): at most that many QoS 1 messages unacknowledged; the rest follow the acks, in order', T, async () => {
  await withHerald(async (h) => {
    const c = await MqttRaw.open(h.mqttPort, { v: 5 });
    try {
      await c.handshake({ v: 5, id: 'rm', props: prop.u16(PROP.RECEIVE_MAX, 2) });
      c.write(subscribePkt({ v: 5, pid: 1, filters: [['rm/t', 1]] }));
      await c.expect(PT.SUBACK);
      await publishN(h, 'rm/t', 'w', 6);
      const first = await readPublishes(c, 2, { v: 5, ack: false });
      await noPublish(c, 250);
      const seen = first.map((p) => p.payload.toString());
      c.write(ackPkt(PT.PUBACK, first[0].pid));
      c.write(ackPkt(PT.PUBACK, first[1].pid));
      const rest = await readPublishes(c, 4, { v: 5 });
      seen.push(...rest.map((p) => p.payload.toString()));
      assert.deepEqual(seen, ['w-1', 'w-2', 'w-3', 'w-4', 'w-5', 'w-6']);
    } finally {
      c.destroy();
    }
  });
});

test('maximum packet size (v5): a PUBLISH over the client\'s limit is not sent; the connection goes on', T, async () => {
  await withHerald(async (h) => {
    const c = await MqttRaw.open(h.mqttPort, { v: 5 });
    try {
      await c.handshake({ v: 5, id: 'mps', props: prop.u32(PROP.MAX_PACKET_SIZE, 64) });
      c.write(subscribePkt({ v: 5, pid: 1, filters: [['mps/t', 1]] }));
      await c.expect(PT.SUBACK);
      await publish(h, 'mps/t', 'x'.repeat(200));
      await publish(h, 'mps/t', 'small');
      const [p] = await readPublishes(c, 1, { v: 5 });
      assert.equal(p.payload.toString(), 'small');
      await noPublish(c, 200);
      assert.ok(!c.closed);
    } finally {
      c.destroy();
    }
  });
});

/* ---------------------------------------------------------------- properties */

test('properties pass through (v5): user properties, content type, payload format, response topic, correlation data', T, async () => {
  await withHerald(async (h) => {
    const s5 = await mq(wsMqttURL(h), { clientId: 'pp5', protocolVersion: 5 });
    const s4 = await mq(tcpURL(h), { clientId: 'pp4', protocolVersion: 4 });
    await s5.sub('pp/#', { qos: 1 });
    await s4.sub('pp/#', { qos: 0 });
    const p = await mq(tcpURL(h), { clientId: 'pp-pub', protocolVersion: 5 });
    try {
      const properties = {
        userProperties: { trace: 'abc', tenant: 'acme' }, contentType: 'application/json', payloadFormatIndicator: true,
        responseTopic: 'pp/reply', correlationData: Buffer.from([1, 2, 3]),
      };
      await p.pub('pp/req', '{"q":1}', { qos: 1, properties });
      await p.pub('pp/req0', 'plain', { qos: 0, properties: { userProperties: { k: 'v' } } });
      const m = await s5.next();
      assert.equal(m.payload, '{"q":1}');
      const got = m.packet.properties;
      assert.deepEqual({ ...got.userProperties }, { trace: 'abc', tenant: 'acme' });
      assert.equal(got.contentType, 'application/json');
      assert.equal(got.payloadFormatIndicator, true);
      assert.equal(got.responseTopic, 'pp/reply');
      assert.deepEqual([...got.correlationData], [1, 2, 3]);
      const m0 = await s5.next();
      assert.deepEqual({ ...m0.packet.properties.userProperties }, { k: 'v' });
      assert.deepEqual([(await s4.next()).payload, (await s4.next()).payload], ['{"q":1}', 'plain'], 'v3.1.1 gets the payloads');
    } finally {
      await p.end();
      await s5.end();
      await s4.end();
    }
  });
});
