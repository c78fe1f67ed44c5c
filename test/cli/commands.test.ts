// The command layer without a daemon: usage errors and exit codes compared with the real docker
// CLI's, help output, command lookup, and run/create flag translation into the create body.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { runCli, findCommand, allCommands } from '../../src/cli/main';
import type { CliIO } from '../../src/cli/command';
import { buildCreateRequest, parseDurationNs, parseEnv, parseMount, parsePublish, parseRestart, ramInBytes } from '../../src/cli/runopts';
import { timestampArg, displayPorts } from '../../src/cli/commands/containers';
import { splitReference, imageRows } from '../../src/cli/commands/images';
import { run } from '../helpers/daemon';
import { parseDetachKeys } from '../../src/cli/attach';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cli-commands-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function cli(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => (out += d));
  stderr.on('data', (d: Buffer) => (err += d));
  const io: CliIO = { stdin: new PassThrough(), stdout, stderr, env: { BERTH_HOST: `unix://${path.join(tmp, 'no-daemon.sock')}`, ...env } };
  const code = await runCli(argv, io);
  return { code, stdout: out, stderr: err };
}

const hasDocker = fs.existsSync('/usr/bin/docker') || fs.existsSync('/usr/local/bin/docker');

test('usage errors match the docker CLI (message and exit code)', { skip: !hasDocker && 'docker CLI not installed' }, async () => {
  const cases = [['rmi'], ['ps', '--foo'], ['ps', 'x'], ['tag', 'a'], ['history'], ['rename', 'a'], ['inspect'], ['version', 'x'], ['system', 'df', 'x'], ['load', 'x'], ['run'], ['run', '--foo', 'x'], ['nosuch'], ['image', 'foo']];
  for (const argv of cases) {
    const d = await run('docker', argv, { env: { DOCKER_HOST: `unix://${path.join(tmp, 'none.sock')}`, DOCKER_CONFIG: path.join(tmp, 'dcfg') } });
    const b = await cli(argv);
    // docker 28 prints "SRun" for at-most errors (a typo in its template); berth prints "Run".
    const expected = d.stderr.replace(/docker/g, 'berth').replace(/^SRun/m, 'Run');
    assert.equal(b.stderr, expected, `stderr of ${argv.join(' ')}`);
    assert.equal(b.code, d.code, `exit code of ${argv.join(' ')}`);
  }
});

test('help: per command, groups, aliases', async () => {
  const h = await cli(['images', '--help']);
  assert.equal(h.code, 0);
  assert.match(h.stdout, /^Usage: {2}berth images \[OPTIONS\] \[REPOSITORY\[:TAG\]\]\n\nList images\n\nAliases:\n {2}berth image ls, berth image list, berth images\n\nOptions:\n {2}-a, --all  +Show all images/);
  assert.match(h.stdout, /\n {2}-f, --filter filter +Filter output/);
  const g = await cli(['image']);
  assert.equal(g.code, 0);
  assert.match(g.stdout, /Usage: {2}berth image COMMAND[\s\S]*\n {2}ls +List images\n[\s\S]*\n {2}seed +Build a base image/);
  const top = await cli(['--help']);
  assert.match(top.stdout, /Management Commands:\n {2}container +Manage containers/);
  // Lists show a command's first description line, as docker's Short text: one line each.
  const listed = top.stdout.split('\nCommands:\n')[1].split('\n\n')[0].split('\n');
  for (const line of listed) assert.match(line, /^ {2}[a-z]+ +[A-Z].*[^.]$/, line);
  assert.ok(listed.includes('  cp          Copy files/folders between a container and the local filesystem'));
  assert.ok(listed.includes('  login       Authenticate to a registry'));
  // run's -h is --hostname; --help still prints help.
  const r = await cli(['run', '--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /-h, --hostname string/);
  const v = await cli(['--version']);
  assert.match(v.stdout, /^berth version \d+\.\d+\.\d+\n$/);
});

test('command lookup picks the longest path; every path is unique', () => {
  const cmds = allCommands();
  assert.deepEqual(findCommand(cmds, ['image', 'ls', '-q'])?.invoked, ['image', 'ls']);
  assert.deepEqual(findCommand(cmds, ['images'])?.invoked, ['images']);
  assert.deepEqual(findCommand(cmds, ['container', 'ps'])?.invoked, ['container', 'ps']);
  assert.equal(findCommand(cmds, ['imagez']), undefined);
  const seenPaths = new Set<string>();
  for (const c of cmds) {
    for (const p of c.paths) {
      const key = p.join(' ');
      assert.ok(!seenPaths.has(key), `duplicate command path ${key}`);
      seenPaths.add(key);
    }
    const names = c.flags.map((f) => f.name);
    assert.equal(new Set(names).size, names.length, `duplicate flag in ${c.paths[0].join(' ')}`);
  }
});

test('daemon errors: connection failure message and exit codes (1, and 125 for run)', async () => {
  const ps = await cli(['ps']);
  assert.equal(ps.code, 1);
  assert.match(ps.stderr, /^Cannot connect to the berth daemon at unix:\/\/.*no-daemon.sock. Is the berth daemon running\?\n$/);
  const r = await cli(['run', 'busybox']);
  assert.equal(r.code, 125);
  assert.match(r.stderr, /^berth: Cannot connect to the berth daemon .*\n\nRun 'berth run --help' for more information\n$/);
  const h = await cli(['-H', `unix://${path.join(tmp, 'other.sock')}`, 'info', '-f', '{{.ID}}']);
  assert.match(h.stderr, /other.sock/);
  const bad = await cli(['images', '--format', '{{nosuch}}']);
  assert.equal(bad.code, 1);
});

test('run flags become the create body docker sends', () => {
  const envFile = path.join(tmp, 'env.list');
  fs.writeFileSync(envFile, '# comment\nFROM_FILE=1\n\nPASSED\n');
  const v = {
    name: 'web', env: ['A=1', 'HOME_FROM_CLIENT'], 'env-file': [envFile], workdir: '/srv', user: '1000:1000', entrypoint: '/bin/sh', hostname: 'h1',
    init: true, restart: 'on-failure:3', label: ['k=v', 'flag'], publish: ['8080:80', '127.0.0.1:5353:53/udp', '9000-9001:9000-9001', '443'],
    volume: ['/host:/ctr:ro', 'named:/data', '/anon'], network: 'mynet', 'network-alias': ['alias1'], privileged: true, 'cap-add': ['NET_ADMIN'],
    'cap-drop': ['ALL'], memory: '512m', cpus: '1.5', interactive: true, tty: true, tmpfs: ['/run:size=64m'], 'read-only': true, 'pids-limit': 100,
    sysctl: ['net.ipv4.ip_forward=1'], 'log-opt': ['max-size=10m'], 'log-driver': 'json-file', 'stop-signal': 'SIGINT', 'add-host': ['db:10.0.0.2'],
    'detach-keys': 'ctrl-x', 'shm-size': '64m', ulimit: ['nofile=1024:2048'], mount: ['type=bind,source=/a,target=/b,readonly'],
  };
  const req = buildCreateRequest(v, ['busybox', 'sh', '-c', 'echo hi'], { HOME_FROM_CLIENT: '/root', PASSED: 'yes' }, true);
  const b = req.body;
  const hc = b.HostConfig;
  assert.equal(req.name, 'web');
  assert.equal(b.Image, 'busybox');
  assert.deepEqual(b.Cmd, ['sh', '-c', 'echo hi']);
  assert.deepEqual(b.Entrypoint, ['/bin/sh']);
  assert.deepEqual(b.Env, ['FROM_FILE=1', 'PASSED=yes', 'A=1', 'HOME_FROM_CLIENT=/root']);
  assert.equal(b.WorkingDir, '/srv');
  assert.equal(b.User, '1000:1000');
  assert.equal(b.Hostname, 'h1');
  assert.deepEqual(b.Labels, { k: 'v', flag: '' });
  assert.equal(b.Tty, true);
  assert.equal(b.OpenStdin, true);
  assert.equal(b.StdinOnce, true);
  assert.deepEqual([b.AttachStdin, b.AttachStdout, b.AttachStderr], [true, true, true]);
  assert.deepEqual(b.ExposedPorts, { '80/tcp': {}, '53/udp': {}, '9000/tcp': {}, '9001/tcp': {}, '443/tcp': {} });
  assert.deepEqual(b.Volumes, { '/anon': {} });
  assert.equal(b.StopSignal, 'SIGINT');
  assert.deepEqual(hc.PortBindings, {
    '80/tcp': [{ HostIp: '', HostPort: '8080' }], '53/udp': [{ HostIp: '127.0.0.1', HostPort: '5353' }],
    '9000/tcp': [{ HostIp: '', HostPort: '9000' }], '9001/tcp': [{ HostIp: '', HostPort: '9001' }], '443/tcp': [{ HostIp: '', HostPort: '' }],
  });
  assert.deepEqual(hc.Binds, ['/host:/ctr:ro', 'named:/data']);
  assert.deepEqual(hc.RestartPolicy, { Name: 'on-failure', MaximumRetryCount: 3 });
  assert.equal(hc.AutoRemove, false);
  assert.equal(buildCreateRequest({ rm: true }, ['busybox'], {}, true).body.HostConfig.AutoRemove, true);
  assert.equal(hc.Init, true);
  assert.equal(hc.Privileged, true);
  assert.deepEqual(hc.CapAdd, ['NET_ADMIN']);
  assert.deepEqual(hc.CapDrop, ['ALL']);
  assert.equal(hc.Memory, 512 * 1024 * 1024);
  assert.equal(hc.NanoCpus, 1_500_000_000);
  assert.equal(hc.NetworkMode, 'mynet');
  assert.deepEqual(hc.Tmpfs, { '/run': 'size=64m' });
  assert.equal(hc.ReadonlyRootfs, true);
  assert.equal(hc.PidsLimit, 100);
  assert.deepEqual(hc.Sysctls, { 'net.ipv4.ip_forward': '1' });
  assert.deepEqual(hc.LogConfig, { Type: 'json-file', Config: { 'max-size': '10m' } });
  assert.deepEqual(hc.ExtraHosts, ['db:10.0.0.2']);
  assert.equal(hc.ShmSize, 64 * 1024 * 1024);
  assert.deepEqual(hc.Ulimits, [{ Name: 'nofile', Soft: 1024, Hard: 2048 }]);
  assert.deepEqual(hc.Mounts, [{ Type: 'bind', Source: '/a', Target: '/b', ReadOnly: true }]);
  assert.deepEqual(b.NetworkingConfig, { EndpointsConfig: { mynet: { Aliases: ['alias1'] } } });

  // Defaults: no -i means no stdin; -d attaches nothing; create attaches stdout/stderr.
  const plain = buildCreateRequest({}, ['busybox'], {}, true).body;
  assert.deepEqual([plain.AttachStdin, plain.AttachStdout, plain.AttachStderr, plain.OpenStdin], [false, true, true, false]);
  assert.equal(plain.Cmd, null);
  assert.equal(plain.HostConfig.NetworkMode, 'default');
  const detached = buildCreateRequest({ detach: true }, ['busybox'], {}, true).body;
  assert.deepEqual([detached.AttachStdin, detached.AttachStdout, detached.AttachStderr], [false, false, false]);
  const onlyErr = buildCreateRequest({ attach: ['STDERR'] }, ['busybox'], {}, true).body;
  assert.deepEqual([onlyErr.AttachStdin, onlyErr.AttachStdout, onlyErr.AttachStderr], [false, false, true]);
  assert.deepEqual(buildCreateRequest({ entrypoint: '' }, ['busybox'], {}, true).body.Entrypoint, ['']);
  assert.throws(() => buildCreateRequest({ rm: true, restart: 'always' }, ['busybox'], {}, true), /cannot specify both --restart and --rm/);
  assert.throws(() => buildCreateRequest({ detach: true, attach: ['stdout'] }, ['busybox'], {}, true), /--attach and --detach/);
});

test('option parsers: sizes, durations, ports, mounts, restart, env, timestamps, references', () => {
  assert.equal(ramInBytes('1g'), 1024 ** 3);
  assert.equal(ramInBytes('100k'), 102400);
  assert.equal(ramInBytes('512mb'), 512 * 1024 ** 2);
  assert.equal(ramInBytes('42'), 42);
  assert.throws(() => ramInBytes('lots'), /invalid size/);
  assert.equal(parseDurationNs('1m30s'), 90e9);
  assert.equal(parseDurationNs('500ms'), 5e8);
  assert.throws(() => parseDurationNs('10x'), /invalid duration/);
  assert.deepEqual(parsePublish(['[::1]:8080:80']).bindings, { '80/tcp': [{ HostIp: '::1', HostPort: '8080' }] });
  assert.throws(() => parsePublish(['1:2:3:4']), /invalid port format/);
  assert.throws(() => parsePublish(['80/xyz']), /invalid proto/);
  assert.throws(() => parsePublish(['8000-8002:80-81']), /invalid ranges/);
  assert.deepEqual(parseMount('type=tmpfs,target=/t,tmpfs-size=1m'), { Type: 'tmpfs', Target: '/t', TmpfsOptions: { SizeBytes: 1048576 } });
  assert.throws(() => parseMount('type=bind,source=/a'), /target is required/);
  assert.deepEqual(parseRestart('always'), { Name: 'always', MaximumRetryCount: 0 });
  assert.throws(() => parseRestart('sometimes'), /invalid restart policy/);
  assert.throws(() => parseRestart('always:3'), /only be used with 'on-failure'/);
  assert.deepEqual(parseEnv(['X', 'Y=', 'Z=1'], [], { X: 'from-env' }), ['X=from-env', 'Y=', 'Z=1']);
  assert.deepEqual(parseEnv(['UNSET'], [], {}), []);
  const now = 1_700_000_000_000;
  assert.equal(timestampArg('1700000000', now), '1700000000');
  assert.equal(timestampArg('10m', now), String((now - 600_000) / 1000));
  assert.equal(timestampArg('2023-11-14T22:13:20Z', now), '1700000000');
  assert.throws(() => timestampArg('yesterday', now), /failed to parse/);
  assert.deepEqual([...parseDetachKeys('ctrl-p,ctrl-q')], [16, 17]);
  assert.deepEqual([...parseDetachKeys('a,ctrl-@,ctrl-[,ctrl-_')], [97, 0, 27, 31]);
  assert.throws(() => parseDetachKeys('ctrl-1'), /Unknown character/);
  assert.deepEqual(splitReference('localhost:5000/a/b:v1'), { repo: 'localhost:5000/a/b', tag: 'v1' });
  assert.deepEqual(splitReference('localhost:5000/a/b'), { repo: 'localhost:5000/a/b', tag: 'latest' });
  assert.deepEqual(splitReference('busybox@sha256:abc'), { repo: 'busybox', tag: '', digest: 'sha256:abc' });
  assert.equal(displayPorts([{ IP: '0.0.0.0', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' }, { IP: '::', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' }, { PrivatePort: 443, Type: 'tcp' }]), '443/tcp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp');
  assert.equal(displayPorts([8000, 8001, 8002, 9000].map((p) => ({ PrivatePort: p, Type: 'tcp' }))), '8000-8002/tcp, 9000/tcp');
  assert.equal(displayPorts([80, 81].map((p) => ({ IP: '0.0.0.0', PrivatePort: p, PublicPort: p, Type: 'tcp' }))), '0.0.0.0:80-81->80-81/tcp');
});

test('image rows: one per tag, digests, and <none> for untagged', () => {
  const img = { Id: 'sha256:' + 'a'.repeat(64), RepoTags: ['x:1', 'x:2', 'y:latest'], RepoDigests: ['x@sha256:' + 'b'.repeat(64)], Created: 0, Size: 1000 };
  const rows = imageRows([img, { Id: 'sha256:' + 'c'.repeat(64), RepoTags: [], RepoDigests: [], Created: 0, Size: 1 }], false, true);
  assert.deepEqual(rows.map((r) => `${r.Repository}:${r.Tag}:${r.ID}`), ['x:1:aaaaaaaaaaaa', 'x:2:aaaaaaaaaaaa', 'y:latest:aaaaaaaaaaaa', '<none>:<none>:cccccccccccc']);
  const withDigests = imageRows([img], true, false);
  assert.deepEqual(withDigests.map((r) => `${r.Repository}:${r.Tag}:${r.Digest}`), [`x:1:sha256:${'b'.repeat(64)}`, `x:2:sha256:${'b'.repeat(64)}`, 'y:latest:<none>']);
  assert.equal(withDigests[0].ID, img.Id);
  const digestOnly = imageRows([{ Id: 'sha256:' + 'd'.repeat(64), RepoTags: [], RepoDigests: ['z@sha256:' + 'e'.repeat(64)], Created: 0, Size: 1 }], false, true);
  assert.deepEqual(digestOnly.map((r) => `${r.Repository}:${r.Tag}`), ['z:<none>']);
});
