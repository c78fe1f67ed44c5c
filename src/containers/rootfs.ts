// Reading files of a container's root filesystem from the host, safely: symlinks are resolved as
// the container would see them (absolute targets are relative to the rootfs), so an image cannot
// point /etc/passwd at a host file. And the user lookup docker does against /etc/passwd and
// /etc/group in the image.
import * as fs from 'node:fs';
import { invalidParameter } from '../common/errors';
import { resolveInRoot } from '../common/scopedpath';

// Tests and callers reach it through this module too.
export { resolveInRoot };

export function readFileInRoot(root: string, rel: string): string | undefined {
  try {
    const p = resolveInRoot(root, rel);
    const st = fs.statSync(p);
    if (!st.isFile() || st.size > 16 << 20) return undefined;
    return fs.readFileSync(p, 'utf8');
  } catch {
    return undefined;
  }
}

export interface ExecUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  home: string;
}

function parseColonFile(text: string | undefined): string[][] {
  if (!text) return [];
  return text.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#')).map((l) => l.split(':'));
}

const isNumeric = (s: string): boolean => /^\d+$/.test(s);

/**
 * docker's user spec: "", "name", "uid", "name:group", "uid:gid", names looked up in the image's
 * /etc/passwd and /etc/group. A numeric uid that is not in passwd is allowed (home "/").
 */
export function resolveUser(root: string, spec: string): ExecUser {
  const passwd = parseColonFile(readFileInRoot(root, '/etc/passwd'));
  const groups = parseColonFile(readFileInRoot(root, '/etc/group'));
  const [userPart, groupPart] = spec === '' ? ['root', undefined] : spec.split(':', 2);
  const u = userPart === '' ? 'root' : userPart;
  let entry = passwd.find((f) => f[0] === u);
  if (!entry && isNumeric(u)) entry = passwd.find((f) => f[2] === u);
  let uid: number;
  let gid: number;
  let home = '/';
  if (entry) {
    uid = Number(entry[2]);
    gid = Number(entry[3]);
    home = entry[5] || '/';
  } else if (isNumeric(u)) {
    // Not in passwd: runc's defaults for the rest (gid 0, home /).
    uid = Number(u);
    gid = 0;
  } else if (u === 'root') {
    uid = 0;
    gid = 0;
    home = '/root';
  } else {
    throw invalidParameter(`unable to find user ${u}: no matching entries in passwd file`);
  }
  if (groupPart !== undefined && groupPart !== '') {
    const g = groups.find((f) => f[0] === groupPart) ?? (isNumeric(groupPart) ? groups.find((f) => f[2] === groupPart) : undefined);
    if (g) gid = Number(g[2]);
    else if (isNumeric(groupPart)) gid = Number(groupPart);
    else throw invalidParameter(`unable to find group ${groupPart}: no matching entries in group file`);
  }
  const additionalGids: number[] = [];
  if (entry && groupPart === undefined) {
    for (const g of groups) {
      const members = (g[3] ?? '').split(',').filter(Boolean);
      const n = Number(g[2]);
      if (members.includes(entry[0]) && n !== gid && !additionalGids.includes(n)) additionalGids.push(n);
    }
  }
  return { uid, gid, additionalGids, home };
}
