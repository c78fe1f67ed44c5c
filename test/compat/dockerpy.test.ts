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

// The system interpreter: python3 on PATH may be a pyenv one with another docker-py.
const PYTHON = '/usr/bin/python3';
const SCRIPT = path.join(REPO_ROOT, 'test/compat/dockerpy_scenarios.py');

let env: CtrEnv;
let workdir: string;

before(async () => {
  env = await setupDaemon('compat-py');
  workdir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-compat-py-'));
});

after(async () => {
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
