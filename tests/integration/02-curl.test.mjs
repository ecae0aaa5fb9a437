// Every transport through the real curl binary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  withHerald, publish, getJSON, run, spawnStream, waitFor, waitSubscribed, nastyBytes, msgBytes, SCALE,
} from '../lib/herald.mjs';

const T = { timeout: 30000 * SCALE };

test('curl -N SSE receives history and a live message as id/data lines', T, async () => {
  await withHerald(async (h) => {
    await publish(h, 'cn', 'before');
    const c = spawnStream('curl', ['-sS', '-N', h.url('/sub/cn?last_id=0')]);
    try {
      await waitFor(() => c.text.includes('id: 1\ndata: before\n\n') || c.exited, 5000 * SCALE, 'curl sees history');
      assert.ok(c.text.includes('id: 1\ndata: before\n\n'), `curl output: ${JSON.stringify(c.text)} ${c.stderr}`);
      assert.ok(c.text.startsWith('retry: '), 'stream starts with retry:');
      await publish(h, 'cn', 'live one');
      await waitFor(() => c.text.includes('id: 2\ndata: live one\n\n'), 5000 * SCALE, 'curl sees the live message');
    } finally {
      await c.stop();
    }
  });
});

test('curl poll and longpoll get JSON', T, async () => {
  await withHerald({ 'longpoll-timeout': 5 }, async (h) => {
    await publish(h, 'cp', 'p1');
    const r = await run('curl', ['-sS', '-i', h.url('/sub/cp?mode=poll&last_id=0')]);
    assert.equal(r.code, 0, r.stderr);
    const txt = r.stdout.toString();
    assert.match(txt, /^HTTP\/1\.1 200/);
    assert.match(txt, /content-type: application\/json/i);
    const j = JSON.parse(txt.slice(txt.indexOf('\r\n\r\n') + 4));
    assert.equal(j.count, 1);
    assert.equal(j.messages[0].data, 'p1');

    // longpoll: curl is held until the publish
    const lp = spawnStream('curl', ['-sS', h.url('/sub/cp?mode=longpoll&last_id=1')]);
    try {
      await waitSubscribed(h, 'cp', 'longpoll', 1, 1500 * SCALE);
      assert.equal(lp.exited, null, `longpoll answered before any publish: ${lp.text}`);
      await publish(h, 'cp', 'p2');
      await waitFor(() => lp.exited, 5000 * SCALE, 'curl longpoll to finish');
      assert.equal(lp.exited.code, 0, lp.stderr);
      const lj = JSON.parse(lp.text);
      assert.equal(lj.count, 1);
      assert.equal(lj.messages[0].data, 'p2');
      assert.equal(lj.last_id, '2');
    } finally {
      await lp.stop();
    }
  });
});

test('curl iframe stream has <script> blocks with the escaped payload', T, async () => {
  await withHerald(async (h) => {
    await publish(h, 'ci', 'x<y>&z');
    const c = spawnStream('curl', ['-sS', '-N', h.url('/sub/ci?mode=iframe&last_id=0')]);
    try {
      await waitFor(() => /<script>h\(/.test(c.text) || c.exited, 5000 * SCALE, 'iframe message script');
      assert.match(c.text, /<script>h\(\{/);
      assert.ok(c.text.includes('x\\u003cy\\u003e\\u0026z'), `escaped payload in: ${c.text.slice(-400)}`);
      assert.ok(!c.text.includes('x<y>&z'), 'raw payload must not appear');
    } finally {
      await c.stop();
    }
  });
});

test('curl POST /pub --data-binary @file publishes the exact bytes', T, async () => {
  await withHerald(async (h) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-curl-'));
    try {
      const bytes = nastyBytes(3000, 7);
      const f = path.join(dir, 'payload.bin');
      fs.writeFileSync(f, bytes);
      const r = await run('curl', ['-sS', '-X', 'POST', '--data-binary', `@${f}`, '-H', 'Content-Type: application/octet-stream', h.url('/pub/cb?event=blob')]);
      assert.equal(r.code, 0, r.stderr);
      const ans = JSON.parse(r.stdout.toString());
      assert.equal(ans.id, '1');
      assert.equal(ans.channel, 'cb');
      const j = await getJSON(h, '/sub/cb?mode=poll&last_id=0');
      assert.equal(j.messages[0].encoding, 'base64');
      assert.equal(j.messages[0].event, 'blob');
      assert.ok(msgBytes(j.messages[0]).equals(bytes), 'bytes round-trip');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
