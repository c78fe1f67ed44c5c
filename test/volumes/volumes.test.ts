// Volumes, bind mounts and tmpfs with the real docker CLI against a real berthd: volume
// create/ls/inspect/rm/prune, data shared between containers and across a daemon restart,
// in-use refusal, binds of a temp host dir, :ro, tmpfs, copy-up, --volumes-from, --read-only.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tar from 'tar-stream';
import { api } from '../helpers/daemon';
import { setupDaemon, type CtrEnv } from '../containers/fixtures';

let env: CtrEnv;
let hostDir: string;

async function dataImage(e: CtrEnv): Promise<void> {
  // busybox plus /data (owned 1:1, mode 0750) holding a file: the copy-up source.
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c) => {
    chunks.push(c as Buffer);
  });
  const done = new Promise<void>((r) => pack.on('end', () => r()));
  pack.entry({ name: 'data', type: 'directory', mode: 0o750, uid: 1, gid: 1 });
  pack.entry({ name: 'data/seed.txt', mode: 0o640, uid: 1, gid: 1 }, 'from-image\n');
  pack.finalize();
  await done;
  // Build on busybox with a container: copy the layer in with cp, then commit with VOLUME.
  const c = await e.docker(['create', 'busybox', 'true']);
  assert.equal(c.code, 0, c.stderr);
  const id = c.stdout.trim();
  const put = await api(e.d.socket, 'PUT', `/containers/${id}/archive?path=/&copyUIDGID=1`, Buffer.concat(chunks), { 'Content-Type': 'application/x-tar' });
  assert.equal(put.status, 200, put.body.toString());
  const commit = await e.docker(['commit', '--change', 'VOLUME /data', id, 'dataimg']);
  assert.equal(commit.code, 0, commit.stderr);
  await e.docker(['rm', id]);
}

before(async () => {
  env = await setupDaemon('volumes');
  hostDir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-volumes-host-'));
});
after(async () => {
  await env?.cleanup();
  if (hostDir) fs.rmSync(hostDir, { recursive: true, force: true });
});

describe('docker volume commands', () => {
  it('create, ls with filters, inspect, rm, prune', async () => {
    const dk = env.docker;
    assert.equal((await dk(['volume', 'create', '--label', 'team=a', 'vol-a'])).stdout.trim(), 'vol-a');
    assert.equal((await dk(['volume', 'create', 'vol-b'])).code, 0);
    const ins = JSON.parse((await dk(['volume', 'inspect', 'vol-a'])).stdout) as { Name: string; Driver: string; Mountpoint: string; Labels: Record<string, string>; Scope: string }[];
    assert.equal(ins[0].Name, 'vol-a');
    assert.equal(ins[0].Driver, 'local');
    assert.equal(ins[0].Scope, 'local');
    assert.deepEqual(ins[0].Labels, { team: 'a' });
    assert.equal(ins[0].Mountpoint, path.join(env.d.dataRoot, 'volumes', 'vol-a', '_data'));
    assert.ok(fs.statSync(ins[0].Mountpoint).isDirectory());
    const byLabel = await dk(['volume', 'ls', '-q', '--filter', 'label=team=a']);
    assert.deepEqual(byLabel.stdout.trim().split('\n'), ['vol-a']);
    const byName = await dk(['volume', 'ls', '-q', '--filter', 'name=vol-b']);
    assert.deepEqual(byName.stdout.trim().split('\n'), ['vol-b']);
    const dangling = await dk(['volume', 'ls', '-q', '--filter', 'dangling=true']);
    assert.ok(dangling.stdout.includes('vol-a') && dangling.stdout.includes('vol-b'));
    const bad = await dk(['volume', 'create', 'x!']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /includes invalid characters for a local volume name/);
    const missing = await dk(['volume', 'inspect', 'nope']);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /no such volume/);

    // prune: anonymous only by default; all=true for named ones.
    const anon = await api(env.d.socket, 'POST', '/volumes/create', {});
    assert.equal(anon.status, 201);
    const anonName = anon.json<{ Name: string }>().Name;
    const pruned = await dk(['volume', 'prune', '-f']);
    assert.equal(pruned.code, 0, pruned.stderr);
    assert.match(pruned.stdout, new RegExp(anonName));
    assert.equal((await dk(['volume', 'inspect', 'vol-a'])).code, 0);
    const all = await dk(['volume', 'prune', '-f', '--all', '--filter', 'label=team=a']);
    assert.equal(all.code, 0, all.stderr);
    assert.notEqual((await dk(['volume', 'inspect', 'vol-a'])).code, 0);
    assert.equal((await dk(['volume', 'rm', 'vol-b'])).code, 0);
    assert.equal(fs.existsSync(path.join(env.d.dataRoot, 'volumes', 'vol-b')), false);
  });
});

describe('container mounts', () => {
  it('a named volume is shared between containers, refuses rm while used, and survives a daemon restart', async () => {
    const dk = env.docker;
    const w = await dk(['run', '--name', 'writer', '-v', 'shared:/d', 'busybox', 'sh', '-c', 'echo hi > /d/f']);
    assert.equal(w.code, 0, w.stderr);
    const r = await dk(['run', '--rm', '-v', 'shared:/d', 'busybox', 'cat', '/d/f']);
    assert.equal(r.stdout, 'hi\n', r.stderr);
    const ins = JSON.parse((await dk(['inspect', 'writer'])).stdout) as { Mounts: { Type: string; Name: string; Destination: string; RW: boolean; Driver: string }[] }[];
    assert.deepEqual(ins[0].Mounts.map((m) => [m.Type, m.Name, m.Destination, m.RW, m.Driver]), [['volume', 'shared', '/d', true, 'local']]);
    const rm = await dk(['volume', 'rm', 'shared']);
    assert.notEqual(rm.code, 0);
    assert.match(rm.stderr, /volume is in use - \[[0-9a-f]{64}\]/);
    const raw = await api(env.d.socket, 'DELETE', '/volumes/shared');
    assert.equal(raw.status, 409);
    await env.d.restart();
    const again = await dk(['run', '--rm', '-v', 'shared:/d', 'busybox', 'cat', '/d/f']);
    assert.equal(again.stdout, 'hi\n', again.stderr);
    assert.equal((await dk(['rm', 'writer'])).code, 0);
    assert.equal((await dk(['volume', 'rm', 'shared'])).code, 0);
  });

  it('a tmpfs volume mounted by a container that outlives a daemon restart stays shared, and its last user unmounts it', async () => {
    const dk = env.docker;
    assert.equal((await dk(['volume', 'create', '-o', 'type=tmpfs', '-o', 'device=tmpfs', 'tvol'])).code, 0);
    const data = path.join(env.d.dataRoot, 'volumes', 'tvol', '_data');
    const a = await dk(['run', '-d', '--name', 'tholder', '-v', 'tvol:/t', 'busybox', 'sh', '-c', 'echo live > /t/f; exec sleep 300']);
    assert.equal(a.code, 0, a.stderr);
    const mounted = (): boolean => fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === data);
    assert.equal(mounted(), true);
    await env.d.restart();
    // A new user after the restart joins the live tmpfs instead of mounting a fresh, empty one.
    const b = await dk(['run', '--rm', '-v', 'tvol:/t', 'busybox', 'cat', '/t/f']);
    assert.equal(b.stdout, 'live\n', b.stderr);
    assert.equal(mounted(), true, 'the holder still runs: the volume stays mounted');
    assert.equal((await dk(['rm', '-f', 'tholder'])).code, 0);
    assert.equal(mounted(), false, 'the last user gone: unmounted');
    assert.equal((await dk(['volume', 'rm', 'tvol'])).code, 0);
  });

  it('binds a host directory (created when missing), and :ro is enforced', async () => {
    const dk = env.docker;
    const tables = path.join(hostDir, 'var', 'db', 'tables');
    const w = await dk(['run', '--rm', '-v', `${tables}:/var/data1`, 'busybox', 'sh', '-c', 'echo row > /var/data1/t1']);
    assert.equal(w.code, 0, w.stderr);
    assert.equal(fs.readFileSync(path.join(tables, 't1'), 'utf8'), 'row\n');
    const ro = await dk(['run', '--rm', '-v', `${tables}:/var/data1:ro`, 'busybox', 'sh', '-c', 'cat /var/data1/t1; echo x > /var/data1/t2']);
    assert.notEqual(ro.code, 0);
    assert.equal(ro.stdout, 'row\n');
    assert.match(ro.stderr, /Read-only file system/);
    const missing = await dk(['run', '--rm', '--mount', 'type=bind,source=/nonexistent-berth-x,target=/x', 'busybox', 'true']);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /invalid mount config for type "bind": bind source path does not exist: \/nonexistent-berth-x/);
  });

  it('mounts tmpfs (--tmpfs and --mount type=tmpfs)', async () => {
    const r = await env.docker(['run', '--rm', '--tmpfs', '/scratch:size=1m', '--mount', 'type=tmpfs,target=/t2,tmpfs-mode=1770', 'busybox', 'sh', '-c', 'grep -E " /(scratch|t2) " /proc/mounts; stat -c %a /t2']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /tmpfs \/scratch tmpfs [^ ]*size=1024k/);
    assert.match(r.stdout, /tmpfs \/t2 tmpfs/);
    assert.match(r.stdout, /1770/);
  });

  it('copies image content into a new volume (ownership and modes), not with nocopy; rm -v removes anonymous volumes', async () => {
    await dataImage(env);
    const dk = env.docker;
    const r = await dk(['run', '--name', 'cu', 'dataimg', 'sh', '-c', 'cat /data/seed.txt; stat -c "%u:%g %a" /data /data/seed.txt']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'from-image\n1:1 750\n1:1 640\n');
    const ins = JSON.parse((await dk(['inspect', 'cu'])).stdout) as { Mounts: { Name: string; Type: string }[] }[];
    const anon = ins[0].Mounts[0].Name;
    assert.match(anon, /^[0-9a-f]{64}$/);
    const named = await dk(['run', '--rm', '-v', 'cuvol:/data', 'dataimg', 'cat', '/data/seed.txt']);
    assert.equal(named.stdout, 'from-image\n', named.stderr);
    const nocopy = await dk(['run', '--rm', '-v', 'emptyvol:/data:nocopy', 'dataimg', 'ls', '-A', '/data']);
    assert.equal(nocopy.code, 0, nocopy.stderr);
    assert.equal(nocopy.stdout, '');
    assert.equal((await dk(['rm', '-v', 'cu'])).code, 0);
    assert.notEqual((await dk(['volume', 'inspect', anon])).code, 0, 'anonymous volume removed by rm -v');
    assert.equal((await dk(['volume', 'inspect', 'cuvol'])).code, 0, 'named volume kept');
  });

  it('--volumes-from and --read-only with writable volumes', async () => {
    const dk = env.docker;
    const src = await dk(['create', '--name', 'vsrc', '-v', 'vf:/shared', '-v', '/anon', 'busybox', 'true']);
    assert.equal(src.code, 0, src.stderr);
    const r = await dk(['run', '--rm', '--volumes-from', 'vsrc', '--read-only', 'busybox', 'sh', '-c', 'echo a > /shared/a && echo b > /anon/b && cat /shared/a /anon/b; touch /rootfile']);
    assert.notEqual(r.code, 0);
    assert.equal(r.stdout, 'a\nb\n');
    assert.match(r.stderr, /Read-only file system/);
    const ro = await dk(['run', '--rm', '--volumes-from', 'vsrc:ro', 'busybox', 'sh', '-c', 'cat /shared/a; touch /shared/x']);
    assert.notEqual(ro.code, 0);
    assert.equal(ro.stdout, 'a\n');
    await dk(['rm', '-v', 'vsrc']);
  });
});
