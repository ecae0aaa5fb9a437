// tests/e2e/demo.test.mjs - the notification-center demo served at / (web/index.html, web/demo.js),
// driven in headless Chromium: every transport chosen through the page's switch delivers a
// message published by a backend (HTTP POST from the test) exactly once, the badge counts it
// and turns red, "mark all read" clears it, the form publishes, message data is shown as text,
// and the live server figures come from /metrics. Leaves a screenshot in build/e2e/demo.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withHerald, withBrowser, newPage, publish, screenshot, SCALE } from './lib.mjs';

const CHANNEL = 'e2e-demo';
const T = 10000 * SCALE; // bound on any single wait in the page

/* What the page shows, read in one go. */
function inbox(page) {
  return page.evaluate(() => {
    const badge = document.querySelector('#badge');
    return {
      badge: badge.textContent,
      red: badge.classList.contains('unread'),
      items: [...document.querySelectorAll('#messages li[data-id]')].map((li) => ({
        id: li.dataset.id,
        event: li.dataset.event,
        text: li.querySelector('.text').textContent,
        unread: li.classList.contains('unread'),
      })),
      unreadItems: document.querySelectorAll('#messages li.unread').length,
      state: document.querySelector('#state').textContent,
      dupes: document.querySelector('#stat-dupes').textContent,
      received: window.heraldDemo.received,
      transport: window.heraldDemo.sub && window.heraldDemo.sub.transport,
    };
  });
}

/* Waits until the list holds a message whose text is `text`; returns the inbox then. */
async function waitForText(page, text, what) {
  await page
    .waitForFunction(
      (t) => [...document.querySelectorAll('#messages li[data-id] .text')].some((n) => n.textContent === t),
      text,
      { timeout: T, polling: 20 },
    )
    .catch((e) => {
      throw new Error(`${what}: message ${JSON.stringify(text)} did not appear: ${e.message}`);
    });
  return inbox(page);
}

/* Figures of the "Live server" card: connections by transport as the page parsed them. */
function figures(page) {
  return page.evaluate(() => {
    const conns = {};
    document.querySelectorAll('#legend [data-conn]').forEach((n) => {
      conns[n.dataset.conn] = Number(n.textContent);
    });
    return { conns, subscribers: Number(document.querySelector('#fig-connections').textContent) };
  });
}

test('demo page: transports, badge, mark read, publish form, escaping, live figures', async () => {
  const started = Date.now();
  await withHerald(async (h) => {
    await withBrowser(async (browser) => {
      const page = await newPage(browser, { viewport: { width: 1280, height: 900 } });
      const res = await page.goto(`${h.base}/?channel=${CHANNEL}`);
      assert.equal(res.status(), 200);
      await page.waitForFunction(() => window.heraldDemo && window.herald, null, { timeout: T });
      assert.equal(await page.textContent('#badge'), '0');
      assert.equal(await page.$eval('#badge', (b) => b.classList.contains('unread')), false);

      const sent = []; // {id, text} in publish order
      // each transport through the switch, then auto (which picks WebSocket in Chromium)
      for (const choice of ['poll', 'longpoll', 'iframe', 'sse', 'websocket', 'auto']) {
        const transport = choice === 'auto' ? 'websocket' : choice;
        await page.click(`#transport [data-transport="${choice}"]`);
        assert.equal(await page.getAttribute(`#transport [data-transport="${choice}"]`, 'aria-checked'), 'true');
        assert.equal(await page.locator('#transport [aria-checked="true"]').count(), 1);
        await page.waitForFunction(
          (t) => window.heraldDemo.sub && window.heraldDemo.sub.transport === t && document.querySelector('#state').textContent === 'open',
          transport,
          { timeout: T },
        );
        assert.equal(await page.getAttribute('#active-transport', 'data-transport'), transport);

        const before = await inbox(page);
        const text = `hello over ${choice} ${Date.now()}`;
        const r = await publish(h, CHANNEL, text, { event: 'e2e' });
        sent.push({ id: r.id, text });
        const after = await waitForText(page, text, transport);
        const mine = after.items.filter((i) => i.text === text);
        assert.equal(mine.length, 1, `${choice}: the message is listed exactly once`);
        assert.equal(mine[0].id, r.id, `${choice}: listed with the id the server gave it`);
        assert.equal(mine[0].event, 'e2e');
        assert.equal(mine[0].unread, true, `${choice}: a new message is styled unread`);
        assert.equal(after.items[0].text, text, `${choice}: newest first`);
        assert.equal(Number(after.badge), Number(before.badge) + 1, `${choice}: the badge counts the message`);
        assert.equal(after.red, true, `${choice}: the badge is red`);
        assert.equal(after.transport, transport, `${choice}: still on the chosen transport`);
        // every message so far, once each, in order (switching resumed without loss or repeats)
        assert.deepEqual(
          after.items.map((i) => i.id),
          sent.map((s) => s.id).reverse(),
          `${choice}: list after switching`,
        );
        assert.equal(after.received, sent.length, `${choice}: nothing delivered twice (received count)`);
        assert.equal(after.dupes, '0');

        if (transport === 'iframe' || transport === 'sse') {
          // a streaming subscriber is a connection of its own: the live figures show it
          const f = await waitForFigures(page, (x) => x.conns[transport] >= 1 && x.subscribers >= 1);
          assert.ok(f.conns[transport] >= 1, `${choice}: figures show the connection`);
        }
        if (choice === 'websocket') {
          const f = await waitForFigures(page, (x) => (x.conns.websocket || 0) + (x.conns.ws_json || 0) >= 1);
          assert.ok(f.subscribers >= 1);
        }
      }

      // a late duplicate (e.g. from a transport that was closed) would still show up: wait a beat
      await page.waitForTimeout(300);
      const settled = await inbox(page);
      assert.equal(settled.items.length, sent.length);
      assert.equal(settled.received, sent.length);
      assert.equal(settled.badge, String(sent.length));

      // the chart draws the connections it was told about (SSE's colour is on the canvas)
      const ssePixels = await page.$eval('#chart-connections', (c) => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) {
          if (d[i + 3] > 200 && Math.abs(d[i] - 16) < 40 && Math.abs(d[i + 1] - 185) < 40 && Math.abs(d[i + 2] - 129) < 40) n++;
        }
        return n;
      });
      assert.ok(ssePixels > 10, `the connections chart shows the SSE series (${ssePixels} pixels)`);

      // mark all read: badge back to 0, grey, no unread rows
      await page.click('#mark-read');
      let s = await inbox(page);
      assert.equal(s.badge, '0');
      assert.equal(s.red, false);
      assert.equal(s.unreadItems, 0);

      // the publish form publishes like a backend (POST /pub/{channel}), and shows the curl
      await page.fill('#publish-event', 'order');
      await page.fill('#publish-text', 'Order #1042 has shipped');
      const curl = await page.textContent('#curl');
      assert.equal(curl, `curl -d 'Order #1042 has shipped' '${h.base}/pub/${CHANNEL}?event=order'`);
      await page.click('#publish-form button[type=submit]');
      s = await waitForText(page, 'Order #1042 has shipped', 'publish form');
      assert.equal(s.items[0].event, 'order');
      assert.equal(s.items.filter((i) => i.text === 'Order #1042 has shipped').length, 1);
      assert.equal(s.badge, '1');
      assert.equal(s.red, true);
      await page.waitForFunction(() => /Published #\d+/.test(document.querySelector('#publish-result').textContent), null, { timeout: T });
      assert.equal(await page.inputValue('#publish-text'), '', 'the form clears after publishing');

      // hostile payloads are text, never markup
      const hostile = '<img src=x onerror=alert(1)><script>alert(2)</script>';
      await publish(h, CHANNEL, hostile, { event: 'alert' });
      s = await waitForText(page, hostile, 'hostile payload');
      assert.equal(await page.locator('#messages img, #messages script').count(), 0, 'no element made from message data');
      assert.deepEqual(page.dialogs, [], 'no script from message data ran');

      // a few more for the picture
      await publish(h, CHANNEL, 'Ada commented on your pull request #88', { event: 'comment' });
      await publish(h, CHANNEL, 'Welcome to herald! Messages pushed to this channel show up here instantly.');
      await waitForText(page, 'Welcome to herald! Messages pushed to this channel show up here instantly.', 'last');
      s = await inbox(page);
      assert.equal(s.badge, '4');
      assert.equal(s.dupes, '0');
      await page.waitForTimeout(1100); // one more /metrics sample in the chart
      const file = await screenshot(page, 'demo');
      console.log(`# screenshot: ${file}`);

      // leave the page, miss a message, come back: the list, the badge and the cursor were kept
      // in localStorage, and the page resumes after the last id it saw (nothing replayed twice)
      const kept = await inbox(page);
      await page.goto('about:blank');
      const away = await publish(h, CHANNEL, 'Published while you were away', { event: 'comment' });
      await page.goto(`${h.base}/?channel=${CHANNEL}`);
      s = await waitForText(page, 'Published while you were away', 'resume after reload');
      assert.deepEqual(s.items.map((i) => i.id), [away.id, ...kept.items.map((i) => i.id)]);
      assert.equal(s.badge, String(Number(kept.badge) + 1));
      assert.equal(s.received, 1, 'only the missed message was delivered after the reload');
      assert.deepEqual(page.errors, [], 'no page errors');
    });
  });
  console.log(`# demo test took ${Date.now() - started} ms`);
});

async function waitForFigures(page, cond) {
  const deadline = Date.now() + T;
  let f;
  for (;;) {
    f = await figures(page);
    if (cond(f)) return f;
    if (Date.now() > deadline) throw new Error(`figures never matched: ${JSON.stringify(f)}`);
    await page.waitForTimeout(100);
  }
}
