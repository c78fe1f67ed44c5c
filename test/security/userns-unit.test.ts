// --userns-remap's parts without a daemon: the remap setting's resolution against passwd, group
// and subordinate-ID files (temp copies), range allocation that never clobbers existing lines, the
// ID arithmetic, the owner shift of a real tree (hardlinks, setuid, file capabilities), the spec.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  ensureSubordinateRange, IdentityMapping, nextFreeRange, parseSubordinate, resolveRemap, shiftTree, blockingAncestor, mkdirAllOwned,
  type AccountCreator, type UsernsFiles,
} from '../../src/security/userns';
import { generateSpec } from '../../src/runtime/spec';
import { lgetxattr, lsetxattr } from '../../src/native';

function tempFiles(t: { after: (fn: () => void) => void }, content: Partial<Record<keyof UsernsFiles, string>>): UsernsFiles {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-userns-unit-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const files = { passwd: path.join(dir, 'passwd'), group: path.join(dir, 'group'), subuid: path.join(dir, 'subuid'), subgid: path.join(dir, 'subgid') };
  for (const [k, v] of Object.entries(content)) fs.writeFileSync(files[k as keyof UsernsFiles], v);
  return files;
}

const PASSWD = 'root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\n';
const GROUP = 'root:x:0:\nalice:x:1000:\nbob:x:1001:\nstaff:x:50:\n';
const noAccounts: AccountCreator = {
  addGroup() { throw new Error('must not create a group'); },
  addUser() { throw new Error('must not create a user'); },
};

test('nextFreeRange: the first gap of the size at or above 100000', () => {
  assert.equal(nextFreeRange([], 65536), 100000);
  assert.equal(nextFreeRange(parseSubordinate('a:100000:65536\n'), 65536), 165536);
  assert.equal(nextFreeRange(parseSubordinate('a:300000:65536\nb:100000:65536\n'), 65536), 165536);
  assert.equal(nextFreeRange(parseSubordinate('a:100000:65536\nb:200000:65536\n'), 65536), 265536, 'the gap 165536..200000 is too small');
  assert.equal(nextFreeRange(parseSubordinate('a:1000:10\n'), 65536), 100000, 'ranges below 100000 do not matter');
});

test('ensureSubordinateRange appends once and keeps every existing line as it was', (t) => {
  const files = tempFiles(t, { subuid: '# comment\nalice:100000:65536\nbob:165536:1000' });
  assert.equal(ensureSubordinateRange(files.subuid, 'berth'), true);
  assert.equal(fs.readFileSync(files.subuid, 'utf8'), '# comment\nalice:100000:65536\nbob:165536:1000\nberth:166536:65536\n');
  assert.equal(ensureSubordinateRange(files.subuid, 'berth'), false, 'no second entry');
  assert.equal(fs.readFileSync(files.subuid, 'utf8').match(/^berth:/gm)?.length, 1);
  // A missing file is created.
  assert.equal(ensureSubordinateRange(files.subgid, 'berth'), true);
  assert.equal(fs.readFileSync(files.subgid, 'utf8'), 'berth:100000:65536\n');
});

test('resolveRemap: user, user:group, uid, uid:gid with dockerd-style mappings (ranges concatenated from container ID 0)', (t) => {
  const files = tempFiles(t, { passwd: PASSWD, group: GROUP, subuid: 'alice:200000:65536\nalice:400000:1000\n1001:500000:65536\n', subgid: 'alice:200000:65536\nstaff:300000:65536\n1001:500000:65536\n' });
  const alice = resolveRemap('alice', files, noAccounts)!;
  assert.equal(alice.user, 'alice');
  assert.equal(alice.group, 'alice');
  assert.deepEqual(alice.mapping.uids, [{ containerID: 0, hostID: 200000, size: 65536 }, { containerID: 65536, hostID: 400000, size: 1000 }]);
  assert.deepEqual(alice.mapping.rootPair(), { uid: 200000, gid: 200000 });
  const staff = resolveRemap('alice:staff', files, noAccounts)!;
  assert.equal(staff.group, 'staff');
  assert.deepEqual(staff.mapping.gids, [{ containerID: 0, hostID: 300000, size: 65536 }]);
  // Ranges may name the owner by number.
  const bob = resolveRemap('1001', files, noAccounts)!;
  assert.equal(bob.user, 'bob');
  assert.deepEqual(bob.mapping.rootPair(), { uid: 500000, gid: 500000 });
  assert.equal(resolveRemap('1000:50', files, noAccounts)!.group, 'staff');
  assert.equal(resolveRemap('root', files, noAccounts), undefined, 'root cannot be remapped with itself');
});

test('resolveRemap: dockerd\'s errors', (t) => {
  const files = tempFiles(t, { passwd: PASSWD, group: GROUP, subuid: '', subgid: '' });
  assert.throws(() => resolveRemap('a:b:c', files, noAccounts), /Invalid user\/group specification in --userns-remap: "a:b:c"/);
  assert.throws(() => resolveRemap('nosuch', files, noAccounts), /Error during uid lookup for "nosuch"/);
  assert.throws(() => resolveRemap('4242', files, noAccounts), /Uid 4242 has no entry in \/etc\/passwd/);
  assert.throws(() => resolveRemap('alice:nogroup', files, noAccounts), /Error during groupname lookup for "nogroup"/);
  assert.throws(() => resolveRemap('alice', files, noAccounts), /no subuid ranges found for user "alice"/);
  assert.equal(fs.readFileSync(files.subuid, 'utf8'), '', 'a named user never gets ranges added');
});

test('resolveRemap default: creates the berth group and user when missing, and their ranges, once', (t) => {
  const files = tempFiles(t, { passwd: PASSWD, group: GROUP, subuid: 'alice:100000:65536\n', subgid: 'alice:100000:65536\n' });
  const made: string[] = [];
  const accounts: AccountCreator = {
    addGroup(name) { made.push(`group ${name}`); fs.appendFileSync(files.group, `${name}:x:990:\n`); },
    addUser(name, group) { made.push(`user ${name} ${group}`); fs.appendFileSync(files.passwd, `${name}:x:990:990::/nonexistent:/usr/sbin/nologin\n`); },
  };
  const r = resolveRemap('default', files, accounts)!;
  assert.deepEqual(made, ['group berth', 'user berth berth'], 'no nogroup in this group file: the berth group is primary');
  assert.equal(r.user, 'berth');
  assert.equal(r.group, 'berth');
  assert.deepEqual(r.mapping.rootPair(), { uid: 165536, gid: 165536 });
  assert.equal(fs.readFileSync(files.subuid, 'utf8'), 'alice:100000:65536\nberth:165536:65536\n');
  // Again: nothing created, nothing added.
  const again = resolveRemap('default', files, noAccounts)!;
  assert.deepEqual(again.mapping.rootPair(), { uid: 165536, gid: 165536 });
  assert.equal(fs.readFileSync(files.subgid, 'utf8'), 'alice:100000:65536\nberth:165536:65536\n');
});

test('resolveRemap default: the created user is not a member of the berth group (the API socket\'s) where nogroup exists', (t) => {
  const files = tempFiles(t, { passwd: PASSWD, group: `${GROUP}nogroup:x:65534:\nberth:x:995:\n`, subuid: '', subgid: '' });
  const made: string[] = [];
  const accounts: AccountCreator = {
    addGroup(name) { made.push(`group ${name}`); },
    addUser(name, group) { made.push(`user ${name} ${group}`); fs.appendFileSync(files.passwd, `${name}:x:990:65534::/nonexistent:/usr/sbin/nologin\n`); },
  };
  const r = resolveRemap('default', files, accounts)!;
  assert.deepEqual(made, ['user berth nogroup'], 'the existing group is used, not created again');
  assert.equal(r.group, 'berth');
  assert.deepEqual(r.mapping.rootPair(), { uid: 100000, gid: 100000 });
});

test('IdentityMapping: container IDs ↔ host IDs; unmappable host IDs show as 65534, unmappable container IDs fail', () => {
  const m = new IdentityMapping([{ containerID: 0, hostID: 100000, size: 65536 }], [{ containerID: 0, hostID: 200000, size: 10 }]);
  assert.deepEqual(m.toHost(0, 0), { uid: 100000, gid: 200000 });
  assert.deepEqual(m.toHost(1000, 9), { uid: 101000, gid: 200009 });
  assert.deepEqual(m.toContainer(101000, 200009), { uid: 1000, gid: 9 });
  assert.deepEqual(m.toContainer(0, 0), { uid: 65534, gid: 65534 });
  assert.throws(() => m.toHost(70000, 0), /Container ID 70000 cannot be mapped to a host ID/);
  assert.throws(() => m.toHost(0, 10), /Container ID 10 cannot be mapped to a host ID/);
});

test('shiftTree: every owner shifted once (hardlinks too), setuid bits and file capabilities kept', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-userns-shift-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'd'));
  fs.writeFileSync(path.join(dir, 'd', 'suid'), 'x', { mode: 0o4755 });
  fs.chownSync(path.join(dir, 'd', 'suid'), 1000, 1000);
  fs.chmodSync(path.join(dir, 'd', 'suid'), 0o4755);
  fs.writeFileSync(path.join(dir, 'capped'), 'x');
  // A v2 file capability: CAP_NET_RAW permitted and effective.
  const cap = Buffer.alloc(20);
  cap.writeUInt32LE(0x02000001, 0);
  cap.writeUInt32LE(1 << 13, 4);
  lsetxattr(path.join(dir, 'capped'), 'security.capability', cap);
  fs.linkSync(path.join(dir, 'd', 'suid'), path.join(dir, 'hardlink'));
  fs.symlinkSync('d/suid', path.join(dir, 'link'));
  fs.lchownSync(path.join(dir, 'link'), 5, 5);
  const m = new IdentityMapping([{ containerID: 0, hostID: 100000, size: 65536 }], [{ containerID: 0, hostID: 100000, size: 65536 }]);
  shiftTree(dir, m, { skipRoot: true });
  const st = (p: string) => fs.lstatSync(path.join(dir, p));
  assert.equal(st('.').uid, 0, 'root skipped');
  assert.equal(st('d').uid, 100000);
  assert.equal(st('d/suid').uid, 101000, 'hardlinked file shifted once');
  assert.equal(st('d/suid').gid, 101000);
  assert.equal(st('d/suid').mode & 0o7777, 0o4755, 'setuid bit kept');
  assert.equal(st('link').uid, 100005, 'the symlink itself');
  assert.equal(st('capped').uid, 100000);
  assert.deepEqual(lgetxattr(path.join(dir, 'capped'), 'security.capability'), cap, 'file capability kept');
  // An ID outside the mapping fails the shift.
  const far = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-userns-far-'));
  t.after(() => fs.rmSync(far, { recursive: true, force: true }));
  fs.writeFileSync(path.join(far, 'f'), '');
  fs.chownSync(path.join(far, 'f'), 70000, 0);
  assert.throws(() => shiftTree(far, m, { skipRoot: true }), /Container ID 70000 cannot be mapped to a host ID/);
});

test('blockingAncestor finds a directory the remapped root cannot traverse', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-userns-acc-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'a', 'b'), { recursive: true });
  fs.chmodSync(dir, 0o700);
  assert.equal(blockingAncestor(path.join(dir, 'a', 'b'), 100000, 100000), dir);
  fs.chmodSync(dir, 0o711);
  assert.equal(blockingAncestor(path.join(dir, 'a', 'b'), 100000, 100000), undefined);
  fs.chmodSync(dir, 0o710);
  fs.chownSync(dir, 0, 100000);
  assert.equal(blockingAncestor(path.join(dir, 'a', 'b'), 100000, 100000), undefined, 'group x is enough');
});

test('mkdirAllOwned: only the directories it creates get the owner', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-userns-mkdir-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'old'));
  mkdirAllOwned(path.join(dir, 'old', 'a', 'b'), 0o755, { uid: 100000, gid: 100001 });
  assert.equal(fs.statSync(path.join(dir, 'old')).uid, 0, 'an existing directory is left alone');
  assert.equal(fs.statSync(path.join(dir, 'old', 'a')).uid, 100000);
  assert.equal(fs.statSync(path.join(dir, 'old', 'a', 'b')).gid, 100001);
  mkdirAllOwned(path.join(dir, 'old', 'a', 'b'), 0o755, { uid: 5, gid: 5 });
  assert.equal(fs.statSync(path.join(dir, 'old', 'a', 'b')).uid, 100000, 'nothing created, nothing changed');
  mkdirAllOwned(path.join(dir, 'plain', 'x'), 0o755, undefined);
  assert.equal(fs.statSync(path.join(dir, 'plain', 'x')).uid, 0);
});

test('generateSpec with a user namespace: the namespace, both mappings', () => {
  const uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
  const gidMappings = [{ containerID: 0, hostID: 200000, size: 65536 }];
  const spec = generateSpec({ args: ['sh'], rootfs: '/r', userns: { uidMappings, gidMappings } });
  assert.ok(spec.linux.namespaces.some((n) => n.type === 'user' && n.path === undefined));
  assert.deepEqual(spec.linux.uidMappings, uidMappings);
  assert.deepEqual(spec.linux.gidMappings, gidMappings);
  const plain = generateSpec({ args: ['sh'], rootfs: '/r' });
  assert.ok(!plain.linux.namespaces.some((n) => n.type === 'user'));
  assert.equal(plain.linux.uidMappings, undefined);
  assert.throws(() => generateSpec({ args: ['sh'], rootfs: '/r', userns: { uidMappings: [], gidMappings } }), /needs uid and gid mappings/);
});
