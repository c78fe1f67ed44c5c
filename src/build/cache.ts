// The classic builder's step cache: a step's cache key (its parent image, its instruction after
// substitution, the build args in effect, the checksums of files it copies) to the image the step
// produced. Kept in the metadata database so it survives restarts; an entry whose image has since
// been removed is a miss (and is dropped).
import { createHash } from 'node:crypto';
import type { MetadataDB, DB } from '../metadata/db';

const SCHEMA = [
  `CREATE TABLE build_cache (
     key TEXT PRIMARY KEY,
     image_id TEXT NOT NULL,
     created TEXT NOT NULL
   );
   CREATE INDEX build_cache_image ON build_cache(image_id);`,
];

export function cacheKey(parts: unknown): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

export class BuildCache {
  private readonly db: DB;

  constructor(meta: MetadataDB) {
    meta.migrate('buildcache', SCHEMA);
    this.db = meta.db;
  }

  /** The image cached for key, if it still exists (exists() asks the image store). */
  get(key: string, exists: (imageId: string) => boolean): string | undefined {
    const row = this.db.prepare('SELECT image_id FROM build_cache WHERE key = ?').get(key) as { image_id: string } | undefined;
    if (!row) return undefined;
    if (exists(row.image_id)) return row.image_id;
    this.db.prepare('DELETE FROM build_cache WHERE key = ?').run(key);
    return undefined;
  }

  put(key: string, imageId: string): void {
    this.db
      .prepare('INSERT INTO build_cache (key, image_id, created) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET image_id = excluded.image_id, created = excluded.created')
      .run(key, imageId, new Date().toISOString());
  }

  /** Forgets every entry (POST /build/prune); the images stay. Returns how many were dropped. */
  prune(): number {
    return this.db.prepare('DELETE FROM build_cache').run().changes;
  }

  /** Drops entries for an image (called when images are deleted, to keep the table small). */
  forgetImage(imageId: string): void {
    this.db.prepare('DELETE FROM build_cache WHERE image_id = ?').run(imageId);
  }
}
