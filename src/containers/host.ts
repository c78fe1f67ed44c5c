// Facts about the host that container specs need, read once and cached.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { OciDevice } from '../runtime/spec';

let lastCap: number | undefined;

/** /proc/sys/kernel/cap_last_cap: the highest capability this kernel knows. */
export function capLastCap(): number {
  if (lastCap === undefined) {
    try {
      lastCap = Number(fs.readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8').trim());
    } catch {
      lastCap = 40;
    }
  }
  return lastCap;
}

const SKIP_DIRS = new Set(['pts', 'shm', 'mqueue', 'fd']);

/** Every char and block device under /dev (for --privileged), as docker gives them. */
export function hostDevices(): OciDevice[] {
  const out: OciDevice[] = [];
  const walk = (dir: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (dir === '/dev' && SKIP_DIRS.has(e.name)) continue;
        walk(p);
        continue;
      }
      if (!e.isCharacterDevice() && !e.isBlockDevice()) continue;
      if (p === '/dev/console') continue;
      let st: fs.Stats;
      try {
        st = fs.statSync(p);
      } catch {
        continue;
      }
      const major = Math.floor(st.rdev / 256) & 0xfff;
      const minor = (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00);
      out.push({ path: p, type: e.isCharacterDevice() ? 'c' : 'b', major, minor, fileMode: st.mode & 0o777, uid: st.uid, gid: st.gid });
    }
  };
  walk('/dev');
  return out;
}

let bounding: bigint | undefined;

/** The daemon's capability bounding set: a privileged container can have no more than this. */
export function boundingCapabilities(): bigint {
  if (bounding === undefined) {
    try {
      const m = /^CapBnd:\s*([0-9a-f]+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
      bounding = m ? BigInt(`0x${m[1]}`) : ~0n;
    } catch {
      bounding = ~0n;
    }
  }
  return bounding;
}
