// Slowloris: 1,000 connections each holding a partial request head must not starve normal
// clients, and the server must close them once header_timeout passes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import {
  withHerald, publish, getJSON, waitFor, withTimeout, SCALE,
} from '../lib/herald.mjs';

const T = { timeout: 60000 * SCALE };
const N = 1000;

function slowConn(port, i) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const st = { sock: s, closedAt: 0, data: Buffer.alloc(0) };
    s.on('connect', () => {
      // a request head that never ends
      s.write(`GET /sub/slow${i}?mode=poll HTTP/1.1\r\nHost: t\r\nX-Slow: `);
      resolve(st);
    });
    s.on('data', (c) => (st.data = Buffer.concat([st.data, c])));
    const done = () => {
      if (!st.closedAt) st.closedAt = Date.now();
    };
    s.on('end', done);
    s.on('close', done);
    s.on('error', (e) => {
      done();
      reject(e);
    });
  });
}

test('1,000 partial request heads: normal clients are served, slow ones closed after header_timeout', T, async () => {
  await withHerald({ 'header-timeout': 1 }, async (h) => {
    const t0 = Date.now();
    const conns = [];
    // open in batches to keep the accept queue sane
    for (let i = 0; i < N; i += 100) {
      const batch = [];
      for (let j = i; j < i + 100; j++) batch.push(slowConn(h.port, j));
      conns.push(...(await withTimeout(Promise.all(batch), 10000 * SCALE, 'opening slow connections')));
    }
    const openedIn = Date.now() - t0;

    // a normal client is served promptly while they are open
    const t1 = Date.now();
    const a = await withTimeout(publish(h, 'fine', 'served'), 2000 * SCALE, 'publish during slowloris');
    assert.equal(a.id, '1');
    const j = await withTimeout(getJSON(h, '/sub/fine?mode=poll&last_id=0'), 2000 * SCALE, 'poll during slowloris');
    assert.equal(j.messages[0].data, 'served');
    const servedIn = Date.now() - t1;
    const stillOpen = conns.filter((c) => !c.closedAt).length;
    assert.ok(stillOpen > 0 || openedIn > 1000,
      `the normal client ran while slow connections were open (open: ${stillOpen}, opening took ${openedIn} ms, serving ${servedIn} ms)`);

    // every slow connection is closed by the server (EOF, or a 408 then EOF) after the timeout
    await waitFor(() => conns.every((c) => c.closedAt), 10000 * SCALE,
      `all slow connections closed (open: ${conns.filter((c) => !c.closedAt).length})`, 50);
    const tooEarly = conns.filter((c) => c.closedAt - t0 < 900);
    assert.equal(tooEarly.length, 0, `${tooEarly.length} closed before header_timeout`);
    for (const c of conns) {
      if (c.data.length) {
        const head = c.data.toString('latin1');
        assert.match(head, /^HTTP\/1\.1 408 /, `a slow connection got something other than 408: ${head.slice(0, 60)}`);
      }
    }
    // and the server is fine afterwards
    const j2 = await getJSON(h, '/sub/fine?mode=poll&last_id=0');
    assert.equal(j2.count, 1);
  });
});

test('header_timeout also bounds a head that trickles in byte by byte', T, async () => {
  await withHerald({ 'header-timeout': 1 }, async (h) => {
    const s = net.connect({ host: '127.0.0.1', port: h.port });
    let closedAt = 0;
    const t0 = Date.now();
    s.on('close', () => (closedAt = Date.now()));
    s.on('error', () => {});
    s.on('data', () => {});
    const head = 'GET /healthz HTTP/1.1\r\nHost: t\r\nX-Trickle: ' + 'z'.repeat(200);
    let i = 0;
    const iv = setInterval(() => {
      if (closedAt || i >= head.length) return;
      s.write(head[i++]);
    }, 50);
    try {
      await waitFor(() => closedAt, 6000 * SCALE, 'trickling connection closed');
      assert.ok(closedAt - t0 >= 900, 'not before the timeout');
      assert.ok(closedAt - t0 < 4000, `closed only after ${closedAt - t0} ms: header_timeout should bound the whole head`);
    } finally {
      clearInterval(iv);
      s.destroy();
    }
  });
});
