// Issue 14 part 2, signals. SIGHUP reloads the configuration and never stops the server.
// SIGTERM: herald drains gracefully - it stops accepting, answers a parked long
// poll (with nothing new: the client polls again elsewhere), ends SSE and iframe streams with a
// `shutdown` notice and the reconnection hint, closes WebSockets with 1001 and MQTT 5 clients
// with DISCONNECT 0x8B, answers a publish waiting for its commit, then exits 0; a client that
// never reads holds the exit no longer than shutdown_timeout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startHerald, publish, request, getJSON, openSSE, openIframe, waitFor, sleep, SCALE } from '../lib/herald.mjs';
import { openWS, wsURL } from '../lib/stomp.mjs';
import { mq, tcpURL } from '../lib/mqttjs.mjs';
import { wsJson } from '../lib/auth.mjs';

const T = { timeout: 60000 * SCALE };

test('SIGTERM: long poll answered, SSE/iframe end with a shutdown notice and retry hint, WebSockets 1001, MQTT 5 DISCONNECT 0x8B, exit 0', T, async () => {
  const h = await startHerald({ sse_retry: 1500 });
  await publish(h, 'news', 'before');
  const lp = getJSON(h, '/sub/news?mode=longpoll&last_id=1');
  const sse = await openSSE(h, '/sub/news', { headers: { Accept: 'text/event-stream' } });
  const ifr = await openIframe(h, '/sub/news?mode=iframe');
  const ws = await openWS(wsURL(h, '/sub/news'));
  const wj = await wsJson(h);
  const m5 = await mq(tcpURL(h), { protocolVersion: 5, clientId: 'drain-5' });
  await waitFor(async () => (await request(h, 'GET', '/channels/news')).json().subscribers === 4, 5000 * SCALE, 'four subscribers');
  await sleep(100); /* the long poll is parked */
  const t0 = Date.now();
  h.proc.kill('SIGTERM');
  const ans = await lp;
  assert.deepEqual(ans.messages, [], 'answered with nothing new');
  assert.equal(ans.last_id, '1');
  const e = await sse.next();
  assert.equal(e.event, 'shutdown');
  assert.deepEqual(JSON.parse(e.data), { reason: 'server shutting down', reconnect: true });
  assert.equal(String(sse.retry), '1500', 'the reconnection hint');
  assert.equal(await sse.next(), null, 'then the stream ends');
  const o = await ifr.next();
  assert.equal(o.shutdown, true);
  assert.equal(await ifr.next(5000 * SCALE), null);
  assert.equal((await ws.waitClosed(5000 * SCALE)).code, 1001);
  assert.equal((await wj.waitClosed(5000 * SCALE)).code, 1001);
  await waitFor(() => m5.disconnects.length === 1, 5000 * SCALE, 'MQTT 5 DISCONNECT');
  assert.equal(m5.disconnects[0].reasonCode, 0x8b);
  const x = await h.exitPromise;
  assert.deepEqual(x, { code: 0, signal: null });
  assert.ok(Date.now() - t0 < 5000 * SCALE, 'drained at once when everyone was told');
  assert.match(h.out, /stopping: listeners closed; saying goodbye to \d+ connections/);
  assert.match(h.out, /stopped cleanly/);
  await h.stop();
});

test('SIGTERM: a client that never reads holds the exit no longer than shutdown_timeout', T, async () => {
  const h = await startHerald({ shutdown_timeout: 1, max_queued_bytes: '64m', slow_policy: 'drop' });
  /* a subscriber that never reads, with a backlog the kernel's buffers cannot take */
  const s = net.connect(h.port, '127.0.0.1');
  await new Promise((res) => s.on('connect', res));
  s.write('GET /sub/big HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n');
  s.pause();
  await waitFor(async () => (await request(h, 'GET', '/channels/big')).json().subscribers === 1, 5000 * SCALE, 'subscribed');
  const chunk = 'x'.repeat(60000);
  for (let i = 0; i < 200; i++) await publish(h, 'big', chunk);
  const t0 = Date.now();
  h.proc.kill('SIGTERM');
  const x = await h.exitPromise;
  const took = Date.now() - t0;
  assert.deepEqual(x, { code: 0, signal: null });
  assert.ok(took >= 900, `it waited for the queue (${took} ms)`);
  assert.ok(took < 4000 * SCALE, `no longer than shutdown_timeout (${took} ms)`);
  assert.match(h.out, /shutdown_timeout: 1 connections still open after 1000 ms: closed/);
  s.destroy();
  await h.stop();
});

test('SIGHUP reloads the configuration file: live keys and access control are applied, restart-only ones are named and kept, a broken file changes nothing; it never stops the server', T, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-hup-'));
  const conf = path.join(dir, 'herald.conf');
  const write = (o) => fs.writeFileSync(conf, Object.entries(o).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n');
  write({ api_keys: 'first-key-0123456789abcdef', max_subscriptions: 2, log_level: 'info' });
  const h = await startHerald({ config: conf });
  const key = (k) => ({ headers: { Authorization: `Bearer ${k}` } });
  try {
    assert.equal((await publish(h, 'a', 'x', key('first-key-0123456789abcdef'))).id, '1');
    const before = await wsJson(h, { token: 'first-key-0123456789abcdef' });
    const subs = async (c, n) => {
      const out = [];
      for (let i = 0; i < n; i++) out.push((await c.call({ op: 'subscribe', channel: `s${i}` })).reply.ok);
      return out;
    };
    assert.deepEqual(await subs(before, 3), [true, true, false], 'max_subscriptions = 2');
    write({ api_keys: 'second-key-0123456789abcdef', max_subscriptions: 3, log_level: 'info', history_messages: 5 });
    h.proc.kill('SIGHUP');
    await waitFor(() => /SIGHUP: configuration reloaded/.test(h.out), 5000 * SCALE, 'the reload');
    assert.match(h.out, /SIGHUP: changed, but only a restart applies them \(kept as they run\): history_messages/);
    assert.match(h.out, /SIGHUP: access control reloaded/);
    assert.doesNotMatch(h.out, /second-key|first-key/, 'keys never reach the log');
    /* the new key works, the old one no longer does */
    const r1 = await request(h, 'POST', '/pub/a', { ...key('first-key-0123456789abcdef'), body: 'old' });
    assert.equal(r1.status, 401);
    assert.equal((await publish(h, 'a', 'y', key('second-key-0123456789abcdef'))).id, '2');
    /* a limit read where it is used applies at once */
    const after = await wsJson(h, { token: 'second-key-0123456789abcdef' });
    assert.deepEqual(await subs(after, 4), [true, true, true, false], 'max_subscriptions = 3');
    /* a file that does not parse changes nothing */
    fs.writeFileSync(conf, 'max_subscriptions = lots\n');
    h.proc.kill('SIGHUP');
    await waitFor(() => /SIGHUP: .*max_subscriptions.*the configuration is unchanged/.test(h.out), 5000 * SCALE, 'the refusal');
    assert.equal((await publish(h, 'a', 'z', key('second-key-0123456789abcdef'))).id, '3');
    for (let i = 0; i < 3; i++) h.proc.kill('SIGHUP');
    await sleep(200);
    assert.equal(h.exited, null, 'HUP never stops it');
    before.close();
    after.close();
  } finally {
    await h.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('SIGHUP: access control reloaded again and again (no limit); each replaced generation lives while a connection admitted with it does, then is freed (herald_auth_retired_generations)', T, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-hup-'));
  const conf = path.join(dir, 'herald.conf');
  const keyOf = (i) => `gen-${i}-key-0123456789abcdef`;
  const write = (i) => fs.writeFileSync(conf, `api_keys = ${keyOf(i)}\nlog_level = info\n`);
  write(0);
  const h = await startHerald({ config: conf });
  const retired = async () => {
    const t = (await request(h, 'GET', '/metrics', { headers: { Authorization: `Bearer ${keyOf(12)}` } })).text;
    return Number(/^herald_auth_retired_generations (\d+)$/m.exec(t)[1]);
  };
  const held = [];
  try {
    const N = 12; /* more than the 8 reloads a process once allowed */
    for (let i = 0; i < N; i++) {
      held.push(await wsJson(h, { token: keyOf(i) })); /* admitted with generation i */
      write(i + 1);
      const seen = (h.out.match(/SIGHUP: access control reloaded/g) || []).length;
      h.proc.kill('SIGHUP');
      await waitFor(() => (h.out.match(/SIGHUP: access control reloaded/g) || []).length === seen + 1, 5000 * SCALE, `reload ${i + 1}`);
    }
    assert.doesNotMatch(h.out, /restart to apply it again/);
    /* generation 0 is the one serve started with (never freed before exit); 1..N-1 are retired and held */
    assert.equal(await retired(), N - 1);
    const r = await request(h, 'POST', '/pub/a', { headers: { Authorization: `Bearer ${keyOf(N - 1)}` }, body: 'x' });
    assert.equal(r.status, 401, 'a replaced key is refused for new requests');
    assert.equal((await publish(h, 'a', 'y', { headers: { Authorization: `Bearer ${keyOf(N)}` } })).id, '1');
    /* a connection admitted earlier still works with what it was admitted with */
    const last = held[N - 1];
    assert.equal((await last.call({ op: 'subscribe', channel: 'a' })).reply.ok, true);
    /* closing the connections frees their generations */
    for (const c of held) c.close();
    await waitFor(async () => (await retired()) === 0, 5000 * SCALE, 'every retired generation freed');
  } finally {
    for (const c of held) c.close();
    await h.stop(); /* exit 0: under ASan, nothing leaked */
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
