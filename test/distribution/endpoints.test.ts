// Which endpoint serves a pull: a --registry-mirror for docker.io images (here a local registry
// holding library/busybox), and a TLS registry on loopback (self-signed certificate), reached
// after plain http fails, as an insecure registry.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { destroyDaemon, docker, startDaemon, type TestDaemon } from '../helpers/daemon';
import { busyboxRootfs } from '../images/fixtures';
import { startRegistry, type TestRegistry } from './helpers';

let d: TestDaemon;
let mirror: TestRegistry;
let tls: TestRegistry;
let imageId: string;

before(async () => {
  mirror = await startRegistry('mirror');
  tls = await startRegistry('tls', (dir) => {
    const key = path.join(dir, 'key.pem');
    const cert = path.join(dir, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' });
    return ['--tls-cert', cert, '--tls-key', key];
  });
  d = await startDaemon({ name: 'dist-endpoints', config: { 'registry-mirrors': [mirror.url] } });
  const rootfs = path.join(d.dir, 'rootfs.tar');
  fs.writeFileSync(rootfs, await busyboxRootfs());
  const r = await docker(d, ['import', rootfs, 'seed:latest']);
  assert.equal(r.code, 0, r.stderr);
  imageId = r.stdout.trim();
});
after(async () => {
  await destroyDaemon(d);
  await mirror?.stop();
  await tls?.stop();
});

test('docker.io images are pulled from the registry mirror', async () => {
  await docker(d, ['tag', imageId, `${mirror.host}/library/busybox:latest`]);
  const push = await docker(d, ['push', `${mirror.host}/library/busybox:latest`]);
  assert.equal(push.code, 0, push.stderr);
  const digest = /digest: (sha256:[a-f0-9]{64})/.exec(push.stdout)![1];
  await docker(d, ['rmi', '-f', imageId]);
  const pull = await docker(d, ['pull', 'busybox']);
  assert.equal(pull.code, 0, pull.stderr);
  assert.match(pull.stdout, /latest: Pulling from library\/busybox/);
  assert.match(pull.stdout, /Status: Downloaded newer image for busybox:latest/);
  const r = await docker(d, ['image', 'inspect', 'busybox', '--format', '{{.Id}} {{json .RepoDigests}}']);
  assert.equal(r.stdout.trim(), `${imageId} ["busybox@${digest}"]`);
});

test('a TLS registry on loopback is used over https without verification', async () => {
  await docker(d, ['tag', imageId, `${tls.host}/secure/app:v1`]);
  const push = await docker(d, ['push', `${tls.host}/secure/app:v1`]);
  assert.equal(push.code, 0, push.stderr + push.stdout);
  assert.match(push.stdout, /v1: digest: sha256:/);
  await docker(d, ['rmi', '-f', imageId]);
  const pull = await docker(d, ['pull', `${tls.host}/secure/app:v1`]);
  assert.equal(pull.code, 0, pull.stderr);
  assert.equal((await docker(d, ['image', 'inspect', `${tls.host}/secure/app:v1`, '--format', '{{.Id}}'])).stdout.trim(), imageId);
});
