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
// JSON transports (poll, longpoll, iframe) and SSE use base64 only for invalid UTF-8; NUL and CR
// are valid UTF-8 and travel as JSON strings. SSE sends them as text, where an event-stream
// parser reads CR and CRLF as line ends (they arrive as LF); its exact form (?exact=1) sends
// payloads with CR base64-encoded instead, so that they arrive byte for byte.
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

/* What an event-stream parser makes of UTF-8 text: CR and CRLF end lines, read back as LF. */
const sseText = (b) => b.toString('utf8').replace(/\r\n?/g, '\n');

test('SSE: invalid UTF-8 arrives as event "message@base64"; UTF-8 (NUL, CR) as text, CR read as LF', T, async () => {
  await withHerald(async (h) => {
    for (const p of PAYLOADS) await publish(h, 'bin', p);
    await publish(h, 'bin', Buffer.from([0x00, 0xff]), { event: 'blob' });
    for (const t of TEXTS) await publish(h, 'bin', t);
    const s = await openSSE(h, '/sub/bin?last_id=0', { keepRaw: true });
    try {
      const evs = await s.take(PAYLOADS.length + 1 + TEXTS.length);
      PAYLOADS.forEach((p, i) => {
        assert.equal(evs[i].id, String(i + 1));
        if (isUtf8(p)) {
          assert.equal(evs[i].event, 'message', `payload ${i} is text`);
          assert.equal(evs[i].data, sseText(p), `SSE payload ${i} as text`);
        } else {
          assert.equal(evs[i].event, 'message@base64', `payload ${i} event name`);
          assert.ok(Buffer.from(evs[i].data, 'base64').equals(p), `SSE payload ${i} round-trips`);
        }
      });
      const named = evs[PAYLOADS.length];
      assert.equal(named.event, 'blob@base64');
      assert.ok(Buffer.from(named.data, 'base64').equals(Buffer.from([0, 0xff])));
      TEXTS.forEach((t, i) => {
        const e = evs[PAYLOADS.length + 1 + i];
        assert.equal(e.event, 'message', `text ${i} is not base64`);
        assert.equal(e.data, t, `SSE text ${i} intact`);
      });
      // the raw stream never carries a CR inside an event (lines end with LF only)
      assert.ok(!Buffer.concat(s.raw).includes(0x0d), 'no CR in the event stream');
    } finally {
      s.close();
    }
  });
});

test('SSE exact form (?exact=1): every payload byte for byte, CR payloads as EVENT@base64; one and several channels', T, async () => {
  await withHerald(async (h) => {
    for (const p of PAYLOADS) await publish(h, 'bx', p);
    await publish(h, 'bx', 'cr\r\nnamed', { event: 'blob' });
    for (const t of TEXTS) await publish(h, 'bx', t);
    const n = PAYLOADS.length + 1 + TEXTS.length;
    const all = [...PAYLOADS, Buffer.from('cr\r\nnamed'), ...TEXTS.map((t) => Buffer.from(t))];
    // a default-form subscriber first: the message's default frames are cached before the exact ones
    const d = await openSSE(h, '/sub/bx?last_id=0');
    const single = await openSSE(h, '/sub/bx?last_id=0&exact=1');
    const multi = await openSSE(h, '/sub/bx,other?last_id=0,0&exact=1');
    try {
      const dev = await d.take(n);
      for (const s of [single, multi]) {
        const evs = await s.take(n);
        all.forEach((p, i) => {
          const e = evs[i];
          const name = i === PAYLOADS.length ? 'blob' : 'message';
          const b64 = !isUtf8(p) || p.includes(0x0d);
          assert.equal(e.event, b64 ? `${name}@base64` : name, `payload ${i} event name`);
          const got = b64 ? Buffer.from(e.data, 'base64') : Buffer.from(e.data, 'utf8');
          assert.ok(got.equals(p), `exact payload ${i} byte for byte`);
          // the default-form subscriber still got its own (text) form of the same message
          if (isUtf8(p)) assert.equal(dev[i].data, sseText(p), `default payload ${i}`);
        });
      }
      assert.equal((await single.take(1, 300).catch(() => [])).length, 0, 'nothing twice');
    } finally {
      d.close();
      single.close();
      multi.close();
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
