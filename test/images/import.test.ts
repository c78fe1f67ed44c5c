// docker import in one pass (store and extract at once): compressed and plain imports of the
// same tree give the same layer and share its snapshot; a corrupt or aborted upload leaves no
// blob, ingest or snapshot behind.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { api, destroyDaemon, startDaemon, type TestDaemon } from '../helpers/daemon';
import { makeTar } from './fixtures';

let d: TestDaemon;
before(async () => { d = await startDaemon({ name: 'images-import' }); });
after(async () => { await destroyDaemon(d); });

const listing = (): Record<string, string[]> => ({
  blobs: fs.readdirSync(path.join(d.dataRoot, 'content', 'blobs', 'sha256')).sort(),
  ingest: fs.readdirSync(path.join(d.dataRoot, 'content', 'ingest')).sort(),
  snapshots: fs.readdirSync(path.join(d.dataRoot, 'overlay2', 'snapshots')).sort(),
});

async function importBody(body: Buffer, repo: string): Promise<{ id: string; layers: string[] }> {
  const r = await api(d.socket, 'POST', `/images/create?fromSrc=-&repo=${repo}`, body);
  assert.equal(r.status, 200, r.body.toString());
  const id = (JSON.parse(r.body.toString().trim().split('\n').pop()!) as { status: string }).status;
  const inspect = await api(d.socket, 'GET', `/images/${id}/json`);
  assert.equal(inspect.status, 200);
  return { id, layers: inspect.json<{ RootFS: { Layers: string[] } }>().RootFS.Layers };
}

test('plain, gzip and repeated imports of one tree give one layer and one snapshot', async () => {
  const tarball = await makeTar([
    { name: 'etc/', type: 'directory' },
    { name: 'etc/os-release', data: 'ID=berth\n' },
    { name: 'bin/tool', data: Buffer.alloc(300_000, 9), mode: 0o755 },
  ]);
  const before = listing();
  const plain = await importBody(tarball, 'single-pass/plain');
  const gz = await importBody(zlib.gzipSync(tarball), 'single-pass/gzip');
  const again = await importBody(tarball, 'single-pass/again');
  assert.equal(plain.layers.length, 1);
  assert.deepEqual(gz.layers, plain.layers, 'the diffID is the uncompressed tar\'s');
  assert.deepEqual(again.layers, plain.layers);
  const now = listing();
  // One snapshot for the shared layer: the later imports' extractions were surplus and removed.
  assert.equal(now.snapshots.filter((s) => !before.snapshots.includes(s)).length, 1, JSON.stringify(now.snapshots));
  assert.deepEqual(now.ingest, before.ingest, 'no ingest left over');
  const snapshot = now.snapshots.find((s) => !before.snapshots.includes(s))!;
  const fsDir = path.join(d.dataRoot, 'overlay2', 'snapshots', snapshot, 'fs');
  assert.equal(fs.readFileSync(path.join(fsDir, 'etc/os-release'), 'utf8'), 'ID=berth\n');
  assert.equal(fs.statSync(path.join(fsDir, 'bin/tool')).mode & 0o777, 0o755);
  for (const name of ['single-pass/plain', 'single-pass/gzip', 'single-pass/again']) {
    assert.equal((await api(d.socket, 'DELETE', `/images/${name}`)).status, 200);
  }
  assert.deepEqual(listing(), before, 'removing the images removes blobs and the snapshot');
});

test('a corrupt gzip import is a 400 and leaves nothing', async () => {
  const tarball = await makeTar([{ name: 'a', data: 'a'.repeat(100_000) }]);
  const gz = zlib.gzipSync(tarball);
  const before = listing();
  const r = await api(d.socket, 'POST', '/images/create?fromSrc=-&repo=broken', Buffer.concat([gz.subarray(0, gz.length - 30), Buffer.alloc(30, 0x55)]));
  assert.equal(r.status, 400, r.body.toString());
  assert.deepEqual(listing(), before);
});

test('an upload aborted by the client leaves no blob, ingest or snapshot behind', async () => {
  const tarball = await makeTar([{ name: 'big', data: Buffer.alloc(2 << 20, 1) }]);
  const before = listing();
  await new Promise<void>((resolve) => {
    const req = http.request({ socketPath: d.socket, path: '/images/create?fromSrc=-&repo=aborted', method: 'POST', headers: { 'Content-Length': String(tarball.length) } });
    req.on('error', () => resolve());
    req.write(tarball.subarray(0, 1 << 20), () => setTimeout(() => { req.destroy(); resolve(); }, 200));
  });
  // The daemon notices the closed connection and cleans up; give it a moment.
  const deadline = Date.now() + 5000;
  while (JSON.stringify(listing()) !== JSON.stringify(before) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(listing(), before);
  assert.equal((await api(d.socket, 'GET', '/images/json')).json<unknown[]>().length, 0);
});
