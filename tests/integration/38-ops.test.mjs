// Issue 14 part 4, what an operator reads: log_format = json (one object a line), the
// process_* metrics, latency histograms (store commits, publishes), connections refused by
// reason, and the open-file limit: raised at start-up, a warning when max_connections does not
// fit, and connections beyond it closed at once and counted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { withHerald, startHerald, publish, request, parseMetrics, waitFor, sleep, SCALE } from '../lib/herald.mjs';

const T = { timeout: 60000 * SCALE };
const metricsOf = async (h) => parseMetrics((await request(h, 'GET', '/metrics')).text);

test('log_format = json: every line is one JSON object with time, level and msg', T, async () => {
  const h = await startHerald({ log_format: 'json' });
  try {
    await publish(h, 'news', 'x');
    const r = await request(h, 'GET', '/sub/%00?mode=poll'); /* a bad channel: a 400 (not logged per request) */
    assert.equal(r.status, 400);
  } finally {
    await h.stop();
  }
  const lines = h.out.split('\n').filter((l) => l.trim());
  assert.ok(lines.length >= 3, h.out);
  for (const l of lines) {
    const o = JSON.parse(l); /* throws on a line that is not JSON */
    assert.deepEqual(Object.keys(o), ['time', 'level', 'msg']);
    assert.match(o.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(['error', 'warn', 'info', 'debug'].includes(o.level));
  }
  assert.ok(lines.some((l) => JSON.parse(l).msg.startsWith('herald listening on')));
});

test('/metrics: process_*, herald_store_commit_seconds and herald_publish_latency_seconds histograms, refusals by reason', T, async () => {
  await withHerald({ max_connections: 3 }, async (h) => {
    for (let i = 0; i < 5; i++) await publish(h, 'news', `m${i}`);
    const m = await metricsOf(h);
    assert.ok(m.get('process_resident_memory_bytes') > 1e6);
    assert.ok(m.get('process_open_fds') >= 3);
    assert.ok(m.get('process_max_fds') >= m.get('process_open_fds'));
    assert.ok(m.get('process_start_time_seconds') > Date.now() / 1000 - 3600);
    assert.ok(m.get('process_cpu_seconds_total') >= 0);
    assert.equal(m.get('herald_publish_latency_seconds_count'), 5);
    assert.equal(m.get('herald_publish_latency_seconds_bucket{le="+Inf"}'), 5);
    assert.ok(m.get('herald_publish_latency_seconds_bucket{le="10"}') <= 5);
    assert.ok(m.get('herald_store_commit_seconds_count') >= 5, 'one commit per publish here (LMDB)');
    /* max_connections: the fourth connection is refused, by reason */
    const held = [];
    for (let i = 0; i < 3; i++) {
      const s = net.connect(h.port, '127.0.0.1');
      await new Promise((res) => s.on('connect', res));
      held.push(s);
    }
    const extra = net.connect(h.port, '127.0.0.1');
    extra.resume();
    await new Promise((res) => extra.on('close', res)); /* answered 503 and closed */
    for (const s of held) s.destroy();
    await sleep(50);
    const k = await metricsOf(h);
    assert.ok(k.get('herald_connections_refused_total{reason="max_connections"}') >= 1);
    assert.equal(k.get('herald_connections_refused_total{reason="fd_limit"}'), 0);
  });
});

test('the open-file limit: raised towards what max_connections needs, a warning when it does not fit, connections beyond it closed and counted', T, async () => {
  const h = await startHerald({ max_connections: 10000 }, { wrap: ['prlimit', '--nofile=48:48'] });
  const socks = [];
  try {
    assert.match(h.out, /the open-file limit is 48 .* max_connections = 10000/);
    for (let i = 0; i < 60; i++) {
      const s = net.connect(h.port, '127.0.0.1');
      s.on('error', () => {});
      socks.push(s);
    }
    await sleep(300 * SCALE); /* the server has taken (or shed) them all */
    await waitFor(async () => {
      for (const s of socks.splice(0, 30)) s.destroy(); /* make room for the metrics request */
      try {
        return (await metricsOf(h)).get('herald_connections_refused_total{reason="fd_limit"}') >= 1;
      } catch {
        return false;
      }
    }, 5000 * SCALE, 'fd_limit refusals counted');
    assert.equal(h.out.match(/out of file descriptors/g)?.length, 1, 'logged once');
  } finally {
    for (const s of socks) s.destroy();
    await h.stop();
  }
  /* a limit that can be raised is raised (prlimit soft 48, hard 4096) */
  const g = await startHerald({ max_connections: 1000 }, { wrap: ['prlimit', '--nofile=48:4096'] });
  try {
    assert.ok((await metricsOf(g)).get('process_max_fds') >= 2064, 'raised to what 1000 connections (HTTP and MQTT) need');
    assert.doesNotMatch(g.out, /open-file limit/);
  } finally {
    await g.stop();
  }
});

test('max_lingering_closes: refused connections linger (read and dropped) up to the bound, further ones are closed at once, counted and logged', T, async () => {
  await withHerald({ max_connections: 1, max_lingering_closes: 2 }, async (h) => {
    const held = net.connect(h.port, '127.0.0.1');
    await new Promise((res) => held.on('connect', res));
    let got = '';
    held.on('data', (d) => (got += d));
    const metrics = async () => {
      got = '';
      held.write(`GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:${h.port}\r\n\r\n`);
      await waitFor(() => /herald_http_linger_skipped_total \d+\n/.test(got), 5000 * SCALE, '/metrics on the held connection');
      return parseMetrics(got.slice(got.indexOf('\r\n\r\n') + 4));
    };
    const refused = [];
    for (let i = 0; i < 4; i++) {
      const s = net.connect({ port: h.port, host: '127.0.0.1', allowHalfOpen: true }); /* it never closes its side */
      let body = '';
      s.on('data', (d) => (body += d));
      await new Promise((res) => s.on('end', res)); /* the 503 and the server's FIN */
      assert.match(body, /^HTTP\/1\.1 503 [^]*too many connections/);
      refused.push(s); /* never closed by the client: the first two linger */
    }
    let m = await metrics();
    assert.equal(m.get('herald_http_lingering'), 2);
    assert.equal(m.get('herald_http_linger_skipped_total'), 2);
    assert.equal(m.get('herald_connections_refused_total{reason="max_connections"}'), 4);
    assert.equal((h.out.match(/refused connections linger \(max_lingering_closes\)/g) || []).length, 1, 'logged once');
    await sleep(1300); /* HTTP_LINGER_MS: the lingering ones are closed by the server */
    m = await metrics();
    assert.equal(m.get('herald_http_lingering'), 0);
    for (const s of refused) s.destroy();
    held.destroy();
  });
});
