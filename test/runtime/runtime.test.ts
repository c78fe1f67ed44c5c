// ConmonRuntime against the real crun (and runc) and conmon, on a busybox rootfs.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeEnv, logLines, CRUN, RUNC, type TestEnv } from './helpers';
import { generateExecProcess } from '../../src/runtime/spec';
import { RuntimeError, type CreateOptions } from '../../src/runtime/runtime';
import type { AttachStream } from '../../src/runtime/attach';
import { readContainerLogRecords } from '../../src/logs/reader';

function opts(b: { logPath: string; cgroupsPath: string }, extra: Partial<CreateOptions> = {}): CreateOptions {
  return { runtimePath: CRUN, tty: false, openStdin: false, logPath: b.logPath, cgroupsPath: b.cgroupsPath, ...extra };
}

async function run(env: TestEnv, args: string[], extra: Partial<CreateOptions> = {}, spec: object = {}) {
  const b = env.bundle({ args, ...spec });
  await env.runtime.create(b.id, b.bundleDir, opts(b, extra));
  const exited = env.runtime.onExit(b.id);
  await env.runtime.start(b.id);
  return { ...b, exited };
}

/** Collects a stream's output until it contains want (or times out). */
function waitFor(s: AttachStream, want: string | RegExp, ms = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const check = (): boolean => (typeof want === 'string' ? text.includes(want) : want.test(text));
    const timer = setTimeout(() => {
      s.off('stdout', on);
      reject(new Error(`timed out waiting for ${String(want)}; got ${JSON.stringify(text)}`));
    }, ms);
    const on = (b: Buffer): void => {
      text += b.toString();
      if (check()) {
        clearTimeout(timer);
        s.off('stdout', on);
        resolve(text);
      }
    };
    s.on('stdout', on);
  });
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_r, reject) => (timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms)))]).finally(() => clearTimeout(timer));
}

test('echo hi: the log holds the line, the exit code is 0, delete cleans up', async (t) => {
  const env = makeEnv(t);
  const c = await run(env, ['echo', 'hi']);
  const exit = await withTimeout(c.exited, 5000, 'exit');
  assert.equal(exit.exitCode, 0);
  assert.ok(exit.exitedAt instanceof Date && Math.abs(exit.exitedAt.getTime() - Date.now()) < 10000);
  assert.deepEqual(logLines(c.logPath), ['stdout:hi']);
  const records = [];
  for await (const r of readContainerLogRecords(c.logPath)) records.push(r);
  assert.equal(records.length, 1);
  assert.equal(records[0].line.toString(), 'hi');
  assert.equal(records[0].partial, false);
  assert.equal((await env.runtime.state(c.id)).status, 'stopped');
  await env.runtime.delete(c.id);
  assert.equal(fs.existsSync(path.join(env.runtime.stateRoot, 'ctr', c.id)), false);
  assert.equal(env.runtime.exitStatus(c.id), undefined);
  assert.deepEqual(env.runtime.list(), []);
  await assert.rejects(env.runtime.state(c.id), /No such container/);
});

test('exit codes: exit 3 → 3; stdout and stderr both logged', async (t) => {
  const env = makeEnv(t);
  const c = await run(env, ['sh', '-c', 'echo out; echo err >&2; exit 3']);
  assert.equal((await withTimeout(c.exited, 5000, 'exit')).exitCode, 3);
  assert.deepEqual(logLines(c.logPath).sort(), ['stderr:err', 'stdout:out']);
});

test('create leaves the container created; start runs it; a duplicate create is refused', async (t) => {
  const env = makeEnv(t);
  const b = env.bundle({ args: ['sleep', '30'] });
  const { pid } = await env.runtime.create(b.id, b.bundleDir, opts(b));
  assert.ok(pid > 0);
  const st = await env.runtime.state(b.id);
  assert.equal(st.status, 'created');
  assert.equal(st.pid, pid);
  await assert.rejects(env.runtime.create(b.id, b.bundleDir, opts(b)), /already exists/);
  await env.runtime.start(b.id);
  assert.equal((await env.runtime.state(b.id)).status, 'running');
  await assert.rejects(env.runtime.delete(b.id), /running/);
  await env.runtime.delete(b.id, { force: true });
  assert.equal(fs.existsSync(`/proc/${pid}`), false);
  // A created, never started container is deleted without force.
  const c = env.bundle({ args: ['sleep', '30'] });
  const created = await env.runtime.create(c.id, c.bundleDir, opts(c));
  await env.runtime.delete(c.id);
  assert.equal(fs.existsSync(`/proc/${created.pid}`), false);
  assert.deepEqual(env.runtime.list(), []);
});

test('start through crun\'s exec FIFO: the process runs and crun says running; an init that died is crun start\'s error, not a hang; a second start is refused', async (t) => {
  const env = makeEnv(t);
  const b = env.bundle({ args: ['sleep', '30'] });
  const { pid } = await env.runtime.create(b.id, b.bundleDir, opts(b));
  const fifo = path.join(env.runtime.stateRoot, 'runtime-crun', b.id, 'exec.fifo');
  assert.ok(fs.existsSync(fifo), 'crun create leaves its exec FIFO');
  await env.runtime.start(b.id);
  assert.equal(fs.existsSync(fifo), false);
  assert.equal((await env.runtime.state(b.id)).status, 'running');
  // The init has exec'd the process.
  const deadline = Date.now() + 5000;
  while (!fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('sleep') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0], 'sleep');
  // crun start's own answer (its FIFO is gone), as before.
  await assert.rejects(withTimeout(env.runtime.start(b.id), 5000, 'second start'), /No such container/);
  await env.runtime.delete(b.id, { force: true });

  const c = env.bundle({ args: ['sleep', '30'] });
  const created = await env.runtime.create(c.id, c.bundleDir, opts(c));
  const exited = env.runtime.onExit(c.id);
  process.kill(created.pid, 'SIGKILL');
  await withTimeout(exited, 5000, 'exit of the killed init');
  await assert.rejects(withTimeout(env.runtime.start(c.id), 5000, 'start of a dead init'), /is not running/);
  await env.runtime.delete(c.id, { force: true });
});

test('create of a missing executable fails with the runtime message and leaves nothing', async (t) => {
  const env = makeEnv(t);
  const b = env.bundle({ args: ['/bin/no-such-command'] });
  let err: unknown;
  try {
    await env.runtime.create(b.id, b.bundleDir, opts(b));
    await env.runtime.start(b.id);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof RuntimeError, `expected a RuntimeError, got ${String(err)}`);
  assert.match((err as RuntimeError).message, /^OCI runtime create failed: .*no-such-command/);
  assert.deepEqual(env.runtime.list(), []);
  assert.equal(fs.existsSync(path.join(env.runtime.stateRoot, 'ctr', b.id)), false);
  // The id is free again.
  const again = env.bundle({ args: ['true'] }, b.id);
  await env.runtime.create(again.id, again.bundleDir, opts(again));
  const exited = env.runtime.onExit(again.id);
  await env.runtime.start(again.id);
  assert.equal((await withTimeout(exited, 5000, 'exit')).exitCode, 0);
});

test('runc errors come back without their logfmt wrapping', async (t) => {
  const env = makeEnv(t);
  const b = env.bundle({ args: ['/bin/no-such-command'] });
  await assert.rejects(env.runtime.create(b.id, b.bundleDir, opts(b, { runtimePath: RUNC })), (e: Error) => {
    assert.ok(e instanceof RuntimeError);
    assert.doesNotMatch(e.message, /level=error/);
    assert.match(e.message, /^OCI runtime create failed: runc create failed: .*no-such-command/);
    return true;
  });
});

test('signals: SIGTERM → 143 (process not init), SIGKILL → 137', async (t) => {
  const env = makeEnv(t);
  // As pid 1 of its own pid namespace sleep would ignore SIGTERM (no handler), so share the host's.
  const a = await run(env, ['sleep', '60'], {}, { namespaces: { pid: 'host' } });
  const b = await run(env, ['sleep', '60']);
  await env.runtime.kill(a.id, 'SIGTERM');
  await env.runtime.kill(b.id, 'KILL');
  assert.equal((await withTimeout(a.exited, 5000, 'TERM exit')).exitCode, 143);
  assert.equal((await withTimeout(b.exited, 5000, 'KILL exit')).exitCode, 137);
  await assert.rejects(env.runtime.kill(a.id, 'BOGUS!'), /Invalid signal/);
});

test('attach to a -t -i shell: echo comes back, resize reaches the tty, exit 5', async (t) => {
  const env = makeEnv(t);
  const b = env.bundle({ args: ['sh'], tty: true, consoleSize: { height: 24, width: 80 } });
  await env.runtime.create(b.id, b.bundleDir, opts(b, { tty: true, openStdin: true, stdinOnce: true }));
  const s = await env.runtime.attach(b.id);
  t.after(() => s.close());
  const exited = env.runtime.onExit(b.id);
  await env.runtime.start(b.id);
  s.write('echo hel""lo\n');
  await waitFor(s, /\r?\nhello\r?\n/);
  env.runtime.resize(b.id, 33, 101);
  s.write('stty size\n');
  await waitFor(s, '33 101');
  const ended = new Promise<void>((r) => s.once('end', () => r()));
  s.write('exit 5\n');
  assert.equal((await withTimeout(exited, 5000, 'exit')).exitCode, 5);
  await withTimeout(ended, 5000, 'attach end');
  // The terminal output is in the log too.
  assert.ok(logLines(b.logPath).some((l) => l.startsWith('stdout:hello')), 'log has the output');
  assert.throws(() => env.runtime.resize(b.id, 10, 10), /not running/);
});

test('attach without tty: stdin reaches cat, closing stdin ends it, streams are told apart', async (t) => {
  const env = makeEnv(t);
  const b = env.bundle({ args: ['sh', '-c', 'cat; echo done >&2'] });
  await env.runtime.create(b.id, b.bundleDir, opts(b, { openStdin: true, stdinOnce: true }));
  const s = await env.runtime.attach(b.id);
  t.after(() => s.close());
  let out = '';
  let err = '';
  s.on('stdout', (d) => (out += d.toString()));
  s.on('stderr', (d) => (err += d.toString()));
  const exited = env.runtime.onExit(b.id);
  await env.runtime.start(b.id);
  const big = 'x'.repeat(100_000) + '\n';
  s.write(big);
  s.closeStdin();
  assert.equal((await withTimeout(exited, 5000, 'exit')).exitCode, 0);
  await withTimeout(new Promise<void>((r) => (s.closed ? r() : s.once('end', () => r()))), 5000, 'end');
  assert.equal(out, big);
  assert.equal(err, 'done\n');
});

test('exec: output, stderr and exit code; stdin; tty; detached; missing command', async (t) => {
  const env = makeEnv(t);
  const c = await run(env, ['sleep', '60']);
  const proc = (args: string[], tty = false) => generateExecProcess({ args, env: ['PATH=/bin'], tty });

  const h = await env.runtime.exec(c.id, proc(['sh', '-c', 'echo out; echo err >&2; exit 7']), { tty: false, stdin: false, detach: false });
  assert.ok(h.pid > 0);
  let out = '';
  let err = '';
  h.attach!.on('stdout', (d) => (out += d.toString()));
  h.attach!.on('stderr', (d) => (err += d.toString()));
  assert.equal((await withTimeout(h.exited, 5000, 'exec exit')).exitCode, 7);
  await withTimeout(new Promise<void>((r) => (h.attach!.closed ? r() : h.attach!.once('end', () => r()))), 5000, 'exec attach end');
  assert.equal(out, 'out\n');
  assert.equal(err, 'err\n');
  assert.equal(env.runtime.execExitStatus(c.id, h.execId)?.exitCode, 7);
  env.runtime.removeExec(c.id, h.execId);

  const cat = await env.runtime.exec(c.id, proc(['cat']), { tty: false, stdin: true, detach: false });
  let catOut = '';
  cat.attach!.on('stdout', (d) => (catOut += d.toString()));
  cat.attach!.write('abc\n');
  cat.attach!.closeStdin();
  assert.equal((await withTimeout(cat.exited, 5000, 'cat exit')).exitCode, 0);
  await withTimeout(new Promise<void>((r) => (cat.attach!.closed ? r() : cat.attach!.once('end', () => r()))), 5000, 'cat end');
  assert.equal(catOut, 'abc\n');

  const tty = await env.runtime.exec(c.id, proc(['sh'], true), { tty: true, stdin: true, detach: false });
  env.runtime.resizeExec(c.id, tty.execId, 20, 70);
  tty.attach!.write('stty size; exit 9\n');
  await waitFor(tty.attach!, '20 70');
  assert.equal((await withTimeout(tty.exited, 5000, 'tty exit')).exitCode, 9);

  const d = await env.runtime.exec(c.id, proc(['sh', '-c', 'exit 4']), { tty: false, stdin: false, detach: true });
  assert.equal(d.attach, undefined);
  assert.equal((await withTimeout(d.exited, 5000, 'detached exit')).exitCode, 4);

  await assert.rejects(env.runtime.exec(c.id, proc(['/bin/nope']), { tty: false, stdin: false, detach: false }), (e: Error) => {
    assert.ok(e instanceof RuntimeError);
    assert.match(e.message, /OCI runtime exec failed/);
    return true;
  });
  await env.runtime.kill(c.id, 'KILL');
  assert.equal((await withTimeout(c.exited, 5000, 'exit')).exitCode, 137);
});

test('pause and resume', async (t) => {
  const env = makeEnv(t);
  const c = await run(env, ['sleep', '60']);
  await env.runtime.pause(c.id);
  assert.equal((await env.runtime.state(c.id)).status, 'paused');
  await env.runtime.resume(c.id);
  assert.equal((await env.runtime.state(c.id)).status, 'running');
  await env.runtime.kill(c.id, 'KILL');
  assert.equal((await withTimeout(c.exited, 5000, 'exit')).exitCode, 137);
});

test('daemon restart: a new Runtime finds running, exited and lost containers from files alone', async (t) => {
  const env = makeEnv(t);
  const first = env.runtime;
  // Runs on after the "daemon" goes away.
  const live = env.bundle({ args: ['sh', '-c', 'sleep 1; echo late; exit 4'] });
  await first.create(live.id, live.bundleDir, opts(live));
  await first.start(live.id);
  // Exits while no daemon watches.
  const gone = env.bundle({ args: ['sh', '-c', 'exit 6'] });
  await first.create(gone.id, gone.bundleDir, opts(gone));
  await first.start(gone.id);
  // Its conmon gets killed: nobody records its exit.
  const lost = env.bundle({ args: ['sleep', '60'] });
  await first.create(lost.id, lost.bundleDir, opts(lost));
  await first.start(lost.id);
  first.close();

  const conmonOfLost = Number(fs.readFileSync(path.join(env.runtime.stateRoot, 'ctr', lost.id, 'conmon.pid'), 'utf8'));
  process.kill(conmonOfLost, 'SIGKILL');
  const deadline = Date.now() + 5000;
  while (!fs.existsSync(path.join(env.runtime.exitsDir, gone.id)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));

  const second = env.newRuntime();
  assert.deepEqual(second.list().sort(), [live.id, gone.id, lost.id].sort());

  const rLive = await second.recover(live.id);
  assert.equal(rLive.status, 'running');
  assert.equal(rLive.monitored, true);
  assert.ok(rLive.pid > 0);
  assert.equal(rLive.record.bundleDir, live.bundleDir);
  const exit = await withTimeout(second.onExit(live.id), 5000, 'recovered exit');
  assert.equal(exit.exitCode, 4);
  assert.deepEqual(logLines(live.logPath), ['stdout:late']);

  const rGone = await second.recover(gone.id);
  assert.equal(rGone.status, 'stopped');
  assert.equal(rGone.exit?.exitCode, 6);

  const rLost = await second.recover(lost.id);
  assert.equal(rLost.monitored, false);
  assert.equal(rLost.status, 'running', 'the container itself still runs');
  await second.delete(lost.id, { force: true });

  for (const id of [live.id, gone.id]) await second.delete(id);
  assert.deepEqual(second.list(), []);
});

test('a waiter learns of a conmon killed outright: the exit is reported lost', async (t) => {
  const env = makeEnv(t);
  const c = await run(env, ['sleep', '60']);
  // Past the first sweeps, so the waiter has remembered and checked its conmon's pid.
  await new Promise((r) => setTimeout(r, 2500));
  let settled = false;
  void c.exited.then(() => (settled = true));
  assert.equal(settled, false, 'nothing reported while conmon watches');
  const conmon = Number(fs.readFileSync(path.join(env.runtime.stateRoot, 'ctr', c.id, 'conmon.pid'), 'utf8'));
  process.kill(conmon, 'SIGKILL');
  const exit = await withTimeout(c.exited, 5000, 'lost exit');
  assert.equal(exit.lost, true);
  assert.equal(exit.exitCode, 255);
  await env.runtime.delete(c.id, { force: true });
});

test('runc works through conmon too', async (t) => {
  const env = makeEnv(t);
  const c = await run(env, ['sh', '-c', 'echo from-runc; exit 3'], { runtimePath: RUNC });
  assert.equal((await withTimeout(c.exited, 5000, 'exit')).exitCode, 3);
  assert.deepEqual(logLines(c.logPath), ['stdout:from-runc']);
  const h = await env.runtime.state(c.id);
  assert.equal(h.status, 'stopped');
  await env.runtime.delete(c.id);
});

test('the generated spec takes effect in crun: hostname, user, caps, masks, nofile, read-only rootfs, shm size', async (t) => {
  const env = makeEnv(t);
  const script = [
    'hostname', 'id -u', 'id -g', 'ulimit -n', 'grep CapBnd /proc/self/status',
    'wc -c < /proc/timer_list', 'echo x > /proc/sysrq-trigger 2>/dev/null || echo sysrq-ro',
    'echo x > /x 2>/dev/null || echo rootfs-ro', 'df -k /dev/shm | tail -n 1',
  ].join('; ');
  const c = await run(env, ['sh', '-c', script], {}, {
    user: { uid: 65534, gid: 65534 }, readonlyRootfs: true, shmSize: 8 << 20,
    rlimits: [{ name: 'nofile', soft: 1 << 20, hard: 1 << 20 }],
  });
  assert.equal((await withTimeout(c.exited, 5000, 'exit')).exitCode, 0);
  const out = logLines(c.logPath).map((l) => l.replace(/^stdout:/, ''));
  assert.equal(out[0], 'berthtest');
  assert.equal(out[1], '65534');
  assert.equal(out[2], '65534');
  assert.ok(Number(out[3]) <= 20000 && Number(out[3]) > 0, `nofile clamped: ${out[3]}`);
  // Docker's 14 default capabilities: bits 0,1,3,4,5,6,7,8,10,13,18,27,29,31 → 0xa80425fb.
  assert.match(out[4], /CapBnd:\s+00000000a80425fb/);
  assert.equal(out[5], '0', '/proc/timer_list is masked (it has text on the host)');
  assert.ok(out.includes('sysrq-ro'));
  assert.ok(out.includes('rootfs-ro'));
  assert.match(out.at(-1)!, /^\S+\s+8192\s/);
});
