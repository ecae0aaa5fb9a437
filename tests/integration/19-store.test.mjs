// The durable store (LMDB, the default): histories, ids, MQTT retained messages and persistent
// MQTT sessions survive a restart, including kill -9, with either durability policy; a subscriber resuming after the
// restart gets exactly what it missed; history limits hold on disk; one herald per data
// directory; store = memory forgets (and says so with a gap).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startHerald, publish, request, getJSON, openSSE, run, sleep, freePort, SCALE } from '../lib/herald.mjs';
import { mq, tcpURL } from '../lib/mqttjs.mjs';
import { PT, PROP, MqttRaw, publishPkt, subscribePkt, ackPkt, parsePublish, prop, sessionPresent } from '../lib/mqttraw.mjs';

const T = { timeout: 60000 * SCALE };

/* A data directory that outlives the servers started on it (removed at the end). */
async function withDataDir(fn) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-store-'));
  try {
    return await fn(path.join(dir, 'data'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function history(h, ch, after = 0) {
  const j = await getJSON(h, `/sub/${ch}?mode=poll&last_id=${after}`);
  return j.messages.map((m) => `${m.id}:${m.data}`);
}

for (const durability of ['interval', 'sync']) {
  test(`kill -9 (durability = ${durability}): every acknowledged publish is back with its id; ids go on`, T, async () => {
    await withDataDir(async (dir) => {
      const flags = { data_dir: dir, durability };
      let h = await startHerald(flags);
      const acked = [];
      try {
        /* concurrent publishers: several publishes share each commit */
        for (let round = 0; round < 10; round++) {
          const rs = await Promise.all([...Array(10)].map((_, i) => publish(h, 'crash', `r${round}-${i}`)));
          for (const r of rs) acked.push(`${r.id}`);
        }
      } finally {
        await h.kill9();
      }
      h = await startHerald(flags);
      try {
        const hist = await history(h, 'crash');
        assert.equal(hist.length, 100);
        assert.deepEqual(hist.map((x) => x.split(':')[0]), [...Array(100)].map((_, i) => `${i + 1}`));
        assert.deepEqual([...acked].sort((a, b) => a - b), hist.map((x) => x.split(':')[0]));
        const next = await publish(h, 'crash', 'after');
        assert.equal(next.id, '101', 'ids keep increasing across restarts');
      } finally {
        await h.stop();
      }
    });
  });
}

test('a subscriber resuming after a restart gets exactly the messages it missed (SSE Last-Event-ID)', T, async () => {
  await withDataDir(async (dir) => {
    let h = await startHerald({ data_dir: dir });
    let seen;
    try {
      const s = await openSSE(h, '/sub/resume');
      for (let i = 1; i <= 5; i++) await publish(h, 'resume', `m${i}`);
      const got = await s.take(5);
      seen = got.at(-1).id;
      s.close();
      for (let i = 6; i <= 8; i++) await publish(h, 'resume', `m${i}`); /* published while it was away */
    } finally {
      await h.stop();
    }
    h = await startHerald({ data_dir: dir });
    try {
      await publish(h, 'resume', 'm9'); /* and after the restart */
      const s = await openSSE(h, '/sub/resume', { headers: { 'Last-Event-ID': seen } });
      const got = await s.take(4);
      assert.deepEqual(got.map((e) => `${e.id}:${e.data}`), ['6:m6', '7:m7', '8:m8', '9:m9']);
      assert.ok(!got.some((e) => e.event === 'gap'));
      await sleep(150);
      assert.equal(s.events.length, 4, 'nothing more, no gap notice');
      s.close();
    } finally {
      await h.stop();
    }
  });
});

test('MQTT retained messages survive kill -9; a cleared one stays cleared; MQTT publishes keep their ids', T, async () => {
  await withDataDir(async (dir) => {
    let h = await startHerald({ data_dir: dir });
    try {
      const p = await mq(tcpURL(h), { clientId: 'ret-pub', protocolVersion: 5 });
      await p.pub('dev/1/state', 'on', { qos: 1, retain: true, properties: { contentType: 'text/plain' } });
      await p.pub('dev/2/state', 'off', { qos: 1, retain: true });
      await p.pub('dev/2/state', '', { qos: 1, retain: true }); /* clears it */
      await p.end();
    } finally {
      await h.kill9();
    }
    h = await startHerald({ data_dir: dir });
    try {
      const s = await mq(tcpURL(h), { clientId: 'ret-sub', protocolVersion: 5 });
      await s.sub('dev/+/state', { qos: 1 });
      const m = await s.next();
      assert.deepEqual([m.topic, m.payload, m.packet.retain], ['dev/1/state', 'on', true]);
      assert.equal(m.packet.properties?.contentType, 'text/plain', 'properties kept too');
      await sleep(200);
      assert.equal(s.pending(), 0, 'the cleared retained message did not come back');
      await s.end();
      assert.deepEqual(await history(h, 'dev/2/state'), ['1:off', '2:']);
    } finally {
      await h.stop();
    }
  });
});

test('history limits hold on disk: trimmed messages do not come back with larger limits', T, async () => {
  await withDataDir(async (dir) => {
    let h = await startHerald({ data_dir: dir, history_messages: 5 });
    try {
      for (let i = 1; i <= 20; i++) await publish(h, 'lim', `m${i}`);
    } finally {
      await h.stop();
    }
    h = await startHerald({ data_dir: dir, history_messages: 100 });
    try {
      assert.deepEqual(await history(h, 'lim'), ['16:m16', '17:m17', '18:m18', '19:m19', '20:m20']);
    } finally {
      await h.stop();
    }
    h = await startHerald({ data_dir: dir, history_messages: 2 }); /* lower on restart: trimmed at load */
    try {
      assert.deepEqual(await history(h, 'lim'), ['19:m19', '20:m20']);
      const info = await getJSON(h, '/channels/lim');
      assert.equal(info.last_id, '20');
    } finally {
      await h.stop();
    }
  });
});

test('history age holds on disk: expired messages are gone after a restart, the last id is not', T, async () => {
  await withDataDir(async (dir) => {
    let h = await startHerald({ data_dir: dir, history_age: 1 });
    try {
      await publish(h, 'old', 'a');
      await publish(h, 'old', 'b');
      await sleep(1200);
    } finally {
      await h.stop();
    }
    h = await startHerald({ data_dir: dir, history_age: 1 });
    try {
      assert.deepEqual(await history(h, 'old'), []);
      assert.equal((await publish(h, 'old', 'c')).id, '3');
    } finally {
      await h.stop();
    }
  });
});

test('one herald per data directory: a second one refuses to start with a clear error', T, async () => {
  await withDataDir(async (dir) => {
    const h = await startHerald({ data_dir: dir });
    try {
      const bin = process.env.HERALD_BIN;
      const r = await run(bin, ['serve', '--http', `127.0.0.1:${await freePort()}`, '--mqtt', '', '--data_dir', dir],
        { timeout: 10000 * SCALE });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr + r.stdout.toString(), /another herald is using this data directory/);
      assert.equal((await request(h, 'GET', '/healthz')).status, 200, 'the first one is unaffected');
    } finally {
      await h.stop();
    }
  });
});

test('store = memory: a restart forgets, and a resuming client is told with a gap', T, async () => {
  await withDataDir(async (dir) => {
    let h = await startHerald({ data_dir: dir, store: 'memory' });
    try {
      await publish(h, 'mem', 'x');
      await publish(h, 'mem', 'y');
    } finally {
      await h.stop();
    }
    h = await startHerald({ data_dir: dir, store: 'memory' });
    try {
      const j = await getJSON(h, '/sub/mem?mode=poll&last_id=2');
      assert.equal(j.gap, true);
      assert.equal(j.messages.length, 0);
      assert.ok(!fs.existsSync(path.join(dir, 'data.mdb')), 'nothing written to disk');
    } finally {
      await h.stop();
    }
  });
});

/* ---------------------------------------------------------------- MQTT persistent sessions */

test('MQTT persistent sessions survive kill -9: subscriptions, the offline queue, unacknowledged messages (DUP, same id)', T, async () => {
  await withDataDir(async (dir) => {
    let h = await startHerald({ data_dir: dir });
    let first;
    try {
      const c = await MqttRaw.open(h.mqttPort);
      await c.handshake({ v: 4, id: 'persist-1', clean: false });
      c.write(subscribePkt({ pid: 1, filters: [['ps/#', 1]] }));
      await c.expect(PT.SUBACK);
      await publish(h, 'ps/a', 'in flight');
      first = parsePublish(await c.expect(PT.PUBLISH)); /* never acknowledged */
      c.destroy();
      await sleep(100);
      await publish(h, 'ps/a', 'queued 1');
      await publish(h, 'ps/b', 'queued 2');
    } finally {
      await h.kill9();
    }
    h = await startHerald({ data_dir: dir });
    const c = await MqttRaw.open(h.mqttPort);
    try {
      await publish(h, 'ps/c', 'after restart');
      const ca = await c.handshake({ v: 4, id: 'persist-1', clean: false });
      assert.equal(sessionPresent(ca), true);
      const got = [];
      for (let i = 0; i < 4; i++) {
        const p = parsePublish(await c.expect(PT.PUBLISH));
        got.push(`${p.dup ? 'dup ' : ''}${p.topic}=${p.payload}`);
        if (i === 0) assert.equal(p.pid, first.pid, 'redelivered with its packet id');
        c.write(ackPkt(PT.PUBACK, p.pid));
      }
      assert.deepEqual(got, ['dup ps/a=in flight', 'ps/a=queued 1', 'ps/b=queued 2', 'ps/c=after restart']);
    } finally {
      c.destroy();
      await h.stop();
    }
  });
});

test('MQTT QoS 2 in: exactly once across a server kill -9 between PUBREC and PUBREL', T, async () => {
  await withDataDir(async (dir) => {
    let h = await startHerald({ data_dir: dir });
    try {
      const c = await MqttRaw.open(h.mqttPort);
      await c.handshake({ v: 4, id: 'q2crash', clean: false });
      c.write(publishPkt({ topic: 'q2c/t', payload: 'once', qos: 2, pid: 9 }));
      await c.expect(PT.PUBREC);
      c.destroy();
    } finally {
      await h.kill9();
    }
    h = await startHerald({ data_dir: dir });
    const c = await MqttRaw.open(h.mqttPort);
    try {
      assert.equal(sessionPresent(await c.handshake({ v: 4, id: 'q2crash', clean: false })), true);
      c.write(publishPkt({ topic: 'q2c/t', payload: 'once', qos: 2, pid: 9, dup: true }));
      await c.expect(PT.PUBREC);
      c.write(ackPkt(PT.PUBREL, 9));
      await c.expect(PT.PUBCOMP);
      assert.deepEqual(await history(h, 'q2c/t'), ['1:once']);
    } finally {
      c.destroy();
      await h.stop();
    }
  });
});

test('MQTT session expiry counts across a restart; a clean stop keeps sessions too', T, async () => {
  await withDataDir(async (dir) => {
    let h = await startHerald({ data_dir: dir });
    try {
      for (const [id, exp] of [['short', 1], ['long', 600]]) {
        const c = await MqttRaw.open(h.mqttPort, { v: 5 });
        await c.handshake({ v: 5, id, clean: false, props: prop.u32(PROP.SESSION_EXPIRY, exp) });
        c.write(subscribePkt({ v: 5, pid: 1, filters: [[`exp/${id}`, 1]] }));
        await c.expect(PT.SUBACK);
        c.destroy();
      }
      await sleep(100);
    } finally {
      await h.stop();
    }
    await sleep(1300);
    h = await startHerald({ data_dir: dir });
    try {
      for (const [id, present] of [['short', false], ['long', true]]) {
        const c = await MqttRaw.open(h.mqttPort, { v: 5 });
        const ca = await c.handshake({ v: 5, id, clean: false, props: prop.u32(PROP.SESSION_EXPIRY, 600) });
        assert.equal(sessionPresent(ca), present, id);
        c.destroy();
      }
    } finally {
      await h.stop();
    }
  });
});
