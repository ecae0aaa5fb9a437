// Packaging and operations (issue 14 part 3): `herald --version` and the herald_build_info
// metric; `herald check-config` (and `serve --check`) accepting and refusing what serve does, with
// serve's own messages, exit codes 0/2, no secret in any output and nothing opened; `make install`
// into a DESTDIR with PREFIX=/usr (the already-built binary, no rebuild) and `make uninstall`;
// the systemd unit verified by systemd-analyze; READY=1 and STOPPING=1 on a NOTIFY_SOCKET the
// test binds (a path and an abstract name; python3 holds the socket, node cannot bind one); and
// the sample herald.conf listing every key of `herald serve --print-config` with its default.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, HERALD_BIN, SCALE, run, request, withHerald, waitFor, freePort } from '../lib/herald.mjs';

const T = { timeout: 60000 * SCALE };
const SAMPLE = path.join(ROOT, 'packaging/herald.conf');
const UNIT = path.join(ROOT, 'packaging/herald.service');
const SECRET = 'packaging-test-secret-0123456789abcdef-XYZ';
const API_KEY = 'packaging-test-api-key-0123456789';

const tmpDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'herald-pkg-'));
const herald = (args, opts) => run(HERALD_BIN, args, opts);
/* A log line without its timestamp: "error auth: ..." */
const strip = (line) => line.replace(/^\S+Z /, '');
const errorLines = (text) => text.split('\n').filter((l) => / error /.test(l) || /^herald: /.test(l)).map(strip);

/* `key = value` lines of --print-config / help serve, as a Map key -> value. */
function keyValues(text, re = /^([a-z0-9_]+) = (.*)$/) {
  const m = new Map();
  for (const line of text.split('\n')) {
    const r = re.exec(line);
    if (r) m.set(r[1], r[2]);
  }
  return m;
}

/* ---------------------------------------------------------------- version */

const VERSION_RE = /^herald ([A-Za-z0-9.+~_-]+) \(([A-Za-z0-9.+~_-]+), built (\d{4}-\d\d-\d\d)\)\nlibraries: OpenSSL \d[^,]*, LMDB \d+\.\d+\.\d+, zlib [\d.]+, jansson [\d.]+, hiredis \d+\.\d+\.\d+, glibc [\d.]+\n$/;

test('herald --version and herald version: one line of herald, one of libraries; the revision is git describe', T, async () => {
  const a = await herald(['--version']);
  assert.equal(a.code, 0, a.stderr);
  const text = a.stdout.toString();
  const m = VERSION_RE.exec(text);
  assert.ok(m, `unexpected --version output: ${JSON.stringify(text)}`);
  const b = await herald(['version']);
  assert.equal(b.stdout.toString(), text);
  const mk = fs.readFileSync(path.join(ROOT, 'Makefile'), 'utf8');
  assert.equal(m[1], /^HERALD_VERSION \?= (\S+)$/m.exec(mk)[1], 'the version is the Makefile\'s HERALD_VERSION');
  // built in a git checkout: git describe (the binary may predate HEAD, so not compared to it)
  const git = spawnSync('git', ['rev-parse', '--show-toplevel'], { cwd: ROOT, encoding: 'utf8' });
  if (git.status === 0 && path.resolve(git.stdout.trim()) === ROOT) assert.notEqual(m[2], 'unknown');
});

test('herald_build_info on /metrics carries the --version strings', T, async () => {
  const m = VERSION_RE.exec((await herald(['--version'])).stdout.toString());
  await withHerald(async (h) => {
    const r = await request(h, 'GET', '/metrics');
    assert.equal(r.status, 200);
    assert.match(r.text, /# TYPE herald_build_info gauge\n/);
    assert.ok(r.text.includes(`\nherald_build_info{version="${m[1]}",revision="${m[2]}",built="${m[3]}"} 1\n`), r.text.slice(0, 400));
  });
});

/* ---------------------------------------------------------------- check-config */

test('check-config: OK for the defaults, flags and the sample herald.conf; opens no store and no listener', T, async () => {
  const dir = tmpDir();
  try {
    const dataDir = path.join(dir, 'data');
    const port = await freePort();
    for (const args of [
      ['check-config'],
      ['check-config', '--data-dir', dataDir, '--http', `127.0.0.1:${port}`, '--history-messages', '5'],
      ['serve', '--check', '--data-dir', dataDir, '--http', `127.0.0.1:${port}`],
      ['check-config', '-c', SAMPLE, '--data-dir', dataDir],
      ['check-config', '--http', '0.0.0.0:8080', '--token-hmac-secret', SECRET, '--api-keys', API_KEY],
    ]) {
      const r = await herald(args, { spawn: { cwd: dir } });
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stdout.toString(), 'configuration OK\n');
      assert.ok(!r.stderr.includes(SECRET) && !r.stderr.includes(API_KEY), r.stderr);
    }
    assert.ok(!fs.existsSync(dataDir), 'check-config created the data directory');
    assert.ok(!fs.existsSync(path.join(dir, 'herald-data')), 'check-config opened the default store');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('check-config: a bad key, value or file exits 2 with the message serve gives, never a secret', T, async () => {
  const dir = tmpDir();
  try {
    const conf = (name, text) => {
      const p = path.join(dir, name);
      fs.writeFileSync(p, text);
      return p;
    };
    const badKey = conf('bad-key.conf', '[server]\nno_such_key = 1\n');
    const badValue = conf('bad-value.conf', `[auth]\ntoken_hmac_secret = ${SECRET}\n[http]\nmax_headers = 1000\n`);
    const jwks = conf('bad.jwks', '{"keys": [ {"kty": "RSA"');
    const perms = conf('bad.rules', 'user subscribe user/{sub}/#\nnobody knows this verb\n');
    const secretFile = conf('short.secret', 'too-short\n');
    const missing = path.join(dir, 'missing');
    const cases = [
      { args: ['--no-such-key', '1'], want: /herald: --no-such-key: unknown option/ },
      { args: ['-c', badKey], want: /bad-key\.conf: line 2: unknown key 'no_such_key'/ },
      { args: ['-c', badValue], want: /bad-value\.conf: line 4: max_headers: 1000 out of range/ },
      { args: ['-c', missing], want: /missing: No such file or directory/ },
      { args: ['--token-hmac-secret-file', missing], want: /error auth: .*missing/ },
      { args: ['--token-hmac-secret-file', secretFile], want: /error auth: .*(short|bytes)/ },
      { args: ['--token-public-key', missing], want: /error auth: .*missing/ },
      { args: ['--token-jwks-file', jwks], want: /error auth: token_jwks_file .*bad\.jwks/ },
      { args: ['--permissions-file', perms], want: /error auth: permissions_file .*bad\.rules/ },
      { args: ['--password-file', missing], want: /error auth: .*missing/ },
      { args: ['--api-keys', 'short'], want: /error auth: api key 1 is too short/ },
      { args: ['--per-ip-exempt', 'not-an-address'], want: /error per_ip_exempt: / },
      { args: ['--http', '0.0.0.0:8080'], want: /error refusing to serve beyond loopback/, open: true },
      { args: ['--engine', 'redis', '--redis', '""'], want: /error engine = redis: the redis address is empty/ },
    ];
    for (const { args, want, open } of cases) {
      // secrets on the command line must not come back in any message
      const all = [...args, ...(open ? [] : ['--token-hmac-secret', SECRET]), '--data-dir', path.join(dir, 'data')];
      const c = await herald(['check-config', ...all]);
      const what = `check-config ${args.join(' ')}`;
      assert.equal(c.code, 2, `${what}: exit ${c.code}, stderr ${c.stderr}`);
      assert.equal(c.stdout.toString(), '', `${what} printed on stdout`);
      assert.match(c.stderr, want, what);
      assert.ok(!c.stderr.includes(SECRET), `${what} printed the secret`);
      // serve refuses the same configuration with the same message (exit 2 for the file and
      // flags, 1 for what it loads), before it opens anything
      const s = await herald(['serve', ...all]);
      assert.ok(s.code === 1 || s.code === 2, `serve ${args.join(' ')} exited ${s.code}`);
      assert.deepEqual(errorLines(c.stderr), errorLines(s.stderr), `${what}: serve said otherwise`);
    }
    assert.ok(!fs.existsSync(path.join(dir, 'data')), 'a store was opened');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/* ---------------------------------------------------------------- the sample herald.conf */

test('packaging/herald.conf lists every key of --print-config with its default, and is valid', T, async () => {
  const p = await herald(['serve', '--print-config']);
  assert.equal(p.code, 0, p.stderr);
  const defaults = keyValues(p.stdout.toString());
  assert.ok(defaults.size > 90, `only ${defaults.size} keys in --print-config`);
  const text = fs.readFileSync(SAMPLE, 'utf8');
  const body = text.split('\n# [namespace NAME]')[0]; // the namespace example repeats some keys
  const commented = keyValues(body, /^#([a-z0-9_]+) = (.*)$/);
  const set = keyValues(body);
  const missing = [...defaults.keys()].filter((k) => !commented.has(k) && !set.has(k));
  assert.deepEqual(missing, [], 'keys missing from packaging/herald.conf: regenerate it with `build/herald help config > packaging/herald.conf`');
  const stale = [...commented].filter(([k, v]) => defaults.get(k) !== v).map(([k, v]) => `${k}: ${v} (default ${defaults.get(k)})`);
  assert.deepEqual(stale, [], 'commented-out defaults that are not the defaults');
  const unknown = [...commented.keys(), ...set.keys()].filter((k) => !defaults.has(k));
  assert.deepEqual(unknown, [], 'keys in the sample that herald does not know');
  assert.deepEqual([...set.keys()], [], 'the sample sets no key (every one is commented out at its default)');
  // each key has its comment line right above it
  const lines = body.split('\n');
  for (let i = 0; i < lines.length; i++)
    if (/^#?[a-z0-9_]+ = /.test(lines[i])) assert.match(lines[i - 1], /^# \S/, `no comment above ${lines[i]}`);
  const c = await herald(['check-config', '-c', SAMPLE]);
  assert.equal(c.code, 0, c.stderr);
  const gen = await herald(['help', 'config']);
  assert.ok(gen.stdout.toString() === text,
    'packaging/herald.conf differs from `herald help config`: regenerate it with `build/herald help config > packaging/herald.conf`');
});

test('herald help serve lists every key with its default and a description', T, async () => {
  const p = await herald(['serve', '--print-config']);
  const defaults = keyValues(p.stdout.toString());
  const h = await herald(['help', 'serve']);
  assert.equal(h.code, 0, h.stderr);
  const text = h.stdout.toString();
  assert.match(text, /^usage: herald serve /);
  const listed = keyValues(text, /^ {2}([a-z0-9_]+) = (.*)$/);
  assert.deepEqual([...listed.keys()].sort(), [...defaults.keys()].sort());
  for (const [k, v] of defaults) assert.equal(listed.get(k), v, k);
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++)
    if (/^ {2}[a-z0-9_]+ = /.test(lines[i])) assert.match(lines[i + 1], /^ {6}\S/, `no description under ${lines[i]}`);
  const cfg = await herald(['help', 'config']);
  assert.equal(cfg.code, 0);
  assert.equal(keyValues(cfg.stdout.toString().split('\n# [namespace NAME]')[0], /^#([a-z0-9_]+) = (.*)$/).size, defaults.size);
});

/* ---------------------------------------------------------------- make install */

const BUILT = path.join(ROOT, 'build/herald');

/* make in the source tree with -o build/herald: the binary already built is installed as it is
 * (nothing is compiled or linked), whichever build HERALD_BIN is. */
const make = (args) => run('make', ['--no-print-directory', '-o', 'build/herald', ...args], { spawn: { cwd: ROOT }, timeout: 60000 * SCALE });

test('make install DESTDIR=... PREFIX=/usr installs the binary, unit, man page and herald.conf; uninstall removes them', T, async (t) => {
  if (!fs.existsSync(BUILT)) {
    t.skip('build/herald is not built');
    return;
  }
  const dest = tmpDir();
  try {
    const before = fs.statSync(BUILT).mtimeMs;
    const r = await make(['install', `DESTDIR=${dest}`, 'PREFIX=/usr']);
    assert.equal(r.code, 0, `make install: ${r.stderr}\n${r.stdout}`);
    assert.doesNotMatch(r.stdout.toString(), /\bCC\b|-o build\/herald/, 'make install compiled or linked');
    assert.equal(fs.statSync(BUILT).mtimeMs, before, 'build/herald was rebuilt');
    const bin = path.join(dest, 'usr/bin/herald');
    assert.ok(fs.statSync(bin).mode & 0o111, 'the binary is executable');
    assert.ok(fs.readFileSync(bin).equals(fs.readFileSync(BUILT)), 'the installed binary is build/herald');
    const v = await run(bin, ['--version']);
    assert.match(v.stdout.toString(), VERSION_RE);
    const unit = fs.readFileSync(path.join(dest, 'usr/lib/systemd/system/herald.service'), 'utf8');
    assert.match(unit, /^ExecStart=\/usr\/bin\/herald serve -c \/etc\/herald\/herald\.conf$/m);
    assert.match(unit, /^ExecStartPre=\/usr\/bin\/herald check-config -c \/etc\/herald\/herald\.conf$/m);
    assert.doesNotMatch(unit, /\/usr\/local/);
    assert.equal(fs.readFileSync(path.join(dest, 'etc/herald/herald.conf'), 'utf8'), fs.readFileSync(SAMPLE, 'utf8'));
    assert.ok(fs.existsSync(path.join(dest, 'usr/share/man/man1/herald.1')));

    // a changed herald.conf survives a second install (the sample goes beside it) and uninstall
    const conf = path.join(dest, 'etc/herald/herald.conf');
    fs.appendFileSync(conf, 'log_level = debug\n');
    const again = await make(['install', `DESTDIR=${dest}`, 'PREFIX=/usr']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(fs.readFileSync(conf, 'utf8'), /log_level = debug\n$/);
    assert.ok(fs.existsSync(`${conf}.sample`));
    const un = await make(['uninstall', `DESTDIR=${dest}`, 'PREFIX=/usr']);
    assert.equal(un.code, 0, un.stderr);
    for (const f of ['usr/bin/herald', 'usr/lib/systemd/system/herald.service', 'usr/share/man/man1/herald.1', 'etc/herald/herald.conf.sample'])
      assert.ok(!fs.existsSync(path.join(dest, f)), `${f} left after uninstall`);
    assert.ok(fs.existsSync(conf), 'uninstall removed a changed herald.conf');
    // unchanged, it goes with the rest; BINDIR and SYSCONFDIR move things
    fs.rmSync(conf);
    const custom = await make(['install', `DESTDIR=${dest}`, 'PREFIX=/opt/h', 'SYSCONFDIR=/opt/h/etc', 'BINDIR=/opt/h/sbin']);
    assert.equal(custom.code, 0, custom.stderr);
    const unit2 = fs.readFileSync(path.join(dest, 'opt/h/lib/systemd/system/herald.service'), 'utf8');
    assert.match(unit2, /^ExecStart=\/opt\/h\/sbin\/herald serve -c \/opt\/h\/etc\/herald\/herald\.conf$/m);
    assert.ok(fs.existsSync(path.join(dest, 'opt/h/sbin/herald')));
    const un2 = await make(['uninstall', `DESTDIR=${dest}`, 'PREFIX=/opt/h', 'SYSCONFDIR=/opt/h/etc', 'BINDIR=/opt/h/sbin']);
    assert.equal(un2.code, 0, un2.stderr);
    assert.ok(!fs.existsSync(path.join(dest, 'opt/h/etc/herald')), 'uninstall left the unchanged herald.conf');
  } finally {
    fs.rmSync(dest, { recursive: true, force: true });
  }
});

test('the systemd unit: Type=notify, check-config first, sandboxing; systemd-analyze verify accepts it', T, async (t) => {
  const unit = fs.readFileSync(UNIT, 'utf8');
  for (const line of ['Type=notify', 'ExecReload=/bin/kill -HUP $MAINPID', 'Restart=on-failure', 'NoNewPrivileges=yes',
    'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes', 'PrivateDevices=yes', 'ProtectKernelTunables=yes',
    'ProtectKernelModules=yes', 'ProtectKernelLogs=yes', 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX',
    'MemoryDenyWriteExecute=yes', 'SystemCallFilter=@system-service', 'CapabilityBoundingSet=', 'DynamicUser=yes',
    'StateDirectory=herald'])
    assert.match(unit, new RegExp(`^${line.replace(/[$.*+?()[\]\\|^]/g, '\\$&')}$`, 'm'), line);
  assert.match(unit, /^ExecStartPre=\S+ check-config /m);
  assert.match(unit, /^LimitNOFILE=\d+$/m);
  const which = spawnSync('systemd-analyze', ['--version']);
  if (which.error) {
    t.skip('systemd-analyze not installed (Debian package systemd; tests/install-deps.sh installs it)');
    return;
  }
  const dir = tmpDir();
  try {
    // the unit as installed, pointing at the binary under test (verify checks that it exists)
    fs.writeFileSync(path.join(dir, 'herald.service'), unit.replaceAll('/usr/local/bin/herald', HERALD_BIN));
    const r = await run('systemd-analyze', ['verify', '--man=no', path.join(dir, 'herald.service')], { timeout: 30000 * SCALE });
    assert.equal(r.code, 0, `systemd-analyze verify: ${r.stderr}${r.stdout}`);
    assert.equal(r.stderr.trim(), '', 'systemd-analyze verify warned');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/* ---------------------------------------------------------------- readiness notification */

/* A python3 process bound to a datagram socket at addr ("/path" or "@name"); every datagram it
 * gets is one JSON line on its stdout. */
async function notifySocket(addr) {
  const py = `
import json, socket, sys
a = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind('\\0' + a[1:] if a.startswith('@') else a)
print('"bound"', flush=True)
while True:
    print(json.dumps(s.recv(4096).decode()), flush=True)
`;
  const p = spawn('python3', ['-c', py, addr], { stdio: ['ignore', 'pipe', 'pipe'] });
  const got = [];
  let buf = '';
  let err = '';
  p.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      got.push(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
    }
  });
  p.stderr.on('data', (d) => (err += d));
  await waitFor(() => got[0] === 'bound' || p.exitCode !== null, 10000 * SCALE, 'the notify socket to be bound');
  assert.equal(got.shift(), 'bound', `python3 could not bind ${addr}: ${err}`);
  return { got, stop: () => p.kill('SIGKILL') };
}

async function readyAndStopping(addr) {
  const sock = await notifySocket(addr);
  const dir = tmpDir();
  const port = await freePort();
  const proc = spawn(HERALD_BIN, ['serve', '--http', `127.0.0.1:${port}`, '--mqtt', '', '--store', 'memory', '--data-dir', dir],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NOTIFY_SOCKET: addr } });
  let out = '';
  proc.stderr.on('data', (d) => (out += d));
  const exited = new Promise((r) => proc.on('exit', (code, signal) => r({ code, signal })));
  try {
    await waitFor(() => sock.got.length > 0 || proc.exitCode !== null, 10000 * SCALE, 'READY=1');
    const ready = sock.got.shift();
    assert.match(ready, /^READY=1\nSTATUS=listening on http:\/\/127\.0\.0\.1:\d+$/, `${ready}\n${out}`);
    assert.ok(ready.endsWith(`:${port}`));
    // ready means listening: the first request is answered, no retry
    const r = await request(port, 'GET', '/healthz');
    assert.equal(r.status, 200);
    proc.kill('SIGTERM');
    await waitFor(() => sock.got.length > 0, 5000 * SCALE, 'STOPPING=1');
    assert.match(sock.got.shift(), /^STOPPING=1\n/);
    const e = await Promise.race([exited, new Promise((r) => setTimeout(() => r(null), 5000 * SCALE))]);
    assert.deepEqual(e, { code: 0, signal: null }, out);
    assert.deepEqual(sock.got, [], 'more notifications than READY and STOPPING');
  } finally {
    proc.kill('SIGKILL');
    sock.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('NOTIFY_SOCKET (a path): READY=1 with STATUS once listening, STOPPING=1 on SIGTERM', T, async () => {
  const dir = tmpDir();
  try {
    await readyAndStopping(path.join(dir, 'notify'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('NOTIFY_SOCKET (@abstract): READY=1 and STOPPING=1; a socket nobody listens on only warns', T, async () => {
  await readyAndStopping(`@herald-test-notify-${process.pid}-${Date.now()}`);
  // systemd gone (nobody bound there): herald logs a warning and serves anyway
  const dir = tmpDir();
  try {
    const port = await freePort();
    const proc = spawn(HERALD_BIN, ['serve', '--http', `127.0.0.1:${port}`, '--mqtt', '', '--store', 'memory'],
      { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NOTIFY_SOCKET: path.join(dir, 'nobody') } });
    let out = '';
    proc.stderr.on('data', (d) => (out += d));
    const exited = new Promise((r) => proc.on('exit', (code) => r(code)));
    try {
      await waitFor(() => /cannot notify the service manager/.test(out) || proc.exitCode !== null, 10000 * SCALE, 'the warning');
      const r = await request(port, 'GET', '/healthz');
      assert.equal(r.status, 200);
      proc.kill('SIGTERM');
      assert.equal(await exited, 0, out);
    } finally {
      proc.kill('SIGKILL');
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
