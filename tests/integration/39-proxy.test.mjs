// Issue 14 part 5: herald behind a real nginx that terminates TLS, with the configuration the
// README gives (packaging/nginx-herald.conf, ports and paths put in): publish, SSE and iframe
// streams arrive unbuffered, a long poll outlives nginx's default timeouts' reach and is
// answered, WebSocket /sub, the /ws protocol and MQTT over WebSocket upgrade through it; with
// trusted_proxies the access log and every log line name the real client, a client's own
// X-Forwarded-For is not believed, and credentials in the target never reach the log.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import https from 'node:https';
import net from 'node:net';
import { spawn, execFileSync } from 'node:child_process';
import WebSocket from 'ws';
import mqtt from 'mqtt';
import { startHerald, freePort, request, waitFor, sleep, ROOT, SCALE } from '../lib/herald.mjs';

const T = { timeout: 90000 * SCALE };
const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => fs.existsSync(p));

/* A throwaway CA and a certificate for 127.0.0.1 signed by it. */
function makeCerts(dir) {
  const o = (args) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  o(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=herald test CA', '-keyout', 'ca.key', '-out', 'ca.crt']);
  o(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=127.0.0.1',
    '-keyout', 'srv.key', '-out', 'srv.csr']);
  fs.writeFileSync(path.join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  o(['x509', '-req', '-in', 'srv.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2',
    '-extfile', 'ext.cnf', '-out', 'srv.crt']);
  return fs.readFileSync(path.join(dir, 'ca.crt'));
}

/* nginx with the shipped server block: its listen, certificate and upstream put in; it connects
 * to herald from 127.0.0.2 (proxy_bind) so that herald can tell the proxy from its clients. */
async function startNginx(dir, heraldPort) {
  const port = await freePort();
  let block = fs.readFileSync(path.join(ROOT, 'packaging/nginx-herald.conf'), 'utf8');
  block = block
    .replace('server 127.0.0.1:8080;', `server 127.0.0.1:${heraldPort};`)
    .replace('listen 443 ssl;', `listen 127.0.0.1:${port} ssl;`)
    .replace('/etc/ssl/push.example.com.crt', path.join(dir, 'srv.crt'))
    .replace('/etc/ssl/push.example.com.key', path.join(dir, 'srv.key'))
    .replace('proxy_pass http://herald;', 'proxy_pass http://herald;\n        proxy_bind 127.0.0.2;');
  assert.match(block, new RegExp(`listen 127.0.0.1:${port} ssl`), 'the shipped block changed shape');
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `${t}_temp_path ${dir}/${t};`).join('\n  ');
  const conf = `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
${process.getuid?.() === 0 ? 'user root;' : ''}
events { worker_connections 256; }
http {
  access_log off;
  ${temp}
${block}
}
`;
  fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
  const proc = spawn(NGINX, ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  const exited = new Promise((res) => proc.on('exit', res));
  await waitFor(async () => {
    if (proc.exitCode !== null) throw new Error(`nginx exited: ${out}${fs.existsSync(`${dir}/error.log`) ? fs.readFileSync(`${dir}/error.log`, 'utf8') : ''}`);
    try {
      await new Promise((res, rej) => {
        const s = net.connect(port, '127.0.0.1', () => (s.destroy(), res()));
        s.on('error', rej);
      });
      return true;
    } catch {
      return false;
    }
  }, 10000 * SCALE, 'nginx listening');
  return {
    port,
    async stop() {
      proc.kill('SIGQUIT');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

/* An HTTPS request through nginx: {status, text}. */
function req(port, ca, method, p, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const r = https.request({ host: '127.0.0.1', port, method, path: p, ca, headers: { Host: '127.0.0.1', ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    r.on('error', reject);
    r.end(body);
  });
}

/* A streaming GET through nginx: resolves with the response; chunks land in .text as they come. */
function stream(port, ca, p, headers = {}) {
  return new Promise((resolve, reject) => {
    const r = https.request({ host: '127.0.0.1', port, method: 'GET', path: p, ca, headers: { Host: '127.0.0.1', ...headers } }, (res) => {
      res.setEncoding('utf8');
      const s = { res, text: '', close: () => r.destroy() };
      res.on('data', (d) => (s.text += d));
      resolve(s);
    });
    r.on('error', reject);
    r.end();
  });
}

test('through nginx (the shipped configuration, TLS at nginx): publish, SSE, iframe, long poll, WebSocket /sub, /ws, MQTT over WebSocket; logs name the real client', { ...T, skip: !NGINX && 'nginx is not installed' }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-nginx-'));
  const ca = makeCerts(dir);
  const h = await startHerald({ trusted_proxies: '127.0.0.2', per_ip_exempt: '127.0.0.1 127.0.0.2 ::1', access_log: 'stderr' });
  const ng = await startNginx(dir, h.port);
  try {
    /* SSE: the event comes through at once, before the stream ends (no buffering) */
    const sse = await stream(ng.port, ca, '/sub/news?token=secret-in-the-url', { Accept: 'text/event-stream' });
    assert.equal(sse.res.statusCode, 200);
    assert.match(sse.res.headers['content-type'], /text\/event-stream/);
    const ifr = await stream(ng.port, ca, '/sub/news?mode=iframe');
    const lp = req(ng.port, ca, 'GET', '/sub/news?mode=longpoll');
    await waitFor(async () => (await request(h, 'GET', '/channels/news')).json().subscribers === 2, 5000 * SCALE, 'two stream subscribers');
    await sleep(300); /* the long poll is parked too */
    const ws = new WebSocket(`wss://127.0.0.1:${ng.port}/sub/news`, { ca, headers: { Host: '127.0.0.1' } });
    const wsMsgs = [];
    ws.on('message', (d) => wsMsgs.push(d.toString()));
    await new Promise((res, rej) => (ws.once('open', res), ws.once('error', rej)));
    const wj = new WebSocket(`wss://127.0.0.1:${ng.port}/ws`, ['herald.v1'], { ca, headers: { Host: '127.0.0.1' } });
    const wjMsgs = [];
    wj.on('message', (d) => wjMsgs.push(JSON.parse(d.toString())));
    await new Promise((res, rej) => (wj.once('open', res), wj.once('error', rej)));
    await waitFor(() => wjMsgs.length >= 1, 5000 * SCALE, '/ws welcome');
    assert.equal(wjMsgs[0].op, 'welcome');
    wj.send(JSON.stringify({ op: 'subscribe', channel: 'news', ref: 1 }));
    const mq = mqtt.connect(`wss://127.0.0.1:${ng.port}/mqtt`, { ca, wsOptions: { headers: { Host: '127.0.0.1' } }, reconnectPeriod: 0 });
    const mqMsgs = [];
    mq.on('message', (t, p) => mqMsgs.push([t, p.toString()]));
    await new Promise((res, rej) => (mq.once('connect', res), mq.once('error', rej)));
    await new Promise((res, rej) => mq.subscribe('news', (e) => (e ? rej(e) : res())));
    await waitFor(() => wjMsgs.some((m) => m.op === 'reply' && m.ref === 1), 5000 * SCALE, '/ws subscribed');

    const pub = await req(ng.port, ca, 'POST', '/pub/news', { body: 'through nginx', headers: { 'X-Forwarded-For': '203.0.113.9' } });
    assert.equal(pub.status, 200, pub.text);
    await waitFor(() => sse.text.includes('data: through nginx'), 5000 * SCALE, 'the SSE event through nginx');
    await waitFor(() => ifr.text.includes('through nginx'), 5000 * SCALE, 'the iframe chunk through nginx');
    const l = await lp;
    assert.equal(l.status, 200);
    assert.equal(JSON.parse(l.text).messages[0].data, 'through nginx');
    await waitFor(() => wsMsgs.includes('through nginx'), 5000 * SCALE, 'the WebSocket frame through nginx');
    await waitFor(() => wjMsgs.some((m) => m.op === 'message' && m.data === 'through nginx'), 5000 * SCALE, '/ws message');
    await waitFor(() => mqMsgs.some(([t, p]) => t === 'news' && p === 'through nginx'), 5000 * SCALE, 'MQTT over WSS');
    assert.ok(!sse.res.complete, 'the SSE stream is still open');
    sse.close();
    ifr.close();
    ws.close();
    wj.close();
    await new Promise((res) => mq.end(false, {}, res));

    /* a client talking to herald directly: its X-Forwarded-For is not believed */
    const direct = await request(h, 'GET', '/sub/news?mode=poll', { headers: { 'X-Forwarded-For': '198.51.100.7' } });
    assert.equal(direct.status, 200);
    await sleep(100);
    const log = h.out;
    if (process.env.SHOW_LOG) console.log(log);
    /* the access log: the real client (127.0.0.1, nginx's peer) via the proxy; the address the
     * client put in X-Forwarded-For itself is not taken for it */
    assert.match(log, /127\.0\.0\.1 \(via 127\.0\.0\.2:\d+\) \[[^\]]+\] "POST \/pub\/news" 200 \d+ \d+ms "/);
    assert.doesNotMatch(log, /203\.0\.113\.9 \(via/);
    assert.doesNotMatch(log, /198\.51\.100\.7/);
    assert.match(log, /127\.0\.0\.1:\d+ \[[^\]]+\] "GET \/sub\/news\?mode=poll" 200/);
    assert.match(log, /"GET \/sub\/news\?mode=iframe" 200 - /);
    assert.match(log, /"GET \/sub\/news\?token=REDACTED" 200 - /);
    assert.match(log, /"GET \/ws" 101 - /);
    assert.doesNotMatch(log, /secret-in-the-url/);
  } finally {
    await ng.stop();
    await h.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
