// Persistent network namespaces: a container's netns is bind-mounted on a file under the exec root
// before the container starts, so that it outlives the container's processes. netavark needs it
// to tear down exactly what it set up, and the OCI runtime joins it by path.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { hasCode, systemError } from '../common/errors';
import { MNT_DETACH, umount2 } from '../native';

const NSFS_MAGIC = 0x6e736673;

/** True when `file` is a mounted network namespace (not a plain file left after a reboot). */
export function isNetnsMounted(file: string): boolean {
  try {
    return fs.statfsSync(file).type === NSFS_MAGIC;
  } catch {
    return false;
  }
}

/**
 * Creates a new network namespace bound to `file`. Node cannot unshare(2) itself, so util-linux's
 * unshare does it: one short process per container start, next to netavark's own.
 */
export async function createNetns(file: string): Promise<void> {
  if (isNetnsMounted(file)) return;
  fs.writeFileSync(file, '', { mode: 0o644 });
  try {
    await bindNewNetns(file);
  } catch (err) {
    fs.rmSync(file, { force: true });
    throw err;
  }
}

function bindNewNetns(file: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const p = spawn('unshare', [`--net=${file}`, 'true'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (b: Buffer) => (err += b.toString()));
    p.on('error', (e) => reject(systemError(`creating network namespace: ${e.message}`, e)));
    p.on('close', (code) => (code === 0 ? resolve() : reject(systemError(`creating network namespace ${file}: ${err.trim() || `exit status ${code}`}`))));
  });
}

/** Unmounts and removes a namespace file; the kernel frees the namespace with its last user. */
export function removeNetns(file: string): void {
  try {
    if (isNetnsMounted(file)) umount2(file, MNT_DETACH);
  } catch (err) {
    if (!hasCode(err, 'EINVAL') && !hasCode(err, 'ENOENT')) throw err;
  }
  fs.rmSync(file, { force: true });
}
