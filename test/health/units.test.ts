// The pure parts of health checking: the config's validation, merge and resolution (docker's
// defaults, CMD-SHELL through the shell), Go's duration format, the result rules (log of five,
// retries, start period), the output cut, and the shared deadline queue. Then the monitor itself
// driven by real host processes (`sh -c`) in place of container execs: timeout kills the probe,
// status changes give one event each, and stopping kills a probe under way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { goDuration, mergeHealthConfig, probeSpec, validateHealthConfig } from '../../src/health/config';
import { applyProbeResult, healthString, LimitedOutput, MAX_OUTPUT_LEN, resetHealth, type HealthState } from '../../src/health/state';
import { DeadlineQueue } from '../../src/health/scheduler';
import { HealthMonitor, type HealthSubject, type ProbeProcess } from '../../src/health/monitor';
import { silentLogger } from '../../src/common/logger';

test('validation refuses what dockerd refuses', () => {
  assert.doesNotThrow(() => validateHealthConfig(undefined));
  assert.doesNotThrow(() => validateHealthConfig({ Test: ['CMD', 'true'], Interval: 0, Timeout: 1_000_000 }));
  assert.throws(() => validateHealthConfig({ Interval: 999_999 }), /Interval in Healthcheck cannot be less than 1ms/);
  assert.throws(() => validateHealthConfig({ Timeout: 5 }), /Timeout in Healthcheck cannot be less than 1ms/);
  assert.throws(() => validateHealthConfig({ StartPeriod: 5 }), /StartPeriod in Healthcheck cannot be less than 1ms/);
  assert.throws(() => validateHealthConfig({ StartInterval: 5 }), /StartInterval in Healthcheck cannot be less than 1ms/);
  assert.throws(() => validateHealthConfig({ Retries: -1 }), /Retries in Healthcheck cannot be negative/);
  assert.throws(() => validateHealthConfig({ Test: 'true' }), /Test must be a list of strings/);
  assert.throws(() => validateHealthConfig({ Interval: '1s' }), /Interval must be an integer/);
});

test('merge with the image: unset request fields come from the image', () => {
  const image = { Test: ['CMD', 'img'], Interval: 5e9, Retries: 7 };
  assert.deepEqual(mergeHealthConfig(undefined, image), image);
  assert.deepEqual(mergeHealthConfig(null, undefined), undefined);
  assert.deepEqual(mergeHealthConfig({ Test: ['NONE'] }, image), { Test: ['NONE'], Interval: 5e9, Retries: 7 });
  assert.deepEqual(mergeHealthConfig({ Interval: 1e9 }, image), { Test: ['CMD', 'img'], Interval: 1e9, Retries: 7 });
});

test('probe resolution: defaults, shells, NONE and unknown types', () => {
  assert.deepEqual(probeSpec({ Test: ['CMD-SHELL', 'curl -f x'] }), {
    cmd: ['/bin/sh', '-c', 'curl -f x'], intervalMs: 30_000, timeoutMs: 30_000, startPeriodMs: 0, startIntervalMs: 5_000, retries: 3,
  });
  assert.deepEqual(probeSpec({ Test: ['CMD-SHELL', 'x'] }, ['/bin/bash', '-ec'])?.cmd, ['/bin/bash', '-ec', 'x']);
  const s = probeSpec({ Test: ['CMD', 'a', 'b'], Interval: 1.5e9, Timeout: 2e6, StartPeriod: 3e9, StartInterval: 4e8, Retries: 1 })!;
  assert.deepEqual(s, { cmd: ['a', 'b'], intervalMs: 1500, timeoutMs: 2, startPeriodMs: 3000, startIntervalMs: 400, retries: 1 });
  assert.equal(probeSpec({ Test: ['NONE'] }), undefined);
  assert.equal(probeSpec({ Test: [] }), undefined);
  assert.equal(probeSpec({ Test: ['HTTP', 'x'] }), undefined);
  assert.equal(probeSpec(undefined), undefined);
});

test('durations print as Go prints them', () => {
  assert.equal(goDuration(30_000), '30s');
  assert.equal(goDuration(500), '500ms');
  assert.equal(goDuration(1500), '1.5s');
  assert.equal(goDuration(90_000), '1m30s');
  assert.equal(goDuration(60_000), '1m0s');
  assert.equal(goDuration(3_600_000), '1h0m0s');
  assert.equal(goDuration(0), '0s');
});

const result = (code: number) => ({ Start: 's', End: 'e', ExitCode: code, Output: '' });

test('results: five newest kept, retries, start period, a success ends the start period', () => {
  const spec = { retries: 2, startPeriodMs: 1000 };
  const h: HealthState = resetHealth(undefined);
  // Within the start period a failure does not count.
  assert.equal(applyProbeResult(h, result(1), 500, 0, spec), 'starting');
  assert.equal(h.FailingStreak, 0);
  assert.equal(h.Status, 'starting');
  // After it, it does; `retries` in a row make it unhealthy.
  applyProbeResult(h, result(1), 1500, 0, spec);
  assert.deepEqual([h.Status, h.FailingStreak], ['starting', 1]);
  applyProbeResult(h, result(2), 2500, 0, spec);
  assert.deepEqual([h.Status, h.FailingStreak], ['unhealthy', 2]);
  assert.equal(applyProbeResult(h, result(0), 3000, 0, spec), 'unhealthy');
  assert.deepEqual([h.Status, h.FailingStreak], ['healthy', 0]);
  // A healthy container's failures count even inside the start period.
  const g = resetHealth(undefined);
  applyProbeResult(g, result(0), 10, 0, spec);
  applyProbeResult(g, result(1), 20, 0, spec);
  assert.deepEqual([g.Status, g.FailingStreak], ['healthy', 1]);
  applyProbeResult(g, result(-1), 30, 0, spec);
  assert.equal(g.Status, 'unhealthy');
  for (let i = 0; i < 10; i++) applyProbeResult(h, { ...result(0), Output: String(i) }, 4000, 0, spec);
  assert.deepEqual(h.Log.map((r) => r.Output), ['5', '6', '7', '8', '9']);
  // A new run starts over but keeps the log.
  const r = resetHealth(h);
  assert.deepEqual([r.Status, r.FailingStreak, r.Log.length], ['starting', 0, 5]);
  assert.equal(healthString(r), 'health: starting');
  assert.equal(healthString(h), 'healthy');
});

test('output is cut at 4096 bytes with "..."', () => {
  const o = new LimitedOutput();
  o.push(Buffer.from('a'.repeat(4000)));
  o.push(Buffer.from('b'.repeat(96)));
  assert.equal(o.toString(), 'a'.repeat(4000) + 'b'.repeat(96));
  o.push(Buffer.from('c'));
  assert.equal(o.toString(), 'a'.repeat(4000) + 'b'.repeat(96) + '...');
  assert.equal(Buffer.byteLength(o.toString()), MAX_OUTPUT_LEN + 3);
});

test('the deadline queue fires in order on one timer; cancel and reschedule', async () => {
  const q = new DeadlineQueue();
  const fired: string[] = [];
  const now = Date.now();
  for (const [k, d] of [['c', 60], ['a', 20], ['b', 40], ['x', 30], ['d', 80]] as [string, number][]) q.schedule(k, now + d, () => fired.push(k));
  q.cancel('x');
  q.schedule('d', now + 10, () => fired.push('d-early'));
  assert.equal(q.size, 4);
  await new Promise((r) => setTimeout(r, 150));
  assert.deepEqual(fired, ['d-early', 'a', 'b', 'c']);
  assert.equal(q.size, 0);
  // Many keys, random deadlines: all fire, in deadline order.
  const order: number[] = [];
  const base = Date.now();
  const dues = Array.from({ length: 200 }, (_v, i) => ({ i, at: base + Math.floor(Math.random() * 50) }));
  for (const d of dues) q.schedule(`k${d.i}`, d.at, () => order.push(d.at));
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(order.length, 200);
  assert.deepEqual(order, [...order].sort((a, b) => a - b));
  q.close();
  q.schedule('late', Date.now(), () => assert.fail('closed queue fired'));
  await new Promise((r) => setTimeout(r, 20));
});

/** Runs probes as host processes: `sh -c <cmd>` with stdout and stderr piped. */
function hostProbes(): { startProbe(id: string, cmd: string[]): Promise<ProbeProcess>; started: number } {
  const self = {
    started: 0,
    async startProbe(_id: string, cmd: string[]): Promise<ProbeProcess> {
      self.started++;
      const p = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
      const out = new EventEmitter() as EventEmitter & { closed: boolean; close(): void };
      out.closed = false;
      out.close = () => {};
      let open = 2;
      const ended = (): void => {
        if (--open === 0) {
          out.closed = true;
          out.emit('end');
        }
      };
      p.stdout.on('data', (b: Buffer) => out.emit('stdout', b));
      p.stderr.on('data', (b: Buffer) => out.emit('stderr', b));
      p.stdout.on('end', ended);
      p.stderr.on('end', ended);
      const exited = new Promise<{ exitCode: number }>((r) => p.on('exit', (code, sig) => r({ exitCode: code ?? (sig ? 137 : 255) })));
      return { kill: () => p.kill('SIGKILL'), output: out, exited, release: () => {} };
    },
  };
  return self;
}

function fixture(test: string[], extra: Record<string, number> = {}) {
  const subject: HealthSubject = { id: 'c1', config: { Healthcheck: { Test: test, Interval: 50e6, Retries: 1, ...extra } }, state: { StartedAt: new Date().toISOString() } };
  const events: string[] = [];
  let persisted = 0;
  const probes = hostProbes();
  const m = new HealthMonitor({
    host: { subject: (id) => (id === 'c1' ? subject : undefined), persist: (ids) => (persisted += ids.length), event: (_id, a) => events.push(a) },
    probes,
    log: silentLogger,
    flushIntervalMs: 100,
  });
  return { subject, events, probes, m, persisted: () => persisted };
}

async function waitFor(what: string, fn: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('monitor: status changes give one event each; results persist in batches', async () => {
  const f = fixture(['CMD-SHELL', 'echo out; echo err >&2; exit 1']);
  try {
    f.m.containerStarted('c1');
    assert.equal(f.subject.state.Health?.Status, 'starting');
    await waitFor('three probes', () => (f.subject.state.Health?.Log.length ?? 0) >= 3);
    assert.equal(f.subject.state.Health!.Status, 'unhealthy');
    assert.deepEqual(f.events, ['health_status: unhealthy']);
    const r = f.subject.state.Health!.Log[0];
    assert.equal(r.ExitCode, 1);
    assert.match(r.Output, /^(out\nerr\n|err\nout\n)$/);
    assert.ok(f.persisted() >= 1);
    // The status change was written at once; later results go in the next batch.
    await waitFor('a batch write', () => f.persisted() >= 2, 1000);
  } finally {
    f.m.close();
  }
});

test('monitor: a probe over its timeout is killed and reported as docker reports it', async () => {
  const f = fixture(['CMD-SHELL', 'echo started; exec sleep 30'], { Timeout: 200e6 });
  try {
    f.m.containerStarted('c1');
    await waitFor('a result', () => (f.subject.state.Health?.Log.length ?? 0) >= 1);
    const r = f.subject.state.Health!.Log[0];
    assert.equal(r.ExitCode, -1);
    assert.equal(r.Output, 'Health check exceeded timeout (200ms): started\n');
    assert.ok(Date.parse(r.End) - Date.parse(r.Start) < 2000);
  } finally {
    f.m.close();
  }
});

test('monitor: stopping kills a probe under way, drops its result, and reports unhealthy', async () => {
  const f = fixture(['CMD-SHELL', 'exec sleep 30'], { Timeout: 60e9 });
  try {
    f.m.containerStarted('c1');
    await waitFor('a probe running', () => f.probes.started === 1);
    await new Promise((r) => setTimeout(r, 100));
    f.m.containerStopped('c1');
    assert.equal(f.subject.state.Health!.Status, 'unhealthy');
    assert.equal(f.m.watching, 0);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(f.subject.state.Health!.Log, [], 'the killed probe left no result');
    assert.equal(f.probes.started, 1, 'no probe after stop');
    // Resuming probes again without resetting the status.
    f.m.containerResumed('c1');
    assert.equal(f.subject.state.Health!.Status, 'unhealthy');
    assert.equal(f.m.watching, 1);
  } finally {
    f.m.close();
  }
});

test('monitor: NONE and no check mean no Health at all', () => {
  const f = fixture(['NONE']);
  f.m.containerStarted('c1');
  assert.equal(f.subject.state.Health, undefined);
  assert.equal(f.m.watching, 0);
  f.m.close();
});
