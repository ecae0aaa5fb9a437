// `herald pub` and `herald sub` command-line clients against a running server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  withHerald, publish, getJSON, run, spawnStream, waitFor, waitSubscribed, tcpProxy, HERALD_BIN, SCALE,
} from '../lib/herald.mjs';

const T = { timeout: 30000 * SCALE };

test('herald pub prints the JSON answer; herald sub -n 1 --last-id 0 prints the data', T, async () => {
  await withHerald(async (h) => {
    const p = await run(HERALD_BIN, ['pub', '--url', h.base, 'chan', 'hello']);
    assert.equal(p.code, 0, p.stderr);
    const ans = JSON.parse(p.stdout.toString());
    assert.equal(ans.id, '1');
    assert.equal(ans.channel, 'chan');
    assert.equal(typeof ans.subscribers, 'number');

    const s = await run(HERALD_BIN, ['sub', '--url', h.base, '-n', '1', '--last-id', '0', 'chan']);
    assert.equal(s.code, 0, s.stderr);
    assert.equal(s.stdout.toString(), 'hello\n');
  });
});

test('herald sub prints multi-line, CR, NUL and binary payloads byte for byte (it asks for the exact SSE form)', T, async () => {
  await withHerald(async (h) => {
    const P = [
      Buffer.from('line 1\nline 2\n\nline 4\n'),
      Buffer.from('cr\rcrlf\r\nend\r'),
      Buffer.from(' data: x\0y'),
      Buffer.from([0xff, 0x0a, 0x00, 0x0d]),
      Buffer.from(''),
    ];
    for (const p of P) await publish(h, 'ml', p);
    const s = await run(HERALD_BIN, ['sub', '--url', h.base, '-n', String(P.length), '--last-id', '0', 'ml']);
    assert.equal(s.code, 0, s.stderr);
    assert.ok(s.stdout.equals(Buffer.concat(P.flatMap((p) => [p, Buffer.from('\n')]))), JSON.stringify(s.stdout.toString('latin1')));
  });
});

test('herald pub reads stdin, takes --event; sub -n 2 waits for a live message', T, async () => {
  await withHerald(async (h) => {
    const p = await run(HERALD_BIN, ['pub', '--url', h.base, '--event', 'news-event', 'c2'], { input: 'from stdin' });
    assert.equal(p.code, 0, p.stderr);
    const j = await getJSON(h, '/sub/c2?mode=poll&last_id=0');
    assert.equal(j.messages[0].data, 'from stdin');
    assert.equal(j.messages[0].event, 'news-event');

    const sub = spawnStream(HERALD_BIN, ['sub', '--url', h.base, '-n', '2', '--last-id', '0', 'c2']);
    try {
      await waitFor(() => sub.text === 'from stdin\n' || sub.exited, 5000 * SCALE, 'sub prints history');
      assert.equal(sub.text, 'from stdin\n');
      assert.equal(sub.exited, null, 'sub -n 2 keeps waiting after one message');
      await waitSubscribed(h, 'c2', 'sse');
      await publish(h, 'c2', 'live');
      await waitFor(() => sub.exited, 5000 * SCALE, 'sub exits after 2 messages');
      assert.equal(sub.exited.code, 0, sub.stderr);
      assert.equal(sub.text, 'from stdin\nlive\n');
    } finally {
      await sub.stop();
    }
  });
});

test('herald pub exits non-zero when the server refuses', T, async () => {
  await withHerald(async (h) => {
    const p = await run(HERALD_BIN, ['pub', '--url', h.base, '$bad', 'x']);
    assert.notEqual(p.code, 0, 'pub to an invalid channel exits non-zero');
  });
});

test('herald sub reconnects after a cut connection and resumes with the last id', T, async () => {
  await withHerald({ 'sse-retry': 100 }, async (h) => {
    const proxy = await tcpProxy(h.port);
    await publish(h, 'r', 'one');
    const sub = spawnStream(HERALD_BIN, ['sub', '--url', `http://127.0.0.1:${proxy.port}`, '-n', '3', '--last-id', '0', 'r']);
    try {
      await waitFor(() => sub.text === 'one\n' || sub.exited, 5000 * SCALE, 'first message');
      assert.equal(sub.text, 'one\n');
      proxy.down();
      proxy.cut();
      await waitFor(async () => (await getJSON(h, '/channels/r')).subscribers === 0, 5000 * SCALE, 'cut noticed');
      await publish(h, 'r', 'two');
      await publish(h, 'r', 'three');
      proxy.up();
      await waitFor(() => sub.exited, 15000 * SCALE, `sub exits after 3 (has ${JSON.stringify(sub.text)})`);
      assert.equal(sub.text, 'one\ntwo\nthree\n');
      assert.equal(sub.exited.code, 0);
    } finally {
      await sub.stop();
      await proxy.close();
    }
  });
});

test('herald pub --token / sub --token (and $HERALD_TOKEN) against a server with access control', T, async () => {
  const secret = 'cli-test-secret-cli-test-secret-0123456789';
  const key = 'cli-test-api-key-0123456789';
  await withHerald({ 'token-hmac-secret': secret, 'api-keys': key }, async (h) => {
    // without a credential: refused, the server's answer on stderr
    const bare = await run(HERALD_BIN, ['pub', '--url', h.base, 'user/42', 'x']);
    assert.equal(bare.code, 1);
    assert.match(bare.stderr.toString(), /not allowed to publish/);
    const p = await run(HERALD_BIN, ['pub', '--url', h.base, '--token', key, 'user/42', 'for 42']);
    assert.equal(p.code, 0, p.stderr);
    const tok = (await run(HERALD_BIN, ['token', '--token-hmac-secret', secret, '--sub', '42', '--ttl', '5m'])).stdout
      .toString().trim();
    const s = await run(HERALD_BIN, ['sub', '--url', h.base, '-n', '1', '--last-id', '0', 'user/42'],
      { spawn: { env: { ...process.env, HERALD_TOKEN: tok } } });
    assert.equal(s.code, 0, s.stderr);
    assert.equal(s.stdout.toString(), 'for 42\n');
    const other = await run(HERALD_BIN, ['sub', '--url', h.base, '-n', '1', '--last-id', '0', '--token', tok, 'user/7']);
    assert.equal(other.code, 1);
    assert.match(other.stderr.toString(), /not allowed to subscribe/);
  });
});
