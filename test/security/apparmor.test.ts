// AppArmor: the profile text (this kernel has no AppArmor, so it is checked as text), which
// profile a container gets, and the host test. The daemon side (no name=apparmor, an explicit
// profile accepted and ignored here) is in userns.test.ts's daemon.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  appArmorProfileFor, DEFAULT_APPARMOR_PROFILE, generateDefaultProfile, hostSupportsAppArmor, profileLoaded,
} from '../../src/security/apparmor';
import { generateSpec } from '../../src/runtime/spec';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';

test('the default profile: docker-default\'s rules under its own name', () => {
  const text = generateDefaultProfile();
  const lines = text.split('\n').map((l) => l.trim());
  assert.equal(lines[0], '#include <tunables/global>');
  assert.ok(lines.includes(`profile ${DEFAULT_APPARMOR_PROFILE} flags=(attach_disconnected,mediate_deleted) {`));
  for (const rule of ['network,', 'capability,', 'file,', 'umount,', 'deny mount,',
    'signal (receive) peer=unconfined,', `signal (send,receive) peer=${DEFAULT_APPARMOR_PROFILE},`,
    'deny @{PROC}/* w,', 'deny @{PROC}/sys/[^k]** w,', 'deny @{PROC}/sys/kernel/{?,??,[^s][^h][^m]**} w,',
    'deny @{PROC}/sysrq-trigger rwklx,', 'deny @{PROC}/kcore rwklx,',
    'deny /sys/[^f]*/** wklx,', 'deny /sys/fs/cg[^r]*/** wklx,', 'deny /sys/firmware/** rwklx,',
    'deny /sys/devices/virtual/powercap/** rwklx,', 'deny /sys/kernel/security/** rwklx,',
    `ptrace (trace,read,tracedby,readby) peer=${DEFAULT_APPARMOR_PROFILE},`]) {
    assert.ok(lines.includes(rule), `rule ${rule}`);
  }
  assert.equal(lines.filter((l) => l === '}').length, 1, 'one block, closed');
  assert.ok(!text.includes('abstractions/base'), 'base abstraction only when asked');
  // Rules never end without a comma (apparmor_parser syntax), comments aside.
  for (const l of lines) if (l && !l.startsWith('#') && !l.endsWith('{') && l !== '}') assert.ok(l.endsWith(','), `rule ends with a comma: ${l}`);
});

test('profile options: base abstraction, the daemon\'s own profile may signal containers, names are checked', () => {
  const text = generateDefaultProfile('custom-1', { includeBase: true, daemonProfile: 'berthd-prof' });
  assert.match(text, /^ {2}#include <abstractions\/base>$/m);
  assert.match(text, /^ {2}signal \(receive\) peer=berthd-prof,$/m);
  assert.match(text, /^profile custom-1 flags=/m);
  assert.equal(generateDefaultProfile('x', { daemonProfile: 'unconfined' }).match(/peer=unconfined,/g)?.length, 1, 'an unconfined daemon needs no rule of its own');
  assert.throws(() => generateDefaultProfile('bad name {'), /invalid AppArmor profile name/);
});

test('which profile a container gets: none without AppArmor; explicit, unconfined when privileged, else the default', () => {
  assert.equal(appArmorProfileFor({ requested: 'foo', privileged: false, supported: false }), undefined);
  assert.equal(appArmorProfileFor({ privileged: false, supported: false }), undefined);
  assert.equal(appArmorProfileFor({ requested: 'foo', privileged: true, supported: true }), 'foo');
  assert.equal(appArmorProfileFor({ privileged: true, supported: true }), 'unconfined');
  assert.equal(appArmorProfileFor({ privileged: false, supported: true }), DEFAULT_APPARMOR_PROFILE);
  const spec = generateSpec({ args: ['sh'], rootfs: '/r', apparmorProfile: DEFAULT_APPARMOR_PROFILE });
  assert.equal(spec.process.apparmorProfile, DEFAULT_APPARMOR_PROFILE);
  assert.equal(generateSpec({ args: ['sh'], rootfs: '/r' }).process.apparmorProfile, undefined);
});

test('host support: the kernel switch and apparmor_parser both needed; this host has neither', () => {
  assert.equal(hostSupportsAppArmor({ enabledFile: 'Y\n', parser: '/sbin/apparmor_parser' }), true);
  assert.equal(hostSupportsAppArmor({ enabledFile: 'N\n', parser: '/sbin/apparmor_parser' }), false);
  assert.equal(hostSupportsAppArmor({ enabledFile: 'Y\n' }), false);
  assert.equal(hostSupportsAppArmor({ parser: '/sbin/apparmor_parser' }), false);
  assert.equal(hostSupportsAppArmor(), fs.existsSync('/sys/module/apparmor/parameters/enabled') && fs.readFileSync('/sys/module/apparmor/parameters/enabled', 'utf8').startsWith('Y') && (fs.existsSync('/sbin/apparmor_parser') || fs.existsSync('/usr/sbin/apparmor_parser')));
});

test('profileLoaded reads the kernel\'s profile list', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-aa-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'profiles');
  fs.writeFileSync(file, 'berth-default-old (enforce)\nberth-default (enforce)\n');
  assert.equal(profileLoaded(DEFAULT_APPARMOR_PROFILE, file), true);
  fs.writeFileSync(file, 'berth-default-old (enforce)\n');
  assert.equal(profileLoaded(DEFAULT_APPARMOR_PROFILE, file), false);
  assert.equal(profileLoaded(DEFAULT_APPARMOR_PROFILE, path.join(dir, 'missing')), false);
});

// Compiling the profile takes apparmor_parser, which this host lacks. With the Debian package
// unpacked somewhere (apt-get download apparmor && dpkg -x apparmor_*.deb DIR), set
// BERTH_TEST_APPARMOR_ROOT=DIR to check that the parser accepts the text (-Q: no kernel load).
test('apparmor_parser compiles the default profile', (t) => {
  const root = process.env.BERTH_TEST_APPARMOR_ROOT;
  const parser = root ? path.join(root, 'sbin', 'apparmor_parser') : ['/sbin/apparmor_parser', '/usr/sbin/apparmor_parser'].find((p) => fs.existsSync(p));
  if (!parser || !fs.existsSync(parser)) {
    t.skip('no apparmor_parser (set BERTH_TEST_APPARMOR_ROOT to an unpacked apparmor package)');
    return;
  }
  const include = root ? path.join(root, 'etc', 'apparmor.d') : '/etc/apparmor.d';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-aa-parse-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const cases: [string, string][] = [
    ['plain', generateDefaultProfile()],
    ['full', generateDefaultProfile(DEFAULT_APPARMOR_PROFILE, { includeBase: true, daemonProfile: 'berthd' })],
    ['broken', 'profile x {\n  not a rule\n}\n'],
  ];
  for (const [name, text] of cases) {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    const r: SpawnSyncReturns<string> = spawnSync(parser, ['-Q', '-K', '-I', include, file], { encoding: 'utf8' });
    if (name === 'broken') assert.notEqual(r.status, 0, 'the parser does reject bad text');
    else assert.equal(r.status, 0, `${name}: ${r.stderr}`);
  }
});
