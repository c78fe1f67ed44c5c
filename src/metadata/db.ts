// The daemon's metadata database: one SQLite file in WAL mode (crash-safe, readers never block the
// writer). Each subsystem owns its tables and versions its own schema through migrate(), so a
// subsystem can evolve its tables without touching the others'.
import Database from 'better-sqlite3';
import * as path from 'node:path';
import { mkdirp } from '../common/fsutil';

export type DB = Database.Database;

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
