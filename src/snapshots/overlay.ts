// The overlayfs snapshotter (containerd's model).
//
// Layout under root:
//   metadata.db                 SQLite (WAL): one row per snapshot, parent links by id
//   snapshots/<id>/fs           the snapshot's own layer (upperdir when active, a lowerdir later)
//   snapshots/<id>/work         overlay's workdir (active snapshots)
//
// Ids are short numbers so that a lowerdir list of many layers stays far below mount(2)'s
// one-page limit. Directories are made under a temporary name and renamed to their id inside the
// database transaction that records them; removal renames them away inside the transaction that
// deletes the record. So after a crash, any directory without a record is garbage, and opening
// the snapshotter removes it (and the half-done "extract-" snapshots of interrupted unpacks).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { conflict, invalidParameter, notFound } from '../common/errors';
import { mkdirp } from '../common/fsutil';
import { cacheStatements } from '../metadata/db';
import type { CommitOptions, Mount, SnapshotInfo, SnapshotKind, SnapshotOptions, Snapshotter, Usage } from './types';
import { shiftTree, type IdentityMapping } from '../security/userns';

/** Active snapshots with keys starting with this are unpack scratch space, dropped on open. */
export const EXTRACT_KEY_PREFIX = 'extract-';

/**
 * The key of the init layer (docker's empty mount points) that the containers of an image share,
 * on the image's top layer (its chain ID; none for an image without layers). Made by the
 * container service, removed with the image's layers.
 */
export function initLayerKey(parent: string | undefined): string {
  return `init-${parent ?? 'scratch'}`;
}

const SCHEMA_VERSION = 1;

interface Row {
  id: number;
  key: string;
  parent_id: number | null;
  kind: SnapshotKind;
  labels: string;
  created: number;
  updated: number;
  size: number | null;
  inodes: number | null;
}

/** Disk usage of a tree: allocated blocks (hardlinks counted once) and inode count. */
export function diskUsage(dir: string): Usage {
  const seen = new Set<string>();
  let size = 0;
  let inodes = 0;
  const visit = (p: string): void => {
    const st = fs.lstatSync(p);
    const key = `${st.dev}:${st.ino}`;
    if (!seen.has(key)) {
      seen.add(key);
      inodes++;
      size += st.blocks * 512;
    }
    if (st.isDirectory()) for (const name of fs.readdirSync(p)) visit(`${p}/${name}`);
  };
  visit(dir);
  return { size, inodes };
}

export interface OverlaySnapshotterOptions {
  /**
   * --userns-remap: snapshots hold host IDs. A new snapshot's own root belongs to the remapped
   * root (a container's writable layer is its "/"); writers put container IDs in it, and commit
   * shifts them to host IDs, once per layer (security/userns.ts shiftTree).
   */
  idMap?: IdentityMapping;
}

export class OverlaySnapshotter implements Snapshotter {
  private readonly db: Database.Database;
  private readonly snapshotsDir: string;
  private readonly idMap?: IdentityMapping;

  constructor(readonly root: string, opts: OverlaySnapshotterOptions = {}) {
    this.idMap = opts.idMap;
    this.snapshotsDir = path.join(root, 'snapshots');
    mkdirp(this.snapshotsDir, 0o700);
    this.db = new Database(path.join(root, 'metadata.db'));
    this.db.pragma('journal_mode = WAL');
    // As the metadata database (src/metadata/db.ts): consistent after a kill at any moment;
    // snapshot contents are never fsynced either.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    cacheStatements(this.db);
    this.migrate();
    this.cleanup();
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) throw new Error(`snapshot metadata schema ${version} is newer than this berth understands (${SCHEMA_VERSION})`);
    if (version < 1) {
      this.db.transaction(() => {
        this.db.exec(`
          CREATE TABLE snapshots (
            id        INTEGER PRIMARY KEY AUTOINCREMENT,
            key       TEXT NOT NULL UNIQUE,
            parent_id INTEGER REFERENCES snapshots(id),
            kind      TEXT NOT NULL CHECK (kind IN ('active', 'view', 'committed')),
            labels    TEXT NOT NULL DEFAULT '{}',
            created   INTEGER NOT NULL,
            updated   INTEGER NOT NULL,
            size      INTEGER,
            inodes    INTEGER
          );
          CREATE INDEX snapshots_parent ON snapshots(parent_id);
        `);
        this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
      })();
    }
  }

  /** Crash recovery; see the file comment. */
  private cleanup(): void {
    const stale = this.db.prepare(`SELECT id FROM snapshots s WHERE kind = 'active' AND substr(key, 1, ?) = ?
      AND NOT EXISTS (SELECT 1 FROM snapshots c WHERE c.parent_id = s.id)`).all(EXTRACT_KEY_PREFIX.length, EXTRACT_KEY_PREFIX) as { id: number }[];
    if (stale.length > 0) {
      const del = this.db.prepare('DELETE FROM snapshots WHERE id = ?');
      this.db.transaction(() => { for (const { id } of stale) del.run(id); })();
    }
    const ids = new Set((this.db.prepare('SELECT id FROM snapshots').all() as { id: number }[]).map((r) => String(r.id)));
    for (const name of fs.readdirSync(this.snapshotsDir)) {
      if (!ids.has(name)) fs.rmSync(path.join(this.snapshotsDir, name), { recursive: true, force: true });
    }
  }

  private row(key: string): Row | undefined {
    return this.db.prepare('SELECT * FROM snapshots WHERE key = ?').get(key) as Row | undefined;
  }

  private mustRow(key: string): Row {
    const r = this.row(key);
    if (!r) throw notFound(`snapshot ${key} does not exist`);
    return r;
  }

  private rowById(id: number): Row {
    return this.db.prepare('SELECT * FROM snapshots WHERE id = ?').get(id) as Row;
  }

  private dirOf(id: number): string {
    return path.join(this.snapshotsDir, String(id));
  }

  /** fs directories of the row and its ancestors, nearest first (overlay's lowerdir order). */
  private chain(r: Row | undefined): string[] {
    const out: string[] = [];
    for (let cur = r; cur; cur = cur.parent_id === null ? undefined : this.rowById(cur.parent_id)) {
      out.push(path.join(this.dirOf(cur.id), 'fs'));
    }
    return out;
  }

  private info(r: Row): SnapshotInfo {
    const parent = r.parent_id === null ? undefined : this.rowById(r.parent_id).key;
    return {
      kind: r.kind,
      name: r.key,
      ...(parent !== undefined ? { parent } : {}),
      labels: JSON.parse(r.labels) as Record<string, string>,
      created: new Date(r.created),
      updated: new Date(r.updated),
    };
  }

  private create(kind: 'active' | 'view', key: string, parent: string | undefined, opts: SnapshotOptions): Mount[] {
    if (typeof key !== 'string' || key === '') throw invalidParameter('snapshot key must be a non-empty string');
    if (this.row(key)) throw conflict(`snapshot ${key} already exists`);
    let parentRow: Row | undefined;
    if (parent !== undefined && parent !== '') {
      parentRow = this.row(parent);
      if (!parentRow) throw notFound(`parent snapshot ${parent} does not exist`);
      if (parentRow.kind !== 'committed') throw invalidParameter(`parent snapshot ${parent} is not committed`);
    }
    const tmp = path.join(this.snapshotsDir, `new-${randomBytes(8).toString('hex')}`);
    fs.mkdirSync(tmp, 0o700);
    try {
      fs.mkdirSync(path.join(tmp, 'fs'), 0o755);
      if (this.idMap) {
        const rootPair = this.idMap.rootPair();
        fs.chownSync(path.join(tmp, 'fs'), rootPair.uid, rootPair.gid);
      }
      if (kind === 'active') fs.mkdirSync(path.join(tmp, 'work'), 0o700);
      const now = Date.now();
      this.db.transaction(() => {
        const res = this.db.prepare('INSERT INTO snapshots (key, parent_id, kind, labels, created, updated) VALUES (?, ?, ?, ?, ?, ?)')
          .run(key, parentRow?.id ?? null, kind, JSON.stringify(opts.labels ?? {}), now, now);
        // Inside the transaction: if the rename fails the record is rolled back with it.
        fs.renameSync(tmp, this.dirOf(Number(res.lastInsertRowid)));
      })();
    } catch (err) {
      fs.rmSync(tmp, { recursive: true, force: true });
      throw err;
    }
    return this.mounts(key);
  }

  prepare(key: string, parent?: string, opts: SnapshotOptions = {}): Mount[] {
    return this.create('active', key, parent, opts);
  }

  view(key: string, parent?: string, opts: SnapshotOptions = {}): Mount[] {
    return this.create('view', key, parent, opts);
  }

  mounts(key: string): Mount[] {
    const r = this.mustRow(key);
    if (r.kind === 'committed') throw invalidParameter(`snapshot ${key} is committed: only active snapshots and views have mounts`);
    const own = path.join(this.dirOf(r.id), 'fs');
    const parents = r.parent_id === null ? [] : this.chain(this.rowById(r.parent_id));
    if (r.kind === 'view') {
      if (parents.length === 0) return [{ type: 'bind', source: own, options: ['ro', 'rbind'] }];
      if (parents.length === 1) return [{ type: 'bind', source: parents[0], options: ['ro', 'rbind'] }];
      return [{ type: 'overlay', source: 'overlay', options: ['index=off', `lowerdir=${parents.join(':')}`] }];
    }
    if (parents.length === 0) return [{ type: 'bind', source: own, options: ['rw', 'rbind'] }];
    return [{
      type: 'overlay',
      source: 'overlay',
      options: ['index=off', `workdir=${path.join(this.dirOf(r.id), 'work')}`, `upperdir=${own}`, `lowerdir=${parents.join(':')}`],
    }];
  }

  commit(name: string, key: string, opts: CommitOptions = {}): void {
    if (typeof name !== 'string' || name === '') throw invalidParameter('snapshot name must be a non-empty string');
    const r = this.mustRow(key);
    if (r.kind !== 'active') throw invalidParameter(`snapshot ${key} is not active: only active snapshots can be committed`);
    if (this.row(name)) throw conflict(`snapshot ${name} already exists`);
    let parentId = r.parent_id;
    if (opts.parent !== undefined) {
      const p = this.row(opts.parent);
      if (!p) throw notFound(`parent snapshot ${opts.parent} does not exist`);
      if (p.kind !== 'committed') throw invalidParameter(`parent snapshot ${opts.parent} is not committed`);
      if (r.parent_id !== null && r.parent_id !== p.id) throw invalidParameter(`snapshot ${key} was prepared on another parent`);
      parentId = p.id;
    }
    const fsDir = path.join(this.dirOf(r.id), 'fs');
    if (this.idMap) this.shiftToHost(fsDir, this.idMap);
    // Committed layers never change again, so their usage is measured once: here, or at the
    // first usage() (NULL until then; a crash before that only means it is measured later).
    const usage = opts.measureUsageLater ? { size: null, inodes: null } : diskUsage(fsDir);
    const labels = opts.labels ?? (JSON.parse(r.labels) as Record<string, string>);
    this.db.prepare("UPDATE snapshots SET key = ?, kind = 'committed', parent_id = ?, labels = ?, updated = ?, size = ?, inodes = ? WHERE id = ?")
      .run(name, parentId, JSON.stringify(labels), Date.now(), usage.size, usage.inodes, r.id);
  }

  /**
   * Container IDs → host IDs in a layer about to be committed. Its root was made the remapped
   * root's at prepare; a writer that gave it another owner (a layer's "./" entry) wrote a
   * container ID there, which is shifted like everything else.
   */
  private shiftToHost(fsDir: string, idMap: IdentityMapping): void {
    const rootPair = idMap.rootPair();
    const st = fs.lstatSync(fsDir);
    if (st.uid !== rootPair.uid || st.gid !== rootPair.gid) {
      const host = idMap.toHost(st.uid, st.gid);
      fs.chownSync(fsDir, host.uid, host.gid);
    }
    shiftTree(fsDir, idMap, { skipRoot: true });
  }

  remove(key: string, opts: { background?: boolean } = {}): void {
    const r = this.mustRow(key);
    const children = this.db.prepare('SELECT key FROM snapshots WHERE parent_id = ? LIMIT 1').get(r.id) as { key: string } | undefined;
    if (children) throw conflict(`cannot remove snapshot ${key}: snapshot ${children.key} depends on it`);
    const dir = this.dirOf(r.id);
    const trash = path.join(this.snapshotsDir, `rm-${r.id}`);
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM snapshots WHERE id = ?').run(r.id);
      try {
        fs.renameSync(dir, trash);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    })();
    if (!opts.background) {
      fs.rmSync(trash, { recursive: true, force: true });
      return;
    }
    // rm-<id> is no snapshot's directory: if the daemon stops first, cleanup() removes it.
    void fs.promises.rm(trash, { recursive: true, force: true }).catch(() => {});
  }

  stat(key: string): SnapshotInfo {
    return this.info(this.mustRow(key));
  }

  /** Like stat, but undefined instead of NotFound. */
  tryStat(key: string): SnapshotInfo | undefined {
    const r = this.row(key);
    return r ? this.info(r) : undefined;
  }

  usage(key: string): Usage {
    const r = this.mustRow(key);
    if (r.kind === 'committed' && r.size !== null && r.inodes !== null) return { size: r.size, inodes: r.inodes };
    const usage = diskUsage(path.join(this.dirOf(r.id), 'fs'));
    if (r.kind === 'committed') this.db.prepare('UPDATE snapshots SET size = ?, inodes = ? WHERE id = ?').run(usage.size, usage.inodes, r.id);
    return usage;
  }

  walk(): SnapshotInfo[] {
    return (this.db.prepare('SELECT * FROM snapshots ORDER BY key').all() as Row[]).map((r) => this.info(r));
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
