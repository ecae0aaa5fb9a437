// tests/e2e/lib.mjs - helpers for herald's browser tests (node:test + headless Chromium).
//
// Re-exports everything from tests/lib/herald.mjs (withHerald, startHerald, publish, waitFor,
// request, ...) and adds: a Chromium from playwright-core driving Debian's /usr/bin/chromium,
// test pages served on herald's own origin, a same-port server restart and screenshots under
// build/e2e/. Every wait is bounded, as in the integration helpers.
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { chromium } from 'playwright-core';
import { HERALD_BIN, Herald, ROOT, SCALE, request, sleep, waitFor } from '../lib/herald.mjs';

export * from '../lib/herald.mjs';

export const CHROMIUM = process.env.HERALD_CHROMIUM || '/usr/bin/chromium';
export const ARTIFACTS = path.join(ROOT, 'build/e2e');

/* Launches headless Chromium (--no-sandbox: the tests run as root). */
export function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
}

/* Runs fn(browser) and always closes the browser. */
export async function withBrowser(fn) {
  const browser = await launchBrowser();
  try {
    return await fn(browser);
  } finally {
    await browser.close();
  }
}

/* A page in its own context (own cookies and localStorage). page.errors collects uncaught
 * page errors and console errors, page.dialogs the messages of alert/confirm/prompt (which are
 * dismissed), so a test can assert that nothing went wrong and no script ran. */
export async function newPage(browser, contextOptions = {}) {
  const context = await browser.newContext(contextOptions);
  const page = await context.newPage();
  page.errors = [];
  page.dialogs = [];
  page.on('pageerror', (e) => page.errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    // herald has no favicon: Chromium's request for it is not the page's error
    if (m.type() === 'error' && !/\/favicon\.ico$/.test(m.location().url)) page.errors.push(`console: ${m.text()}`);
  });
  page.on('dialog', (d) => {
    page.dialogs.push(`${d.type()}: ${d.message()}`);
    d.dismiss().catch(() => {});
  });
  return page;
}

/* Shows `html` as a page of herald's origin: navigates to base + '/healthz' (a real page load
 * from herald), then replaces the document with html, so `<script src="/herald.js">` loads the
 * embedded client and every request is same-origin. Calling it again is a "reload" (same origin,
 * same localStorage). A document served by page.route().fulfill() would not do: Chromium's Local
 * Network Access checks count it as public and block its WebSockets to 127.0.0.1. */
export async function openPage(page, base, html) {
  await page.goto(`${base}/healthz`);
  await page.setContent(html);
}

/* Saves a full-page screenshot to build/e2e/NAME.png (for a human looking at a failure). */
export async function screenshot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name.replace(/[^A-Za-z0-9_.-]+/g, '_')}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/* Stops h (SIGTERM, must exit 0) and starts a new herald with the same arguments on the same
 * port and the same data directory: a server restart as clients see it (with the memory store
 * the history is gone; with LMDB it is still there). Returns the new Herald, which the caller
 * stops (stopping the old one again is a no-op). */
export async function restartHerald(h) {
  await h.stop({ keepData: true });
  const deadline = Date.now() + 10000 * SCALE;
  for (;;) {
    const proc = spawn(HERALD_BIN, h.args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: h.dataDir });
    const n = new Herald(proc, h.port, h.dataDir, h.args);
    n.mqttPort = h.mqttPort;
    while (Date.now() < deadline && !n.exited) {
      try {
        if ((await request(n, 'GET', '/healthz', { timeout: 1000 })).status === 200) return n;
      } catch {}
      await sleep(15);
    }
    if (!n.exited) {
      proc.kill('SIGKILL');
      await n.exitPromise;
      throw new Error(`restarted herald did not answer /healthz in time; output:\n${n.tail()}`);
    }
    // the port may still be held for a moment: try again until the deadline
    if (Date.now() >= deadline) throw new Error(`restarted herald exited at startup: ${n.tail()}`);
    await sleep(50);
  }
}

/* The recording page of the herald.js tests: loads /herald.js as a classic script;
 * T.start(name, channel, options, tokenSpec) subscribes and records the messages, every event
 * (with the time it came) and the states; with tokenSpec it subscribes with a token function
 * that asks node for a new token each call (window.mintToken, exposed by the test; the calls
 * listed in tokenSpec.empty, 1-based, give '') and records every token it returned.
 * T.view(name) returns what was recorded, T.close(name) ends the subscription. */
export const SUB_PAGE = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>herald.js e2e</title></head><body>
<script src="/herald.js"></script>
<script>
window.T = {
  subs: {},
  start(name, channel, options, tokenSpec) {
    const rec = { msgs: [], events: [], states: [], tokens: [], calls: 0 };
    const o = Object.assign({}, options);
    if (tokenSpec) {
      o.token = async () => {
        if ((tokenSpec.empty || []).includes(++rec.calls)) return '';
        const t = await window.mintToken(tokenSpec);
        rec.tokens.push(t);
        return t;
      };
    }
    const sub = herald.subscribe('', channel, (m) => rec.msgs.push(m), o);
    for (const ev of ['connecting', 'open', 'fallback', 'gap', 'error', 'closed', 'auth', 'expired']) {
      sub.on(ev, (info) => rec.events.push({ ev, info, at: Date.now() }));
    }
    sub.on('state', (s) => rec.states.push(s));
    this.subs[name] = { sub, rec };
  },
  view(name) {
    const { sub, rec } = this.subs[name];
    return { state: sub.state, transport: sub.transport, lastId: sub.lastId, ...rec };
  },
  close(name) {
    this.subs[name].sub.close();
  },
};
</script></body></html>`;

/* Drive SUB_PAGE from node. */
export const startSub = (page, name, channel, options, tokenSpec) =>
  page.evaluate(([n, c, o, t]) => T.start(n, c, o, t), [name, channel, options, tokenSpec]);
export const viewSub = (page, name) => page.evaluate((n) => T.view(n), name);

/* Waits until pred(view) holds (bounded); the failure message shows the last view (tokens
 * counted, not shown). */
export async function waitView(page, name, pred, what, ms = 8000 * SCALE) {
  let last;
  try {
    return await waitFor(async () => {
      last = await viewSub(page, name);
      return pred(last) && last;
    }, ms, `${name}: ${what}`, 25);
  } catch (e) {
    e.message += `\nlast view: ${JSON.stringify({ ...last, tokens: last?.tokens?.length }).slice(0, 3000)}`;
    throw e;
  }
}
