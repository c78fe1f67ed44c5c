// berth's container commands end to end: real containers on a real berthd, with the docker CLI
// on the same daemon as the reference for layouts, messages and exit codes. The whole file skips
// itself while the daemon has no container endpoints.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { api, berth, destroyDaemon, docker, run, startDaemon, BERTH, type TestDaemon } from '../helpers/daemon';

let d: TestDaemon;
let skip: string | false = false;

before(async () => {
  d = await startDaemon({ name: 'cli-containers' });
  const probe = await api(d.socket, 'GET', '/v1.50/containers/json');
  if (probe.status === 404) skip = 'needs GET /containers/json and the other container endpoints';
  else {
    const seed = await berth(d, ['image', 'seed', 'busybox']);
    assert.equal(seed.code, 0, seed.stderr);
  }
});
after(async () => {
  if (d && !skip) {
    // Containers left by a failed test: remove them so the daemon's stop has nothing to wait for.
    const ids = (await berth(d, ['ps', '-aq'])).stdout.split('\n').filter(Boolean);
    if (ids.length) await berth(d, ['rm', '-f', ...ids]);
  }
  await destroyDaemon(d);
});

async function ok(args: string[], input?: string): Promise<string> {
  const r = await berth(d, args, { input });
  assert.equal(r.code, 0, `berth ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

test('run in the foreground: streams kept apart, exit code returned, --rm removes', async (t) => {
  if (skip) return t.skip(skip);
  const r = await berth(d, ['run', '--rm', '--name', 'fg', 'busybox', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
  assert.equal(r.code, 3);
  assert.equal(r.stdout, 'out\n');
  assert.equal(r.stderr, 'err\n');
  for (let i = 0; i < 50 && (await berth(d, ['ps', '-aq', '--filter', 'name=fg'])).stdout !== ''; i++) await new Promise((res) => setTimeout(res, 100));
  assert.equal((await berth(d, ['ps', '-aq', '--filter', 'name=fg'])).stdout, '');
  assert.equal(await ok(['run', '-i', '--rm', 'busybox', 'tr', 'a-z', 'A-Z'], 'piped stdin\n'), 'PIPED STDIN\n');
  assert.equal(await ok(['run', '--rm', '-e', 'GREETING=hi', '-w', '/tmp', '-u', 'nobody', 'busybox', 'sh', '-c', 'echo $GREETING $(pwd) $(id -un)']), 'hi /tmp nobody\n');
});

test('run failures: exit codes and messages as docker', async (t) => {
  if (skip) return t.skip(skip);
  const b = await berth(d, ['run', '--rm', 'busybox', '/no/such/binary']);
  const k = await docker(d, ['run', '--rm', 'busybox', '/no/such/binary']);
  assert.equal(b.code, k.code);
  assert.ok([126, 127].includes(b.code), `exit ${b.code}`);
  const missing = await berth(d, ['run', '--pull', 'never', 'nosuchimage']);
  assert.equal(missing.code, 125);
  assert.match(missing.stderr, /^berth: Error response from daemon: No such image: nosuchimage:latest\n\nRun 'berth run --help' for more information\n$/);
  const usage = await berth(d, ['run', '-p', 'nonsense:1:2:3', 'busybox']);
  assert.equal(usage.code, 125);
});

test('detached containers: ps, logs, exec, top, inspect, diff as docker shows them', async (t) => {
  if (skip) return t.skip(skip);
  const id = (await ok(['run', '-d', '--name', 'web', '-l', 'tier=front', 'busybox', 'sh', '-c', 'echo started; touch /tmp/made; while true; do sleep 0.1; done'])).trim();
  assert.match(id, /^[0-9a-f]{64}$/);
  const fmt = '{{.ID}}|{{.Image}}|{{.Command}}|{{.Names}}|{{.Ports}}|{{.State}}|{{.Labels}}|{{.Label "tier"}}';
  assert.equal(await ok(['ps', '--format', fmt]), (await docker(d, ['ps', '--format', fmt])).stdout);
  assert.match(await ok(['ps']), new RegExp(`^CONTAINER ID   IMAGE     COMMAND                  CREATED +STATUS +PORTS +NAMES\\n${id.slice(0, 12)}   busybox   "sh -c echo started;…"   .* ago +Up .* +web\\n$`));
  assert.equal(await ok(['ps', '-q']), `${id.slice(0, 12)}\n`);
  assert.equal(await ok(['ps', '-q', '--no-trunc']), `${id}\n`);
  assert.equal(await ok(['ps', '-q', '--filter', 'label=tier=back']), '');
  for (let i = 0; i < 50 && !(await ok(['logs', 'web'])).includes('started'); i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(await ok(['logs', 'web']), 'started\n');
  assert.match(await ok(['logs', '-t', 'web']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z started\n$/);
  assert.equal(await ok(['exec', 'web', 'cat', '/tmp/made']), '');
  assert.equal((await berth(d, ['exec', 'web', 'sh', '-c', 'echo e >&2; exit 7'])).code, 7);
  assert.equal(await ok(['exec', '-i', '-e', 'X=1', '-w', '/etc', 'web', 'sh', '-c', 'cat; echo $X $(pwd)'], 'to exec\n'), 'to exec\n1 /etc\n');
  assert.equal(await ok(['exec', '-d', 'web', 'touch', '/tmp/detached']), '');
  assert.equal(await ok(['top', 'web']).then((s) => s.split('\n')[0]), (await docker(d, ['top', 'web'])).stdout.split('\n')[0]);
  assert.equal(await ok(['inspect', '-f', '{{.State.Status}} {{.Name}} {{index .Config.Labels "tier"}}', 'web']), 'running /web front\n');
  assert.equal(await ok(['container', 'inspect', 'web']), (await docker(d, ['container', 'inspect', 'web'])).stdout);
  const diff = await ok(['diff', 'web']);
  assert.equal(diff, (await docker(d, ['diff', 'web'])).stdout);
  assert.match(diff, /^A \/tmp\/made$/m);
});

test('lifecycle: stop, start, restart, kill, wait, pause, rename, rm', async (t) => {
  if (skip) return t.skip(skip);
  // As PID 1 the shell ignores SIGTERM unless it traps it.
  await ok(['run', '-d', '--name', 'life', 'busybox', 'sh', '-c', 'trap "exit 143" TERM; while :; do sleep 0.1; done']);
  assert.equal(await ok(['pause', 'life']), 'life\n');
  assert.match(await ok(['ps', '--format', '{{.Status}}', '--filter', 'name=life']), /\(Paused\)/);
  assert.equal(await ok(['unpause', 'life']), 'life\n');
  assert.equal(await ok(['stop', '-t', '1', 'life']), 'life\n');
  assert.equal(await ok(['wait', 'life']), '143\n');
  assert.equal(await ok(['start', 'life']), 'life\n');
  assert.equal(await ok(['restart', '-t', '0', 'life']), 'life\n');
  assert.equal(await ok(['kill', '-s', 'TERM', 'life']), 'life\n');
  assert.equal(await ok(['wait', 'life']), '143\n');
  assert.equal(await ok(['rename', 'life', 'renamed']), '');
  await ok(['start', 'renamed']);
  assert.equal(await ok(['kill', 'renamed']), 'renamed\n');
  const rm = await berth(d, ['rm', 'renamed', 'nosuchcontainer']);
  assert.equal(rm.code, 1);
  assert.equal(rm.stdout, 'renamed\n');
  assert.equal(rm.stderr, (await docker(d, ['rm', 'nosuchcontainer'])).stderr);
  await ok(['rm', '-f', 'web']);
});

test('start -a returns the exit code; export and commit', async (t) => {
  if (skip) return t.skip(skip);
  const id = (await ok(['create', '--name', 'made', 'busybox', 'sh', '-c', 'echo built > /built; echo created-out; exit 2'])).trim();
  assert.match(id, /^[0-9a-f]{64}$/);
  const s = await berth(d, ['start', '-a', 'made']);
  assert.equal(s.code, 2);
  assert.equal(s.stdout, 'created-out\n');
  const tar = path.join(d.dir, 'made.tar');
  await ok(['export', '-o', tar, 'made']);
  const listing = await run('tar', ['-tf', tar]);
  assert.match(listing.stdout, /^\.?\/?built$/m);
  const img = (await ok(['commit', '-c', 'CMD ["cat", "/built"]', '-m', 'from test', 'made', 'committed:v1'])).trim();
  assert.match(img, /^sha256:[0-9a-f]{64}$/);
  assert.equal(await ok(['run', '--rm', 'committed:v1']), 'built\n');
  assert.match(await ok(['container', 'prune', '-f']), /^Deleted Containers:\n[0-9a-f]{64}\n\nTotal reclaimed space: /);
});

test('run -it in a real terminal: tty, exit code, detach keys', { skip: !fs.existsSync('/usr/bin/script') && 'needs util-linux script' }, async (t) => {
  if (skip) return t.skip(skip);
  const env = { BERTH_HOST: d.host };
  // script(1) gives berth a pseudo-terminal as stdin/stdout, as an interactive shell would.
  const inTty = await run('script', ['-qec', `${process.execPath} ${BERTH} run -it --rm busybox sh -c 'test -t 0 && test -t 1 && echo both-tty; exit 5'`, '/dev/null'], { env, timeoutMs: 30_000 });
  assert.equal(inTty.code, 5, inTty.stdout + inTty.stderr);
  // script(1) itself types a NUL when its own stdin is at EOF, which the container's tty echoes.
  // One CR, as docker prints: berth clears OPOST in raw mode as docker does.
  assert.match(inTty.stdout, /^(\^@)?both-tty\r\n$/, JSON.stringify(inTty.stdout));
  const notTty = await berth(d, ['run', '-it', '--rm', 'busybox', 'true']);
  assert.equal(notTty.code, 1);
  assert.equal(notTty.stderr, 'the input device is not a TTY\n');
  // ctrl-p ctrl-q detaches and leaves the container running.
  const det = await run('sh', ['-c', `(sleep 2; printf '\\020\\021'; sleep 2) | script -qec "${process.execPath} ${BERTH} run -it --name det busybox sh" /dev/null`], { env, timeoutMs: 30_000 });
  assert.equal(det.code, 0, det.stdout + det.stderr);
  assert.match(await ok(['ps', '--filter', 'name=det', '--format', '{{.Names}} {{.State}}']), /^det running$/m);
  await ok(['rm', '-f', 'det']);
});
