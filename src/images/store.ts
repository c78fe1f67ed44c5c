// The image metadata store: images, their layers, tags and repository digests, in the daemon's
// SQLite database. Configs themselves live in the content store (the image ID is their digest);
// this store holds what is needed to list, resolve and garbage-collect them.
import type { DB, MetadataDB } from '../metadata/db';
import type { ImageLayer } from './types';

export interface ImageRecord {
  id: string;
  created: string;
  parent: string;
  size: number;
  lastTagTime: string;
  layers: ImageLayer[];
}

const SCHEMA = [
  `CREATE TABLE images (
     id TEXT PRIMARY KEY,
     created TEXT NOT NULL,
     parent TEXT NOT NULL DEFAULT '',
     size INTEGER NOT NULL,
     last_tag_time TEXT NOT NULL DEFAULT ''
   );
   CREATE TABLE image_layers (
     image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
     idx INTEGER NOT NULL,
     diff_id TEXT NOT NULL,
     chain_id TEXT NOT NULL,
     blob_digest TEXT NOT NULL,
     media_type TEXT NOT NULL,
     blob_size INTEGER NOT NULL,
     size INTEGER NOT NULL,
     PRIMARY KEY (image_id, idx)
   );
   CREATE INDEX image_layers_chain ON image_layers(chain_id);
   CREATE INDEX image_layers_blob ON image_layers(blob_digest);
   CREATE TABLE tags (
     ref TEXT PRIMARY KEY,
     image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
     created_at TEXT NOT NULL
   );
   CREATE INDEX tags_image ON tags(image_id);
   CREATE TABLE repo_digests (
     ref TEXT PRIMARY KEY,
     image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
     manifest_digest TEXT NOT NULL
   );
   CREATE INDEX repo_digests_image ON repo_digests(image_id);`,
];

interface LayerRow { diff_id: string; chain_id: string; blob_digest: string; media_type: string; blob_size: number; size: number }
interface ImageRow { id: string; created: string; parent: string; size: number; last_tag_time: string }

export class ImageStore {
  private readonly db: DB;

  constructor(meta: MetadataDB) {
    meta.migrate('images', SCHEMA);
    this.db = meta.db;
  }

  private toRecord(row: ImageRow): ImageRecord {
    const layers = (this.db.prepare('SELECT * FROM image_layers WHERE image_id = ? ORDER BY idx').all(row.id) as LayerRow[]).map((l) => ({
      diffID: l.diff_id, chainID: l.chain_id, blobDigest: l.blob_digest, mediaType: l.media_type, blobSize: l.blob_size, size: l.size,
    }));
    return { id: row.id, created: row.created, parent: row.parent, size: row.size, lastTagTime: row.last_tag_time, layers };
  }

  get(id: string): ImageRecord | undefined {
    const row = this.db.prepare('SELECT * FROM images WHERE id = ?').get(id) as ImageRow | undefined;
    return row && this.toRecord(row);
  }

  /** IDs starting with a hex prefix (for short IDs); at most `limit`. */
  idsWithPrefix(prefix: string, limit = 2): string[] {
    return (this.db.prepare("SELECT id FROM images WHERE id >= ? AND id < ? ORDER BY id LIMIT ?").all(`sha256:${prefix}`, `sha256:${prefix}\uffff`, limit) as { id: string }[]).map((r) => r.id);
  }

  list(): ImageRecord[] {
    return (this.db.prepare('SELECT * FROM images ORDER BY created DESC').all() as ImageRow[]).map((r) => this.toRecord(r));
  }

  count(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM images').get() as { n: number }).n;
  }

  /** Adds an image (or keeps the existing one with the same ID) in one transaction. */
  put(rec: Omit<ImageRecord, 'lastTagTime'>): void {
    this.db.transaction(() => {
      const exists = this.db.prepare('SELECT 1 FROM images WHERE id = ?').get(rec.id);
      if (exists) return;
      this.db.prepare('INSERT INTO images (id, created, parent, size) VALUES (?, ?, ?, ?)').run(rec.id, rec.created, rec.parent, rec.size);
      const ins = this.db.prepare('INSERT INTO image_layers (image_id, idx, diff_id, chain_id, blob_digest, media_type, blob_size, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
      rec.layers.forEach((l, i) => ins.run(rec.id, i, l.diffID, l.chainID, l.blobDigest, l.mediaType, l.blobSize, l.size));
    })();
  }

  delete(id: string): void {
    this.db.prepare('DELETE FROM images WHERE id = ?').run(id);
  }

  /** Points ref at the image; returns the image it pointed at before, if another. */
  setTag(ref: string, imageId: string): string | undefined {
    return this.db.transaction(() => {
      const old = this.db.prepare('SELECT image_id FROM tags WHERE ref = ?').get(ref) as { image_id: string } | undefined;
      const now = new Date().toISOString();
      this.db.prepare('INSERT INTO tags (ref, image_id, created_at) VALUES (?, ?, ?) ON CONFLICT(ref) DO UPDATE SET image_id = excluded.image_id, created_at = excluded.created_at').run(ref, imageId, now);
      this.db.prepare('UPDATE images SET last_tag_time = ? WHERE id = ?').run(now, imageId);
      return old && old.image_id !== imageId ? old.image_id : undefined;
    })();
  }

  removeTag(ref: string): boolean {
    return this.db.prepare('DELETE FROM tags WHERE ref = ?').run(ref).changes > 0;
  }

  tagTarget(ref: string): string | undefined {
    return (this.db.prepare('SELECT image_id FROM tags WHERE ref = ?').get(ref) as { image_id: string } | undefined)?.image_id;
  }

  tagsOf(imageId: string): string[] {
    return (this.db.prepare('SELECT ref FROM tags WHERE image_id = ? ORDER BY ref').all(imageId) as { ref: string }[]).map((r) => r.ref);
  }

  setRepoDigest(ref: string, imageId: string, manifestDigest: string): void {
    this.db.prepare('INSERT INTO repo_digests (ref, image_id, manifest_digest) VALUES (?, ?, ?) ON CONFLICT(ref) DO UPDATE SET image_id = excluded.image_id, manifest_digest = excluded.manifest_digest').run(ref, imageId, manifestDigest);
  }

  repoDigestTarget(ref: string): string | undefined {
    return (this.db.prepare('SELECT image_id FROM repo_digests WHERE ref = ?').get(ref) as { image_id: string } | undefined)?.image_id;
  }

  repoDigestsOf(imageId: string): string[] {
    return (this.db.prepare('SELECT ref FROM repo_digests WHERE image_id = ? ORDER BY ref').all(imageId) as { ref: string }[]).map((r) => r.ref);
  }

  removeRepoDigest(ref: string): boolean {
    return this.db.prepare('DELETE FROM repo_digests WHERE ref = ?').run(ref).changes > 0;
  }

  /** Images whose recorded parent is this image (commit and build chains). */
  children(imageId: string): string[] {
    return (this.db.prepare('SELECT id FROM images WHERE parent = ?').all(imageId) as { id: string }[]).map((r) => r.id);
  }

  chainInUse(chainID: string): boolean {
    return this.db.prepare('SELECT 1 FROM image_layers WHERE chain_id = ? LIMIT 1').get(chainID) !== undefined;
  }

  blobInUse(digest: string): boolean {
    return (
      this.db.prepare('SELECT 1 FROM image_layers WHERE blob_digest = ? LIMIT 1').get(digest) !== undefined ||
      this.db.prepare('SELECT 1 FROM images WHERE id = ? LIMIT 1').get(digest) !== undefined ||
      this.db.prepare('SELECT 1 FROM repo_digests WHERE manifest_digest = ? LIMIT 1').get(digest) !== undefined
    );
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }
}
