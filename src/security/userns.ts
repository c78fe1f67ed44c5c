// --userns-remap: the daemon-wide user namespace of containers, as dockerd does it. The setting
// names a host user (and group) whose subordinate ID ranges (/etc/subuid, /etc/subgid) become the
// containers' IDs: container ID 0 is the first ID of the first range, and so on. "default" uses
// (and creates, with ranges, when missing) the user and group `berth` (dockerd's is `dockremap`).
//
// Everything a remapped container sees from the host must be owned by those host IDs: the image
// layers (shifted once, when a snapshot is committed: snapshots/overlay.ts with shiftTree below),
// its writable layer's root, its volumes, its /etc/hosts, resolv.conf and hostname. Tar streams
// at the edges translate back: `commit`, `export`, `cp` out give container IDs, `cp` in takes them.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { lgetxattr, lsetxattr } from '../native';
import { writeFileAtomic } from '../common/fsutil';

/** One line of a uid_map/gid_map: size IDs from containerID on are hostID on in the parent. */
export interface IdRange {
  containerID: number;
  hostID: number;
  size: number;
}

/** The kernel's overflow ID: what an ID that has no mapping looks like. */
export const OVERFLOW_ID = 65534;

/** The user and group `--userns-remap=default` stands for. */
export const DEFAULT_REMAP_NAME = 'berth';
/** Size of the subordinate ranges berthd adds for the default user (dockerd's figure). */
export const DEFAULT_RANGE_SIZE = 65536;
/** Where new subordinate ranges start at the lowest (as shadow's useradd and dockerd). */
const FIRST_SUBORDINATE_ID = 100000;

export class IdentityMapping {
  constructor(readonly uids: IdRange[], readonly gids: IdRange[]) {}

  /** The host IDs of the container's root. */
  rootPair(): { uid: number; gid: number } {
    return { uid: toHost(0, this.uids), gid: toHost(0, this.gids) };
  }

  /** Container IDs → host IDs; an ID outside the mapping is an error (dockerd's wording). */
  toHost(uid: number, gid: number): { uid: number; gid: number } {
    return { uid: toHost(uid, this.uids), gid: toHost(gid, this.gids) };
  }

  /** Host IDs → container IDs; an unmapped host ID shows as the overflow ID, as the kernel shows it. */
  toContainer(uid: number, gid: number): { uid: number; gid: number } {
    return { uid: toContainer(uid, this.uids), gid: toContainer(gid, this.gids) };
  }
}

export class UsernsError extends Error {}

function toHost(id: number, ranges: IdRange[]): number {
  for (const r of ranges) if (id >= r.containerID && id < r.containerID + r.size) return r.hostID + (id - r.containerID);
  throw new UsernsError(`Container ID ${id} cannot be mapped to a host ID`);
}

function toContainer(id: number, ranges: IdRange[]): number {
  for (const r of ranges) if (id >= r.hostID && id < r.hostID + r.size) return r.containerID + (id - r.hostID);
  return OVERFLOW_ID;
}

// ---- /etc/passwd, /etc/group, /etc/subuid, /etc/subgid ----

export interface UsernsFiles {
  passwd: string;
  group: string;
  subuid: string;
  subgid: string;
}

export const SYSTEM_FILES: UsernsFiles = { passwd: '/etc/passwd', group: '/etc/group', subuid: '/etc/subuid', subgid: '/etc/subgid' };

function readLines(file: string): string[] {
  try {
    return fs.readFileSync(file, 'utf8').split('\n');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

interface Entry {
  name: string;
  id: number;
}

function entries(file: string): Entry[] {
  return readLines(file).filter((l) => l.trim() !== '' && !l.startsWith('#')).map((l) => l.split(':')).map((f) => ({ name: f[0], id: Number(f[2]) }));
}

/** A subordinate range line "name-or-id:start:count". */
interface SubRange {
  owner: string;
  start: number;
  count: number;
}

export function parseSubordinate(text: string): SubRange[] {
  const out: SubRange[] = [];
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (t === '' || t.startsWith('#')) continue;
    const [owner, start, count] = t.split(':');
    if (!/^\d+$/.test(start ?? '') || !/^\d+$/.test(count ?? '')) continue;
    out.push({ owner, start: Number(start), count: Number(count) });
  }
  return out;
}

/** The owner's ranges as an ID map: container IDs from 0 on, ranges in file order (shadow's). */
export function mappingFor(ranges: SubRange[], name: string, id: number): IdRange[] {
  const out: IdRange[] = [];
  let next = 0;
  for (const r of ranges) {
    if (r.owner !== name && r.owner !== String(id)) continue;
    if (r.count <= 0) continue;
    out.push({ containerID: next, hostID: r.start, size: r.count });
    next += r.count;
  }
  return out;
}

/** The lowest start ≥ 100000 where count IDs overlap no range of the file (dockerd's findNextRangeStart). */
export function nextFreeRange(ranges: SubRange[], count: number): number {
  const sorted = [...ranges].sort((a, b) => a.start - b.start);
  let start = FIRST_SUBORDINATE_ID;
  for (const r of sorted) {
    if (r.start + r.count <= start) continue;
    if (r.start >= start + count) break;
    start = r.start + r.count;
  }
  return start;
}

/**
 * Appends "name:start:count" to a subordinate ID file unless name has a range there already.
 * Existing lines stay as they are; the file is replaced atomically (temp, fsync, rename).
 */
export function ensureSubordinateRange(file: string, name: string, count = DEFAULT_RANGE_SIZE): boolean {
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const ranges = parseSubordinate(text);
  if (ranges.some((r) => r.owner === name)) return false;
  const start = nextFreeRange(ranges, count);
  const body = `${text}${text === '' || text.endsWith('\n') ? '' : '\n'}${name}:${start}:${count}\n`;
  let mode = 0o644;
  try {
    mode = fs.statSync(file).mode & 0o7777;
  } catch {}
  writeFileAtomic(file, body, mode);
  return true;
}

// ---- the --userns-remap setting ----

export interface RemapSetting {
  /** The resolved "user:group", as dockerd reports it. */
  user: string;
  group: string;
  mapping: IdentityMapping;
}

/** The system commands berthd would run to create the default user (a seam for tests). */
export interface AccountCreator {
  addGroup(name: string): void;
  addUser(name: string, group: string): void;
}

export const SYSTEM_ACCOUNTS: AccountCreator = {
  addGroup(name) {
    execFileSync('groupadd', ['--system', name], { stdio: ['ignore', 'ignore', 'pipe'] });
  },
  addUser(name, group) {
    execFileSync('useradd', ['--system', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', '--gid', group, name], { stdio: ['ignore', 'ignore', 'pipe'] });
  },
};

function commandError(err: unknown): string {
  const stderr = String((err as { stderr?: Buffer }).stderr ?? '').trim();
  return stderr || (err as Error).message;
}

const INT32 = /^-?\d+$/;

/**
 * Resolves a --userns-remap value ("default", "user", "user:group", "uid", "uid:gid") to the
 * user, group and ID mapping, with dockerd's rules and messages. "default" creates the berth
 * user and group and their subordinate ranges when missing. Returns undefined when the user is
 * root (dockerd: root cannot be remapped with itself; user namespaces stay off).
 */
export function resolveRemap(value: string, files: UsernsFiles = SYSTEM_FILES, accounts: AccountCreator = SYSTEM_ACCOUNTS): RemapSetting | undefined {
  const parts = value.split(':');
  if (parts.length > 2 || value === '') throw new UsernsError(`Invalid user/group specification in --userns-remap: ${JSON.stringify(value)}`);
  const users = (): Entry[] => entries(files.passwd);
  const groups = (): Entry[] => entries(files.group);
  let user: Entry | undefined;
  let group: Entry | undefined;
  if (INT32.test(parts[0])) {
    const uid = Number(parts[0]);
    user = users().find((u) => u.id === uid);
    if (!user) throw new UsernsError(`Uid ${uid} has no entry in /etc/passwd`);
    if (parts.length === 1) {
      group = groups().find((g) => g.id === uid);
      if (!group) throw new UsernsError(`Gid ${uid} has no entry in /etc/group`);
    }
  } else if (parts[0] === 'default') {
    user = users().find((u) => u.name === DEFAULT_REMAP_NAME);
    if (!user) {
      try {
        if (!groups().some((g) => g.name === DEFAULT_REMAP_NAME)) accounts.addGroup(DEFAULT_REMAP_NAME);
        // The group berth is also the API socket's group: the user gets nogroup as its primary
        // group where there is one, so that nothing running as it can reach the socket. Only the
        // group's *name* matters for the mapping (its /etc/subgid ranges).
        accounts.addUser(DEFAULT_REMAP_NAME, groups().some((g) => g.name === 'nogroup') ? 'nogroup' : DEFAULT_REMAP_NAME);
      } catch (err) {
        throw new UsernsError(`Error during ${JSON.stringify(DEFAULT_REMAP_NAME)} user creation: ${commandError(err)}`);
      }
      user = users().find((u) => u.name === DEFAULT_REMAP_NAME);
      if (!user) throw new UsernsError(`Error during ${JSON.stringify(DEFAULT_REMAP_NAME)} user creation: no passwd entry after useradd`);
    }
    if (parts.length === 1) {
      group = groups().find((g) => g.name === DEFAULT_REMAP_NAME);
      if (!group) throw new UsernsError(`Error during gid lookup for ${JSON.stringify(DEFAULT_REMAP_NAME)}: no matching entries in group file`);
    }
    // dockerd adds ranges only for a user it creates; berth also completes an existing berth
    // user's missing ranges, so that a half-done earlier set-up (or a berth user made for the
    // socket group's sake) still works. Existing lines are never touched.
    ensureSubordinateRange(files.subuid, DEFAULT_REMAP_NAME);
    ensureSubordinateRange(files.subgid, DEFAULT_REMAP_NAME);
  } else {
    user = users().find((u) => u.name === parts[0]);
    if (!user) throw new UsernsError(`Error during uid lookup for ${JSON.stringify(parts[0])}: no matching entries in passwd file`);
    if (parts.length === 1) {
      group = groups().find((g) => g.name === parts[0]);
      if (!group) throw new UsernsError(`Error during gid lookup for ${JSON.stringify(parts[0])}: no matching entries in group file`);
    }
  }
  if (parts.length === 2) {
    if (INT32.test(parts[1])) {
      const gid = Number(parts[1]);
      group = groups().find((g) => g.id === gid);
      if (!group) throw new UsernsError(`Gid ${gid} has no entry in /etc/group`);
    } else {
      group = groups().find((g) => g.name === parts[1]);
      if (!group) throw new UsernsError(`Error during groupname lookup for ${JSON.stringify(parts[1])}: no matching entries in group file`);
    }
  }
  if (user.name === 'root') return undefined;
  const subuid = parseSubordinate(readLines(files.subuid).join('\n'));
  const subgid = parseSubordinate(readLines(files.subgid).join('\n'));
  const uids = mappingFor(subuid, user.name, user.id);
  const gids = mappingFor(subgid, group!.name, group!.id);
  if (uids.length === 0) throw new UsernsError(`error creating ID mappings: no subuid ranges found for user ${JSON.stringify(user.name)}`);
  if (gids.length === 0) throw new UsernsError(`error creating ID mappings: no subgid ranges found for group ${JSON.stringify(group!.name)}`);
  return { user: user.name, group: group!.name, mapping: new IdentityMapping(uids, gids) };
}

// ---- shifting a tree's owners ----

const CAPABILITY_XATTR = 'security.capability';

/**
 * Rewrites the owner of every entry below dir (dir itself too, unless skipRoot) from container
 * IDs to host IDs. Hardlinked inodes are shifted once. chown(2) clears setuid/setgid bits and the
 * file-capability xattr, so those are put back after it. An ID the mapping cannot carry fails
 * the whole shift (the caller drops the snapshot), as dockerd refuses such a layer.
 */
export function shiftTree(dir: string, map: IdentityMapping, opts: { skipRoot?: boolean } = {}): void {
  const seen = new Set<string>();
  const visit = (p: string, isRoot: boolean): void => {
    const st = fs.lstatSync(p);
    if (!(isRoot && opts.skipRoot)) {
      const key = `${st.dev}:${st.ino}`;
      if (!(st.nlink > 1 && !st.isDirectory() && seen.has(key))) {
        if (st.nlink > 1 && !st.isDirectory()) seen.add(key);
        shiftOne(p, st, map);
      }
    }
    if (st.isDirectory()) for (const name of fs.readdirSync(p)) visit(`${p}/${name}`, false);
  };
  visit(dir, true);
}

function shiftOne(p: string, st: fs.Stats, map: IdentityMapping): void {
  const { uid, gid } = map.toHost(st.uid, st.gid);
  if (uid === st.uid && gid === st.gid) return;
  const regular = st.isFile();
  const cap = regular ? lgetxattr(p, CAPABILITY_XATTR) : null;
  fs.lchownSync(p, uid, gid);
  if (!st.isSymbolicLink() && !st.isDirectory() && (st.mode & 0o6000) !== 0) fs.chmodSync(p, st.mode & 0o7777);
  if (cap) lsetxattr(p, CAPABILITY_XATTR, cap);
}

/** Whether uid/gid may traverse dir (its x bit for them), as dockerd's rough check. */
export function canTraverse(dir: string, uid: number, gid: number): boolean {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    return false;
  }
  if (st.mode & 0o001) return true;
  if (st.uid === uid && st.mode & 0o100) return true;
  return st.gid === gid && (st.mode & 0o010) !== 0;
}

/** The first ancestor of dir (dir excluded, / excluded) that uid/gid cannot traverse. */
export function blockingAncestor(dir: string, uid: number, gid: number): string | undefined {
  for (let p = path.dirname(dir); p !== '/' && p !== '.'; p = path.dirname(p)) {
    if (!canTraverse(p, uid, gid)) return p;
  }
  return undefined;
}

/**
 * mkdir -p, with the directories it creates (only those) owned by owner: what dockerd does for a
 * missing bind-mount source or a path cp creates in a remapped container.
 */
export function mkdirAllOwned(dir: string, mode: number, owner: { uid: number; gid: number } | undefined): void {
  const first = fs.mkdirSync(dir, { recursive: true, mode });
  if (!owner || first === undefined) return;
  for (let p = path.resolve(dir); ; p = path.dirname(p)) {
    fs.chownSync(p, owner.uid, owner.gid);
    if (p === path.resolve(first) || p === path.dirname(p)) break;
  }
}
