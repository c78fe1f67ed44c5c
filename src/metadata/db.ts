// The daemon's metadata database: one SQLite file in WAL mode (crash-safe, readers never block the
// writer). Each subsystem owns its tables and versions its own schema through migrate(), so a
// subsystem can evolve its tables without touching the others'.
import Database from 'better-sqlite3';
import * as path from 'node:path';
import { mkdirp } from '../common/fsutil';

export type DB = Database.Database;

/**
 * Makes db.prepare(sql) return one compiled statement per SQL text instead of compiling it on
 * every call: the stores prepare their statements where they use them, and compiling was a few
 * milliseconds of every container start and removal. Safe because no caller changes a
 * statement's mode (pluck, raw, expand) or iterates one, and all SQL texts are constants (the
 * bound only guards against a future caller building SQL from values).
 */
export function cacheStatements(db: DB): void {
  const compile = db.prepare.bind(db);
  const cache = new Map<string, Database.Statement>();
  db.prepare = ((sql: string) => {
    let stmt = cache.get(sql);
    if (!stmt) {
      if (cache.size >= 1000) cache.clear();
      stmt = compile(sql);
      cache.set(sql, stmt);
    }
    return stmt;
  }) as DB['prepare'];
}

export class MetadataDB {
  readonly db: DB;

  constructor(file: string) {
    mkdirp(path.dirname(file), 0o700);
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    // NORMAL, not FULL: in WAL mode a commit is a write(2) to the WAL, so a killed daemon loses
    // nothing and the database is always consistent; only a power loss or kernel crash can roll
    // back the last commits (the WAL is synced at checkpoints). FULL's fsync per commit cost every
    // container start and stop several milliseconds with the event loop blocked. See "Durability"
    // in docs/architecture.md.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    cacheStatements(this.db);
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL)');
  }

  /**
   * Brings a component's tables up to date. steps[i] moves the schema from version i to i+1; each
   * step runs in its own transaction together with the version bump, so a crash mid-migration
   * leaves the previous version intact.
   */
  migrate(component: string, steps: string[]): void {
    const row = this.db.prepare('SELECT version FROM schema_versions WHERE component = ?').get(component) as { version: number } | undefined;
    const current = row?.version ?? 0;
    if (current > steps.length) {
      throw new Error(`metadata for ${component} is at schema version ${current}, newer than this berthd knows (${steps.length}); refusing to downgrade`);
    }
    for (let v = current; v < steps.length; v++) {
      this.db.transaction(() => {
        this.db.exec(steps[v]);
        this.db.prepare('INSERT INTO schema_versions (component, version) VALUES (?, ?) ON CONFLICT(component) DO UPDATE SET version = excluded.version').run(component, v + 1);
      })();
    }
  }

  close(): void {
    this.db.close();
  }
}
