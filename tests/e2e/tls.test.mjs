// Chromium over HTTPS against herald's own TLS listener (issue 14): the page comes from
// https://localhost:PORT, herald.js connects with wss:// and EventSource over TLS by itself.
// Chromium is told to trust the throwaway server certificate by its public key
// (--ignore-certificate-errors-spki-list), which it honours only for that key: any other
// certificate is still refused, as the last check shows.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { chromium } from 'playwright-core';
import {
  CHROMIUM, newPage, openPage, screenshot, waitFor, SCALE, SUB_PAGE, startSub as start, waitView,
} from './lib.mjs';
import { makePKI, startTLS } from '../lib/tls.mjs';

const T = { timeout: 60000 * SCALE };

let pki;
before(() => {
  pki = makePKI();
});
after(() => pki?.clean());

const spki = (certFile) =>
  crypto.createHash('sha256')
    .update(new crypto.X509Certificate(fs.readFileSync(certFile)).publicKey.export({ type: 'spki', format: 'der' }))
    .digest('base64');

async function pubTLS(h, ch, data) {
  const r = await fetch(`${h.base}/pub/${ch}`, { method: 'POST', body: data });
  assert.equal(r.status, 200);
}

test('Chromium: herald.js over HTTPS uses wss:// and SSE over TLS; an untrusted certificate is refused', T, async () => {
  const h = await startTLS(pki, { 'sse-heartbeat': 0.5 });
  const browser = await chromium.launch({
    executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', `--ignore-certificate-errors-spki-list=${spki(pki.server.cert)}`],
  });
  try {
    for (const transport of ['websocket', 'sse']) {
      const page = await newPage(browser);
      try {
        await openPage(page, h.https, SUB_PAGE);
        assert.equal(await page.evaluate(() => location.protocol), 'https:');
        const ch = `tls-${transport}`;
        await start(page, 's', ch, { transport, lastId: '0' });
        await waitView(page, 's', (v) => v.state === 'open', 'open over TLS');
        await pubTLS(h, ch, 'one');
        await pubTLS(h, ch, 'two');
        const v = await waitView(page, 's', (x) => x.msgs.length >= 2, 'two messages');
        assert.deepEqual(v.msgs.map((m) => m.data), ['one', 'two']);
        assert.equal(v.transport, transport);
        assert.deepEqual(page.errors, []);
      } catch (e) {
        await screenshot(page, `tls-${transport}`).catch(() => {});
        throw e;
      } finally {
        await page.context().close();
      }
    }
    // the handshakes really were TLS, on the https listener
    const m = await (await fetch(`${h.base}/metrics`)).text();
    assert.ok(Number(/herald_tls_handshakes_total\{listener="https",result="ok"\} (\d+)/.exec(m)[1]) >= 3);

    // a certificate whose key Chromium was not told about is refused (the flag is no blanket)
    const other = await startTLS(pki, { 'tls-cert': pki.sni.cert, 'tls-key': pki.sni.key });
    try {
      const page = await newPage(browser);
      await assert.rejects(page.goto(`${other.https}/healthz`), /ERR_CERT/);
      await page.context().close();
      await waitFor(async () => /herald_tls_handshake_failures_total\{listener="https",reason="refused"\} [1-9]/.test(
        await (await fetch(`${other.base}/metrics`)).text()), 5000 * SCALE, 'the refusal counted');
    } finally {
      await other.stop();
    }
  } finally {
    await browser.close();
    await h.stop();
  }
});
