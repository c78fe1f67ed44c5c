// Who may reach the API: the unix socket is 0660 root:berth; tcp:// needs mutual TLS, tried with
// the real docker CLI (a client certificate from our CA works; none, or one from another CA, is
// refused); plain TCP is refused at start-up unless the flag that names the risk is given.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { BERTH, BERTHD, destroyDaemon, run, startDaemon, type TestDaemon } from '../helpers/daemon';
import { cleanupLeftovers } from '../helpers/cleanup';
import { loadConfig } from '../../src/daemon/config';
import { checkTcpListen, groupId } from '../../src/api/tls';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-sec-tls-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function openssl(args: string[]): void {
  execFileSync('openssl', args, { cwd: tmp, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA (ca.pem), the server's certificate for 127.0.0.1, and client certificates from it and from a stranger CA. */
function makeCerts(): void {
  fs.writeFileSync(path.join(tmp, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  fs.writeFileSync(path.join(tmp, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const ca of ['ca', 'other-ca']) {
    openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${ca}-key.pem`, '-out', `${ca}.pem`, '-days', '2', '-subj', `/CN=berth test ${ca}`]);
  }
  const issue = (name: string, ca: string, ext: string, cn: string): void => {
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}-key.pem`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', ext]);
  };
  issue('server', 'ca', 'server.ext', '127.0.0.1');
  issue('client', 'ca', 'client.ext', 'client');
  issue('stranger', 'other-ca', 'client.ext', 'stranger');
}

const p = (f: string): string => path.join(tmp, f);

/** The tcp address the daemon logged ("API listen on 127.0.0.1:PORT"). */
async function tcpAddress(d: TestDaemon): Promise<string> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const m = /API listen on (127\.0\.0\.1:\d+)/.exec(d.logs());
    if (m) return `tcp://${m[1]}`;
    if (Date.now() > deadline) throw new Error(`no tcp listener in the logs:\n${d.logs()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function dockerTcp(args: string[]) {
  return run('docker', args, { env: { DOCKER_CONFIG: p('docker-config'), DOCKER_HOST: '', DOCKER_TLS_VERIFY: '', DOCKER_CERT_PATH: p('nocerts') }, timeoutMs: 30_000 });
}

test('unit: tcp without --tlsverify is refused unless the risk flag is given; flags parse', () => {
  assert.throws(() => checkTcpListen('tcp://0.0.0.0:2375', { tlsVerify: false, insecureTcp: false }), /refusing to listen on tcp:\/\/0\.0\.0\.0:2375 without --tlsverify.*root access/);
  checkTcpListen('tcp://0.0.0.0:2375', { tlsVerify: true, insecureTcp: false });
  checkTcpListen('tcp://0.0.0.0:2375', { tlsVerify: false, insecureTcp: true });
  const cfg = loadConfig(['--tlsverify', '--tlscacert', '/x/ca.pem', '--tlscert', 'c.pem', '--tlskey', '/x/k.pem', '-H', 'tcp://127.0.0.1:0'], { BERTH_CONFIG_FILE: p('none.json') });
  assert.equal(cfg.tlsVerify, true);
  assert.equal(cfg.tlsCACert, '/x/ca.pem');
  assert.equal(cfg.tlsCert, path.resolve('c.pem'));
  assert.equal(cfg.insecureTcp, false);
  assert.equal(loadConfig(['--insecure-tcp-exposes-root'], { BERTH_CONFIG_FILE: p('none.json') }).insecureTcp, true);
  assert.equal(groupId('root'), 0);
  assert.equal(groupId('no-such-group-' + randomBytes(4).toString('hex')), undefined);
});

test('mutual TLS: the docker CLI with our client certificate works; without one, or with a stranger\'s, it is refused', async (t) => {
  makeCerts();
  const d = await startDaemon({ name: 'sec-tls', args: ['-H', 'tcp://127.0.0.1:0', '--tlsverify', '--tlscacert', p('ca.pem'), '--tlscert', p('server.pem'), '--tlskey', p('server-key.pem')] });
  t.after(() => destroyDaemon(d));

  // The unix socket: 0660, group berth (made at start-up when it was missing).
  const st = fs.statSync(d.socket);
  assert.equal(st.mode & 0o777, 0o660);
  const gid = groupId('berth');
  assert.notEqual(gid, undefined, 'group berth exists');
  assert.equal(st.gid, gid);
  assert.equal(st.uid, 0);

  const host = await tcpAddress(d);
  const good = await dockerTcp(['--tlsverify', '--tlscacert', p('ca.pem'), '--tlscert', p('client.pem'), '--tlskey', p('client-key.pem'), '-H', host, 'version', '--format', '{{.Server.Version}}']);
  assert.equal(good.code, 0, good.stderr);
  assert.match(good.stdout.trim(), /^\d+\.\d+\.\d+/);

  const stranger = await dockerTcp(['--tlsverify', '--tlscacert', p('ca.pem'), '--tlscert', p('stranger.pem'), '--tlskey', p('stranger-key.pem'), '-H', host, 'version', '--format', '{{.Server.Version}}']);
  assert.notEqual(stranger.code, 0);
  assert.match(stranger.stderr, /certificate|tls|handshake/i);

  // --tls: the client checks the server but shows no certificate.
  const noCert = await dockerTcp(['--tls', '--tlscacert', p('ca.pem'), '-H', host, 'version', '--format', '{{.Server.Version}}']);
  assert.notEqual(noCert.code, 0);
  assert.doesNotMatch(noCert.stdout, /^\d+\.\d+\.\d+/m);

  // Plain HTTP against the TLS port gets nothing useful.
  const plain = await dockerTcp(['-H', host, 'version', '--format', '{{.Server.Version}}']);
  assert.notEqual(plain.code, 0);

  // The same through node: the handshake (or the first request) fails without a client certificate.
  const [hostname, port] = host.slice('tcp://'.length).split(':');
  const status = await new Promise<string>((resolve) => {
    const req = https.request({ hostname, port: Number(port), path: '/_ping', ca: fs.readFileSync(p('ca.pem')) }, (res) => {
      res.resume();
      resolve(`status ${res.statusCode}`);
    });
    req.on('error', (err) => resolve(`error ${err.message}`));
    req.end();
  });
  assert.match(status, /^error /);
  const okPing = await new Promise<string>((resolve) => {
    const req = https.request({ hostname, port: Number(port), path: '/_ping', ca: fs.readFileSync(p('ca.pem')), cert: fs.readFileSync(p('client.pem')), key: fs.readFileSync(p('client-key.pem')) }, (res) => {
      let b = '';
      res.on('data', (c: Buffer) => (b += c.toString()));
      res.on('end', () => resolve(`${res.statusCode} ${b}`));
    });
    req.on('error', (err) => resolve(`error ${err.message}`));
    req.end();
  });
  assert.equal(okPing, '200 OK');

  // Our own client, with docker's environment (DOCKER_TLS_VERIFY, DOCKER_CERT_PATH).
  const certDir = p('berth-certs');
  fs.mkdirSync(certDir, { recursive: true });
  for (const [from, to] of [['ca.pem', 'ca.pem'], ['client.pem', 'cert.pem'], ['client-key.pem', 'key.pem']]) fs.copyFileSync(p(from), path.join(certDir, to));
  const berthEnv = { BERTH_HOST: host, BERTH_CONFIG: p('berth-config'), DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: certDir };
  const mine = await run(process.execPath, [BERTH, 'version', '--format', '{{.Server.Version}}'], { env: berthEnv });
  assert.equal(mine.code, 0, mine.stderr);
  assert.match(mine.stdout.trim(), /^\d+\.\d+\.\d+/);
  const mineNoTls = await run(process.execPath, [BERTH, 'version', '--format', '{{.Server.Version}}'], { env: { ...berthEnv, DOCKER_TLS_VERIFY: '' } });
  assert.notEqual(mineNoTls.code, 0);
  const mineNoCerts = await run(process.execPath, [BERTH, 'version'], { env: { ...berthEnv, DOCKER_CERT_PATH: p('nocerts') } });
  assert.notEqual(mineNoCerts.code, 0);
  assert.match(mineNoCerts.stderr, /could not read CA certificate/);
});

test('plain tcp:// is refused at start-up; allowed only with --insecure-tcp-exposes-root', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-sec-tcp-'));
  const cgroupParent = `berth-test-sec-tcp-${process.pid}-${randomBytes(3).toString('hex')}`;
  t.after(() => {
    cleanupLeftovers(dir, cgroupParent);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  fs.writeFileSync(path.join(dir, 'daemon.json'), JSON.stringify({ 'cgroup-parent': cgroupParent }));
  const r = await run(process.execPath, [BERTHD, '-H', `unix://${dir}/berth.sock`, '-H', 'tcp://127.0.0.1:0', '--data-root', `${dir}/data`, '--exec-root', `${dir}/exec`, '--pidfile', `${dir}/berthd.pid`, '--config-file', `${dir}/daemon.json`], { timeoutMs: 30_000 });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout + r.stderr, /refusing to listen on tcp:\/\/127\.0\.0\.1:0 without --tlsverify/);
  assert.ok(!fs.existsSync(`${dir}/berth.sock`), 'the unix socket is gone after the failed start');

  // Half of TLS is not TLS: --tlsverify without the files is an error too.
  const r2 = await run(process.execPath, [BERTHD, '-H', 'tcp://127.0.0.1:0', '--tlsverify', '--data-root', `${dir}/data`, '--exec-root', `${dir}/exec`, '--pidfile', `${dir}/berthd.pid`, '--config-file', `${dir}/daemon.json`], { timeoutMs: 30_000 });
  assert.equal(r2.code, 1);
  assert.match(r2.stdout + r2.stderr, /--tlsverify needs --tlscacert/);

  const d = await startDaemon({ name: 'sec-tcp', args: ['-H', 'tcp://127.0.0.1:0', '--insecure-tcp-exposes-root'] });
  t.after(() => destroyDaemon(d));
  const host = await tcpAddress(d);
  assert.match(d.logs(), /WITHOUT TLS/);
  const v = await dockerTcp(['-H', host, 'version', '--format', '{{.Server.Version}}']);
  assert.equal(v.code, 0, v.stderr);
});
