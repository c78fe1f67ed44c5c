// AppArmor, as dockerd uses it: where the kernel has AppArmor enabled and apparmor_parser is
// installed, berthd loads its default profile `berth-default` at start-up (and again before a
// container start if it has been unloaded), and containers run under it unless they are
// privileged (unconfined) or name another profile with --security-opt apparmor=<profile>.
// Where the host has no AppArmor, as dockerd, nothing is applied: an explicit apparmor=<profile>
// is accepted and ignored, /info lists no name=apparmor.
//
// The default profile has docker-default's rules (written here from what they do): everything
// is allowed except mounting, writes to most of /proc and /sys, and reads of the dangerous
// kernel interfaces; signals and ptrace only among the profile's own processes and from the
// host's unconfined processes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';

export const DEFAULT_APPARMOR_PROFILE = 'berth-default';
export const UNCONFINED_APPARMOR_PROFILE = 'unconfined';

const ENABLED_FILE = '/sys/module/apparmor/parameters/enabled';
const PROFILES_FILE = '/sys/kernel/security/apparmor/profiles';
const PARSER_PATHS = ['/sbin/apparmor_parser', '/usr/sbin/apparmor_parser'];

export interface AppArmorHost {
  /** /sys/module/apparmor/parameters/enabled, or undefined when the kernel has no AppArmor. */
  enabledFile?: string;
  parser?: string;
}

function readHost(): AppArmorHost {
  let enabledFile: string | undefined;
  try {
    enabledFile = fs.readFileSync(ENABLED_FILE, 'utf8');
  } catch {}
  return { enabledFile, parser: PARSER_PATHS.find((p) => fs.existsSync(p)) };
}

/** AppArmor is usable: the kernel has it enabled and apparmor_parser is installed (containerd's test). */
export function hostSupportsAppArmor(host: AppArmorHost = readHost()): boolean {
  return host.enabledFile !== undefined && host.enabledFile.trim().startsWith('Y') && host.parser !== undefined;
}

/**
 * The profile a container runs under, or undefined where the host has no AppArmor (nothing is
 * applied then, as dockerd). `requested` is the value of --security-opt apparmor=<profile>.
 */
export function appArmorProfileFor(o: { requested?: string; privileged: boolean; supported: boolean }): string | undefined {
  if (!o.supported) return undefined;
  if (o.requested) return o.requested;
  return o.privileged ? UNCONFINED_APPARMOR_PROFILE : DEFAULT_APPARMOR_PROFILE;
}

export interface ProfileOptions {
  /** Include <abstractions/base> (dockerd does when /etc/apparmor.d/abstractions/base exists). */
  includeBase?: boolean;
  /** The profile berthd itself runs under, if any: its signals (kill, stop) must be received. */
  daemonProfile?: string;
}

/** The text of the default profile, for apparmor_parser. */
export function generateDefaultProfile(name = DEFAULT_APPARMOR_PROFILE, opts: ProfileOptions = {}): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) throw new Error(`invalid AppArmor profile name: ${JSON.stringify(name)}`);
  const lines: string[] = [
    '#include <tunables/global>',
    '',
    `profile ${name} flags=(attach_disconnected,mediate_deleted) {`,
  ];
  if (opts.includeBase) lines.push('  #include <abstractions/base>', '');
  lines.push(
    '  # Broad permissions; the restrictions below are what the profile is for.',
    '  network,',
    '  capability,',
    '  file,',
    '  umount,',
    '',
    '  # Signals: from unconfined host processes, and among processes of this profile.',
    '  signal (receive) peer=unconfined,',
  );
  if (opts.daemonProfile && opts.daemonProfile !== UNCONFINED_APPARMOR_PROFILE) lines.push(`  signal (receive) peer=${opts.daemonProfile},`);
  lines.push(
    `  signal (send,receive) peer=${name},`,
    '',
    '  # /proc: no writes to files directly in /proc, nor below anything but /proc/<pid> and /proc/sys.',
    '  deny @{PROC}/* w,',
    '  deny @{PROC}/{[^1-9],[^1-9][^0-9],[^1-9s][^0-9y][^0-9s],[^1-9][^0-9][^0-9][^0-9/]*}/** w,',
    '  # /proc/sys: writable only under kernel/, and there only the shm* settings.',
    '  deny @{PROC}/sys/[^k]** w,',
    '  deny @{PROC}/sys/kernel/{?,??,[^s][^h][^m]**} w,',
    '  deny @{PROC}/sysrq-trigger rwklx,',
    '  deny @{PROC}/kcore rwklx,',
    '',
    '  deny mount,',
    '',
    '  # /sys: no writes, links, locks or execution anywhere but /sys/fs/cgroup.',
    '  deny /sys/[^f]*/** wklx,',
    '  deny /sys/f[^s]*/** wklx,',
    '  deny /sys/fs/[^c]*/** wklx,',
    '  deny /sys/fs/c[^g]*/** wklx,',
    '  deny /sys/fs/cg[^r]*/** wklx,',
    '  # and nothing at all of firmware, power capping and the security file systems.',
    '  deny /sys/firmware/** rwklx,',
    '  deny /sys/devices/virtual/powercap/** rwklx,',
    '  deny /sys/kernel/security/** rwklx,',
    '',
    '  # ps inside the container (and berth top from the host) reads other processes of the profile.',
    `  ptrace (trace,read,tracedby,readby) peer=${name},`,
    '}',
    '',
  );
  return lines.join('\n');
}

/** Whether a profile of that name is loaded in the kernel. */
export function profileLoaded(name: string, profilesFile = PROFILES_FILE): boolean {
  try {
    return fs.readFileSync(profilesFile, 'utf8').split('\n').some((l) => l.startsWith(`${name} (`));
  } catch {
    return false;
  }
}

/** The profile berthd runs under itself (dockerd lets its own signals through to containers). */
function ownProfile(): string | undefined {
  try {
    const label = fs.readFileSync('/proc/self/attr/current', 'utf8').replace(/\0/g, '').trim();
    return label.replace(/ \((enforce|complain)\)$/, '') || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Writes the default profile under dir and loads it (replacing an older version) with
 * apparmor_parser. One spawn, at start-up or when the profile has been unloaded meanwhile.
 */
export function installDefaultProfile(dir: string, host: AppArmorHost = readHost()): void {
  if (!hostSupportsAppArmor(host)) return;
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, DEFAULT_APPARMOR_PROFILE);
  const text = generateDefaultProfile(DEFAULT_APPARMOR_PROFILE, { includeBase: fs.existsSync('/etc/apparmor.d/abstractions/base'), daemonProfile: ownProfile() });
  fs.writeFileSync(file, text, { mode: 0o644 });
  try {
    execFileSync(host.parser!, ['-Kr', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const stderr = String((err as { stderr?: Buffer }).stderr ?? '').trim();
    throw new Error(`AppArmor enabled on system but the ${DEFAULT_APPARMOR_PROFILE} profile could not be loaded: ${stderr || (err as Error).message}`);
  }
}

/** Loads the default profile again if something (a package upgrade) unloaded it. */
export function ensureDefaultProfileLoaded(dir: string): void {
  if (!profileLoaded(DEFAULT_APPARMOR_PROFILE)) installDefaultProfile(dir);
}
