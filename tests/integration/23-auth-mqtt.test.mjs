// Access control on MQTT 3.1.1 / 5.0 (docs/auth.md) with real clients: mosquitto_sub with the
// token as password (both versions), python paho-mqtt, MQTT.js over TCP and over WebSocket
// (/mqtt); raw packets (tests/lib/mqttraw.mjs) for the exact CONNACK / SUBACK / PUBACK /
// DISCONNECT reason codes: anonymous and bad credentials, filters partly and not at all covered,
// forbidden PUBLISH, retained messages filtered, wills, client id ownership of persistent
// sessions, v5 expiry (DISCONNECT 0xA0), and a Mosquitto password file (mosquitto_passwd).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { withHerald, run, spawnStream, waitFor, withTimeout, SCALE } from '../lib/herald.mjs';
import { mq, tcpURL, wsMqttURL } from '../lib/mqttjs.mjs';
import { MqttRaw, PT, publishPkt, subscribePkt, connackCode, disconnectReason, sessionPresent } from '../lib/mqttraw.mjs';
import { rawStomp } from '../lib/stomp.mjs';
import {
  API_KEY, authFlags, mint, userToken, keyPublish, waitSubs, connectCreds, subackCodes, payloadOf, tmpFile, channelInfo,
} from '../lib/auth.mjs';

const T = { timeout: 60000 * SCALE };
const PY = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const MOSQUITTO_PASSWD = '/usr/bin/mosquitto_passwd';

/* A raw client: CONNECT with credentials, returns {c, ack (CONNACK packet), code}. */
async function rawLogin(h, o) {
  const c = await MqttRaw.open(h.mqttPort, { v: o.v ?? 4 });
  c.write(connectCreds(o));
  const ack = await c.expect(PT.CONNACK);
  return { c, ack, code: connackCode(ack) };
}

/* Asserts that CONNECT with o is refused with the code of its version, and the connection ends. */
async function expectRefused(h, o, code, what) {
  const { c, code: got } = await rawLogin(h, o);
  try {
    assert.equal(got, code, `${what}: CONNACK 0x${got.toString(16)}, want 0x${code.toString(16)}`);
    await c.waitClosed();
  } finally {
    c.destroy();
  }
}

/* The next message on w must be on sentinel: nothing else came before it. */
async function onlySentinel(w, sentinel, what) {
  const m = await w.next();
  assert.equal(m.topic, sentinel, `${what}: got ${m.topic} ${m.payload} before the sentinel`);
}

/* ---------------------------------------------------------------- real clients */

for (const V of ['mqttv311', 'mqttv5']) {
  test(`mosquitto_sub (${V}) -u x -P TOKEN receives its user/42/# messages`, T, async () => {
    await withHerald(authFlags(), async (h) => {
      const tok = await userToken('42');
      const sub = spawnStream('stdbuf', ['-oL', 'mosquitto_sub', '-h', '127.0.0.1', '-p', String(h.mqttPort), '-V', V, '-d', '-v',
        '-q', '1', '-u', 'x', '-P', tok, '-t', 'user/42/#', '-C', '2', '-W', String(Math.ceil(20 * SCALE)), '-i', `ms-${V}`]);
      try {
        await waitFor(() => /SUBACK/.test(sub.text) || sub.exited, 10000 * SCALE, 'mosquitto_sub SUBACK');
        assert.ok(!sub.exited, `mosquitto_sub exited early: ${sub.text} ${sub.stderr}`);
        await keyPublish(h, 'user/7/a', 'not mine');
        await keyPublish(h, 'user/42/a', 'one');
        await keyPublish(h, 'user/42/b/c', 'two');
        const exit = await withTimeout(sub.exit, 20000 * SCALE, 'mosquitto_sub exit');
        assert.equal(exit.code, 0, `mosquitto_sub exit; stderr: ${sub.stderr}`);
        const lines = sub.text.split('\n').filter((l) => l && !l.startsWith('Client ') && !l.startsWith('Subscribed'));
        assert.deepEqual(lines, ['user/42/a one', 'user/42/b/c two']);
      } finally {
        await sub.stop().catch(() => {});
      }
    });
  });
}

test('anonymous MQTT CONNECT is refused: mosquitto_sub fails; raw CONNACK 0x05 (v3.1.1) / 0x87 (v5)', T, async () => {
  await withHerald(authFlags(), async (h) => {
    for (const V of ['mqttv311', 'mqttv5']) {
      const r = await run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(h.mqttPort), '-V', V, '-t', 'user/42/#', '-C', '1',
        '-W', String(Math.ceil(5 * SCALE))], { timeout: 15000 * SCALE });
      assert.notEqual(r.code, 0, `mosquitto_sub ${V} anonymous must fail`);
      assert.match(r.stderr, /not authori[sz]ed/i, `mosquitto_sub ${V}: ${r.stderr}`);
    }
    await expectRefused(h, { v: 4, id: 'anon3' }, 0x05, 'v3.1.1 anonymous');
    await expectRefused(h, { v: 5, id: 'anon5' }, 0x87, 'v5 anonymous');
    // a user name alone is no credential
    await expectRefused(h, { v: 4, id: 'anon3u', user: 'someone' }, 0x05, 'v3.1.1 user name only');
  });
});

test('a bad token as MQTT password: CONNACK 0x04 (v3.1.1) / 0x86 (v5), and the server keeps serving', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const tok = await userToken('42');
    const forged = `${tok.slice(0, -4)}AAAA`;
    await expectRefused(h, { v: 4, id: 'b3', user: 'x', pass: forged }, 0x04, 'v3.1.1 forged');
    await expectRefused(h, { v: 5, id: 'b5', user: 'x', pass: forged }, 0x86, 'v5 forged');
    await expectRefused(h, { v: 5, id: 'b5k', pass: `${API_KEY}zz` }, 0x86, 'v5 wrong API key');
    await expectRefused(h, { v: 4, id: 'b3g', user: 'x', pass: 'garbage' }, 0x04, 'v3.1.1 garbage');
    const r = await run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(h.mqttPort), '-V', 'mqttv5', '-u', 'x', '-P', forged,
      '-t', 'user/42/#', '-C', '1', '-W', String(Math.ceil(5 * SCALE))], { timeout: 15000 * SCALE });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /bad user name or password|not authori[sz]ed/i, r.stderr);
    const ok = await rawLogin(h, { v: 5, id: 'good', user: 'x', pass: tok });
    assert.equal(ok.code, 0, 'a good token still connects');
    ok.c.destroy();
  });
});

const PAHO = String.raw`
import json, sys, threading
import paho.mqtt.client as mqtt
host, port, ver, user, pw, topic = sys.argv[1:7]
v5 = ver == "5"
c = mqtt.Client(client_id="paho-auth-" + ver, protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
c.username_pw_set(user, pw)
st = {"rc": None, "granted": None, "got": []}
conn, subd, got = threading.Event(), threading.Event(), threading.Event()
num = lambda x: x if isinstance(x, int) else x.value
def on_connect(cl, ud, flags, rc, props=None):
    st["rc"] = num(rc); conn.set()
def on_subscribe(cl, ud, mid, granted, props=None):
    st["granted"] = [num(g) for g in granted]; subd.set()
def on_message(cl, ud, msg):
    st["got"].append([msg.topic, msg.payload.decode()]); got.set()
c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
c.connect(host, int(port), 30)
c.loop_start()
ok = conn.wait(10)
if ok and st["rc"] == 0:
    c.subscribe(topic, qos=1)
    ok = subd.wait(10)
    print("subscribed", flush=True)
    ok = ok and got.wait(10)
c.disconnect()
c.loop_stop()
print(json.dumps(st), flush=True)
sys.exit(0 if ok else 2)
`;

test('paho-mqtt (3.1.1 and 5) with the token as password: subscribes and receives; a bad token gets rc 4 / 134', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const tok = await userToken('42');
    for (const ver of ['311', '5']) {
      const p = spawnStream(PY, ['-c', PAHO, '127.0.0.1', String(h.mqttPort), ver, 'x', tok, 'user/42/#']);
      try {
        await waitFor(() => /subscribed/.test(p.text) || p.exited, 15000 * SCALE, `paho ${ver} subscribed`);
        await keyPublish(h, 'user/42/paho', `hi ${ver}`);
        const e = await withTimeout(p.exit, 20000 * SCALE, 'paho exit');
        const out = JSON.parse(p.text.trim().split('\n').pop());
        assert.equal(e.code, 0, `paho ${ver}: ${p.text} ${p.stderr}`);
        assert.equal(out.rc, 0);
        assert.deepEqual(out.granted, [1]);
        assert.deepEqual(out.got, [['user/42/paho', `hi ${ver}`]]);
      } finally {
        await p.stop().catch(() => {});
      }
      const bad = await run(PY, ['-c', PAHO, '127.0.0.1', String(h.mqttPort), ver, 'x', `${tok}x`, 'user/42/#'],
        { timeout: 20000 * SCALE });
      const out = JSON.parse(bad.stdout.toString().trim().split('\n').pop());
      assert.equal(out.rc, ver === '5' ? 134 : 4, `paho ${ver} with a bad token: ${bad.stdout} ${bad.stderr}`);
    }
  });
});

for (const [name, urlOf] of [['TCP', tcpURL], ['WebSocket /mqtt', wsMqttURL]]) {
  test(`MQTT.js over ${name} with password = token subscribes to its channels and publishes where allowed`, T, async () => {
    await withHerald(authFlags(), async (h) => {
      const tok = await mint({ sub: '42', subscribe: ['user/{sub}/#', 'chat/+'], publish: ['chat/+'] });
      const c = await mq(urlOf(h), { clientId: 'js42', protocolVersion: 5, username: 'x', password: tok });
      try {
        const g = await c.sub(['user/42/#', 'chat/+'], { qos: 1 });
        assert.deepEqual(g.map((x) => x.qos), [1, 1]);
        await keyPublish(h, 'user/42/js', 'from http');
        let m = await c.next();
        assert.deepEqual([m.topic, m.payload], ['user/42/js', 'from http']);
        await c.pub('chat/room', 'from js', { qos: 1 });
        m = await c.next();
        assert.deepEqual([m.topic, m.payload], ['chat/room', 'from js']);
        assert.equal((await channelInfo(h, 'chat/room')).last_id, '1');
      } finally {
        await c.end();
      }
      await assert.rejects(mq(urlOf(h), { clientId: 'jsbad', protocolVersion: 5, username: 'x', password: 'nope' }),
        /Bad User Name or Password|bad user|not authori/i);
    });
  });
}

/* ---------------------------------------------------------------- filters and delivery */

for (const pv of [4, 5]) {
  test(`MQTT v${pv === 4 ? '3.1.1' : '5'}: user 42 subscribing '#' is granted but receives only user/42/... (and no retained user/7)`, T, async () => {
    await withHerald(authFlags(), async (h) => {
      // retained messages set by a user who may publish under user/#
      const pubTok = await mint({ sub: 'pub', publish: ['user/#'] });
      const p = await mq(tcpURL(h), { clientId: 'retainer', protocolVersion: 5, username: 'x', password: pubTok });
      await p.pub('user/7/r', 'retained for 7', { qos: 1, retain: true });
      await p.pub('user/42/r', 'retained for 42', { qos: 1, retain: true });
      await p.end();
      const c = await mq(tcpURL(h), { clientId: `all${pv}`, protocolVersion: pv, username: 'x', password: await userToken('42') });
      try {
        const g = await c.sub('#', { qos: 1 });
        assert.deepEqual(g.map((x) => x.qos), [1], 'granted as asked');
        const r = await c.next();
        assert.deepEqual([r.topic, r.payload, r.packet.retain], ['user/42/r', 'retained for 42', true], 'only the own retained');
        await keyPublish(h, 'user/7/a', 'for 7');
        await keyPublish(h, 'news', 'news');
        await keyPublish(h, 'user/42/a', 'for 42');
        await keyPublish(h, 'user/420/a', 'for 420');
        await keyPublish(h, 'user/42/end', 'sentinel');
        const m = await c.next();
        assert.deepEqual([m.topic, m.payload], ['user/42/a', 'for 42']);
        await onlySentinel(c, 'user/42/end', "'#' subscription");
      } finally {
        await c.end();
      }
    });
  });
}

test("subscribing 'user/7/#' (no overlap) gets SUBACK 0x87 (v5) / 0x80 (v3.1.1); the allowed filter beside it is granted", T, async () => {
  await withHerald(authFlags(), async (h) => {
    const tok = await userToken('42');
    for (const v of [4, 5]) {
      const { c, code } = await rawLogin(h, { v, id: `s${v}`, user: 'x', pass: tok });
      try {
        assert.equal(code, 0);
        c.write(subscribePkt({ v, pid: 9, filters: [['user/7/#', 1], ['user/42/#', 1], ['user/+/inbox', 0]] }));
        const ack = await c.expect(PT.SUBACK);
        assert.equal(ack.body.readUInt16BE(0), 9);
        assert.deepEqual(subackCodes(ack, v), [v === 5 ? 0x87 : 0x80, 1, 0], `v${v} SUBACK`);
        // the partly covered user/+/inbox delivers only user/42/inbox
        await keyPublish(h, 'user/7/inbox', 'for 7');
        await keyPublish(h, 'user/42/inbox', 'for 42');
        const p = await c.expect(PT.PUBLISH);
        assert.match(p.raw.toString('latin1'), /user\/42\/inbox/);
        assert.ok(!c.closed, 'still connected');
      } finally {
        c.destroy();
      }
    }
  });
});

test('PUBLISH to a forbidden topic: v5 QoS 1 PUBACK 0x87 (QoS 2 PUBREC 0x87), v3.1.1 acknowledged; never delivered', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const seven = await mq(tcpURL(h), { clientId: 'seven', protocolVersion: 5, username: 'x', password: await userToken('7') });
    try {
      await seven.sub('user/7/#', { qos: 1 });
      const tok = await userToken('42');
      const v5 = await rawLogin(h, { v: 5, id: 'p5', user: 'x', pass: tok });
      v5.c.write(publishPkt({ v: 5, topic: 'user/7/x', payload: 'forged 1', qos: 1, pid: 5 }));
      let ack = await v5.c.expect(PT.PUBACK);
      assert.equal(ack.body.readUInt16BE(0), 5);
      assert.equal(ack.body[2], 0x87, 'PUBACK not authorized');
      v5.c.write(publishPkt({ v: 5, topic: 'user/7/x', payload: 'forged 2', qos: 2, pid: 6 }));
      ack = await v5.c.expect(PT.PUBREC);
      assert.equal(ack.body[2], 0x87, 'PUBREC not authorized');
      v5.c.write(publishPkt({ v: 5, topic: 'user/7/x', payload: 'forged 0', qos: 0 }));
      const v3 = await rawLogin(h, { v: 4, id: 'p3', user: 'x', pass: tok });
      v3.c.write(publishPkt({ v: 4, topic: 'user/7/x', payload: 'forged 3', qos: 1, pid: 7 }));
      ack = await v3.c.expect(PT.PUBACK);
      assert.equal(ack.body.readUInt16BE(0), 7);
      assert.ok(!v3.c.closed && !v5.c.closed, 'both stay connected');
      v3.c.destroy();
      v5.c.destroy();
      await keyPublish(h, 'user/7/end', 'sentinel');
      await onlySentinel(seven, 'user/7/end', 'forbidden publishes');
      assert.equal((await channelInfo(h, 'user/7/x')).last_id, '0', 'nothing stored on user/7/x');
    } finally {
      await seven.end();
    }
  });
});

test('a will topic the client may not publish refuses the CONNECT (0x05 / 0x87); an allowed one connects', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const tok = await mint({ sub: '42', subscribe: ['user/{sub}/#'], publish: ['status/{sub}'] });
    const will = { topic: 'user/7/will', payload: 'bye', qos: 1 };
    await expectRefused(h, { v: 4, id: 'w3', user: 'x', pass: tok, will }, 0x05, 'v3.1.1 forbidden will');
    await expectRefused(h, { v: 5, id: 'w5', user: 'x', pass: tok, will }, 0x87, 'v5 forbidden will');
    const ok = await rawLogin(h, { v: 5, id: 'w5ok', user: 'x', pass: tok, will: { topic: 'status/42', payload: 'gone', qos: 0 } });
    assert.equal(ok.code, 0, 'status/42 will is allowed');
    ok.c.destroy();
  });
});

test("client id ownership: user 7 cannot take user 42's persistent session; 42's queued messages still reach 42", T, async () => {
  await withHerald(authFlags(), async (h) => {
    const t42 = await userToken('42');
    const t7 = await userToken('7');
    const opts = { clientId: 'dev-42', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 300 }, username: 'x' };
    let c = await mq(tcpURL(h), { ...opts, password: t42 });
    await c.sub('user/42/#', { qos: 1 });
    await c.end();
    await keyPublish(h, 'user/42/q', 'queued 1');
    await keyPublish(h, 'user/42/q', 'queued 2');
    await expectRefused(h, { v: 5, id: 'dev-42', user: 'x', pass: t7, clean: false, sessionExpiry: 300 }, 0x87, 'v5 user 7');
    await expectRefused(h, { v: 4, id: 'dev-42', user: 'x', pass: t7, clean: false }, 0x05, 'v3.1.1 user 7');
    await expectRefused(h, { v: 4, id: 'dev-42', user: 'x', pass: t7, clean: true }, 0x05, 'v3.1.1 user 7 clean session');
    c = await mq(tcpURL(h), { ...opts, password: t42 });
    try {
      assert.equal(c.connack.sessionPresent, true, 'user 42 finds its session');
      const got = [await c.next(), await c.next()].map((m) => m.payload);
      assert.deepEqual(got, ['queued 1', 'queued 2']);
    } finally {
      await c.end();
    }
  });
});

test('an anonymous persistent session may be claimed by a user; then it is theirs (anonymous refused)', T, async () => {
  const rules = tmpFile('rules', 'anonymous subscribe public/#\nuser subscribe public/#\n');
  await withHerald(authFlags({ 'permissions-file': rules }), async (h) => {
    const opts = { clientId: 'dev-anon', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 300 } };
    let c = await mq(tcpURL(h), opts); // anonymous: allowed by the anonymous rule
    await c.sub('public/#', { qos: 1 });
    await c.end();
    await keyPublish(h, 'public/a', 'while away');
    c = await mq(tcpURL(h), { ...opts, username: 'x', password: await userToken('42') });
    try {
      assert.equal(c.connack.sessionPresent, true, 'user 42 claims the anonymous session');
      assert.equal((await c.next()).payload, 'while away');
    } finally {
      await c.end();
    }
    await expectRefused(h, { v: 5, id: 'dev-anon', clean: false, sessionExpiry: 300 }, 0x87, 'anonymous after the claim');
  });
});

test('MQTT v5: a 3 s token ends the connection with DISCONNECT 0xA0; v3.1.1 is closed', T, async () => {
  await withHerald(authFlags({ 'token-leeway': 0 }), async (h) => {
    const tok = await userToken('42', { ttl: '3s' });
    const exp = payloadOf(tok).exp;
    const v5 = await rawLogin(h, { v: 5, id: 'e5', user: 'x', pass: tok, keepalive: 0 });
    const v3 = await rawLogin(h, { v: 4, id: 'e3', user: 'x', pass: tok, keepalive: 0 });
    try {
      assert.equal(v5.code, 0);
      assert.equal(v3.code, 0);
      const bound = (exp - Date.now() / 1000 + 6 * SCALE) * 1000;
      const d = await v5.c.expect(PT.DISCONNECT, bound);
      assert.equal(disconnectReason(d), 0xa0, `DISCONNECT reason 0x${disconnectReason(d).toString(16)}`);
      assert.ok(Date.now() / 1000 >= exp - 1, 'not before exp');
      await v5.c.waitClosed();
      await v3.c.waitClosed(6000 * SCALE);
    } finally {
      v5.c.destroy();
      v3.c.destroy();
    }
  });
});

test('an API key as MQTT v5 password (no user name) publishes anywhere', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const sub = await mq(tcpURL(h), { clientId: 'r', protocolVersion: 5, username: 'x', password: await userToken('42') });
    try {
      await sub.sub('user/42/#', { qos: 1 });
      const k = await rawLogin(h, { v: 5, id: 'backend', pass: API_KEY });
      assert.equal(k.code, 0);
      k.c.write(publishPkt({ v: 5, topic: 'user/42/k', payload: 'by key', qos: 1, pid: 1 }));
      const ack = await k.c.expect(PT.PUBACK);
      assert.ok(ack.body.length < 3 || ack.body[2] === 0, 'PUBACK success');
      k.c.destroy();
      const m = await sub.next();
      assert.deepEqual([m.topic, m.payload], ['user/42/k', 'by key']);
    } finally {
      await sub.end();
    }
  });
});

test('password file (mosquitto_passwd): alice/pw logs in over MQTT and STOMP; a wrong password gets 0x04 / 0x86', T, async (t) => {
  if (!fs.existsSync(MOSQUITTO_PASSWD)) {
    t.skip(`${MOSQUITTO_PASSWD} not installed (Debian package mosquitto; tests/install-deps.sh installs it)`);
    return;
  }
  const file = tmpFile('passwd', '');
  const r = await run(MOSQUITTO_PASSWD, ['-c', '-b', file, 'alice', 'pw']);
  assert.equal(r.code, 0, `mosquitto_passwd: ${r.stderr}`);
  assert.match(fs.readFileSync(file, 'utf8'), /^alice:\$[67]\$/);
  await withHerald({ 'password-file': file, 'api-keys': API_KEY }, async (h) => {
    const sub = spawnStream('stdbuf', ['-oL', 'mosquitto_sub', '-h', '127.0.0.1', '-p', String(h.mqttPort), '-V', 'mqttv311', '-d',
      '-u', 'alice', '-P', 'pw', '-t', 'user/alice', '-C', '1', '-W', String(Math.ceil(20 * SCALE)), '-i', 'alice-sub']);
    try {
      await waitFor(() => /SUBACK/.test(sub.text) || sub.exited, 10000 * SCALE, 'mosquitto_sub SUBACK');
      assert.ok(!sub.exited, `mosquitto_sub exited early: ${sub.text} ${sub.stderr}`);
      await keyPublish(h, 'user/alice', 'hello alice');
      const e = await withTimeout(sub.exit, 20000 * SCALE, 'mosquitto_sub exit');
      assert.equal(e.code, 0, sub.stderr);
      assert.match(sub.text, /^hello alice$/m);
    } finally {
      await sub.stop().catch(() => {});
    }
    await expectRefused(h, { v: 4, id: 'a3', user: 'alice', pass: 'wrong' }, 0x04, 'v3.1.1 wrong password');
    await expectRefused(h, { v: 5, id: 'a5', user: 'alice', pass: 'wrong' }, 0x86, 'v5 wrong password');
    await expectRefused(h, { v: 5, id: 'b5', user: 'bob', pass: 'pw' }, 0x86, 'v5 unknown user');
    const ok = await rawLogin(h, { v: 5, id: 'a5ok', user: 'alice', pass: 'pw' });
    assert.equal(ok.code, 0, 'alice/pw over raw v5');
    ok.c.write(subscribePkt({ v: 5, pid: 2, filters: [['user/bob', 0]] }));
    assert.deepEqual(subackCodes(await ok.c.expect(PT.SUBACK), 5), [0x87], 'alice may not read user/bob');
    ok.c.destroy();
    // STOMP login/passcode from the same file
    const s = await rawStomp(h, { connectHeaders: [['accept-version', '1.2'], ['host', 'h'], ['login', 'alice'], ['passcode', 'pw']] });
    assert.equal(s.connected.command, 'CONNECTED');
    s.close();
    const bad = await rawStomp(h, { connect: false });
    bad.send(Buffer.from('CONNECT\naccept-version:1.2\nhost:h\nlogin:alice\npasscode:nope\n\n\0'));
    await bad.expect('ERROR');
  });
});

test('sessions resumed by their owner: user 42 reconnecting with a new token (v3.1.1) gets session present', T, async () => {
  await withHerald(authFlags(), async (h) => {
    const a = await rawLogin(h, { v: 4, id: 'own', user: 'x', pass: await userToken('42'), clean: false });
    assert.equal(a.code, 0);
    a.c.write(subscribePkt({ v: 4, pid: 1, filters: [['user/42/#', 1]] }));
    await a.c.expect(PT.SUBACK);
    a.c.destroy();
    await keyPublish(h, 'user/42/z', 'while away');
    const b = await rawLogin(h, { v: 4, id: 'own', user: 'x', pass: await userToken('42', { ttl: '2h' }), clean: false });
    try {
      assert.equal(b.code, 0);
      assert.equal(sessionPresent(b.ack), true);
      const p = await b.c.expect(PT.PUBLISH);
      assert.match(p.raw.toString('latin1'), /while away/);
    } finally {
      b.c.destroy();
    }
  });
});
