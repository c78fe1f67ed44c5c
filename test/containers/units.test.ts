// Pure parts of the container subsystem: the state machine's rules and wording, docker's status
// strings, stdcopy frames, detach keys, user lookup in an image (and its symlink safety).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { canTransition, checkAction, transition } from '../../src/containers/state';
import { humanDuration, statusString } from '../../src/containers/format';
import { DetachMatcher, parseDetachKeys, stdcopyFrame } from '../../src/containers/streams';
import { resolveInRoot, resolveUser } from '../../src/containers/rootfs';
import { normalizeName, generateName } from '../../src/containers/names';
import { mergeEnv, parseSignal, validateRestartPolicy, dockerRuntimeError } from '../../src/containers/service';
import { hostsFile, resolvConf } from '../../src/containers/hostfiles';
import { BerthError, statusOf } from '../../src/common/errors';

const who = { id: 'abc123', name: 'web' };

test('state machine: allowed moves, and illegal ones are 409 in docker words', () => {
  assert.ok(canTransition('created', 'running'));
  assert.ok(canTransition('running', 'paused'));
  assert.ok(!canTransition('paused', 'restarting'));
  assert.ok(!canTransition('dead', 'running'));
  assert.throws(() => transition('exited', 'paused', who), (err: BerthError) => statusOf(err) === 409);
  assert.equal(transition('paused', 'running', who, 'unpause'), 'running');
  const msg = (f: () => void): string => {
    try {
      f();
    } catch (err) {
      assert.equal(statusOf(err), (err as BerthError).kind === 'NotModified' ? 304 : 409);
      return (err as Error).message;
    }
    return '';
  };
  assert.equal(msg(() => checkAction('remove', 'running', who)), 'cannot remove container "/web": container is running: stop the container before removing or force remove');
  assert.equal(msg(() => checkAction('remove', 'running', who, { force: true })), '');
  assert.equal(msg(() => checkAction('pause', 'exited', who)), 'Container abc123 is not running');
  assert.equal(msg(() => checkAction('pause', 'paused', who)), 'Container abc123 is already paused');
  assert.equal(msg(() => checkAction('unpause', 'running', who)), 'Container abc123 is not paused');
  assert.equal(msg(() => checkAction('start', 'paused', who)), 'cannot start a paused container, try unpause instead');
  assert.equal(msg(() => checkAction('start', 'running', who)), 'Container already started');
  assert.equal(msg(() => checkAction('exec', 'paused', who)), 'Container abc123 is paused, unpause the container before exec');
  assert.equal(msg(() => checkAction('kill', 'created', who)), 'Container abc123 is not running');
});

test('status strings and human durations as docker prints them', () => {
  assert.equal(humanDuration(500), 'Less than a second');
  assert.equal(humanDuration(1000), '1 second');
  assert.equal(humanDuration(3000), '3 seconds');
  assert.equal(humanDuration(61_000), 'About a minute');
  assert.equal(humanDuration(120_000), '2 minutes');
  assert.equal(humanDuration(3600_000), 'About an hour');
  assert.equal(humanDuration(3 * 86400_000), '3 days');
  const now = Date.parse('2024-01-01T00:10:00Z');
  const base = { Pid: 0, Error: '', OOMKilled: false, ManuallyStopped: false, StartedAt: '2024-01-01T00:07:00Z', FinishedAt: '2024-01-01T00:09:58Z', ExitCode: 0 };
  assert.equal(statusString({ ...base, Status: 'running' }, now), 'Up 3 minutes');
  assert.equal(statusString({ ...base, Status: 'paused' }, now), 'Up 3 minutes (Paused)');
  assert.equal(statusString({ ...base, Status: 'exited', ExitCode: 3 }, now), 'Exited (3) 2 seconds ago');
  assert.equal(statusString({ ...base, Status: 'created', StartedAt: '0001-01-01T00:00:00Z' }, now), 'Created');
  assert.equal(statusString({ ...base, Status: 'restarting', ExitCode: 1 }, now), 'Restarting (1) 2 seconds ago');
});

test('stdcopy frames and detach keys', () => {
  assert.deepEqual([...stdcopyFrame(2, Buffer.from('hi'))], [2, 0, 0, 0, 0, 0, 0, 2, 0x68, 0x69]);
  assert.deepEqual([...parseDetachKeys('ctrl-p,ctrl-q')], [16, 17]);
  assert.deepEqual([...parseDetachKeys('ctrl-@,a,ctrl-[')], [0, 97, 27]);
  assert.throws(() => parseDetachKeys('ctrl-long'), /Invalid detach keys/);
  const m = new DetachMatcher(parseDetachKeys('ctrl-p,ctrl-q'));
  assert.deepEqual(m.feed(Buffer.from([0x61, 0x10])), { pass: Buffer.from([0x61]), detach: false });
  // A broken sequence passes its held byte on.
  assert.deepEqual(m.feed(Buffer.from([0x62])), { pass: Buffer.from([0x10, 0x62]), detach: false });
  assert.equal(m.feed(Buffer.from([0x10])).detach, false);
  assert.equal(m.feed(Buffer.from([0x11])).detach, true);
});

test('names, env merge, signals, restart policy validation, runtime error wording', () => {
  assert.equal(normalizeName('/web'), 'web');
  assert.throws(() => normalizeName('x'), /Invalid container name/);
  assert.throws(() => normalizeName('a b'), /Invalid container name/);
  assert.match(generateName(), /^[a-z]+_[a-z]+$/);
  assert.deepEqual(mergeEnv(['PATH=/bin', 'A=1'], ['A=2', 'B=3', 'PATH']), ['A=2', 'B=3']);
  assert.equal(parseSignal('KILL'), 9);
  assert.equal(parseSignal('sigusr1'), 10);
  assert.equal(parseSignal('15'), 15);
  assert.throws(() => parseSignal('NOPE'), /Invalid signal: NOPE/);
  assert.throws(() => parseSignal('65'), /Invalid signal/);
  assert.deepEqual(validateRestartPolicy({ Name: 'on-failure', MaximumRetryCount: 3 }, false), { Name: 'on-failure', MaximumRetryCount: 3 });
  assert.throws(() => validateRestartPolicy({ Name: 'always', MaximumRetryCount: 3 }, false), /only be used with 'on-failure'/);
  assert.throws(() => validateRestartPolicy({ Name: 'always' }, true), /AutoRemove/);
  const e = dockerRuntimeError(new Error('OCI runtime create failed: executable file `foo` not found in $PATH: No such file or directory'));
  assert.match(e.message, /exec: "foo": executable file not found in \$PATH/);
  assert.equal(statusOf(e), 400);
});

test('hosts and resolv.conf as docker writes them', () => {
  assert.match(hostsFile(['db:10.0.0.2']), /^127\.0\.0\.1\tlocalhost\n[\s\S]*10\.0\.0\.2\tdb\n$/);
  const rc = resolvConf('nameserver 127.0.0.53\nnameserver 10.1.1.1\nsearch example.com\noptions ndots:2\n', { dns: [], search: [], options: [] });
  assert.equal(rc, 'search example.com\nnameserver 10.1.1.1\noptions ndots:2\n');
  assert.equal(resolvConf('nameserver 127.0.0.1\n', { dns: [], search: [], options: [] }), 'nameserver 8.8.8.8\nnameserver 8.8.4.4\n');
  assert.equal(resolvConf('', { dns: ['1.1.1.1'], search: ['a.b'], options: [] }), 'search a.b\nnameserver 1.1.1.1\n');
});

test('users are looked up in the image, and its symlinks cannot reach host files', (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-ctr-units-'));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  fs.mkdirSync(path.join(root, 'etc'));
  fs.writeFileSync(path.join(root, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n');
  fs.writeFileSync(path.join(root, 'etc/group'), 'root:x:0:\napp:x:1000:\nextra:x:2000:app\n');
  assert.deepEqual(resolveUser(root, ''), { uid: 0, gid: 0, additionalGids: [], home: '/root' });
  assert.deepEqual(resolveUser(root, 'app'), { uid: 1000, gid: 1000, additionalGids: [2000], home: '/home/app' });
  assert.deepEqual(resolveUser(root, 'app:extra'), { uid: 1000, gid: 2000, additionalGids: [], home: '/home/app' });
  assert.deepEqual(resolveUser(root, '4242'), { uid: 4242, gid: 0, additionalGids: [], home: '/' });
  assert.throws(() => resolveUser(root, 'ghost'), /unable to find user ghost: no matching entries in passwd file/);
  assert.throws(() => resolveUser(root, 'app:ghosts'), /unable to find group ghosts/);
  // An absolute symlink resolves inside the root, never to the host's /etc/shadow.
  fs.symlinkSync('/etc/shadow', path.join(root, 'etc/link'));
  fs.symlinkSync('../../../../../etc/hostname', path.join(root, 'etc/rel'));
  assert.equal(resolveInRoot(root, '/etc/link'), path.join(root, 'etc/shadow'));
  assert.equal(resolveInRoot(root, '/etc/rel'), path.join(root, 'etc/hostname'));
});
