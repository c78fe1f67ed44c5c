// Hostile layers: each must be refused with a clear message, write nothing outside the target,
// and leave the target empty (even the harmless entries that came before the bad one).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { applyLayer } from '../../src/archive/apply';
import { isKind } from '../../src/common/errors';
import { FixtureEntry, makeTar, tempDir, TestContext } from './fixtures';

interface Setup {
  base: string; // parent of target: "../x" from the target lands here
  target: string;
  sentinel: string; // a directory outside, that symlinks and absolute names point at
}

function setup(t: TestContext): Setup {
  const base = tempDir(t, 'hostile');
  const target = path.join(base, 'target');
  const sentinel = path.join(base, 'sentinel');
  fs.mkdirSync(target);
  fs.mkdirSync(sentinel);
  fs.writeFileSync(path.join(sentinel, 'precious'), 'do not touch');
  return { base, target, sentinel };
}

function snapshotOutside(s: Setup): string {
  const list = (d: string): string[] => fs.readdirSync(d, { recursive: true }).map(String).sort();
  return JSON.stringify({ base: fs.readdirSync(s.base).sort(), sentinel: list(s.sentinel), precious: fs.readFileSync(path.join(s.sentinel, 'precious'), 'utf8') });
}

async function expectRefused(t: TestContext, entries: (s: Setup) => FixtureEntry[], message: RegExp, extraCheck?: (s: Setup) => void): Promise<void> {
  const s = setup(t);
  const before = snapshotOutside(s);
  const layer = await makeTar([{ name: 'harmless/', mode: 0o755 }, { name: 'harmless/file', body: 'ok' }, ...entries(s)]);
  await assert.rejects(applyLayer(Readable.from([layer]), s.target), (err: unknown) => {
    assert.ok(isKind(err, 'InvalidParameter'), `InvalidParameter expected, got ${String(err)}`);
    assert.match((err as Error).message, message);
    return true;
  });
  assert.deepEqual(fs.readdirSync(s.target), [], 'target left empty');
  assert.equal(snapshotOutside(s), before, 'nothing written outside the target');
  extraCheck?.(s);
}

test('refuses a name with ".." (../escape)', async (t) => {
  await expectRefused(t, () => [{ name: '../escape', body: 'evil' }], /refusing to extract layer entry "\.\.\/escape": the name contains a "\.\." component/);
});

test('refuses ".." in the middle of a name (a/../../escape)', async (t) => {
  await expectRefused(t, () => [{ name: 'harmless/../../escape', body: 'evil' }], /"harmless\/\.\.\/\.\.\/escape".*"\.\."/);
});

test('refuses ".." hidden among "." and "//" components (./a/.//../../escape, a/..)', async (t) => {
  await expectRefused(t, () => [{ name: './a/.//../../escape', body: 'x' }], /"\.\." component/);
  await expectRefused(t, () => [{ name: 'harmless/..', body: 'x' }], /"\.\." component/);
  await expectRefused(t, () => [{ name: '..', type: 'directory' }], /"\.\." component/);
});

test('refuses an absolute name (/etc/evil)', async (t) => {
  await expectRefused(t, () => [{ name: '/etc/evil', body: 'evil' }], /"\/etc\/evil": the name is an absolute path/, () => {
    assert.equal(fs.existsSync('/etc/evil'), false);
  });
});

test('refuses an absolute name pointing at the sentinel', async (t) => {
  await expectRefused(t, (s) => [{ name: path.join(s.sentinel, 'evil'), body: 'evil' }], /absolute path/);
});

test('refuses writing through a symlink (a -> outside, then a/x)', async (t) => {
  await expectRefused(t, (s) => [
    { name: 'a', type: 'symlink', linkname: s.sentinel },
    { name: 'a/x', body: 'evil' },
  ], /"a\/x": its parent "a" is a symlink in this layer/);
});

test('refuses writing through a symlink that replaced a directory', async (t) => {
  await expectRefused(t, (s) => [
    { name: 'd/', mode: 0o755 },
    { name: 'd', type: 'symlink', linkname: s.sentinel },
    { name: 'd/sub/x', body: 'evil' },
  ], /"d\/sub\/x": its parent "d" is a symlink/);
});

test('refuses a directory entry through a relative symlink to the outside', async (t) => {
  await expectRefused(t, () => [
    { name: 'up', type: 'symlink', linkname: '../sentinel' },
    { name: 'up/newdir/', mode: 0o755 },
  ], /"up\/newdir\/": its parent "up" is a symlink/);
});

test('refuses a hardlink to an absolute path (/etc/passwd)', async (t) => {
  await expectRefused(t, () => [{ name: 'passwd', type: 'link', linkname: '/etc/passwd' }], /"passwd": the hardlink target is an absolute path/);
});

test('refuses a hardlink via ".."', async (t) => {
  await expectRefused(t, () => [{ name: 'p', type: 'link', linkname: '../sentinel/precious' }], /"p": the hardlink target contains a "\.\." component/);
});

test('refuses a hardlink through a symlink', async (t) => {
  await expectRefused(t, (s) => [
    { name: 'l', type: 'symlink', linkname: s.sentinel },
    { name: 'p', type: 'link', linkname: 'l/precious' },
  ], /"p": hardlink target "l\/precious" does not exist in this layer/);
});

test('refuses a hardlink to something not in this layer', async (t) => {
  await expectRefused(t, () => [{ name: 'p', type: 'link', linkname: 'etc/shadow' }], /"p": hardlink target "etc\/shadow" does not exist in this layer/);
});

test('refuses a hardlink whose target was removed by a later entry', async (t) => {
  await expectRefused(t, (s) => [
    { name: 'd/', mode: 0o755 },
    { name: 'd/f', body: 'f' },
    { name: 'd', type: 'symlink', linkname: s.sentinel },
    { name: 'p', type: 'link', linkname: 'd/f' },
  ], /"p": hardlink target "d\/f" does not exist in this layer/);
});

test('refuses a whiteout through a symlink', async (t) => {
  await expectRefused(t, (s) => [
    { name: 'l', type: 'symlink', linkname: s.sentinel },
    { name: 'l/.wh.precious', body: '' },
  ], /"l\/\.wh\.precious": its parent "l" is a symlink/);
});

test('refuses an opaque marker through a symlink', async (t) => {
  await expectRefused(t, (s) => [
    { name: 'l', type: 'symlink', linkname: s.sentinel },
    { name: 'l/.wh..wh..opq', body: '' },
  ], /its parent "l" is a symlink/);
});

test('a file entry replacing a symlink replaces the link, not its target', async (t) => {
  const s = setup(t);
  const layer = await makeTar([
    { name: 'f', type: 'symlink', linkname: path.join(s.sentinel, 'precious') },
    { name: 'f', body: 'replaced' },
  ]);
  await applyLayer(Readable.from([layer]), s.target);
  assert.equal(fs.readFileSync(path.join(s.sentinel, 'precious'), 'utf8'), 'do not touch');
  assert.ok(fs.lstatSync(path.join(s.target, 'f')).isFile());
  assert.equal(fs.readFileSync(path.join(s.target, 'f'), 'utf8'), 'replaced');
});
