// docker login, push and pull against registries that require credentials: Basic auth from an
// htpasswd file (bcrypt), and Docker's bearer-token flow with the registry's own token service.
// Everything goes through the real docker CLI (which keeps the credentials in its DOCKER_CONFIG
// and sends them as X-Registry-Auth) to a real berthd.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { api, destroyDaemon, docker, startDaemon, type TestDaemon } from '../helpers/daemon';
import { busyboxRootfs } from '../images/fixtures';
import { startRegistry, type TestRegistry } from './helpers';

let d: TestDaemon;
let basic: TestRegistry;
let token: TestRegistry;
let imageId: string;

function writeHtpasswd(dir: string): string {
  const file = path.join(dir, 'htpasswd');
  fs.writeFileSync(file, `alice:${bcrypt.hashSync('s3cret', 5)}\n`);
  return file;
}

before(async () => {
  basic = await startRegistry('basic', (dir) => ['--htpasswd', writeHtpasswd(dir)]);
  token = await startRegistry('token', (dir) => {
    const key = path.join(dir, 'token.pem');
    fs.writeFileSync(key, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    return ['--htpasswd', writeHtpasswd(dir), '--token-server', '--token-key', key];
  });
  d = await startDaemon({ name: 'dist-auth' });
  const rootfs = path.join(d.dir, 'rootfs.tar');
  fs.writeFileSync(rootfs, await busyboxRootfs());
  const r = await docker(d, ['import', rootfs, 'busybox:latest']);
  assert.equal(r.code, 0, r.stderr);
  imageId = r.stdout.trim();
});
after(async () => {
  await destroyDaemon(d);
  await basic?.stop();
  await token?.stop();
});

for (const kind of ['basic', 'token'] as const) {
  test(`${kind} auth: push without login fails, login, push and pull, wrong password`, async () => {
    const reg = kind === 'basic' ? basic : token;
    const ref = `${reg.host}/team/app:v1`;
    assert.equal((await docker(d, ['tag', 'busybox', ref])).code, 0);

    const anon = await docker(d, ['push', ref]);
    assert.notEqual(anon.code, 0);
    if (kind === 'basic') assert.match(anon.stderr + anon.stdout, /no basic auth credentials/);
    else assert.match(anon.stderr + anon.stdout, /unauthorized|denied/);

    const bad = await docker(d, ['login', reg.host, '-u', 'alice', '-p', 'wrong']);
    assert.notEqual(bad.code, 0);
    if (kind === 'basic') {
      assert.match(bad.stderr, new RegExp(`Error response from daemon: login attempt to http://${reg.host.replace(/\./g, '\\.')}/v2/ failed with status: 401 Unauthorized`));
    } else {
      assert.match(bad.stderr, new RegExp(`Error response from daemon: Get "http://${reg.host.replace(/\./g, '\\.')}/v2/": unauthorized: incorrect username or password`));
    }
    const raw = await api(d.socket, 'POST', '/auth', { username: 'alice', password: 'wrong', serveraddress: reg.host });
    assert.equal(raw.status, 401);

    const login = await docker(d, ['login', reg.host, '-u', 'alice', '-p', 's3cret']);
    assert.equal(login.code, 0, login.stderr);
    assert.match(login.stdout, /Login Succeeded/);
    const ok = await api(d.socket, 'POST', '/auth', { username: 'alice', password: 's3cret', serveraddress: `http://${reg.host}/` });
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.json(), { Status: 'Login Succeeded', IdentityToken: '' });

    const push = await docker(d, ['push', ref]);
    assert.equal(push.code, 0, push.stderr + push.stdout);
    assert.match(push.stdout, /v1: digest: sha256:[a-f0-9]{64} size: \d+/);

    await docker(d, ['rmi', '-f', imageId]);
    const pull = await docker(d, ['pull', ref]);
    assert.equal(pull.code, 0, pull.stderr);
    assert.match(pull.stdout, /Status: Downloaded newer image/);
    assert.equal((await docker(d, ['image', 'inspect', ref, '--format', '{{.Id}}'])).stdout.trim(), imageId);
    await docker(d, ['tag', imageId, 'busybox']);

    // Without credentials the pull is refused with the registry's reason.
    assert.equal((await docker(d, ['logout', reg.host])).code, 0);
    const anonPull = await api(d.socket, 'POST', `/images/create?fromImage=${encodeURIComponent(`${reg.host}/team/app`)}&tag=v1`);
    assert.notEqual(anonPull.status, 200);
    assert.match(anonPull.json<{ message: string }>().message, kind === 'basic' ? /no basic auth credentials/ : /unauthorized|denied/);
  });
}

test('X-Registry-Auth that is not base64 JSON is a 400', async () => {
  const r = await api(d.socket, 'POST', `/images/create?fromImage=${encodeURIComponent(`${basic.host}/team/app`)}&tag=v1`, undefined, { 'X-Registry-Auth': '!!!not-json!!!' });
  assert.equal(r.status, 400);
  assert.match(r.json<{ message: string }>().message, /invalid X-Registry-Auth header/);
});
