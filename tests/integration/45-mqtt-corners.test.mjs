// MQTT corners that real clients hit: topics beginning with '/' (an empty first level) as herald
// channels reachable from every transport; wills refused at CONNECT when they could never be
// published (logged, counted); mqtt_max_keepalive (v5 Server Keep Alive, the 1.5x drop);
// server-to-client topic aliases; '$' publishes acknowledged without dropping the connection;
// the DISCONNECT of a client over Receive Maximum read by the client (lingering close).
// Clients: MQTT.js, mosquitto_pub/mosquitto_sub, paho-mqtt (py/mqtt_corners.py), and raw TCP
// (tests/lib/mqttraw.mjs) where a client must misbehave or the wire itself is checked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mq, tcpURL } from '../lib/mqttjs.mjs';
import { withHerald, publish, tryPublish, getJSON, waitFor, run, spawnStream, metrics, openSSE, sleep, SCALE } from '../lib/herald.mjs';
import {
  PT, MqttRaw, connect, publishPkt, subscribePkt, parsePublish, splitPackets, connackCode, connackProps, propOf,
  disconnectReason,
} from '../lib/mqttraw.mjs';

const T = { timeout: 60000 * SCALE };
const here = path.dirname(fileURLToPath(import.meta.url));
const PY = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const count = (s, re) => (s.match(re) || []).length;

/* ---------------------------------------------------------------- topics beginning with '/' */

test('"/TopicA": MQTT subscribers (exact, "/#", "+/TopicA") get HTTP publishes; MQTT publishes reach SSE and history', T, async () => {
  await withHerald(async (h) => {
    const port = String(h.mqttPort);
    const exact = await mq(tcpURL(h), { clientId: 'slash-exact', protocolVersion: 5 });
    const hash = await mq(tcpURL(h), { clientId: 'slash-hash' });
    const plus = await mq(tcpURL(h), { clientId: 'slash-plus' });
    const msub = spawnStream('stdbuf', ['-oL', 'mosquitto_sub', '-h', '127.0.0.1', '-p', port, '-v', '-q', '1', '-t', '/TopicA', '-C', '2', '-d']);
    const sse = await openSSE(h, '/sub/%2FTopicA');
    try {
      await exact.sub('/TopicA', { qos: 1 });
      await hash.sub('/#', { qos: 1 });
      await plus.sub('+/TopicA', { qos: 1 });
      await waitFor(() => /SUBACK/.test(msub.text), 5000 * SCALE, 'mosquitto_sub subscribed');
      // HTTP -> MQTT (the channel is "/TopicA", written %2FTopicA in the URL)
      await publish(h, '%2FTopicA', 'from-http');
      for (const w of [exact, hash, plus]) {
        const m = await w.next();
        assert.deepEqual([m.topic, m.payload], ['/TopicA', 'from-http']);
      }
      // MQTT -> SSE, mosquitto_sub, history
      await exact.pub('/TopicA', 'from-mqtt', { qos: 1 });
      const pubR = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '-q', '1', '-t', '/TopicA/deeper', '-m', 'deep']);
      assert.equal(pubR.code, 0, `mosquitto_pub: ${pubR.stderr}`);
      const d = await hash.next();
      assert.deepEqual([d.topic, d.payload], ['/TopicA', 'from-mqtt']);
      const d2 = await hash.next();
      assert.deepEqual([d2.topic, d2.payload], ['/TopicA/deeper', 'deep'], '"/#" matches deeper levels');
      const ev1 = await sse.next();
      const ev2 = await sse.next();
      assert.deepEqual([ev1.data, ev2.data], ['from-http', 'from-mqtt']);
      await waitFor(() => msub.exited, 5000 * SCALE, 'mosquitto_sub -C 2 exits');
      assert.deepEqual(msub.text.split('\n').filter((l) => l.startsWith('/TopicA ')), ['/TopicA from-http', '/TopicA from-mqtt']);
      const j = await getJSON(h, '/sub/%2FTopicA?mode=poll&last_id=0');
      assert.deepEqual(j.messages.map((m) => m.data), ['from-http', 'from-mqtt']);
      // a retained message on "/ret" reaches a later "+/ret" subscriber (retained matching, empty level)
      await exact.pub('/ret', 'kept', { qos: 1, retain: true });
      const late = await mq(tcpURL(h), { clientId: 'slash-late' });
      try {
        await late.sub('+/ret', { qos: 1 });
        const r = await late.next();
        assert.deepEqual([r.topic, r.payload, r.packet.retain], ['/ret', 'kept', true]);
      } finally {
        await late.end();
      }
      // "//x", "a//b" and "a/" stay invalid channel names over HTTP
      for (const bad of ['%2F%2Fx', 'a%2F%2Fb', 'a%2F']) {
        const b = await tryPublish(h, bad, 'x');
        assert.equal(b.status, 400, `POST /pub/${bad}`);
      }
    } finally {
      sse.close?.();
      await msub.stop().catch(() => {});
      for (const w of [exact, hash, plus]) await w.end();
    }
  });
});

test('a will on "/x" is delivered when its client dies; "/#" ACL patterns cover "/x"', T, async () => {
  const dir = fs.mkdtempSync('/tmp/herald-acl-');
  const perms = path.join(dir, 'perms');
  fs.writeFileSync(perms, 'anonymous pubsub /#\n');
  try {
    await withHerald({ permissions_file: perms }, async (h) => {
      const sub = await mq(tcpURL(h), { clientId: 'will-watch', protocolVersion: 5 });
      const dying = await mq(tcpURL(h), {
        clientId: 'will-dies', protocolVersion: 5, will: { topic: '/x', payload: Buffer.from('gone'), qos: 1 },
      });
      try {
        await sub.sub('/x', { qos: 1 });
        await assert.rejects(sub.sub('y', { qos: 1 }), /Not authorized/, '"/#" does not cover "y"');
        dying.c.stream.destroy(); // no DISCONNECT: the will goes out
        const m = await sub.next();
        assert.deepEqual([m.topic, m.payload], ['/x', 'gone']);
      } finally {
        await sub.end();
        dying.c.end(true);
      }
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/* ---------------------------------------------------------------- refused wills and publishes */

test('a will that could never be published is refused at CONNECT (v5 0x90, 3.1.1 return code 5), logged and counted', T, async () => {
  await withHerald(async (h) => {
    // MQTT.js v5: CONNACK 0x90 Topic Name invalid
    await assert.rejects(
      mq(tcpURL(h), { clientId: 'will-dollar5', protocolVersion: 5, will: { topic: '$x/will', payload: Buffer.from('w') } }),
      (e) => e.code === 0x90,
      'v5 CONNACK 0x90',
    );
    // MQTT.js 3.1.1: return code 5
    await assert.rejects(
      mq(tcpURL(h), { clientId: 'will-bad3', will: { topic: 'a//b', payload: Buffer.from('w') } }),
      (e) => e.code === 5,
      '3.1.1 CONNACK 5',
    );
    // a will on a valid channel is accepted as before
    const ok = await mq(tcpURL(h), { clientId: 'will-ok', will: { topic: 'fine', payload: Buffer.from('w') } });
    await ok.end();
    await waitFor(() => count(h.out, /will to '.*' refused/g) >= 2, 3000 * SCALE, 'both refusals logged');
    assert.match(h.out, /will to '\$x\/will' refused: the will topic is a '\$' topic/);
    assert.match(h.out, /will to 'a\/\/b' refused: the will topic is not a herald channel name/);
    const m = await metrics(h);
    assert.equal(m.get('herald_mqtt_refused_total{reason="will_topic_invalid"}'), 2);
  });
});

test('"$" publishes: acknowledged, not delivered, the connection stays (MQTT.js 3.1.1 and v5 with 0x90, paho), logged once', T, async () => {
  await withHerald(async (h) => {
    const watch = await mq(tcpURL(h), { clientId: 'dollar-watch' });
    await watch.sub('#', { qos: 1 });
    await watch.sub('$x/#', { qos: 1 });
    const v3 = await mq(tcpURL(h), { clientId: 'dollar3' });
    const v5 = await mq(tcpURL(h), { clientId: 'dollar5', protocolVersion: 5 });
    try {
      await v3.pub('$x/y', 'hidden', { qos: 1 }); // PUBACK: resolves
      await v3.pub('$x/y', 'hidden', { qos: 2 });
      await v3.pub('$x/y', 'hidden', { qos: 0 });
      await assert.rejects(v5.pub('$x/y', 'hidden', { qos: 1 }), (e) => e.code === 0x90, 'v5 PUBACK 0x90');
      await v5.pub('$x/y', 'hidden', { qos: 0 });
      // a topic that is no channel: the same (v3 acknowledged; v5 0x90)
      await v3.pub('a//b', 'hidden', { qos: 1 });
      await assert.rejects(v5.pub('a//b', 'hidden', { qos: 1 }), (e) => e.code === 0x90, 'v5 PUBACK 0x90 for a//b');
      // mosquitto_pub (3.1.1 and 5) completes its QoS 1 publish to a '$' topic
      for (const V of ['mqttv311', 'mqttv5']) {
        const r = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(h.mqttPort), '-V', V, '-q', '1', '-t', '$x/mosq', '-m', 'hidden']);
        assert.equal(r.code, 0, `mosquitto_pub ${V} to $x/mosq: ${r.stderr}`);
      }
      for (const [w, tag] of [[v3, 'after3'], [v5, 'after5']]) {
        await w.pub(tag, tag, { qos: 1 });
        assert.equal(w.closed, false, `${tag}: still connected`);
      }
      const got = [(await watch.next()).topic, (await watch.next()).topic].sort();
      assert.deepEqual(got, ['after3', 'after5'], 'nothing from the $ publishes reached anyone');
      // paho 3.1.1 and 5 the same way
      for (const ver of ['311', '5']) {
        const r = await run(PY, [path.join(here, 'py/mqtt_corners.py'), 'dollar', '127.0.0.1', String(h.mqttPort), ver], { timeout: 30000 * SCALE });
        assert.equal(r.code, 0, `paho ${ver}: ${r.stdout} ${r.stderr}`);
        const out = JSON.parse(r.stdout.toString().trim().split('\n').pop());
        assert.deepEqual(out.published, [true, true], `paho ${ver}: both acknowledged`);
        assert.deepEqual(out.received, ['paho/after'], `paho ${ver}: only the valid one delivered`);
        assert.equal(out.connected, true);
      }
      await waitFor(() => count(h.out, /\(dollar3\): publish to '\$x\/y' refused/g) === 1, 3000 * SCALE, 'logged');
      assert.equal(count(h.out, /\(dollar3\): publish to '\$x\/y' refused/g), 1, 'once per connection');
      assert.equal(count(h.out, /\(dollar5\): publish to '\$x\/y' refused/g), 1, 'once per connection');
      const m = await metrics(h);
      assert.equal(m.get('herald_mqtt_refused_total{reason="dollar_topic"}'), 9);
      assert.equal(m.get('herald_mqtt_refused_total{reason="topic_invalid"}'), 2);
      assert.match(h.out, /\(dollar3\): publish to 'a\/\/b' refused: the topic is not a herald channel name \(topic_invalid/);
    } finally {
      for (const w of [watch, v3, v5]) await w.end();
    }
  });
});

/* ---------------------------------------------------------------- keep-alive */

test('mqtt_max_keepalive: v5 clients get Server Keep Alive (MQTT.js, paho, raw) and are dropped after 1.5x; 3.1.1 held to it', T, async () => {
  await withHerald({ mqtt_max_keepalive: 2 }, async (h) => {
    const js = await mq(tcpURL(h), { clientId: 'ka-js', protocolVersion: 5, keepalive: 7200 });
    try {
      assert.equal(js.connack.properties?.serverKeepAlive, 2, 'MQTT.js sees Server Keep Alive');
    } finally {
      await js.end();
    }
    const r = await run(PY, [path.join(here, 'py/mqtt_corners.py'), 'keepalive', '127.0.0.1', String(h.mqttPort), '7200'], { timeout: 30000 * SCALE });
    assert.equal(r.code, 0, `paho: ${r.stdout} ${r.stderr}`);
    assert.deepEqual(JSON.parse(r.stdout.toString().trim().split('\n').pop()), { rc: 0, server_keep_alive: 2 });
    // a client asking for less keeps its own (no property)
    const low = await MqttRaw.open(h.mqttPort);
    const lc = await low.handshake({ v: 5, id: 'ka-low', keepalive: 1 });
    assert.equal(propOf(connackProps(lc), 0x13), undefined);
    low.destroy();
    // silent raw clients asking for 2 hours: v5 told 2 s, dropped with DISCONNECT 0x8D after ~3 s;
    // 3.1.1 (asking for 2 h, then for none) likewise closed after ~3 s, and the one asking for none stays
    const v5 = await MqttRaw.open(h.mqttPort);
    const v3 = await MqttRaw.open(h.mqttPort);
    const v3zero = await MqttRaw.open(h.mqttPort);
    try {
      const t0 = Date.now();
      const ca = await v5.handshake({ v: 5, id: 'ka-raw5', keepalive: 7200 });
      assert.equal(connackCode(ca), 0);
      assert.equal(propOf(connackProps(ca), 0x13), 2, 'Server Keep Alive 2');
      assert.equal(connackCode(await v3.handshake({ v: 4, id: 'ka-raw3', keepalive: 7200 })), 0);
      assert.equal(connackCode(await v3zero.handshake({ v: 4, id: 'ka-raw3z', keepalive: 0 })), 0);
      const d = await v5.expect(PT.DISCONNECT, 8000 * SCALE);
      assert.equal(disconnectReason(d), 0x8d);
      await v3.waitClosed(8000 * SCALE);
      const took = Date.now() - t0;
      assert.ok(took >= 2500 && took < 6000 * SCALE, `dropped after ${took} ms (want ~3000)`);
      assert.equal(v3zero.closed, false, '3.1.1 keepalive 0 is not held to the maximum');
      const m = await metrics(h);
      assert.ok(m.get('herald_mqtt_keepalive_capped_total') >= 4);
      assert.match(h.out, /keep alive 7200 s over mqtt_max_keepalive: held to 2 s/);
    } finally {
      v5.destroy();
      v3.destroy();
      v3zero.destroy();
    }
  });
});

/* ---------------------------------------------------------------- topic aliases */

test('server-to-client topic aliases: MQTT.js resolves them; on the wire the topic is sent once, then only the alias', T, async () => {
  await withHerald({ mqtt_topic_aliases_out: 2 }, async (h) => {
    const long = 'alias/' + 'x'.repeat(200);
    const js = await mq(tcpURL(h), { clientId: 'alias-js', protocolVersion: 5, properties: { topicAliasMaximum: 10 } });
    const raw = await MqttRaw.open(h.mqttPort);
    const plain = await mq(tcpURL(h), { clientId: 'alias-none', protocolVersion: 5 });
    try {
      // raw: Topic Alias Maximum 10 (property 0x22), herald's own cap is 2
      const ca = await raw.handshake({ v: 5, id: 'alias-raw', props: Buffer.from([0x22, 0, 10]) });
      assert.equal(connackCode(ca), 0);
      raw.write(subscribePkt({ v: 5, pid: 1, filters: [['alias/#', 0]] }));
      await raw.expect(PT.SUBACK);
      await js.sub('alias/#', { qos: 1 });
      await plain.sub('alias/#', { qos: 0 });
      const topics = [long, long, 'alias/b', 'alias/c', 'alias/c', long];
      for (const [i, t] of topics.entries()) await publish(h, t, `m${i}`);
      const wire = [];
      for (let i = 0; i < topics.length; i++) wire.push(parsePublish(await raw.expect(PT.PUBLISH), 5));
      const alias = (p) => propOf(p.props, 0x23);
      assert.deepEqual(wire.map((p) => [p.topic, alias(p)]), [
        [long, 1], ['', 1], ['alias/b', 2], ['alias/c', undefined], ['alias/c', undefined], ['', 1],
      ], 'topic once, then the alias; beyond the cap of 2 the topic goes whole');
      assert.deepEqual(wire.map((p) => p.payload.toString()), ['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
      for (let i = 0; i < topics.length; i++) {
        const m = await js.next();
        assert.deepEqual([m.topic, m.payload], [topics[i], `m${i}`], 'MQTT.js resolves the alias');
        if (i === 1) {
          assert.equal(m.packet.properties?.topicAlias, 1);
          assert.equal(m.packet.topic, '', 'the second message had an empty topic on the wire');
        }
      }
      for (let i = 0; i < topics.length; i++) {
        const m = await plain.next();
        assert.equal(m.topic, topics[i]);
        assert.equal(m.packet.properties?.topicAlias, undefined, 'no alias for a client that offered none');
      }
    } finally {
      raw.destroy();
      await js.end();
      await plain.end();
    }
  });
});

/* ---------------------------------------------------------------- DISCONNECT read before the close */

test('a v5 client over Receive Maximum reads DISCONNECT 0x93 although it kept sending (lingering close)', T, async () => {
  await withHerald(async (h) => {
    const raw = await MqttRaw.open(h.mqttPort);
    try {
      assert.equal(connackCode(await raw.handshake({ v: 5, id: 'flood' })), 0);
      // 1024 QoS 2 messages may await PUBREL (Receive Maximum); the 1025th is over, and more follow
      // at once, so herald's receive buffer holds unread input when it answers
      const pkts = [];
      for (let i = 1; i <= 3000; i++) pkts.push(publishPkt({ v: 5, topic: 'flood/t', payload: 'p'.repeat(64), qos: 2, pid: i }));
      raw.write(Buffer.concat(pkts));
      const d = await raw.expect(PT.DISCONNECT, 10000 * SCALE);
      assert.equal(disconnectReason(d), 0x93, 'Receive Maximum exceeded');
      await raw.waitClosed(5000 * SCALE);
      const m = await metrics(h);
      assert.ok(m.get('herald_mqtt_lingers_total{outcome="lingered"}') >= 1);
      await waitFor(async () => (await metrics(h)).get('herald_mqtt_lingering') === 0, 5000 * SCALE, 'linger ended');
      // the server serves on
      const p = await mq(tcpURL(h), { clientId: 'after-flood' });
      await p.sub('after/flood', { qos: 1 });
      await publish(h, 'after/flood', 'alive');
      assert.equal((await p.next()).payload, 'alive');
      await p.end();
    } finally {
      raw.destroy();
    }
  });
});

test('MQTT.js v5 exceeding Receive Maximum with QoS 2 gets the DISCONNECT reason 0x93', T, async () => {
  await withHerald(async (h) => {
    const js = await mq(tcpURL(h), { clientId: 'js-flood', protocolVersion: 5 });
    // MQTT.js sends no PUBREL until PUBREC: hold the PUBRECs back by pausing its socket's reads
    js.c.stream.pause();
    for (let i = 0; i < 1100; i++) js.c.publish('js/flood', 'x', { qos: 2 });
    await sleep(500 * SCALE);
    js.c.stream.resume();
    await waitFor(() => js.disconnects.length > 0 || js.closed, 10000 * SCALE, 'DISCONNECT or close');
    assert.ok(js.disconnects.length > 0, 'the DISCONNECT was read before the close');
    assert.equal(js.disconnects[0].reasonCode, 0x93);
    js.c.end(true);
  });
});

test('a lingering connection that keeps sending and never closes is closed within about 2 s of its DISCONNECT', T, async () => {
  await withHerald(async (h) => {
    // allowHalfOpen: this client does not close when herald half-closes; it keeps sending
    const sock = net.connect({ host: '127.0.0.1', port: h.mqttPort, allowHalfOpen: true });
    await new Promise((res, rej) => sock.once('connect', res).once('error', rej));
    let buf = Buffer.alloc(0);
    let endAt = 0;
    let closedAt = 0;
    sock.on('data', (d) => (buf = Buffer.concat([buf, d])));
    sock.on('end', () => (endAt = Date.now()));
    sock.on('error', () => {});
    sock.on('close', () => (closedAt = Date.now()));
    sock.write(connect({ v: 5, id: 'linger' }));
    const pkts = [];
    for (let i = 1; i <= 1100; i++) pkts.push(publishPkt({ v: 5, topic: 'linger/t', payload: 'x', qos: 2, pid: i }));
    sock.write(Buffer.concat(pkts));
    const drip = setInterval(() => {
      if (!sock.destroyed) sock.write(publishPkt({ v: 5, topic: 'linger/t', payload: 'more' }));
    }, 50);
    try {
      await waitFor(() => endAt, 10000 * SCALE, "herald's half-close after the DISCONNECT");
      const d = splitPackets(buf).pkts.find((p) => p.type === PT.DISCONNECT);
      assert.ok(d, 'the DISCONNECT arrived before the FIN');
      assert.equal(disconnectReason(d), 0x93);
      await waitFor(() => closedAt, 8000 * SCALE, 'the close');
      const lingered = closedAt - endAt;
      assert.ok(lingered >= 1500 && lingered < 3000 * SCALE, `lingered ${lingered} ms (want ~2000)`);
      const m = await metrics(h);
      assert.ok(m.get('herald_mqtt_lingers_total{outcome="lingered"}') >= 1);
    } finally {
      clearInterval(drip);
      sock.destroy();
    }
  });
});

test('max_lingering_closes bounds MQTT lingering too: beyond it a refused client is closed at once, counted and logged once', T, async () => {
  await withHerald({ max_lingering_closes: 1 }, async (h) => {
    const raws = [];
    try {
      for (const id of ['l1', 'l2', 'l3']) {
        const raw = await MqttRaw.open(h.mqttPort, { allowHalfOpen: true });
        raws.push(raw); /* never closed by the client: only the server ends it */
        const ack = await raw.handshake({ v: 5, id, will: { topic: 'a//b', payload: 'x' } });
        assert.equal(connackCode(ack), 0x90, 'a will that can never be published is refused');
      }
      const m = await metrics(h);
      assert.equal(m.get('herald_mqtt_lingers_total{outcome="lingered"}'), 1);
      assert.equal(m.get('herald_mqtt_lingers_total{outcome="skipped"}'), 2);
      assert.equal((h.out.match(/linger after their last packet \(max_lingering_closes\)/g) || []).length, 1, 'logged once');
      await waitFor(async () => (await metrics(h)).get('herald_mqtt_lingering') === 0, 5000 * SCALE, 'the linger ended');
    } finally {
      for (const r of raws) r.destroy();
    }
  });
});
