// generateSpec: docker's defaults and the ContainerSpec options, checked on the pure output.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  generateSpec, generateExecProcess, computeCapabilities, DEFAULT_CAPABILITIES, DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS,
  SpecError, type OciSpec,
} from '../../src/runtime/spec';
import { hostDevices, deviceFromPath, splitDev } from '../../src/runtime/devices';

const base = { args: ['sh'], rootfs: '/r' };
const mount = (s: OciSpec, dest: string) => s.mounts.find((m) => m.destination === dest);

test('defaults: docker capabilities, masked and read-only paths, default mounts, namespaces', () => {
  const s = generateSpec(base);
  assert.equal(s.ociVersion, '1.0.2');
  assert.deepEqual(s.process.args, ['sh']);
  assert.equal(s.process.cwd, '/');
  assert.deepEqual(s.process.user, { uid: 0, gid: 0 });
  assert.equal(s.process.terminal, false);
  assert.deepEqual([...s.process.capabilities!.bounding].sort(), [...DEFAULT_CAPABILITIES].sort());
  assert.equal(s.process.capabilities!.bounding.length, 14);
  assert.deepEqual(s.process.capabilities!.effective, s.process.capabilities!.bounding);
  assert.deepEqual(s.linux.maskedPaths, DEFAULT_MASKED_PATHS);
  assert.deepEqual(s.linux.readonlyPaths, DEFAULT_READONLY_PATHS);
  assert.deepEqual(s.mounts.map((m) => m.destination), ['/proc', '/dev', '/dev/pts', '/sys', '/sys/fs/cgroup', '/dev/mqueue', '/dev/shm']);
  assert.ok(mount(s, '/sys')!.options!.includes('ro'));
  assert.ok(mount(s, '/sys/fs/cgroup')!.options!.includes('ro'));
  assert.ok(mount(s, '/dev/shm')!.options!.includes(`size=${64 * 1024 * 1024}`));
  assert.deepEqual(s.linux.namespaces.map((n) => n.type), ['mount', 'network', 'ipc', 'uts', 'pid']);
  assert.equal(s.root.readonly, false);
  assert.equal(s.linux.resources!.devices![0].allow, false, 'devices are denied by default');
  assert.equal(s.process.noNewPrivileges, false);
});

test('process options: user, env, cwd, tty and console size, oom score, no-new-privileges', () => {
  const s = generateSpec({
    ...base, env: ['A=1'], cwd: '/work', user: { uid: 1000, gid: 100, additionalGids: [5, 6] }, tty: true,
    consoleSize: { height: 40, width: 120 }, oomScoreAdj: 500, noNewPrivileges: true, readonlyRootfs: true,
  });
  assert.deepEqual(s.process.env, ['A=1']);
  assert.equal(s.process.cwd, '/work');
  assert.deepEqual(s.process.user, { uid: 1000, gid: 100, additionalGids: [5, 6] });
  assert.equal(s.process.terminal, true);
  assert.deepEqual(s.process.consoleSize, { height: 40, width: 120 });
  assert.equal(s.process.oomScoreAdj, 500);
  assert.equal(s.process.noNewPrivileges, true);
  assert.equal(s.root.readonly, true);
  assert.throws(() => generateSpec({ ...base, oomScoreAdj: 1001 }), /range for oom score adj/);
  assert.throws(() => generateSpec({ ...base, cwd: 'rel' }), /absolute path/);
  assert.throws(() => generateSpec({ ...base, args: [] }), SpecError);
});

test('hostname is set only with a private UTS namespace; annotations, cgroupsPath, sysctl pass through', () => {
  const s = generateSpec({ ...base, hostname: 'h', domainname: 'example.org', annotations: { a: 'b' }, cgroupsPath: '/berth/x', sysctl: { 'net.ipv4.ip_forward': '1' } });
  assert.equal(s.hostname, 'h');
  assert.equal(s.domainname, 'example.org');
  assert.deepEqual(s.annotations, { a: 'b' });
  assert.equal(s.linux.cgroupsPath, '/berth/x');
  assert.deepEqual(s.linux.sysctl, { 'net.ipv4.ip_forward': '1' });
  const h = generateSpec({ ...base, hostname: 'h', namespaces: { uts: 'host' } });
  assert.equal(h.hostname, undefined);
  assert.ok(!h.linux.namespaces.some((n) => n.type === 'uts'));
});

test('namespaces: host, joined by path, private cgroup; host network binds /sys', () => {
  const s = generateSpec({ ...base, namespaces: { network: { path: '/run/netns/x' }, ipc: 'host', pid: 'host', cgroup: 'private' } });
  assert.deepEqual(s.linux.namespaces, [{ type: 'mount' }, { type: 'network', path: '/run/netns/x' }, { type: 'uts' }, { type: 'cgroup' }]);
  assert.equal(mount(s, '/sys')!.type, 'bind');
  assert.equal(mount(s, '/dev/mqueue')!.type, 'bind');
  assert.throws(() => generateSpec({ ...base, namespaces: { network: { path: 'relative' } } }), /absolute/);
});

test('mounts: a user mount replaces the default at its destination; shm size', () => {
  const s = generateSpec({
    ...base,
    shmSize: 1 << 20,
    mounts: [
      { destination: '/dev/shm/', type: 'bind', source: '/host/shm', options: ['rbind', 'rprivate'] },
      { destination: '/data', type: 'bind', source: '/host/data', options: ['rbind', 'ro'] },
    ],
  });
  const shm = s.mounts.filter((m) => m.destination === '/dev/shm');
  assert.equal(shm.length, 1);
  assert.equal(shm[0].source, '/host/shm');
  assert.equal(s.mounts[s.mounts.length - 1].destination, '/data');
  const t = generateSpec({ ...base, shmSize: 1 << 20 });
  assert.ok(mount(t, '/dev/shm')!.options!.includes('size=1048576'));
  assert.throws(() => generateSpec({ ...base, shmSize: -1 }), /shm size/);
});

test('rlimits: nofile is clamped to the daemon hard limit and defaults to it', () => {
  const host = { soft: 20000, hard: 20000 };
  const d = generateSpec({ ...base, hostNofile: host });
  assert.deepEqual(d.process.rlimits, [{ type: 'RLIMIT_NOFILE', soft: 20000, hard: 20000 }]);
  const s = generateSpec({ ...base, hostNofile: host, rlimits: [{ name: 'nofile', soft: 65536, hard: 1048576 }, { name: 'nproc', soft: 10, hard: 20 }] });
  assert.deepEqual(s.process.rlimits, [{ type: 'RLIMIT_NOFILE', soft: 20000, hard: 20000 }, { type: 'RLIMIT_NPROC', soft: 10, hard: 20 }]);
  const low = generateSpec({ ...base, hostNofile: host, rlimits: [{ name: 'RLIMIT_NOFILE', soft: 100, hard: 200 }] });
  assert.deepEqual(low.process.rlimits, [{ type: 'RLIMIT_NOFILE', soft: 100, hard: 200 }]);
  assert.throws(() => generateSpec({ ...base, rlimits: [{ name: 'bogus', soft: 1, hard: 1 }] }), /invalid ulimit type/);
  assert.throws(() => generateSpec({ ...base, rlimits: [{ name: 'nofile', soft: 2, hard: 1 }] }), /soft limit/);
});

test('capabilities: add, drop, ALL, names with or without CAP_', () => {
  assert.ok(computeCapabilities({ capAdd: ['sys_admin'] }).includes('CAP_SYS_ADMIN'));
  assert.ok(!computeCapabilities({ capDrop: ['CAP_CHOWN'] }).includes('CAP_CHOWN'));
  assert.deepEqual(computeCapabilities({ capDrop: ['ALL'], capAdd: ['NET_ADMIN'] }), ['CAP_NET_ADMIN']);
  const all = computeCapabilities({ capAdd: ['ALL'], capDrop: ['MKNOD'], capLastCap: 40 });
  assert.equal(all.length, 40);
  assert.ok(!all.includes('CAP_MKNOD'));
  assert.equal(computeCapabilities({ privileged: true, capLastCap: 37 }).length, 38);
  assert.throws(() => computeCapabilities({ capAdd: ['FLY'] }), /unknown capability: "CAP_FLY"/);
});

test('privileged: all capabilities, nothing masked, rw /sys and cgroups, all devices', () => {
  const dev = { path: '/dev/loop0', type: 'b' as const, major: 7, minor: 0, fileMode: 0o660, uid: 0, gid: 6 };
  const s = generateSpec({ ...base, privileged: true, capLastCap: 40, hostDevices: [dev] });
  assert.equal(s.process.capabilities!.bounding.length, 41);
  assert.deepEqual(s.linux.maskedPaths, []);
  assert.deepEqual(s.linux.readonlyPaths, []);
  assert.ok(!mount(s, '/sys')!.options!.includes('ro'));
  assert.ok(mount(s, '/sys/fs/cgroup')!.options!.includes('rw'));
  assert.deepEqual(s.linux.resources!.devices, [{ allow: true, access: 'rwm' }]);
  assert.deepEqual(s.linux.devices, [dev]);
});

test('--device adds the node and a cgroup rule; resources pass through', () => {
  const s = generateSpec({
    ...base, devices: [{ device: { path: '/dev/fuse', type: 'c', major: 10, minor: 229 }, access: 'rw' }],
    resources: { memory: { limit: 1 << 26 }, pids: { limit: 100 } },
  });
  assert.deepEqual(s.linux.devices, [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229 }]);
  assert.deepEqual(s.linux.resources!.devices!.at(-1), { allow: true, type: 'c', major: 10, minor: 229, access: 'rw' });
  assert.equal(s.linux.resources!.memory!.limit, 1 << 26);
  assert.equal(s.linux.resources!.pids!.limit, 100);
});

test('generateExecProcess: an exec process with default capabilities', () => {
  const p = generateExecProcess({ args: ['ls'], env: ['X=1'], cwd: '/tmp', tty: true, user: { uid: 1, gid: 2 } });
  assert.deepEqual(p.args, ['ls']);
  assert.equal(p.terminal, true);
  assert.equal(p.cwd, '/tmp');
  assert.deepEqual(p.user, { uid: 1, gid: 2 });
  assert.equal(p.capabilities!.bounding.length, 14);
  assert.throws(() => generateExecProcess({ args: [] }), /No exec command/);
});

test('the input is not aliased into the output', () => {
  const input = { ...base, env: ['A=1'], mounts: [{ destination: '/d', type: 'bind', source: '/s', options: ['rbind'] }] };
  const s = generateSpec(input);
  s.process.env!.push('B=2');
  s.mounts.at(-1)!.options!.push('ro');
  assert.deepEqual(input.env, ['A=1']);
  assert.deepEqual(input.mounts[0].options, ['rbind']);
});

test('hostDevices and deviceFromPath read real device nodes', () => {
  const devs = hostDevices();
  const nul = devs.find((d) => d.path === '/dev/null');
  assert.deepEqual(nul && { type: nul.type, major: nul.major, minor: nul.minor }, { type: 'c', major: 1, minor: 3 });
  assert.ok(!devs.some((d) => d.path.startsWith('/dev/pts/')));
  assert.deepEqual(splitDev(BigInt((259 << 8) | 5)), { major: 259, minor: 5 });
  assert.equal(deviceFromPath('/dev/zero', '/dev/z').path, '/dev/z');
  assert.throws(() => deviceFromPath('/etc/hostname'), /not a device/);
});
