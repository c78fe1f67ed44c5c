// The probe launcher (src/runtime/probe.ts) against a stand-in runtime: a shell script that is
// given what crun would be (`--root=R exec --process FILE ID`) and behaves as a scenario says. It
// runs the real path: a sealed memfd copy of the script (exec'd through /proc/<pid>/fd/<n>), the
// addon's posix_spawn and pidfd reaping, the pipes. The real runtime is exercised by
// test/health/health.test.ts.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ProbeLauncher, type ProbeRun, type ProbeTarget } from '../../src/runtime/probe';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-probe-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A stand-in runtime: argv is checked, then the scenario in the process file (base64) runs. */
const runtime = path.join(dir, 'fake-runtime');
fs.writeFileSync(runtime, `#!/bin/sh
[ "$1" = "--root=${dir}/root" ] && [ "$2" = exec ] && [ "$3" = --process ] && [ "$5" = ctr1 ] || { echo "bad args: $*" >&2; exit 99; }
# Run from the sealed copy, not the file: $0 is /proc/<pid>/fd/<n>.
case "$0" in /proc/*/fd/*) ;; *) echo "not from a memfd: $0" >&2; exit 98;; esac
eval "$(sed -n 's|^{"scenario":"\\([A-Za-z0-9+/=]*\\)".*$|\\1|p' "$4" | base64 -d)"
`, { mode: 0o755 });

const target: ProbeTarget = { id: 'ctr1', runtimePath: runtime, runtimeRoot: path.join(dir, 'root'), runtimeArgs: [], dir };
const launcher = new ProbeLauncher();
after(() => launcher.close());

/** What the launcher writes as the process spec: here just the scenario. */
function spec(scenario: string): never {
  return { scenario: Buffer.from(scenario).toString('base64') } as never;
}

async function probe(scenario: string): Promise<{ run: ProbeRun; out: string; err: string; exit: { exitCode: number; startError?: string } }> {
  const file = launcher.processFile(target, scenario, () => spec(scenario));
  const run = await launcher.run(target, file);
  let out = '';
  let err = '';
  run.stdout.on('data', (b: Buffer) => (out += b.toString()));
  run.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const closed = Promise.all([new Promise((r) => run.stdout.on('close', r)), new Promise((r) => run.stderr.on('close', r))]);
  const exit = await run.exited;
  await closed;
  return { run, out, err, exit };
}

test('exit code and both streams come through; the spec is written once per key', async () => {
  const r = await probe('echo out; echo err >&2; exit 3');
  assert.deepEqual([r.exit, r.out, r.err], [{ exitCode: 3 }, 'out\n', 'err\n']);
  const file = path.join(dir, 'probe-process.json');
  const written = fs.statSync(file).mtimeMs;
  fs.utimesSync(file, 0, 0);
  launcher.processFile(target, 'echo out; echo err >&2; exit 3', () => assert.fail('built again for the same key'));
  assert.equal(fs.statSync(file).mtimeMs, 0);
  assert.ok(written > 0);
});

test("the runtime's own start failures (crun's and runc's wording) are told from a probe's exit 255", async () => {
  const crun = await probe("echo 'executable file `nonexist` not found in $PATH: No such file or directory' >&2; exit 255");
  assert.deepEqual(crun.exit, { exitCode: 255, startError: 'executable file `nonexist` not found in $PATH: No such file or directory' });
  const runc = await probe(`echo 'time="2026-01-01T00:00:00Z" level=error msg="exec failed: unable to start container process: exec: \\"x\\": executable file not found in $PATH"' >&2; exit 255`);
  assert.deepEqual(runc.exit, { exitCode: 255, startError: 'exec failed: unable to start container process: exec: "x": executable file not found in $PATH' });
  // The probe's own 255, even with a line like that, once it also wrote to stdout or more lines.
  assert.deepEqual((await probe("echo hi; echo 'chdir to cwd: No such file or directory' >&2; exit 255")).exit, { exitCode: 255 });
  assert.deepEqual((await probe('echo oops >&2; exit 255')).exit, { exitCode: 255 });
  assert.deepEqual((await probe("printf 'a\\nopen executable: Permission denied\\n' >&2; exit 255")).exit, { exitCode: 255 });
});

test("kill() SIGKILLs the runtime's child, the probe; the runtime then reports it", async () => {
  const file = launcher.processFile(target, 'sleep 30 & echo started; wait $!; exit $?', () => spec('sleep 30 & echo started; wait $!; exit $?'));
  const run = await launcher.run(target, file);
  await new Promise((r) => run.stdout.once('data', r));
  const t0 = Date.now();
  run.kill();
  assert.deepEqual(await run.exited, { exitCode: 137 });
  assert.ok(Date.now() - t0 < 5000);
  run.kill(); // after the exit: a no-op
});

test('a runtime that cannot be run is a start error, not an exception', async () => {
  const gone: ProbeTarget = { ...target, runtimePath: path.join(dir, 'no-such-runtime') };
  const run = await launcher.run(gone, path.join(dir, 'probe-process.json'));
  const exit = await run.exited;
  assert.equal(exit.exitCode, -1);
  assert.match(exit.startError ?? '', /cannot run .*no-such-runtime: .*no such file or directory/);
});
