// tests/e2e/demo-session.test.mjs - the demo at / as a signed-in user's notification center, in
// headless Chromium against a herald with access control: two pages (own browser contexts, so
// two devices) signed in as the same user (#token=... in the address, then the sign-in form); a
// backend publish to user/42 with its API key turns both badges red with the same count and
// lists the notification unread on both; clicking it on one device clears the badge on the other
// (the server's read state), "Mark all read" likewise; an admin disconnect with reconnect:false
// ends the session on the page (no reconnect); signing out returns to the anonymous page; on a
// server without access control the sign-in form says why there is no user. Leaves a screenshot
// in build/e2e/demo-session.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withHerald, withBrowser, newPage, publish, request, run, sleep, screenshot, HERALD_BIN, SCALE } from './lib.mjs';

const SECRET = 'herald-e2e-hmac-secret-0123456789abcdef';
const API_KEY = 'e2e-backend-key-0123456789';
const FLAGS = { 'token-hmac-secret': SECRET, 'api-keys': API_KEY, 'sse-heartbeat': 0.5 };
const T = 10000 * SCALE; // bound on any single wait in the page
const ADMIN = { Authorization: `Bearer ${API_KEY}` };

async function mint(sub) {
  const r = await run(HERALD_BIN, ['token', '--token-hmac-secret', SECRET, '--sub', sub, '--ttl', '1h'], { timeout: 10000 * SCALE });
  const tok = r.stdout.toString().trim();
  if (r.code !== 0 || tok.split('.').length !== 3) throw new Error(`herald token failed (${r.code}): ${r.stderr}`);
  return tok;
}

/* What a device shows, read in one go. */
function device(page) {
  return page.evaluate(() => {
    if (!window.heraldDemo) return { loading: true };
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
      channels: [...document.querySelectorAll('#unread-channels [data-channel]')].map((n) => n.textContent),
      state: document.querySelector('#state').textContent,
      user: document.querySelector('#user-name').textContent,
      channel: document.querySelector('#channel-name').textContent,
      signedIn: window.heraldDemo.signedIn,
      transport: window.heraldDemo.sub && window.heraldDemo.sub.transport,
      dupes: document.querySelector('#stat-dupes').textContent,
      error: document.querySelector('#error').hidden ? null : document.querySelector('#error').textContent,
    };
  });
}

/* Waits until pred(device) holds; the failure names what and shows the last view. */
async function waitDevice(page, pred, what) {
  const deadline = Date.now() + T;
  let d;
  for (;;) {
    d = await device(page);
    if (pred(d)) return d;
    if (Date.now() > deadline) throw new Error(`${what}: not reached; last: ${JSON.stringify(d)}`);
    await sleep(25);
  }
}

const pub = (h, ch, data, event) => publish(h, ch, data, { headers: ADMIN, event });

test('two devices of one user: a backend notification turns both badges red; reading on one clears the other', async () => {
  await withHerald(FLAGS, async (h) => {
    const tok = await mint('42');
    await withBrowser(async (browser) => {
      const phone = await newPage(browser, { viewport: { width: 1280, height: 900 } });
      const laptop = await newPage(browser, { viewport: { width: 1280, height: 900 } });
      // device 1 signs in with the token in the address (auto: WebSocket); device 2 uses SSE
      // and signs in through the form
      await phone.goto(`${h.base}/#token=${tok}`);
      await laptop.goto(`${h.base}/?transport=sse`);
      assert.equal((await waitDevice(laptop, (x) => !x.loading, 'loaded')).signedIn, false);
      await laptop.click('#sign-in');
      await laptop.fill('#signin-token', tok);
      await Promise.all([laptop.waitForEvent('load'), laptop.click('#signin-form button[type=submit]')]);
      const devices = [phone, laptop];
      for (const p of devices) {
        const d = await waitDevice(p, (x) => x.signedIn && x.state === 'open' && x.channel === 'user/42', 'signed in and open');
        assert.equal(d.user, '42');
        assert.equal(d.badge, '0');
        assert.equal(d.red, false);
      }
      assert.equal((await device(phone)).transport, 'websocket');
      assert.equal((await device(laptop)).transport, 'sse');
      assert.equal(await phone.evaluate(() => location.hash), '', 'the token left the address bar');

      // the backend notifies user 42: both badges turn red with the same count
      const a = await pub(h, 'user/42', 'Ada commented on your pull request', 'comment');
      const b = await pub(h, 'user/42', 'Order #1042 has shipped', 'order');
      for (const p of devices) {
        const d = await waitDevice(p, (x) => x.badge === '2' && x.items.length === 2, 'badge 2 on both devices');
        assert.equal(d.red, true);
        assert.deepEqual(d.items.map((i) => [i.id, i.text, i.unread]), [
          [b.id, 'Order #1042 has shipped', true], [a.id, 'Ada commented on your pull request', true],
        ]);
        assert.deepEqual(d.channels, ['#user/42 2']);
      }
      await screenshot(phone, 'demo-session');

      // reading the older one on the phone: both devices show 1, the newer one still unread
      await phone.click(`#messages li[data-id="${a.id}"]`);
      for (const p of devices) {
        const d = await waitDevice(p, (x) => x.badge === '1', 'badge 1 after reading #1');
        assert.deepEqual(d.items.map((i) => i.unread), [true, false]);
      }
      // a click on a read one does nothing (the cursor never moves back)
      await phone.click(`#messages li[data-id="${a.id}"]`);
      // reading the newest on the laptop clears the phone's badge
      await laptop.click(`#messages li[data-id="${b.id}"]`);
      for (const p of devices) {
        const d = await waitDevice(p, (x) => x.badge === '0', 'badge cleared on both devices');
        assert.equal(d.red, false);
        assert.deepEqual(d.items.map((i) => i.unread), [false, false]);
      }
      const u = (await request(h, 'GET', '/unread?user=42', { headers: ADMIN })).json();
      assert.equal(u.total, 0, JSON.stringify(u));
      assert.equal(u.channels['user/42'], 0);

      // three more; "Mark all read" on the phone clears both
      for (let i = 1; i <= 3; i++) await pub(h, 'user/42', `Build #${i} passed`, 'ci');
      for (const p of devices) await waitDevice(p, (x) => x.badge === '3' && x.red && x.items.length === 5, 'badge 3');
      await phone.click('#mark-read');
      for (const p of devices) await waitDevice(p, (x) => x.badge === '0' && !x.red && x.items.every((i) => !i.unread), 'all read');

      // a reload lists the feed again from the server, read state included
      await pub(h, 'user/42', 'Published while you were away', 'comment');
      await laptop.reload();
      let d = await waitDevice(laptop, (x) => x.state === 'open' && x.items.length === 6 && x.badge === '1', 'reloaded');
      assert.deepEqual(d.items.map((i) => i.unread), [true, false, false, false, false, false]);
      assert.equal(d.dupes, '0');

      // the form publishes like a backend: with the API key typed in
      await laptop.fill('#publish-key', API_KEY);
      await laptop.fill('#publish-text', 'From the form');
      assert.match(await laptop.textContent('#curl'), /^curl -H "Authorization: Bearer \$API_KEY" -d 'From the form' '.*\/pub\/user\/42'$/);
      await laptop.click('#publish-form button[type=submit]');
      for (const p of devices) await waitDevice(p, (x) => x.badge === '2' && x.items[0].text === 'From the form', 'published from the form');

      // an admin ends the user's connections for good: the page says so and does not reconnect
      const bye = await request(h, 'POST', '/users/42/disconnect', {
        headers: { ...ADMIN, 'Content-Type': 'application/json' },
        body: JSON.stringify({ reason: 'password changed', reconnect: false }),
      });
      assert.equal(bye.status, 200, bye.text);
      for (const p of devices) {
        d = await waitDevice(p, (x) => x.state === 'closed' && x.error, 'ended by the server');
        assert.match(d.error, /password changed/);
      }
      await sleep(1000 * SCALE);
      const st = await request(h, 'GET', '/users/42', { headers: ADMIN });
      assert.equal(st.json().online, false, `nobody reconnected: ${st.text}`);

      // signing out: back to the anonymous page
      await Promise.all([phone.waitForEvent('load'), phone.click('#sign-out')]);
      d = await waitDevice(phone, (x) => !x.loading, 'loaded');
      assert.equal(d.signedIn, false);
      assert.equal(await phone.isVisible('#sign-in'), true);
      for (const p of devices) assert.deepEqual(p.errors.filter((e) => !/Failed to load resource/.test(e)), [], 'no page errors');
      assert.deepEqual(phone.dialogs, []);
    });
  });
});

test('without access control the demo works as before, and the sign-in form says why there is no user', async () => {
  await withHerald({}, async (h) => {
    await withBrowser(async (browser) => {
      const page = await newPage(browser);
      await page.goto(`${h.base}/?channel=open-demo`);
      await waitDevice(page, (x) => x.state === 'open' && !x.signedIn, 'anonymous and open');
      await publish(h, 'open-demo', 'hello');
      await waitDevice(page, (x) => x.badge === '1' && x.items.length === 1, 'counted in the browser');
      await page.click('#sign-in');
      await page.fill('#signin-token', 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2ln');
      await page.click('#signin-form button[type=submit]');
      await page.waitForFunction(() => /without access control/.test(document.querySelector('#signin-result').textContent), null, { timeout: T });
      assert.equal((await device(page)).signedIn, false);
      assert.deepEqual(page.errors.filter((e) => !/Failed to load resource/.test(e)), []);
    });
  });
});
