// tests/lib/redis.mjs - a redis-server (and redis-sentinel) of the test's own, on free loopback
// ports, data in a tmp dir, stopped by PID. Every wait is bounded.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, run, waitFor, withTimeout, SCALE } from './herald.mjs';

/* Starts redis-server. aof: append-only file fsynced on every write, so a restart (stop() then
 * start(), same port and dir) keeps the data. args: more redis-server arguments. auth: {password,
 * user} for redis-cli (r.cli) when the server requires them. Returns r with: addr, port, cli(...)
 * (redis-cli against it, bounded, trimmed stdout), feeds() (herald feeds subscribed now),
 * start(), stop() (SIGTERM, bounded), kill() (SIGKILL), destroy() (stop and remove the dir). */
export async function startRedis({ aof = false, args = [], auth = null } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-redis-'));
  const r = { port: await freePort(), dir, proc: null, log: '', exit: null, auth };
  r.addr = `127.0.0.1:${r.port}`;
  r.cli = async (...a) => {
    const creds = [];
    if (r.auth?.user) creds.push('--user', r.auth.user);
    if (r.auth?.password) creds.push('--pass', r.auth.password, '--no-auth-warning');
    const x = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(r.port), ...creds, ...a], { timeout: 5000 * SCALE });
    return x.stdout.toString('utf8').trim();
  };
  /* how many herald feeds (PSUBSCRIBE connections) Redis has right now */
  r.feeds = async () => (await r.cli('client', 'list', 'type', 'pubsub')).split('\n').filter((l) => /\bpsub=[1-9]/.test(l)).length;
  r.start = async () => {
    const a = ['--port', String(r.port), '--bind', '127.0.0.1', '--dir', dir, '--save', '',
      '--appendonly', aof ? 'yes' : 'no', '--appendfsync', 'always', '--daemonize', 'no', '--logfile', '', ...args];
    const proc = spawn('redis-server', a, { stdio: ['ignore', 'pipe', 'pipe'] });
    r.proc = proc;
    r.exit = new Promise((res) => proc.on('exit', (code, signal) => res({ code, signal })));
    proc.on('error', () => {});
    const keep = (d) => (r.log = (r.log + d.toString()).slice(-4000));
    proc.stdout.on('data', keep);
    proc.stderr.on('data', keep);
    let exited = false;
    r.exit.then(() => (exited = true));
    await waitFor(async () => {
      if (exited) throw new Error(`redis-server exited at start-up: ${r.log}`);
      return (await r.cli('ping')) === 'PONG'; /* "LOADING ..." while it reads its AOF */
    }, 10000 * SCALE, `redis-server on ${r.addr} to answer PING`, 25);
  };
  /* SIGTERM by PID (redis flushes its AOF and exits), bounded; SIGKILL if it does not. */
  r.stop = async () => {
    const proc = r.proc;
    if (!proc) return;
    r.proc = null;
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    try {
      await withTimeout(r.exit, 5000 * SCALE, 'redis-server to exit');
    } catch (e) {
      proc.kill('SIGKILL');
      await r.exit;
      throw e;
    }
  };
  /* SIGKILL by PID: a crash (a failover test's dead master). */
  r.kill = async () => {
    const proc = r.proc;
    if (!proc) return;
    r.proc = null;
    proc.kill('SIGKILL');
    await r.exit;
  };
  r.destroy = async () => {
    try {
      await r.stop();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
  try {
    await r.start();
  } catch (e) {
    await r.destroy().catch(() => {});
    throw e;
  }
  return r;
}

/* The command that runs a sentinel: redis-sentinel (Debian package redis-sentinel), or null when
 * it cannot be run here. */
export async function sentinelCommand() {
  try {
    const x = await run('redis-sentinel', ['--version'], { timeout: 5000 * SCALE });
    return x.code === 0 ? 'redis-sentinel' : null;
  } catch {
    return null;
  }
}

/* Starts one sentinel watching master `name` at 127.0.0.1:masterPort (quorum 1, the short
 * timeouts of a test). Returns s with addr, port, cli(...), master() ("host:port" the sentinel
 * names now), stop() (SIGTERM by PID, bounded, dir removed). */
export async function startSentinel({ cmd = 'redis-sentinel', masterPort, name = 'mymaster', downAfter = 500, failoverTimeout = 2000 }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-sentinel-'));
  const s = { port: await freePort(), dir, log: '' };
  s.addr = `127.0.0.1:${s.port}`;
  const conf = path.join(dir, 'sentinel.conf');
  fs.writeFileSync(conf, [
    `port ${s.port}`, 'bind 127.0.0.1', 'protected-mode no', `dir ${dir}`, 'daemonize no', 'logfile ""',
    `sentinel monitor ${name} 127.0.0.1 ${masterPort} 1`,
    `sentinel down-after-milliseconds ${name} ${downAfter}`,
    `sentinel failover-timeout ${name} ${failoverTimeout}`,
    `sentinel parallel-syncs ${name} 1`, '',
  ].join('\n'));
  const proc = spawn(cmd, [conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exit = new Promise((res) => proc.on('exit', (code, signal) => res({ code, signal })));
  proc.on('error', () => {});
  const keep = (d) => (s.log = (s.log + d.toString()).slice(-6000));
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  s.cli = async (...a) => (await run('redis-cli', ['-h', '127.0.0.1', '-p', String(s.port), ...a], { timeout: 5000 * SCALE })).stdout.toString('utf8').trim();
  s.master = async () => (await s.cli('sentinel', 'get-master-addr-by-name', name)).split('\n').join(':');
  s.stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    try {
      await withTimeout(exit, 5000 * SCALE, 'redis-sentinel to exit');
    } catch {
      proc.kill('SIGKILL');
      await exit;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    let exited = false;
    exit.then(() => (exited = true));
    await waitFor(async () => {
      if (exited) throw new Error(`redis-sentinel exited at start-up: ${s.log}`);
      return (await s.cli('ping')) === 'PONG';
    }, 10000 * SCALE, `redis-sentinel on ${s.addr} to answer PING`, 25);
  } catch (e) {
    await s.stop();
    throw e;
  }
  return s;
}

/* Ends a test that ran nodes on redis: every node must stop cleanly (exit 0: under ASan, no
 * leak), then redis is destroyed; failure (fn's error, or null) gets the nodes' output (and
 * redis's log when logTail) added. Throws what went wrong. */
export async function finishNodes(nodes, redis, failure, { tail = 1500, logTail = 0 } = {}) {
  const stops = await Promise.allSettled(nodes.map((h) => h.stop()));
  await redis.destroy().catch((e) => {
    if (!failure) failure = e;
  });
  const bad = stops.filter((s) => s.status === 'rejected').map((s) => s.reason.message);
  if (failure) {
    if (bad.length) failure.message += `\n(also: ${bad.join('\n')})`;
    nodes.forEach((h, i) => (failure.message += `\n--- node ${i} (${h.base}) output (tail) ---\n${h.tail(tail)}`));
    if (logTail) failure.message += `\n--- redis-server log (tail) ---\n${redis.log.slice(-logTail)}`;
    throw failure;
  }
  if (bad.length) throw new Error(bad.join('\n'));
}
