// What a default container cannot do, seen from inside a real one (crun, seccomp, capabilities,
// masked paths, namespaces): no mounts, no module loading, no clock setting, no host processes to
// trace, masked /proc and /sys files. And what --privileged gives back: mounts and host devices.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { setupDaemon, type CtrEnv } from '../containers/fixtures';
import { ALL_CAPABILITIES } from '../../src/runtime/spec';

let e: CtrEnv;
before(async () => {
  e = await setupDaemon('sec-priv');
});
after(async () => {
  await e?.cleanup();
});

const bit = (cap: string): bigint => 1n << BigInt(ALL_CAPABILITIES.indexOf(cap));

function statusField(status: string, field: string): string {
  const m = new RegExp(`^${field}:\\s*(\\S+)`, 'm').exec(status);
  assert.ok(m, `${field} in /proc/self/status`);
  return m[1];
}

async function sh(args: string[], script: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return e.docker(['run', '--rm', ...args, 'busybox', 'sh', '-c', script]);
}

test('a default container: no SYS_MODULE/SYS_ADMIN/SYS_TIME/SYS_PTRACE, seccomp filtering, no mount, no clock, no host processes, masked paths', async () => {
  const status = (await sh([], 'cat /proc/self/status')).stdout;
  const eff = BigInt('0x' + statusField(status, 'CapEff'));
  const bnd = BigInt('0x' + statusField(status, 'CapBnd'));
  for (const cap of ['CAP_SYS_MODULE', 'CAP_SYS_ADMIN', 'CAP_SYS_TIME', 'CAP_SYS_PTRACE', 'CAP_SYS_RAWIO', 'CAP_NET_ADMIN', 'CAP_SYS_BOOT']) {
    assert.equal(eff & bit(cap), 0n, `${cap} not effective`);
    assert.equal(bnd & bit(cap), 0n, `${cap} not in the bounding set`);
  }
  for (const cap of ['CAP_CHOWN', 'CAP_KILL', 'CAP_NET_BIND_SERVICE']) assert.notEqual(eff & bit(cap), 0n, `${cap} effective`);
  assert.equal(statusField(status, 'Seccomp'), '2', 'seccomp filter mode');

  const mount = await sh([], 'mkdir -p /mnt/x && mount -t tmpfs none /mnt/x && echo mounted');
  assert.notEqual(mount.code, 0);
  assert.doesNotMatch(mount.stdout, /mounted/);
  assert.match(mount.stderr, /Operation not permitted|Permission denied/i);

  const before = Date.now();
  // busybox date reports the refusal but exits 0: the year after it is what counts.
  const clock = await sh([], 'date -s "2001-01-01 00:00:00" >/dev/null; date +%Y');
  assert.match(clock.stderr, /can't set date: Operation not permitted/);
  assert.notEqual(clock.stdout.trim(), '2001');
  assert.ok(Math.abs(Date.now() - before) < 60_000, 'the host clock did not move');

  // Its own pid namespace: pid 1 is its own shell, and berthd (or any host process) is invisible.
  const procs = await sh([], 'echo self=$$; ls /proc | grep -c "^[0-9]"; cat /proc/1/cmdline | tr "\\0" " "');
  assert.match(procs.stdout, /^self=1$/m);
  const count = Number(procs.stdout.split('\n')[1]);
  assert.ok(count >= 1 && count <= 5, `processes visible: ${count}`);
  const berthd = await sh([], `test -e /proc/${e.d.proc.pid}/cmdline && grep -c berthd /proc/${e.d.proc.pid}/cmdline || echo not-visible`);
  assert.match(berthd.stdout, /not-visible|^0$/m);

  // Masked: /proc files read as /dev/null (empty; on the host they are not), /sys/firmware is an
  // empty directory; /proc/sys is read-only. (This kernel has no /proc/kcore; where it has one, it is masked too.)
  const masked = await sh([], 'for f in /proc/kcore /proc/keys /proc/timer_list; do echo "$f=$(cat $f 2>/dev/null | wc -c)"; done; echo firmware=$(ls -A /sys/firmware | wc -l); (echo x > /proc/sys/kernel/domainname) && echo wrote');
  for (const f of ['/proc/kcore', '/proc/keys', '/proc/timer_list']) {
    assert.match(masked.stdout, new RegExp(`^${f}=0$`, 'm'), masked.stdout);
    if (f !== '/proc/kcore' && fs.existsSync(f)) assert.ok(fs.readFileSync(f).length > 0, `${f} has content on the host`);
  }
  assert.match(masked.stdout, /^firmware=0$/m);
  if (fs.existsSync('/sys/firmware')) assert.ok(fs.readdirSync('/sys/firmware').length > 0, '/sys/firmware has entries on the host');
  assert.doesNotMatch(masked.stdout, /wrote/);
  assert.match(masked.stderr, /Read-only file system|Permission denied|Operation not permitted/);

  // Host devices are not there, and cannot be made usable by mknod: the devices cgroup refuses them.
  // (mknod itself is allowed, as in docker; opening the node is not.)
  const dev = await sh([], 'test -e /dev/loop0 && echo has-loop0; mknod /tmp/loop0 b 7 0 && echo made; (exec 3</tmp/loop0) && echo opened');
  assert.doesNotMatch(dev.stdout, /has-loop0|opened/);
  assert.match(dev.stdout, /made/);
  assert.match(dev.stderr, /Operation not permitted/);
});

test('--cap-drop and --security-opt no-new-privileges hold', async () => {
  const chown = await sh(['--cap-drop', 'CHOWN', '--user', '0'], 'touch /tmp/f && chown 65534 /tmp/f && echo chowned');
  assert.doesNotMatch(chown.stdout, /chowned/);
  assert.match(chown.stderr, /Operation not permitted/);
  const nnp = await sh(['--security-opt', 'no-new-privileges'], 'grep NoNewPrivs /proc/self/status');
  assert.match(nnp.stdout, /NoNewPrivs:\s+1/);
});

test('--privileged: every capability the daemon has, no seccomp, mounts work, host devices are there', async () => {
  const r = await sh(['--privileged'], 'cat /proc/self/status; mkdir -p /mnt/x && mount -t tmpfs none /mnt/x && echo mounted; grep -c " /mnt/x " /proc/self/mounts; ls /dev');
  assert.equal(r.code, 0, r.stderr);
  const eff = BigInt('0x' + statusField(r.stdout, 'CapEff'));
  const hostBnd = BigInt('0x' + statusField(fs.readFileSync(`/proc/${e.d.proc.pid}/status`, 'utf8'), 'CapBnd'));
  assert.equal(eff, hostBnd);
  assert.notEqual(eff & bit('CAP_SYS_ADMIN'), 0n);
  assert.equal(statusField(r.stdout, 'Seccomp'), '0');
  assert.match(r.stdout, /^mounted$/m);
  const devs = r.stdout.split('\n');
  for (const d of ['vda', 'loop0']) {
    if (fs.existsSync(`/dev/${d}`)) assert.ok(devs.includes(d), `/dev/${d} visible`);
  }
  // and a host block device can be opened (the devices cgroup allows all).
  if (fs.existsSync('/dev/loop0')) {
    const open = await sh(['--privileged'], '(exec 3</dev/loop0) && echo opened');
    assert.equal(open.stdout.trim(), 'opened', open.stderr);
  }
});
