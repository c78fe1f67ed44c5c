// Whether the kernel's OOM killer struck inside a container's cgroup: read once, when the
// container exits and before the runtime removes its cgroup (the counter goes with it).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { detectCgroupLayout, type CgroupLayout } from '../runtime/cgroups';

let cachedLayout: CgroupLayout | undefined;

/** The "oom_kill N" line of memory.oom_control (v1) or memory.events (v2); undefined if absent. */
export function parseOomKillCount(text: string): number | undefined {
  const m = /^oom_kill (\d+)$/m.exec(text);
  return m ? Number(m[1]) : undefined;
}

/**
 * How many processes the OOM killer killed in the cgroup at cgroupsPath ("/berth/<id>"): from the
 * v1 memory hierarchy when there is one, else from cgroup2. 0 when the cgroup is gone or the
 * kernel has no counter (before 4.13).
 */
export function oomKillCount(cgroupsPath: string, layout?: CgroupLayout): number {
  const rel = cgroupsPath.replace(/^\/+/, '');
  if (rel === '' || rel.split('/').includes('..')) return 0;
  const l = layout ?? (cachedLayout ??= detectCgroupLayout());
  const v1 = l.v1.get('memory');
  const file = v1 ? path.join(v1, rel, 'memory.oom_control') : l.unified ? path.join(l.unified, rel, 'memory.events') : undefined;
  if (!file) return 0;
  try {
    return parseOomKillCount(fs.readFileSync(file, 'utf8')) ?? 0;
  } catch {
    return 0;
  }
}
