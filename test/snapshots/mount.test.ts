// mountAll's volatile overlays (and what overlayfs leaves behind after them), and unmounting on
// the thread pool, with real overlayfs mounts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { mountAll, unmountAll, unmountAllAsync } from '../../src/snapshots/mount';
import type { Mount } from '../../src/snapshots/types';

interface Layout { lower: string; upper: string; work: string; target: string; mounts: Mount[] }

function setup(t: { after(fn: () => void): void }): Layout {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-perf-test-mount-'));
  const l: Layout = {
    lower: path.join(base, 'lower'),
    upper: path.join(base, 'upper'),
    work: path.join(base, 'work'),
    target: path.join(base, 'rootfs'),
    mounts: [],
  };
  for (const d of [l.lower, l.upper, l.work, l.target]) fs.mkdirSync(d);
  fs.writeFileSync(path.join(l.lower, 'from-image'), 'image\n');
  l.mounts = [{ type: 'overlay', source: 'overlay', options: ['index=off', `workdir=${l.work}`, `upperdir=${l.upper}`, `lowerdir=${l.lower}`] }];
  t.after(() => {
    unmountAll(l.target, 2 /* MNT_DETACH */);
    fs.rmSync(base, { recursive: true, force: true });
  });
  return l;
}

function mountOptions(target: string): string[] {
  const line = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((s) => s.split(' ')[4] === target);
  assert.ok(line, `${target} is not mounted`);
  return line.split(' - ')[1].split(' ')[2].split(',');
}

/** Newer kernels show the option as fsync=volatile. */
const isVolatile = (opts: string[]): boolean => opts.includes('volatile') || opts.includes('fsync=volatile');

test('volatile overlay: mounted volatile, and mountable again in the same boot with its files', async (t) => {
  const l = setup(t);
  const discarded: string[] = [];
  mountAll(l.mounts, l.target, { volatile: true, onDiscard: (u) => discarded.push(u) });
  assert.ok(isVolatile(mountOptions(l.target)));
  fs.writeFileSync(path.join(l.target, 'written'), 'kept\n');
  await unmountAllAsync(l.target);
  assert.throws(() => mountOptions(l.target));
  // overlayfs leaves its marker behind, which would make the next mount fail.
  assert.ok(fs.existsSync(path.join(l.work, 'work', 'incompat', 'volatile')));
  mountAll(l.mounts, l.target, { volatile: true, onDiscard: (u) => discarded.push(u) });
  assert.equal(fs.readFileSync(path.join(l.target, 'written'), 'utf8'), 'kept\n');
  await unmountAllAsync(l.target);
  // A plain (non-volatile) mount of the same layer works too.
  mountAll(l.mounts, l.target);
  assert.ok(!isVolatile(mountOptions(l.target)));
  assert.equal(fs.readFileSync(path.join(l.target, 'written'), 'utf8'), 'kept\n');
  assert.equal(fs.readFileSync(path.join(l.target, 'from-image'), 'utf8'), 'image\n');
  await unmountAllAsync(l.target);
  assert.deepEqual(discarded, []);
});

test('volatile overlay mounted in an earlier boot: its writable layer is emptied before remounting', async (t) => {
  const l = setup(t);
  mountAll(l.mounts, l.target, { volatile: true });
  fs.mkdirSync(path.join(l.target, 'dir'));
  fs.writeFileSync(path.join(l.target, 'dir', 'file'), 'maybe torn\n');
  fs.rmSync(path.join(l.target, 'from-image')); // a whiteout in the upper layer
  await unmountAllAsync(l.target);
  // As if the host had crashed and rebooted since: the recorded boot is another one.
  fs.writeFileSync(path.join(l.work, 'berth-volatile-boot'), '00000000-0000-0000-0000-000000000000\n');
  const discarded: string[] = [];
  mountAll(l.mounts, l.target, { volatile: true, onDiscard: (u) => discarded.push(u) });
  assert.deepEqual(discarded, [l.upper]);
  assert.deepEqual(fs.readdirSync(l.target).sort(), ['from-image']);
  assert.deepEqual(fs.readdirSync(l.upper), []);
});

test('unmountAllAsync: stacked mounts all go; not mounted and missing paths are fine', async (t) => {
  const l = setup(t);
  mountAll(l.mounts, l.target);
  mountAll([{ type: 'bind', source: l.lower, options: ['ro', 'rbind'] }], l.target);
  await unmountAllAsync(l.target);
  assert.throws(() => mountOptions(l.target));
  await unmountAllAsync(l.target);
  await unmountAllAsync(path.join(l.target, 'missing'));
});
