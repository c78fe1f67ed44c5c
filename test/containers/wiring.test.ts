// The container service wired to events, seccomp, stats and OOM detection, through the real
// docker CLI against a real berthd (crun, conmon, cgroups): the event sequence of a run/stop/rm,
// seccomp's default profile and its opt-outs, docker stats and the raw stats API, and a container
// killed by the kernel's OOM killer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { api } from '../helpers/daemon';
import { setupDaemon, type CtrEnv } from './fixtures';
import { parseSecurityOpts, resourcesOf, validateResources } from '../../src/containers/options';
import { parseOomKillCount } from '../../src/containers/oom';

let e: CtrEnv;
before(async () => {
  e = await setupDaemon('wire');
});
after(async () => {
  await e?.cleanup();
});

const ok = (args: string[], input?: string): Promise<string> => e.ok(args, input);

interface EventJSON {
  Type: string;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
}

/** The events of one container from the daemon's buffer, as `docker events --format json` prints them. */
async function eventsOf(name: string, since: number): Promise<EventJSON[]> {
  const out = await ok(['events', '--since', String(since), '--until', String(Math.ceil(Date.now() / 1000) + 1), '--filter', `container=${name}`, '--format', '{{json .}}']);
  return out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as EventJSON);
}

test('unit: security options and resources in dockerd words', () => {
  assert.deepEqual(parseSecurityOpts(['no-new-privileges']), { noNewPrivileges: true });
  assert.deepEqual(parseSecurityOpts(['no-new-privileges=false', 'seccomp=unconfined', 'label=disable']), { noNewPrivileges: false, seccomp: 'unconfined' });
  assert.deepEqual(parseSecurityOpts(['seccomp:builtin']), { noNewPrivileges: false, seccomp: 'builtin' });
  assert.throws(() => parseSecurityOpts(['bogus']), /invalid --security-opt 1: "bogus"/);
  assert.throws(() => parseSecurityOpts(['foo=bar']), /invalid --security-opt 2: "foo=bar"/);
  assert.throws(() => parseSecurityOpts(['no-new-privileges=maybe']), /invalid --security-opt 2/);

  const hc: Record<string, unknown> = { Memory: 16 << 20, MemorySwap: 0, NanoCpus: 1.5e9, PidsLimit: 50 };
  validateResources(hc);
  assert.equal(hc.MemorySwap, 32 << 20);
  assert.deepEqual(resourcesOf(hc), { memory: { limit: 16 << 20, swap: 32 << 20 }, cpu: { period: 100_000, quota: 150_000 }, pids: { limit: 50 } });
  assert.throws(() => validateResources({ Memory: 1024 }), /Minimum memory limit allowed is 6MB/);
  assert.throws(() => validateResources({ MemorySwap: 64 << 20 }), /always set the Memory limit/);
  assert.throws(() => validateResources({ Memory: 64 << 20, MemorySwap: 32 << 20 }), /memoryswap limit should be larger/);

  assert.equal(parseOomKillCount('oom_kill_disable 0\nunder_oom 0\noom_kill 3\n'), 3);
  assert.equal(parseOomKillCount('low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n'), 1);
  assert.equal(parseOomKillCount('oom_kill_disable 0\n'), undefined);
});

test('events: run/stop/rm give create, start, kill, die, stop, destroy with name, image, labels', async () => {
  const since = Math.floor(Date.now() / 1000) - 1;
  const id = (await ok(['run', '-d', '--name', 'evt', '--label', 'team=core', 'busybox', 'sleep', '300'])).trim();
  await ok(['rename', 'evt', 'evt2']);
  await ok(['pause', 'evt2']);
  await ok(['unpause', 'evt2']);
  assert.equal(await ok(['exec', 'evt2', 'sh', '-c', 'exit 0']), '');
  // sleep as pid 1 ignores SIGTERM: stop sends it, waits its second, then SIGKILLs.
  await ok(['stop', '-t', '1', 'evt2']);
  await ok(['rm', 'evt2']);

  const actions = (await ok(['events', '--since', String(since), '--until', String(Math.ceil(Date.now() / 1000) + 1), '--filter', `container=${id}`, '--format', '{{.Action}}'])).trim().split('\n');
  assert.deepEqual(actions, ['create', 'start', 'rename', 'pause', 'unpause', 'exec_create: sh -c exit 0', 'exec_start: sh -c exit 0', 'exec_die', 'kill', 'kill', 'die', 'stop', 'destroy']);

  const evs = await eventsOf(id, since);
  for (const ev of evs) {
    assert.equal(ev.Type, 'container');
    assert.equal(ev.Actor.ID, id);
    assert.equal(ev.Actor.Attributes.image, 'busybox');
    assert.equal(ev.Actor.Attributes.team, 'core');
  }
  const by = (a: string): EventJSON => evs.find((x) => x.Action === a)!;
  assert.equal(by('create').Actor.Attributes.name, 'evt');
  assert.equal(by('rename').Actor.Attributes.name, 'evt2');
  assert.equal(by('rename').Actor.Attributes.oldName, '/evt');
  assert.deepEqual(evs.filter((x) => x.Action === 'kill').map((x) => x.Actor.Attributes.signal), ['15', '9']);
  assert.equal(by('die').Actor.Attributes.exitCode, '137');
  assert.match(by('die').Actor.Attributes.execDuration, /^\d+$/);
  assert.equal(by('exec_die').Actor.Attributes.exitCode, '0');
  assert.match(by('exec_die').Actor.Attributes.execID, /^[0-9a-f]{64}$/);

  // A foreground run: attach before start; --rm removes it after the exit.
  const since2 = Math.floor(Date.now() / 1000) - 1;
  assert.equal((await e.docker(['run', '--rm', '--name', 'evt-fg', 'busybox', 'sh', '-c', 'exit 4'])).code, 4);
  const deadline = Date.now() + 10_000;
  let fg: string[] = [];
  while (Date.now() < deadline) {
    fg = (await eventsOf('evt-fg', since2)).map((x) => x.Action);
    if (fg.includes('destroy')) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual(fg, ['create', 'attach', 'start', 'die', 'destroy']);

  // restart and kill -s
  const since3 = Math.floor(Date.now() / 1000) - 1;
  await ok(['run', '-d', '--name', 'evt-r', 'busybox', 'sleep', '300']);
  await ok(['restart', '-t', '0', 'evt-r']);
  await ok(['kill', '-s', 'KILL', 'evt-r']);
  const r = await eventsOf('evt-r', since3);
  assert.deepEqual(r.map((x) => x.Action), ['create', 'start', 'kill', 'kill', 'die', 'stop', 'start', 'restart', 'kill', 'die']);
  // restart -t 0: the stop signal, then SIGKILL at once.
  assert.deepEqual([r[2].Actor.Attributes.signal, r[3].Actor.Attributes.signal], ['15', '9']);
  assert.equal(r[r.length - 2].Actor.Attributes.signal, '9');
  assert.equal(r[r.length - 1].Actor.Attributes.exitCode, '137');
  await ok(['rm', '-f', 'evt-r']);

  // resize of a TTY container carries the size.
  const since4 = Math.floor(Date.now() / 1000) - 1;
  await ok(['run', '-d', '-t', '--name', 'evt-tty', 'busybox', 'sleep', '300']);
  const rs = await api(e.d.socket, 'POST', '/containers/evt-tty/resize?h=30&w=100');
  assert.equal(rs.status, 200, rs.body.toString());
  const resize = (await eventsOf('evt-tty', since4)).find((x) => x.Action === 'resize');
  assert.deepEqual([resize?.Actor.Attributes.height, resize?.Actor.Attributes.width], ['30', '100']);
  await ok(['rm', '-f', 'evt-tty']);
});

test('seccomp: a later container gets the very program crun compiled for the first, and it confines', async () => {
  // berth hands crun the program it built for the same profile (src/runtime/seccomp-cache.ts).
  const stateDir = path.join(e.d.execRoot, 'runtime', 'runtime-crun');
  const annotated = (id: string): boolean => (JSON.parse(fs.readFileSync(path.join(e.d.execRoot, id, 'config.json'), 'utf8')) as { annotations?: Record<string, string> }).annotations?.['run.oci.seccomp_bpf_data'] !== undefined;
  // A profile no other test uses, so the first container's program is crun's own compilation.
  const profile = path.join(e.d.dir, 'no-unshare.json');
  fs.writeFileSync(profile, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['unshare', 'setns'], action: 'SCMP_ACT_ERRNO' }] }));
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) ids.push((await ok(['run', '-d', '--security-opt', `seccomp=${profile}`, 'busybox', 'sleep', '1000'])).trim());
  for (let i = 0; i < 2; i++) ids.push((await ok(['run', '-d', 'busybox', 'sleep', '1000'])).trim());
  const unconfined = (await ok(['run', '-d', '--security-opt', 'seccomp=unconfined', 'busybox', 'sleep', '1000'])).trim();
  try {
    const programs = ids.map((id) => fs.readFileSync(path.join(stateDir, id, 'seccomp.bpf')));
    assert.ok(programs[0].length > 0 && programs[0].length % 8 === 0);
    assert.equal(annotated(ids[0]), false, 'the first is compiled by crun');
    for (const i of [1, 2]) {
      assert.ok(annotated(ids[i]), 'later ones get the program through the annotation');
      assert.ok(programs[i].equals(programs[0]), 'byte for byte the program crun compiled');
    }
    assert.ok(!programs[3].equals(programs[0]), 'another profile, another program');
    assert.ok(annotated(ids[4]) && programs[4].equals(programs[3]), 'the default profile too');
    for (const id of ids.slice(1)) {
      assert.match(await ok(['exec', id, 'grep', '^Seccomp:', '/proc/1/status']), /Seccomp:\s+2/);
      const denied = await e.docker(['exec', id, 'unshare', '-U', 'true']);
      assert.notEqual(denied.code, 0, 'unshare -U must still fail');
      assert.match(denied.stderr, /Operation not permitted/);
    }
    const cfg = JSON.parse(fs.readFileSync(path.join(e.d.execRoot, unconfined, 'config.json'), 'utf8')) as { annotations?: Record<string, string>; linux: { seccomp?: unknown } };
    assert.equal(cfg.linux.seccomp, undefined);
    assert.equal(cfg.annotations?.['run.oci.seccomp_bpf_data'], undefined);
    assert.equal((await e.docker(['exec', unconfined, 'unshare', '-U', 'true'])).code, 0);
  } finally {
    await ok(['rm', '-f', ...ids, unconfined]);
  }
});

test('the runtime gets HostConfig.Annotations (--annotation), not the labels', async () => {
  // A process that stays: the bundle (config.json) goes when the container exits.
  const id = (await ok(['create', '--label', 'run.oci.keep_original_groups=1', '--label', 'team=a', '--annotation', 'org.example.note=hi', 'busybox', 'sleep', '30'])).trim();
  try {
    await ok(['start', id]);
    const cfg = JSON.parse(fs.readFileSync(path.join(e.d.execRoot, id, 'config.json'), 'utf8')) as { annotations?: Record<string, string> };
    assert.equal(cfg.annotations?.['org.example.note'], 'hi');
    assert.equal(cfg.annotations?.team, undefined);
    assert.equal(cfg.annotations?.['run.oci.keep_original_groups'], undefined);
    assert.equal((await ok(['inspect', '-f', '{{json .HostConfig.Annotations}}', id])).trim(), '{"org.example.note":"hi"}');
  } finally {
    await ok(['rm', '-f', id]);
  }
});

test('seccomp: the default profile confines, unconfined and --privileged lift it; bad values are 400', async () => {
  // Creating a user namespace needs CAP_SYS_ADMIN under docker's default profile.
  const confined = await e.docker(['run', '--rm', 'busybox', 'unshare', '-U', 'true']);
  assert.notEqual(confined.code, 0, 'unshare -U must fail under the default profile');
  assert.match(confined.stderr, /Operation not permitted/);
  assert.match(await ok(['run', '--rm', 'busybox', 'grep', '^Seccomp:', '/proc/self/status']), /Seccomp:\s+2/);
  assert.match(await ok(['run', '--rm', '--security-opt', 'seccomp=unconfined', 'busybox', 'grep', '^Seccomp:', '/proc/self/status']), /Seccomp:\s+0/);
  assert.equal((await e.docker(['run', '--rm', '--security-opt', 'seccomp=unconfined', 'busybox', 'unshare', '-U', 'true'])).code, 0);

  const mountCmd = ['sh', '-c', 'mkdir -p /mnt && mount -t tmpfs none /mnt && grep -c " /mnt tmpfs" /proc/mounts'];
  assert.equal((await ok(['run', '--rm', '--security-opt', 'seccomp=unconfined', '--cap-add', 'SYS_ADMIN', 'busybox', ...mountCmd])).trim(), '1');
  assert.equal((await ok(['run', '--rm', '--privileged', 'busybox', ...mountCmd])).trim(), '1');
  assert.notEqual((await e.docker(['run', '--rm', 'busybox', ...mountCmd])).code, 0);

  // A profile file: the CLI sends its JSON; this one refuses mkdir with EPERM.
  const profile = path.join(e.d.dir, 'no-mkdir.json');
  fs.writeFileSync(profile, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' }] }));
  const denied = await e.docker(['run', '--rm', '--security-opt', `seccomp=${profile}`, 'busybox', 'mkdir', '/tmp/x']);
  assert.notEqual(denied.code, 0);
  assert.match(denied.stderr, /Operation not permitted/);
  // Again: now with the program crun compiled the first time (run.oci.seccomp_bpf_data).
  const deniedAgain = await e.docker(['run', '--rm', '--security-opt', `seccomp=${profile}`, 'busybox', 'mkdir', '/tmp/x']);
  assert.notEqual(deniedAgain.code, 0);
  assert.match(deniedAgain.stderr, /Operation not permitted/);

  // no-new-privileges reaches the process.
  assert.match(await ok(['run', '--rm', '--security-opt', 'no-new-privileges', 'busybox', 'grep', '^NoNewPrivs:', '/proc/self/status']), /NoNewPrivs:\s+1/);
  assert.match(await ok(['run', '--rm', 'busybox', 'grep', '^NoNewPrivs:', '/proc/self/status']), /NoNewPrivs:\s+0/);

  const bad = await e.docker(['create', '--security-opt', 'foo=bar', 'busybox']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /invalid --security-opt 2: "foo=bar"/);
  const badJSON = await api(e.d.socket, 'POST', '/containers/create', JSON.stringify({ Image: 'busybox', HostConfig: { SecurityOpt: ['seccomp={"defaultAction":'] } }), { 'Content-Type': 'application/json' });
  assert.equal(badJSON.status, 400);
  assert.match(badJSON.body.toString(), /Decoding seccomp profile failed/);
  const badAction = await api(e.d.socket, 'POST', '/containers/create', JSON.stringify({ Image: 'busybox', HostConfig: { SecurityOpt: ['seccomp={"defaultAction":"SCMP_ACT_NOPE"}'] } }), { 'Content-Type': 'application/json' });
  assert.equal(badAction.status, 400);
  const badMem = await e.docker(['create', '-m', '1k', 'busybox']);
  assert.notEqual(badMem.code, 0);
  assert.match(badMem.stderr, /Minimum memory limit allowed is 6MB/);
});

test('stats: docker stats --no-stream, and the raw one-shot JSON of a busy container', async () => {
  const id = (await ok(['run', '-d', '--name', 'busy', '-m', '64m', 'busybox', 'sh', '-c', 'while :; do :; done'])).trim();
  try {
    await new Promise((r) => setTimeout(r, 300));
    const line = (await ok(['stats', '--no-stream', '--format', '{{.Name}} {{.MemUsage}}', 'busy'])).trim();
    assert.match(line, /^busy \d+(\.\d+)?[KMG]?i?B \/ 64MiB$/);

    const r = await api(e.d.socket, 'GET', `/containers/${id}/stats?stream=false&one-shot=true`);
    assert.equal(r.status, 200, r.body.toString());
    const s = r.json<{ name: string; id: string; cpu_stats: { cpu_usage: { total_usage: number }; online_cpus: number }; memory_stats: { usage: number; limit: number }; pids_stats: { current: number } }>();
    assert.equal(s.name, '/busy');
    assert.equal(s.id, id);
    assert.ok(s.cpu_stats.cpu_usage.total_usage > 0, JSON.stringify(s.cpu_stats));
    assert.ok(s.cpu_stats.online_cpus >= 1);
    assert.equal(s.memory_stats.limit, 64 << 20);
    assert.ok(s.memory_stats.usage > 0);
    assert.ok(s.pids_stats.current >= 1);

    // The stream: one object per second until the client goes away.
    const lines = await new Promise<string[]>((resolve, reject) => {
      const req = http.get({ socketPath: e.d.socket, path: `/containers/${id}/stats` }, (res) => {
        let buf = '';
        res.on('data', (c: Buffer) => {
          buf += c.toString();
          const got = buf.split('\n').filter(Boolean);
          if (got.length >= 2) {
            req.destroy();
            resolve(got);
          }
        });
        res.on('error', () => {});
      });
      req.on('error', (err) => { if (!req.destroyed) reject(err); });
      setTimeout(() => { req.destroy(); reject(new Error('no second stats object within 5 s')); }, 5000);
    });
    const [first, second] = lines.map((l) => JSON.parse(l) as { read: string; preread: string; cpu_stats: { cpu_usage: { total_usage: number } }; precpu_stats: { cpu_usage: { total_usage: number } } });
    assert.equal(second.preread, first.read);
    assert.ok(second.cpu_stats.cpu_usage.total_usage > second.precpu_stats.cpu_usage.total_usage);

    const bad = await api(e.d.socket, 'GET', `/containers/${id}/stats?stream=true&one-shot=true`);
    assert.equal(bad.status, 400);
    assert.equal((await api(e.d.socket, 'GET', '/containers/no-such-ctr/stats?stream=false')).status, 404);
  } finally {
    await e.docker(['rm', '-f', 'busy']);
  }
  // A stopped container: docker's zero figures.
  await ok(['create', '--name', 'idle', 'busybox', 'true']);
  const idle = await api(e.d.socket, 'GET', '/containers/idle/stats?stream=false');
  assert.equal(idle.status, 200);
  assert.equal(idle.json<{ read: string }>().read, '0001-01-01T00:00:00Z');
  await ok(['rm', 'idle']);
});

test('OOM: a container killed by the OOM killer exits 137 with OOMKilled and an oom event', async () => {
  const since = Math.floor(Date.now() / 1000) - 1;
  const r = await e.docker(['run', '--name', 'oomer', '-m', '16m', 'busybox', 'tail', '/dev/zero'], { timeoutMs: 60_000 });
  assert.equal(r.code, 137, r.stderr);
  const inspect = await api(e.d.socket, 'GET', '/containers/oomer/json');
  const st = inspect.json<{ State: { OOMKilled: boolean; ExitCode: number }; HostConfig: { Memory: number; MemorySwap: number } }>();
  assert.equal(st.State.OOMKilled, true);
  assert.equal(st.State.ExitCode, 137);
  assert.equal(st.HostConfig.Memory, 16 << 20);
  assert.equal(st.HostConfig.MemorySwap, 32 << 20);
  const actions = (await eventsOf('oomer', since)).map((x) => x.Action);
  assert.deepEqual(actions.slice(-2), ['oom', 'die']);

  // A plain SIGKILL is not an OOM kill.
  await ok(['run', '-d', '--name', 'killed', '-m', '16m', 'busybox', 'sleep', '300']);
  await ok(['kill', 'killed']);
  const k = (await api(e.d.socket, 'GET', '/containers/killed/json')).json<{ State: { OOMKilled: boolean; ExitCode: number } }>();
  assert.deepEqual([k.State.OOMKilled, k.State.ExitCode], [false, 137]);
  await ok(['rm', 'oomer', 'killed']);
});
