// The store cannot write (its map is full, or the disk is): nothing is acknowledged or delivered
// that is not committed, no id is handed out twice, reads and subscriptions go on, /readyz says
// so, and publishing comes back by itself once history trimming or an operator frees space.
// After a restart exactly the acknowledged messages are there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { startHerald, request, getJSON, openSSE, waitFor, metrics, sleep, tryPublish, SCALE } from '../lib/herald.mjs';
import { mq, tcpURL } from '../lib/mqttjs.mjs';
import { openWS, rawStomp, frame } from '../lib/stomp.mjs';
import { MqttRaw, publishPkt, PT } from '../lib/mqttraw.mjs';

const T = { timeout: 120000 * SCALE };
const FULL = { error: 'publish failed: the store is full' };


/* Publishes rounds of concurrent messages (so several share a commit) to nch channels until
 * `refusals` have been refused; returns acked: channel -> [{id, data}] and the refusals seen. */
async function fill(h, { nch = 20, size = 2048, refusals = 40, maxRounds = 4000 } = {}) {
  const acked = new Map();
  const refused = [];
  const pad = 'x'.repeat(size);
  for (let round = 0; round < maxRounds && refused.length < refusals; round++) {
    const rs = await Promise.all([...Array(nch)].map(async (_, i) => {
      const ch = `fill/c${i}`;
      const data = `r${round}-${i}-${pad}`;
      return { ch, data, r: await tryPublish(h, ch, data) };
    }));
    for (const { ch, data, r } of rs) {
      if (r.status === 200) {
        if (!acked.has(ch)) acked.set(ch, []);
        acked.get(ch).push({ id: r.json.id, data });
      } else {
        refused.push(r);
      }
    }
  }
  return { acked, refused };
}

/* Every channel's history holds exactly its acknowledged messages, ids 1..n in order. */
async function checkExactly(h, acked) {
  for (const [ch, list] of acked) {
    const j = await getJSON(h, `/sub/${ch}?mode=poll&last_id=0`);
    assert.deepEqual(j.messages.map((m) => m.id), list.map((_, i) => String(i + 1)), `${ch}: ids 1..n, nothing reused`);
    assert.deepEqual(j.messages.map((m) => m.data), list.map((m) => m.data), `${ch}: exactly the acknowledged messages`);
  }
}

async function health(h, p) {
  const r = await request(h, 'GET', p);
  return { status: r.status, json: JSON.parse(r.text) };
}

function dataDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-faults-'));
  return { dir, data: path.join(dir, 'data') };
}

test('a full store map: publishes are refused (507) on every transport, never acknowledged and lost; reads go on; after a restart exactly the acknowledged messages are there and ids go on', T, async () => {
  const { dir, data } = dataDir();
  const flags = { data_dir: data, store_map_size: '1m', history_messages: 100000, history_bytes: '64m' };
  let h = await startHerald(flags);
  let acked;
  try {
    const sse = await openSSE(h, '/sub/fill/c3');
    const r = await fill(h);
    acked = r.acked;
    assert.ok(r.refused.length >= 40);
    for (const x of r.refused) {
      assert.equal(x.status, 507, x.text);
      assert.deepEqual(x.json, FULL);
    }
    assert.ok(acked.size > 0 && [...acked.values()].reduce((a, l) => a + l.length, 0) > 50, 'the map took some first');

    /* the subscriber got exactly what was acknowledged on its channel, nothing else */
    const want = acked.get('fill/c3');
    const got = await sse.take(want.length);
    assert.deepEqual(got.map((e) => e.id), want.map((m) => m.id));
    assert.deepEqual(got.map((e) => e.data), want.map((m) => m.data));
    await sleep(200);
    assert.equal(sse.events.filter((e) => e.id).length, want.length, 'no refused message was delivered');
    sse.close();

    /* reads and subscriptions still work; liveness yes, readiness no */
    const j = await getJSON(h, '/sub/fill/c0?mode=poll&last_id=0');
    assert.equal(j.messages.length, acked.get('fill/c0').length);
    const hz = await health(h, '/healthz');
    assert.equal(hz.status, 200);
    assert.deepEqual(hz.json, { status: 'degraded', store: 'full' });
    const rz = await health(h, '/readyz');
    assert.equal(rz.status, 503);
    assert.deepEqual(rz.json, { status: 'not ready', store: 'full' });
    const m = await metrics(h);
    assert.equal(m.get('herald_store_writable'), 0);
    assert.ok(m.get('herald_store_publishes_failed_total') >= 40);
    assert.ok(m.get('herald_store_commit_failures_total') >= 0);

    /* the other transports refuse with their own errors (messages the map could never hold, so
     * the refusal does not depend on how full the fill left it) */
    const huge = 'x'.repeat(900000);
    await sleep(1100); /* past the one-a-second probe: each of these tries the store */
    const c = await mq(tcpURL(h), { clientId: 'full-v5', protocolVersion: 5 });
    await assert.rejects(c.pub('fill/mqtt', huge, { qos: 1 }), (e) => e.code === 0x97, 'PUBACK 0x97 quota exceeded');
    await c.end();
    /* MQTT 3.1.1 has no way to refuse in a PUBACK: the connection closes without it (the client
     * resends after reconnecting) */
    await sleep(1100);
    const v3 = await MqttRaw.open(h.mqttPort);
    await v3.handshake({ id: 'full-v3' });
    v3.write(publishPkt({ topic: 'fill/mqtt3', qos: 1, pid: 7, payload: huge }));
    await v3.waitClosed();
    assert.ok(!v3.all.some((p) => p.type === PT.PUBACK), 'no PUBACK for a publish that was not stored');
    await sleep(1100);
    const ws = await openWS(`ws://127.0.0.1:${h.port}/ws`, ['herald.v1']);
    await ws.next(); /* welcome */
    ws.send(JSON.stringify({ op: 'publish', ref: 1, channel: 'fill/ws', data: huge }));
    const reply = JSON.parse((await ws.next()).data);
    assert.equal(reply.ok, false);
    assert.equal(reply.error.code, 'publish_failed');
    assert.equal(reply.error.message, 'store full');
    ws.close();
    await sleep(1100);
    const st = await rawStomp(h);
    st.send(frame('SEND', [['destination', '/topic/fill/stomp'], ['receipt', 'r-1']], huge));
    const err = await st.expect('ERROR');
    assert.equal(err.get('message'), 'publish failed');
    assert.equal(err.get('receipt-id'), 'r-1');
    assert.equal(err.text, 'store full');
    assert.equal((await st.waitClosed()).code, 1013, 'close 1013 try again later');
  } finally {
    await h.stop();
  }
  /* restart with more room: exactly the acknowledged messages, and ids continue */
  h = await startHerald({ ...flags, store_map_size: '8m' });
  try {
    await checkExactly(h, acked);
    const n = acked.get('fill/c0').length;
    const r = await tryPublish(h, 'fill/c0', 'after');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.id, String(n + 1), 'the next id follows the last acknowledged one');
    assert.deepEqual((await health(h, '/readyz')).json, { status: 'ok', store: 'ok' });
  } finally {
    await h.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a full store map recovers by itself when history trimming frees space', T, async () => {
  const { dir, data } = dataDir();
  const h = await startHerald({ data_dir: data, store_map_size: '1m', history_age: 2 });
  try {
    const t0 = Date.now();
    /* one publish at a time, large ones: the store is refused exactly when no such message fits */
    const r = await fill(h, { nch: 1, size: 16000, refusals: 3 });
    assert.ok(r.refused.every((x) => x.status === 507));
    assert.equal((await health(h, '/readyz')).status, 503);
    const big = `again-${'x'.repeat(16000)}`;
    await sleep(1100);
    assert.equal((await tryPublish(h, 'fill/again', big)).status, 507, 'the probe finds the store still full');
    /* history_age = 2 s: the sweep (every 5 s) trims the store, and the next probe gets through */
    const ok = await waitFor(async () => (await tryPublish(h, 'fill/again', big)).status === 200, 15000 * SCALE,
      'a publish to succeed again', 250);
    assert.ok(ok);
    assert.ok(Date.now() - t0 >= 2000, 'only once the history aged out');
    await waitFor(async () => (await health(h, '/readyz')).status === 200, 3000 * SCALE, 'ready again', 50);
    assert.match(h.out, /store: full/);
    assert.match(h.out, /store: writing again after/);
  } finally {
    await h.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/* A small tmpfs (CI runs as root) for the data directory: the disk itself fills up. */
function mountTmpfs(dir, size) {
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  return r.status === 0;
}

test('a full disk (tmpfs): failed commits fail their publishes (none acknowledged, none delivered, ids reused); freeing space recovers; after a restart exactly the acknowledged messages are there', T, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-tmpfs-'));
  if (!mountTmpfs(dir, '3m')) {
    fs.rmSync(dir, { recursive: true, force: true });
    t.skip('cannot mount a tmpfs here (needs root)');
    return;
  }
  const data = path.join(dir, 'data');
  const filler = path.join(dir, 'filler');
  fs.writeFileSync(filler, Buffer.alloc(1 << 20, 1));
  const flags = { data_dir: data, history_messages: 100000, history_bytes: '64m' };
  let h;
  let acked;
  try {
    h = await startHerald(flags);
    const sse = await openSSE(h, '/sub/fill/c5');
    const r = await fill(h, { refusals: 30 });
    acked = r.acked;
    for (const x of r.refused) {
      assert.equal(x.status, 507, x.text);
      assert.deepEqual(x.json, FULL);
    }
    assert.match(h.out, /No space left on device|store: full/);
    const want = acked.get('fill/c5');
    const got = await sse.take(want.length);
    assert.deepEqual(got.map((e) => `${e.id}:${e.data}`), want.map((m) => `${m.id}:${m.data}`));
    await sleep(200);
    assert.equal(sse.events.filter((e) => e.id).length, want.length, 'nothing of a failed commit was delivered');
    sse.close();
    assert.equal((await health(h, '/readyz')).status, 503);

    /* the operator frees space: publishing comes back within about a second */
    fs.rmSync(filler);
    const back = await waitFor(async () => {
      const x = await tryPublish(h, 'fill/c0', 'after-free');
      if (x.status === 200) return x.json;
      assert.equal(x.status, 507, x.text);
      return null;
    }, 10000 * SCALE, 'a publish to succeed after freeing space', 200);
    assert.equal(back.id, String(acked.get('fill/c0').length + 1), 'no id was lost or reused');
    acked.get('fill/c0').push({ id: back.id, data: 'after-free' });
    await waitFor(async () => (await health(h, '/readyz')).status === 200, 3000 * SCALE, 'ready again', 50);
    await h.stop();
    h = await startHerald(flags);
    await checkExactly(h, acked);
  } finally {
    if (h) await h.stop().catch(() => {});
    spawnSync('umount', [dir]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
