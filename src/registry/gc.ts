// Garbage collection, mark and sweep: every blob referenced by a manifest revision of some
// repository (the manifest itself, its config and layers) is kept; every other blob is deleted,
// along with repository links to deleted blobs. Like distribution's, it must run while the
// registry is stopped or read-only: a blob uploaded but not yet referenced by a manifest is garbage
// to it.
import { parseDigest, type Digest } from './names';
import { BlobStore, RepositoryStore, UploadStore } from './storage';
import { parseManifest } from './manifest';

export interface GcOptions {
  root: string;
  /** Report what would be deleted, delete nothing. */
  dryRun?: boolean;
  /** Also delete manifests no tag reaches (directly, through an index, or as a referrer). */
  deleteUntagged?: boolean;
  log?: (line: string) => void;
  /** Upload sessions started longer ago than this are abandoned and removed (default 7 days). */
  uploadMaxAgeMs?: number;
  now?: Date;
}

export const DEFAULT_UPLOAD_MAX_AGE_MS = 7 * 24 * 3600 * 1000;

export interface GcResult {
  markedBlobs: number;
  /** Blobs deleted (or, with dryRun, eligible for deletion). */
  deletedBlobs: string[];
  /** Manifests removed from repositories by deleteUntagged, as "repo@digest". */
  deletedManifests: string[];
  /** Repository blob links removed because their blob went. */
  removedLinks: number;
  /** Abandoned upload sessions removed. */
  purgedUploads: string[];
}

interface Revision {
  digest: Digest;
  children: Digest[];
  blobs: Digest[];
  subject?: string;
}

export async function collectGarbage(opts: GcOptions): Promise<GcResult> {
  const log = opts.log ?? (() => {});
  const blobs = new BlobStore(opts.root);
  const repos = new RepositoryStore(opts.root);
  const marked = new Set<string>();
  const result: GcResult = { markedBlobs: 0, deletedBlobs: [], deletedManifests: [], removedLinks: 0, purgedUploads: [] };

  for (const name of await repos.listRepositories()) {
    const revisions = new Map<string, Revision>();
    for (const digest of await repos.listManifests(name)) {
      const rev: Revision = { digest, children: [], blobs: [] };
      try {
        const link = await repos.getManifest(name, digest);
        const parsed = parseManifest(await blobs.read(digest), link?.mediaType);
        rev.blobs = parsed.blobs;
        rev.children = parsed.manifests.map((m) => parseDigest(m.digest));
        rev.subject = parsed.subject?.digest;
      } catch {
        // Unreadable or missing content: keep the revision's own digest marked, reference nothing.
      }
      revisions.set(digest.text, rev);
    }

    let keep = new Set(revisions.keys());
    if (opts.deleteUntagged) {
      keep = reachableFromTags(await tagTargets(repos, name), revisions);
      for (const [text, rev] of revisions) {
        if (keep.has(text)) continue;
        log(`${name}: manifest eligible for deletion: ${text}`);
        result.deletedManifests.push(`${name}@${text}`);
        if (!opts.dryRun) {
          if (rev.subject) await repos.removeReferrer(name, parseDigest(rev.subject), rev.digest);
          await repos.deleteManifest(name, rev.digest);
        }
      }
    }
    for (const text of keep) {
      const rev = revisions.get(text)!;
      log(`${name}: marking manifest ${text}`);
      marked.add(text);
      for (const b of rev.blobs) {
        if (!marked.has(b.text)) log(`${name}: marking blob ${b.text}`);
        marked.add(b.text);
      }
    }
  }
  result.markedBlobs = marked.size;

  for await (const d of blobs.list()) {
    if (marked.has(d.text)) continue;
    log(`blob eligible for deletion: ${d.text}`);
    result.deletedBlobs.push(d.text);
    if (!opts.dryRun) await blobs.remove(d);
  }
  const gone = new Set(result.deletedBlobs);
  for (const name of await repos.listRepositories()) {
    for (const d of await repos.listBlobLinks(name)) {
      if (!gone.has(d.text)) continue;
      result.removedLinks++;
      if (!opts.dryRun) await repos.unlinkBlob(name, d);
    }
  }
  const uploads = new UploadStore(opts.root, blobs);
  const cutoff = (opts.now ?? new Date()).getTime() - (opts.uploadMaxAgeMs ?? DEFAULT_UPLOAD_MAX_AGE_MS);
  for (const id of await uploads.list()) {
    const started = await uploads.startedAt(id);
    if (started && started.getTime() >= cutoff) continue;
    log(`upload eligible for deletion: ${id}`);
    result.purgedUploads.push(id);
    if (!opts.dryRun) await uploads.purge(id);
  }
  log(`${result.markedBlobs} blobs marked, ${result.deletedBlobs.length} blobs ${opts.dryRun ? 'eligible for deletion' : 'deleted'}`);
  return result;
}

async function tagTargets(repos: RepositoryStore, name: string): Promise<string[]> {
  const out: string[] = [];
  for (const tag of await repos.listTags(name)) {
    const d = await repos.getTag(name, tag);
    if (d) out.push(d.text);
  }
  return out;
}

/** Revisions reachable from the tagged ones through index children and referrers (signatures, SBOMs). */
function reachableFromTags(roots: string[], revisions: Map<string, Revision>): Set<string> {
  const referrersOf = new Map<string, string[]>();
  for (const [text, rev] of revisions) {
    if (rev.subject) referrersOf.set(rev.subject, [...(referrersOf.get(rev.subject) ?? []), text]);
  }
  const seen = new Set<string>();
  const stack = roots.filter((r) => revisions.has(r));
  while (stack.length > 0) {
    const text = stack.pop()!;
    if (seen.has(text)) continue;
    seen.add(text);
    const rev = revisions.get(text)!;
    for (const c of rev.children) if (revisions.has(c.text)) stack.push(c.text);
    for (const r of referrersOf.get(text) ?? []) stack.push(r);
  }
  return seen;
}
