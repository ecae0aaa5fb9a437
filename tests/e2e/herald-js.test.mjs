// herald.js in headless Chromium against a real herald: every transport delivers in order and
// exactly once, resumes after a dropped connection and after a server restart (with ids that
// survive it, and with ids that start again at 1), closes cleanly, reports history gaps and
// drops what the server sends twice; `auto` falls back when WebSocket is refused or silent and
// when event streams are blocked; the iframe stream carries script-like payloads as plain data;
// the client loads as a classic script and as an ES module; the unread counter persists across
// reloads.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  withHerald, startHerald, restartHerald, publish, request, waitFor, sleep, tcpProxy,
  launchBrowser, newPage, openPage, screenshot, SCALE,
  SUB_PAGE, startSub as start, viewSub as view, waitView,
} from './lib.mjs';

const T = { timeout: 60000 * SCALE };
const TRANSPORTS = ['websocket', 'sse', 'iframe', 'longpoll', 'poll'];
/* Fast heartbeats, reconnects and polls so that the whole file stays short: a stream cut off
 * without a close (the iframe's document then just stays loading) is noticed by its silence. */
const FLAGS = { 'sse-heartbeat': 0.2, 'iframe-keepalive': 0.2 };
const FAST = { backoff: { min: 100, max: 400 }, pollInterval: 100, connectTimeout: 2000, idleTimeout: 1000 };
/* how long to keep watching for a duplicate after the expected messages arrived */
const SETTLE = 300 * SCALE;



let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});



const waitOpen = (page, name) => waitView(page, name, (v) => v.state === 'open', 'state open');
const waitCount = (page, name, n) => waitView(page, name, (v) => v.msgs.length >= n, `${n} messages`);
const opens = (v) => v.events.filter((e) => e.ev === 'open').length;

/* The (id, data) pairs received, for exact comparisons. */
const pairs = (v) => v.msgs.map((m) => [m.id, m.data]);

/* No uncaught exception, console error or dialog; with allowNetwork, Chromium's own reports of
 * failed requests (expected while a server restarts) are tolerated. */
function assertNoPageErrors(page, { allowNetwork = false } = {}) {
  const network = /^console: (Failed to load resource: net::|WebSocket connection to .* failed)/;
  assert.deepEqual(page.errors.filter((e) => !(allowNetwork && network.test(e))), [], 'no page errors');
  assert.deepEqual(page.dialogs, [], 'no dialogs');
}

/* Runs fn(page) on a new page showing html (after setup(page), e.g. routes); on failure saves a
 * screenshot under build/e2e/ before rethrowing. */
async function withPage(base, name, fn, { html = SUB_PAGE, setup } = {}) {
  const page = await newPage(browser);
  if (setup) await setup(page);
  await openPage(page, base, html);
  try {
    await fn(page);
  } catch (e) {
    await screenshot(page, name).catch(() => {});
    throw e;
  } finally {
    await page.context().close();
  }
}

test('every transport delivers in order and exactly once, and close() ends the subscription', T, async (t) => {
  await withHerald(FLAGS, async (h) => {
    for (const transport of TRANSPORTS) {
      await t.test(transport, async () => {
        const ch = `basic-${transport}`;
        await withPage(h.base, `basic-${transport}`, async (page) => {
          await start(page, 's', ch, { transport, ...FAST });
          const v0 = await waitOpen(page, 's');
          assert.equal(v0.transport, transport);
          await publish(h, ch, 'one');
          await publish(h, ch, 'line 1\nline 2');
          await publish(h, ch, 'ünïcødé ✓ 😀');
          await publish(h, ch, 'named', { event: 'alert' });
          await publish(h, ch, Buffer.from([0, 1, 2, 255]));
          await publish(h, ch, 'cr\r\ncrlf\rnul\0end\r'); /* byte for byte on every transport (SSE: exact form) */
          await waitCount(page, 's', 6);
          await sleep(SETTLE);
          const v = await view(page, 's');
          assert.deepEqual(v.msgs, [
            { id: '1', channel: ch, event: 'message', data: 'one' },
            { id: '2', channel: ch, event: 'message', data: 'line 1\nline 2' },
            { id: '3', channel: ch, event: 'message', data: 'ünïcødé ✓ 😀' },
            { id: '4', channel: ch, event: 'alert', data: 'named' },
            { id: '5', channel: ch, event: 'message', data: 'AAEC/w==', encoding: 'base64' },
            { id: '6', channel: ch, event: 'message', data: 'cr\r\ncrlf\rnul\0end\r' },
          ]);
          assert.equal(v.lastId, '6');
          assert.equal(opens(v), 1, 'opened once, never dropped');

          await page.evaluate(() => T.close('s'));
          await waitFor(async () => (await request(h, 'GET', `/channels/${ch}`)).json().subscribers === 0, 5000 * SCALE, 'no subscriber left after close()');
          await publish(h, ch, 'after close');
          await sleep(SETTLE);
          const vc = await view(page, 's');
          assert.equal(vc.state, 'closed');
          assert.deepEqual(vc.states, ['open', 'closed'], 'state changes');
          assert.equal(vc.msgs.length, 6, 'nothing delivered after close()');
          assert.ok(vc.events.some((e) => e.ev === 'closed'));
          assertNoPageErrors(page);
        });
      });
    }
  });
});

test('a dropped connection resumes after the last id: nothing lost, nothing twice', T, async (t) => {
  await withHerald(FLAGS, async (h) => {
    for (const transport of TRANSPORTS) {
      await t.test(transport, async () => {
        const ch = `drop-${transport}`;
        // the page talks to herald through a proxy that can cut every connection
        const proxy = await tcpProxy(h.port);
        try {
          await withPage(`http://127.0.0.1:${proxy.port}`, `drop-${transport}`, async (page) => {
            await start(page, 's', ch, { transport, ...FAST });
            await waitOpen(page, 's');
            for (let i = 1; i <= 3; i++) await publish(h, ch, `m${i}`);
            await waitCount(page, 's', 3);
            proxy.down();
            proxy.cut();
            await waitView(page, 's', (v) => v.state === 'connecting', 'the drop noticed');
            for (let i = 4; i <= 6; i++) await publish(h, ch, `m${i}`); // while it is cut off
            proxy.up();
            await waitView(page, 's', (v) => v.state === 'open' && opens(v) >= 2, 'reopened');
            for (let i = 7; i <= 9; i++) await publish(h, ch, `m${i}`);
            await waitCount(page, 's', 9);
            await sleep(SETTLE);
            const v = await view(page, 's');
            assert.deepEqual(pairs(v), Array.from({ length: 9 }, (_, i) => [String(i + 1), `m${i + 1}`]));
            assert.equal(v.transport, transport);
            assert.deepEqual(v.states, ['open', 'connecting', 'open'], 'state changes');
            assert.ok(!v.events.some((e) => e.ev === 'gap'), 'no gap: history covered the drop');
          });
        } finally {
          await proxy.close();
        }
      });
    }
  });
});

test('server restart on the same port: every message arrives exactly once, whether ids survive or not', T, async (t) => {
  // store = memory: ids start again at 1 after the restart; store = lmdb: they carry on
  for (const store of ['memory', 'lmdb']) {
    await t.test(`store = ${store}`, async () => {
      let h = await startHerald({ ...FLAGS, store });
      try {
        await withPage(h.base, `restart-${store}`, async (page) => {
          const ch = 'restart';
          for (const transport of TRANSPORTS) await start(page, transport, ch, { transport, ...FAST });
          for (const transport of TRANSPORTS) await waitOpen(page, transport);
          for (let i = 1; i <= 3; i++) await publish(h, ch, `before ${i}`);
          for (const transport of TRANSPORTS) await waitCount(page, transport, 3);

          h = await restartHerald(h);
          if (store === 'memory') {
            // each client comes back (a short poll may not even notice the restart) with
            // last_id=3, which the new server has never reached: a gap with requested 3 >=
            // first_available 1, which resets the client's cursor to 0. Publishing before that
            // would be lost: a cursor the new ids have passed looks like an ordinary resume.
            for (const transport of TRANSPORTS) {
              await waitView(page, transport, (v) => v.state === 'open' && v.events.some((e) => e.ev === 'gap'), 'back after the restart');
            }
          }
          for (let i = 1; i <= 4; i++) await publish(h, ch, `after ${i}`);
          for (const transport of TRANSPORTS) await waitCount(page, transport, 7);
          await sleep(SETTLE);
          const ids = store === 'memory' ? ['1', '2', '3', '1', '2', '3', '4'] : ['1', '2', '3', '4', '5', '6', '7'];
          const data = ['before 1', 'before 2', 'before 3', 'after 1', 'after 2', 'after 3', 'after 4'];
          for (const transport of TRANSPORTS) {
            const v = await view(page, transport);
            assert.deepEqual(pairs(v), ids.map((id, i) => [id, data[i]]), `${transport}: every message once`);
            const gaps = v.events.filter((e) => e.ev === 'gap').map((e) => e.info);
            const want = store === 'memory' ? [{ channel: ch, requested: '3', first_available: '1', reset: true }] : [];
            assert.deepEqual(gaps, want, `${transport}: gaps`);
            assert.equal(v.transport, transport);
            assert.equal(v.lastId, ids[6]);
            if (transport !== 'poll') assert.ok(opens(v) >= 2, `${transport}: reconnected`);
          }
          assertNoPageErrors(page, { allowNetwork: true });
        });
      } finally {
        await h.stop();
      }
    });
  }
});

test('a resume older than the history gets a gap notice, then what is left', T, async () => {
  await withHerald({ ...FLAGS, 'history-messages': 3 }, async (h) => {
    const ch = 'short-history';
    for (let i = 1; i <= 6; i++) await publish(h, ch, `m${i}`);
    await withPage(h.base, 'old-gap', async (page) => {
      for (const transport of TRANSPORTS) await start(page, transport, ch, { transport, lastId: 1, ...FAST });
      for (const transport of TRANSPORTS) {
        const v = await waitCount(page, transport, 3);
        await sleep(50);
        assert.deepEqual(pairs(await view(page, transport)), [['4', 'm4'], ['5', 'm5'], ['6', 'm6']], transport);
        const gaps = v.events.filter((e) => e.ev === 'gap').map((e) => e.info);
        assert.deepEqual(gaps, [{ channel: ch, requested: '1', first_available: '4', reset: false }], `${transport}: gap`);
      }
    });
  });
});

test('messages the server sends again are delivered once (every resume rewritten to last_id=0)', T, async () => {
  await withHerald(FLAGS, async (h) => {
    const ch = 'again';
    for (let i = 1; i <= 3; i++) await publish(h, ch, `m${i}`);
    // every request and /ws subscribe asks for the whole history: the server replays 1..N each
    // time (each poll, each reconnect), and only the client's dedupe keeps the app's view clean
    const setup = async (page) => {
      await page.route(/\/sub\/.*last_id=/, (route) => route.continue({ url: route.request().url().replace(/last_id=\d+/, 'last_id=0') }));
      await page.routeWebSocket(/\/ws$/, (ws) => {
        const server = ws.connectToServer();
        ws.onMessage((m) => server.send(String(m).replace(/"last_id":"\d+"/, '"last_id":"0"')));
      });
    };
    await withPage(h.base, 'again', async (page) => {
      for (const transport of TRANSPORTS) await start(page, transport, ch, { transport, lastId: 2, ...FAST });
      for (const transport of TRANSPORTS) await waitCount(page, transport, 1);
      await publish(h, ch, 'm4');
      for (const transport of TRANSPORTS) await waitCount(page, transport, 2);
      await sleep(SETTLE);
      for (const transport of TRANSPORTS) {
        assert.deepEqual(pairs(await view(page, transport)), [['3', 'm3'], ['4', 'm4']], transport);
      }
      assertNoPageErrors(page);
    }, { setup });
  });
});

test('auto falls back to SSE when WebSocket is refused or silent, and to polling when streams are blocked', T, async (t) => {
  // the page is herald's own origin, which herald always lets open a WebSocket: the refusal is
  // played by playwright (its routing patches the page's WebSocket before the page loads)
  const refuse = (page) => page.routeWebSocket(/\/ws$/, (ws) => ws.close({ code: 1008, reason: 'refused' }));
  await withHerald(FLAGS, async (h) => {
    const fallbacks = (v) => v.events.filter((e) => e.ev === 'fallback').map((e) => [e.info.from, e.info.to]);

    /* subscribes with auto, checks the transport reached and that messages flow through it */
    async function check(page, name, want, path) {
      await start(page, name, name, { transport: 'auto', ...FAST, connectTimeout: 1000 });
      const v = await waitView(page, name, (x) => x.state === 'open' && x.transport === want, `open over ${want}`);
      assert.deepEqual(fallbacks(v), path);
      await publish(h, name, 'a');
      await publish(h, name, 'b');
      await waitCount(page, name, 2);
      await sleep(SETTLE);
      const v2 = await view(page, name);
      assert.deepEqual(pairs(v2), [['1', 'a'], ['2', 'b']]);
      assert.equal(v2.transport, want);
      return v2;
    }

    await t.test('WebSocket refused (closed at once) -> sse', async () => {
      await withPage(h.base, 'fallback-refused', async (page) => {
        const v = await check(page, 'refused', 'sse', [['websocket', 'sse']]);
        assert.match(v.events.find((e) => e.ev === 'fallback').info.reason, /websocket closed/);
      }, { setup: refuse });
    });

    await t.test('WebSocket open but silent past connectTimeout -> sse', async () => {
      // a WebSocket that opens and never says anything: playwright answers it, not herald (its
      // routing patches the page's WebSocket, so it is set up before the page loads)
      const setup = (page) => page.routeWebSocket(/\/ws$/, () => {});
      await withPage(h.base, 'fallback-silent', async (page) => {
        const v = await check(page, 'silent', 'sse', [['websocket', 'sse']]);
        assert.match(v.events.find((e) => e.ev === 'fallback').info.reason, /no answer within 1000 ms/);
      }, { setup });
    });

    await t.test('SSE and iframe requests blocked -> longpoll', async () => {
      await withPage(h.base, 'fallback-longpoll', async (page) => {
        await page.route(/\/sub\/.*mode=(sse|iframe)/, (route) => route.abort());
        await check(page, 'blocked', 'longpoll', [['websocket', 'sse'], ['sse', 'iframe'], ['iframe', 'longpoll']]);
      }, { setup: refuse });
    });

    await t.test('long polls blocked too -> poll', async () => {
      await withPage(h.base, 'fallback-poll', async (page) => {
        await page.route(/\/sub\/.*mode=(sse|iframe|longpoll)/, (route) => route.abort());
        await check(page, 'blocked2', 'poll', [['websocket', 'sse'], ['sse', 'iframe'], ['iframe', 'longpoll'], ['longpoll', 'poll']]);
      }, { setup: refuse });
    });
  });
});

test('the iframe stream delivers script-like payloads verbatim and runs none of them', T, async () => {
  await withHerald(FLAGS, async (h) => {
    const ch = 'xss';
    const payloads = [
      '</script><script>parent.__pwned = (parent.__pwned || 0) + 1</script>',
      '<script>alert(1)</script>',
      '<!--<script>alert(2)</script>-->',
      '</SCRIPT ><img src=x onerror="parent.__pwned=1">',
      'line\u2028sep\u2029para & "quotes" \'single\' \\ ]]>',
    ];
    await withPage(h.base, 'iframe-xss', async (page) => {
      await start(page, 's', ch, { transport: 'iframe', ...FAST });
      await waitOpen(page, 's');
      for (const p of payloads) await publish(h, ch, p);
      await waitCount(page, 's', payloads.length);
      await sleep(SETTLE);
      const v = await view(page, 's');
      assert.deepEqual(v.msgs.map((m) => m.data), payloads);
      assert.equal(v.transport, 'iframe');
      assert.equal(await page.evaluate(() => window.__pwned), undefined, 'no payload ran as script');
      assertNoPageErrors(page);
    });
  });
});

test('herald.js loads as a classic script and herald.mjs as an ES module', T, async (t) => {
  await withHerald(FLAGS, async (h) => {
    await t.test('classic <script src="/herald.js">', async () => {
      await withPage(h.base, 'classic', async (page) => {
        const api = await page.evaluate(() => [typeof window.herald, typeof herald.subscribe, typeof herald.publish, typeof herald.unread]);
        assert.deepEqual(api, ['object', 'function', 'function', 'function']);
        // herald.publish from the page, received by a subscription in the same page
        await start(page, 's', 'classic', { transport: 'websocket', ...FAST });
        await waitOpen(page, 's');
        const answer = await page.evaluate(() => herald.publish('', 'classic', 'from the page', { event: 'note' }));
        assert.equal(answer.id, '1');
        assert.equal(answer.channel, 'classic');
        const v = await waitCount(page, 's', 1);
        assert.deepEqual(v.msgs, [{ id: '1', channel: 'classic', event: 'note', data: 'from the page' }]);
        assertNoPageErrors(page);
      });
    });

    await t.test('import from /herald.mjs', async () => {
      const html = `<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>
<script type="module">
import herald, { subscribe, publish, unread } from '/herald.mjs';
window.got = [];
window.moduleInfo = { same: subscribe === herald.subscribe && publish === herald.publish && unread === herald.unread, types: [typeof subscribe, typeof publish, typeof unread] };
const sub = subscribe('', 'module', (m) => window.got.push(m.data), { transport: 'sse' });
sub.on('open', () => publish('', 'module', 'via the module'));
</script></body></html>`;
      await withPage(h.base, 'module', async (page) => {
        await waitFor(() => page.evaluate(() => window.got && window.got.length === 1), 8000 * SCALE, 'the module page to receive its message');
        assert.deepEqual(await page.evaluate(() => window.got), ['via the module']);
        assert.deepEqual(await page.evaluate(() => window.moduleInfo), { same: true, types: ['function', 'function', 'function'] });
        assertNoPageErrors(page);
      }, { html });
    });
  });
});

test('unread counter: counts once, survives reloads, counts what came while away, markRead resets', T, async () => {
  await withHerald(FLAGS, async (h) => {
    const ch = 'inbox';
    // the counter resumes the subscription after the last message it counted
    const html = `<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>
<script src="/herald.js"></script>
<script>
window.counter = herald.unread('${ch}');
window.changes = [];
counter.onChange((n) => changes.push(n));
window.initial = counter.count;
window.sub = herald.subscribe('', '${ch}', null, { transport: 'sse', unread: counter, backoff: { min: 100, max: 400 } });
</script></body></html>`;
    await withPage(h.base, 'unread', async (page) => {
      const count = () => page.evaluate(() => counter.count);
      const waitUnread = (n, what) => waitFor(async () => (await count()) === n, 8000 * SCALE, `${what}: count ${n}`);
      await waitFor(() => page.evaluate(() => sub.state === 'open'), 8000 * SCALE, 'open');
      assert.equal(await page.evaluate(() => initial), 0);
      for (const d of ['a', 'b', 'c']) await publish(h, ch, d);
      await waitUnread(3, 'three published');
      assert.deepEqual(await page.evaluate(() => changes), [1, 2, 3]);
      // adding a message already counted changes nothing
      assert.equal(await page.evaluate(() => counter.add({ id: '2' })), false);

      await openPage(page, h.base, html); // a reload
      assert.equal(await page.evaluate(() => initial), 3, 'count persisted in localStorage');
      await waitFor(() => page.evaluate(() => sub.state === 'open'), 8000 * SCALE, 'open after reload');
      await sleep(SETTLE);
      assert.equal(await count(), 3, 'the resumed subscription does not count a message twice');

      // published while no page is open: counted on the next visit
      await page.goto('about:blank');
      await publish(h, ch, 'd');
      await openPage(page, h.base, html);
      await waitUnread(4, 'missed while away');

      await page.evaluate(() => counter.markRead());
      assert.equal(await count(), 0);
      assert.equal(await page.evaluate(() => counter.lastReadId), '4');
      await openPage(page, h.base, html);
      assert.equal(await page.evaluate(() => initial), 0, 'markRead persisted');
      await waitFor(() => page.evaluate(() => sub.state === 'open'), 8000 * SCALE, 'open after the second reload');
      await publish(h, ch, 'e');
      await waitUnread(1, 'new after markRead');
      assertNoPageErrors(page);
    }, { html });
  });
});
