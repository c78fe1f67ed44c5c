// Log drivers through the real docker CLI and docker-py against a real berthd (crun, conmon):
// rotation under a container printing as fast as it can while `docker logs -f` follows it,
// the none driver's refusal, create-time checks, daemon-wide defaults, --details, rotation after
// a daemon restart, and docker rm removing every file of the log.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { api, run } from '../helpers/daemon';
import { setupDaemon, until, type CtrEnv } from '../containers/fixtures';
import { generationsDir, logSize } from '../../src/logs/files';

let e: CtrEnv;
before(async () => {
  e = await setupDaemon('logs', { config: { 'log-opts': { labels: 'team' } } });
});
after(async () => {
  await e?.cleanup();
});

const ok = (args: string[]): Promise<string> => e.ok(args);
const logPathOf = async (ref: string): Promise<string> => (await ok(['inspect', '-f', '{{.LogPath}}', ref])).trim();

/** Checks that lines are the numbers first..last, each once, in order. */
function assertContiguous(lines: string[], what: string): void {
  assert.ok(lines.length > 0, `${what}: no lines`);
  const first = Number(lines[0]);
  for (let i = 0; i < lines.length; i++) {
    if (Number(lines[i]) !== first + i) assert.fail(`${what}: line ${i} is ${JSON.stringify(lines[i])}, expected ${first + i} (a gap or a repeat)`);
  }
}

/** Checks that lines are increasing numbers without repeats; returns the sizes of the gaps. */
function assertInOrder(lines: string[], what: string): number[] {
  assert.ok(lines.length > 0, `${what}: no lines`);
  const gaps: number[] = [];
  for (let i = 1; i < lines.length; i++) {
    const step = Number(lines[i]) - Number(lines[i - 1]);
    if (!(step >= 1)) assert.fail(`${what}: line ${i} is ${JSON.stringify(lines[i])} after ${JSON.stringify(lines[i - 1])} (a repeat or out of order)`);
    if (step > 1) gaps.push(step - 1);
  }
  return gaps;
}

test('max-size=1m max-file=3: a follower sees every line once across rotations; the files stay within 3 MB', async (t) => {
  t.after(() => e.docker(['rm', '-f', 'fast']));
  const total = 400_000;
  // The follower starts before the container prints (it sleeps first), so it must see 1..total.
  await ok(['run', '-d', '--name', 'fast', '--log-opt', 'max-size=1m', '--log-opt', 'max-file=3', 'busybox', 'sh', '-c', `sleep 1; seq 1 ${total}`]);
  const log = await logPathOf('fast');
  let maxSize = 0;
  let samples = 0;
  const sampler = setInterval(() => {
    maxSize = Math.max(maxSize, logSize(log));
    samples++;
  }, 5);
  const follower = spawn('docker', ['logs', '-f', 'fast'], { env: { ...process.env, DOCKER_HOST: e.d.host } });
  const chunks: Buffer[] = [];
  follower.stdout.on('data', (b: Buffer) => chunks.push(b));
  const code = await new Promise<number | null>((resolve) => follower.on('exit', resolve));
  clearInterval(sampler);
  assert.equal(code, 0);
  const lines = Buffer.concat(chunks).toString().trimEnd().split('\n');
  // conmon switches files by itself (so the disk bound holds while berthd is down); a file it
  // makes without berthd's arm is kept only if berthd links it before conmon's next switch. A
  // daemon stalled for two files' worth of writing (tens of milliseconds on a loaded machine)
  // loses such a file, and says so. The follower must not add to that: every gap in what it
  // read is a whole lost file that berthd reported, and nothing repeats.
  const reported = [...e.d.logs().matchAll(/conmon switched log files faster than berthd could keep them: output lost.* files=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
  const gaps = assertInOrder(lines, 'docker logs -f');
  if (gaps.length > 0 || reported > 0) t.diagnostic(`berthd reported ${reported} lost file(s); gaps of ${gaps.join(', ')} lines`);
  assert.ok(gaps.length <= reported, `docker logs -f: gaps of ${gaps.join(', ')} lines, but berthd reported ${reported} lost file(s)`);
  // A file holds 600 kB of records of 50 bytes and more.
  for (const g of gaps) assert.ok(g <= 12_100 * reported, `a gap of ${g} lines is more than the ${reported} file(s) berthd lost`);
  assert.equal(lines[0], '1');
  assert.equal(lines[lines.length - 1], String(total));
  // Several rotations happened (about 53 bytes a record, 600 kB a file).
  const gens = fs.readdirSync(generationsDir(log)).filter((f) => fs.statSync(path.join(generationsDir(log), f)).size > 0);
  assert.equal(gens.length, 3, gens.join(' '));
  assert.ok(Number(gens.sort()[0].slice(0, 10)) > 10, `generations ${gens.join(' ')}`);
  assert.ok(samples > 20, `sampled ${samples} times`);
  assert.ok(maxSize <= 3_000_000, `the log's files took ${maxSize} bytes`);
  // What is still on disk reads back contiguous, and --tail reads across files.
  const kept = (await ok(['logs', 'fast'])).trimEnd().split('\n');
  assertContiguous(kept, 'docker logs');
  assert.equal(kept[kept.length - 1], String(total));
  assert.ok(kept.length > 2 * 11_000, `kept ${kept.length} lines`);
  const tail = (await ok(['logs', '--tail', '20000', 'fast'])).trimEnd().split('\n');
  assert.deepEqual(tail, kept.slice(-20000));
  await ok(['wait', 'fast']);
  await ok(['rm', 'fast']);
  assert.equal(fs.existsSync(path.dirname(log)), false, 'docker rm removes every file of the log');
});

test('the none driver: no file, logs refused as dockerd does (501), attach still shows output', async () => {
  assert.equal(await ok(['run', '--rm', '--log-driver', 'none', 'busybox', 'echo', 'attached']), 'attached\n');
  await ok(['run', '-d', '--name', 'quiet', '--log-driver', 'none', 'busybox', 'echo', 'hi']);
  const r = await e.docker(['logs', 'quiet']);
  assert.notEqual(r.code, 0);
  assert.equal(r.stderr.trim(), 'Error response from daemon: configured logging driver does not support reading');
  const raw = await api(e.d.socket, 'GET', '/containers/quiet/logs?stdout=1');
  assert.equal(raw.status, 501);
  assert.deepEqual(raw.json(), { message: 'configured logging driver does not support reading' });
  assert.equal((await ok(['inspect', '-f', '{{json .HostConfig.LogConfig}}', 'quiet'])).trim(), '{"Type":"none","Config":{}}');
  await until('quiet exits', async () => (await ok(['inspect', '-f', '{{.State.Status}}', 'quiet'])).trim() === 'exited');
  assert.equal(await logPathOf('quiet'), '');
  const id = (await ok(['inspect', '-f', '{{.Id}}', 'quiet'])).trim();
  assert.equal(fs.existsSync(path.join(e.d.dataRoot, 'containers', id, 'container.log')), false, 'conmon wrote no file');
  await ok(['rm', 'quiet']);
});

test('create refuses unknown drivers, unknown options and bad values with a 400', async () => {
  const before = (await ok(['ps', '-aq'])).trim().split('\n').filter(Boolean).length;
  const cases: [string[], string][] = [
    [['--log-driver', 'syslogx'], "logger: no log driver named 'syslogx' is registered"],
    [['--log-opt', 'foo=bar'], "unknown log opt 'foo' for json-file log driver"],
    [['--log-opt', 'max-size=abc'], "invalid size: 'abc'"],
    [['--log-driver', 'local', '--log-opt', 'max-file=1'], 'compression cannot be enabled when max file count is 1'],
  ];
  for (const [flags, message] of cases) {
    const r = await e.docker(['create', ...flags, 'busybox', 'true']);
    assert.notEqual(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`Error response from daemon: ${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    const raw = await api(e.d.socket, 'POST', '/containers/create', { Image: 'busybox', HostConfig: { LogConfig: { Type: flags[0] === '--log-driver' ? flags[1] : '', Config: Object.fromEntries(flags.filter((_, i) => flags[i - 1] === '--log-opt').map((kv) => kv.split('='))) } } });
    assert.equal(raw.status, 400);
  }
  assert.equal((await ok(['ps', '-aq'])).trim().split('\n').filter(Boolean).length, before, 'nothing was created');
});

test('daemon defaults: json-file with the daemon\'s log-opts; inspect reports what is in effect; --details', async () => {
  await ok(['run', '-d', '--name', 'tagged', '--label', 'team=blue', '-e', 'STAGE=dev', '--log-opt', 'env=STAGE', '--log-opt', 'tag={{.Name}}', 'busybox', 'sh', '-c', 'echo out; echo err >&2']);
  await until('tagged exits', async () => (await ok(['inspect', '-f', '{{.State.Status}}', 'tagged'])).trim() === 'exited');
  assert.equal((await ok(['inspect', '-f', '{{json .HostConfig.LogConfig}}', 'tagged'])).trim(), '{"Type":"json-file","Config":{"env":"STAGE","labels":"team","tag":"{{.Name}}"}}');
  const r = await e.docker(['logs', '--details', 'tagged']);
  assert.equal(r.stdout, 'STAGE=dev,tag=tagged,team=blue out\n');
  assert.equal(r.stderr, 'STAGE=dev,tag=tagged,team=blue err\n');
  // Another driver does not take the daemon's json-file options.
  await ok(['create', '--name', 'loc', '--log-driver', 'local', 'busybox', 'true']);
  assert.equal((await ok(['inspect', '-f', '{{json .HostConfig.LogConfig}}', 'loc'])).trim(), '{"Type":"local","Config":{}}');
  const info = (await api(e.d.socket, 'GET', '/info')).json<{ LoggingDriver: string; Plugins: { Log: string[] } }>();
  assert.equal(info.LoggingDriver, 'json-file');
  assert.deepEqual(info.Plugins.Log, ['json-file', 'local', 'none']);
  await ok(['rm', '-f', 'tagged', 'loc']);
});

test('docker-py: LogConfig of run, logs of json-file and local containers, and the none driver\'s error', async () => {
  const script = `
import docker, json
c = docker.from_env()
a = c.containers.run('busybox', ['echo', 'from-py'], detach=True, log_config={'type': 'local', 'config': {'max-size': '1m'}})
a.wait()
b = c.containers.run('busybox', ['echo', 'default'], remove=True)
n = c.containers.run('busybox', ['echo', 'x'], detach=True, log_config={'type': 'none'})
n.wait()
try:
    n.logs()
    err = None
except docker.errors.APIError as e:
    err = [e.status_code, e.explanation]
out = {'local_logs': a.logs().decode(), 'local_cfg': a.attrs['HostConfig']['LogConfig'], 'default': b.decode(), 'none_err': err}
a.remove(); n.remove()
print(json.dumps(out))
`;
  const r = await run('/usr/bin/python3', ['-c', script], { env: { DOCKER_HOST: e.d.host }, timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { local_logs: string; local_cfg: unknown; default: string; none_err: [number, string] };
  assert.equal(out.local_logs, 'from-py\n');
  assert.deepEqual(out.local_cfg, { Type: 'local', Config: { 'max-size': '1m' } });
  assert.equal(out.default, 'default\n');
  assert.deepEqual(out.none_err, [501, 'configured logging driver does not support reading']);
});

test('rotation resumes after a daemon restart; compressed files read back; a restart of the container rotates its old file', async () => {
  await ok(['run', '-d', '--name', 'steady', '--log-driver', 'local', '--log-opt', 'max-size=20k', '--log-opt', 'max-file=4', 'busybox', 'sh', '-c',
    'i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo $i; [ $((i % 100)) = 0 ] && sleep 0.2; done; sleep 600']);
  const log = await logPathOf('steady');
  await until('a compressed file', () => fs.readdirSync(generationsDir(log)).some((f) => f.endsWith('.gz')));
  await e.d.restart();
  await until('the container wrote 3000 lines', async () => (await ok(['logs', '--tail', '1', 'steady'])).trim() === '3000', 60_000);
  const files = fs.readdirSync(generationsDir(log)).filter((f) => fs.statSync(path.join(generationsDir(log), f)).size > 0);
  assert.ok(files.length >= 2 && files.length <= 4, files.join(' '));
  assert.ok(files.filter((f) => f.endsWith('.gz')).length >= 1, files.join(' '));
  assert.ok(logSize(log) <= 4 * 20_000, `${logSize(log)} bytes`);
  const kept = (await ok(['logs', 'steady'])).trimEnd().split('\n');
  assertContiguous(kept, 'after restart');
  assert.equal(kept[kept.length - 1], '3000');
  // Stopped and started again: the old run's file is rotated, the new run starts a file of its own.
  await ok(['stop', '-t', '1', 'steady']);
  await ok(['start', 'steady']);
  await until('second run prints', async () => (await ok(['logs', '--tail', '1', 'steady'])).trim() !== '3000' || false, 30_000).catch(() => {});
  const since = (await ok(['logs', 'steady'])).trimEnd().split('\n');
  assert.ok(since.includes('3000'), 'the first run is still readable');
  await ok(['rm', '-f', 'steady']);
  assert.equal(fs.existsSync(path.dirname(log)), false);
});
