// A plain page with Chromium's own `new EventSource(...)` and an onmessage handler (no
// herald.js): payloads with line breaks arrive as the event-stream format says (WHATWG HTML,
// "Server-sent events": a line ends at LF, CR or CRLF and data lines join with LF, so CR and
// CRLF read as LF; a trailing line break, empty lines, a leading space, "data:"-looking text and
// NUL stay), a payload that is not UTF-8 arrives base64-encoded under "message@base64", and the
// browser's own reconnection resumes with Last-Event-ID across such messages, each exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  withHerald, withBrowser, newPage, openPage, screenshot, publish, waitFor, waitSubscribed, tcpProxy, SCALE,
} from './lib.mjs';

const T = { timeout: 60000 * SCALE };

/* [published, what onmessage sees] */
const LINES = [
  ['a\nb', 'a\nb'],
  ['cr\rcr', 'cr\ncr'],
  ['crlf\r\ncrlf', 'crlf\ncrlf'],
  ['trailing newline\n', 'trailing newline\n'],
  ['empty\n\nline', 'empty\n\nline'],
  ['data: looks like a field\nid: 99\nevent: x\n\nretry: 1', 'data: looks like a field\nid: 99\nevent: x\n\nretry: 1'],
  [' leading space', ' leading space'],
  ['\r', '\n'],
  ['\r\n\r\n', '\n\n'],
  ['', ''],
  ['nul\0inside', 'nul\0inside'],
  ['lone cr at the end\r', 'lone cr at the end\n'],
  ['\ufeffBOM first', '\ufeffBOM first'],
  ['ünïcødé ✓ 😀\r\n', 'ünïcødé ✓ 😀\n'],
];
const BIN = Buffer.from([0xff, 0x00, 0x0d, 0x0a, 0xc3]);

const PAGE = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>EventSource</title></head><body>
<script>
window.got = [];
window.opens = 0;
const es = new EventSource('/sub/plain');
es.onopen = () => window.opens++;
es.onmessage = (e) => window.got.push({ data: e.data, id: e.lastEventId });
es.addEventListener('message@base64', (e) => window.got.push({ b64: e.data, id: e.lastEventId }));
window.es = es;
</script></body></html>`;

test('Chromium EventSource: multi-line payloads as the format says, binary as message@base64, resume across them', T, async () => {
  await withHerald({ 'sse-retry': 100 }, async (h) => {
    const proxy = await tcpProxy(h.port);
    await withBrowser(async (browser) => {
      const page = await newPage(browser);
      try {
        await openPage(page, `http://127.0.0.1:${proxy.port}`, PAGE);
        await waitSubscribed(h, 'plain', 'sse');
        const got = () => page.evaluate(() => window.got);
        const half = 7;
        for (const [p] of LINES.slice(0, half)) await publish(h, 'plain', p);
        await waitFor(async () => (await got()).length >= half, 8000 * SCALE, 'first half');
        // cut the stream; the rest (and the binary one) is published while the browser is away
        proxy.down();
        proxy.cut();
        await waitFor(async () => (await fetch(h.url('/channels/plain')).then((x) => x.json())).subscribers === 0,
          5000 * SCALE, 'server notices the cut');
        for (const [p] of LINES.slice(half)) await publish(h, 'plain', p);
        await publish(h, 'plain', BIN);
        proxy.up();
        await waitFor(async () => (await got()).length >= LINES.length + 1, 15000 * SCALE, 'the rest after the reconnect');
        await publish(h, 'plain', 'live\r\nagain');
        await waitFor(async () => (await got()).length >= LINES.length + 2, 8000 * SCALE, 'a live one');
        const g = await got();
        assert.deepEqual(g.slice(0, LINES.length), LINES.map(([, want], i) => ({ data: want, id: String(i + 1) })));
        assert.equal(g[LINES.length].id, String(LINES.length + 1));
        assert.ok(Buffer.from(g[LINES.length].b64, 'base64').equals(BIN), 'binary payload byte for byte');
        assert.deepEqual(g[LINES.length + 1], { data: 'live\nagain', id: String(LINES.length + 2) });
        assert.equal(g.length, LINES.length + 2, 'each message exactly once');
        assert.ok(await page.evaluate(() => window.opens) >= 2, 'the browser reconnected by itself');
        assert.deepEqual(page.errors.filter((e) => !/net::ERR_/.test(e)), [], 'no page errors');
      } catch (e) {
        await screenshot(page, 'eventsource-plain').catch(() => {});
        throw e;
      } finally {
        await page.evaluate(() => window.es.close()).catch(() => {});
      }
    });
    await proxy.close();
  });
});
