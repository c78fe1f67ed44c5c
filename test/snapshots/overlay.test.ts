// The overlay snapshotter with real overlayfs mounts, and its crash recovery.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { OverlaySnapshotter } from '../../src/snapshots/overlay';
import { mountAll, unmountAll } from '../../src/snapshots/mount';
import { isKind } from '../../src/common/errors';
import Database from 'better-sqlite3';

interface Ctx { after(fn: () => void): void }

function setup(t: Ctx): { root: string; mnt: (name: string) => string; open: () => OverlaySnapshotter } {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-storage-test-snap-'));
  const mountpoints: string[] = [];
  const opened: OverlaySnapshotter[] = [];
  t.after(() => {
    for (const m of mountpoints) unmountAll(m, 2 /* MNT_DETACH */);
    for (const s of opened) s.close();
    fs.rmSync(base, { recursive: true, force: true });
  });
  return {
    root: path.join(base, 'root'),
    mnt: (name) => {
      const m = path.join(base, name);
      fs.mkdirSync(m);
      mountpoints.push(m);
      return m;
    },
    open: () => {
      const s = new OverlaySnapshotter(path.join(base, 'root'));
      opened.push(s);
      return s;
    },
  };
}

test('prepare, commit, prepare on a parent, view: real mounts see the right layers', (t) => {
  const { root, mnt, open } = setup(t);
  const sn = open();

  const baseMounts = sn.prepare('base-active');
  assert.equal(baseMounts.length, 1);
  assert.equal(baseMounts[0].type, 'bind');
  const m1 = mnt('m1');
  mountAll(baseMounts, m1);
  fs.writeFileSync(path.join(m1, 'base-file'), 'from base');
  fs.writeFileSync(path.join(m1, 'doomed'), 'to be deleted');
  unmountAll(m1);
  assert.deepEqual(fs.readdirSync(m1), [], 'unmounted');
  sn.commit('base', 'base-active');
  assert.equal(sn.stat('base').kind, 'committed');
  assert.throws(() => sn.stat('base-active'), (err: unknown) => isKind(err, 'NotFound'));
  assert.ok(sn.usage('base').inodes >= 3);

  const c1 = sn.prepare('c1', 'base', { labels: { purpose: 'test' } });
  assert.equal(c1[0].type, 'overlay');
  assert.ok(c1[0].options.some((o) => o.startsWith('upperdir=')));
  const m2 = mnt('m2');
  mountAll(c1, m2);
  assert.equal(fs.readFileSync(path.join(m2, 'base-file'), 'utf8'), 'from base');
  fs.writeFileSync(path.join(m2, 'layer2-file'), 'from layer 2');
  fs.rmSync(path.join(m2, 'doomed'));
  unmountAll(m2);
  assert.deepEqual(sn.stat('c1'), { ...sn.stat('c1'), kind: 'active', name: 'c1', parent: 'base', labels: { purpose: 'test' } });
  sn.commit('layer2', 'c1');

  // A view over two committed layers: overlay with two lowerdirs, read-only.
  const v = sn.view('v', 'layer2');
  assert.equal(v[0].type, 'overlay');
  const m3 = mnt('m3');
  mountAll(v, m3);
  assert.deepEqual(fs.readdirSync(m3).sort(), ['base-file', 'layer2-file']);
  assert.throws(() => fs.writeFileSync(path.join(m3, 'nope'), 'x'), { code: 'EROFS' });
  unmountAll(m3);

  // A view over one committed layer: a read-only bind mount.
  const vb = sn.view('vb', 'base');
  assert.deepEqual(vb[0].options, ['ro', 'rbind']);
  const m4 = mnt('m4');
  mountAll(vb, m4);
  assert.deepEqual(fs.readdirSync(m4).sort(), ['base-file', 'doomed']);
  assert.throws(() => fs.writeFileSync(path.join(m4, 'nope'), 'x'), { code: 'EROFS' });
  unmountAll(m4);

  assert.deepEqual(sn.walk().map((i) => [i.name, i.kind, i.parent ?? null]), [
    ['base', 'committed', null],
    ['layer2', 'committed', 'base'],
    ['v', 'view', 'layer2'],
    ['vb', 'view', 'base'],
  ]);

  // Errors: duplicates, missing or uncommitted parents, removing a parent.
  assert.throws(() => sn.prepare('v'), (err: unknown) => isKind(err, 'Conflict'));
  assert.throws(() => sn.prepare('x', 'missing'), (err: unknown) => isKind(err, 'NotFound'));
  sn.prepare('active-parent');
  assert.throws(() => sn.prepare('x', 'active-parent'), (err: unknown) => isKind(err, 'InvalidParameter'));
  assert.throws(() => sn.commit('base', 'active-parent'), (err: unknown) => isKind(err, 'Conflict'));
  assert.throws(() => sn.remove('base'), (err: unknown) => isKind(err, 'Conflict') && /depends on it/.test((err as Error).message));
  assert.throws(() => sn.mounts('base'), (err: unknown) => isKind(err, 'InvalidParameter'));

  for (const k of ['v', 'vb', 'layer2', 'base', 'active-parent']) sn.remove(k);
  assert.deepEqual(sn.walk(), []);
  assert.deepEqual(fs.readdirSync(path.join(root, 'snapshots')), [], 'no directories left');
  assert.throws(() => sn.remove('base'), (err: unknown) => isKind(err, 'NotFound'));
});

test('a layer written without a parent is committed onto one: the view sees both; wrong parents are refused', (t) => {
  const { mnt, open } = setup(t);
  const sn = open();
  // The upper layer is written first, as a pull unpacks a layer whose parent is still downloading.
  const upper = sn.prepare('extract-upper');
  fs.writeFileSync(path.join(upper[0].source, 'upper-file'), 'from upper');
  const lower = sn.prepare('extract-lower');
  fs.writeFileSync(path.join(lower[0].source, 'lower-file'), 'from lower');
  assert.throws(() => sn.commit('upper', 'extract-upper', { parent: 'lower' }), (err: unknown) => isKind(err, 'NotFound'));
  assert.throws(() => sn.commit('upper', 'extract-upper', { parent: 'extract-lower' }), (err: unknown) => isKind(err, 'InvalidParameter'));
  sn.commit('lower', 'extract-lower');
  sn.commit('upper', 'extract-upper', { parent: 'lower' });
  assert.equal(sn.stat('upper').parent, 'lower');
  assert.throws(() => sn.remove('lower'), (err: unknown) => isKind(err, 'Conflict'));
  const v = sn.view('v', 'upper');
  const m = mnt('m');
  mountAll(v, m);
  assert.deepEqual(fs.readdirSync(m).sort(), ['lower-file', 'upper-file']);
  unmountAll(m);

  // A snapshot prepared on one parent cannot be committed onto another.
  sn.prepare('other-base');
  sn.commit('base2', 'other-base');
  sn.prepare('on-lower', 'lower');
  assert.throws(() => sn.commit('x', 'on-lower', { parent: 'base2' }), (err: unknown) => isKind(err, 'InvalidParameter'));
  sn.commit('x', 'on-lower', { parent: 'lower' });
  assert.equal(sn.stat('x').parent, 'lower');
});

test('a layer committed with measureUsageLater is measured at the first usage() and keeps that figure, across a reopen', (t) => {
  const { open } = setup(t);
  const sn = open();
  const now = sn.prepare('extract-now');
  const later = sn.prepare('extract-later');
  for (const m of [now, later]) {
    fs.mkdirSync(path.join(m[0].source, 'd'));
    fs.writeFileSync(path.join(m[0].source, 'd', 'f'), Buffer.alloc(100_000, 1));
    fs.linkSync(path.join(m[0].source, 'd', 'f'), path.join(m[0].source, 'hard'));
    fs.symlinkSync('d/f', path.join(m[0].source, 'link'));
  }
  sn.commit('now', 'extract-now');
  sn.commit('later', 'extract-later', { measureUsageLater: true });
  const measured = sn.usage('now');
  assert.equal(measured.inodes, 4, 'root, d, f (hardlinked once), link');
  // Nothing was recorded at commit: reopened, the later layer is still measured on demand.
  sn.close();
  const sn2 = open();
  assert.deepEqual(sn2.usage('later'), measured);
  // Once measured, the figure is kept: a committed layer is not walked again.
  const fsDir = sn2.view('v', 'later')[0].source;
  fs.writeFileSync(path.join(fsDir, 'extra'), Buffer.alloc(100_000, 2));
  assert.deepEqual(sn2.usage('later'), measured);
});

test('reopening after a crash removes orphan directories and interrupted extract- snapshots', (t) => {
  const { root, open } = setup(t);
  const sn = open();
  sn.prepare('keep-active');
  sn.prepare('base-a');
  sn.commit('base', 'base-a');
  const extract = sn.prepare('extract-1234 sha256:abc', 'base');
  const upper = extract[0].options.find((o) => o.startsWith('upperdir='))!.slice('upperdir='.length);
  fs.writeFileSync(path.join(upper, 'half-extracted'), 'x');
  sn.close();

  // Leftovers a crash could leave: a directory being prepared, one renamed but never recorded,
  // and one being removed.
  const snaps = path.join(root, 'snapshots');
  fs.mkdirSync(path.join(snaps, 'new-deadbeef', 'fs'), { recursive: true });
  fs.mkdirSync(path.join(snaps, '999', 'fs'), { recursive: true });
  fs.mkdirSync(path.join(snaps, 'rm-7', 'fs'), { recursive: true });

  const again = open();
  assert.deepEqual(again.walk().map((i) => i.name), ['base', 'keep-active']);
  const ids = fs.readdirSync(snaps).sort();
  assert.equal(ids.length, 2);
  assert.ok(ids.every((n) => /^\d+$/.test(n)));
  assert.equal(fs.existsSync(upper), false);
  // The schema is versioned.
  again.close();
  const db = new Database(path.join(root, 'metadata.db'), { readonly: true });
  assert.equal(db.pragma('user_version', { simple: true }), 1);
  assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  db.close();
});

test('mountAll falls back to relative paths when the lowerdir list exceeds a page', (t) => {
  const { mnt, open } = setup(t);
  const sn = open();
  let parent: string | undefined;
  // Enough layers that absolute lowerdir paths exceed 4096 bytes with this long root path.
  const layers = 70;
  for (let i = 0; i < layers; i++) {
    const key = `layer-${i}-active`;
    const mounts = sn.prepare(key, parent);
    const dir = mounts[0].type === 'bind' ? mounts[0].source : mounts[0].options.find((o) => o.startsWith('upperdir='))!.slice(9);
    fs.writeFileSync(path.join(dir, `file-${i}`), String(i));
    sn.commit(`layer-${i}`, key);
    parent = `layer-${i}`;
  }
  const mounts = sn.prepare('top', parent);
  assert.ok(mounts[0].options.join(',').length > 4096, `options are ${mounts[0].options.join(',').length} bytes`);
  const m = mnt('m');
  const cwd = process.cwd();
  mountAll(mounts, m);
  assert.equal(process.cwd(), cwd);
  assert.equal(fs.readdirSync(m).length, layers);
  assert.equal(fs.readFileSync(path.join(m, 'file-0'), 'utf8'), '0');
  unmountAll(m);
});

test('remove with background: the record goes at once, the files right after', async (t) => {
  const { root, open } = setup(t);
  const sn = open();
  sn.prepare('base-a');
  sn.commit('base', 'base-a');
  const mounts = sn.prepare('ctr', 'base');
  const upper = mounts[0].options.find((o) => o.startsWith('upperdir='))!.slice('upperdir='.length);
  for (let i = 0; i < 200; i++) fs.writeFileSync(path.join(upper, `f${i}`), 'x');
  const before = fs.readdirSync(path.join(root, 'snapshots')).length;
  sn.remove('ctr', { background: true });
  assert.equal(sn.tryStat('ctr'), undefined);
  assert.equal(fs.existsSync(upper), false, 'moved out of the snapshot\'s place at once');
  const snaps = path.join(root, 'snapshots');
  const only = (): string[] => fs.readdirSync(snaps).filter((n) => !/^\d+$/.test(n));
  for (let i = 0; i < 100 && only().length > 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(only(), []);
  assert.equal(fs.readdirSync(snaps).length, before - 1, 'only the base is left');
});
