// Global ceilings ([limits]): subscriptions per connection on every transport, MQTT queued bytes
// across all sessions, retained messages (count and bytes), and the bytes of every channel's
// history together with both policies (trim the oldest of any channel, or refuse). Each limit is
// tried until it bites: the protocol's own refusal, the metric, one log line, and the server
// serving on afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withHerald, startHerald, request, publish, getJSON, metrics, waitFor, SCALE } from '../lib/herald.mjs';
import { MqttRaw, PT, subscribePkt, publishPkt, disconnectPkt } from '../lib/mqttraw.mjs';
import { mq, tcpURL } from '../lib/mqttjs.mjs';
import { openWS, wsURL, rawStomp, frame } from '../lib/stomp.mjs';

const T = { timeout: 60000 * SCALE };

const hits = async (h, limit) => (await metrics(h)).get(`herald_limit_hits_total{limit="${limit}"}`);
const gauge = async (h, name) => (await metrics(h)).get(name);
/* how many log lines match re */
const logLines = (h, re) => h.out.split('\n').filter((l) => re.test(l)).length;

/* A /ws JSON connection: call(obj) sends a request and resolves with its reply. */
async function wsJson(h) {
  const c = await openWS(wsURL(h, '/ws'), ['herald.v1']);
  const welcome = JSON.parse((await c.next()).data.toString());
  assert.equal(welcome.op, 'welcome');
  c.call = async (obj) => {
    c.send(JSON.stringify(obj));
    for (;;) {
      const m = await c.next(5000 * SCALE);
      if (!m) throw new Error(`closed before the reply to ${JSON.stringify(obj)}`);
      const j = JSON.parse(m.data.toString());
      if (j.op === 'reply' && j.ref === obj.ref) return j;
    }
  };
  return c;
}

/* The reason code of a v5 PUBACK/PUBREC (0 when the packet has only the packet id). */
const ackReason = (p) => (p.body.length > 2 ? p.body[2] : 0);
/* The return codes of a SUBACK (after the packet id, and for v5 the properties) */
function subackCodes(p, v) {
  let o = 2;
  if (v === 5) o += 1 + p.body[2]; // a one-byte property length is enough here
  return [...p.body.subarray(o)];
}

async function mqttRaw(h, o = {}) {
  const c = await MqttRaw.open(h.mqttPort, { v: o.v ?? 4 });
  const ack = await c.handshake({ id: o.id ?? '', clean: o.clean ?? true, ...o });
  assert.equal(ack.body[1], 0, 'CONNACK accepted');
  return c;
}

/* ---------------------------------------------------------------- max_subscriptions */

test('max_subscriptions: /ws too_many_subscriptions, STOMP ERROR, MQTT SUBACK 0x97 (v5) / 0x80 (3.1.1); counted, logged once', T, async () => {
  await withHerald({ 'max-subscriptions': 3 }, async (h) => {
    // /ws: three subscriptions, the fourth refused; an unsubscribe frees a slot
    const w = await wsJson(h);
    try {
      for (let i = 0; i < 3; i++) assert.equal((await w.call({ op: 'subscribe', channel: `w${i}`, ref: i })).ok, true);
      const over = await w.call({ op: 'subscribe', channel: 'w3', ref: 'over' });
      assert.equal(over.ok, false);
      assert.equal(over.error.code, 'too_many_subscriptions');
      assert.match(over.error.message, /at most 3 subscriptions/);
      assert.equal((await getJSON(h, '/channels/w3')).subscribers, 0);
      assert.equal((await w.call({ op: 'unsubscribe', channel: 'w0', ref: 'u' })).ok, true);
      assert.equal((await w.call({ op: 'subscribe', channel: 'w3', ref: 'again' })).ok, true);
      // a second connection has its own three
      const w2 = await wsJson(h);
      for (let i = 0; i < 3; i++) assert.equal((await w2.call({ op: 'subscribe', channel: `w${i}`, ref: i })).ok, true);
      assert.equal((await w2.call({ op: 'subscribe', channel: 'w9', ref: 'x' })).error.code, 'too_many_subscriptions');
      w2.close();
    } finally {
      w.close();
    }
    assert.equal(await hits(h, 'max_subscriptions'), 2);

    // STOMP: the fourth SUBSCRIBE is an ERROR and the connection closes
    const s = await rawStomp(h);
    try {
      const SUB = (d, id, extra = []) => frame('SUBSCRIBE', [['destination', d], ['id', id], ...extra]);
      s.send(Buffer.concat([SUB('/topic/s0', 'a'), SUB('/topic/s1', 'b'), SUB('/topic/s2', 'c', [['receipt', 'r3']])]));
      assert.equal((await s.expect('RECEIPT')).raw('receipt-id'), 'r3');
      s.send(SUB('/topic/s3', 'd', [['receipt', 'r4']]));
      const e = await s.expect('ERROR');
      assert.equal(e.raw('message'), 'too many subscriptions');
      assert.equal(e.raw('receipt-id'), 'r4');
      assert.match(e.text, /max_subscriptions/);
      await s.waitClosed();
    } finally {
      s.close();
    }
    assert.equal(await hits(h, 'max_subscriptions'), 3);

    // MQTT 5: SUBACK 0x97 for the filter beyond the limit; replacing a filter is not a new one
    const m5 = await mqttRaw(h, { v: 5 });
    try {
      m5.write(subscribePkt({ v: 5, pid: 1, filters: [['a/#', 1], ['b/+', 0], ['c', 1], ['d', 0]] }));
      assert.deepEqual(subackCodes(await m5.expect(PT.SUBACK), 5), [1, 0, 1, 0x97]);
      m5.write(subscribePkt({ v: 5, pid: 2, filters: [['a/#', 0]] }));
      assert.deepEqual(subackCodes(await m5.expect(PT.SUBACK), 5), [0], 'a new subscription to a filter held replaces it');
    } finally {
      m5.destroy();
    }
    // MQTT 3.1.1: 0x80
    const m3 = await mqttRaw(h, { v: 4 });
    try {
      m3.write(subscribePkt({ v: 4, pid: 1, filters: [['x', 0], ['y', 0], ['z', 0], ['over', 1]] }));
      assert.deepEqual(subackCodes(await m3.expect(PT.SUBACK), 4), [0, 0, 0, 0x80]);
    } finally {
      m3.destroy();
    }
    assert.equal(await hits(h, 'max_subscriptions'), 5);
    assert.equal(logLines(h, /max_subscriptions \(3 per connection\) reached/), 1, 'logged the first time only');
  });
});

test('/sub URLs name at most 16 channels (compile-time cap)', T, async () => {
  await withHerald(async (h) => {
    const chans = Array.from({ length: 17 }, (_, i) => `c${i}`);
    const r = await request(h, 'GET', `/sub/${chans.join(',')}?mode=poll`);
    assert.equal(r.status, 400);
    assert.match(r.text, /at most 16/);
    assert.equal((await request(h, 'GET', `/sub/${chans.slice(0, 16).join(',')}?mode=poll`)).status, 200);
  });
});

/* ---------------------------------------------------------------- mqtt_max_queued_bytes_total */

test('mqtt_max_queued_bytes_total: offline queues together stay under it; the oldest of the largest queue goes first', T, async () => {
  const TOTAL = 64 * 1024;
  await withHerald({ 'mqtt-max-queued-bytes-total': TOTAL }, async (h) => {
    // two persistent sessions, subscribed, then away
    for (const id of ['qa', 'qb']) {
      const c = await mq(tcpURL(h), { clientId: id, clean: false });
      await c.sub(`${id}/t`, { qos: 1 });
      await c.end();
    }
    const body = (id, i) => `${id}-${String(i).padStart(4, '0')}-${'x'.repeat(990)}`;
    for (let i = 0; i < 40; i++) await publish(h, 'qa/t', body('qa', i));
    assert.equal(await hits(h, 'mqtt_max_queued_bytes_total'), 0, '40 KB fit');
    for (let i = 0; i < 40; i++) await publish(h, 'qb/t', body('qb', i));
    const dropped = await hits(h, 'mqtt_max_queued_bytes_total');
    assert.ok(dropped >= 10, `messages dropped for the total (${dropped})`);
    const queued = await gauge(h, 'herald_mqtt_queued_bytes');
    assert.ok(queued <= TOTAL && queued > TOTAL - 2 * 1024, `queued ${queued} bytes, at most ${TOTAL}`);
    assert.equal(logLines(h, /mqtt_max_queued_bytes_total/), 1, 'logged once');

    // back: each gets the newest of its messages; the one that had queued most lost its oldest
    const got = {};
    for (const id of ['qa', 'qb']) {
      const c = await mq(tcpURL(h), { clientId: id, clean: false });
      await publish(h, `${id}/t`, 'marker');
      const seen = [];
      for (;;) {
        const m = await c.next(5000 * SCALE);
        if (m.payload === 'marker') break;
        seen.push(m.payload.slice(0, 7));
      }
      await c.end();
      got[id] = seen;
    }
    const total = got.qa.length + got.qb.length;
    assert.equal(total, 80 - dropped, 'every message not dropped arrives');
    assert.equal(got.qa.at(-1), 'qa-0039');
    assert.equal(got.qb.at(-1), 'qb-0039');
    assert.notEqual(got.qa[0], 'qa-0000', 'the largest queue lost its oldest');
    assert.ok(got.qa.length >= 20 && got.qb.length >= 20, `both keep a fair share (${got.qa.length}, ${got.qb.length})`);
    for (const id of ['qa', 'qb']) {
      const nums = got[id].map((p) => Number(p.slice(3)));
      assert.deepEqual(nums, [...nums].sort((a, b) => a - b), `${id} in order`);
      assert.equal(nums.at(-1) - nums[0] + 1, nums.length, `${id} lost only its oldest (no hole)`);
    }
    assert.equal(await gauge(h, 'herald_mqtt_queued_bytes'), 0);
  });
});

/* ---------------------------------------------------------------- max_retained, max_retained_bytes */

test('max_retained: v5 PUBACK 0x97 beyond it (replacing and clearing allowed); 3.1.1 and QoS 0: published, not retained', T, async () => {
  await withHerald({ 'max-retained': 2 }, async (h) => {
    const live = await mq(tcpURL(h), { clientId: 'live' });
    await live.sub('r/#', { qos: 1 });
    const p5 = await mqttRaw(h, { v: 5, id: 'p5' });
    const pub5 = async (topic, payload, pid) => {
      p5.write(publishPkt({ v: 5, topic, payload, qos: 1, retain: true, pid }));
      const a = await p5.expect(PT.PUBACK);
      assert.equal(a.body.readUInt16BE(0), pid);
      return ackReason(a);
    };
    try {
      assert.equal(await pub5('r/1', 'one', 1), 0);
      assert.equal(await pub5('r/2', 'two', 2), 0);
      assert.equal(await pub5('r/3', 'three', 3), 0x97, 'a third retained message is refused');
      assert.equal(await pub5('r/1', 'one again', 4), 0, 'replacing one is allowed');
      assert.equal(await gauge(h, 'herald_retained_messages'), 2);
      assert.equal(await pub5('r/2', '', 5), 0, 'clearing one is allowed');
      assert.equal(await pub5('r/3', 'three', 6), 0, 'room again');
      // the refused one was not published at all
      const payloads = [];
      for (let i = 0; i < 5; i++) payloads.push((await live.next(5000 * SCALE)).payload);
      assert.deepEqual(payloads, ['one', 'two', 'one again', '', 'three']);
    } finally {
      p5.destroy();
    }
    // 3.1.1 cannot be refused: published (the live subscriber gets it), acknowledged, not retained
    const p3 = await mqttRaw(h, { v: 4, id: 'p3' });
    try {
      p3.write(publishPkt({ v: 4, topic: 'r/4', payload: 'four', qos: 1, retain: true, pid: 9 }));
      assert.equal((await p3.expect(PT.PUBACK)).body.readUInt16BE(0), 9);
      p3.write(publishPkt({ v: 4, topic: 'r/5', payload: 'five', qos: 0, retain: true }));
      assert.equal((await live.next(5000 * SCALE)).payload, 'four');
      assert.equal((await live.next(5000 * SCALE)).payload, 'five');
    } finally {
      p3.destroy();
    }
    await live.end();
    // a new subscriber gets exactly the two retained messages
    const late = await mq(tcpURL(h), { clientId: 'late' });
    await late.sub('r/#', { qos: 0 });
    const retained = [(await late.next(5000 * SCALE)).payload, (await late.next(5000 * SCALE)).payload].sort();
    assert.deepEqual(retained, ['one again', 'three']);
    await publish(h, 'r/x', 'after');
    assert.equal((await late.next(5000 * SCALE)).payload, 'after', 'nothing else was retained');
    await late.end();
    assert.equal(await hits(h, 'max_retained'), 3);
    assert.equal(await gauge(h, 'herald_retained_messages'), 2);
    assert.equal(logLines(h, /limits: max_retained(_bytes)? reached/), 1, 'logged once');
  });
});

test('max_retained_bytes: a retained message beyond the bytes is refused; a replacement counts what it frees', T, async () => {
  await withHerald({ 'max-retained-bytes': '4k' }, async (h) => {
    const p5 = await mqttRaw(h, { v: 5, id: 'rb' });
    let pid = 0;
    const pub5 = async (topic, n) => {
      p5.write(publishPkt({ v: 5, topic, payload: 'x'.repeat(n), qos: 1, retain: true, pid: ++pid }));
      return ackReason(await p5.expect(PT.PUBACK));
    };
    try {
      assert.equal(await pub5('b/1', 1500), 0);
      assert.equal(await pub5('b/2', 1500), 0);
      assert.equal(await pub5('b/3', 1500), 0x97, 'over 4k together');
      assert.equal(await pub5('b/2', 1700), 0, 'a replacement frees what it replaces');
      const bytes = await gauge(h, 'herald_retained_bytes');
      assert.ok(bytes > 3200 && bytes <= 4096, `retained bytes ${bytes}`);
      assert.equal(await pub5('b/3', 500), 0x97, 'each message also counts its overhead (msg_cost)');
    } finally {
      p5.destroy();
    }
    assert.equal(await hits(h, 'max_retained_bytes'), 2);
    assert.equal(await hits(h, 'max_retained'), 0);
  });
});

/* ---------------------------------------------------------------- max_history_memory */

async function publishMany(h, channel, n, size) {
  for (let i = 0; i < n; i += 50) {
    const batch = [];
    for (let k = i; k < Math.min(n, i + 50); k++) batch.push(publish(h, channel, `${k}:`.padEnd(size, 'h')));
    await Promise.all(batch);
  }
}

test('max_history_memory, history_policy = trim: the oldest history of any channel is trimmed first, on disk too', T, async () => {
  const MAX = 1024 * 1024;
  const h = await startHerald({ 'max-history-memory': '1m' });
  const dataDir = h.dataDir;
  try {
    for (let c = 0; c < 5; c++) await publishMany(h, `hm${c}`, 300, 1000); // ~1.7 MB in all
    const bytes = await gauge(h, 'herald_history_bytes');
    assert.ok(bytes <= MAX && bytes > MAX - 4096, `history bytes ${bytes} within max_history_memory`);
    const info = [];
    for (let c = 0; c < 5; c++) info.push((await getJSON(h, `/channels/hm${c}`)).history);
    assert.equal(info[0].messages, 0, 'the channel published first lost everything');
    assert.equal(info[4].messages, 300, 'the newest channel kept everything');
    assert.equal(info[3].messages, 300);
    assert.ok(info[1].messages < 300, 'the older channels paid');
    const trimmed = await hits(h, 'max_history_memory');
    assert.equal(trimmed, 1500 - info.reduce((n, x) => n + x.messages, 0), 'every trimmed message counted');
    // a resume on the trimmed channel is told about the gap
    const poll = await getJSON(h, '/sub/hm0?mode=poll&last_id=0');
    assert.equal(poll.gap, true);
    assert.equal(poll.count, 0);
    assert.equal(logLines(h, /over max_history_memory/), 1, 'logged once');
    // publishing goes on (the limit trims, it never refuses)
    assert.equal((await request(h, 'POST', '/pub/hm0', { body: 'still' })).status, 200);
    await h.stop({ keepData: true });
    // the store forgot the trimmed messages too
    const h2 = await startHerald({ 'max-history-memory': '1m', 'data-dir': dataDir });
    try {
      const again = (await getJSON(h2, '/sub/hm1?mode=poll&last_id=0')).messages.length;
      assert.equal(again, info[1].messages, 'after a restart the trimmed channel holds what it held');
      assert.equal((await getJSON(h2, '/sub/hm0?mode=poll&last_id=0')).messages.length, 1);
    } finally {
      await h2.stop();
    }
  } finally {
    await h.stop();
  }
});

test('max_history_memory, history_policy = refuse: 507 (HTTP), 0x97 (MQTT 5) until history ages out', T, async () => {
  await withHerald({ 'max-history-memory': '1m', 'history-policy': 'refuse', 'history-age': 3 }, async (h) => {
    let accepted = 0;
    let refused = null;
    for (let i = 0; i < 2000 && !refused; i++) {
      const r = await request(h, 'POST', `/pub/hr${i % 3}`, { body: 'r'.repeat(1000) });
      if (r.status === 200) accepted++;
      else refused = r;
    }
    assert.ok(refused, 'publishes are refused at the limit');
    assert.equal(refused.status, 507);
    assert.match(JSON.parse(refused.text).error, /max_history_memory/);
    // ~1.2 KB each with the per-message overhead: 1 MiB holds some 850
    assert.ok(accepted > 600 && accepted < 1024, `${accepted} accepted before the refusal`);
    assert.ok((await gauge(h, 'herald_history_bytes')) <= 1024 * 1024);
    // other channels and other transports are refused as well; reads go on
    assert.equal((await request(h, 'POST', '/pub/other', { body: 'y'.repeat(1000) })).status, 507);
    const p5 = await mqttRaw(h, { v: 5, id: 'hr' });
    try {
      p5.write(publishPkt({ v: 5, topic: 'hr/m', payload: 'z'.repeat(1000), qos: 1, pid: 7 }));
      assert.equal(ackReason(await p5.expect(PT.PUBACK)), 0x97);
    } finally {
      p5.write(disconnectPkt(5));
      p5.destroy();
    }
    assert.equal((await getJSON(h, '/sub/hr0?mode=poll&last_id=0')).count > 0, true);
    assert.ok((await hits(h, 'max_history_memory')) >= 3);
    assert.equal(logLines(h, /history_policy = refuse/), 1, 'logged once');
    // history_age frees it (the sweep): publishes are accepted again
    await waitFor(async () => (await request(h, 'POST', '/pub/hr0', { body: 'again' })).status === 200, 15000 * SCALE,
      'a publish accepted after the history aged out', 250);
  });
});
