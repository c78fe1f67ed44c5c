// berth login / logout / push / pull (and run's pull of a missing image) against a real registry
// (`berth registry serve` with basic auth) and a real berthd, with the docker CLI on the same
// daemon as the reference where both see the same state.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import bcrypt from 'bcryptjs';
import { berth, destroyDaemon, docker, startDaemon, type TestDaemon } from '../helpers/daemon';
import { startRegistry, type TestRegistry } from '../distribution/helpers';
import { authKey, registryAuthHeader, registryOf } from '../../src/cli/commands/registry-client';

let d: TestDaemon;
let reg: TestRegistry;

before(async () => {
  reg = await startRegistry('cli-login', (dir) => {
    const file = path.join(dir, 'htpasswd');
    fs.writeFileSync(file, `alice:${bcrypt.hashSync('s3cret', 5)}\n`);
    return ['--htpasswd', file];
  });
  d = await startDaemon({ name: 'cli-registry' });
  const seed = await berth(d, ['image', 'seed', 'busybox']);
  assert.equal(seed.code, 0, seed.stderr);
});
after(async () => {
  await destroyDaemon(d);
  await reg?.stop();
});

async function ok(args: string[], input?: string): Promise<{ stdout: string; stderr: string }> {
  const r = await berth(d, args, { input });
  assert.equal(r.code, 0, `berth ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r;
}

test('registry names and the auth header', () => {
  assert.equal(registryOf('busybox'), 'docker.io');
  assert.equal(registryOf('team/app'), 'docker.io');
  assert.equal(registryOf('localhost/app'), 'localhost');
  assert.equal(registryOf('127.0.0.1:5000/team/app'), '127.0.0.1:5000');
  assert.equal(authKey('docker.io'), 'https://index.docker.io/v1/');
  assert.equal(authKey('http://127.0.0.1:5000/'), '127.0.0.1:5000');
  const dir = fs.mkdtempSync('/tmp/berth-cli-auth-');
  try {
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ auths: { 'r:1': { auth: Buffer.from('bob:pa:ss').toString('base64') } } }));
    const h = JSON.parse(Buffer.from(registryAuthHeader({ BERTH_CONFIG: dir }, 'r:1'), 'base64url').toString()) as Record<string, string>;
    assert.deepEqual(h, { serveraddress: 'r:1', username: 'bob', password: 'pa:ss' });
    const anon = JSON.parse(Buffer.from(registryAuthHeader({ BERTH_CONFIG: dir }, 'other:2'), 'base64url').toString()) as Record<string, string>;
    assert.deepEqual(anon, { serveraddress: 'other:2' });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('login, push, pull, run pulling a missing image, logout', async () => {
  const ref = `${reg.host}/team/app:v1`;
  await ok(['tag', 'busybox', ref]);
  const anon = await berth(d, ['push', ref]);
  assert.equal(anon.code, 1);
  assert.match(anon.stderr, /no basic auth credentials/);

  const bad = await berth(d, ['login', reg.host, '-u', 'alice', '-p', 'wrong']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /Error response from daemon: .*401 Unauthorized/);
  const configFile = path.join(d.dir, 'berth-config', 'config.json');
  assert.ok(!fs.existsSync(configFile), 'a failed login stores nothing');

  const login = await ok(['login', reg.host, '-u', 'alice', '--password-stdin'], 's3cret\n');
  assert.equal(login.stdout, 'Login Succeeded\n');
  assert.match(login.stderr, /credentials are stored unencrypted/);
  assert.equal(fs.statSync(configFile).mode & 0o777, 0o600);
  const cfg = JSON.parse(fs.readFileSync(configFile, 'utf8')) as { auths: Record<string, { auth: string }> };
  assert.deepEqual(cfg.auths, { [reg.host]: { auth: Buffer.from('alice:s3cret').toString('base64') } });
  const withP = await ok(['login', reg.host, '-u', 'alice', '-p', 's3cret']);
  assert.match(withP.stderr, /^WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n/);

  const push = await ok(['push', ref]);
  assert.match(push.stdout, new RegExp(`^The push refers to repository \\[${reg.host}/team/app\\]\\n[0-9a-f]{12}: Preparing\\n[0-9a-f]{12}: Pushed\\nv1: digest: sha256:[0-9a-f]{64} size: \\d+\\n$`));
  const digest = /digest: (sha256:[0-9a-f]{64})/.exec(push.stdout)![1];
  // Quiet push prints the reference only.
  assert.equal((await ok(['push', '-q', ref])).stdout, `${ref}\n`);

  await ok(['rmi', ref]);
  const pull = await ok(['pull', ref]);
  assert.match(pull.stdout, new RegExp(`^v1: Pulling from team/app\\n(.*\\n)*Digest: ${digest}\\nStatus: (Downloaded newer image|Image is up to date) for ${ref}\\n${ref}\\n$`));
  // No latest tag: the same output and error as docker's.
  const noLatest = await berth(d, ['pull', `${reg.host}/team/app`]);
  assert.equal(noLatest.code, 1);
  assert.equal(noLatest.stdout, 'Using default tag: latest\n');
  assert.match(noLatest.stderr, /manifest unknown/);
  assert.equal((await berth(d, ['pull', '-q', ref])).stdout, `${ref}\n`);
  assert.equal((await ok(['pull', '-q', `${reg.host}/team/app@${digest}`])).stdout, `${reg.host}/team/app@${digest}\n`);
  const both = await berth(d, ['pull', '-a', ref]);
  assert.equal(both.code, 1);
  assert.equal(both.stderr, "tag can't be used with --all-tags/-a\n");
  const all = await ok(['pull', '-a', `${reg.host}/team/app`]);
  assert.match(all.stdout, /Status: .* for /);

  // run finds the image missing and pulls it with the stored credentials.
  await ok(['rmi', '-f', ref, `${reg.host}/team/app@${digest}`]).catch(() => undefined);
  await berth(d, ['rmi', '-f', ref]);
  const run = await berth(d, ['run', '--rm', ref, 'echo', 'pulled-and-ran']);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout, 'pulled-and-ran\n');
  assert.match(run.stderr, new RegExp(`^Unable to find image '${ref}' locally\\nv1: Pulling from team/app\\n`));

  assert.equal((await ok(['logout', reg.host])).stdout, `Removing login credentials for ${reg.host}\n`);
  assert.deepEqual((JSON.parse(fs.readFileSync(configFile, 'utf8')) as { auths: object }).auths, {});
  assert.equal((await ok(['logout', reg.host])).stdout, `Not logged in to ${reg.host}\n`);
  const denied = await berth(d, ['push', ref]);
  assert.equal(denied.code, 1);
  // The docker CLI against the same daemon and registry, logged out too: the same error.
  const dk = await docker(d, ['push', ref]);
  assert.equal(denied.stderr, dk.stderr);
});
