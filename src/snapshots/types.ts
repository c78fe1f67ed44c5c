// Snapshotter interfaces, after containerd's: a snapshot is a directory tree that is either
// committed (immutable, can be a parent), active (writable, from prepare) or a view (read-only).
// Callers get mount specifications, not paths, so the storage driver stays replaceable.

/** containerd's mount shape: what mount(2) needs, with options as `mount -o` takes them. */
export interface Mount {
  type: string;
  source: string;
  options: string[];
}

export type SnapshotKind = 'active' | 'view' | 'committed';

export interface SnapshotInfo {
  kind: SnapshotKind;
  /** The key (active, view) or name (committed). */
  name: string;
  parent?: string;
  labels: Record<string, string>;
  created: Date;
  updated: Date;
}

export interface Usage {
  /** Bytes of disk used by the snapshot's own layer (not its parents). */
  size: number;
  inodes: number;
}

export interface SnapshotOptions {
  labels?: Record<string, string>;
}

export interface CommitOptions extends SnapshotOptions {
  /**
   * The committed snapshot to put below this one, for an active snapshot prepared without a
   * parent whose tree was written without looking at any (an unpacked layer): layers can then be
   * unpacked in any order and committed in chain order.
   */
  parent?: string;
  /**
   * Leave the layer's disk usage to be measured when usage() first asks (and kept then), instead
   * of walking the tree at commit: a big imported layer's walk then stays off the request.
   */
  measureUsageLater?: boolean;
}

export interface Snapshotter {
  /** Creates an active (writable) snapshot on top of the committed parent (or empty). */
  prepare(key: string, parent?: string, opts?: SnapshotOptions): Mount[];
  /** Creates a read-only view of the committed parent. */
  view(key: string, parent?: string, opts?: SnapshotOptions): Mount[];
  /** Mounts of an active snapshot or view. */
  mounts(key: string): Mount[];
  /** Turns the active snapshot key into the committed snapshot name. */
  commit(name: string, key: string, opts?: CommitOptions): void;
  /** Removes a snapshot; refused while other snapshots have it as parent. */
  /**
   * background: the record goes at once and the files on the thread pool afterwards (a crash
   * meanwhile leaves a directory that the next start removes); the default waits for the files.
   */
  remove(key: string, opts?: { background?: boolean }): void;
  stat(key: string): SnapshotInfo;
  /** stat, or undefined when there is no such snapshot. */
  tryStat(key: string): SnapshotInfo | undefined;
  usage(key: string): Usage;
  walk(): SnapshotInfo[];
  close(): void;
}
