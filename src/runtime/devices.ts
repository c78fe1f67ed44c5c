// Host device nodes, for privileged containers (docker gives them every device of the host) and
// for --device. Reads /dev, so it runs once per privileged container create, not per request.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { OciDevice } from './spec';

/** Linux dev_t → major/minor (glibc's gnu_dev_major/minor layout). */
export function splitDev(rdev: bigint): { major: number; minor: number } {
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
  return { major, minor };
}

/** The device at hostPath (following symlinks), as it should appear at containerPath. */
export function deviceFromPath(hostPath: string, containerPath = hostPath): OciDevice {
  const st = fs.statSync(hostPath, { bigint: true });
  let type: OciDevice['type'];
  if (st.isCharacterDevice()) type = 'c';
  else if (st.isBlockDevice()) type = 'b';
  else if (st.isFIFO()) type = 'p';
  else throw new Error(`${hostPath} is not a device`);
  const { major, minor } = type === 'p' ? { major: 0, minor: 0 } : splitDev(st.rdev);
  return { path: containerPath, type, major, minor, fileMode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid) };
}

/** Every char and block device under /dev, skipping the ones the runtime makes itself. */
export function hostDevices(root = '/dev'): OciDevice[] {
  const skip = new Set(['pts', 'shm', 'mqueue', 'console', 'ptmx', 'fd', 'core', 'stdin', 'stdout', 'stderr']);
  const out: OciDevice[] = [];
  const walk = (dir: string, top: boolean): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (top && skip.has(e.name)) continue;
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p, false);
      else if (e.isCharacterDevice() || e.isBlockDevice()) {
        try {
          out.push(deviceFromPath(p));
        } catch {}
      }
    }
  };
  walk(root, true);
  return out;
}
