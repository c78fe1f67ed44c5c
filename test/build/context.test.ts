// Receiving build contexts: plain and gzip tars, a bare Dockerfile, and hostile tars refused
// without writing outside the directory; COPY source resolution and checksums.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { makeTar } from '../archive/fixtures';
import { checksumTree, receiveContext, resolveInRoot, resolveSources } from '../../src/build/context';

function tmp(t: { after(fn: () => void): void }, what: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `berth-build-test-${what}-`));
  t.after(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

test('plain and gzip contexts extract with modes; a bare Dockerfile is stored as Dockerfile', async (t) => {
  const tarBuf = await makeTar([{ name: 'Dockerfile', body: 'FROM scratch\n' }, { name: 'dir/', mode: 0o750 }, { name: 'dir/run.sh', body: '#!/bin/sh\n', mode: 0o755 }, { name: 'link', type: 'symlink', linkname: 'dir/run.sh' }]);
  for (const body of [tarBuf, zlib.gzipSync(tarBuf)]) {
    const dir = tmp(t, 'ctx');
    const r = await receiveContext(Readable.from([body]), dir);
    assert.equal(r.dockerfileOnly, false);
    assert.equal(fs.readFileSync(path.join(dir, 'Dockerfile'), 'utf8'), 'FROM scratch\n');
    assert.equal(fs.statSync(path.join(dir, 'dir')).mode & 0o777, 0o750);
    assert.equal(fs.statSync(path.join(dir, 'dir/run.sh')).mode & 0o777, 0o755);
    assert.equal(fs.readlinkSync(path.join(dir, 'link')), 'dir/run.sh');
  }
  const dir = tmp(t, 'ctx');
  const r = await receiveContext(Readable.from([Buffer.from('FROM busybox\nCMD ["sh"]\n')]), dir);
  assert.equal(r.dockerfileOnly, true);
  assert.equal(fs.readFileSync(path.join(dir, 'Dockerfile'), 'utf8'), 'FROM busybox\nCMD ["sh"]\n');
});

test('hostile context tars are refused and leave nothing behind', async (t) => {
  const outside = tmp(t, 'outside');
  const cases: [string, Parameters<typeof makeTar>[0], RegExp][] = [
    ['dotdot', [{ name: '../escape', body: 'x' }], /escapes the context/],
    ['nested dotdot', [{ name: 'a/../../escape', body: 'x' }], /escapes the context/],
    ['absolute', [{ name: '/etc/evil', body: 'x' }], /absolute paths are not allowed/],
    ['through symlink', [{ name: 'l', type: 'symlink', linkname: outside }, { name: 'l/evil', body: 'x' }], /parent is not a directory/],
    ['hardlink outside', [{ name: 'h', type: 'link', linkname: '/etc/passwd' }], /absolute paths are not allowed/],
    ['hardlink to unknown', [{ name: 'h', type: 'link', linkname: 'nothere' }], /not a file of this context/],
  ];
  for (const [what, entries, re] of cases) {
    const dir = tmp(t, 'hostile');
    const body = await makeTar([{ name: 'ok', body: 'fine' }, ...entries]);
    await assert.rejects(receiveContext(Readable.from([body]), dir), (err: Error) => {
      assert.match(err.message, re, what);
      return true;
    });
    assert.deepEqual(fs.readdirSync(dir), [], `${what}: partial context removed`);
  }
  assert.deepEqual(fs.readdirSync(outside), []);
  const dir = tmp(t, 'corrupt');
  const good = zlib.gzipSync(await makeTar([{ name: 'a', body: randomBytes(20000) }]));
  await assert.rejects(receiveContext(Readable.from([good.subarray(0, good.length >> 1)]), dir), /build context/);
  assert.deepEqual(fs.readdirSync(dir), []);
});

test('sources: symlinks resolve inside the root, wildcards, docker errors', (t) => {
  const root = tmp(t, 'src');
  fs.mkdirSync(path.join(root, 'd/sub'), { recursive: true });
  fs.writeFileSync(path.join(root, 'd/a.txt'), 'a');
  fs.writeFileSync(path.join(root, 'd/b.txt'), 'b');
  fs.writeFileSync(path.join(root, 'd/sub/c.txt'), 'c');
  fs.symlinkSync('/d/a.txt', path.join(root, 'abs-link'));
  fs.symlinkSync('../../../../etc/passwd', path.join(root, 'escape-link'));
  assert.equal(resolveInRoot(root, 'abs-link'), path.join(root, 'd/a.txt'));
  assert.equal(resolveInRoot(root, 'escape-link'), path.join(root, 'etc/passwd'));
  assert.deepEqual(resolveSources(root, 'd/*.txt').map((s) => s.rel), ['d/a.txt', 'd/b.txt']);
  assert.equal(resolveSources(root, 'd')[0].isDir, true);
  assert.equal(resolveSources(root, 'abs-link')[0].abs, path.join(root, 'd/a.txt'));
  assert.throws(() => resolveSources(root, 'escape-link'), /file not found in build context or excluded by .dockerignore: stat escape-link: file does not exist/);
  assert.throws(() => resolveSources(root, '*.none'), /COPY failed: no source files were specified/);
  assert.throws(() => resolveSources(root, '../x'), /forbidden path outside the build context/);
  // Checksums: content and mode count, times do not.
  const before = checksumTree(path.join(root, 'd'));
  fs.utimesSync(path.join(root, 'd/a.txt'), new Date(0), new Date(0));
  assert.equal(checksumTree(path.join(root, 'd')), before);
  fs.writeFileSync(path.join(root, 'd/sub/c.txt'), 'C');
  assert.notEqual(checksumTree(path.join(root, 'd')), before);
  const c2 = checksumTree(path.join(root, 'd'));
  fs.chmodSync(path.join(root, 'd/b.txt'), 0o600);
  assert.notEqual(checksumTree(path.join(root, 'd')), c2);
});
