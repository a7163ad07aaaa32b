// Test PKI made at test time with the openssl CLI (EC P-256 keys: fast), into a test's temp dir.
//
//   const pki = makeTestPki(dir);
//   pki.caFile                      the test CA (PEM), to trust via upstream.tls.caFile
//   pki.good    {certFile, keyFile, cert, key}   CA-signed, SAN IP:127.0.0.1, DNS:localhost
//   pki.wrongHost                   CA-signed, SAN DNS:wrong.example only
//   pki.selfSigned                  self-signed (not CA-signed), SAN IP:127.0.0.1, DNS:localhost
//   pki.client                      CA-signed client certificate (extendedKeyUsage clientAuth)
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export const OPENSSL = process.env.OPENSSL || '/usr/bin/openssl';

function openssl(args, cwd) {
  const r = spawnSync(OPENSSL, args, { cwd, encoding: 'utf8', timeout: 15000, killSignal: 'SIGKILL' });
  if (r.error) throw new Error(`openssl ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function leaf(dir, name, cn, san, caCrt, caKey, eku = 'serverAuth') {
  const keyFile = path.join(dir, `${name}.key`);
  const certFile = path.join(dir, `${name}.crt`);
  const csr = path.join(dir, `${name}.csr`);
  const ext = path.join(dir, `${name}.ext`);
  fs.writeFileSync(
    ext,
    `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=${eku}\n`,
  );
  openssl(['req', '-new', ...EC, '-keyout', keyFile, '-out', csr, '-subj', `/CN=${cn}`], dir);
  openssl(['x509', '-req', '-in', csr, '-CA', caCrt, '-CAkey', caKey, '-set_serial', `0x${Date.now().toString(16)}${name.length}`,
    '-days', '2', '-out', certFile, '-extfile', ext], dir);
  return { certFile, keyFile, cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) };
}

export function makeTestPki(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const caKey = path.join(dir, 'ca.key');
  const caFile = path.join(dir, 'ca.crt');
  openssl(['req', '-x509', ...EC, '-keyout', caKey, '-out', caFile, '-days', '2', '-subj', '/CN=flagrelay test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  const good = leaf(dir, 'good', '127.0.0.1', 'IP:127.0.0.1,DNS:localhost', caFile, caKey);
  const wrongHost = leaf(dir, 'wrong-host', 'wrong.example', 'DNS:wrong.example', caFile, caKey);
  const client = leaf(dir, 'client', 'flagrelay-test-client', 'DNS:flagrelay-test-client', caFile, caKey, 'clientAuth');
  const ssKey = path.join(dir, 'self-signed.key');
  const ssCrt = path.join(dir, 'self-signed.crt');
  openssl(['req', '-x509', ...EC, '-keyout', ssKey, '-out', ssCrt, '-days', '2', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], dir);
  return {
    dir,
    caFile,
    ca: fs.readFileSync(caFile),
    good,
    wrongHost,
    client,
    selfSigned: { certFile: ssCrt, keyFile: ssKey, cert: fs.readFileSync(ssCrt), key: fs.readFileSync(ssKey) },
  };
}
