// Containers outlive berthd: after a SIGKILL of the daemon (and after a clean SIGTERM stop) a new
// berthd on the same roots finds every container again, notices exits that happened meanwhile,
// applies --rm, and keeps logs and exec working. Also restart policies. At the end nothing of
// the containers is left: no overlay mount, no conmon, no cgroup.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { api } from '../helpers/daemon';
import { cgroupDirsOf, mountsUnder, pidsMentioning, setupDaemon, inspectContainer, until, type CtrEnv, type ContainerJSON } from './fixtures';

let e: CtrEnv;
before(async () => {
  e = await setupDaemon('survive');
});
after(async () => {
  await e?.cleanup();
});

const ok = (args: string[], input?: string): Promise<string> => e.ok(args, input);

const state = (ref: string): Promise<ContainerJSON> => inspectContainer(e, ref);


// The issue's own figure: berthd SIGKILLed while 20 containers run.
const N = 20;

test('containers survive a SIGKILLed berthd; exits meanwhile are noticed; then nothing leaks', async () => {
  const names = Array.from({ length: N }, (_v, i) => `keep${i}`).sort();
  for (const n of names) await ok(['run', '-d', '--name', n, 'busybox', 'sh', '-c', `echo started-${n}; while true; do sleep 1; done`]);
  await ok(['run', '-d', '--name', 'quitter', 'busybox', 'sh', '-c', 'sleep 1; exit 5']);
  await ok(['run', '-d', '--rm', '--name', 'ephemeral', 'busybox', 'sleep', '1']);
  const pids = new Map<string, number>();
  for (const n of names) pids.set(n, (await state(n)).State.Pid);

  await e.d.stop('SIGKILL');
  // The containers' processes did not die with the daemon.
  for (const [n, pid] of pids) assert.doesNotThrow(() => process.kill(pid, 0), `${n} died with berthd`);
  await new Promise((r) => setTimeout(r, 2000)); // quitter and ephemeral exit while berthd is down
  await e.d.restart();

  const running = (await ok(['ps', '--format', '{{.Names}}'])).trim().split('\n').sort();
  assert.deepEqual(running, names);
  for (const n of names) {
    const s = await state(n);
    assert.equal(s.State.Status, 'running');
    assert.equal(s.State.Pid, pids.get(n));
  }
  const q = await state('quitter');
  assert.equal(q.State.Status, 'exited');
  assert.equal(q.State.ExitCode, 5);
  assert.ok(Date.parse(q.State.FinishedAt) > Date.parse(q.State.StartedAt));
  await until('ephemeral removed', async () => (await api(e.d.socket, 'GET', '/containers/ephemeral/json')).status === 404);

  // Logs, exec and wait work on recovered containers.
  assert.match(await ok(['logs', 'keep0']), /^started-keep0\n/);
  assert.equal(await ok(['exec', 'keep1', 'echo', 'still-here']), 'still-here\n');
  const waited = api(e.d.socket, 'POST', '/containers/keep2/wait');
  await ok(['kill', 'keep2']);
  assert.deepEqual((await waited).json(), { StatusCode: 137, Error: null });

  // A clean SIGTERM stop leaves containers running too (live restore).
  await e.d.restart();
  assert.equal((await ok(['ps', '-q'])).trim().split('\n').length, N - 1);
  assert.equal(await ok(['exec', 'keep3', 'echo', 'after-sigterm']), 'after-sigterm\n');

  await ok(['stop', '-t', '1', ...names.filter((n) => n !== 'keep2')]);
  await ok(['rm', ...names, 'quitter']);
  assert.equal((await ok(['ps', '-aq'])).trim(), '');
  assert.deepEqual(mountsUnder(e.d.dir).filter((l) => l.includes(' overlay ')), []);
  assert.deepEqual(pidsMentioning(e.d.dir).filter((p) => fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').startsWith('/usr/bin/conmon')), []);
  for (const dir of cgroupDirsOf(e.cgroupParent)) {
    assert.deepEqual(fs.readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name), [], `cgroups left in ${dir}`);
  }
  assert.deepEqual(fs.readdirSync(`${e.d.dataRoot}/containers`), []);
  assert.deepEqual(fs.readdirSync(e.d.execRoot).filter((n) => /^[0-9a-f]{64}$/.test(n)), []);
});

test('restart policies: on-failure:N with back-off, always until stopped, --rm with no restart', async () => {
  await ok(['run', '-d', '--name', 'flaky', '--restart', 'on-failure:2', 'busybox', 'sh', '-c', 'exit 1']);
  await until('flaky gives up', async () => {
    const s = await state('flaky');
    return s.State.Status === 'exited' && s.RestartCount === 2;
  });
  await new Promise((r) => setTimeout(r, 500));
  assert.equal((await state('flaky')).RestartCount, 2);

  await ok(['run', '-d', '--name', 'phoenix', '--restart', 'always', 'busybox', 'sh', '-c', 'sleep 0.2']);
  await until('phoenix restarts', async () => (await state('phoenix')).RestartCount >= 2);
  await ok(['stop', '-t', '1', 'phoenix']);
  const after1 = (await state('phoenix')).RestartCount;
  await new Promise((r) => setTimeout(r, 800));
  const s = await state('phoenix');
  assert.equal(s.State.Status, 'exited');
  assert.equal(s.RestartCount, after1);

  const bad = await api(e.d.socket, 'POST', '/containers/create', { Image: 'busybox', HostConfig: { AutoRemove: true, RestartPolicy: { Name: 'always' } } });
  assert.equal(bad.status, 400);
  const bad2 = await api(e.d.socket, 'POST', '/containers/create', { Image: 'busybox', HostConfig: { RestartPolicy: { Name: 'sometimes' } } });
  assert.equal(bad2.status, 400);
  await ok(['rm', 'flaky', 'phoenix']);
});
