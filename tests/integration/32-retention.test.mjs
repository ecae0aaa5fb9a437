// Retention that fits the channel (README "Retention"): [namespace NAME] sections give channels
// matching a pattern their own history limits (first match in file order, else [history]);
// a per-message ttl (POST /pub?ttl=, POST /publish "ttl", /ws publish "ttl") takes a message out
// of history (memory and store) when it expires: resuming and polling clients no longer get it;
// DELETE /channels/{ch}/messages/{id} withdraws a message (subscribers told, gone from history and
// store); delay/at schedule a publish that survives restarts with LMDB.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { withHerald, startHerald, publish, request, getJSON, openSSE, waitFor, run, SCALE, HERALD_BIN } from '../lib/herald.mjs';
import { wsJson } from '../lib/auth.mjs';
import { stompClient } from '../lib/stomp.mjs';

const T = { timeout: 60000 * SCALE };

/* A temporary directory (config file, data directory) removed at the end. */
async function withTmp(fn) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-retention-'));
  try {
    return await fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const CONF = `[history]
history_messages = 5

[namespace ticker]
pattern = ticker/+
history_messages = 1

[namespace inbox]
pattern = user/#
history_messages = 50
history_age = 7776000

[namespace shadowed]
pattern = ticker/#
history_messages = 3
`;

async function ids(h, ch, after = 0) {
  const j = await getJSON(h, `/sub/${ch}?mode=poll&last_id=${after}`);
  return j.messages.map((m) => Number(m.id));
}

async function pubTTL(h, ch, data, ttl) {
  const body = Buffer.from(data);
  const r = await request(h, 'POST', `/pub/${ch}${ttl ? `?ttl=${ttl}` : ''}`, {
    headers: { 'Content-Length': String(body.length) }, body,
  });
  assert.equal(r.status, 200, r.text);
  return r.json();
}

test('namespaces keep different amounts; the first matching one wins; restarts keep them', T, async () => {
  await withTmp(async (dir) => {
    const conf = path.join(dir, 'herald.conf');
    fs.writeFileSync(conf, CONF);
    const flags = { config: conf, data_dir: path.join(dir, 'data') };
    const printed = await run(HERALD_BIN, ['serve', '--config', conf, '--print-config']);
    assert.match(printed.stdout.toString(), /\[namespace inbox\]\npattern = "user\/#"\n; inherited: history_messages|history_messages = 50/);
    assert.match(printed.stdout.toString(), /\[namespace ticker\]\npattern = "ticker\/\+"\nhistory_messages = 1\n/);
    let h = await startHerald(flags);
    try {
      for (let i = 0; i < 20; i++)
        await Promise.all(['ticker/eur', 'user/42', 'news', 'ticker/eur/x'].map((c) => publish(h, c, `m${i}`)));
      assert.deepEqual(await ids(h, 'ticker/eur'), [20], 'ticker keeps the last message');
      assert.equal((await ids(h, 'user/42')).length, 20, 'inbox keeps everything (50)');
      assert.deepEqual(await ids(h, 'news'), [16, 17, 18, 19, 20], 'no namespace: [history]');
      assert.deepEqual(await ids(h, 'ticker/eur/x'), [18, 19, 20], 'ticker/+ does not match: the next one');
      const info = await getJSON(h, '/channels/ticker%2Feur');
      assert.equal(info.history.messages, 1);
    } finally {
      await h.stop();
    }
    h = await startHerald(flags);
    try {
      assert.deepEqual(await ids(h, 'ticker/eur'), [20]);
      assert.equal((await ids(h, 'user/42')).length, 20);
      assert.deepEqual(await ids(h, 'news'), [16, 17, 18, 19, 20]);
      const next = await publish(h, 'ticker/eur', 'after');
      assert.equal(next.id, '21');
      assert.deepEqual(await ids(h, 'ticker/eur'), [21]);
    } finally {
      await h.stop();
    }
  });
});

test('bad namespace sections are refused at start-up with their line', T, async () => {
  await withTmp(async (dir) => {
    const conf = path.join(dir, 'bad.conf');
    fs.writeFileSync(conf, '[namespace x]\nhistory_messages = 3\n');
    const r = await run(HERALD_BIN, ['serve', '--config', conf, '--print-config']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /line 2: \[namespace x\] has no pattern/);
    fs.writeFileSync(conf, '[namespace x]\npattern = a/{sub}\n');
    const r2 = await run(HERALD_BIN, ['serve', '--config', conf, '--print-config']);
    assert.notEqual(r2.code, 0);
    assert.match(r2.stderr, /bad pattern/);
  });
});

test('ttl: expired messages leave poll and SSE resume; at the head the cursor gets a gap', T, async () => {
  await withHerald({}, async (h) => {
    await pubTTL(h, 'mid', 'keep1');
    await pubTTL(h, 'mid', 'short', 1);
    await pubTTL(h, 'mid', 'keep3', 3600);
    await pubTTL(h, 'head', 'short', 1);
    await pubTTL(h, 'head', 'keep2');
    assert.deepEqual(await ids(h, 'mid'), [1, 2, 3], 'alive at first');
    await waitFor(async () => (await ids(h, 'mid')).length === 2 && (await ids(h, 'head')).length === 1,
      5000 * SCALE, 'the messages with ttl=1 expire');
    const mid = await getJSON(h, '/sub/mid?mode=poll&last_id=0');
    assert.deepEqual(mid.messages.map((m) => m.data), ['keep1', 'keep3']);
    assert.equal(mid.gap, false, 'an expired message between two live ones is simply gone');
    assert.equal(mid.last_id, '3');
    const head = await getJSON(h, '/sub/head?mode=poll&last_id=0');
    assert.deepEqual(head.messages.map((m) => m.id), ['2']);
    assert.equal(head.gap, true, 'the cursor is before the oldest kept message');
    assert.deepEqual(head.gap_info, [{ channel: 'head', requested: '0', first_available: '2' }]);
    const s = await openSSE(h, '/sub/mid', { headers: { Accept: 'text/event-stream', 'Last-Event-ID': '1' } });
    try {
      const e = await s.next();
      assert.equal(e.id, '3');
      assert.equal(e.data, 'keep3');
      await pubTTL(h, 'mid', 'live', 60);
      const live = await s.next();
      assert.equal(live.id, '4', 'a message with a ttl is delivered live as usual');
    } finally {
      s.close();
    }
    const r = await request(h, 'POST', '/pub/mid?ttl=0', { headers: { 'Content-Length': '1' }, body: 'x' });
    assert.equal(r.status, 400);
    assert.match(r.json().error, /ttl must be an integer/);
  });
});

test('ttl on POST /publish and the /ws publish op; gone after a restart (LMDB)', T, async () => {
  await withTmp(async (dir) => {
    const flags = { data_dir: path.join(dir, 'data') };
    let h = await startHerald(flags);
    try {
      const body = Buffer.from(JSON.stringify({ channels: ['j'], data: 'short', ttl: 1 }));
      const r = await request(h, 'POST', '/publish', {
        headers: { 'Content-Type': 'application/json', 'Content-Length': String(body.length) }, body,
      });
      assert.equal(r.status, 200, r.text);
      await pubTTL(h, 'j', 'keep');
      const wj = await wsJson(h);
      const { reply } = await wj.call({ op: 'publish', channel: 'j', data: 'ws-short', ttl: 1 });
      assert.equal(reply.ok, true);
      const bad = await wj.call({ op: 'publish', channel: 'j', data: 'x', ttl: 'soon' });
      assert.equal(bad.reply.ok, false);
      assert.equal(bad.reply.error.code, 'bad_request');
      wj.close();
      await pubTTL(h, 'j', 'long', 3600);
      assert.deepEqual(await ids(h, 'j'), [1, 2, 3, 4]);
    } finally {
      await h.stop();
    }
    h = await startHerald(flags);
    try {
      await waitFor(async () => (await ids(h, 'j')).length === 2, 5000 * SCALE, 'the short ones expire');
      const j = await getJSON(h, '/sub/j?mode=poll&last_id=1');
      assert.deepEqual(j.messages.map((m) => m.data), ['keep', 'long']);
      assert.equal(j.gap, false);
    } finally {
      await h.stop();
    }
    h = await startHerald(flags); /* the expired head was trimmed from the store too */
    try {
      const j = await getJSON(h, '/sub/j?mode=poll&last_id=0');
      assert.deepEqual(j.messages.map((m) => m.id), ['2', '4']);
      assert.equal(j.gap, true);
    } finally {
      await h.stop();
    }
  });
});

const KEY = 'it-backend-key-0123456789';
const admin = { Authorization: `Bearer ${KEY}` };

test('withdrawal: SSE and /ws are told, poll no longer has it, nor a restart (LMDB); 204/404/401/403', T, async () => {
  await withTmp(async (dir) => {
    const flags = { data_dir: path.join(dir, 'data'), 'api-keys': KEY, 'allow-anonymous': 'true' };
    let h = await startHerald(flags);
    try {
      for (let i = 1; i <= 3; i++) await publish(h, 'news/today', `m${i}`, { headers: admin });
      const s = await openSSE(h, '/sub/news/today', { headers: { Accept: 'text/event-stream' } });
      const wj = await wsJson(h);
      const sub = await wj.call({ op: 'subscribe', channel: 'news/today' });
      assert.equal(sub.reply.ok, true);
      const st = await stompClient(h);
      const ss = await st.subscribe('/topic/news/today');
      try {
        const anon = await request(h, 'DELETE', '/channels/news/today/messages/2');
        assert.equal(anon.status, 401);
        const notFound = await request(h, 'DELETE', '/channels/news/today/messages/9', { headers: admin });
        assert.equal(notFound.status, 404);
        const r = await request(h, 'DELETE', '/channels/news%2Ftoday/messages/2', { headers: admin });
        assert.equal(r.status, 204, r.text);
        const e = await s.next();
        assert.equal(e.event, 'withdrawn');
        assert.deepEqual(JSON.parse(e.data), { channel: 'news/today', id: '2' });
        const w = await wj.json();
        assert.deepEqual(w, { op: 'withdrawn', channel: 'news/today', id: '2' });
        const sm = await ss.next();
        assert.equal(sm.headers['herald-withdrawn'], 'true');
        assert.deepEqual(JSON.parse(sm.body), { channel: 'news/today', id: '2' });
        const again = await request(h, 'DELETE', '/channels/news/today/messages/2', { headers: admin });
        assert.equal(again.status, 404, 'withdrawn already');
        /* the stream goes on: the next message arrives with the next id */
        await publish(h, 'news/today', 'm4', { headers: admin });
        const next = await s.next();
        assert.equal(next.id, '4');
      } finally {
        s.close();
        wj.close();
        await st.close();
      }
      const j = await getJSON(h, '/sub/news/today?mode=poll&last_id=0');
      assert.deepEqual(j.messages.map((m) => m.data), ['m1', 'm3', 'm4']);
      assert.equal(j.gap, false);
      const lp = await getJSON(h, '/sub/news/today?mode=longpoll&last_id=1');
      assert.deepEqual(lp.messages.map((m) => m.id), ['3', '4']);
    } finally {
      await h.stop();
    }
    h = await startHerald(flags);
    try {
      const j = await getJSON(h, '/sub/news/today?mode=poll&last_id=0');
      assert.deepEqual(j.messages.map((m) => m.data), ['m1', 'm3', 'm4'], 'still withdrawn after a restart');
      const r = await request(h, 'DELETE', '/channels/news/today/messages/1', { headers: admin });
      assert.equal(r.status, 204);
      const after = await getJSON(h, '/sub/news/today?mode=poll&last_id=0');
      assert.deepEqual(after.messages.map((m) => m.id), ['3', '4']);
      assert.equal(after.gap, false, 'a withdrawn message is not a gap');
    } finally {
      await h.stop();
    }
  });
});

test('withdrawing a retained MQTT message clears it; a credential that is not an API key is refused', T, async () => {
  await withHerald({ 'api-keys': KEY, 'allow-anonymous': 'true' }, async (h) => {
    const res = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(h.mqttPort), '-t', 'sensors/t', '-m', '21', '-r', '-q', '1']);
    assert.equal(res.code, 0, res.stderr);
    const info = await getJSON(h, '/sub/sensors/t?mode=poll&last_id=0');
    assert.equal(info.messages.length, 1);
    const r = await request(h, 'DELETE', '/channels/sensors/t/messages/1', { headers: admin });
    assert.equal(r.status, 204);
    const sub = await run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(h.mqttPort), '-t', 'sensors/t', '-W', '1', '-C', '1']);
    assert.equal(sub.stdout.toString(), '', 'no retained message any more');
    const forbidden = await request(h, 'DELETE', '/channels/sensors/t/messages/1', { headers: { Authorization: 'Bearer not-a-key' } });
    assert.ok([401, 403].includes(forbidden.status), String(forbidden.status));
  });
});

async function pubAt(h, ch, data, q, headers = {}) {
  const body = Buffer.from(data);
  return request(h, 'POST', `/pub/${ch}?${q}`, { headers: { 'Content-Length': String(body.length), ...headers }, body });
}

test('scheduled delivery: delay and at; the id is assigned when it is published; cancel; max_scheduled', T, async () => {
  await withHerald({ 'api-keys': KEY, 'allow-anonymous': 'true', 'max-scheduled': '3' }, async (h) => {
    await publish(h, 'sch', 'first', { headers: admin });
    const s = await openSSE(h, '/sub/sch', { headers: { Accept: 'text/event-stream' } });
    try {
      const t0 = Date.now();
      const r = await pubAt(h, 'sch', 'later', 'delay=1', admin);
      assert.equal(r.status, 202, r.text);
      const j = r.json();
      assert.match(j.scheduled, /^\d+$/);
      assert.match(j.at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      await publish(h, 'sch', 'now', { headers: admin });
      assert.equal((await s.next()).data, 'now');
      const e = await s.next(5000 * SCALE);
      assert.equal(e.data, 'later');
      assert.equal(e.id, '3', 'its id is assigned when it is published');
      assert.ok(Date.now() - t0 >= 900, 'not before its delay');
      const past = await pubAt(h, 'sch', 'overdue', `at=${encodeURIComponent('2020-01-01T00:00:00Z')}`, admin);
      assert.equal(past.status, 202);
      assert.equal((await s.next()).data, 'overdue');
      const wj = await wsJson(h);
      const { reply } = await wj.call({ op: 'publish', channel: 'sch', data: 'from-ws', delay: 1 });
      assert.equal(reply.ok, true, JSON.stringify(reply));
      assert.match(reply.scheduled, /^\d+$/);
      const bad = await wj.call({ op: 'publish', channel: 'sch', data: 'x', delay: 1, at: '2020-01-01T00:00:00Z' });
      assert.equal(bad.reply.error.code, 'bad_request');
      wj.close();
      const fromWs = await s.next(5000 * SCALE);
      assert.equal(fromWs.data, 'from-ws');
    } finally {
      s.close();
    }
    const multi = Buffer.from(JSON.stringify({ channels: ['sch', 'sch2'], data: 'm', delay: 3600, ttl: 60 }));
    const m = await request(h, 'POST', '/publish', { headers: { ...admin, 'Content-Length': String(multi.length) }, body: multi });
    assert.equal(m.status, 202, m.text);
    const res = m.json().results;
    assert.deepEqual(res.map((x) => x.channel), ['sch', 'sch2']);
    const third = await pubAt(h, 'sch', 'x', 'delay=3600', admin);
    assert.equal(third.status, 202);
    const full = await pubAt(h, 'sch', 'x', 'delay=3600', admin);
    assert.equal(full.status, 503, 'max_scheduled = 3');
    const text = (await request(h, 'GET', '/metrics', { headers: admin })).text;
    assert.match(text, /herald_scheduled_messages 3/);
    assert.match(text, /herald_scheduled_refused_total 1/);
    assert.match(text, /herald_limit_hits_total\{limit="max_scheduled"\} 1/);
    const anon = await request(h, 'DELETE', `/schedules/${res[0].scheduled}`);
    assert.equal(anon.status, 401);
    const del = await request(h, 'DELETE', `/schedules/${res[0].scheduled}`, { headers: admin });
    assert.equal(del.status, 204);
    const again = await request(h, 'DELETE', `/schedules/${res[0].scheduled}`, { headers: admin });
    assert.equal(again.status, 404);
    for (const q of ['delay=0', 'delay=x', 'at=tomorrow', 'delay=5&at=1796547600']) {
      const bad = await pubAt(h, 'sch', 'x', q, admin);
      assert.equal(bad.status, 400, q);
    }
    const keyed = await pubAt(h, 'sch', 'x', 'delay=5', { ...admin, 'Idempotency-Key': 'k1' });
    assert.equal(keyed.status, 400);
  });
});

test('scheduled delivery survives a restart (LMDB); overdue schedules are published at start-up', T, async () => {
  await withTmp(async (dir) => {
    const flags = { data_dir: path.join(dir, 'data') };
    let h = await startHerald(flags);
    try {
      assert.equal((await pubAt(h, 'boot', 'soon', 'delay=1')).status, 202);
      assert.equal((await pubAt(h, 'boot', 'later', 'delay=3')).status, 202);
      assert.equal((await pubAt(h, 'boot', 'cancelled', 'delay=3')).status, 202);
      const c = await request(h, 'DELETE', '/schedules/3');
      assert.equal(c.status, 204, c.text);
    } finally {
      await h.stop();
    }
    await new Promise((r) => setTimeout(r, 1200)); /* the first one is overdue while herald is down */
    h = await startHerald(flags);
    try {
      await waitFor(async () => (await ids(h, 'boot')).length === 1, 3000 * SCALE, 'the overdue one at start-up');
      await waitFor(async () => (await ids(h, 'boot')).length === 2, 5000 * SCALE, 'the later one on time');
      const j = await getJSON(h, '/sub/boot?mode=poll&last_id=0');
      assert.deepEqual(j.messages.map((m) => `${m.id}:${m.data}`), ['1:soon', '2:later']);
    } finally {
      await h.stop();
    }
    h = await startHerald(flags); /* published schedules are gone from the store */
    try {
      await new Promise((r) => setTimeout(r, 300));
      assert.equal((await ids(h, 'boot')).length, 2);
      const text = (await request(h, 'GET', '/metrics')).text;
      assert.match(text, /herald_scheduled_messages 0/);
    } finally {
      await h.stop();
    }
  });
});

test('DELETE /channels/{ch}: its messages go, subscribers are told and stay, ids continue (also after a restart); 404 and 401', T, async () => {
  await withTmp(async (dir) => {
    const flags = { data_dir: path.join(dir, 'data'), 'api-keys': KEY, 'allow-anonymous': 'true' };
    let h = await startHerald(flags);
    try {
      for (let i = 1; i <= 3; i++) await publish(h, 'room/a', `m${i}`, { headers: admin });
      await publish(h, 'room/b', 'kept', { headers: admin });
      const s = await openSSE(h, '/sub/room/a', { headers: { Accept: 'text/event-stream' } });
      const wj = await wsJson(h);
      assert.equal((await wj.call({ op: 'subscribe', channel: 'room/a' })).reply.ok, true);
      assert.equal((await request(h, 'DELETE', '/channels/room/a')).status, 401);
      assert.equal((await request(h, 'DELETE', '/channels/nothing/here', { headers: admin })).status, 404);
      const r = await request(h, 'DELETE', '/channels/room%2Fa', { headers: admin });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json(), { channel: 'room/a', deleted: true, last_id: '3', told: 2 });
      const e = await s.next();
      assert.equal(e.event, 'deleted');
      assert.deepEqual(JSON.parse(e.data), { channel: 'room/a', last_id: '3' });
      assert.deepEqual(await wj.json(), { op: 'deleted', channel: 'room/a', last_id: '3' });
      const j = await getJSON(h, '/sub/room/a?mode=poll&last_id=3');
      assert.deepEqual(j.messages, []);
      assert.equal(j.gap, false, 'a cursor at the last id is not a gap');
      const info = await getJSON(h, '/channels/room/a', { headers: admin });
      assert.deepEqual([info.last_id, info.history.messages], ['3', 0]);
      /* subscriptions stay; the next publish continues the ids */
      await publish(h, 'room/a', 'm4', { headers: admin });
      const n = await s.next();
      assert.deepEqual([n.id, n.data], ['4', 'm4']);
      s.close();
      wj.close();
      assert.deepEqual((await getJSON(h, '/sub/room/b?mode=poll&last_id=0')).messages.map((m) => m.data), ['kept']);
    } finally {
      await h.stop();
    }
    h = await startHerald(flags);
    try {
      const j = await getJSON(h, '/sub/room/a?mode=poll&last_id=0');
      assert.deepEqual(j.messages.map((m) => [m.id, m.data]), [['4', 'm4']], 'deleted messages stay deleted');
      assert.equal((await request(h, 'DELETE', '/channels/room/a', { headers: admin })).status, 200);
      await publish(h, 'room/a', 'm5', { headers: admin });
      const k = await getJSON(h, '/sub/room/a?mode=poll&last_id=0');
      assert.deepEqual(k.messages.map((m) => m.id), ['5'], 'ids continue after a restart');
    } finally {
      await h.stop();
    }
  });
});
