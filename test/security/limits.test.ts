// Resource limits seen from inside real containers (crun, cgroup v1): --pids-limit stops a fork
// loop, --cpus caps measured CPU time, docker update changes the limits of a running container,
// and --ulimit, --device, --sysctl, --group-add, --cgroup-parent, the blkio throttles,
// --oom-kill-disable, --memory-swap and --cpuset-cpus reach the container.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { api } from '../helpers/daemon';
import { setupDaemon, type CtrEnv } from '../containers/fixtures';
import { mergeUpdate } from '../../src/containers/update';
import { sysctlRefusal, validateLimits } from '../../src/containers/limits';
import type { HostConfig } from '../../src/containers/store';

let e: CtrEnv;
before(async () => {
  e = await setupDaemon('sec-limits');
});
after(async () => {
  await e?.cleanup();
});

const ok = (args: string[]): Promise<string> => e.ok(args);

/** CPU time (ns) the container's cgroup used over ms milliseconds, read inside it. */
async function cpuUsedOver(name: string, ms: number): Promise<number> {
  const read = async (): Promise<number> => Number((await ok(['exec', name, 'cat', '/sys/fs/cgroup/cpuacct/cpuacct.usage'])).trim());
  const a = await read();
  const t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, ms));
  const b = await read();
  const elapsed = Number(process.hrtime.bigint() - t0);
  return (b - a) / elapsed;
}

const HC = { Memory: 0, MemorySwap: 0, RestartPolicy: { Name: 'no', MaximumRetryCount: 0 }, AutoRemove: false } as unknown as HostConfig;

test('unit: update merge rules and sysctl/ulimit/device checks in dockerd words', () => {
  const a = mergeUpdate({ ...HC, Memory: 32 << 20, MemorySwap: 64 << 20, PidsLimit: 10 }, { PidsLimit: 20, CpuShares: 512 });
  assert.equal(a.PidsLimit, 20);
  assert.equal(a.CpuShares, 512);
  assert.equal(a.Memory, 32 << 20, 'zero or absent leaves a field');
  assert.equal(mergeUpdate({ ...HC, PidsLimit: 20 }, { PidsLimit: -1 }).PidsLimit, 0);
  assert.throws(() => mergeUpdate({ ...HC, Memory: 32 << 20, MemorySwap: 64 << 20 }, { Memory: 128 << 20 }), /Memory limit should be smaller than already set memoryswap limit/);
  assert.equal(mergeUpdate({ ...HC, Memory: 32 << 20, MemorySwap: 64 << 20 }, { Memory: 128 << 20, MemorySwap: 256 << 20 }).MemorySwap, 256 << 20);
  assert.throws(() => mergeUpdate({ ...HC, NanoCpus: 1e9 }, { CpuQuota: 50000 }), /CPU Quota cannot be updated as NanoCPUs has already been set/);
  assert.throws(() => mergeUpdate({ ...HC, AutoRemove: true }, { RestartPolicy: { Name: 'always' } }), /AutoRemove is enabled/);
  assert.throws(() => mergeUpdate(HC, { Memory: 1024 }), /Minimum memory limit allowed is 6MB/);
  assert.deepEqual(mergeUpdate(HC, { RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 2 } }).RestartPolicy, { Name: 'on-failure', MaximumRetryCount: 2 });

  for (const ok of ['net.ipv4.ip_forward', 'kernel.shmmax', 'kernel.msgmax', 'kernel.sem', 'fs.mqueue.msg_max']) assert.equal(sysctlRefusal(ok, {}), undefined, ok);
  assert.equal(sysctlRefusal('vm.swappiness', {}), 'sysctl "vm.swappiness" is not allowed');
  assert.equal(sysctlRefusal('kernel.hostname', {}), 'sysctl "kernel.hostname" is not allowed');
  assert.match(sysctlRefusal('net.ipv4.ip_forward', { NetworkMode: 'host' }) ?? '', /not allowed in host network namespace/);
  assert.match(sysctlRefusal('kernel.shmmax', { IpcMode: 'host' }) ?? '', /not allowed with IpcMode host/);

  const nofile = { soft: 1024, hard: 20000 };
  assert.deepEqual(validateLimits({ Ulimits: [{ Name: 'nofile', Soft: 100, Hard: 200 }] }, nofile), []);
  assert.match(validateLimits({ Ulimits: [{ Name: 'nofile', Soft: 30000, Hard: 40000 }] }, nofile)[0], /above the daemon's own hard limit 20000; the container gets nofile=20000:20000/);
  assert.throws(() => validateLimits({ Ulimits: [{ Name: 'bogus', Soft: 1, Hard: 1 }] }, nofile), /invalid ulimit type: bogus/);
  assert.throws(() => validateLimits({ Ulimits: [{ Name: 'nproc', Soft: 5, Hard: 1 }] }, nofile), /soft limit must be less than or equal to hard limit/);
  assert.throws(() => validateLimits({ Devices: [{ PathOnHost: '/dev/nonexistent-x' }] }, nofile), /error gathering device information while adding custom device "\/dev\/nonexistent-x"/);
  assert.throws(() => validateLimits({ Devices: [{ PathOnHost: '/dev/null', CgroupPermissions: 'rwx' }] }, nofile), /invalid device mode: rwx/);
  assert.throws(() => validateLimits({ CgroupParent: '../escape' }, nofile), /invalid cgroup parent/);
  assert.throws(() => validateLimits({ BlkioDeviceReadBps: [{ Path: '/dev/null', Rate: 1 }] }, nofile), /not a block device/);
});

test('--pids-limit 10 stops a fork loop inside the container', async () => {
  // The loop runs in a subshell (ash gives up at the first failed fork); the outer shell then
  // reads the cgroup with builtins only (no fork left to spare) and kills the sleeps.
  const out = await ok(['run', '--rm', '--pids-limit', '10', 'busybox', 'sh', '-c',
    '(i=0; while [ $i -lt 30 ]; do sleep 60 & i=$((i+1)); done; echo all-30-forked) 2>/tmp/err; echo status=$?; ' +
    'read cur < /sys/fs/cgroup/pids/pids.current; read max < /sys/fs/cgroup/pids/pids.max; read ev n < /sys/fs/cgroup/pids/pids.events; ' +
    'echo current=$cur max=$max refused=$n; kill -9 -1; grep -o "can.t fork" /tmp/err']);
  assert.doesNotMatch(out, /all-30-forked/);
  assert.match(out, /status=[1-9]/);
  assert.match(out, /max=10 /);
  const current = Number(/current=(\d+)/.exec(out)?.[1]);
  assert.ok(current >= 2 && current <= 10, out);
  assert.ok(Number(/refused=(\d+)/.exec(out)?.[1]) >= 1, out);
  assert.match(out, /can.t fork/);
});

// A cap can be shown on a busy machine (usage never above it); a raise cannot, so the update
// lowers it.
test('--cpus 0.5 caps measured usage; docker update lowers it on the running container', async () => {
  await ok(['run', '-d', '--name', 'cpu', '--cpus', '0.5', 'busybox', 'sh', '-c', '(while :; do :; done) & (while :; do :; done) & wait']);
  try {
    const capped = await cpuUsedOver('cpu', 2000);
    assert.ok(capped <= 0.6, `usage ${capped.toFixed(2)} cores with --cpus 0.5`);
    assert.ok(capped >= 0.1, `the loops did run: ${capped.toFixed(2)}`);
    assert.equal((await ok(['exec', 'cpu', 'cat', '/sys/fs/cgroup/cpu/cpu.cfs_quota_us'])).trim(), '50000');

    const upd = await api(e.d.socket, 'POST', '/containers/cpu/update', { NanoCpus: 0.2e9 });
    assert.equal(upd.status, 200, upd.body.toString());
    assert.deepEqual(upd.json(), { Warnings: [] });
    assert.equal((await ok(['exec', 'cpu', 'cat', '/sys/fs/cgroup/cpu/cpu.cfs_quota_us'])).trim(), '20000');
    const lowered = await cpuUsedOver('cpu', 2000);
    assert.ok(lowered <= 0.26, `usage ${lowered.toFixed(2)} cores after update --cpus 0.2`);
  } finally {
    await e.docker(['rm', '-f', 'cpu']);
  }
});

test('docker update: pids, memory, swap, shares, cpuset, restart policy on a running container; a stopped one gets them at start', async () => {
  await ok(['run', '-d', '--name', 'upd', '--pids-limit', '10', '-m', '32m', 'busybox', 'sleep', '300']);
  try {
    const inside = async (f: string): Promise<string> => (await ok(['exec', 'upd', 'cat', `/sys/fs/cgroup/${f}`])).trim();
    assert.equal(await inside('pids/pids.max'), '10');
    assert.equal(await inside('memory/memory.limit_in_bytes'), String(32 << 20));
    const r = await e.docker(['update', '--pids-limit', '20', '--memory', '96m', '--memory-swap', '192m', '--memory-reservation', '16m', '--cpu-shares', '512', '--cpuset-cpus', '0', '--restart', 'on-failure:3', 'upd']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'upd');
    assert.equal(await inside('pids/pids.max'), '20');
    assert.equal(await inside('memory/memory.limit_in_bytes'), String(96 << 20));
    assert.equal(await inside('memory/memory.memsw.limit_in_bytes'), String(192 << 20));
    assert.equal(await inside('memory/memory.soft_limit_in_bytes'), String(16 << 20));
    assert.equal(await inside('cpu/cpu.shares'), '512');
    assert.equal(await inside('cpuset/cpuset.cpus'), '0');
    // The new pids limit holds: 25 more processes cannot all start.
    const forks = await e.docker(['exec', 'upd', 'sh', '-c', 'i=0; while [ $i -lt 25 ]; do sleep 30 & i=$((i+1)); done; cat /sys/fs/cgroup/pids/pids.current']);
    assert.ok(Number(forks.stdout.trim()) <= 20, forks.stdout);
    assert.match(forks.stderr, /can.t fork/);
    // Lower the memory below the old swap limit: limit first, then swap.
    assert.equal((await e.docker(['update', '--memory', '24m', '--memory-swap', '48m', 'upd'])).code, 0);
    assert.equal(await inside('memory/memory.limit_in_bytes'), String(24 << 20));
    assert.equal(await inside('memory/memory.memsw.limit_in_bytes'), String(48 << 20));

    const hc = JSON.parse(await ok(['inspect', '--format', '{{json .HostConfig}}', 'upd'])) as Record<string, unknown>;
    assert.equal(hc.PidsLimit, 20);
    assert.equal(hc.Memory, 24 << 20);
    assert.equal(hc.CpuShares, 512);
    assert.deepEqual(hc.RestartPolicy, { Name: 'on-failure', MaximumRetryCount: 3 });

    const bad = await e.docker(['update', '--memory', '1m', 'upd']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /Minimum memory limit allowed is 6MB/);
    const conflictRes = await e.docker(['update', '--memory', '200m', 'upd']);
    assert.match(conflictRes.stderr, /Memory limit should be smaller than already set memoryswap limit/);

    // A stopped container: the record changes; the next start applies it.
    await ok(['stop', '-t', '0', 'upd']);
    await ok(['update', '--pids-limit', '7', 'upd']);
    await ok(['start', 'upd']);
    assert.equal(await inside('pids/pids.max'), '7');
  } finally {
    await e.docker(['rm', '-f', 'upd']);
  }
  const missing = await api(e.d.socket, 'POST', '/containers/nope/update', { PidsLimit: 5 });
  assert.equal(missing.status, 404);
});

test('--ulimit: set as asked; nofile above the daemon\'s hard limit is clamped with a warning', async () => {
  assert.equal((await ok(['run', '--rm', '--ulimit', 'nofile=1024:2048', '--ulimit', 'nproc=100:200', 'busybox', 'sh', '-c', 'echo $(ulimit -n) $(ulimit -Hn) $(ulimit -u)'])).trim(), '1024 2048 100');
  const r = await e.docker(['run', '--rm', '--ulimit', 'nofile=30000:40000', 'busybox', 'sh', '-c', 'echo $(ulimit -n) $(ulimit -Hn)']);
  assert.equal(r.code, 0, r.stderr);
  const hostHard = Number(/Max open files\s+\S+\s+(\S+)/.exec(fs.readFileSync(`/proc/${e.d.proc.pid}/limits`, 'utf8'))![1]);
  assert.equal(r.stdout.trim(), `${Math.min(30000, hostHard)} ${hostHard}`);
  assert.match(r.stderr, /WARNING: Your ulimit nofile=30000:40000 is above the daemon's own hard limit/);
  const bad = await e.docker(['create', '--ulimit', 'nproc=10:5', 'busybox']);
  assert.notEqual(bad.code, 0);
});

test('--device with permissions, --sysctl (namespaced only), --group-add', async () => {
  // /dev/loop7 (an unbound loop device) as /dev/xvdz, read-only in the devices cgroup.
  const out = await e.docker(['run', '--rm', '--device', '/dev/loop7:/dev/xvdz:r', 'busybox', 'sh', '-c', 'ls -l /dev/xvdz; (exec 3>/dev/xvdz) && echo opened-for-write; grep -c "b 7:7 r$" /sys/fs/cgroup/devices/devices.list']);
  assert.match(out.stdout, /^b.*7,\s+7 .*\/dev\/xvdz$/m);
  assert.doesNotMatch(out.stdout, /opened-for-write/);
  assert.match(out.stderr, /Operation not permitted/);
  assert.match(out.stdout, /^1$/m);
  const nodev = await e.docker(['run', '--rm', '--device', '/dev/no-such-dev', 'busybox', 'true']);
  assert.notEqual(nodev.code, 0);
  assert.match(nodev.stderr, /error gathering device information while adding custom device "\/dev\/no-such-dev"/);

  assert.equal((await ok(['run', '--rm', '--sysctl', 'net.ipv4.ip_forward=1', '--sysctl', 'kernel.shmmni=1000', 'busybox', 'sh', '-c', 'cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni'])).trim(), '1\n1000');
  // The docker CLI refuses these itself; the daemon refuses them for any client.
  const cli = await e.docker(['run', '--rm', '--sysctl', 'vm.swappiness=10', 'busybox', 'true']);
  assert.notEqual(cli.code, 0);
  for (const s of ['vm.swappiness', 'kernel.domainname']) {
    const r = await api(e.d.socket, 'POST', '/containers/create', { Image: 'busybox', Cmd: ['true'], HostConfig: { Sysctls: { [s]: '1' } } });
    assert.equal(r.status, 400);
    assert.equal(r.json<{ message: string }>().message, `sysctl "${s}" is not allowed`);
  }
  const hostNet = await e.docker(['create', '--network', 'host', '--sysctl', 'net.ipv4.ip_forward=1', 'busybox']);
  assert.match(hostNet.stderr, /not allowed in host network namespace/);

  const ids = (await ok(['run', '--rm', '--group-add', 'staff', '--group-add', '1234', 'busybox', 'id', '-G'])).trim().split(' ');
  assert.ok(ids.includes('50') && ids.includes('1234'), ids.join(' '));
  const unknown = await e.docker(['run', '--rm', '--group-add', 'nosuchgroup', 'busybox', 'true']);
  assert.notEqual(unknown.code, 0);
  assert.match(unknown.stderr, /Unable to find group nosuchgroup/);
});

test('--cgroup-parent, blkio throttles, --oom-kill-disable, --memory-swap, --cpuset-cpus reach the cgroups', async () => {
  const parent = `${e.cgroupParent}/custom`;
  const vda = fs.statSync('/dev/vda', { bigint: true });
  const dev = `${Number((vda.rdev >> 8n) & 0xfffn)}:${Number(vda.rdev & 0xffn)}`;
  const r = await e.docker(['run', '-d', '--name', 'knobs', '--cgroup-parent', parent, '--device-read-bps', '/dev/vda:1mb', '--device-write-iops', '/dev/vda:100',
    '-m', '64m', '--memory-swap', '96m', '--oom-kill-disable', '--cpuset-cpus', '0', 'busybox', 'sleep', '300']);
  assert.equal(r.code, 0, r.stderr);
  const id = r.stdout.trim();
  try {
    const host = (ctrl: string, f: string): string => fs.readFileSync(path.join('/sys/fs/cgroup', ctrl, parent, id, f), 'utf8').trim();
    assert.equal(host('blkio', 'blkio.throttle.read_bps_device'), `${dev} 1048576`);
    assert.equal(host('blkio', 'blkio.throttle.write_iops_device'), `${dev} 100`);
    assert.equal(host('memory', 'memory.memsw.limit_in_bytes'), String(96 << 20));
    assert.match(host('memory', 'memory.oom_control'), /^oom_kill_disable 1$/m);
    assert.equal(host('cpuset', 'cpuset.cpus'), '0');
    // Inside, the container sees its own cgroup under the custom parent.
    assert.match(await ok(['exec', 'knobs', 'cat', '/proc/self/cgroup']), new RegExp(`pids:/${parent}/${id}`));
    // stats and top find it under its own parent.
    assert.match(await ok(['top', 'knobs']), /sleep 300/);
  } finally {
    await e.docker(['rm', '-f', 'knobs']);
  }
  assert.ok(!fs.existsSync(path.join('/sys/fs/cgroup/pids', parent, id)), 'the cgroup is gone with the container');

  // A limit the kernel lacks is a warning and is dropped; the container still runs.
  const weight = await e.docker(['run', '--rm', '--blkio-weight', '300', 'busybox', 'echo', 'ran']);
  assert.equal(weight.code, 0, weight.stderr);
  assert.equal(weight.stdout.trim(), 'ran');
  if (!fs.existsSync('/sys/fs/cgroup/blkio/blkio.weight')) {
    assert.match(weight.stderr, /WARNING: Your kernel does not support Block I\/O weight or the cgroup is not mounted\. Weight discarded\./);
    await ok(['run', '-d', '--name', 'weighted', 'busybox', 'sleep', '300']);
    try {
      const upd = await api(e.d.socket, 'POST', '/containers/weighted/update', { BlkioWeight: 300 });
      assert.equal(upd.status, 200);
      assert.deepEqual(upd.json(), { Warnings: ['Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.'] });
      await ok(['restart', '-t', '0', 'weighted']);
    } finally {
      await e.docker(['rm', '-f', 'weighted']);
    }
  }
});
