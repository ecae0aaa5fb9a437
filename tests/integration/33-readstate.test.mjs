// Read state on the server: per user and channel read cursors (POST /read/{channel}), unread
// counts (GET /unread) for the token's user or, with an API key, for ?user=ID; durable with the
// LMDB store across a restart; bounded by max_tracked_channels and max_read_cursors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startHerald, request, parseMetrics, SCALE } from '../lib/herald.mjs';
import { API_KEY, authFlags, bearer, mint, keyPublish } from '../lib/auth.mjs';

const T = { timeout: 60000 * SCALE };

const keyMetrics = async (h) => parseMetrics((await request(h, 'GET', '/metrics', { headers: bearer(API_KEY) })).text);

async function call(h, method, p, tok, body) {
  const opts = { headers: { ...bearer(tok) } };
  if (body !== undefined) {
    opts.body = JSON.stringify(body);
    opts.headers['Content-Type'] = 'application/json';
    opts.headers['Content-Length'] = String(Buffer.byteLength(opts.body));
  }
  const r = await request(h, method, p, opts);
  let json = null;
  try {
    json = JSON.parse(r.text);
  } catch {}
  return { status: r.status, json, text: r.text };
}

test('unread counts and read cursors per user: the personal channel is always counted, marking read lowers the count, other users are apart; an API key reads and marks on a user\'s behalf; a restart keeps the cursors', T, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-read-'));
  const flags = authFlags({ data_dir: path.join(dir, 'data') });
  let h = await startHerald(flags);
  try {
    const t42 = await mint({ sub: '42', subscribe: ['news'] });
    const t43 = await mint({ sub: '43' });
    for (let i = 1; i <= 3; i++) await keyPublish(h, 'user/42', `m${i}`);
    let r = await call(h, 'GET', '/unread', t42);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { user: '42', total: 3, channels: { broadcast: 0, 'user/42': 3 } });
    assert.deepEqual((await call(h, 'GET', '/unread', t43)).json, { user: '43', total: 0, channels: { broadcast: 0, 'user/43': 0 } });

    r = await call(h, 'POST', '/read/user/42', t42, { id: '2' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { channel: 'user/42', read: '2', unread: 1, total: 1 });
    /* another user may not mark (or read) 42's channel */
    assert.equal((await call(h, 'POST', '/read/user/42', t43, { id: '3' })).status, 403);
    /* a channel the token may read is tracked once marked; ids beyond the last are clamped */
    await keyPublish(h, 'news', 'n1');
    r = await call(h, 'POST', '/read/news?id=0', t42);
    assert.deepEqual(r.json, { channel: 'news', read: '0', unread: 1, total: 2 });
    await keyPublish(h, 'news', 'n2');
    assert.deepEqual((await call(h, 'GET', '/unread', t42)).json,
      { user: '42', total: 3, channels: { broadcast: 0, 'user/42': 1, news: 2 } });
    assert.deepEqual((await call(h, 'POST', '/read/news', t42, { id: 99 })).json,
      { channel: 'news', read: '2', unread: 0, total: 1 });
    /* the backend, on the user's behalf; ?user= without an API key is refused */
    r = await call(h, 'POST', '/read/user/42?user=42', API_KEY, { id: '3' });
    assert.deepEqual(r.json, { channel: 'user/42', read: '3', unread: 0, total: 0 });
    assert.deepEqual((await call(h, 'GET', '/unread?user=42', API_KEY)).json,
      { user: '42', total: 0, channels: { broadcast: 0, 'user/42': 0, news: 0 } });
    assert.equal((await call(h, 'GET', '/unread?user=42', t43)).status, 403);
    /* errors */
    assert.equal((await call(h, 'GET', '/unread')).status, 401, 'no credential');
    assert.equal((await call(h, 'POST', '/read/news', t42, { nope: 1 })).status, 400);
    assert.equal((await call(h, 'POST', '/read/%24SYS', t42, { id: '1' })).status, 400);
    assert.equal((await call(h, 'GET', '/read/news', t42)).status, 405);
    const m = await keyMetrics(h);
    assert.equal(m.get('herald_read_cursors'), 2);
    assert.ok(m.get('herald_read_marks_total') >= 4);
    await keyPublish(h, 'user/42', 'm4');
  } finally {
    await h.stop();
  }
  h = await startHerald(flags);
  try {
    const t42 = await mint({ sub: '42', subscribe: ['news'] });
    assert.deepEqual((await call(h, 'GET', '/unread', t42)).json,
      { user: '42', total: 1, channels: { broadcast: 0, 'user/42': 1, news: 0 } }, 'the cursors came back from the store');
  } finally {
    await h.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('read cursors are bounded: max_tracked_channels per user and max_read_cursors in all (refused, counted, logged once)', T, async () => {
  const h = await startHerald(authFlags({ max_tracked_channels: 2, max_read_cursors: 3 }));
  try {
    const t1 = await mint({ sub: 'u1', subscribe: ['#'] });
    const t2 = await mint({ sub: 'u2', subscribe: ['#'] });
    assert.equal((await call(h, 'POST', '/read/a', t1, { id: '0' })).status, 200);
    assert.equal((await call(h, 'POST', '/read/b', t1, { id: '0' })).status, 200);
    let r = await call(h, 'POST', '/read/c', t1, { id: '0' });
    assert.equal(r.status, 503, r.text);
    assert.match(r.json.error, /max_tracked_channels/);
    assert.equal((await call(h, 'POST', '/read/a', t1, { id: '0' })).status, 200, 'a channel already tracked still works');
    assert.equal((await call(h, 'POST', '/read/a', t2, { id: '0' })).status, 200);
    r = await call(h, 'POST', '/read/b', t2, { id: '0' });
    assert.equal(r.status, 503, r.text);
    assert.match(r.json.error, /max_read_cursors/);
    assert.equal((await keyMetrics(h)).get('herald_read_refused_total'), 2);
    assert.equal((h.out.match(/max_tracked_channels reached/g) || []).length, 1);
    assert.equal((h.out.match(/max_read_cursors reached/g) || []).length, 1);
  } finally {
    await h.stop();
  }
});

test('a withdrawn message no longer counts as unread', T, async () => {
  const h = await startHerald(authFlags());
  try {
    const t7 = await mint({ sub: '7' });
    for (let i = 1; i <= 3; i++) await keyPublish(h, 'user/7', `m${i}`);
    assert.equal((await call(h, 'GET', '/unread', t7)).json.total, 3);
    assert.equal((await call(h, 'DELETE', '/channels/user/7/messages/2', API_KEY)).status, 204);
    assert.deepEqual((await call(h, 'GET', '/unread', t7)).json, { user: '7', total: 2, channels: { broadcast: 0, 'user/7': 2 } });
  } finally {
    await h.stop();
  }
});
