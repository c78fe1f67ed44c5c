// Health checks through the real docker CLI against a real berthd (crun, conmon, overlayfs): the
// starting → unhealthy → healthy → unhealthy walk of a probe that tests for a file, the ps
// suffixes, State.Health's shape in inspect, health_status events, the health filter, timeouts,
// output cutting, --no-healthcheck and the image's HEALTHCHECK, and probing that resumes after
// berthd is SIGKILLed and restarted on the same roots.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { api } from '../helpers/daemon';
import * as fs from 'node:fs';
import { pidsMentioning, setupDaemon, type CtrEnv } from '../containers/fixtures';

let e: CtrEnv;
before(async () => {
  e = await setupDaemon('health');
});
after(async () => {
  await e?.cleanup();
});

interface Health {
  Status: string;
  FailingStreak: number;
  Log: { Start: string; End: string; ExitCode: number; Output: string }[];
}

const ok = (args: string[]): Promise<string> => e.ok(args);

function readComm(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

async function health(ref: string): Promise<Health | null> {
  return JSON.parse(await ok(['inspect', '--format', '{{json .State.Health}}', ref])) as Health | null;
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
    last = v;
    await new Promise((r) => setTimeout(r, 150));
  }
}

async function statusOf(ref: string, want: string): Promise<Health> {
  let last: Health | null = null;
  return until(`${ref} ${want} (now ${JSON.stringify(last)})`, async () => {
    last = await health(ref);
    return last?.Status === want ? last : undefined;
  });
}

async function psStatus(ref: string): Promise<string> {
  const lines = (await ok(['ps', '-a', '--format', '{{.Names}}\t{{.Status}}'])).split('\n');
  return lines.find((l) => l.startsWith(`${ref}\t`))?.slice(ref.length + 1) ?? '';
}

async function psNames(filter: string): Promise<string[]> {
  return (await ok(['ps', '-a', '--filter', filter, '--format', '{{.Names}}'])).trim().split('\n').filter(Boolean).sort();
}

const RFC3339_NANO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/;

test('a file probe walks starting → unhealthy → healthy → unhealthy, with ps suffixes, events and filters', async () => {
  const since = Math.floor(Date.now() / 1000) - 1;
  // A long interval keeps this one starting for the whole test.
  await ok(['run', '-d', '--name', 'slow', '--health-cmd', 'true', '--health-interval', '1h', 'busybox', 'sleep', '1000']);
  await ok(['run', '-d', '--name', 'plain', 'busybox', 'sleep', '1000']);
  await ok(['run', '-d', '--name', 'hc', '--health-cmd', 'test -f /ok', '--health-interval', '1s', '--health-retries', '1', 'busybox', 'sleep', '1000']);

  const first = await health('hc');
  assert.equal(first?.Status, 'starting');
  assert.equal(first?.FailingStreak, 0);
  assert.deepEqual(first?.Log, []);
  assert.match(await psStatus('hc'), /^Up .* \(health: starting\)$/);
  assert.equal(await health('plain'), null);
  assert.match(await psStatus('plain'), /^Up [^(]*$/);

  const bad = await statusOf('hc', 'unhealthy');
  assert.equal(bad.FailingStreak >= 1, true);
  assert.equal(bad.Log.length >= 1, true);
  const r = bad.Log[bad.Log.length - 1];
  assert.deepEqual(Object.keys(r).sort(), ['End', 'ExitCode', 'Output', 'Start']);
  assert.equal(r.ExitCode, 1);
  assert.equal(r.Output, '');
  assert.match(r.Start, RFC3339_NANO);
  assert.match(r.End, RFC3339_NANO);
  assert.ok(Date.parse(r.End) >= Date.parse(r.Start));
  assert.match(await psStatus('hc'), /^Up .* \(unhealthy\)$/);

  await ok(['exec', 'hc', 'touch', '/ok']);
  const good = await statusOf('hc', 'healthy');
  assert.equal(good.FailingStreak, 0);
  assert.equal(good.Log[good.Log.length - 1].ExitCode, 0);
  assert.match(await psStatus('hc'), /^Up .* \(healthy\)$/);

  assert.deepEqual(await psNames('health=healthy'), ['hc']);
  assert.deepEqual(await psNames('health=starting'), ['slow']);
  assert.deepEqual(await psNames('health=none'), ['plain']);
  assert.deepEqual(await psNames('health=unhealthy'), []);
  const badFilter = await e.docker(['ps', '--filter', 'health=sick']);
  assert.notEqual(badFilter.code, 0);
  assert.match(badFilter.stderr, /Unrecognised filter value for health: sick/);

  await ok(['exec', 'hc', 'rm', '/ok']);
  await statusOf('hc', 'unhealthy');
  assert.deepEqual(await psNames('health=unhealthy'), ['hc']);

  // The log keeps the five newest results.
  const full = await until('five log entries', async () => {
    const h = await health('hc');
    return h && h.Log.length === 5 ? h : undefined;
  });
  await new Promise((res) => setTimeout(res, 1500));
  const later = (await health('hc'))!;
  assert.equal(later.Log.length, 5);
  assert.notDeepEqual(later.Log[4], full.Log[4]);
  assert.ok(later.FailingStreak > 1);

  // Events: one per change of status, with the container's attributes.
  const until_ = Math.floor(Date.now() / 1000) + 1;
  const ev = await ok(['events', '--since', String(since), '--until', String(until_), '--filter', 'container=hc', '--format', '{{.Action}} {{.Actor.Attributes.name}}']);
  const healthEvents = ev.split('\n').filter((l) => l.startsWith('health_status'));
  assert.deepEqual(healthEvents, ['health_status: unhealthy hc', 'health_status: healthy hc', 'health_status: unhealthy hc']);
  // Probes are execs, and show up as such (as with dockerd).
  assert.match(ev, /^exec_create: \/bin\/sh -c test -f \/ok hc$/m);
  assert.match(ev, /^exec_die hc$/m);
  // Their records are dropped: inspect's exec list does not grow with every probe.
  const execIDs = JSON.parse(await ok(['inspect', '--format', '{{json .ExecIDs}}', 'hc'])) as unknown;
  assert.equal(execIDs, null);

  // A stopped container reports unhealthy (dockerd's "monitor stopped" state); a restart starts over.
  await ok(['stop', '-t', '1', 'hc']);
  const stopped = (await health('hc'))!;
  assert.equal(stopped.Status, 'unhealthy');
  assert.match(await psStatus('hc'), /^Exited \(137\)/);
  await ok(['start', 'hc']);
  const restarted = (await health('hc'))!;
  assert.equal(restarted.Status, 'starting');
  assert.equal(restarted.FailingStreak, 0);
  assert.equal(restarted.Log.length, 5, 'the log is kept across runs');
  await ok(['rm', '-f', 'hc', 'slow', 'plain']);
});

test('CMD probes, exit codes, output cut at 4096 bytes, and the timeout', async () => {
  await ok(['run', '-d', '--name', 'loud', '--health-cmd', 'head -c 5000 /dev/zero | tr "\\0" x; echo; exit 3', '--health-interval', '1s', '--health-retries', '2', 'busybox', 'sleep', '1000']);
  await ok(['run', '-d', '--name', 'hang', '--health-cmd', 'echo partial; sleep 30', '--health-interval', '1s', '--health-timeout', '500ms', '--health-retries', '1', 'busybox', 'sleep', '1000']);
  const created = await api(e.d.socket, 'POST', '/containers/create?name=cmdprobe', {
    Image: 'busybox', Cmd: ['sleep', '1000'],
    Healthcheck: { Test: ['CMD', 'echo', 'fine'], Interval: 300_000_000, Retries: 1 },
  });
  assert.equal(created.status, 201, created.body.toString());
  await ok(['start', 'cmdprobe']);

  const loud = await statusOf('loud', 'unhealthy');
  assert.equal(loud.FailingStreak, 2);
  const last = loud.Log[loud.Log.length - 1];
  assert.equal(last.ExitCode, 3);
  assert.equal(last.Output, `${'x'.repeat(4096)}...`);

  const hang = await statusOf('hang', 'unhealthy');
  const h = hang.Log[hang.Log.length - 1];
  assert.equal(h.ExitCode, -1);
  assert.equal(h.Output, 'Health check exceeded timeout (500ms): partial\n');
  // Timed-out probes are killed: after three of them, at most one `sleep 30` (the probe running
  // now, if the next one has started) is in the container, where three would be if none died.
  await until('three timed-out probes of hang', async () => ((await health('hang'))?.Log.length ?? 0) >= 3 || undefined);
  const ps = await ok(['exec', 'hang', 'ps', '-o', 'args']);
  assert.ok((ps.match(/sleep 30/g) ?? []).length <= 1, ps);

  const cmd = await statusOf('cmdprobe', 'healthy');
  assert.equal(cmd.Log[cmd.Log.length - 1].Output, 'fine\n');
  const cfg = JSON.parse(await ok(['inspect', '--format', '{{json .Config.Healthcheck}}', 'cmdprobe'])) as unknown;
  assert.deepEqual(cfg, { Test: ['CMD', 'echo', 'fine'], Interval: 300_000_000, Retries: 1 });
  await ok(['rm', '-f', 'loud', 'hang', 'cmdprobe']);
});

test('probes run as an exec does (user, env, cwd, caps, seccomp, cgroup), without a conmon, on crun and runc', async () => {
  const probe = 'echo "$FOO $(pwd) $(id -u):$(id -g)"; grep -E "^(CapEff|Seccomp|NoNewPrivs):" /proc/self/status; cat /proc/self/cgroup';
  await ok(['run', '-d', '--name', 'who', '--user', '1000:1000', '-w', '/tmp', '-e', 'FOO=bar', '--security-opt', 'no-new-privileges', '--health-cmd', probe, '--health-interval', '1s', 'busybox', 'sleep', '1000']);
  const h = await statusOf('who', 'healthy');
  // What `docker exec` with the same settings sees is what the probe saw.
  assert.equal(h.Log[h.Log.length - 1].Output, await ok(['exec', 'who', 'sh', '-c', probe]));
  assert.match(h.Log[h.Log.length - 1].Output, /^bar \/tmp 1000:1000\nCapEff:\t0+\nNoNewPrivs:\t1\nSeccomp:\t2\n/);
  // One conmon for the container, none per probe (an exec's conmon would name the container too).
  const id = (await ok(['inspect', '--format', '{{.Id}}', 'who'])).trim();
  for (let i = 0; i < 20; i++) {
    assert.equal(pidsMentioning(id).filter((p) => readComm(p) === 'conmon').length, 1);
    await new Promise((r) => setTimeout(r, 50));
  }

  // A command that cannot be started is -1 with the runtime's reason (crun's and runc's wording
  // alike); a probe's own exit 255 with output on stderr is just an exit code.
  for (const runtime of ['crun', 'runc']) {
    for (const [name, test] of [[`missing-${runtime}`, ['CMD', 'nonexist']], [`x255-${runtime}`, ['CMD-SHELL', 'echo oops >&2; exit 255']]] as const) {
      const c = await api(e.d.socket, 'POST', `/containers/create?name=${name}`, {
        Image: 'busybox', Cmd: ['sleep', '1000'], HostConfig: { Runtime: runtime },
        Healthcheck: { Test: test, Interval: 300_000_000, Retries: 1 },
      });
      assert.equal(c.status, 201, c.body.toString());
      await ok(['start', name]);
    }
    const missing = (await statusOf(`missing-${runtime}`, 'unhealthy')).Log[0];
    assert.equal(missing.ExitCode, -1);
    assert.match(missing.Output, /^OCI runtime exec failed: .*exec: "nonexist": executable file not found in \$PATH/);
    const x255 = (await statusOf(`x255-${runtime}`, 'unhealthy')).Log[0];
    assert.deepEqual([x255.ExitCode, x255.Output], [255, 'oops\n']);
  }
  await ok(['rm', '-f', 'who', 'missing-crun', 'x255-crun', 'missing-runc', 'x255-runc']);
});

test('start period: failures do not count until it ends, a success ends it', async () => {
  await ok(['run', '-d', '--name', 'sp', '--health-cmd', 'test -f /ok', '--health-interval', '300ms', '--health-retries', '1', '--health-start-period', '3s', '--health-start-interval', '300ms', 'busybox', 'sleep', '1000']);
  await until('a failed probe', async () => ((await health('sp'))?.Log.length ?? 0) >= 2);
  const during = (await health('sp'))!;
  assert.equal(during.Status, 'starting');
  assert.equal(during.FailingStreak, 0);
  assert.ok(during.Log.every((r) => r.ExitCode === 1));
  await statusOf('sp', 'unhealthy');
  await ok(['rm', '-f', 'sp']);

  // A success inside the start period ends it: the next failure counts at once.
  await ok(['run', '-d', '--name', 'sp2', '--health-cmd', 'test -f /ok', '--health-interval', '300ms', '--health-retries', '1', '--health-start-period', '1h', '--health-start-interval', '300ms', 'busybox', 'sh', '-c', 'touch /ok; sleep 1000']);
  await statusOf('sp2', 'healthy');
  await ok(['exec', 'sp2', 'rm', '/ok']);
  await statusOf('sp2', 'unhealthy');
  await ok(['rm', '-f', 'sp2']);
});

test("the image's HEALTHCHECK applies; --no-healthcheck and bad values", async () => {
  const commit = await api(e.d.socket, 'POST', `/containers/create?name=base`, { Image: 'busybox', Cmd: ['true'] });
  assert.equal(commit.status, 201, commit.body.toString());
  // The committed image carries the check in its config (as a Dockerfile HEALTHCHECK would).
  const img = await api(e.d.socket, 'POST', '/commit?container=base&repo=hcimage&tag=latest', {
    Healthcheck: { Test: ['CMD-SHELL', 'test -f /etc/passwd'], Interval: 1_000_000_000, Retries: 1 },
  });
  assert.equal(img.status, 201, img.body.toString());
  await ok(['run', '-d', '--name', 'fromimage', 'hcimage', 'sleep', '1000']);
  const hc = JSON.parse(await ok(['inspect', '--format', '{{json .Config.Healthcheck}}', 'fromimage'])) as { Test: string[]; Interval: number };
  assert.deepEqual(hc.Test, ['CMD-SHELL', 'test -f /etc/passwd']);
  assert.equal(hc.Interval, 1_000_000_000);
  await statusOf('fromimage', 'healthy');

  await ok(['run', '-d', '--name', 'nohc', '--no-healthcheck', 'hcimage', 'sleep', '1000']);
  // As dockerd merges: the request's NONE, the image's other (unset in the request) fields.
  assert.deepEqual(JSON.parse(await ok(['inspect', '--format', '{{json .Config.Healthcheck}}', 'nohc'])), { Test: ['NONE'], Interval: 1_000_000_000, Retries: 1 });
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(await health('nohc'), null);
  assert.deepEqual(await psNames('health=none'), ['base', 'nohc']);

  const bad = await api(e.d.socket, 'POST', '/containers/create', { Image: 'busybox', Healthcheck: { Test: ['CMD', 'true'], Interval: 1000 } });
  assert.equal(bad.status, 400);
  assert.match(bad.json<{ message: string }>().message, /Interval in Healthcheck cannot be less than 1ms/);
  const neg = await api(e.d.socket, 'POST', '/containers/create', { Image: 'busybox', Healthcheck: { Test: ['CMD', 'true'], Retries: -1 } });
  assert.equal(neg.status, 400);
  assert.match(neg.json<{ message: string }>().message, /Retries in Healthcheck cannot be negative/);
  await ok(['rm', '-f', 'fromimage', 'nohc', 'base']);
});

test('pause stops probing; health checking resumes after berthd is SIGKILLed and restarted', async () => {
  await ok(['run', '-d', '--name', 'survivor', '--health-cmd', 'test -f /ok', '--health-interval', '1s', '--health-retries', '1', 'busybox', 'sleep', '1000']);
  await ok(['exec', 'survivor', 'touch', '/ok']);
  await statusOf('survivor', 'healthy');

  await ok(['pause', 'survivor']);
  assert.equal((await health('survivor'))!.Status, 'unhealthy');
  assert.match(await psStatus('survivor'), /^Up .* \(Paused\)$/);
  const pausedLog = (await health('survivor'))!.Log;
  await new Promise((r) => setTimeout(r, 1500));
  assert.deepEqual((await health('survivor'))!.Log, pausedLog, 'no probe ran while paused');
  await ok(['unpause', 'survivor']);
  await statusOf('survivor', 'healthy');

  const before = (await health('survivor'))!;
  await e.d.stop('SIGKILL');
  await e.d.restart();
  // The state was written: the log is there at once, and probing goes on.
  const after = (await health('survivor'))!;
  assert.ok(after.Log.length >= 1);
  assert.ok(['starting', 'healthy'].includes(after.Status), after.Status);
  assert.ok(after.Log.some((r) => before.Log.some((b) => b.Start === r.Start)), 'log entries from before the restart are kept');
  await statusOf('survivor', 'healthy');
  const lastBefore = after.Log[after.Log.length - 1].Start;
  await until('a new probe after the restart', async () => {
    const h = await health('survivor');
    return h && h.Log[h.Log.length - 1].Start > lastBefore;
  });
  await ok(['exec', 'survivor', 'rm', '/ok']);
  await statusOf('survivor', 'unhealthy');
  assert.match(await psStatus('survivor'), /^Up .* \(unhealthy\)$/);
  await ok(['rm', '-f', 'survivor']);
});
