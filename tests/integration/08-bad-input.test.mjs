// Hostile and malformed requests over raw sockets; HTTP/1.1 framing (pipelining, chunked
// bodies, keep-alive). After every bad request the server must still serve a normal one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  withHerald, request, getJSON, rawExchange, rawConn, rawRequest, parseResponses, SCALE,
} from '../lib/herald.mjs';

const T = { timeout: 60000 * SCALE };

async function stillServes(h, after) {
  const r = await request(h, 'GET', '/healthz');
  assert.equal(r.status, 200, `server still serves after ${after}`);
}

function expectError(resp, status, what, errorText) {
  assert.ok(resp, `${what}: no complete response`);
  assert.equal(resp.status, status, `${what}: status ${resp.status} (want ${status}); body ${resp.text}`);
  assert.match(resp.headers['content-type'] || '', /application\/json/, `${what}: JSON content type`);
  let j;
  try {
    j = JSON.parse(resp.text);
  } catch {
    assert.fail(`${what}: error body is not JSON: ${JSON.stringify(resp.text)}`);
  }
  assert.equal(typeof j.error, 'string', `${what}: {"error": "..."}`);
  if (errorText) assert.equal(j.error, errorText, what);
}

const H = 'Host: localhost\r\n';

const CASES = [
  ['malformed request line', 'GARBAGE\r\n\r\n', 400],
  ['request line with too many parts', 'GET / / HTTP/1.1\r\n' + H + '\r\n', 400],
  ['lowercase / junk version', 'GET /healthz HTTX/1.1\r\n' + H + '\r\n', 400],
  ['header name with a space', 'GET /healthz HTTP/1.1\r\n' + H + 'Bad Header: y\r\n\r\n', 400],
  ['header line without a colon', 'GET /healthz HTTP/1.1\r\n' + H + 'NoColonHere\r\n\r\n', 400],
  ['header section over the limit', 'GET /healthz HTTP/1.1\r\n' + H + `X-Big: ${'b'.repeat(20000)}\r\n\r\n`, 431],
  ['too many headers', 'GET /healthz HTTP/1.1\r\n' + H + Array.from({ length: 100 }, (_, i) => `X-H${i}: v\r\n`).join('') + '\r\n', 431],
  ['request-target over the limit', `GET /sub/${'a'.repeat(5000)}?mode=poll HTTP/1.1\r\n${H}\r\n`, 414],
  ['body over max_body (Content-Length)', 'POST /pub/big HTTP/1.1\r\n' + H + 'Content-Length: 2000\r\n\r\n', 413],
  ['HTTP/2.0 request line', 'GET /healthz HTTP/2.0\r\n' + H + '\r\n', 505],
  ['Transfer-Encoding gzip', 'POST /pub/x HTTP/1.1\r\n' + H + 'Transfer-Encoding: gzip\r\n\r\n', 501],
  ['Transfer-Encoding with Content-Length', 'POST /pub/x HTTP/1.1\r\n' + H + 'Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n', 400],
  ['conflicting Content-Length', 'POST /pub/x HTTP/1.1\r\n' + H + 'Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd', 400],
  ['non-numeric Content-Length', 'POST /pub/x HTTP/1.1\r\n' + H + 'Content-Length: 3x\r\n\r\nabc', 400],
  ['bad chunk size', 'POST /pub/x HTTP/1.1\r\n' + H + 'Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n', 400],
  ['unknown path', 'GET /nope HTTP/1.1\r\n' + H + '\r\n', 404],
  ['wrong method GET /pub/x', 'GET /pub/x HTTP/1.1\r\n' + H + '\r\n', 405],
  ['wrong method DELETE /sub/x', 'DELETE /sub/x HTTP/1.1\r\n' + H + '\r\n', 405],
  ['unknown mode', 'GET /sub/x?mode=bogus HTTP/1.1\r\n' + H + '\r\n', 400],
];

const BAD_CHANNELS = [
  ['GET', '/sub/..%2f?mode=poll'],
  ['POST', '/pub/$SYS'],
  ['POST', '/pub/%24SYS'],
  ['GET', '/sub/?mode=poll'],
  ['POST', '/pub/'],
  ['GET', `/sub/${'c'.repeat(300)}?mode=poll`],
  ['GET', `/sub/${'c'.repeat(256)}?mode=poll`],
  ['GET', '/sub/a//b?mode=poll'],
  ['GET', '/sub/a/?mode=poll'],
  ['GET', '/sub///a?mode=poll'], // "/a" is a channel (MQTT's /TopicA); "//a" is not
  ['GET', '/sub/%2F?mode=poll'],
  ['GET', '/sub/a%00b?mode=poll'],
  ['GET', '/sub/a%20b?mode=poll'],
  ['GET', '/sub/a%zz?mode=poll'],
  ['GET', '/sub/caf%C3%A9?mode=poll'],
  ['GET', '/sub/a,,b?mode=poll'],
  ['GET', '/sub/a$b?mode=poll'],
  ['POST', '/pub/a%2Cb'],
];

test('malformed and over-limit requests get the right 4xx/5xx JSON error; the server keeps serving', T, async () => {
  await withHerald({ 'max-body': 1024 }, async (h) => {
    for (const [what, bytes, status] of CASES) {
      const r = await rawExchange(h.port, bytes);
      assert.ok(!r.timedOut || r.responses.length, `${what}: no answer (got ${JSON.stringify(r.data.toString().slice(0, 200))})`);
      expectError(r.responses[0], status, what);
      await stillServes(h, what);
    }
  });
});

test('chunked body over max_body is 413', T, async () => {
  await withHerald({ 'max-body': 1024 }, async (h) => {
    const chunk = 'x'.repeat(1100);
    const r = await rawExchange(h.port, 'POST /pub/big HTTP/1.1\r\n' + H + 'Transfer-Encoding: chunked\r\n\r\n' + `${(1100).toString(16)}\r\n${chunk}\r\n`);
    expectError(r.responses[0], 413, 'chunked over max_body');
    await stillServes(h, 'chunked over max_body');
    // exactly max_body is fine
    const ok = await request(h, 'POST', '/pub/big', { body: 'y'.repeat(1024), headers: { 'Content-Length': '1024' } });
    assert.equal(ok.status, 200);
  });
});

test('invalid channel names are 400 {"error":"invalid channel name"}', T, async () => {
  await withHerald(async (h) => {
    for (const [method, target] of BAD_CHANNELS) {
      const body = method === 'POST' ? 'x' : '';
      const r = await rawExchange(h.port, `${method} ${target} HTTP/1.1\r\n${H}Content-Length: ${body.length}\r\n\r\n${body}`);
      expectError(r.responses[0], 400, `${method} ${target.slice(0, 40)}`, 'invalid channel name');
      await stillServes(h, target);
    }
    // the boundaries and the allowed alphabet are accepted
    const ok = [
      'c'.repeat(255),
      'A-Z_a-z.0-9~:@=!',
      'seg/ment/ed',
      '%61%62c', // percent-decoded to "abc"
    ];
    for (const name of ok) {
      const r = await request(h, 'GET', `/sub/${name}?mode=poll`);
      assert.equal(r.status, 200, `channel ${name.slice(0, 30)} is valid: ${r.text}`);
    }
    const a = await request(h, 'POST', '/pub/%61%62c', { body: 'p', headers: { 'Content-Length': '1' } });
    assert.equal(a.json().channel, 'abc', 'percent-decoded channel name');
    const dec = await getJSON(h, '/sub/abc?mode=poll&last_id=0');
    assert.equal(dec.count, 1);
  });
});

test('slash-separated names are one channel, distinct from their segments', T, async () => {
  await withHerald(async (h) => {
    const r = await request(h, 'POST', '/pub/a/b', { body: 'deep', headers: { 'Content-Length': '4' } });
    assert.equal(r.status, 200);
    assert.equal(r.json().channel, 'a/b');
    const j = await getJSON(h, '/sub/a/b?mode=poll&last_id=0');
    assert.equal(j.messages[0].data, 'deep');
    const other = await getJSON(h, '/sub/a?mode=poll&last_id=0');
    assert.equal(other.count, 0);
  });
});

test('pipelined requests on one connection are answered in order', T, async () => {
  await withHerald(async (h) => {
    const reqs =
      `POST /pub/pp HTTP/1.1\r\n${H}Content-Length: 3\r\n\r\none` +
      `POST /pub/pp HTTP/1.1\r\n${H}Content-Length: 3\r\n\r\ntwo` +
      `GET /sub/pp?mode=poll&last_id=0 HTTP/1.1\r\n${H}\r\n` +
      `GET /healthz HTTP/1.1\r\n${H}\r\n` +
      `GET /nope HTTP/1.1\r\n${H}\r\n` +
      `GET /channels/pp HTTP/1.1\r\n${H}Connection: close\r\n\r\n`;
    const r = await rawExchange(h.port, reqs, { count: 6 });
    const rs = r.responses;
    assert.equal(rs.length, 6, `6 responses, got ${rs.length}: ${r.data.toString().slice(0, 500)}`);
    assert.deepEqual(rs.map((x) => x.status), [200, 200, 200, 200, 404, 200]);
    assert.equal(JSON.parse(rs[0].text).id, '1');
    assert.equal(JSON.parse(rs[1].text).id, '2');
    assert.deepEqual(JSON.parse(rs[2].text).messages.map((m) => m.data), ['one', 'two']);
    assert.deepEqual(JSON.parse(rs[3].text), { status: 'ok', store: 'ok' });
    assert.equal(JSON.parse(rs[5].text).last_id, '2');
    // the server closes after Connection: close
    const closed = await rawRequest(h.port, `GET /healthz HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, { timeout: 3000 * SCALE });
    assert.ok(closed.closed, 'connection closed after Connection: close');
    assert.equal(parseResponses(closed.data, true).length, 1);
  });
});

test('pipelined requests written one byte at a time', T, async () => {
  await withHerald(async (h) => {
    const reqs = `POST /pub/slow HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nbytes` + `GET /sub/slow?mode=poll&last_id=0 HTTP/1.1\r\n${H}\r\n`;
    const r = await rawExchange(h.port, [...Buffer.from(reqs)].map((b) => Buffer.from([b])), { count: 2 });
    assert.equal(r.responses.length, 2);
    assert.equal(JSON.parse(r.responses[1].text).messages[0].data, 'bytes');
  });
});

test('chunked request bodies publish the de-chunked payload (extensions and trailers too)', T, async () => {
  await withHerald(async (h) => {
    const c = await rawConn(h.port);
    try {
      const parts = [
        `POST /pub/ck HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n`,
        '3\r\nhel\r\n',
        '2;ext=1\r\nlo\r\n',
        'A\r\n, 0123456\n\r\n',
        '0\r\nX-Trailer: t\r\n\r\n',
      ];
      for (const p of parts) c.write(p);
      const r1 = await c.response();
      assert.equal(r1.status, 200, r1.text);
      assert.equal(JSON.parse(r1.text).id, '1');
      // keep-alive after a chunked body: next request on the same connection
      c.write(`GET /sub/ck?mode=poll&last_id=0 HTTP/1.1\r\n${H}\r\n`);
      const r2 = await c.response();
      assert.equal(JSON.parse(r2.text).messages[0].data, 'hello, 0123456\n');
      // zero-length chunked body
      c.write(`POST /pub/ck HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`);
      const r3 = await c.response();
      assert.equal(r3.status, 200);
      assert.equal(JSON.parse(r3.text).id, '2');
    } finally {
      c.close();
    }
  });
});

test('keep-alive: several requests on one connection; HTTP/1.0 closes unless keep-alive', T, async () => {
  await withHerald(async (h) => {
    const c = await rawConn(h.port);
    try {
      for (let i = 0; i < 5; i++) {
        c.write(`GET /healthz HTTP/1.1\r\n${H}\r\n`);
        const r = await c.response();
        assert.equal(r.status, 200);
        assert.equal(r.version, '1.1');
        assert.ok(!c.closed, 'connection stays open');
      }
      c.write(`POST /pub/ka HTTP/1.1\r\n${H}Content-Length: 2\r\n\r\nhi`);
      assert.equal((await c.response()).status, 200);
      c.write(`GET /sub/ka?mode=poll&last_id=0 HTTP/1.1\r\n${H}\r\n`);
      assert.equal(JSON.parse((await c.response()).text).messages[0].data, 'hi');
    } finally {
      c.close();
    }
    const r10 = await rawRequest(h.port, 'GET /healthz HTTP/1.0\r\n\r\n', { timeout: 3000 * SCALE });
    assert.ok(r10.closed, 'HTTP/1.0 without keep-alive is closed after the answer');
    assert.equal(parseResponses(r10.data, true)[0].status, 200);
    const c10 = await rawConn(h.port);
    try {
      c10.write('GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
      assert.equal((await c10.response()).status, 200);
      c10.write('GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
      assert.equal((await c10.response()).status, 200);
    } finally {
      c10.close();
    }
  });
});

test('a client that disconnects mid-request or mid-body does not disturb the server', T, async () => {
  await withHerald(async (h) => {
    for (const partial of [
      'GET /heal',
      `POST /pub/half HTTP/1.1\r\n${H}Content-Length: 100\r\n\r\nonly-some`,
      `POST /pub/half HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nab`,
    ]) {
      await rawRequest(h.port, partial, { timeout: 50 });
      await stillServes(h, `abandoned ${JSON.stringify(partial.slice(0, 20))}`);
    }
    const j = await getJSON(h, '/sub/half?mode=poll&last_id=0');
    assert.equal(j.count, 0, 'a partial body is never published');
  });
});
