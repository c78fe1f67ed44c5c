// docker load reading an archive whose configs come before their layers: the layers are
// extracted as they are read (one pass), the result is the same image, and a bad layer on that
// path leaves no blob and no snapshot behind. The legacy layout (layers first) is extracted
// ahead of its config and the trees put in place afterwards: the same checks apply.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { api, destroyDaemon, docker, startDaemon, type TestDaemon } from '../helpers/daemon';
import { tarNames } from '../containers/fixtures';
import { makeTar } from './fixtures';

let d: TestDaemon;
before(async () => { d = await startDaemon({ name: 'imgload' }); });
after(async () => { await destroyDaemon(d); });

const sha256 = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A docker-save style archive: blobs (config first, then layers in order), then manifest.json. */
async function archive(tag: string, layers: Buffer[]): Promise<{ tar: Buffer; id: string }> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: layers.map((l) => sha256(l)) } }));
  const id = sha256(config);
  const blob = (b: Buffer) => ({ name: `blobs/sha256/${sha256(b).slice(7)}`, data: b });
  const manifest = [{ Config: blob(config).name, RepoTags: [tag], Layers: layers.map((l) => blob(l).name) }];
  const tar = await makeTar([blob(config), ...layers.map(blob), { name: 'manifest.json', data: JSON.stringify(manifest) }]);
  return { tar, id };
}

const snapshots = (): string[] => fs.readdirSync(path.join(d.dataRoot, 'overlay2', 'snapshots')).sort();
const blobs = (): string[] => fs.readdirSync(path.join(d.dataRoot, 'content', 'blobs', 'sha256')).sort();

test('layers after their config load in one pass and give the image and its files', async () => {
  const base = randomBytes(3 << 20);
  const l1 = await makeTar([{ name: 'etc/base.bin', data: base }]);
  const l2 = await makeTar([{ name: 'etc/top.bin', data: randomBytes(2 << 20) }, { name: 'etc/.wh.base.bin', data: '' }]);
  const { tar, id } = await archive('onepass:v1', [l1, l2]);
  const r = await api(d.socket, 'POST', '/images/load', tar);
  assert.equal(r.status, 200, r.body.toString());
  assert.match(r.body.toString(), /Loaded image: onepass:v1/);
  assert.equal((await docker(d, ['image', 'inspect', 'onepass:v1', '--format', '{{.Id}}'])).stdout.trim(), id);
  const out = await docker(d, ['save', 'onepass:v1', '-o', path.join(d.dir, 'back.tar')]);
  assert.equal(out.code, 0, out.stderr);
  // What was extracted is the layer's content: the stored blob is byte-identical too.
  assert.ok(blobs().includes(sha256(l1).slice(7)) && blobs().includes(sha256(l2).slice(7)));
  assert.ok(!snapshots().some((s) => s.includes('extract-')));
  assert.equal((await docker(d, ['rmi', 'onepass:v1'])).code, 0);
});

test('a hostile layer on the one-pass path is a 400 and leaves nothing', async () => {
  const blobsBefore = blobs();
  const snapsBefore = snapshots();
  const bad = await makeTar([{ name: 'pad.bin', data: randomBytes(2 << 20) }, { name: '../../escape', data: 'x' }]);
  const { tar } = await archive('hostile:v1', [bad]);
  const r = await api(d.socket, 'POST', '/images/load', tar);
  assert.equal(r.status, 400, r.body.toString());
  assert.deepEqual(blobs(), blobsBefore);
  assert.deepEqual(snapshots(), snapsBefore);
  assert.equal((await docker(d, ['images', '-q', '--filter', 'reference=hostile*'])).stdout.trim(), '');
});

/** The legacy `docker save` layout: <dir>/layer.tar files first, then the config, then manifest.json. */
async function legacyArchive(tag: string, layers: Buffer[]): Promise<{ tar: Buffer; id: string }> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: layers.map((l) => sha256(l)) } }));
  const id = sha256(config);
  const names = layers.map((l) => `${sha256(l).slice(7, 19)}/layer.tar`);
  const manifest = [{ Config: `${id.slice(7)}.json`, RepoTags: [tag], Layers: names }];
  const tar = await makeTar([...layers.map((l, i) => ({ name: names[i], data: l })), { name: `${id.slice(7)}.json`, data: config }, { name: 'manifest.json', data: JSON.stringify(manifest) }]);
  return { tar, id };
}

test('legacy layers (before their config) are extracted ahead and put on the right parents', async () => {
  const snapsBefore = snapshots();
  const l1 = await makeTar([{ name: 'etc/base.bin', data: randomBytes(3 << 20) }, { name: 'etc/keep', data: 'kept\n' }]);
  const l2 = await makeTar([{ name: 'etc/top.bin', data: randomBytes(2 << 20) }, { name: 'etc/.wh.base.bin', data: '' }]);
  const { tar, id } = await legacyArchive('legacy:v1', [l1, l2]);
  const r = await api(d.socket, 'POST', '/images/load', tar);
  assert.equal(r.status, 200, r.body.toString());
  assert.equal((await docker(d, ['image', 'inspect', 'legacy:v1', '--format', '{{.Id}}'])).stdout.trim(), id);
  // Two committed layers, and no snapshot left from extracting ahead.
  assert.equal(snapshots().length, snapsBefore.length + 2);
  // The container's view: both layers, the lower one's file hidden by the upper one's whiteout.
  assert.equal((await docker(d, ['create', '--name', 'legacy1', 'legacy:v1', 'true'])).code, 0);
  const out = await docker(d, ['cp', 'legacy1:/etc', '-']);
  assert.equal(out.code, 0, out.stderr);
  // (hostname, hosts and resolv.conf are the image's init layer, which its containers share.)
  assert.deepEqual((await tarNames(out.stdoutBuf)).sort(), ['etc', 'etc/hostname', 'etc/hosts', 'etc/keep', 'etc/resolv.conf', 'etc/top.bin']);
  assert.equal((await docker(d, ['rm', 'legacy1'])).code, 0);
  // The same bottom layer in a second image: already committed, nothing extracted twice.
  const again = await legacyArchive('legacy:v2', [l1]);
  assert.equal((await api(d.socket, 'POST', '/images/load', again.tar)).status, 200);
  // The two layers, and the init layer legacy:v1's containers share (it goes with the image).
  assert.equal(snapshots().length, snapsBefore.length + 3);
  assert.equal((await docker(d, ['rmi', 'legacy:v1', 'legacy:v2'])).code, 0);
  assert.deepEqual(snapshots(), snapsBefore);
});

test('a hostile legacy layer is a 400 and leaves nothing', async () => {
  const blobsBefore = blobs();
  const snapsBefore = snapshots();
  const bad = await makeTar([{ name: 'pad.bin', data: randomBytes(2 << 20) }, { name: '../../escape', data: 'x' }]);
  const { tar } = await legacyArchive('hostile-legacy:v1', [bad]);
  const r = await api(d.socket, 'POST', '/images/load', tar);
  assert.equal(r.status, 400, r.body.toString());
  assert.deepEqual(blobs(), blobsBefore);
  assert.deepEqual(snapshots(), snapsBefore);
  assert.ok(!fs.existsSync(path.join(d.dataRoot, '..', 'escape')));
});

// The outer archive is read by our own tar reader (archive/entry-stream.ts): a malformed or cut
// archive is the client's fault, and whatever the load had stored or extracted goes.

test('an outer archive cut inside a legacy layer is a 400 and leaves nothing', async () => {
  const blobsBefore = blobs();
  const snapsBefore = snapshots();
  const layer = await makeTar([{ name: 'big.bin', data: randomBytes(4 << 20) }, { name: 'etc/x', data: 'x' }]);
  const { tar } = await legacyArchive('cut-legacy:v1', [layer]);
  const r = await api(d.socket, 'POST', '/images/load', tar.subarray(0, 3 << 20));
  assert.equal(r.status, 400, r.body.toString());
  assert.match(r.body.toString(), /unexpected end of tar data/);
  assert.deepEqual(blobs(), blobsBefore);
  assert.deepEqual(snapshots(), snapsBefore);
});

test('a corrupt header after a layer is a 400 and leaves nothing', async () => {
  const blobsBefore = blobs();
  const snapsBefore = snapshots();
  const layer = await makeTar([{ name: 'etc/y', data: randomBytes(1 << 20) }]);
  const { tar } = await legacyArchive('corrupt:v1', [layer]);
  // The entry after the layer (its config) gets a header that fails its checksum.
  const corrupt = Buffer.from(tar);
  const configHeader = 512 + Math.ceil(layer.length / 512) * 512;
  corrupt[configHeader + 10] ^= 0xff;
  const r = await api(d.socket, 'POST', '/images/load', corrupt);
  assert.equal(r.status, 400, r.body.toString());
  assert.match(r.body.toString(), /invalid tar archive/);
  assert.deepEqual(blobs(), blobsBefore);
  assert.deepEqual(snapshots(), snapsBefore);
});

test('a layer whose content is not the digest it is named by is a 400 and leaves nothing', async () => {
  const blobsBefore = blobs();
  const snapsBefore = snapshots();
  const real = await makeTar([{ name: 'etc/z', data: randomBytes(2 << 20) }]);
  const other = await makeTar([{ name: 'etc/z', data: randomBytes(2 << 20) }]);
  // The config names real's diffID, and the blob is stored under that name, but holds other.
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [sha256(real)] } }));
  const name = (b: Buffer): string => `blobs/sha256/${sha256(b).slice(7)}`;
  const manifest = [{ Config: name(config), RepoTags: ['lying:v1'], Layers: [name(real)] }];
  const tar = await makeTar([{ name: name(config), data: config }, { name: name(real), data: other }, { name: 'manifest.json', data: JSON.stringify(manifest) }]);
  const r = await api(d.socket, 'POST', '/images/load', tar);
  assert.equal(r.status, 400, r.body.toString());
  assert.match(r.body.toString(), /has digest/);
  assert.deepEqual(blobs(), blobsBefore);
  assert.deepEqual(snapshots(), snapsBefore);
});

test('a gzip-compressed archive loads', async () => {
  const layer = await makeTar([{ name: 'etc/gz', data: randomBytes(2 << 20) }]);
  const { tar, id } = await legacyArchive('gz:v1', [layer]);
  const r = await api(d.socket, 'POST', '/images/load', gzipSync(tar));
  assert.equal(r.status, 200, r.body.toString());
  assert.equal((await docker(d, ['image', 'inspect', 'gz:v1', '--format', '{{.Id}}'])).stdout.trim(), id);
  assert.equal((await docker(d, ['rmi', 'gz:v1'])).code, 0);
});
