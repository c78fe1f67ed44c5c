// Seccomp for containers: docker's profile format (what --security-opt seccomp=<file> holds, and
// what the default policy is written in) resolved, for one container's capabilities and the
// host's architecture, into the OCI runtime spec's linux.seccomp.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { invalidParameter } from '../common/errors';
import { DEFAULT_PROFILE } from './seccomp-default';

export type SeccompAction =
  | 'SCMP_ACT_KILL' | 'SCMP_ACT_KILL_PROCESS' | 'SCMP_ACT_KILL_THREAD' | 'SCMP_ACT_TRAP' | 'SCMP_ACT_ERRNO'
  | 'SCMP_ACT_TRACE' | 'SCMP_ACT_ALLOW' | 'SCMP_ACT_LOG' | 'SCMP_ACT_NOTIFY';
export type SeccompOp = 'SCMP_CMP_NE' | 'SCMP_CMP_LT' | 'SCMP_CMP_LE' | 'SCMP_CMP_EQ' | 'SCMP_CMP_GE' | 'SCMP_CMP_GT' | 'SCMP_CMP_MASKED_EQ';

const ACTIONS: SeccompAction[] = ['SCMP_ACT_KILL', 'SCMP_ACT_KILL_PROCESS', 'SCMP_ACT_KILL_THREAD', 'SCMP_ACT_TRAP', 'SCMP_ACT_ERRNO', 'SCMP_ACT_TRACE', 'SCMP_ACT_ALLOW', 'SCMP_ACT_LOG', 'SCMP_ACT_NOTIFY'];
const OPS: SeccompOp[] = ['SCMP_CMP_NE', 'SCMP_CMP_LT', 'SCMP_CMP_LE', 'SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT', 'SCMP_CMP_MASKED_EQ'];

export interface SeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: SeccompOp;
}

// ---- docker's profile format ----

export interface DockerSeccompFilter {
  /** Go architecture names (amd64, arm64, x86, x32, arm, s390x, ...). */
  arches?: string[];
  caps?: string[];
  minKernel?: string;
}

export interface DockerSeccompSyscall {
  name?: string;
  names?: string[];
  action: SeccompAction;
  errnoRet?: number;
  args?: SeccompArg[] | null;
  comment?: string;
  includes?: DockerSeccompFilter;
  excludes?: DockerSeccompFilter;
}

export interface DockerSeccompProfile {
  defaultAction: SeccompAction;
  defaultErrnoRet?: number;
  architectures?: string[];
  archMap?: { architecture: string; subArchitectures: string[] | null }[];
  syscalls?: DockerSeccompSyscall[] | null;
  flags?: string[];
  listenerPath?: string;
  listenerMetadata?: string;
}

// ---- the OCI form (runtime-spec config-linux.md "Seccomp") ----

export interface OciSeccompSyscall {
  names: string[];
  action: SeccompAction;
  errnoRet?: number;
  args?: SeccompArg[];
}

export interface OciSeccomp {
  defaultAction: SeccompAction;
  defaultErrnoRet?: number;
  architectures?: string[];
  flags?: string[];
  listenerPath?: string;
  listenerMetadata?: string;
  syscalls?: OciSeccompSyscall[];
}

export interface SeccompTarget {
  /** Go (amd64) or Node (x64) architecture name; default: this host's. */
  arch?: string;
  /** Kernel release ("6.1.0-13-amd64"); default: this host's. */
  kernel?: string;
}

/** Node's process.arch → Go's GOARCH, the names profiles use in includes/excludes.arches. */
const NODE_TO_GO: Record<string, string> = { x64: 'amd64', ia32: '386', arm: 'arm', arm64: 'arm64', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', mips: 'mips', mipsel: 'mipsle', loong64: 'loong64' };
/** GOARCH → libseccomp's native architecture name, to pick the archMap entry. */
const GO_TO_SECCOMP: Record<string, string> = {
  amd64: 'SCMP_ARCH_X86_64', '386': 'SCMP_ARCH_X86', x86: 'SCMP_ARCH_X86', arm64: 'SCMP_ARCH_AARCH64', arm: 'SCMP_ARCH_ARM',
  ppc64le: 'SCMP_ARCH_PPC64LE', s390x: 'SCMP_ARCH_S390X', riscv64: 'SCMP_ARCH_RISCV64', mips64: 'SCMP_ARCH_MIPS64',
  mips64le: 'SCMP_ARCH_MIPSEL64', mips: 'SCMP_ARCH_MIPS', mipsle: 'SCMP_ARCH_MIPSEL', loong64: 'SCMP_ARCH_LOONGARCH64',
};

function goArch(arch: string): string {
  return NODE_TO_GO[arch] ?? arch;
}

function normalizeCap(c: string): string {
  const up = c.trim().toUpperCase();
  return up.startsWith('CAP_') ? up : `CAP_${up}`;
}

/** Compares "major.minor" of a kernel release with a profile's minKernel; true when kernel >= min. */
export function kernelAtLeast(release: string, min: string): boolean {
  const parse = (s: string): [number, number] => {
    const m = /^(\d+)\.(\d+)/.exec(s);
    if (!m) throw invalidParameter(`invalid kernel version ${JSON.stringify(s)}`);
    return [Number(m[1]), Number(m[2])];
  };
  const [a, b] = parse(release);
  const [x, y] = parse(min);
  return a !== x ? a > x : b >= y;
}

function checkAction(a: unknown, where: string): SeccompAction {
  if (!ACTIONS.includes(a as SeccompAction)) throw invalidParameter(`seccomp profile: invalid action ${JSON.stringify(a)} in ${where}`);
  return a as SeccompAction;
}

function checkArgs(args: unknown, where: string): SeccompArg[] | undefined {
  if (args === undefined || args === null) return undefined;
  if (!Array.isArray(args)) throw invalidParameter(`seccomp profile: args of ${where} must be a list`);
  if (args.length === 0) return undefined;
  return args.map((a: unknown) => {
    const arg = a as Partial<SeccompArg>;
    if (!Number.isInteger(arg.index) || arg.index! < 0 || arg.index! > 5) throw invalidParameter(`seccomp profile: invalid argument index in ${where}`);
    if (typeof arg.value !== 'number' || arg.value < 0) throw invalidParameter(`seccomp profile: invalid argument value in ${where}`);
    if (!OPS.includes(arg.op as SeccompOp)) throw invalidParameter(`seccomp profile: invalid operator ${JSON.stringify(arg.op)} in ${where}`);
    const out: SeccompArg = { index: arg.index!, value: arg.value, op: arg.op! };
    if (arg.valueTwo !== undefined && arg.valueTwo !== 0) out.valueTwo = arg.valueTwo;
    return out;
  });
}

/**
 * Resolves a docker-format profile for one container: keeps the rules whose includes hold and
 * whose excludes do not (capabilities from the container's bounding set, the architecture, the
 * kernel), and picks the architectures of the host from archMap.
 */
export function resolveSeccompProfile(profile: DockerSeccompProfile, caps: string[], target: SeccompTarget = {}): OciSeccomp {
  const arch = goArch(target.arch ?? process.arch);
  const kernel = target.kernel ?? os.release();
  const capSet = new Set(caps.map(normalizeCap));
  if (typeof profile !== 'object' || profile === null) throw invalidParameter('seccomp profile: not a JSON object');
  const out: OciSeccomp = { defaultAction: checkAction(profile.defaultAction, 'defaultAction') };
  if (profile.defaultErrnoRet !== undefined) out.defaultErrnoRet = profile.defaultErrnoRet;

  if (profile.architectures?.length && profile.archMap?.length) {
    throw invalidParameter("'architectures' and 'archMap' were specified in the seccomp profile, use either 'architectures' or 'archMap'");
  }
  if (profile.architectures?.length) out.architectures = [...profile.architectures];
  else if (profile.archMap?.length) {
    const native = GO_TO_SECCOMP[arch];
    const entry = profile.archMap.find((a) => a.architecture === native);
    if (entry) out.architectures = [entry.architecture, ...(entry.subArchitectures ?? [])];
  }
  if (profile.flags?.length) out.flags = [...profile.flags];
  if (profile.listenerPath) out.listenerPath = profile.listenerPath;
  if (profile.listenerMetadata) out.listenerMetadata = profile.listenerMetadata;

  const syscalls: OciSeccompSyscall[] = [];
  for (const [i, call] of (profile.syscalls ?? []).entries()) {
    const where = `syscalls[${i}]`;
    if (call.name && call.names?.length) throw invalidParameter("seccomp profile: use either 'name' or 'names'");
    const names = call.name ? [call.name] : [...(call.names ?? [])];
    if (names.length === 0 || names.some((n) => typeof n !== 'string' || n === '')) throw invalidParameter(`seccomp profile: ${where} names no syscall`);
    const ex = call.excludes ?? {};
    if (ex.arches?.includes(arch)) continue;
    if (ex.caps?.some((c) => capSet.has(normalizeCap(c)))) continue;
    if (ex.minKernel && kernelAtLeast(kernel, ex.minKernel)) continue;
    const inc = call.includes ?? {};
    if (inc.arches?.length && !inc.arches.includes(arch)) continue;
    if (inc.caps?.length && !inc.caps.every((c) => capSet.has(normalizeCap(c)))) continue;
    if (inc.minKernel && !kernelAtLeast(kernel, inc.minKernel)) continue;
    const rule: OciSeccompSyscall = { names, action: checkAction(call.action, where) };
    if (call.errnoRet !== undefined) rule.errnoRet = call.errnoRet;
    const args = checkArgs(call.args, where);
    if (args) rule.args = args;
    syscalls.push(rule);
  }
  if (syscalls.length > 0) out.syscalls = syscalls;
  return out;
}

/**
 * Docker's default policy for a container with these capabilities (its bounding set, e.g.
 * computeCapabilities()'s result): EPERM for everything but the allow-list, plus the syscalls
 * each granted capability guards.
 */
export function defaultSeccompProfile(caps: string[], arch?: string, kernel?: string): OciSeccomp {
  return resolveSeccompProfile(DEFAULT_PROFILE, caps, { arch, kernel });
}

/** Parses a docker-format profile's JSON text (a clear 400 when it is not one). */
export function parseSeccompProfile(text: string): DockerSeccompProfile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw invalidParameter(`Decoding seccomp profile failed: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw invalidParameter('Decoding seccomp profile failed: not a JSON object');
  return parsed as DockerSeccompProfile;
}

/**
 * The seccomp of a container from its `--security-opt seccomp=<value>`: "unconfined" → none;
 * absent, "" or "builtin" → the default; JSON text (what the docker CLI sends after reading the
 * file) or a path to a profile file → that profile. Privileged containers run unconfined, as in
 * docker. Returns undefined for "no seccomp".
 */
export function seccompForContainer(opts: { value?: string; caps: string[]; privileged?: boolean; arch?: string; kernel?: string }): OciSeccomp | undefined {
  const value = opts.value?.trim() ?? '';
  if (opts.privileged || value === 'unconfined') return undefined;
  if (value === '' || value === 'builtin') return defaultSeccompProfile(opts.caps, opts.arch, opts.kernel);
  let text = value;
  if (!value.startsWith('{')) {
    try {
      text = fs.readFileSync(value, 'utf8');
    } catch (err) {
      throw invalidParameter(`opening seccomp profile (${value}) failed: ${(err as Error).message}`);
    }
  }
  return resolveSeccompProfile(parseSeccompProfile(text), opts.caps, { arch: opts.arch, kernel: opts.kernel });
}

/** The default profile in docker's JSON format (for `docker info`-style display or export). */
export function defaultProfileJSON(): string {
  return JSON.stringify(DEFAULT_PROFILE, null, 2);
}
