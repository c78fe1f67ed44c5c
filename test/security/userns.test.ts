// --userns-remap=default on a real berthd (own data root), driven with the docker CLI: containers
// run in a user namespace mapped to the berth user's subordinate ranges, image files are root's
// inside and the subordinate root's on the host, files root makes in volumes and bind mounts are
// the subordinate root's, cp/commit/export speak container IDs, --userns=host gets the identity
// map, dockerd's refusals, and a daemon restart keeps all of it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setupDaemon, tarNames, type CtrEnv } from '../containers/fixtures';
import { api, run, startDaemon, destroyDaemon } from '../helpers/daemon';

let e: CtrEnv;
let start = 0;
let bindDir = '';

function berthRange(file: string): { start: number; count: number }[] {
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith('berth:')).map((l) => ({ start: Number(l.split(':')[1]), count: Number(l.split(':')[2]) }));
}

before(async () => {
  // The remapped root must be able to reach the exec root: the roots' temp dir gets o+x.
  e = await setupDaemon('sec-userns', { config: { 'userns-remap': 'default' }, dirMode: 0o711 });
  const ranges = berthRange('/etc/subuid');
  assert.equal(ranges.length, 1, 'one berth line in /etc/subuid');
  assert.equal(berthRange('/etc/subgid').length, 1, 'one berth line in /etc/subgid');
  start = ranges[0].start;
  bindDir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-userns-bind-'));
  fs.chmodSync(bindDir, 0o777);
});
after(async () => {
  await e?.cleanup();
  if (bindDir) fs.rmSync(bindDir, { recursive: true, force: true });
});

test('info: name=userns, no apparmor on this host, the data root is <data-root>/<uid>.<gid>', async () => {
  const info = JSON.parse(await e.ok(['info', '--format', '{{json .}}'])) as { SecurityOptions: string[]; DockerRootDir: string };
  assert.ok(info.SecurityOptions.includes('name=userns'), JSON.stringify(info.SecurityOptions));
  assert.ok(!info.SecurityOptions.includes('name=apparmor'));
  assert.equal(info.DockerRootDir, path.join(e.d.dataRoot, `${start}.${start}`));
  const st = fs.statSync(info.DockerRootDir);
  assert.equal(st.mode & 0o777, 0o710);
  assert.equal(st.gid, start);
  assert.ok(fs.existsSync(path.join(info.DockerRootDir, 'metadata.db')), 'state lives in the remapped root');
});

test('a remapped container: its uid_map, root inside, image files root-owned inside and subordinate-owned on the host', async () => {
  const out = await e.ok(['run', '--rm', 'busybox', 'sh', '-c', 'cat /proc/self/uid_map /proc/self/gid_map; id -u; stat -c "%u:%g %a" /bin/busybox /etc/passwd /; cat /etc/passwd | head -1']);
  const lines = out.trim().split('\n');
  assert.deepEqual(lines[0].trim().split(/\s+/), ['0', String(start), '65536']);
  assert.deepEqual(lines[1].trim().split(/\s+/), ['0', String(start), '65536']);
  assert.equal(lines[2], '0');
  assert.equal(lines[3], '0:0 755');
  assert.equal(lines[4], '0:0 644');
  assert.match(lines[5], /^0:0 /, 'the root directory is root\'s');
  assert.match(lines[6], /^root:x:0:0:/, 'image files are readable');
  // The image's layer on the host: owned by the subordinate root.
  const snaps = path.join(e.d.dataRoot, `${start}.${start}`, 'overlay2', 'snapshots');
  const owners = fs.readdirSync(snaps).map((n) => path.join(snaps, n, 'fs', 'bin', 'busybox')).filter((p) => fs.existsSync(p)).map((p) => fs.statSync(p).uid);
  assert.ok(owners.length > 0 && owners.every((u) => u === start), `busybox on the host owned by ${owners}`);
});

test('root inside writes to a volume, a bind mount, /etc/hosts, /dev/shm and a tmpfs; the host sees the subordinate root', async () => {
  const out = await e.ok(['run', '--rm', '-v', 'uvol:/data', '-v', `${bindDir}:/b`, '--tmpfs', '/scratch', 'busybox', 'sh', '-c',
    'touch /data/v /b/f && echo "10.9.9.9 extra" >> /etc/hosts && touch /dev/shm/s /scratch/t && stat -c "%u" /data/v /b/f /dev/shm/s /scratch/t && grep -c extra /etc/hosts']);
  assert.deepEqual(out.trim().split('\n'), ['0', '0', '0', '0', '1']);
  assert.equal(fs.statSync(path.join(bindDir, 'f')).uid, start);
  assert.equal(fs.statSync(path.join(bindDir, 'f')).gid, start);
  // A bind source -v has to create belongs to the remapped root (dockerd's rule), and root inside may use it.
  const made = path.join(bindDir, 'made', 'sub');
  assert.equal((await e.ok(['run', '--rm', '-v', `${made}:/m`, 'busybox', 'sh', '-c', 'touch /m/ok && stat -c %u /m'])).trim(), '0');
  assert.equal(fs.statSync(made).uid, start);
  assert.equal(fs.statSync(path.join(bindDir, 'made')).uid, start);
  assert.equal(fs.statSync(bindDir).uid, 0, 'the existing parent is left alone');
  const mountpoint = (await e.ok(['volume', 'inspect', '-f', '{{.Mountpoint}}', 'uvol'])).trim();
  assert.equal(fs.statSync(mountpoint).uid, start, 'the volume belongs to the remapped root');
  assert.equal(fs.statSync(path.join(mountpoint, 'v')).uid, start);
});

test('cp in and out, commit and export carry container IDs; the host holds shifted ones', async () => {
  await e.ok(['run', '-d', '--name', 'ucp', 'busybox', 'sh', '-c', 'mkdir /own && touch /own/f && chown 1000:50 /own/f && chmod 4755 /own/f && sleep 300']);
  await e.ok(['exec', 'ucp', 'true']);
  for (let i = 0; i < 50 && (await e.docker(['exec', 'ucp', 'test', '-e', '/own/f'])).code !== 0; i++) await new Promise((r) => setTimeout(r, 100));
  const src = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-userns-cp-'));
  try {
    fs.writeFileSync(path.join(src, 'in.txt'), 'hello');
    await e.ok(['cp', path.join(src, 'in.txt'), 'ucp:/tmp/in.txt']);
    assert.equal((await e.ok(['exec', 'ucp', 'stat', '-c', '%u:%g', '/tmp/in.txt'])).trim(), '0:0', 'copied in as root of the container');
    const id = (await e.ok(['inspect', '-f', '{{.Id}}', 'ucp'])).trim();
    const upper = (await api(e.d.socket, 'GET', `/containers/${id}/json`)).json<{ GraphDriver: { Data: Record<string, string> } }>().GraphDriver?.Data?.UpperDir;
    if (upper) assert.equal(fs.statSync(path.join(upper, 'tmp', 'in.txt')).uid, start, 'on the host: the subordinate root');

    const out = await api(e.d.socket, 'GET', `/containers/ucp/archive?path=${encodeURIComponent('/own')}`);
    assert.equal(out.status, 200);
    const owners = await tarOwners(out.body);
    assert.deepEqual(owners.get('own/f'), { uid: 1000, gid: 50, mode: 0o4755 });
    assert.deepEqual(owners.get('own/'), { uid: 0, gid: 0, mode: 0o755 });

    const exported = await run('docker', ['export', 'ucp'], { env: { DOCKER_HOST: e.d.host } });
    const exp = await tarOwners(exported.stdoutBuf);
    assert.deepEqual(exp.get('own/f'), { uid: 1000, gid: 50, mode: 0o4755 });
    assert.equal(exp.get('bin/busybox')?.uid, 0);

    await e.ok(['commit', 'ucp', 'ucommit:1']);
    const inCommit = await e.ok(['run', '--rm', 'ucommit:1', 'stat', '-c', '%u:%g %a', '/own/f', '/tmp/in.txt']);
    assert.deepEqual(inCommit.trim().split('\n'), ['1000:50 4755', '0:0 644']);
    assert.ok((await tarNames(exported.stdoutBuf)).includes('own/f'));
  } finally {
    fs.rmSync(src, { recursive: true, force: true });
    await e.docker(['rm', '-f', 'ucp']);
  }
});

async function tarOwners(buf: Buffer): Promise<Map<string, { uid: number; gid: number; mode: number }>> {
  const tar = await import('tar-stream');
  const out = new Map<string, { uid: number; gid: number; mode: number }>();
  const ex = tar.extract();
  const done = new Promise<void>((resolve, reject) => {
    ex.on('entry', (h, stream, next) => {
      out.set(h.name.replace(/^\.\//, ''), { uid: h.uid ?? -1, gid: h.gid ?? -1, mode: (h.mode ?? 0) & 0o7777 });
      stream.on('end', next);
      stream.resume();
    });
    ex.on('finish', resolve);
    ex.on('error', reject);
  });
  ex.end(buf);
  await done;
  return out;
}

test('docker build on a remapped daemon: COPY and RUN layers keep container owners', async () => {
  const ctx = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-userns-build-'));
  try {
    fs.writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM busybox\nCOPY f.txt /opt/f.txt\nRUN touch /opt/made && chown 7:50 /opt/made\n');
    fs.writeFileSync(path.join(ctx, 'f.txt'), 'x');
    const r = await run('docker', ['build', '-q', '-t', 'ubuild:1', ctx], { env: { DOCKER_HOST: e.d.host, DOCKER_CONFIG: path.join(e.d.dir, 'docker-config'), DOCKER_BUILDKIT: '0' } });
    assert.equal(r.code, 0, r.stderr);
    const out = await e.ok(['run', '--rm', 'ubuild:1', 'stat', '-c', '%n %u:%g', '/opt/f.txt', '/opt/made']);
    assert.deepEqual(out.trim().split('\n'), ['/opt/f.txt 0:0', '/opt/made 7:50']);
  } finally {
    fs.rmSync(ctx, { recursive: true, force: true });
  }
});

test('--userns=host: the identity map; it may be privileged and share the host network', async () => {
  const out = await e.ok(['run', '--rm', '--userns=host', 'busybox', 'cat', '/proc/self/uid_map']);
  assert.deepEqual(out.trim().split(/\s+/), ['0', '0', '4294967295']);
  const priv = await e.ok(['run', '--rm', '--userns=host', '--privileged', '--net=host', 'busybox', 'sh', '-c', 'cat /proc/self/uid_map; stat -c %u /bin/busybox']);
  const lines = priv.trim().split('\n');
  assert.deepEqual(lines[0].trim().split(/\s+/), ['0', '0', '4294967295']);
  assert.equal(lines[1], String(start), 'the shared storage stays shifted: host IDs show through');
});

test("dockerd's refusals for remapped containers, and for user namespace modes other than host", async () => {
  const priv = await e.docker(['run', '--rm', '--privileged', 'busybox', 'true']);
  assert.notEqual(priv.code, 0);
  assert.match(priv.stderr, /privileged mode is incompatible with user namespaces\. {2}You must run the container in the host namespace when running privileged mode/);
  const net = await e.docker(['run', '--rm', '--net=host', 'busybox', 'true']);
  assert.match(net.stderr, /cannot share the host's network namespace when user namespaces are enabled/);
  const bad = await api(e.d.socket, 'POST', '/containers/create', { Image: 'busybox', Cmd: ['true'], HostConfig: { UsernsMode: 'private' } });
  assert.equal(bad.status, 400);
  assert.match(bad.json<{ message: string }>().message, /invalid USER mode/);
  const pid = await api(e.d.socket, 'POST', '/containers/create', { Image: 'busybox', Cmd: ['true'], HostConfig: { PidMode: 'host' } });
  assert.equal(pid.status, 400);
  assert.match(pid.json<{ message: string }>().message, /cannot share the host PID namespace when user namespaces are enabled/);
});

test('--security-opt apparmor=<profile> on a host without AppArmor: accepted and not applied, as dockerd', async () => {
  const out = await e.ok(['run', '--rm', '--security-opt', 'apparmor=some-profile', 'busybox', 'cat', '/proc/self/attr/current']).catch(() => '');
  // No AppArmor: the file is absent or says unconfined; the container ran either way.
  assert.ok(out === '' || /unconfined/.test(out), out);
  const r = await e.docker(['run', '--rm', '--security-opt', 'apparmor=some-profile', 'busybox', 'true']);
  assert.equal(r.code, 0, r.stderr);
  await e.ok(['create', '--name', 'uaa', '--security-opt', 'apparmor=some-profile', 'busybox', 'true']);
  try {
    assert.equal((await e.ok(['inspect', '-f', '{{.AppArmorProfile}}', 'uaa'])).trim(), '', 'no profile applied, none reported');
  } finally {
    await e.docker(['rm', '-f', 'uaa']);
  }
});

test('a daemon restart keeps the mapping: running containers, new ones, no second subordinate range', async () => {
  await e.ok(['run', '-d', '--name', 'ukeep', 'busybox', 'sleep', '300']);
  try {
    await e.d.restart();
    assert.equal(berthRange('/etc/subuid').length, 1);
    assert.equal(berthRange('/etc/subgid').length, 1);
    const map = await e.ok(['exec', 'ukeep', 'cat', '/proc/self/uid_map']);
    assert.deepEqual(map.trim().split(/\s+/), ['0', String(start), '65536']);
    await e.ok(['restart', '-t', '1', 'ukeep']);
    assert.deepEqual((await e.ok(['exec', 'ukeep', 'cat', '/proc/self/uid_map'])).trim().split(/\s+/), ['0', String(start), '65536']);
    assert.equal((await e.ok(['run', '--rm', 'busybox', 'stat', '-c', '%u', '/bin/busybox'])).trim(), '0');
  } finally {
    await e.docker(['rm', '-f', 'ukeep']);
  }
});

test('berthd refuses a remap user that does not exist, and a data root the remapped root cannot reach', async (t) => {
  // A daemon that fails to start leaves its temp dir: those of this test go afterwards.
  const tmp = os.tmpdir();
  const before = new Set(fs.readdirSync(tmp));
  t.after(() => {
    for (const n of fs.readdirSync(tmp)) if (!before.has(n) && /^berth-userns-(bad|blocked)-/.test(n)) fs.rmSync(path.join(tmp, n), { recursive: true, force: true });
  });
  await assert.rejects(startDaemon({ name: 'userns-bad', args: ['--userns-remap', 'no-such-user-here'] }).then(destroyDaemon), /Error during uid lookup for \\?"no-such-user-here/);
  // mkdtemp's 0700 dir above the roots blocks the remapped root.
  await assert.rejects(startDaemon({ name: 'userns-blocked', args: ['--userns-remap', 'default'] }).then(destroyDaemon), /restricts access to the remapped root uid\/gid/);
});
