// Binary and hostile payloads round-trip through every transport byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  withHerald, publish, getJSON, openSSE, openIframe, request, msgBytes, nastyBytes, parseIframe, waitSubscribed, SCALE,
} from '../lib/herald.mjs';

const T = { timeout: 30000 * SCALE };

const PAYLOADS = [
  nastyBytes(1, 3).fill(0), // a lone NUL
  Buffer.from('a\rb', 'utf8'), // CR in otherwise valid UTF-8
  Buffer.from('nul\0inside', 'utf8'),
  Buffer.from([0xff, 0xfe, 0xfd]),
  Buffer.from([0xc3, 0x28, 0x0a, 0x0d, 0x00]), // invalid UTF-8 + LF CR NUL
  Buffer.from([0xed, 0xa0, 0x80]), // UTF-16 surrogate encoded in UTF-8: invalid
  Buffer.from([0xf4, 0x90, 0x80, 0x80]), // above U+10FFFF: invalid
  nastyBytes(4096, 11),
  nastyBytes(70000, 12),
];
// JSON transports (poll, longpoll, iframe) use base64 only for invalid UTF-8; NUL and CR are
// valid UTF-8 and travel as JSON strings. SSE also base64-encodes payloads with CR or NUL.
const isUtf8 = (b) => {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(b);
    return true;
  } catch {
    return false;
  }
};
const TEXTS = ['a\nb\nc', '</script><script>alert(1)</script>', 'x\u2028y\u2029z', 'emoji 😀 é', '\n\nlead and trail\n'];

test('binary payloads round-trip via poll (base64 encoding) and longpoll', T, async () => {
  await withHerald(async (h) => {
    for (const p of PAYLOADS) await publish(h, 'bin', p);
    const j = await getJSON(h, '/sub/bin?mode=poll&last_id=0');
    assert.equal(j.count, PAYLOADS.length);
    j.messages.forEach((m, i) => {
      assert.equal(m.encoding, isUtf8(PAYLOADS[i]) ? undefined : 'base64', `payload ${i} encoding`);
      assert.ok(msgBytes(m).equals(PAYLOADS[i]), `poll payload ${i} round-trips`);
    });
    for (let i = 0; i < PAYLOADS.length; i++) {
      const lp = await getJSON(h, `/sub/bin?mode=longpoll&last_id=${i}`);
      assert.ok(lp.count >= 1);
      assert.equal(lp.messages[0].id, String(i + 1));
      assert.ok(msgBytes(lp.messages[0]).equals(PAYLOADS[i]), `longpoll payload ${i} round-trips`);
    }
    // valid UTF-8 text stays a plain JSON string
    for (const t of TEXTS) await publish(h, 'txt', t);
    const tj = await getJSON(h, '/sub/txt?mode=poll&last_id=0');
    assert.deepEqual(tj.messages.map((m) => m.data), TEXTS);
    for (const m of tj.messages) assert.equal(m.encoding, undefined);
  });
});

test('binary payloads round-trip via SSE as event "message@base64"; text stays raw', T, async () => {
  await withHerald(async (h) => {
    for (const p of PAYLOADS) await publish(h, 'bin', p);
    await publish(h, 'bin', Buffer.from([0x00, 0x01]), { event: 'blob' });
    for (const t of TEXTS) await publish(h, 'bin', t);
    const s = await openSSE(h, '/sub/bin?last_id=0');
    try {
      const evs = await s.take(PAYLOADS.length + 1 + TEXTS.length);
      PAYLOADS.forEach((p, i) => {
        assert.equal(evs[i].event, 'message@base64', `payload ${i} event name`);
        assert.equal(evs[i].id, String(i + 1));
        assert.ok(Buffer.from(evs[i].data, 'base64').equals(p), `SSE payload ${i} round-trips`);
      });
      const named = evs[PAYLOADS.length];
      assert.equal(named.event, 'blob@base64');
      assert.ok(Buffer.from(named.data, 'base64').equals(Buffer.from([0, 1])));
      TEXTS.forEach((t, i) => {
        const e = evs[PAYLOADS.length + 1 + i];
        assert.equal(e.event, 'message', `text ${i} is not base64`);
        assert.equal(e.data, t, `SSE text ${i} intact`);
      });
    } finally {
      s.close();
    }
  });
});

test('binary payloads round-trip via iframe (JSON with encoding base64)', T, async () => {
  await withHerald(async (h) => {
    for (const p of PAYLOADS) await publish(h, 'bin', p);
    const s = await openIframe(h, '/sub/bin?mode=iframe&last_id=0');
    try {
      for (let i = 0; i < PAYLOADS.length; i++) {
        const m = await s.next();
        assert.equal(m.id, String(i + 1));
        assert.equal(m.encoding, isUtf8(PAYLOADS[i]) ? undefined : 'base64', `payload ${i} encoding`);
        assert.ok(msgBytes(m).equals(PAYLOADS[i]), `iframe payload ${i} round-trips`);
      }
    } finally {
      s.close();
    }
  });
});

test('iframe: </script>, U+2028/2029, & < > never appear raw; each h(...) JSON parses back', T, async () => {
  await withHerald(async (h) => {
    const s = await openIframe(h, '/sub/xss?mode=iframe');
    try {
      await waitSubscribed(h, 'xss', 'iframe');
      for (const t of TEXTS) await publish(h, 'xss', t);
      const got = [];
      for (let i = 0; i < TEXTS.length; i++) got.push(await s.next());
      assert.deepEqual(got.map((m) => m.data), TEXTS);
      const html = s.html;
      assert.ok(!html.includes('alert(1)</script>'), 'payload closed the script block');
      assert.ok(!html.includes('\u2028') && !html.includes('\u2029'), 'raw U+2028/U+2029 in the page');
      const opens = (html.match(/<script\b/g) || []).length;
      const closes = (html.match(/<\/script>/g) || []).length;
      assert.equal(opens, closes, 'every </script> is a framing one');
      // the message scripts are exactly h(JSON) and nothing else
      const { objects, scripts } = parseIframe(html);
      const calls = scripts.filter((sc) => /^\s*h\(/.test(sc));
      assert.equal(calls.length, TEXTS.length);
      assert.deepEqual(objects.map((o) => o.data), TEXTS);
      for (const sc of calls) {
        assert.ok(!/[<>&\u2028\u2029]/.test(sc), `unescaped char in ${JSON.stringify(sc)}`);
      }
    } finally {
      s.close();
    }
  });
});

test('publish with an empty body delivers an empty payload', T, async () => {
  await withHerald(async (h) => {
    const r = await request(h, 'POST', '/pub/e', { headers: { 'Content-Length': '0' }, body: '' });
    assert.equal(r.status, 200);
    const j = await getJSON(h, '/sub/e?mode=poll&last_id=0');
    assert.equal(j.count, 1);
    assert.equal(j.messages[0].data, '');
  });
});
