// The daemon's system endpoints and its start-up rules, against a real berthd on a unix socket,
// with the real docker CLI as a client.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { api, destroyDaemon, docker, run, startDaemon, BERTHD, type TestDaemon } from '../helpers/daemon';

let d: TestDaemon;
before(async () => { d = await startDaemon({ name: 'system' }); });
after(async () => { await destroyDaemon(d); });

test('/_ping answers GET and HEAD with docker headers', async () => {
  for (const method of ['GET', 'HEAD']) {
    const r = await api(d.socket, method, '/_ping');
    assert.equal(r.status, 200);
    assert.equal(r.headers['api-version'], '1.50');
    assert.equal(r.headers['ostype'], 'linux');
    assert.equal(r.headers['builder-version'], '1');
    assert.equal(r.headers['docker-experimental'], 'false');
    assert.equal(r.body.toString(), method === 'GET' ? 'OK' : '');
  }
});

test('versioned and unversioned paths; out-of-range versions are 400', async () => {
  assert.equal((await api(d.socket, 'GET', '/v1.24/version')).status, 200);
  assert.equal((await api(d.socket, 'GET', '/v1.50/version')).status, 200);
  const v = await api(d.socket, 'GET', '/version');
  assert.equal(v.json<{ ApiVersion: string }>().ApiVersion, '1.50');
  const tooNew = await api(d.socket, 'GET', '/v1.51/version');
  assert.equal(tooNew.status, 400);
  assert.match(tooNew.json<{ message: string }>().message, /client version 1.51 is too new/);
  const tooOld = await api(d.socket, 'GET', '/v1.23/version');
  assert.equal(tooOld.status, 400);
  assert.match(tooOld.json<{ message: string }>().message, /too old. Minimum supported API version is 1.24/);
});

test('unknown routes are 404 with a JSON message', async () => {
  const r = await api(d.socket, 'GET', '/v1.50/no/such/thing');
  assert.equal(r.status, 404);
  assert.deepEqual(r.json(), { message: 'page not found' });
});

test('/info reports real figures', async () => {
  const info = (await api(d.socket, 'GET', '/info')).json<Record<string, unknown>>();
  assert.equal(info.DockerRootDir, d.dataRoot);
  assert.equal(info.Driver, 'overlay2');
  assert.equal(info.NCPU, (await import('node:os')).cpus().length);
  assert.ok((info.MemTotal as number) > 0);
  assert.equal(info.KernelVersion, (await import('node:os')).release());
  assert.match(String(info.CgroupVersion), /^[12]$/);
  assert.equal(info.OSType, 'linux');
});

test('the socket is not world-accessible', () => {
  const mode = fs.statSync(d.socket).mode & 0o777;
  assert.equal(mode & 0o007, 0, `socket mode ${mode.toString(8)}`);
});

test('docker CLI: version and info work against berthd', async () => {
  const v = await docker(d, ['version', '--format', '{{.Server.APIVersion}}']);
  assert.equal(v.code, 0, v.stderr);
  assert.equal(v.stdout.trim(), '1.50');
  const i = await docker(d, ['info', '--format', '{{.DockerRootDir}} {{.Driver}}']);
  assert.equal(i.code, 0, i.stderr);
  assert.equal(i.stdout.trim(), `${d.dataRoot} overlay2`);
});

test('a second daemon on the same data root refuses to start', async () => {
  const r = await run(process.execPath, [BERTHD, '-H', `unix://${path.join(d.dir, 'second.sock')}`, '--data-root', d.dataRoot, '--exec-root', path.join(d.dir, 'exec2'), '--pidfile', path.join(d.dir, 'p2'), '--config-file', path.join(d.dir, 'daemon.json')], { timeoutMs: 20_000 });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /another berthd is already running on data root/);
});

test('tcp:// without TLS is refused, and bad daemon.json keys are named', async () => {
  const r = await run(process.execPath, [BERTHD, '-H', 'tcp://127.0.0.1:0', '--data-root', path.join(d.dir, 'd3'), '--exec-root', path.join(d.dir, 'e3'), '--pidfile', path.join(d.dir, 'p3'), '--config-file', path.join(d.dir, 'daemon.json')], { timeoutMs: 20_000 });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /tcp:\/\/ listeners need TLS/);
  const bad = path.join(d.dir, 'bad.json');
  fs.writeFileSync(bad, JSON.stringify({ 'no-such-key': 1 }));
  const r2 = await run(process.execPath, [BERTHD, '--config-file', bad, '--data-root', path.join(d.dir, 'd4')], { timeoutMs: 20_000 });
  assert.notEqual(r2.code, 0);
  assert.match(r2.stderr, /don't match any configuration option: no-such-key/);
});

test('SIGTERM shuts the daemon down cleanly and removes its socket', async () => {
  const { startDaemon: start } = await import('../helpers/daemon');
  const d2 = await start({ name: 'system-term' });
  try {
    const exited = new Promise<number | null>((r) => d2.proc.once('exit', (code) => r(code)));
    d2.proc.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.equal(fs.existsSync(d2.socket), false);
  } finally {
    await destroyDaemon(d2);
  }
});
