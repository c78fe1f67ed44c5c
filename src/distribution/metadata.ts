// Which repositories of which registries hold a blob, learnt from pulls and pushes. A push uses it
// to mount a layer from a repository of the same registry instead of uploading it again (the
// registry copies nothing; it links the blob), as dockerd's v2 metadata service does.
import type { DB, MetadataDB } from '../metadata/db';

const SCHEMA = [
  `CREATE TABLE distribution_blob_sources (
     digest TEXT NOT NULL,
     registry TEXT NOT NULL,
     repository TEXT NOT NULL,
     seen_at INTEGER NOT NULL,
     PRIMARY KEY (digest, registry, repository)
   );`,
];

export interface BlobSource {
  digest: string;
  /** Registry host as references name it (docker.io, 127.0.0.1:5000). */
  registry: string;
  /** Repository path within the registry (library/busybox). */
  repository: string;
}

export class BlobSourceStore {
  private readonly db: DB;

  constructor(meta: MetadataDB) {
    meta.migrate('distribution', SCHEMA);
    this.db = meta.db;
  }

  /** Records many sources in one transaction (one fsync for a whole pull or push). */
  addAll(sources: BlobSource[]): void {
    if (sources.length === 0) return;
    const now = Date.now();
    const ins = this.db.prepare(
      'INSERT INTO distribution_blob_sources (digest, registry, repository, seen_at) VALUES (?, ?, ?, ?) ON CONFLICT(digest, registry, repository) DO UPDATE SET seen_at = excluded.seen_at',
    );
    this.db.transaction(() => {
      for (const s of sources) ins.run(s.digest, s.registry, s.repository, now);
    })();
  }

  /** Repositories of a registry known to hold the blob, most recently seen first. */
  repositories(digest: string, registry: string, limit = 3): string[] {
    return (
      this.db.prepare('SELECT repository FROM distribution_blob_sources WHERE digest = ? AND registry = ? ORDER BY seen_at DESC LIMIT ?').all(digest, registry, limit) as { repository: string }[]
    ).map((r) => r.repository);
  }
}
