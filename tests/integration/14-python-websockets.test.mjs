// A third-party client in another language: Python's `websockets` library (Debian's
// python3-websockets 10.4, asyncio client) driven by py/ws_client.py, with and without
// permessage-deflate: subscribe and receive published messages in order; exact echoes on /echo.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  withHerald, publish, waitFor, waitSubscribed, withTimeout, spawnStream, run, metrics, nastyBytes, SCALE,
} from '../lib/herald.mjs';

const T = { timeout: 60000 * SCALE };
const here = path.dirname(fileURLToPath(import.meta.url));
const SCRIPT = path.join(here, 'py', 'ws_client.py');
// Debian's interpreter has python3-websockets; a pyenv/venv python3 earlier on PATH may not
const PY = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

const lines = (buf) => buf.toString('utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));

function bigText(n) {
  let s = '';
  for (let i = 0; s.length < n; i++) s += `{"seq":${i},"msg":"the same words again and again"}\n`;
  return s.slice(0, n);
}

for (const mode of ['none', 'deflate']) {
  test(`python websockets (compression=${mode}) subscribes to /sub/{channel} and prints every message in order`, T, async () => {
    await withHerald(async (h) => {
      const big = bigText(50000);
      const bin = nastyBytes(200, 3);
      const msgs = [
        ...Array.from({ length: 10 }, (_, i) => `message ${i + 1}`),
        'ünïcödé ✓ 𝄞',
        bin,
        '',
        big,
      ];
      const p = spawnStream(PY, [SCRIPT, 'sub', `ws://127.0.0.1:${h.port}/sub/py`, String(msgs.length), mode]);
      try {
        const ready = await waitFor(() => {
          if (p.exited) throw new Error(`python exited early: ${JSON.stringify(p.exited)} ${p.stderr}`);
          const ls = p.text.split('\n').filter(Boolean);
          return ls.length ? JSON.parse(ls[0]) : null;
        }, 15000 * SCALE, 'python connected');
        assert.equal(ready.ready, true);
        assert.deepEqual(ready.extensions, mode === 'deflate' ? ['permessage-deflate'] : [], 'negotiated extensions');
        assert.ok(await waitSubscribed(h, 'py', 'websocket'), 'python is subscribed');
        for (const m of msgs.slice(0, -1)) await publish(h, 'py', m);
        // the big one last, with the bytes the server sent for it
        await waitFor(() => p.text.split('\n').filter(Boolean).length >= msgs.length, 10000 * SCALE, 'python printed the small messages');
        /* bytes_sent counts /metrics answers too: one answer's size is measured and taken off */
        const b0 = (await metrics(h)).get('herald_bytes_sent_total');
        const before = (await metrics(h)).get('herald_bytes_sent_total');
        const overhead = before - b0;
        await publish(h, 'py', big);
        const exit = await withTimeout(p.exit, 15000 * SCALE, 'python exit');
        const after = (await metrics(h)).get('herald_bytes_sent_total') - overhead;
        assert.equal(exit.code, 0, `python exit code; stderr: ${p.stderr}`);
        const out = lines(p.stdout);
        const got = out.slice(1, 1 + msgs.length);
        assert.equal(got.length, msgs.length, `python printed ${got.length} messages: ${p.text.slice(0, 500)}`);
        for (let i = 0; i < msgs.length; i++) {
          const m = msgs[i];
          if (Buffer.isBuffer(m)) assert.deepEqual(got[i], { type: 'binary', hex: m.toString('hex') }, `message ${i}`);
          else assert.deepEqual(got[i], { type: 'text', data: m }, `message ${i}`);
        }
        assert.deepEqual(out.at(-1), { closed: 1000 }, 'clean close');
        const sent = after - before;
        if (mode === 'deflate') assert.ok(sent < big.length / 5, `${sent} bytes on the wire for ${big.length} (compressed)`);
        else assert.ok(sent > big.length, `${sent} bytes on the wire for ${big.length} (not compressed)`);
      } finally {
        if (!p.exited) await p.stop();
      }
    });
  });

  test(`python websockets (compression=${mode}) gets exact echoes from /echo: text, binary, 100 KB`, T, async () => {
    await withHerald({ echo: 'true' }, async (h) => {
      const r = await run(PY, [SCRIPT, 'echo', `ws://127.0.0.1:${h.port}/echo`, mode], { timeout: 30000 * SCALE });
      assert.equal(r.code, 0, `python exit code ${r.code}; stderr: ${r.stderr}`);
      const out = lines(r.stdout);
      assert.deepEqual(out[0], { ready: true, extensions: mode === 'deflate' ? ['permessage-deflate'] : [] });
      const cases = out.filter((o) => o.case);
      assert.deepEqual(cases.map((c) => c.case), ['text', 'binary', 'text100k', 'binary100k', 'empty text', 'empty binary', 'burst']);
      for (const c of cases) {
        assert.equal(c.got_type, c.sent_type, `${c.case}: type`);
        assert.equal(c.got_len, c.sent_len, `${c.case}: length`);
        assert.equal(c.equal, true, `${c.case}: exact echo`);
      }
      assert.equal(cases.find((c) => c.case === 'text100k').sent_len, 100 * 1024);
      assert.deepEqual(out.at(-1), { closed: 1000 });
    });
  });
}
