// Unpacking image layers into chain-ID snapshots: sharing, verification, concurrency.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { createHash } from 'node:crypto';
import { ContentStore, Provider, ReadRange } from '../../src/content/store';
import { OverlaySnapshotter } from '../../src/snapshots/overlay';
import { mountAll, unmountAll } from '../../src/snapshots/mount';
import { chainIDs, LayerDescriptor, unpackLayers } from '../../src/images/unpack';
import { isKind } from '../../src/common/errors';
import { makeTar, sha256 } from '../archive/fixtures';

const GZIP_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

interface Env { content: ContentStore; sn: OverlaySnapshotter; base: string; reads: Map<string, number>; counted: Provider }

function setup(t: { after(fn: () => void): void }): Env {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-storage-test-unpack-'));
  const content = new ContentStore(path.join(base, 'content'));
  const sn = new OverlaySnapshotter(path.join(base, 'snapshots'));
  const mounted: string[] = [];
  t.after(() => {
    for (const m of mounted) unmountAll(m, 2);
    sn.close();
    fs.rmSync(base, { recursive: true, force: true });
  });
  // A provider that counts blob reads: how the tests see whether a layer was extracted.
  const reads = new Map<string, number>();
  const counted: Provider = {
    info: (d) => content.info(d),
    blobPath: (d) => content.blobPath(d),
    readBlob: (d) => content.readBlob(d),
    createReadStream: (d: string, r?: ReadRange) => {
      reads.set(d, (reads.get(d) ?? 0) + 1);
      return content.createReadStream(d, r);
    },
  };
  return { content, sn, base, reads, counted };
}

async function layer(env: Env, files: Record<string, string>, compress = true): Promise<LayerDescriptor> {
  const tarball = await makeTar(Object.entries(files).map(([name, body]) => ({ name, body })));
  const blob = compress ? zlib.gzipSync(tarball) : tarball;
  const digest = await env.content.writeBlob(blob);
  return { digest, diffID: sha256(tarball), mediaType: GZIP_LAYER, size: blob.length };
}

test('chainIDs follows the OCI definition', () => {
  const d = (c: string): string => `sha256:${c.repeat(64)}`;
  const [c0, c1, c2] = chainIDs([d('a'), d('b'), d('c')]);
  assert.equal(c0, d('a'));
  assert.equal(c1, `sha256:${createHash('sha256').update(`${d('a')} ${d('b')}`).digest('hex')}`);
  assert.equal(c2, `sha256:${createHash('sha256').update(`${c1} ${d('c')}`).digest('hex')}`);
  assert.throws(() => chainIDs(['nope']), (err: unknown) => isKind(err, 'InvalidParameter'));
});

test('images sharing a base layer share its snapshot; it is extracted once', async (t) => {
  const env = setup(t);
  const baseLayer = await layer(env, { 'etc/os-release': 'berth-test', 'bin/tool': 'v1' });
  const app1 = await layer(env, { 'app/one': '1', 'bin/tool': 'v2' });
  const app2 = await layer(env, { 'app/two': '2' }, false);

  const ids1 = await unpackLayers([baseLayer, app1], env.counted, env.sn);
  assert.deepEqual(ids1, chainIDs([baseLayer.diffID, app1.diffID]));
  const ids2 = await unpackLayers([baseLayer, app2], env.counted, env.sn);
  assert.equal(ids2[0], ids1[0]);
  assert.equal(env.reads.get(baseLayer.digest), 1, 'base layer extracted once');
  assert.equal(env.reads.get(app1.digest), 1);
  assert.equal(env.reads.get(app2.digest), 1);

  // Unpacking again is a no-op.
  await unpackLayers([baseLayer, app1], env.counted, env.sn);
  assert.equal(env.reads.get(baseLayer.digest), 1);

  assert.deepEqual(env.sn.walk().map((i) => [i.name, i.kind, i.parent ?? null]).sort(), [
    [ids1[0], 'committed', null],
    [ids1[1], 'committed', ids1[0]],
    [ids2[1], 'committed', ids1[0]],
  ].sort());

  // A container rootfs on image 2 sees base + app2 only.
  const mounts = env.sn.prepare('container-1', ids2[1]);
  const m = path.join(env.base, 'rootfs');
  fs.mkdirSync(m);
  mountAll(mounts, m);
  try {
    assert.deepEqual(fs.readdirSync(path.join(m, 'app')), ['two']);
    assert.equal(fs.readFileSync(path.join(m, 'bin/tool'), 'utf8'), 'v1');
    assert.equal(fs.readFileSync(path.join(m, 'etc/os-release'), 'utf8'), 'berth-test');
  } finally {
    unmountAll(m);
  }
  const m1 = env.sn.view('view-1', ids1[1]);
  const mv = path.join(env.base, 'view');
  fs.mkdirSync(mv);
  mountAll(m1, mv);
  try {
    assert.equal(fs.readFileSync(path.join(mv, 'bin/tool'), 'utf8'), 'v2');
    assert.deepEqual(fs.readdirSync(path.join(mv, 'app')), ['one']);
  } finally {
    unmountAll(mv);
  }
});

test('a diffID mismatch fails the unpack and leaves no snapshot behind', async (t) => {
  const env = setup(t);
  const good = await layer(env, { a: 'a' });
  const lying = { ...(await layer(env, { b: 'b' })), diffID: good.diffID.replace(/.$/, (c) => (c === '0' ? '1' : '0')) };
  await assert.rejects(unpackLayers([good, lying], env.counted, env.sn), (err: unknown) => isKind(err, 'InvalidParameter') && /diffID/.test((err as Error).message));
  assert.deepEqual(env.sn.walk().map((i) => i.name), [good.diffID], 'only the good layer is committed');

  // A corrupt blob: the tar error also removes the active snapshot.
  const digest = await env.content.writeBlob(Buffer.concat([zlib.gzipSync(Buffer.alloc(10)).subarray(0, 15), Buffer.from('junkjunkjunk')]));
  await assert.rejects(unpackLayers([good, { digest, diffID: sha256(Buffer.from('not this layer')), mediaType: GZIP_LAYER, size: 1 }], env.counted, env.sn));
  assert.deepEqual(env.sn.walk().map((i) => i.name), [good.diffID]);
  assert.equal(fs.readdirSync(path.join(env.base, 'snapshots', 'snapshots')).length, 1);
});

test('concurrent unpacks of the same image are safe and extract each layer once', async (t) => {
  const env = setup(t);
  const l0 = await layer(env, { 'big/file': 'z'.repeat(2_000_000) });
  const l1 = await layer(env, { 'top/file': 'top' });
  const results = await Promise.all([
    unpackLayers([l0, l1], env.counted, env.sn),
    unpackLayers([l0, l1], env.counted, env.sn),
    unpackLayers([l0], env.counted, env.sn),
  ]);
  assert.deepEqual(results[0], results[1]);
  assert.equal(results[2][0], results[0][0]);
  assert.equal(env.reads.get(l0.digest), 1);
  assert.equal(env.reads.get(l1.digest), 1);
  assert.equal(env.sn.walk().length, 2);
});

test('a chain committed by someone else meanwhile is tolerated', async (t) => {
  const env = setup(t);
  const l0 = await layer(env, { f: 'f' });
  // A second snapshotter instance (standing in for another unpacker) commits the chain while
  // the first one is extracting: the first commit hits "already exists" and must cope.
  const other = new OverlaySnapshotter(path.join(env.base, 'snapshots'));
  t.after(() => other.close());
  const slow: Provider = {
    ...env.counted,
    createReadStream: async (d, r) => {
      const s = await env.content.createReadStream(d, r);
      const key = 'other-extract';
      const mounts = other.prepare(key);
      fs.writeFileSync(path.join(mounts[0].source, 'f'), 'f');
      other.commit(l0.diffID, key);
      return s;
    },
  };
  assert.deepEqual(await unpackLayers([l0], slow, env.sn), [l0.diffID]);
  assert.deepEqual(env.sn.walk().map((i) => [i.name, i.kind]), [[l0.diffID, 'committed']]);
});
