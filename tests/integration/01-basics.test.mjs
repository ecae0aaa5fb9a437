// Basic contract of docs/api.md: publish answers, poll JSON, SSE framing, iframe framing,
// Last-Event-ID precedence, poll_max_messages, and the operations endpoints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  withHerald, publish, request, getJSON, openSSE, openIframe, metrics, waitFor, SCALE,
} from '../lib/herald.mjs';

const T = { timeout: 30000 * SCALE };

test('publish answers id/channel/subscribers; ids start at 1 and increase by 1 per channel', T, async () => {
  await withHerald(async (h) => {
    const a1 = await publish(h, 'news', 'one');
    assert.deepEqual(a1, { id: '1', channel: 'news', subscribers: 0 });
    const a2 = await publish(h, 'news', 'two');
    assert.equal(a2.id, '2');
    const b1 = await publish(h, 'other', 'x');
    assert.equal(b1.id, '1', 'a new channel starts at id 1');
    const r = await request(h, 'POST', '/pub/news', { body: 'three', headers: { 'Content-Length': '5' } });
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'] || '', /application\/json/);
    assert.equal(r.json().id, '3');
  });
});

test('poll JSON: last_id=0 gives history, absent last_id gives only the cursor, last_id=N gives after N', T, async () => {
  await withHerald(async (h) => {
    for (const d of ['a', 'b', 'c']) await publish(h, 'news', d);
    await publish(h, 'news', 'named', { event: 'news-event' });
    await publish(h, 'news', 'hdr', { headers: { 'X-Event': 'via-header' } });

    const all = await getJSON(h, '/sub/news?mode=poll&last_id=0');
    assert.equal(all.channel, 'news');
    assert.equal(all.last_id, '5');
    assert.equal(all.count, 5);
    assert.equal(all.gap, false);
    assert.deepEqual(all.messages.map((m) => m.id), ['1', '2', '3', '4', '5']);
    assert.deepEqual(all.messages.map((m) => m.data), ['a', 'b', 'c', 'named', 'hdr']);
    assert.deepEqual(all.messages.map((m) => m.event), ['message', 'message', 'message', 'news-event', 'via-header']);
    for (const m of all.messages) {
      assert.equal(m.channel, 'news');
      assert.equal(typeof m.time, 'number');
      assert.ok(Math.abs(m.time - Date.now()) < 60000, `time is ms since epoch: ${m.time}`);
      assert.equal(m.encoding, undefined, 'utf-8 payloads carry no encoding');
    }

    const now = await getJSON(h, '/sub/news?mode=poll');
    assert.equal(now.last_id, '5');
    assert.equal(now.count, 0);
    assert.deepEqual(now.messages, []);

    const after = await getJSON(h, '/sub/news?mode=poll&last_id=3');
    assert.equal(after.count, 2);
    assert.deepEqual(after.messages.map((m) => m.id), ['4', '5']);
    assert.equal(after.last_id, '5');

    const upToDate = await getJSON(h, '/sub/news?mode=poll&last_id=5');
    assert.equal(upToDate.count, 0);
    assert.equal(upToDate.last_id, '5');
    assert.equal(upToDate.gap, false);

    // unknown channel: made on first use, empty
    const fresh = await getJSON(h, '/sub/fresh?mode=poll&last_id=0');
    assert.equal(fresh.count, 0);
    assert.equal(fresh.last_id, '0');
  });
});

test('poll_max_messages caps one answer; polling again with the cursor returns the rest', T, async () => {
  await withHerald({ 'poll-max-messages': 3 }, async (h) => {
    for (let i = 1; i <= 7; i++) await publish(h, 'cap', `m${i}`);
    const seen = [];
    let cursor = '0';
    for (let round = 0; round < 5 && seen.length < 7; round++) {
      const r = await getJSON(h, `/sub/cap?mode=poll&last_id=${cursor}`);
      assert.ok(r.count <= 3, `count ${r.count} > poll_max_messages`);
      assert.equal(r.count, r.messages.length);
      seen.push(...r.messages.map((m) => m.data));
      cursor = r.last_id;
    }
    assert.deepEqual(seen, ['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7']);
    assert.equal(cursor, '7');
  });
});

test('SSE: headers, retry first, id/event/data framing, multi-line split, heartbeat comments', T, async () => {
  await withHerald({ 'sse-heartbeat': 1, 'sse-retry': 1234 }, async (h) => {
    const s = await openSSE(h, '/sub/news', { keepRaw: true });
    try {
      assert.equal(s.status, 200);
      assert.match(s.headers['content-type'], /^text\/event-stream/);
      assert.equal(s.headers['cache-control'], 'no-cache');
      assert.equal(s.headers['x-accel-buffering'], 'no');
      assert.match(s.headers.connection || '', /keep-alive/i);
      await waitFor(() => s.rawBytes > 0, 3000 * SCALE, 'first SSE bytes');
      assert.ok(Buffer.concat(s.raw).toString().startsWith('retry: 1234\n\n'),
        `first bytes: ${JSON.stringify(Buffer.concat(s.raw).toString().slice(0, 40))}`);

      // the subscription is live once /channels shows it
      await waitFor(async () => (await getJSON(h, '/channels/news')).subscribers === 1, 3000 * SCALE, 'subscriber registered');
      const p1 = await publish(h, 'news', 'hello');
      assert.equal(p1.subscribers, 1, 'publish counts the SSE subscriber');
      await publish(h, 'news', 'line 1\nline 2', { event: 'news-event' });
      const [e1, e2] = await s.take(2);
      assert.deepEqual([e1.id, e1.event, e1.data], ['1', 'message', 'hello']);
      assert.deepEqual([e2.id, e2.event, e2.data], ['2', 'news-event', 'line 1\nline 2']);
      const raw = Buffer.concat(s.raw).toString();
      assert.ok(raw.includes('id: 1\ndata: hello\n\n'), `message frame without event line: ${JSON.stringify(raw)}`);
      assert.ok(raw.includes('id: 2\nevent: news-event\ndata: line 1\ndata: line 2\n\n'), `multi-line frame: ${JSON.stringify(raw)}`);

      // heartbeat ":\n\n" every second
      const c0 = s.comments;
      await waitFor(() => s.comments > c0, 3000 * SCALE, 'an SSE heartbeat comment');
      assert.ok(Buffer.concat(s.raw).toString().includes(':\n\n'));
    } finally {
      s.close();
    }
  });
});

test('SSE is the default mode; Last-Event-ID header wins over last_id', T, async () => {
  await withHerald(async (h) => {
    for (let i = 1; i <= 5; i++) await publish(h, 'c', `d${i}`);
    const s = await openSSE(h, '/sub/c?last_id=0', { headers: { 'Last-Event-ID': '3' } });
    try {
      assert.match(s.headers['content-type'], /^text\/event-stream/);
      const evs = await s.take(2);
      assert.deepEqual(evs.map((e) => e.id), ['4', '5']);
      assert.deepEqual(evs.map((e) => e.data), ['d4', 'd5']);
    } finally {
      s.close();
    }
    const s2 = await openSSE(h, '/sub/c?mode=sse&last_id=4');
    try {
      const [e] = await s2.take(1);
      assert.equal(e.id, '5');
    } finally {
      s2.close();
    }
  });
});

test('iframe: html, >2 KiB padding, parent.<callback>, <script>h({...})</script> per message', T, async () => {
  await withHerald(async (h) => {
    await publish(h, 'ifr', 'hello <b>&amp;</b>');
    const s = await openIframe(h, '/sub/ifr?mode=iframe&last_id=0');
    try {
      assert.equal(s.status, 200);
      assert.match(s.headers['content-type'], /^text\/html; ?charset=utf-8/i);
      assert.match(s.headers['transfer-encoding'] || '', /chunked/);
      const m = await s.next();
      assert.equal(m.id, '1');
      assert.equal(m.channel, 'ifr');
      assert.equal(m.event, 'message');
      assert.equal(m.data, 'hello <b>&amp;</b>');
      const first = s.html.indexOf('<script>h(');
      assert.ok(first > 2048, `over 2 KiB of document + padding before the first message (at ${first})`);
      assert.ok(s.html.includes('parent.herald_message('), 'default callback herald_message');
      assert.ok(!s.html.includes('<b>'), 'payload < > are escaped');
      assert.ok(s.html.includes('\\u003cb\\u003e'), 'payload escaped as \\u003c');
    } finally {
      s.close();
    }
    const s2 = await openIframe(h, '/sub/ifr?mode=iframe&last_id=0&callback=app.onMsg');
    try {
      await s2.next();
      assert.ok(s2.html.includes('parent.app.onMsg('), 'custom dotted callback');
    } finally {
      s2.close();
    }
    // a callback that is not a dotted identifier must not be reflected into the page
    const r = await request(h, 'GET', '/sub/ifr?mode=iframe&last_id=0&callback=alert(1)%3B//', {
      timeout: 1500 * SCALE,
    }).catch((e) => ({ status: 0, text: '', err: e }));
    if (r.status !== 400) {
      assert.ok(!r.text.includes('alert(1);'), 'bad callback reflected into the iframe document');
    }
  });
});

test('unknown mode is 400 with a JSON error', T, async () => {
  await withHerald(async (h) => {
    const r = await request(h, 'GET', '/sub/news?mode=carrier-pigeon');
    assert.equal(r.status, 400);
    assert.match(r.headers['content-type'] || '', /application\/json/);
    assert.equal(typeof r.json().error, 'string');
  });
});

test('operations: /healthz, /channels/{channel}, /metrics counters and gauges', T, async () => {
  await withHerald(async (h) => {
    const hz = await request(h, 'GET', '/healthz');
    assert.equal(hz.status, 200);
    assert.deepEqual(hz.json(), { status: 'ok', store: 'ok' });
    assert.match(hz.headers['content-type'] || '', /application\/json/);
    const rz = await request(h, 'GET', '/readyz');
    assert.equal(rz.status, 200);
    assert.deepEqual(rz.json(), { status: 'ok', store: 'ok' });

    const unknown = await getJSON(h, '/channels/nobody-here');
    assert.equal(unknown.channel, 'nobody-here');
    assert.equal(unknown.subscribers, 0);
    assert.equal(unknown.last_id, '0');
    assert.equal(unknown.history.messages, 0);
    assert.equal(unknown.history.bytes, 0);

    const m0 = await metrics(h);
    for (const k of ['herald_messages_published_total', 'herald_bytes_sent_total', 'herald_bytes_received_total',
      'herald_queue_drops_total', 'herald_channels', 'herald_http_requests_total']) {
      assert.ok(m0.has(k), `metric ${k} present`);
    }
    const pub0 = m0.get('herald_messages_published_total');
    await publish(h, 'ops', 'x1');
    const m1 = await metrics(h);
    assert.equal(m1.get('herald_messages_published_total'), pub0 + 1, 'published_total +1 after one publish');
    assert.ok(m1.get('herald_bytes_received_total') > m0.get('herald_bytes_received_total'));

    const sseKey = 'herald_connections{transport="sse"}';
    const s = await openSSE(h, '/sub/ops');
    try {
      await waitFor(async () => (await metrics(h)).get(sseKey) === 1, 3000 * SCALE, `${sseKey} == 1`);
      const ch = await waitFor(async () => {
        const c = await getJSON(h, '/channels/ops');
        return c.subscribers === 1 && c;
      }, 3000 * SCALE, 'channel subscriber count 1');
      assert.equal(ch.channel, 'ops');
      assert.equal(ch.last_id, '1');
      await publish(h, 'ops', 'x2');
      await s.take(1);
      const ch2 = await getJSON(h, '/channels/ops');
      assert.equal(ch2.last_id, '2');
      assert.equal(ch2.history.messages, 2);
      assert.ok(ch2.history.bytes >= 4, `history bytes ${ch2.history.bytes}`);
      assert.equal(ch2.history.first_id, '1');
      const m2 = await metrics(h);
      assert.ok((m2.get('herald_messages_delivered_total{transport="sse"}') ?? 0) >= 1, 'delivered_total{sse} counts');
      assert.ok(m2.get('herald_channels') >= 1);
    } finally {
      s.close();
    }
    await waitFor(async () => (await metrics(h)).get(sseKey) === 0, 3000 * SCALE, `${sseKey} back to 0 after close`);
    await waitFor(async () => (await getJSON(h, '/channels/ops')).subscribers === 0, 3000 * SCALE, 'subscriber gone');
  });
});

test('CORS: preflight from an allowed origin 204, other origin 403, GET carries ACAO', T, async () => {
  await withHerald({ 'cors-origins': 'http://a.example' }, async (h) => {
    const pre = await request(h, 'OPTIONS', '/pub/news', {
      headers: { Origin: 'http://a.example', 'Access-Control-Request-Method': 'POST' },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers['access-control-allow-origin'], 'http://a.example');
    const methods = (pre.headers['access-control-allow-methods'] || '').toUpperCase();
    assert.match(methods, /POST/);
    assert.match(methods, /GET/);

    const bad = await request(h, 'OPTIONS', '/pub/news', {
      headers: { Origin: 'http://evil.example', 'Access-Control-Request-Method': 'POST' },
    });
    assert.equal(bad.status, 403);
    assert.equal(bad.headers['access-control-allow-origin'], undefined);

    await publish(h, 'news', 'x');
    const get = await request(h, 'GET', '/sub/news?mode=poll&last_id=0', { headers: { Origin: 'http://a.example' } });
    assert.equal(get.status, 200);
    assert.equal(get.headers['access-control-allow-origin'], 'http://a.example');
    const other = await request(h, 'GET', '/sub/news?mode=poll&last_id=0', { headers: { Origin: 'http://evil.example' } });
    assert.notEqual(other.headers['access-control-allow-origin'], 'http://evil.example');
    assert.notEqual(other.headers['access-control-allow-origin'], '*');
  });
});
