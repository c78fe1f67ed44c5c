// Cgroup layout detection and repair, and removal of a container's cgroups.
//
// Three layouts exist: pure v2 (cgroup2 mounted at /sys/fs/cgroup), pure v1 (one cgroup v1
// hierarchy per controller) and "hybrid" (v1 hierarchies plus a cgroup2 mount, usually at
// /sys/fs/cgroup/unified, which is meant to hold no controllers). crun refuses to run on a hybrid
// layout whose cgroup2 hierarchy still holds a controller ("cgroups in hybrid mode not supported,
// drop all controllers from cgroupv2"); a controller that no v1 hierarchy claims stays on cgroup2
// (hugetlb on this machine). Mounting a v1 hierarchy for it, as Debian's cgroupfs-mount does,
// moves it off cgroup2 and makes crun usable.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { systemError } from '../common/errors';
import type { Logger } from '../common/logger';

export interface CgroupLayout {
  mode: 'v1' | 'v2' | 'hybrid';
  /** Controller (or "name=systemd") → mount point of its v1 hierarchy. Controllers that share a
   * hierarchy (cpu,cpuacct) each map to the same mount point. */
  v1: Map<string, string>;
  /** Mount point of the cgroup2 hierarchy, if any. */
  unified?: string;
}

export interface CgroupsStatus {
  /** As docker reports CgroupVersion: hybrid counts as 1 (containers get v1 controllers). */
  version: 1 | 2;
  driver: 'cgroupfs';
  warnings: string[];
  layout: CgroupLayout;
}

const MOUNTINFO = '/proc/self/mountinfo';

/** Parses /proc/self/mountinfo text into the cgroup layout. Pure, for tests. */
export function parseCgroupMounts(mountinfo: string): CgroupLayout {
  const v1 = new Map<string, string>();
  let unified: string | undefined;
  for (const line of mountinfo.split('\n')) {
    // mountinfo: id parent major:minor root mountpoint options [optional fields] - fstype source superoptions
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const right = line.slice(sep + 3).split(' ');
    const mountPoint = unescapeMountPath(left[4] ?? '');
    const fsType = right[0];
    if (fsType === 'cgroup2') {
      unified ??= mountPoint;
    } else if (fsType === 'cgroup') {
      for (const opt of (right[2] ?? '').split(',')) {
        if (['rw', 'ro', 'relatime', 'noatime', 'nosuid', 'nodev', 'noexec', 'clone_children', 'noprefix', 'xattr', 'cpuset_v2_mode'].includes(opt)) continue;
        if (opt.startsWith('release_agent=')) continue;
        if (!v1.has(opt)) v1.set(opt, mountPoint);
      }
    }
  }
  const mode = v1.size === 0 ? 'v2' : unified ? 'hybrid' : 'v1';
  return { mode, v1, unified };
}

function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export function detectCgroupLayout(): CgroupLayout {
  return parseCgroupMounts(fs.readFileSync(MOUNTINFO, 'utf8'));
}

let knownLayout: CgroupLayout | undefined;

/**
 * The layout as last detected (ensureCgroupsUsable detects it again at start-up, after any mount
 * it makes). /proc/self/mountinfo grows with every running container's mounts, and reading it at
 * each create and delete cost more the more containers ran; cgroup hierarchies are mounted at
 * boot (or by berthd at start-up), not while containers come and go.
 */
export function currentCgroupLayout(): CgroupLayout {
  return (knownLayout ??= detectCgroupLayout());
}

function readControllers(unified: string): string[] {
  try {
    return fs.readFileSync(path.join(unified, 'cgroup.controllers'), 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
}

/**
 * Makes the cgroup layout usable by crun, at daemon start-up: on a hybrid layout, every controller
 * still on the cgroup2 hierarchy gets its own v1 hierarchy under the v1 mounts' parent directory.
 * Throws a System error naming what to do when that is impossible.
 */
export function ensureCgroupsUsable(log: Logger, mountFn: (controller: string, target: string) => void = mountV1Hierarchy): CgroupsStatus {
  const warnings: string[] = [];
  let layout = (knownLayout = detectCgroupLayout());
  if (layout.mode === 'v2') return { version: 2, driver: 'cgroupfs', warnings, layout };
  if (layout.mode === 'hybrid' && layout.unified) {
    const stranded = readControllers(layout.unified);
    if (stranded.length > 0) {
      // The v1 mounts normally share one parent (/sys/fs/cgroup); the new hierarchy goes there too.
      const anyV1 = layout.v1.values().next().value as string;
      const parent = path.dirname(anyV1);
      for (const controller of stranded) {
        const target = path.join(parent, controller);
        log.info('moving cgroup controller from the cgroup2 hierarchy to its own v1 hierarchy', { controller, target });
        try {
          fs.mkdirSync(target, { recursive: true });
          mountFn(controller, target);
        } catch (err) {
          throw systemError(
            `cgroups: the ${controller} controller is attached to the cgroup2 hierarchy at ${layout.unified}, and crun cannot run ` +
              `containers on a hybrid cgroup layout until it is moved; mounting it at ${target} failed: ${(err as Error).message}. ` +
              `Run "mount -t cgroup -o ${controller} cgroup ${target}" as root, or boot with cgroup v2 only (systemd.unified_cgroup_hierarchy=1)`,
            err,
          );
        }
      }
      layout = knownLayout = detectCgroupLayout();
      const left = readControllers(layout.unified ?? '');
      if (left.length > 0) {
        throw systemError(`cgroups: controllers ${left.join(', ')} are still attached to the cgroup2 hierarchy at ${layout.unified}; crun cannot run containers on this hybrid layout`);
      }
      warnings.push(`cgroup controller(s) ${stranded.join(', ')} moved from cgroup2 to their own v1 hierarchy`);
    }
  }
  for (const c of ['memory', 'cpu', 'pids', 'devices', 'freezer']) {
    if (!layout.v1.has(c)) warnings.push(`WARNING: No ${c} cgroup controller support`);
  }
  return { version: 1, driver: 'cgroupfs', warnings, layout };
}

/**
 * Where the cgroup2 hierarchy is mounted and whether it has `favordynmods`, from mountinfo text
 * (pure, for tests).
 */
export function cgroup2Mount(mountinfo: string): { mountPoint: string; favorDynmods: boolean } | undefined {
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const right = line.slice(sep + 3).split(' ');
    if (right[0] !== 'cgroup2') continue;
    return { mountPoint: unescapeMountPath(line.slice(0, sep).split(' ')[4] ?? ''), favorDynmods: (right[2] ?? '').split(',').includes('favordynmods') };
  }
  return undefined;
}

/**
 * Makes moving a process into a cgroup cheap, at daemon start-up: remounts the cgroup2 hierarchy
 * with `favordynmods` (the kernel's cgroup mount option for hosts whose cgroups change often).
 *
 * Every move (the runtime putting a container's init into its cgroups on a v1 or hybrid layout,
 * `<runtime> exec` for docker exec and each health probe, runc everywhere) takes the kernel's
 * one global cgroup_threadgroup_rwsem for writing, which without the option first waits for an
 * RCU grace period: 10-25 ms with nothing on the CPU, in every container start (measured with a
 * shell moving a sleeping process: 11-27 ms; with the option 1-4 ms). The option keeps the lock
 * ready for writers instead, at the price of a slightly slower fork and exit for every process
 * on the host. It is one flag of the kernel for the whole host (whichever hierarchy carries it),
 * so it stays when berthd stops; `--cgroup-favor-dynmods=false` leaves the mount alone.
 * Returns what it did, for the log; never throws (an older kernel lacks the option).
 */
export function favorCgroupMigrations(log: Logger, remount: (mountPoint: string) => void = remountFavoringDynmods): 'set' | 'already' | 'unavailable' {
  let m: ReturnType<typeof cgroup2Mount>;
  try {
    m = cgroup2Mount(fs.readFileSync(MOUNTINFO, 'utf8'));
  } catch {
    return 'unavailable';
  }
  if (!m) return 'unavailable';
  if (m.favorDynmods) return 'already';
  try {
    remount(m.mountPoint);
  } catch (err) {
    log.info('cannot remount cgroup2 with favordynmods; each container start waits for the kernel to move its process', { mountPoint: m.mountPoint, error: (err as Error).message.trim() });
    return 'unavailable';
  }
  log.info('remounted cgroup2 with favordynmods: moving a process into a cgroup no longer waits for an RCU grace period', { mountPoint: m.mountPoint });
  return 'set';
}

/** One spawn of mount(8), at daemon start-up only: it keeps the mount's other options. */
function remountFavoringDynmods(mountPoint: string): void {
  execFileSync('mount', ['-o', 'remount,favordynmods', mountPoint], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** One spawn of mount(8), at daemon start-up only. */
function mountV1Hierarchy(controller: string, target: string): void {
  execFileSync('mount', ['-t', 'cgroup', '-o', controller, 'cgroup', target], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Directories holding a cgroup at cgroupPath ("/berth/<id>") in every hierarchy (v1 and cgroup2). */
export function cgroupDirs(cgroupPath: string, layout: CgroupLayout = currentCgroupLayout()): string[] {
  const rel = cgroupPath.replace(/^\/+/, '');
  if (rel === '' || rel.split('/').includes('..')) throw new Error(`invalid cgroup path ${JSON.stringify(cgroupPath)}`);
  const roots = new Set<string>(layout.v1.values());
  if (layout.unified) roots.add(layout.unified);
  return [...roots].map((r) => path.join(r, rel));
}

/**
 * Removes the cgroup at cgroupPath (and, with recursive, every cgroup below it) in all
 * hierarchies. A cgroup still holding processes cannot be removed; this retries briefly (the
 * kernel frees a cgroup a moment after its last process is reaped) and reports what is left.
 */
export async function removeCgroup(cgroupPath: string, opts: { recursive?: boolean; retryMs?: number; layout?: CgroupLayout } = {}): Promise<string[]> {
  const deadline = Date.now() + (opts.retryMs ?? 500);
  const leftovers: string[] = [];
  for (const dir of cgroupDirs(cgroupPath, opts.layout)) {
    for (const d of opts.recursive ? subtreeDeepestFirst(dir) : [dir]) {
      for (;;) {
        try {
          fs.rmdirSync(d);
          break;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') break;
          if (code === 'EBUSY' && Date.now() < deadline) {
            await new Promise((r) => setTimeout(r, 10));
            continue;
          }
          leftovers.push(d);
          break;
        }
      }
    }
  }
  return leftovers;
}

function subtreeDeepestFirst(dir: string): string[] {
  const out: string[] = [];
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) if (e.isDirectory()) out.push(...subtreeDeepestFirst(path.join(dir, e.name)));
  out.push(dir);
  return out;
}

/** PIDs in a cgroup (any hierarchy that has it), for killing what a container left behind. */
export function cgroupPids(cgroupPath: string, layout: CgroupLayout = currentCgroupLayout()): number[] {
  const pids = new Set<number>();
  for (const dir of cgroupDirs(cgroupPath, layout)) {
    try {
      for (const l of fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (l) pids.add(Number(l));
    } catch {}
  }
  return [...pids];
}
