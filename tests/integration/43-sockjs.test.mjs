// SockJS (sockjs-protocol 0.3.3) at /stomp/... and, with echo = true, the protocol suite's
// services under /sockjs/NAME (echo, disabled_websocket_echo, cookie_needed_echo, close).
// First the protocol with raw HTTP and WebSocket requests, as the protocol description's test
// suite states it (info, greeting, iframe, session URLs, each transport's framing, heartbeats,
// the disconnect delay, one receiver at a time, close frames, errors, CORS, JSESSIONID, JSON
// escaping, limits); then the real clients: sockjs-client 1.6.1 with @stomp/stompjs over every
// transport node can run (websocket, xhr-streaming, xhr-polling), with access control.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createRequire } from 'node:module';
import { Client } from '@stomp/stompjs';
import {
  withHerald, request, publish, getJSON, waitFor, withTimeout, metrics, boundedQueue, sleep, SCALE,
} from '../lib/herald.mjs';
import { openWS, wsURL } from '../lib/stomp.mjs';
import { authFlags, mint, API_KEY, bearer } from '../lib/auth.mjs';

const require = createRequire(import.meta.url);
const SockJS = require('sockjs-client');

const T = { timeout: 60000 * SCALE };
const ECHO = { echo: true, 'ws-origins': '*' }; // the suite's services, cross-origin allowed as the protocol's tests expect
let nsess = 0;
const sid = () => `s${process.pid}x${++nsess}${Math.random().toString(36).slice(2, 8)}`;
const NOCACHE = /no-store, no-cache, must-revalidate, max-age=0/;

const post = (h, p, body = '', headers = {}) =>
  request(h, 'POST', p, { body, headers: { 'Content-Length': String(Buffer.byteLength(body)), ...headers } });

/* A streaming request: text accumulates; until(s) waits (bounded) until the body so far has s
 * after the position already consumed, and returns what came up to and including it. */
function openStream(h, method, p, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: h.port, method, path: p, headers, agent: false }, (res) => {
      const st = { status: res.statusCode, headers: res.headers, text: '', pos: 0, ended: false };
      const q = boundedQueue(`${method} ${p}`);
      res.setEncoding('utf8');
      res.on('data', (d) => {
        st.text += d;
        q.push(1);
      });
      res.on('end', () => {
        st.ended = true;
        q.end();
      });
      res.on('error', () => {
        st.ended = true;
        q.end();
      });
      st.until = async (s, ms = 5000 * SCALE) => {
        await waitFor(() => st.text.indexOf(s, st.pos) >= 0 || st.ended, ms, `${JSON.stringify(s)} on ${p}`);
        const i = st.text.indexOf(s, st.pos);
        if (i < 0) throw new Error(`${p} ended without ${JSON.stringify(s)}; got ${JSON.stringify(st.text.slice(st.pos))}`);
        const out = st.text.slice(st.pos, i + s.length);
        st.pos = i + s.length;
        return out;
      };
      st.end = (ms = 5000 * SCALE) => waitFor(() => st.ended, ms, `end of ${p}`);
      st.close = () => req.destroy();
      st.pause = () => res.pause();
      resolve(st);
    });
    req.on('error', reject);
    req.end(method === 'POST' ? '' : undefined);
  });
}

function verifyCors(r, origin) {
  assert.equal(r.headers['access-control-allow-origin'], origin && origin !== 'null' ? origin : '*');
  assert.equal(r.headers['access-control-allow-credentials'], 'true');
}

/* ---------------------------------------------------------------- static URLs */

test('SockJS: /info (websocket, cookie_needed, origins, entropy; no-cache; CORS) and OPTIONS', T, async () => {
  await withHerald(ECHO, async (h) => {
    const r1 = await request(h, 'GET', '/stomp/info');
    assert.equal(r1.status, 200);
    assert.equal(r1.headers['content-type'], 'application/json; charset=UTF-8');
    assert.match(r1.headers['cache-control'], NOCACHE);
    assert.equal(r1.headers['set-cookie'], undefined);
    verifyCors(r1);
    const d1 = r1.json();
    assert.equal(d1.websocket, true);
    assert.equal(d1.cookie_needed, false);
    assert.deepEqual(d1.origins, ['*:*']);
    assert.ok(Number.isInteger(d1.entropy) && d1.entropy >= 0 && d1.entropy < 2 ** 32);
    const d2 = (await getJSON(h, '/stomp/info'));
    assert.notEqual(d1.entropy, d2.entropy, 'entropy changes');
    for (const origin of [undefined, 'http://test.example', 'null']) {
      const r = await request(h, 'OPTIONS', '/stomp/info', { headers: origin ? { Origin: origin } : {} });
      assert.equal(r.status, 204);
      assert.match(r.headers['cache-control'], /public/);
      assert.match(r.headers['cache-control'], /max-age=[1-9][0-9]{6}/);
      assert.ok(r.headers.expires);
      assert.ok(Number(r.headers['access-control-max-age']) > 1000000);
      assert.equal(r.headers['access-control-allow-methods'], 'OPTIONS, GET');
      assert.equal(r.body.length, 0);
      verifyCors(r, origin);
    }
    assert.equal((await getJSON(h, '/sockjs/disabled_websocket_echo/info')).websocket, false);
    assert.equal((await getJSON(h, '/sockjs/cookie_needed_echo/info')).cookie_needed, true);
  });
  await withHerald({ 'sockjs-websocket': false, 'sockjs-cookie-needed': true }, async (h) => {
    const d = await getJSON(h, '/stomp/info');
    assert.equal(d.websocket, false);
    assert.equal(d.cookie_needed, true);
    assert.equal((await request(h, 'GET', '/sockjs/echo/info')).status, 404, 'test services only with echo = true');
  });
});

test('SockJS: greeting, 404 for other URLs and bad server/session ids, iframe page with ETag', T, async () => {
  await withHerald({ ...ECHO, 'sockjs-url': '/js/sockjs.min.js' }, async (h) => {
    for (const p of ['/sockjs/echo', '/sockjs/echo/', '/stomp/']) {
      const r = await request(h, 'GET', p);
      assert.equal(r.status, 200, p);
      assert.equal(r.headers['content-type'], 'text/plain; charset=UTF-8');
      assert.equal(r.text, 'Welcome to SockJS!\n');
    }
    for (const s of ['/a', '/a.html', '//', '///', '/a/a', '/a/a/', '/a/']) {
      assert.equal((await request(h, 'GET', `/sockjs/echo${s}`)).status, 404, s);
    }
    for (const s of ['//', '/a./a', '/a/a.', '/./.', '/', '///', `/a/${'x'.repeat(65)}`]) {
      assert.equal((await request(h, 'GET', `/sockjs/echo${s}/xhr`)).status, 404, `GET ${s}`);
      assert.equal((await post(h, `/sockjs/echo${s}/xhr`)).status, 404, `POST ${s}`);
    }
    for (const s of ['/_/_', '/1/1', '/abcdefgh_i-j%20/abcdefg_i-j%20', `/a/${'x'.repeat(64)}`]) {
      const r = await post(h, `/sockjs/echo${s}/xhr`);
      assert.equal(r.status, 200, s);
      assert.equal(r.text, 'o\n');
    }
    let etag;
    for (const s of ['/iframe.html', '/iframe-a.html', '/iframe-.html', '/iframe-0.1.2.html', '/iframe-0.1.2abc-dirty.2144.html?t=1']) {
      const r = await request(h, 'GET', `/stomp${s}`);
      assert.equal(r.status, 200, s);
      assert.equal(r.headers['content-type'], 'text/html; charset=UTF-8');
      assert.match(r.headers['cache-control'], /public/);
      assert.match(r.headers['cache-control'], /max-age=[1-9][0-9]{6}/);
      assert.ok(r.headers.expires && r.headers.etag);
      assert.equal(r.headers['last-modified'], undefined);
      assert.match(r.text, /^<!DOCTYPE html>\n<html>\n<head>/);
      assert.ok(r.text.includes('<script src="/js/sockjs.min.js"></script>'));
      assert.ok(r.text.includes('SockJS.bootstrap_iframe()'));
      if (etag) assert.equal(r.headers.etag, etag);
      etag = r.headers.etag;
    }
    const r304 = await request(h, 'GET', '/stomp/iframe.html', { headers: { 'If-None-Match': etag } });
    assert.equal(r304.status, 304);
    assert.equal(r304.body.length, 0);
    for (const s of ['/iframe.htm', '/iframe', '/IFRAME.HTML', '/iframe.HTML', '/iframe.xml', '/iframe-/.html']) {
      assert.equal((await request(h, 'GET', `/stomp${s}`)).status, 404, s);
    }
  });
});

/* ---------------------------------------------------------------- sessions over xhr polling */

test('SockJS xhr: open frame, xhr_send 204, a[...] frames, 404 for unknown sessions, server id ignored', T, async () => {
  await withHerald(ECHO, async (h) => {
    const id = sid();
    const base = `/sockjs/echo/000/${id}`;
    let r = await post(h, `${base}/xhr`);
    assert.equal(r.status, 200);
    assert.equal(r.text, 'o\n');
    assert.equal(r.headers['content-type'], 'application/javascript; charset=UTF-8');
    assert.match(r.headers['cache-control'], NOCACHE);
    verifyCors(r);
    r = await post(h, `${base}/xhr_send`, '["x"]');
    assert.equal(r.status, 204);
    assert.equal(r.body.length, 0);
    assert.equal(r.headers['content-type'], 'text/plain; charset=UTF-8');
    assert.match(r.headers['cache-control'], NOCACHE);
    const ctypes = ['text/plain', 'T', 'application/json', 'application/xml', '', 'text/xml; charset=utf-8'];
    for (const ct of ctypes) {
      r = await post(h, `${base}/xhr_send`, '["a"]', { 'Content-Type': ct });
      assert.equal(r.status, 204, ct);
    }
    r = await post(h, `/sockjs/echo/999/${id}/xhr`); // another server id, the same session
    assert.equal(r.text, `a["x",${ctypes.map(() => '"a"').join(',')}]\n`);
    assert.equal((await post(h, `/sockjs/echo/000/${sid()}/xhr_send`, '["x"]')).status, 404);
    // the same session id under two services: two sessions
    assert.equal((await post(h, `/sockjs/close/000/${id}/xhr`)).text, 'o\n');
    assert.equal((await post(h, `/sockjs/close/000/${id}/xhr`)).text, 'c[3000,"Go away!"]\n');
    assert.equal((await post(h, `${base}/xhr_send`, '["still"]')).status, 204);
    assert.equal((await post(h, `${base}/xhr`)).text, 'a["still"]\n');
    // errors
    r = await post(h, `${base}/xhr_send`, '["x');
    assert.equal(r.status, 500);
    assert.ok(r.text.includes('Broken JSON encoding.'));
    r = await post(h, `${base}/xhr_send`, '');
    assert.equal(r.status, 500);
    assert.ok(r.text.includes('Payload expected.'));
    for (const bad of ['[1]', '["a",]', '{"a":1}', '"bare"', '["a"] x', '["\\x"]']) {
      assert.equal((await post(h, `${base}/xhr_send`, bad)).status, 500, bad);
    }
    r = await post(h, `${base}/xhr_send`, ' [ "b" , "c" ] ');
    assert.equal(r.status, 204);
    assert.equal((await post(h, `${base}/xhr`)).text, 'a["b","c"]\n');
    // OPTIONS and methods
    for (const t of ['xhr', 'xhr_send', 'xhr_streaming']) {
      const o = await request(h, 'OPTIONS', `/sockjs/echo/abc/abc/${t}`, { headers: { Origin: 'http://o.example' } });
      assert.equal(o.status, 204, t);
      assert.equal(o.headers['access-control-allow-methods'], 'OPTIONS, POST');
      verifyCors(o, 'http://o.example');
    }
    r = await request(h, 'GET', `${base}/xhr`);
    assert.equal(r.status, 405);
    assert.ok(r.headers.allow);
    // Access-Control-Request-Headers is echoed
    r = await post(h, `/sockjs/echo/000/${sid()}/xhr`, '', { 'Access-Control-Request-Headers': 'a, b, c' });
    assert.equal(r.headers['access-control-allow-headers'], 'a, b, c');
    r = await post(h, `/sockjs/echo/000/${sid()}/xhr`);
    assert.equal(r.headers['access-control-allow-headers'], undefined);
  });
});

test('SockJS: one receiver at a time (2010), the close service (3000 Go away!), aborted polls', T, async () => {
  await withHerald({ ...ECHO, 'sockjs-heartbeat': 2 }, async (h) => {
    const id = sid();
    const base = `/sockjs/echo/000/${id}`;
    assert.equal((await post(h, `${base}/xhr`)).text, 'o\n');
    const ac = new AbortController();
    const held = post(h, `${base}/xhr`, '', {}).catch(() => null); // parked
    void ac;
    await sleep(150);
    const r2 = await post(h, `${base}/xhr`);
    assert.equal(r2.status, 200);
    assert.equal(r2.text, 'c[2010,"Another connection still open"]\n');
    const s2 = await openStream(h, 'POST', `${base}/xhr_streaming`);
    await s2.until('h'.repeat(2048) + '\n');
    assert.equal(await s2.until('\n'), 'c[2010,"Another connection still open"]\n');
    await s2.end();
    await post(h, `${base}/xhr_send`, '["m"]');
    assert.equal((await held).text, 'a["m"]\n', 'the parked poll gets the message');
    // close service
    const cb = `/sockjs/close/000/${sid()}`;
    assert.equal((await post(h, `${cb}/xhr`)).text, 'o\n');
    assert.equal((await post(h, `${cb}/xhr`)).text, 'c[3000,"Go away!"]\n');
    assert.equal((await post(h, `${cb}/xhr`)).text, 'c[3000,"Go away!"]\n');
    const sc = await openStream(h, 'POST', `/sockjs/close/000/${sid()}/xhr_streaming`);
    await sc.until('h'.repeat(2048) + '\n');
    assert.equal(await sc.until('\n'), 'o\n');
    assert.equal(await sc.until('\n'), 'c[3000,"Go away!"]\n');
    await sc.end();
    // an aborted streaming receiver: the session stays (a new receiver gets what was queued)
    const id3 = sid();
    const s3 = await openStream(h, 'POST', `/sockjs/echo/000/${id3}/xhr_streaming`);
    await s3.until('o\n');
    s3.close();
    await sleep(100);
    const r3 = await post(h, `/sockjs/echo/000/${id3}/xhr`);
    assert.ok(['h\n', 'o\n', 'c[1002,"Connection interrupted"]\n'].includes(r3.text) || r3.status === 200, r3.text);
  });
});

/* ---------------------------------------------------------------- streaming transports */

test('SockJS xhr_streaming: 2 KB prelude, frames, response_limit ends the response', T, async () => {
  await withHerald({ ...ECHO, 'sockjs-response-limit': 4096 }, async (h) => {
    const base = `/sockjs/echo/000/${sid()}`;
    const s = await openStream(h, 'POST', `${base}/xhr_streaming`);
    assert.equal(s.status, 200);
    assert.equal(s.headers['content-type'], 'application/javascript; charset=UTF-8');
    verifyCors(s);
    assert.match(s.headers['cache-control'], /no-cache/);
    assert.equal(await s.until('\n'), 'h'.repeat(2048) + '\n');
    assert.equal(await s.until('\n'), 'o\n');
    const msg = `"${'x'.repeat(128)}"`;
    for (let i = 0; i < 31; i++) {
      assert.equal((await post(h, `${base}/xhr_send`, `[${msg}]`)).status, 204);
      assert.equal(await s.until('\n'), `a[${msg}]\n`);
    }
    await s.end(); // 31 x 134 bytes > 4096: the server ended the response
    const s2 = await openStream(h, 'POST', `${base}/xhr_streaming`); // the client's next one
    await s2.until('h'.repeat(2048) + '\n');
    await post(h, `${base}/xhr_send`, '["again"]');
    assert.equal(await s2.until('\n'), 'a["again"]\n');
    s2.close();
  });
});

test('SockJS eventsource and htmlfile: preludes, framing, escaping, callback checks', T, async () => {
  await withHerald(ECHO, async (h) => {
    const base = `/sockjs/echo/000/${sid()}`;
    const es = await openStream(h, 'GET', `${base}/eventsource`);
    assert.equal(es.status, 200);
    assert.equal(es.headers['content-type'], 'text/event-stream; charset=UTF-8');
    assert.equal(await es.until('\r\n'), '\r\n');
    assert.equal(await es.until('\r\n\r\n'), 'data: o\r\n\r\n');
    await post(h, `${base}/xhr_send`, '["x"]');
    assert.equal(await es.until('\r\n\r\n'), 'data: a["x"]\r\n\r\n');
    await post(h, `${base}/xhr_send`, String.raw`["  \u0000\n\r "]`);
    assert.equal(await es.until('\r\n\r\n'), String.raw`data: a["  \u0000\n\r "]` + '\r\n\r\n');
    es.close();

    const hb = `/sockjs/echo/000/${sid()}`;
    const hf = await openStream(h, 'GET', `${hb}/htmlfile?c=%63allback`);
    assert.equal(hf.status, 200);
    assert.equal(hf.headers['content-type'], 'text/html; charset=UTF-8');
    const head = await hf.until('\r\n\r\n');
    assert.ok(head.length > 1024);
    assert.ok(head.includes('var c = parent.callback;'));
    assert.match(head.trim(), /^<!doctype html>/);
    assert.equal(await hf.until('</script>\r\n'), '<script>\np("o");\n</script>\r\n');
    await post(h, `${hb}/xhr_send`, '["x</script>"]');
    assert.equal(await hf.until('</script>\r\n'), '<script>\np("a[\\"x\\u003c/script\\u003e\\"]");\n</script>\r\n');
    hf.close();
    let r = await request(h, 'GET', '/sockjs/echo/a/a/htmlfile');
    assert.equal(r.status, 500);
    assert.ok(r.text.includes('"callback" parameter required'));
    for (const bad of ['a%3Bb', 'x(1)', 'a%20b', 'y'.repeat(65)]) {
      r = await request(h, 'GET', `/sockjs/echo/a/a/htmlfile?c=${bad}`);
      assert.equal(r.status, 500, bad);
      assert.ok(r.text.includes('invalid "callback" parameter'));
    }
  });
});

test('SockJS jsonp: callback framing, jsonp_send (form d= and raw), errors, close', T, async () => {
  await withHerald(ECHO, async (h) => {
    const base = `/sockjs/echo/000/${sid()}`;
    let r = await request(h, 'GET', `${base}/jsonp?c=%63allback`);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/javascript; charset=UTF-8');
    assert.match(r.headers['cache-control'], NOCACHE);
    assert.equal(r.text, 'callback("o");\r\n');
    const form = { 'Content-Type': 'application/x-www-form-urlencoded' };
    r = await post(h, `${base}/jsonp_send`, 'd=%5B%22x%22%5D', form);
    assert.equal(r.status, 200);
    assert.equal(r.text, 'ok');
    assert.equal(r.headers['content-type'], 'text/plain; charset=UTF-8');
    r = await post(h, `${base}/jsonp_send`, '["%61bc"]', { 'Content-Type': 'text/plain' });
    assert.equal(r.text, 'ok');
    r = await request(h, 'GET', `${base}/jsonp?c=x`);
    assert.equal(r.text, 'x("a[\\"x\\",\\"%61bc\\"]");\r\n');
    r = await post(h, `${base}/jsonp_send`, 'd=%5B%22x', form);
    assert.equal(r.status, 500);
    assert.ok(r.text.includes('Broken JSON encoding.'));
    for (const data of ['', 'd=', 'p=p']) {
      r = await post(h, `${base}/jsonp_send`, data, form);
      assert.equal(r.status, 500, data);
      assert.ok(r.text.includes('Payload expected.'));
    }
    r = await request(h, 'GET', '/sockjs/echo/a/a/jsonp');
    assert.equal(r.status, 500);
    assert.ok(r.text.includes('"callback" parameter required'));
    const cb = `/sockjs/close/000/${sid()}`;
    assert.equal((await request(h, 'GET', `${cb}/jsonp?c=x`)).text, 'x("o");\r\n');
    assert.equal((await request(h, 'GET', `${cb}/jsonp?c=x`)).text, 'x("c[3000,\\"Go away!\\"]");\r\n');
  });
});

/* ---------------------------------------------------------------- WebSocket */

test('SockJS framed WebSocket: o, a[...], bare strings, empty frames ignored, broken JSON drops it; raw /websocket', T, async () => {
  await withHerald(ECHO, async (h) => {
    const ws = await openWS(wsURL(h, `/sockjs/echo/000/${sid()}/websocket`));
    assert.equal((await ws.next()).data.toString(), 'o');
    ws.send('');
    ws.send('["a"]');
    assert.equal((await ws.next()).data.toString(), 'a["a"]');
    ws.send('"bare"');
    assert.equal((await ws.next()).data.toString(), 'a["bare"]');
    ws.send('["a');
    assert.equal(await ws.next(), null, 'closed after broken JSON');
    // two sessions with the same id at once are fine over WebSocket
    const u = wsURL(h, `/sockjs/echo/000/same/websocket`);
    const w1 = await openWS(u);
    const w2 = await openWS(u);
    assert.equal((await w1.next()).data.toString(), 'o');
    assert.equal((await w2.next()).data.toString(), 'o');
    w1.send('["1"]');
    w2.send('["2"]');
    assert.equal((await w1.next()).data.toString(), 'a["1"]');
    assert.equal((await w2.next()).data.toString(), 'a["2"]');
    w1.close();
    w2.close();
    const wc = await openWS(wsURL(h, `/sockjs/close/000/${sid()}/websocket`));
    assert.equal((await wc.next()).data.toString(), 'o');
    assert.equal((await wc.next()).data.toString(), 'c[3000,"Go away!"]');
    assert.equal(await wc.next(), null);
    const raw = await openWS(wsURL(h, '/sockjs/echo/websocket'));
    raw.send('Hello world!\uffff');
    assert.equal((await raw.next()).data.toString(), 'Hello world!\uffff');
    raw.close();
    // websocket off for a service: 404; a plain GET is no handshake: 400; POST: 405
    assert.equal((await request(h, 'GET', `/sockjs/disabled_websocket_echo/000/${sid()}/websocket`)).status, 404);
    assert.ok([400, 426].includes((await request(h, 'GET', `/sockjs/echo/0/0/websocket`)).status), 'no handshake');
    assert.equal((await post(h, `/sockjs/echo/0/0/websocket`)).status, 405);
  });
});

/* ---------------------------------------------------------------- timers */

test('SockJS heartbeats every sockjs_heartbeat; sockjs_disconnect_delay closes a session without receiver', T, async () => {
  await withHerald({ ...ECHO, 'sockjs-heartbeat': 0.3, 'sockjs-disconnect-delay': 0.5 }, async (h) => {
    const base = `/sockjs/echo/000/${sid()}`;
    assert.equal((await post(h, `${base}/xhr`)).text, 'o\n');
    const t0 = Date.now();
    assert.equal((await post(h, `${base}/xhr`)).text, 'h\n', 'a parked poll gets the heartbeat');
    assert.ok(Date.now() - t0 >= 250, 'not before the interval');
    const s = await openStream(h, 'POST', `${base}/xhr_streaming`);
    await s.until('h'.repeat(2048) + '\n');
    assert.equal(await s.until('\n'), 'h\n');
    assert.equal(await s.until('\n'), 'h\n');
    const ws = await openWS(wsURL(h, `/sockjs/echo/000/${sid()}/websocket`));
    assert.equal((await ws.next()).data.toString(), 'o');
    assert.equal((await ws.next(3000)).data.toString(), 'h');
    ws.close();
    s.close();
    // no receiver: gone after the delay
    await waitFor(async () => (await post(h, `${base}/xhr_send`, '["x"]')).status === 404, 5000 * SCALE, 'session expired');
    const m = await metrics(h);
    assert.ok(m.get('herald_sockjs_session_timeouts_total') >= 1);
  });
});

/* ---------------------------------------------------------------- cookies, CORS, origins */

test('SockJS: JSESSIONID set and echoed when needed; CORS echoes the Origin; ws_origins applies', T, async () => {
  await withHerald(ECHO, async (h) => {
    let r0 = await post(h, `/stomp/000/${sid()}/xhr`, '', { Origin: 'https://x.example' });
    assert.equal(r0.status, 200, 'ws_origins = * allows any origin');
    r0 = await request(h, 'GET', `/stomp/000/${sid()}/jsonp?c=cb`, { headers: { 'Sec-Fetch-Site': 'cross-site' } });
    assert.equal(r0.status, 200, 'and any cross-site script');
    let r = await post(h, `/sockjs/cookie_needed_echo/000/${sid()}/xhr`);
    assert.equal(r.text, 'o\n');
    assert.deepEqual(r.headers['set-cookie'], ['JSESSIONID=dummy; path=/']);
    r = await post(h, `/sockjs/cookie_needed_echo/000/${sid()}/xhr`, '', { Cookie: 'a=b; JSESSIONID=abcdef' });
    assert.deepEqual(r.headers['set-cookie'], ['JSESSIONID=abcdef; path=/']);
    r = await request(h, 'GET', `/sockjs/cookie_needed_echo/000/${sid()}/jsonp?c=cb`);
    assert.deepEqual(r.headers['set-cookie'], ['JSESSIONID=dummy; path=/']);
    const es = await openStream(h, 'GET', `/sockjs/cookie_needed_echo/000/${sid()}/eventsource`);
    assert.deepEqual(es.headers['set-cookie'], ['JSESSIONID=dummy; path=/']);
    es.close();
    assert.equal((await request(h, 'GET', '/sockjs/cookie_needed_echo/info')).headers['set-cookie'], undefined);
    r = await post(h, `/sockjs/echo/000/${sid()}/xhr`);
    assert.equal(r.headers['set-cookie'], undefined, 'no cookie unless needed');
    r = await post(h, `/sockjs/echo/000/${sid()}/xhr`, '', { Origin: 'https://app.example' });
    verifyCors(r, 'https://app.example');
    assert.equal(r.headers['access-control-allow-origin'], 'https://app.example');
  });
  await withHerald({ ...ECHO, 'ws-origins': 'https://good.example' }, async (h) => {
    let r = await post(h, `/stomp/000/${sid()}/xhr`, '', { Origin: 'https://evil.example' });
    assert.equal(r.status, 403, 'an origin ws_origins does not list');
    r = await request(h, 'GET', '/stomp/info', { headers: { Origin: 'https://evil.example' } });
    assert.equal(r.status, 403);
    r = await post(h, `/stomp/000/${sid()}/xhr`, '', { Origin: 'https://good.example' });
    assert.equal(r.status, 200);
    verifyCors(r, 'https://good.example');
    r = await post(h, `/stomp/000/${sid()}/xhr`, '', { Origin: `http://127.0.0.1:${h.port}`, Host: `127.0.0.1:${h.port}` });
    assert.equal(r.status, 200, 'the same origin');
    // no Origin but marked cross-site by the browser (a <script> for jsonp, an <iframe> for
    // htmlfile, carrying the user's cookie): its origin cannot be checked, so it is refused
    r = await request(h, 'GET', `/ws/000/${sid()}/jsonp?c=steal`, { headers: { 'Sec-Fetch-Site': 'cross-site', Cookie: 'herald_token=x' } });
    assert.equal(r.status, 403);
    r = await request(h, 'GET', `/stomp/000/${sid()}/jsonp?c=cb`, { headers: { 'Sec-Fetch-Site': 'same-origin' } });
    assert.equal(r.status, 200, 'same-origin script');
  });
});

/* ---------------------------------------------------------------- JSON escaping */

test('SockJS: the server escapes what the protocol says and decodes what clients escape', T, async () => {
  await withHerald(ECHO, async (h) => {
    const ranges = [[0x00, 0x1f], [0x200c, 0x200f], [0x2028, 0x202f], [0x2060, 0x206f], [0xfff0, 0xffff]];
    let s = '';
    for (const [a, b] of ranges) for (let c = a; c <= b; c++) s += String.fromCharCode(c);
    const base = `/sockjs/echo/000/${sid()}`;
    await post(h, `${base}/xhr`);
    assert.equal((await post(h, `${base}/xhr_send`, JSON.stringify([s]))).status, 204);
    const body = (await post(h, `${base}/xhr`)).text.trim();
    const lit = body.slice(2, -1);
    const short = { 8: 'b', 9: 't', 10: 'n', 12: 'f', 13: 'r' };
    const want = '"' + [...s].map((ch) => {
      const c = ch.charCodeAt(0);
      if (short[c]) return '\\' + short[c];
      return '\\u' + c.toString(16).padStart(4, '0');
    }).join('') + '"';
    assert.equal(lit, want, 'every one escaped (\\uXXXX, or JSON short forms)');
    assert.equal(JSON.parse(lit), s);
    // client-side escapes (a surrogate pair, a lone surrogate, \/ \b ...) come back as the same characters
    const sent = '["\\ud83d\\ude00 \\u00e9 \\/ \\b\\f\\t \\u0000 \\ud800x"]';
    assert.equal((await post(h, `${base}/xhr_send`, sent)).status, 204);
    const back = JSON.parse((await post(h, `${base}/xhr`)).text.trim().slice(1));
    assert.deepEqual(back, ['\u{1f600} \u00e9 / \b\f\t \u0000 \ufffdx']);
  });
});

/* ---------------------------------------------------------------- limits */

test('SockJS limits: sockjs_max_sessions (503, metric), xhr_send over ws_max_message (413), slow session queue', T, async () => {
  await withHerald({ ...ECHO, 'sockjs-max-sessions': 2, 'ws-max-message': 1024, 'max-queued-bytes': 4096 }, async (h) => {
    const a = sid();
    assert.equal((await post(h, `/stomp/000/${a}/xhr`)).text, 'o\n');
    assert.equal((await post(h, `/stomp/000/${sid()}/xhr`)).text, 'o\n');
    const r = await post(h, `/stomp/000/${sid()}/xhr`);
    assert.equal(r.status, 503);
    const ws = await request(h, 'GET', `/sockjs/echo/000/${sid()}/websocket`, {
      headers: { Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'x3JJHMbDL1EzLkh9GBhXDw==' },
    });
    assert.equal(ws.status, 503, 'the WebSocket transport too');
    let m = await metrics(h);
    assert.equal(m.get('herald_sockjs_sessions_refused_total'), 2);
    assert.equal(m.get('herald_sockjs_sessions{transport="xhr"}'), 2);
    assert.ok(/sockjs_max_sessions/.test(h.out), 'logged');
    const big = JSON.stringify(['x'.repeat(2000)]);
    assert.equal((await post(h, `/stomp/000/${a}/xhr_send`, big)).status, 413);
  });
  // a session whose client stops polling: its queue stops at max_queued_bytes (slow_policy disconnect)
  await withHerald({ 'max-queued-bytes': 4096, 'slow-policy': 'disconnect', 'sockjs-disconnect-delay': 30 }, async (h) => {
    const base = `/stomp/000/${sid()}`;
    await post(h, `${base}/xhr`);
    await post(h, `${base}/xhr_send`, JSON.stringify(['CONNECT\naccept-version:1.2\nhost:x\n\n\0']));
    assert.match((await post(h, `${base}/xhr`)).text, /^a\["CONNECTED\\n/);
    await post(h, `${base}/xhr_send`, JSON.stringify(['SUBSCRIBE\nid:1\ndestination:/topic/slow\nreceipt:r1\n\n\0']));
    assert.match((await post(h, `${base}/xhr`)).text, /RECEIPT/);
    for (let i = 0; i < 40; i++) await publish(h, 'slow', 'y'.repeat(500));
    // over max_queued_bytes: the session is closed (slow_policy = disconnect), its queue freed
    await waitFor(async () => (await post(h, `${base}/xhr_send`, '["\\n"]')).status === 404, 5000 * SCALE, 'the slow session closed');
    assert.match(h.out, /slow subscriber over max_queued_bytes on slow: disconnected/);
    assert.equal((await metrics(h)).get('herald_sockjs_sessions{transport="xhr"}'), 0);
  });
  // a streaming receiver that stops reading: its response holds one batch at a time, the rest
  // waits in the session's queue, which max_queued_bytes bounds (then slow_policy = disconnect)
  await withHerald({ 'max-queued-bytes': 65536, 'slow-policy': 'disconnect', 'sockjs-response-limit': 1 << 30 }, async (h) => {
    const base = `/stomp/000/${sid()}`;
    const s = await openStream(h, 'POST', `${base}/xhr_streaming`);
    await s.until('o\n');
    await post(h, `${base}/xhr_send`, JSON.stringify(['CONNECT\naccept-version:1.2\nhost:x\n\n\0', 'SUBSCRIBE\nid:1\ndestination:/topic/slow2\nreceipt:r\n\n\0']));
    await s.until('RECEIPT');
    s.pause();
    const big = 'z'.repeat(60000);
    let n = 0;
    for (; n < 400 && !/slow subscriber over max_queued_bytes on slow2/.test(h.out); n++) await publish(h, 'slow2', big);
    assert.ok(n < 400, `the session was closed by the slow policy (after ${n} messages of 60 KB)`);
    await waitFor(async () => (await post(h, `${base}/xhr_send`, '["\\n"]')).status === 404, 5000 * SCALE, 'session gone');
    s.close();
  });
});

/* ---------------------------------------------------------------- STOMP with real clients */

/* An @stomp/stompjs client over sockjs-client with the given transport. */
async function sockStomp(h, transport, opts = {}) {
  const st = { messages: boundedQueue(`stomp over ${transport}`), closes: [], errors: [] };
  let ok;
  let fail;
  const ready = new Promise((res, rej) => {
    ok = res;
    fail = rej;
  });
  st.client = new Client({
    webSocketFactory: () => (st.sock = new SockJS(`${h.base}${opts.path ?? '/stomp'}`, null, { transports: [transport] })),
    reconnectDelay: opts.reconnectDelay ?? 0,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
    connectHeaders: opts.connectHeaders ?? {},
    debug: () => {},
    onConnect: (f) => {
      st.connects = (st.connects ?? 0) + 1;
      ok(f);
      if (opts.onConnect) opts.onConnect(f);
    },
    onStompError: (f) => {
      st.errors.push(f);
      fail(new Error(`STOMP ERROR ${f.headers.message}: ${f.body}`));
    },
    onWebSocketClose: (e) => {
      st.closes.push(e);
      fail(new Error(`closed (${e.code} ${e.reason}) before CONNECTED`));
    },
  });
  st.client.activate();
  st.connected = await withTimeout(ready, 8000 * SCALE, `CONNECTED over ${transport}`);
  return st;
}

for (const transport of ['websocket', 'xhr-streaming', 'xhr-polling']) {
  test(`STOMP over sockjs-client (${transport}): subscribe, POST /pub, SEND with receipt, DISCONNECT`, T, async () => {
    await withHerald({}, async (h) => {
      const c = await sockStomp(h, transport);
      try {
        assert.equal(c.connected.headers.version, '1.2');
        assert.equal(c.sock.transport, transport);
        c.client.subscribe('/topic/x', (m) => c.messages.push(m));
        await waitFor(async () => (await getJSON(h, '/channels/x')).subscribers >= 1, 5000 * SCALE, 'subscribed');
        await publish(h, 'x', 'héllo ☃ "q" \\ </script>');
        const m = await c.messages.next(5000 * SCALE);
        assert.equal(m.body, 'héllo ☃ "q" \\ </script>');
        assert.equal(m.headers.destination, '/topic/x');
        assert.ok(m.headers['message-id']);
        // SEND reaches another transport (a poll) and the receipt comes back
        const got = new Promise((r) => c.client.watchForReceipt('s1', r));
        c.client.publish({ destination: '/topic/y', body: 'from sockjs', headers: { receipt: 's1' } });
        await withTimeout(got, 5000 * SCALE, 'RECEIPT');
        const poll = await getJSON(h, '/sub/y?mode=poll&last_id=0');
        assert.equal(poll.messages.at(-1).data, 'from sockjs');
        // a burst: every message, in order
        for (let i = 0; i < 20; i++) await publish(h, 'x', `n${i}`);
        for (let i = 0; i < 20; i++) assert.equal((await c.messages.next(5000 * SCALE)).body, `n${i}`);
        const m1 = await metrics(h);
        const kind = { websocket: 'websocket', 'xhr-streaming': 'xhr_streaming', 'xhr-polling': 'xhr' }[transport];
        assert.equal(m1.get(`herald_sockjs_sessions{transport="${kind}"}`), 1);
      } finally {
        await c.client.deactivate();
      }
      await waitFor(async () => (await metrics(h)).get('herald_sockjs_sessions{transport="websocket"}') === 0 &&
        (await getJSON(h, '/channels/x')).subscribers === 0, 8000 * SCALE, 'session gone after DISCONNECT');
    });
  });
}

test('STOMP over SockJS: a protocol error gives ERROR then the close frame; a cut session is resumed by stompjs', T, async () => {
  await withHerald({ 'sockjs-heartbeat': 0.5 }, async (h) => {
    // raw: the ERROR frame, then c[1002,"STOMP error"], answered again to the next poll
    const base = `/stomp/000/${sid()}`;
    assert.equal((await post(h, `${base}/xhr`)).text, 'o\n');
    await post(h, `${base}/xhr_send`, JSON.stringify(['SUBSCRIBE\nid:1\ndestination:/topic/a\n\n\0']));
    const r = await post(h, `${base}/xhr`);
    assert.match(r.text, /^a\["ERROR\\nmessage:not connected/);
    assert.equal((await post(h, `${base}/xhr`)).text, 'c[1002,"STOMP error"]\n');
    assert.equal((await post(h, `${base}/xhr_send`, '["x"]')).status, 404, 'a closed session takes no input');
  });
  // a cut by the server (the admin disconnects the user): stompjs sees the close, reconnects with
  // a new SockJS session and resubscribes; messages flow again
  await withHerald(authFlags(), async (h) => {
    const tok = await mint({ sub: 'cut1', subscribe: ['r'], publish: ['r'] });
    for (const transport of ['xhr-streaming', 'websocket']) {
      let connects = 0;
      const q = boundedQueue('after the cut');
      const c = await sockStomp(h, transport, {
        reconnectDelay: 100,
        connectHeaders: { passcode: tok },
        onConnect: () => {
          connects++;
        },
      });
      const sub = () => c.client.subscribe('/topic/r', (m) => q.push(m));
      sub();
      c.client.onConnect = () => {
        connects++;
        sub();
      };
      const subs = async () => (await getJSON(h, '/channels/r', { headers: bearer(API_KEY) })).subscribers;
      await waitFor(async () => (await subs()) >= 1, 5000 * SCALE, 'subscribed');
      await publish(h, 'r', `before ${transport}`, { headers: bearer(API_KEY) });
      assert.equal((await q.next(5000 * SCALE)).body, `before ${transport}`);
      const r = await request(h, 'POST', '/users/cut1/disconnect', {
        headers: { ...bearer(API_KEY), 'Content-Type': 'application/json' },
        body: JSON.stringify({ reason: 'maintenance', reconnect: true }),
      });
      assert.equal(r.status, 200, r.text);
      await waitFor(() => connects >= 2, 10000 * SCALE, `reconnected over ${transport}`);
      await waitFor(async () => (await subs()) >= 1, 5000 * SCALE, 'resubscribed');
      await publish(h, 'r', `after ${transport}`, { headers: bearer(API_KEY) });
      let m;
      do m = await q.next(5000 * SCALE); while (m.body !== `after ${transport}`);
      await c.client.deactivate();
    }
  });
});

test('STOMP over SockJS: access control as over WebSocket (passcode token, ?token=, herald_token cookie)', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const tok = await mint({ sub: 'u1', subscribe: ['news'], publish: ['news'] });
    // no credential: ERROR authentication required
    await assert.rejects(sockStomp(h, 'xhr-polling'), /authentication required/);
    // passcode
    const c = await sockStomp(h, 'xhr-streaming', { connectHeaders: { passcode: tok } });
    c.client.subscribe('/topic/news', (m) => c.messages.push(m));
    await waitFor(async () => (await getJSON(h, '/channels/news', { headers: bearer(API_KEY) })).subscribers >= 1, 5000 * SCALE, 'sub');
    await publish(h, 'news', 'n1', { headers: bearer(API_KEY) });
    assert.equal((await c.messages.next(5000 * SCALE)).body, 'n1');
    await c.client.deactivate();
    // forbidden destination: ERROR forbidden
    const c2 = await sockStomp(h, 'xhr-polling', { connectHeaders: { passcode: tok } });
    const err = new Promise((r) => (c2.client.onStompError = r));
    c2.client.subscribe('/topic/secret', () => {});
    assert.equal((await withTimeout(err, 5000 * SCALE, 'ERROR')).headers.message, 'forbidden');
    await c2.client.deactivate();
    // ?token= on the session URL and the herald_token cookie identify the session as on /stomp
    for (const how of ['query', 'cookie']) {
      const base = `/stomp/000/${sid()}`;
      const q = how === 'query' ? `?token=${tok}` : '';
      const hd = how === 'cookie' ? { Cookie: `herald_token=${tok}` } : {};
      assert.equal((await post(h, `${base}/xhr${q}`, '', hd)).text, 'o\n');
      assert.equal((await post(h, `${base}/xhr_send${q}`, JSON.stringify(['CONNECT\naccept-version:1.2\nhost:x\n\n\0']), hd)).status, 204);
      assert.match((await post(h, `${base}/xhr${q}`, '', hd)).text, /^a\["CONNECTED/, how);
    }
    // the session belongs to the identity that opened it: another user's (or no) credential gets 404
    const other = await mint({ sub: 'u2', subscribe: ['news'], publish: ['news'] });
    const own = `/stomp/000/${sid()}`;
    assert.equal((await post(h, `${own}/xhr?token=${tok}`)).text, 'o\n');
    assert.equal((await post(h, `${own}/xhr_send?token=${other}`, '["x"]')).status, 404);
    assert.equal((await post(h, `${own}/xhr_send`, '["x"]')).status, 404);
    assert.equal((await post(h, `${own}/xhr?token=${other}`)).status, 404);
    assert.equal((await post(h, `${own}/xhr_send?token=${tok}`, JSON.stringify(['CONNECT\naccept-version:1.2\nhost:x\n\n\0']))).status, 204);
    assert.match((await post(h, `${own}/xhr?token=${tok}`)).text, /^a\["CONNECTED/);
        // a bad credential on the opening request: 401
    assert.equal((await post(h, `/stomp/000/${sid()}/xhr?token=bad.token.x`)).status, 401);
  });
});

/* ---------------------------------------------------------------- the /ws protocol over SockJS */

/* A sockjs-client at /ws with the given transport: messages (parsed JSON) queue up. */
async function sockWs(h, transport, query = '') {
  const q = boundedQueue(`/ws over ${transport}`);
  const s = new SockJS(`${h.base}/ws${query}`, null, { transports: [transport] });
  const st = { s, q, closed: null };
  s.onmessage = (e) => q.push(JSON.parse(e.data));
  s.onclose = (e) => {
    st.closed = { code: e.code, reason: e.reason };
    q.end();
  };
  await withTimeout(new Promise((r, j) => {
    s.onopen = r;
    setTimeout(() => j(new Error('no open')), 8000 * SCALE);
  }), 9000 * SCALE, `open /ws over ${transport}`);
  st.next = async (op) => {
    for (;;) {
      const m = await q.next(5000 * SCALE);
      if (!m) throw new Error(`closed while waiting for ${op}`);
      if (!op || m.op === op) return m;
    }
  };
  return st;
}

for (const transport of ['websocket', 'xhr-streaming', 'xhr-polling']) {
  test(`/ws protocol over sockjs-client (${transport}): welcome, subscribe, message, publish reply`, T, async () => {
    await withHerald({}, async (h) => {
      const c = await sockWs(h, transport);
      assert.equal(c.s.transport, transport);
      const w = await c.next('welcome');
      assert.equal(w.protocol, 'herald.v1');
      c.s.send(JSON.stringify({ op: 'subscribe', ref: 1, channel: 'wx' }));
      assert.deepEqual(await c.next('reply'), { op: 'reply', ref: 1, ok: true, last_id: '0' });
      await publish(h, 'wx', 'line\u2028sep "q" </script>');
      const m = await c.next('message');
      assert.equal(m.data, 'line\u2028sep "q" </script>');
      assert.equal(m.channel, 'wx');
      c.s.send(JSON.stringify({ op: 'publish', ref: 'p', channel: 'wx', data: 'from sockjs' }));
      const got = [await c.next(), await c.next()].sort((a, b) => a.op.localeCompare(b.op));
      assert.equal(got[0].op, 'message');
      assert.equal(got[0].data, 'from sockjs');
      assert.equal(got[1].ref, 'p');
      assert.equal(got[1].ok, true);
      c.s.send('not json');
      assert.equal((await c.next('reply')).error.code, 'bad_json');
      const kind = { websocket: 'websocket', 'xhr-streaming': 'xhr_streaming', 'xhr-polling': 'xhr' }[transport];
      assert.equal((await metrics(h)).get(`herald_sockjs_sessions{transport="${kind}"}`), 1);
      c.s.close();
    });
  });
}

test('/ws protocol over SockJS: token on the URL, the admin disconnect closes the session with its code', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const tok = await mint({ sub: 'w1', subscribe: ['news'] });
    for (const transport of ['xhr-streaming', 'websocket']) {
      const c = await sockWs(h, transport, `?token=${tok}`);
      const w = await c.next('welcome');
      assert.equal(w.auth, true);
      assert.equal(w.user, 'w1');
      const r = await request(h, 'POST', '/users/w1/disconnect', {
        headers: { ...bearer(API_KEY), 'Content-Type': 'application/json' },
        body: JSON.stringify({ reason: 'bye now', reconnect: true }),
      });
      assert.equal(r.status, 200);
      const d = await c.next('disconnect');
      assert.equal(d.reason, 'bye now');
      await waitFor(() => c.closed, 5000 * SCALE, 'closed');
      assert.equal(c.closed.code, 4002);
      assert.equal(c.closed.reason, 'bye now');
    }
    // without a token the /ws session is anonymous: a subscribe is refused in the protocol
    const a = await sockWs(h, 'xhr-polling');
    assert.equal((await a.next('welcome')).user, null);
    a.s.send(JSON.stringify({ op: 'subscribe', ref: 1, channel: 'news' }));
    assert.equal((await a.next('reply')).ok, false);
    a.s.close();
  });
});
