// extractToPath (the PUT side of docker cp) on a real directory standing in for a container root:
// overwrite rules, links planted in the "container", and directories an upload replaces.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { statusOf } from '../../src/common/errors';
import { extractToPath, type ContainerView } from '../../src/containers/archive';

function setup(t: { after: (fn: () => void) => void }): { dir: string; root: string; src: string; view: ContainerView } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cp-extract-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const root = path.join(dir, 'root');
  const src = path.join(dir, 'src');
  fs.mkdirSync(path.join(root, 'dst'), { recursive: true });
  fs.mkdirSync(src);
  return { dir, root, src, view: { root, mounts: [], ref: 'test' } };
}

/** A tar of names under src, made by GNU tar (as the docker CLI's would look). */
function tarOf(src: string, ...names: string[]): fs.ReadStream {
  const file = path.join(src, '..', `t-${Date.now()}-${Math.random()}.tar`);
  execFileSync('tar', ['-C', src, '-cf', file, ...names]);
  return fs.createReadStream(file);
}

const opts = { noOverwriteDirNonDir: false, copyUIDGID: false };

test('cp upload: new trees, then overwrites of files, symlinks and a file replaced by a directory', async (t) => {
  const { root, src, view } = setup(t);
  fs.mkdirSync(path.join(src, 'd/sub'), { recursive: true });
  fs.writeFileSync(path.join(src, 'd/sub/f'), 'one\n', { mode: 0o640 });
  fs.symlinkSync('/etc', path.join(src, 'd/l'));
  await extractToPath(view, '/dst', tarOf(src, 'd'), opts);
  assert.equal(fs.readFileSync(path.join(root, 'dst/d/sub/f'), 'utf8'), 'one\n');
  assert.equal(fs.statSync(path.join(root, 'dst/d/sub/f')).mode & 0o777, 0o640);
  assert.equal(fs.readlinkSync(path.join(root, 'dst/d/l')), '/etc');

  // Again, with changed content and types: files are replaced, a symlink is replaced (not
  // followed), and a file where the upload has a directory gives way to it.
  fs.writeFileSync(path.join(src, 'd/sub/f'), 'two\n');
  fs.rmSync(path.join(src, 'd/l'));
  fs.writeFileSync(path.join(src, 'd/l'), 'now a file\n');
  fs.writeFileSync(path.join(root, 'dst/d/x'), 'in the way');
  fs.mkdirSync(path.join(src, 'd/x'));
  fs.writeFileSync(path.join(src, 'd/x/inner'), 'inner\n');
  await extractToPath(view, '/dst', tarOf(src, 'd'), opts);
  assert.equal(fs.readFileSync(path.join(root, 'dst/d/sub/f'), 'utf8'), 'two\n');
  assert.equal(fs.lstatSync(path.join(root, 'dst/d/l')).isFile(), true);
  assert.equal(fs.readFileSync(path.join(root, 'dst/d/x/inner'), 'utf8'), 'inner\n');
  assert.notEqual(fs.readFileSync('/etc/hostname', 'utf8'), 'now a file\n');
});

test('cp upload: noOverwriteDirNonDir refuses a directory over a file', async (t) => {
  const { root, src, view } = setup(t);
  fs.mkdirSync(path.join(src, 'd'));
  fs.writeFileSync(path.join(src, 'd/f'), 'x');
  fs.writeFileSync(path.join(root, 'dst/d'), 'a file');
  await assert.rejects(extractToPath(view, '/dst', tarOf(src, 'd'), { ...opts, noOverwriteDirNonDir: true }), /cannot overwrite non-directory "\/dst\/d" with directory "d\/"/);
  assert.equal(fs.readFileSync(path.join(root, 'dst/d'), 'utf8'), 'a file');
});

test('cp upload: a symlink planted in the container is resolved inside its root', async (t) => {
  const { dir, root, src, view } = setup(t);
  const outside = path.join(dir, 'outside');
  fs.mkdirSync(outside);
  fs.mkdirSync(path.join(root, 'inside'));
  // A link to a real host directory: inside the container, that path means root + the path.
  fs.symlinkSync(outside, path.join(root, 'dst/evil'));
  fs.writeFileSync(path.join(src, 'h'), 'aimed at the host');
  await assert.rejects(extractToPath(view, '/dst/evil', tarOf(src, 'h'), opts), /Could not find the file \/dst\/evil/);
  assert.deepEqual(fs.readdirSync(outside), []);
  fs.mkdirSync(path.join(src, 'evil'));
  fs.writeFileSync(path.join(src, 'evil/f'), 'payload');
  // The upload's evil/ is a directory: it replaces the link; its file lands inside the root.
  await extractToPath(view, '/dst', tarOf(src, 'evil'), opts);
  assert.deepEqual(fs.readdirSync(outside), []);
  assert.equal(fs.readFileSync(path.join(root, 'dst/evil/f'), 'utf8'), 'payload');
  // Extracting *into* a path through the link: it resolves below the container root.
  fs.rmSync(path.join(root, 'dst/evil'), { recursive: true });
  fs.symlinkSync('/inside', path.join(root, 'dst/evil'));
  fs.writeFileSync(path.join(src, 'g'), 'through the link');
  await extractToPath(view, '/dst/evil', tarOf(src, 'g'), opts);
  assert.equal(fs.readFileSync(path.join(root, 'inside/g'), 'utf8'), 'through the link');
  assert.deepEqual(fs.readdirSync(outside), []);
});

test('cp upload: modes and times whatever the umask leaves, setuid bits, owners with copyUIDGID', async (t) => {
  const { root, src, view } = setup(t);
  const modes: Record<string, number> = { plain: 0o644, wide: 0o666, exec: 0o755, suid: 0o4755, sgid: 0o2711, none: 0o000 };
  for (const [name, mode] of Object.entries(modes)) {
    fs.writeFileSync(path.join(src, name), name);
    if (name === 'suid') fs.chownSync(path.join(src, name), 1234, 5678); // before the chmod: chown clears setuid
    fs.chmodSync(path.join(src, name), mode);
    fs.utimesSync(path.join(src, name), 1_000_000_000.5, 1_000_000_000.5);
  }
  // 0o666 and 0o000 are the cases the process umask (022) would change, were it left to open(2).
  await extractToPath(view, '/dst', tarOf(src, ...Object.keys(modes)), opts);
  for (const [name, mode] of Object.entries(modes)) {
    const st = fs.statSync(path.join(root, 'dst', name));
    assert.equal(st.mode & 0o7777, mode, name);
    assert.deepEqual([st.uid, st.gid], [0, 0], `${name}: owned by the container's root without copyUIDGID`);
    assert.equal(Math.floor(st.mtimeMs / 1000), 1_000_000_000, name);
  }
  await extractToPath(view, '/dst', tarOf(src, 'suid'), { ...opts, copyUIDGID: true });
  const st = fs.statSync(path.join(root, 'dst', 'suid'));
  assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [1234, 5678, 0o4755], 'chown first, then the setuid bit');
});

test('cp upload of several MiB: gzip, planted links, owners, then a tar cut by a bad member', async (t) => {
  const { dir, root, src, view } = setup(t);
  const outside = path.join(dir, 'outside');
  fs.mkdirSync(outside);
  fs.symlinkSync(outside, path.join(root, 'dst/esc'));
  fs.mkdirSync(path.join(src, 'esc'));
  // Entries after megabytes of body, the upload's pieces cut through headers and bodies.
  const big = Buffer.alloc(3 << 20, 7);
  fs.writeFileSync(path.join(src, 'a-big'), big);
  for (let i = 0; i < 50; i++) fs.writeFileSync(path.join(src, `b${i}`), `small ${i}\n`);
  fs.writeFileSync(path.join(src, 'esc/f'), 'payload');
  fs.writeFileSync(path.join(src, 'owned'), 'owned');
  fs.chownSync(path.join(src, 'owned'), 1234, 5678);
  fs.chmodSync(path.join(src, 'owned'), 0o4750);
  const file = path.join(dir, 'big.tar.gz');
  execFileSync('tar', ['-C', src, '-czf', file, '--sort=name', 'a-big', ...Array.from({ length: 50 }, (_, i) => `b${i}`), 'esc', 'owned']);
  await extractToPath(view, '/dst', fs.createReadStream(file), { ...opts, copyUIDGID: true });
  assert.deepEqual(fs.readFileSync(path.join(root, 'dst/a-big')), big);
  assert.equal(fs.readFileSync(path.join(root, 'dst/b49'), 'utf8'), 'small 49\n');
  // The upload's esc/ replaced the planted link: nothing reached the host directory.
  assert.deepEqual(fs.readdirSync(outside), []);
  assert.equal(fs.readFileSync(path.join(root, 'dst/esc/f'), 'utf8'), 'payload');
  const st = fs.statSync(path.join(root, 'dst/owned'));
  assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [1234, 5678, 0o4750]);

  // A member leaving the destination after 3 MiB: the upload fails as a bad request; what came
  // before it is on disk, nothing after it.
  const pack = tar.pack();
  pack.entry({ name: 'first', size: big.length }, big);
  pack.entry({ name: '../../../escaped' }, 'x');
  pack.entry({ name: 'after' }, 'y');
  pack.finalize();
  const err = await extractToPath(view, '/dst/esc', Readable.from(pack), opts).then(() => undefined, (e: unknown) => e);
  assert.match(String(err), /refusing to extract "..\/..\/..\/escaped"/);
  assert.equal(statusOf(err), 400);
  assert.deepEqual(fs.readFileSync(path.join(root, 'dst/esc/first')), big);
  assert.equal(fs.existsSync(path.join(root, 'dst/esc/after')), false);
  assert.equal(fs.existsSync(path.join(dir, 'escaped')), false);
  assert.equal(fs.existsSync(path.join(root, 'escaped')), false);
});
