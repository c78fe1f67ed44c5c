// Persistent network namespaces: a container's netns is bind-mounted on a file under the exec root
// before the container starts, so that it outlives the container's processes. netavark needs it
// to tear down exactly what it set up, and the OCI runtime joins it by path.
import * as fs from 'node:fs';
import { hasCode, systemError } from '../common/errors';
import { MNT_DETACH, netnsCreate, umount2Async } from '../native';

const NSFS_MAGIC = 0x6e736673;

/** Namespace files being removed by removeNetns (createNetns waits for them). */
const removals = new Map<string, Promise<void>>();

/** True when `file` is a mounted network namespace (not a plain file left after a reboot). */
export function isNetnsMounted(file: string): boolean {
  try {
    return fs.statfsSync(file).type === NSFS_MAGIC;
  } catch {
    return false;
  }
}

/**
 * Creates a new network namespace bound to `file`: the addon unshares on a pool thread, bind-mounts
 * that thread's namespace on the file and switches the thread back (before, one `unshare` process,
 * forked from the whole daemon, per container start).
 */
export async function createNetns(file: string): Promise<void> {
  // A removal still unmounting this file would otherwise leave the new namespace's file behind it.
  await removals.get(file)?.catch(() => {});
  if (isNetnsMounted(file)) return;
  fs.writeFileSync(file, '', { mode: 0o644 });
  try {
    await netnsCreate(file);
  } catch (err) {
    fs.rmSync(file, { force: true });
    throw systemError(`creating network namespace ${file}: ${(err as Error).message}`, err);
  }
}

/**
 * Unmounts and removes a namespace file (the kernel frees the namespace with its last user). The
 * unmount runs on a thread of its own: it waits for the kernel (an RCU grace period), which on
 * berthd's main thread held up every request for 1-5 ms per container exit.
 */
export function removeNetns(file: string): Promise<void> {
  const running = removals.get(file);
  if (running) return running;
  const p = (async () => {
    try {
      if (isNetnsMounted(file)) await umount2Async(file, MNT_DETACH);
    } catch (err) {
      if (!hasCode(err, 'EINVAL') && !hasCode(err, 'ENOENT')) throw err;
    }
    fs.rmSync(file, { force: true });
  })().finally(() => removals.delete(file));
  removals.set(file, p);
  return p;
}
