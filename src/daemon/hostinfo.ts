// Facts about the host that /info and /version report. Read once at start-up (they do not change
// while the daemon runs), so /info costs no file reads beyond live counts.
import * as fs from 'node:fs';
import * as os from 'node:os';

export interface HostInfo {
  kernelVersion: string;
  operatingSystem: string;
  osVersion: string;
  architecture: string;
  ncpu: number;
  memTotal: number;
  hostname: string;
  cgroupVersion: '1' | '2';
  backingFs: string;
}

function osRelease(): Record<string, string> {
  const out: Record<string, string> = {};
  try {
    for (const line of fs.readFileSync('/etc/os-release', 'utf8').split('\n')) {
      const m = /^([A-Z_]+)=(.*)$/.exec(line);
      if (m) out[m[1]] = m[2].replace(/^"(.*)"$/, '$1');
    }
  } catch {}
  return out;
}

/** cgroup v2 only when /sys/fs/cgroup itself is the unified hierarchy. */
function cgroupVersion(): '1' | '2' {
  try {
    return fs.readFileSync('/sys/fs/cgroup/cgroup.controllers') ? '2' : '1';
  } catch {
    return '1';
  }
}

/** Filesystem type of a path, from the longest matching mount point in /proc/self/mounts. */
export function fsTypeOf(p: string): string {
  let best = '';
  let type = 'unknown';
  try {
    for (const line of fs.readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
      const f = line.split(' ');
      if (f.length < 3) continue;
      const mp = f[1].replace(/\\040/g, ' ');
      if ((p === mp || p.startsWith(mp.endsWith('/') ? mp : mp + '/')) && mp.length >= best.length) {
        best = mp;
        type = f[2];
      }
    }
  } catch {}
  return type === 'ext4' || type === 'ext3' || type === 'ext2' ? 'extfs' : type;
}

export function readHostInfo(dataRoot: string): HostInfo {
  const rel = osRelease();
  const arch = os.arch() === 'x64' ? 'x86_64' : os.arch() === 'arm64' ? 'aarch64' : os.arch();
  return {
    kernelVersion: os.release(),
    operatingSystem: rel.PRETTY_NAME ?? 'Linux',
    osVersion: rel.VERSION_ID ?? '',
    architecture: arch,
    ncpu: os.cpus().length,
    memTotal: os.totalmem(),
    hostname: os.hostname(),
    cgroupVersion: cgroupVersion(),
    backingFs: fsTypeOf(dataRoot),
  };
}

/** GOARCH-style name, as image configs and manifests spell the architecture. */
export function goArch(): string {
  const a = os.arch();
  return a === 'x64' ? 'amd64' : a === 'ia32' ? '386' : a;
}
