// The default seccomp policy: its structure, the profile loader, and its effect on a real
// container run by crun (namespace creation and mounts refused by seccomp even with the
// capability, normal programs unaffected).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeEnv, logLines, CRUN, type TestEnv } from '../runtime/helpers';
import { DEFAULT_CAPABILITIES } from '../../src/runtime/spec';
import {
  defaultSeccompProfile, resolveSeccompProfile, seccompForContainer, kernelAtLeast, CLONE_NAMESPACE_FLAGS, AF_VSOCK,
  type OciSeccomp, type OciSeccompSyscall,
} from '../../src/security';

function allowed(p: OciSeccomp, name: string): OciSeccompSyscall[] {
  return (p.syscalls ?? []).filter((s) => s.names.includes(name) && s.action === 'SCMP_ACT_ALLOW');
}
function unconditionallyAllowed(p: OciSeccomp, name: string): boolean {
  return allowed(p, name).some((s) => !s.args);
}

test('default profile: EPERM by default, x86 architectures, the ordinary syscalls allowed', () => {
  const p = defaultSeccompProfile(DEFAULT_CAPABILITIES, 'amd64', '6.1.0');
  assert.equal(p.defaultAction, 'SCMP_ACT_ERRNO');
  assert.equal(p.defaultErrnoRet, 1);
  assert.deepEqual(p.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
  for (const s of ['read', 'write', 'openat', 'execve', 'mmap', 'futex', 'exit_group', 'arch_prctl', 'modify_ldt', 'chroot', 'ptrace', 'wait4', 'rt_sigaction']) {
    assert.ok(unconditionallyAllowed(p, s), `${s} allowed`);
  }
  for (const s of ['mount', 'umount2', 'unshare', 'setns', 'clone3', 'reboot', 'init_module', 'settimeofday', 'clock_settime', 'process_vm_readv', 'kexec_load', 'keyctl', 'add_key', 'bpf', 'perf_event_open', 'iopl', 'acct', 'vhangup', 'syslog', 'open_by_handle_at', 'swapon', 'pivot_root', 'set_tls']) {
    assert.ok(!unconditionallyAllowed(p, s), `${s} not allowed`);
  }
  // clone only without namespace flags; clone3 answers ENOSYS so libc falls back to clone.
  const clone = allowed(p, 'clone');
  assert.equal(clone.length, 1);
  assert.deepEqual(clone[0].args, [{ index: 0, value: CLONE_NAMESPACE_FLAGS, op: 'SCMP_CMP_MASKED_EQ' }]);
  const clone3 = (p.syscalls ?? []).filter((s) => s.names.includes('clone3'));
  assert.deepEqual(clone3, [{ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 }]);
  assert.deepEqual(allowed(p, 'socket').map((s) => s.args), [[{ index: 0, value: AF_VSOCK, op: 'SCMP_CMP_NE' }]]);
  assert.deepEqual(allowed(p, 'personality').map((s) => s.args![0].value).sort((a, b) => a - b), [0, 8, 0x20000, 0x20008, 0xffffffff]);
  // The rules name each syscall once per condition: no duplicate unconditional entries.
  const plain = (p.syscalls ?? []).filter((s) => !s.args && s.action === 'SCMP_ACT_ALLOW').flatMap((s) => s.names);
  assert.equal(new Set(plain).size, plain.length);
});

test('capabilities open the syscalls they guard', () => {
  const base = defaultSeccompProfile(DEFAULT_CAPABILITIES, 'amd64', '6.1.0');
  const cases: [string, string[]][] = [
    ['CAP_SYS_ADMIN', ['mount', 'umount2', 'unshare', 'setns', 'clone', 'clone3', 'sethostname', 'fsopen', 'bpf', 'perf_event_open']],
    ['CAP_SYS_PTRACE', ['process_vm_readv', 'process_vm_writev', 'kcmp', 'pidfd_getfd']],
    ['CAP_SYS_MODULE', ['init_module', 'finit_module', 'delete_module']],
    ['CAP_SYS_TIME', ['settimeofday', 'clock_settime', 'stime']],
    ['CAP_SYS_BOOT', ['reboot']],
    ['CAP_SYS_NICE', ['mbind', 'set_mempolicy', 'get_mempolicy']],
    ['CAP_SYS_RAWIO', ['iopl', 'ioperm']],
    ['CAP_SYS_PACCT', ['acct']],
    ['CAP_SYSLOG', ['syslog']],
    ['CAP_SYS_TTY_CONFIG', ['vhangup']],
    ['CAP_BPF', ['bpf']],
    ['CAP_PERFMON', ['perf_event_open']],
    ['CAP_DAC_READ_SEARCH', ['open_by_handle_at']],
  ];
  for (const [cap, calls] of cases) {
    const p = defaultSeccompProfile([...DEFAULT_CAPABILITIES, cap], 'amd64', '6.1.0');
    for (const c of calls) {
      assert.ok(unconditionallyAllowed(p, c), `${c} with ${cap}`);
      assert.ok(!unconditionallyAllowed(base, c), `${c} without ${cap}`);
    }
  }
  // With CAP_SYS_ADMIN clone3 is allowed outright, not ENOSYS, and clone has no flag filter.
  const admin = defaultSeccompProfile([...DEFAULT_CAPABILITIES, 'SYS_ADMIN'], 'amd64', '6.1.0');
  assert.ok(!(admin.syscalls ?? []).some((s) => s.names.includes('clone3') && s.action === 'SCMP_ACT_ERRNO'));
  assert.ok(!allowed(admin, 'clone').some((s) => s.args));
  // Without CAP_SYS_CHROOT, chroot goes.
  assert.ok(!unconditionallyAllowed(defaultSeccompProfile(DEFAULT_CAPABILITIES.filter((c) => c !== 'CAP_SYS_CHROOT'), 'amd64', '6.1.0'), 'chroot'));
});

test('architectures and kernels: arm64 gets arm extras and AArch64/ARM; ptrace needs 4.8', () => {
  const arm = defaultSeccompProfile(DEFAULT_CAPABILITIES, 'arm64', '6.1.0');
  assert.deepEqual(arm.architectures, ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
  assert.ok(unconditionallyAllowed(arm, 'set_tls'));
  assert.ok(!unconditionallyAllowed(arm, 'arch_prctl'));
  assert.deepEqual(defaultSeccompProfile([], 'x64', '6.1.0').architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
  assert.ok(!unconditionallyAllowed(defaultSeccompProfile([], 'amd64', '4.4.0'), 'ptrace'));
  assert.ok(unconditionallyAllowed(defaultSeccompProfile([], 'amd64', '4.8.0'), 'ptrace'));
  assert.ok(kernelAtLeast('6.18.44-fc', '4.8'));
  assert.ok(!kernelAtLeast('4.7.10', '4.8'));
});

test('loader: docker-format profiles, unconfined, privileged, bad input', (t) => {
  const dir = fs.mkdtempSync('/tmp/berth-test-seccomp-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const custom = {
    defaultAction: 'SCMP_ACT_ALLOW',
    architectures: ['SCMP_ARCH_X86_64'],
    syscalls: [
      { name: 'mkdirat', action: 'SCMP_ACT_ERRNO', errnoRet: 13 },
      { names: ['chmod'], action: 'SCMP_ACT_ERRNO', includes: { caps: ['CAP_SYS_ADMIN'] } },
      { names: ['fchmod'], action: 'SCMP_ACT_LOG', excludes: { arches: ['amd64'] } },
    ],
  };
  const file = path.join(dir, 'profile.json');
  fs.writeFileSync(file, JSON.stringify(custom));
  const want: OciSeccomp = { defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86_64'], syscalls: [{ names: ['mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }] };
  assert.deepEqual(seccompForContainer({ value: file, caps: DEFAULT_CAPABILITIES, arch: 'amd64' }), want);
  // The docker CLI sends the file's content rather than its path.
  assert.deepEqual(seccompForContainer({ value: JSON.stringify(custom), caps: DEFAULT_CAPABILITIES, arch: 'amd64' }), want);
  assert.equal(seccompForContainer({ value: 'unconfined', caps: [] }), undefined);
  assert.equal(seccompForContainer({ caps: [], privileged: true }), undefined);
  assert.deepEqual(seccompForContainer({ caps: DEFAULT_CAPABILITIES, arch: 'amd64', kernel: '6.1' }), defaultSeccompProfile(DEFAULT_CAPABILITIES, 'amd64', '6.1'));
  assert.deepEqual(seccompForContainer({ value: 'builtin', caps: DEFAULT_CAPABILITIES, arch: 'amd64', kernel: '6.1' }), defaultSeccompProfile(DEFAULT_CAPABILITIES, 'amd64', '6.1'));
  assert.throws(() => seccompForContainer({ value: '{not json', caps: [] }), /Decoding seccomp profile failed/);
  assert.throws(() => seccompForContainer({ value: path.join(dir, 'missing.json'), caps: [] }), /opening seccomp profile/);
  assert.throws(() => resolveSeccompProfile({ defaultAction: 'SCMP_ACT_NOPE' as 'SCMP_ACT_ALLOW' }, []), /invalid action/);
  assert.throws(() => resolveSeccompProfile({ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86_64'], archMap: [{ architecture: 'SCMP_ARCH_X86_64', subArchitectures: [] }] }, []), /use either 'architectures' or 'archMap'/);
  assert.throws(() => resolveSeccompProfile({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ name: 'a', names: ['b'], action: 'SCMP_ACT_ALLOW' }] }, []), /use either 'name' or 'names'/);
  assert.throws(() => resolveSeccompProfile({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['x'], action: 'SCMP_ACT_ALLOW', args: [{ index: 9, value: 0, op: 'SCMP_CMP_EQ' }] }] }, []), /invalid argument index/);
});

// ---- real containers ----

const SCRIPT = [
  'echo hello; ls / >/dev/null && echo ls=ok',
  'unshare -U true 2>/dev/null; echo unshare=$?',
  'mkdir -p /mnt/t; mount -t tmpfs none /mnt/t 2>/dev/null; echo mount=$?',
  // busybox date reports a failed settimeofday on stderr but still exits 0.
  'date -s 2001-01-01 2>&1 | grep -q "set date: Operation not permitted" && echo date=EPERM',
].join('; ');

async function runWithSeccomp(env: TestEnv, seccomp: OciSeccomp | undefined, capAdd: string[] = []): Promise<string[]> {
  const b = env.bundle({ args: ['sh', '-c', SCRIPT], capAdd });
  const cfgFile = path.join(b.bundleDir, 'config.json');
  const spec = JSON.parse(fs.readFileSync(cfgFile, 'utf8')) as { linux: Record<string, unknown> };
  if (seccomp) spec.linux.seccomp = seccomp;
  fs.writeFileSync(cfgFile, JSON.stringify(spec));
  await env.runtime.create(b.id, b.bundleDir, { runtimePath: CRUN, tty: false, openStdin: false, logPath: b.logPath, cgroupsPath: b.cgroupsPath });
  const exited = env.runtime.onExit(b.id);
  await env.runtime.start(b.id);
  let timer: NodeJS.Timeout | undefined;
  const exit = await Promise.race([exited, new Promise<never>((_r, rej) => (timer = setTimeout(() => rej(new Error('container did not exit')), 15_000)))]).finally(() => clearTimeout(timer));
  assert.equal(exit.exitCode, 0, logLines(b.logPath).join('\n'));
  return logLines(b.logPath);
}

function addApplets(env: TestEnv): void {
  for (const a of ['unshare', 'mount', 'date', 'mkdir']) {
    const link = path.join(env.rootfs, 'bin', a);
    if (!fs.existsSync(link)) fs.symlinkSync('busybox', link);
  }
}

test('crun with the default profile: ordinary commands work; unshare, mount and date -s are refused', async (t) => {
  const env = makeEnv(t);
  addApplets(env);
  const lines = await runWithSeccomp(env, defaultSeccompProfile(DEFAULT_CAPABILITIES));
  assert.deepEqual(lines, ['stdout:hello', 'stdout:ls=ok', 'stdout:unshare=1', 'stdout:mount=1', 'stdout:date=EPERM']);
});

test('crun: seccomp alone refuses mount and user namespaces even when CAP_SYS_ADMIN is granted', async (t) => {
  const env = makeEnv(t);
  addApplets(env);
  // The container holds CAP_SYS_ADMIN, but its filter is the one for the default capabilities.
  const filtered = await runWithSeccomp(env, defaultSeccompProfile(DEFAULT_CAPABILITIES), ['SYS_ADMIN']);
  assert.ok(filtered.includes('stdout:mount=1'), filtered.join('\n'));
  assert.ok(filtered.includes('stdout:unshare=1'), filtered.join('\n'));
  // Unconfined with CAP_SYS_ADMIN: the mount and the user namespace work.
  const unconfined = await runWithSeccomp(env, seccompForContainer({ value: 'unconfined', caps: [] }), ['SYS_ADMIN']);
  assert.ok(unconfined.includes('stdout:mount=0'), unconfined.join('\n'));
  assert.ok(unconfined.includes('stdout:unshare=0'), unconfined.join('\n'));
  // And the default profile computed for CAP_SYS_ADMIN allows them too.
  const granted = await runWithSeccomp(env, defaultSeccompProfile([...DEFAULT_CAPABILITIES, 'CAP_SYS_ADMIN']), ['SYS_ADMIN']);
  assert.ok(granted.includes('stdout:mount=0'), granted.join('\n'));
  assert.ok(granted.includes('stdout:unshare=0'), granted.join('\n'));
});
