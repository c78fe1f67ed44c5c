// docker-py (Debian's python3-docker 5.0.3) driving berthd unchanged: each subtest runs one
// scenario of test/compat/dockerpy_scenarios.py through the real client library and asserts on
// the JSON it reports back.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO_ROOT, run } from '../helpers/daemon';
import { setupDaemon, type CtrEnv } from '../containers/fixtures';
import { startRegistry, type TestRegistry } from '../distribution/helpers';

// The system interpreter: python3 on PATH may be a pyenv one with another docker-py.
const PYTHON = '/usr/bin/python3';
const SCRIPT = path.join(REPO_ROOT, 'test/compat/dockerpy_scenarios.py');

let env: CtrEnv;
let workdir: string;
let registry: TestRegistry | undefined;

before(async () => {
  env = await setupDaemon('compat-py');
  workdir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-compat-py-'));
});

after(async () => {
  await registry?.stop();
  await env?.cleanup();
  if (workdir) fs.rmSync(workdir, { recursive: true, force: true });
});

async function scenario<T>(name: string, ...args: string[]): Promise<T> {
  const r = await run(PYTHON, [SCRIPT, name, ...args], { env: { DOCKER_HOST: env.d.host }, timeoutMs: 90_000 });
  assert.equal(r.code, 0, `docker-py ${name} failed:\n${r.stderr}\n--- daemon log tail ---\n${env.d.logs().slice(-3000)}`);
  return JSON.parse(r.stdout) as T;
}

test('ping, version and info (explicit base_url and docker.from_env())', async () => {
  const r = await scenario<{ ping: boolean; from_env_ping: boolean; version: { ApiVersion: string; Version: string; Os: string }; info_keys: string[]; api_version: string }>('system');
  assert.equal(r.ping, true);
  assert.equal(r.from_env_ping, true);
  assert.match(r.version.ApiVersion, /^1\.\d+$/);
  assert.equal(r.api_version, r.version.ApiVersion, 'version="auto" negotiates the daemon API version');
  assert.equal(r.version.Os, 'linux');
  for (const k of ['Containers', 'Images', 'Driver', 'OperatingSystem', 'NCPU', 'MemTotal']) assert.ok(r.info_keys.includes(k), `info has ${k}`);
});

test('images.list/get/tag/remove', async () => {
  const r = await scenario<{ listed: string[]; id: string; tagged: boolean; same_id: boolean; gone: boolean }>('images');
  assert.ok(r.listed.includes('busybox:latest'), `listed: ${r.listed.join(', ')}`);
  assert.match(r.id, /^sha256:[0-9a-f]{64}$/);
  assert.equal(r.tagged, true);
  assert.equal(r.same_id, true);
  assert.equal(r.gone, true);
});

test('containers.run returns the output of echo hi', async () => {
  const r = await scenario<{ output: string }>('run_output');
  assert.equal(r.output, 'hi\n');
});

test('detached run, logs, exec_run, stop, remove', async () => {
  const r = await scenario<{ logs: string; running: string; exec_ok: [number, string]; exec_bad: [number, string]; stopped: string; remaining: string[] }>('detached');
  assert.match(r.logs, /started/);
  assert.equal(r.running, 'running');
  assert.deepEqual(r.exec_ok, [0, 'from-exec\n']);
  assert.deepEqual(r.exec_bad, [3, 'oops\n']);
  assert.equal(r.stopped, 'exited');
  assert.ok(!r.remaining.includes('compat-detached'));
});

test('images.build of a multi-stage Dockerfile, then run the result', async () => {
  const r = await scenario<{ tags: string[]; stream: string; output: string }>('build', workdir);
  assert.ok(r.tags.includes('compat/multistage:latest'), `tags: ${r.tags.join(', ')}`);
  assert.match(r.stream, /Successfully built [0-9a-f]{12}/);
  assert.equal(r.output, 'built-in-stage-one\nhello-from-context\n');
});

test('networks.create/list/remove', async () => {
  const r = await scenario<{ listed: string[]; got: string; after: string[] }>('networks');
  assert.ok(r.listed.includes('compat-net'));
  assert.ok(r.listed.includes('bridge'));
  assert.equal(r.got, 'compat-net');
  assert.ok(!r.after.includes('compat-net'));
});

test('volumes.create/list/remove', async () => {
  const r = await scenario<{ listed: string[]; labels: Record<string, string>; after: string[] }>('volumes');
  assert.ok(r.listed.includes('compat-vol'));
  assert.deepEqual(r.labels, { compat: 'yes' });
  assert.ok(!r.after.includes('compat-vol'));
});

test('events with since/until and a filter end by themselves', async () => {
  const r = await scenario<{ actions: string[]; seconds: number }>('events');
  for (const a of ['create', 'start', 'die', 'destroy']) assert.ok(r.actions.includes(a), `saw ${a} in ${r.actions.join(', ')}`);
  assert.ok(r.seconds < 10, `the stream ended at until (${r.seconds}s)`);
});

test('containers.list filters volume, network, publish and expose', async () => {
  const r = await scenario<Record<string, unknown>>('ps_filters');
  assert.deepEqual(r.volume_name, ['compat-f-a']);
  assert.deepEqual(r.volume_dest, ['compat-f-a']);
  assert.deepEqual(r.volume_none, []);
  assert.deepEqual(r.network_name, ['compat-f-a']);
  assert.deepEqual(r.network_id, ['compat-f-a']);
  assert.deepEqual(r.network_bridge, ['compat-f-b']);
  assert.deepEqual(r.network_none, []);
  assert.deepEqual(r.publish, ['compat-f-a']);
  assert.deepEqual(r.publish_other, []);
  assert.deepEqual(r.expose, ['compat-f-a']);
  assert.deepEqual(r.expose_range, ['compat-f-a']);
  assert.deepEqual(r.expose_udp, []);
  assert.deepEqual(r.bad_publish, [400, "filter for 'publish' should not contain ':': 127.0.0.1:80"]);
});

test('SizeRw counts file bytes: 0 for a fresh container, 5 after writing "hello"', async () => {
  const r = await scenario<{ fresh_list: number; after_write: number; rootfs_gt: boolean; inspect_has_no_size: boolean }>('sizes');
  assert.equal(r.fresh_list, 0);
  assert.equal(r.after_write, 5);
  assert.equal(r.rootfs_gt, true);
  assert.equal(r.inspect_has_no_size, true);
});

test('dangling=true lists dangling heads, not build intermediates; prune takes the head and its own parents', async () => {
  const r = await scenario<{ old: string; new: string; old_parents: string[]; listed: string[]; listed_all: string[]; intermediates: string[]; pruned: string[] }>('dangling', workdir);
  assert.notEqual(r.old, r.new);
  // Earlier scenarios may leave dangling heads of their own (a multi-stage build's first stage).
  assert.ok(r.listed.includes(r.old), `listed: ${r.listed.join(', ')}`);
  assert.ok(!r.listed.includes(r.new));
  // The old image and the two build steps only it used; nothing of the new image.
  assert.ok(r.pruned.includes(r.old), `pruned: ${r.pruned.join(', ')}`);
  assert.ok(!r.pruned.includes(r.new));
  for (const parent of r.old_parents) {
    assert.ok(r.pruned.includes(parent), `the old image's parent ${parent} went with it`);
    assert.ok(r.intermediates.includes(parent), 'the old image\'s parents are untagged images listed with all=True');
    assert.ok(!r.listed.includes(parent), 'but an image with children is no dangling head');
    assert.ok(!r.listed_all.includes(parent), 'even with all=True, as dockerd lists only heads for dangling=true');
  }
});

test('push to and pull from a registry; inspect_distribution and get_registry_data', async () => {
  registry = await startRegistry('compat-py');
  const r = await scenario<{ push_aux: { Tag: string; Digest: string }[]; push_errors: unknown[]; pulled_tags: string[]; repo_digests: string[]; dist: { Descriptor: { mediaType: string; digest: string; size: number }; Platforms: { os: string; architecture: string }[] }; data_id: string; has_platform: boolean; missing: number }>('registry', registry.host);
  assert.deepEqual(r.push_errors, []);
  assert.equal(r.push_aux.length, 1);
  const digest = r.push_aux[0].Digest;
  assert.match(digest, /^sha256:[0-9a-f]{64}$/);
  assert.ok(r.pulled_tags.includes(`${registry.host}/compat/pushed:v1`), r.pulled_tags.join(', '));
  assert.deepEqual(r.repo_digests, [`${registry.host}/compat/pushed@${digest}`]);
  assert.equal(r.dist.Descriptor.digest, digest);
  assert.ok(r.dist.Descriptor.size > 0);
  assert.match(r.dist.Descriptor.mediaType, /manifest/);
  assert.deepEqual(r.dist.Platforms, [{ architecture: process.arch === 'x64' ? 'amd64' : process.arch, os: 'linux' }]);
  assert.equal(r.data_id, digest);
  assert.equal(r.has_platform, process.arch === 'x64');
  assert.equal(r.missing, 404);
});

test('container attrs hold every HostConfig field, as dockerd shows them', async () => {
  const r = await scenario<{ missing: string[]; memory: number; cpu_quota: number; has_init: boolean }>('inspect_shape');
  assert.deepEqual(r.missing, []);
  assert.equal(r.memory, 64 * 1024 * 1024);
  assert.equal(r.cpu_quota, 0);
  assert.equal(r.has_init, false, 'Init is omitempty in dockerd');
});
