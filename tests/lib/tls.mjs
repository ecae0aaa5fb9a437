// tests/lib/tls.mjs - a throwaway PKI made with the openssl CLI in a temporary directory, and a
// herald started with its https and mqtts listeners. Everything is ECDSA P-256 and valid for two
// days; nothing is kept after the test.
//
// makePKI() -> {dir, ca, caKey, server: {cert, key}, server2 (same names, another key: reloads),
// sni: {cert, key} (other.test), client: {cert, key} (CN device-7), rogue: {cert, key} (a client
// certificate from another CA), rogueCA, clean()}.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { startHerald, freePort, withTimeout, SCALE } from './herald.mjs';

function openssl(args, cwd) {
  return execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
}

function makeCA(dir, name, cn) {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`,
    '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  return { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
}

/* A leaf certificate signed by ca: ext is the extension file's text. */
function makeLeaf(dir, name, cn, ca, ext) {
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`,
    '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
  fs.writeFileSync(path.join(dir, `${name}.ext`), ext);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial',
    String(Math.floor(Math.random() * 1e12)), '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`], dir);
  return { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
}

const SERVER_EXT = 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n';
const CLIENT_EXT = 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n';

export function makePKI() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-tls-'));
  const ca = makeCA(dir, 'ca', 'herald test CA');
  const rogueCA = makeCA(dir, 'rogue-ca', 'somebody else');
  fs.mkdirSync(path.join(dir, 'sni'));
  const pki = {
    dir,
    ca: ca.cert,
    caKey: ca.key,
    server: makeLeaf(dir, 'server', 'localhost', ca, SERVER_EXT),
    server2: makeLeaf(dir, 'server2', 'localhost', ca, SERVER_EXT),
    sni: makeLeaf(path.join(dir, 'sni'), 'other.test', 'other.test', ca,
      'subjectAltName=DNS:other.test,DNS:*.other.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n'),
    client: makeLeaf(dir, 'client', 'device-7', ca, CLIENT_EXT),
    rogue: makeLeaf(dir, 'rogue', 'device-7', rogueCA, CLIENT_EXT),
    rogueCA: rogueCA.cert,
    clean() {
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  // the live pair herald is pointed at (tests swap its contents for reloads)
  pki.live = { cert: path.join(dir, 'live.crt'), key: path.join(dir, 'live.key') };
  fs.copyFileSync(pki.server.cert, pki.live.cert);
  fs.copyFileSync(pki.server.key, pki.live.key);
  return pki;
}

/* Starts herald with https and mqtts on free ports and the live certificate: h.httpsPort,
 * h.mqttsPort, h.https (base URL). */
export async function startTLS(pki, flags = {}) {
  const httpsPort = await freePort();
  const mqttsPort = await freePort();
  const h = await startHerald({
    https: `127.0.0.1:${httpsPort}`,
    mqtts: `127.0.0.1:${mqttsPort}`,
    'tls-cert': pki.live.cert,
    'tls-key': pki.live.key,
    ...flags,
  });
  h.httpsPort = httpsPort;
  h.mqttsPort = mqttsPort;
  h.https = `https://localhost:${httpsPort}`;
  return h;
}

/* Opens a TLS connection; resolves the socket once the handshake is done (rejects on failure). */
export function tlsConnect(port, opts = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...opts });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  }), 5000 * SCALE, `TLS connect to ${port}`);
}
