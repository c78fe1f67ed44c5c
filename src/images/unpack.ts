// Unpacking an image's layers into snapshots, each layer once: snapshots are named by chain ID
// (the identity of a layer *and everything below it*), so images sharing base layers share their
// snapshots, and a chain that is already committed is not extracted again.
import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BerthError, invalidParameter, isKind, systemError } from '../common/errors';
import type { Provider } from '../content/store';
import { validateDigest } from '../content/digest';
import { EXTRACT_KEY_PREFIX } from '../snapshots/overlay';
import type { Mount, Snapshotter } from '../snapshots/types';

export interface LayerDescriptor {
  /** Digest of the (usually compressed) blob in the content store. */
  digest: string;
  /** Digest of the uncompressed tar, from the image config's rootfs.diff_ids. */
  diffID: string;
  mediaType: string;
  size: number;
}

/** chainID(L0) = diffID(L0); chainID(Ln) = sha256(chainID(Ln-1) + " " + diffID(Ln)). */
export function chainIDs(diffIDs: string[]): string[] {
  const out: string[] = [];
  for (const diffID of diffIDs) {
    validateDigest(diffID);
    const prev = out[out.length - 1];
    out.push(prev === undefined ? diffID : `sha256:${createHash('sha256').update(`${prev} ${diffID}`).digest('hex')}`);
  }
  return out;
}

/** The directory a layer is written into: the bind source, or overlay's upperdir. */
export function writableDir(mounts: Mount[]): string {
  const m = mounts[mounts.length - 1];
  if (m?.type === 'bind') return m.source;
  const upper = m?.options.find((o) => o.startsWith('upperdir='));
  if (m?.type === 'overlay' && upper) return upper.slice('upperdir='.length);
  throw new Error(`cannot find the writable directory of mounts ${JSON.stringify(mounts)}`);
}

function committed(snapshotter: Snapshotter, key: string): boolean {
  try {
    return snapshotter.stat(key).kind === 'committed';
  } catch (err) {
    if (isKind(err, 'NotFound')) return false;
    throw err;
  }
}

/**
 * Extracts a stored layer blob into dir and returns its diffID. A plain tar whose blob digest is
 * its diffID (what `docker save` archives hold) is not hashed again: the content store verified
 * that digest when the blob was written. Compressed blobs are hashed as they are unpacked.
 */
async function extractBlob(blob: Readable, dir: string, layer: LayerDescriptor): Promise<string> {
  // The layer extractor (its thread, zlib) is loaded with the first layer, not by an idle daemon.
  const { extractionError, LayerExtractor } = require('../archive/apply') as typeof import('../archive/apply');
  const { decompressionStages } = require('../archive/compression') as typeof import('../archive/compression');
  const { compression, stages } = await decompressionStages(blob);
  const hashed = !(compression === 'none' && layer.digest === layer.diffID);
  const extractor = new LayerExtractor(dir, { digest: hashed });
  try {
    await pipeline([...stages, extractor]);
  } catch (err) {
    blob.destroy();
    // The caller removes the snapshot, and the partial tree with it: not before the extraction
    // thread has stopped writing into it.
    await extractor.stop();
    throw extractionError(err);
  }
  return hashed ? extractor.result().diffID! : layer.digest;
}

// Unpacks of the same chain in this process: the later one waits for the earlier's result.
const inFlight = new WeakMap<Snapshotter, Map<string, Promise<void>>>();

async function unpackOne(layer: LayerDescriptor, chainID: string, parent: string | undefined, content: Provider, snapshotter: Snapshotter): Promise<void> {
  const key = `${EXTRACT_KEY_PREFIX}${randomBytes(8).toString('hex')} ${chainID}`;
  const mounts = snapshotter.prepare(key, parent);
  try {
    const dir = writableDir(mounts);
    const blob = await content.createReadStream(layer.digest);
    const diffID = await extractBlob(blob, dir, layer);
    if (diffID !== layer.diffID) {
      throw invalidParameter(`layer ${layer.digest}: unpacked content has diffID ${diffID}, but the image config says ${layer.diffID}`);
    }
    try {
      snapshotter.commit(chainID, key);
    } catch (err) {
      // Another process (or an earlier crash-free run) committed the same chain meanwhile: it is
      // the same content, so ours is simply surplus.
      if (!(isKind(err, 'Conflict') && committed(snapshotter, chainID))) throw err;
      snapshotter.remove(key);
    }
  } catch (err) {
    try { snapshotter.remove(key); } catch (rmErr) { if (!isKind(rmErr, 'NotFound')) throw rmErr; }
    if (err instanceof BerthError) throw err;
    throw systemError(`failed to unpack layer ${layer.digest}: ${(err as Error).message}`, err);
  }
}

/**
 * Makes sure a committed snapshot exists for every layer's chain ID, extracting only the missing
 * ones; returns the chain IDs (the last one is the image's top layer, the parent for containers).
 */
export async function unpackLayers(layers: LayerDescriptor[], content: Provider, snapshotter: Snapshotter): Promise<string[]> {
  for (const l of layers) validateDigest(l.digest);
  const ids = chainIDs(layers.map((l) => l.diffID));
  let pending = inFlight.get(snapshotter);
  if (!pending) {
    pending = new Map();
    inFlight.set(snapshotter, pending);
  }
  for (let i = 0; i < layers.length; i++) {
    const chainID = ids[i];
    for (;;) {
      if (committed(snapshotter, chainID)) break;
      const running = pending.get(chainID);
      if (running) {
        // Wait, then look again: if it failed, this unpack tries itself.
        await running.catch(() => {});
        continue;
      }
      const job = unpackOne(layers[i], chainID, i === 0 ? undefined : ids[i - 1], content, snapshotter);
      pending.set(chainID, job);
      try {
        await job;
      } finally {
        pending.delete(chainID);
      }
      break;
    }
  }
  return ids;
}
