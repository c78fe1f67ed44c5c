// Cgroup layout detection (from mountinfo text) and, on this machine, the hybrid-layout repair
// and cgroup removal.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseCgroupMounts, ensureCgroupsUsable, detectCgroupLayout, cgroupDirs, removeCgroup, cgroupPids, cgroup2Mount, favorCgroupMigrations } from '../../src/runtime/cgroups';
import { silentLogger } from '../../src/common/logger';
import { loadConfig } from '../../src/daemon/config';
import * as os from 'node:os';

const HYBRID = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
`;

test('parseCgroupMounts: hybrid, v1 and v2 layouts', () => {
  const h = parseCgroupMounts(HYBRID);
  assert.equal(h.mode, 'hybrid');
  assert.equal(h.unified, '/sys/fs/cgroup/unified');
  assert.equal(h.v1.get('cpu'), '/sys/fs/cgroup/cpu,cpuacct');
  assert.equal(h.v1.get('cpuacct'), '/sys/fs/cgroup/cpu,cpuacct');
  assert.equal(h.v1.get('name=systemd'), '/sys/fs/cgroup/systemd');
  assert.ok(!h.v1.has('xattr'));
  const v1 = parseCgroupMounts(HYBRID.split('\n').filter((l) => !l.includes('cgroup2')).join('\n'));
  assert.equal(v1.mode, 'v1');
  const v2 = parseCgroupMounts('30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n');
  assert.equal(v2.mode, 'v2');
  assert.equal(v2.unified, '/sys/fs/cgroup');
  assert.equal(v2.v1.size, 0);
  const esc = parseCgroupMounts('1 2 0:1 / /mnt/with\\040space rw - cgroup cgroup rw,pids\n');
  assert.equal(esc.v1.get('pids'), '/mnt/with space');
});

test('cgroup2Mount: where cgroup2 is and whether it has favordynmods', () => {
  assert.deepEqual(cgroup2Mount(HYBRID), { mountPoint: '/sys/fs/cgroup/unified', favorDynmods: false });
  assert.deepEqual(cgroup2Mount('30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,favordynmods\n'), { mountPoint: '/sys/fs/cgroup', favorDynmods: true });
  assert.equal(cgroup2Mount(HYBRID.split('\n').filter((l) => !l.includes('cgroup2')).join('\n')), undefined);
});

test('favorCgroupMigrations: remounts this machine\'s cgroup2 with favordynmods, keeping its other options; a failing remount is only logged', () => {
  const before = cgroup2Mount(fs.readFileSync('/proc/self/mountinfo', 'utf8'));
  assert.ok(before, 'this machine mounts cgroup2');
  const optionsOf = (): string[] => {
    const line = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.includes(' - cgroup2 '))!;
    return [...line.split(' ')[5].split(','), ...line.split(' - ')[1].split(' ')[2].split(',')].filter((o) => o !== 'favordynmods').sort();
  };
  const kept = optionsOf();
  if (!before.favorDynmods) {
    const calls: string[] = [];
    assert.equal(favorCgroupMigrations(silentLogger, (mp) => {
      calls.push(mp);
      throw new Error('mount: unknown option');
    }), 'unavailable');
    assert.deepEqual(calls, [before.mountPoint]);
  }
  const r = favorCgroupMigrations(silentLogger);
  assert.equal(r, before.favorDynmods ? 'already' : 'set');
  assert.equal(cgroup2Mount(fs.readFileSync('/proc/self/mountinfo', 'utf8'))?.favorDynmods, true);
  assert.deepEqual(optionsOf(), kept);
  assert.equal(favorCgroupMigrations(silentLogger, () => assert.fail('no second remount')), 'already');
});

test('--cgroup-favor-dynmods / daemon.json cgroup-favor-dynmods reach the daemon (unset: on)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cgcfg-'));
  try {
    const of = (file: object, args: string[] = []): unknown => {
      fs.writeFileSync(path.join(dir, 'daemon.json'), JSON.stringify(file));
      return loadConfig(['--config-file', path.join(dir, 'daemon.json'), ...args], {}).extra['cgroup-favor-dynmods'];
    };
    assert.equal(of({}), undefined);
    assert.equal(of({}, ['--cgroup-favor-dynmods=false']), false);
    assert.equal(of({ 'cgroup-favor-dynmods': false }), false);
    assert.equal(of({ 'cgroup-favor-dynmods': true }), true);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('ensureCgroupsUsable: leaves no controller on the cgroup2 hierarchy of this hybrid machine', () => {
  const status = ensureCgroupsUsable(silentLogger);
  assert.equal(status.driver, 'cgroupfs');
  const layout = detectCgroupLayout();
  if (layout.mode === 'v2') {
    assert.equal(status.version, 2);
    return;
  }
  assert.equal(status.version, 1);
  if (layout.unified) assert.equal(fs.readFileSync(path.join(layout.unified, 'cgroup.controllers'), 'utf8').trim(), '');
  assert.ok(layout.v1.has('hugetlb'), 'hugetlb has a v1 hierarchy');
  // Idempotent: a second call changes nothing and mounts nothing.
  let mounted = 0;
  ensureCgroupsUsable(silentLogger, () => mounted++);
  assert.equal(mounted, 0);
});

test('removeCgroup removes a cgroup tree in every hierarchy; cgroupDirs refuses escapes', async (t) => {
  ensureCgroupsUsable(silentLogger);
  const parent = `/berth-test-runtime-${process.pid}-cg`;
  t.after(() => removeCgroup(parent, { recursive: true }));
  const dirs = cgroupDirs(`${parent}/a/b`);
  assert.ok(dirs.length >= 2);
  for (const d of dirs) fs.mkdirSync(d, { recursive: true });
  assert.deepEqual(cgroupPids(`${parent}/a/b`), []);
  assert.deepEqual(await removeCgroup(parent, { recursive: true }), []);
  for (const d of cgroupDirs(parent)) assert.equal(fs.existsSync(d), false, d);
  assert.throws(() => cgroupDirs('/../etc'), /invalid cgroup path/);
  assert.throws(() => cgroupDirs('/'), /invalid cgroup path/);
});
