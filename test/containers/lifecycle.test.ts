// The container lifecycle through the real docker CLI against a real berthd, with real crun,
// conmon and overlayfs: run, exit codes, detached containers, ps, logs, exec, stop/start/restart,
// kill, wait, pause, rename, rm, and the errors docker gives for conflicts and illegal moves.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { api } from '../helpers/daemon';
import { mountsUnder, setupDaemon, tarNames, inspectContainer, until, type CtrEnv, type ContainerJSON } from './fixtures';

let e: CtrEnv;
before(async () => {
  e = await setupDaemon('life');
});
after(async () => {
  await e?.cleanup();
});

const ok = (args: string[], input?: string): Promise<string> => e.ok(args, input);

const inspect = (ref: string): Promise<ContainerJSON> => inspectContainer(e, ref);


test('docker run --rm prints the output, and leaves nothing behind', async () => {
  assert.equal(await ok(['run', '--rm', 'busybox', 'echo', 'hi']), 'hi\n');
  await until('auto-removal', async () => (await ok(['ps', '-aq'])).trim() === '');
  assert.deepEqual(mountsUnder(e.d.dir).filter((l) => l.includes(' overlay ')), []);
});

test('exit codes come back; stderr is separate', async () => {
  const r = await e.docker(['run', '--rm', 'busybox', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
  assert.equal(r.code, 3);
  assert.equal(r.stdout, 'out\n');
  assert.equal(r.stderr, 'err\n');
  const missing = await e.docker(['run', '--rm', 'busybox', 'no-such-binary']);
  assert.equal(missing.code, 127, missing.stderr);
});

test('run -i with stdin piped', async () => {
  assert.equal(await ok(['run', '--rm', '-i', 'busybox', 'cat'], 'hi\nthere\n'), 'hi\nthere\n');
});

test('user, workdir, env, hostname and the files docker writes', async () => {
  const out = await ok(['run', '--rm', '-u', 'nobody', '-w', '/tmp', '-e', 'FOO=bar', '--hostname', 'box1', 'busybox', 'sh', '-c',
    'id -u; id -g; id -G; pwd; echo $FOO; hostname; cat /etc/hostname; grep -c localhost /etc/hosts; grep -c nameserver /etc/resolv.conf']);
  assert.deepEqual(out.trim().split('\n'), ['65534', '65534', '65534 50', '/tmp', 'bar', 'box1', 'box1', '2', out.trim().split('\n')[8]]);
  assert.ok(Number(out.trim().split('\n')[8]) >= 1);
  assert.match(await ok(['run', '--rm', '-u', '1234:50', 'busybox', 'id']), /^uid=1234 gid=50\(staff\)/);
  const bad = await e.docker(['run', '--rm', '-u', 'nosuchuser', 'busybox', 'true']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /unable to find user nosuchuser: no matching entries in passwd file/);
});

test('--init runs the command under catatonit as pid 1', async () => {
  const out = await ok(['run', '--rm', '--init', 'busybox', 'sh', '-c', 'cat /proc/1/cmdline | tr "\\0" " "; echo; echo $$']);
  const [cmdline, pid] = out.trim().split('\n');
  assert.match(cmdline, /^\/sbin\/docker-init -- sh -c/);
  assert.notEqual(pid, '1');
});

test('run -d, ps with filters and --format, inspect', async () => {
  const id = (await ok(['run', '-d', '--name', 'web', '--label', 'tier=front', 'busybox', 'sleep', '300'])).trim();
  assert.match(id, /^[0-9a-f]{64}$/);
  assert.equal((await e.docker(['run', '--name', 'done3', 'busybox', 'sh', '-c', 'exit 3'])).code, 3);
  const ps = await ok(['ps', '--format', '{{.Names}}|{{.Image}}|{{.Command}}|{{.Status}}']);
  assert.match(ps, /^web\|busybox\|"sleep 300"\|Up (Less than a second|\d+ seconds?)\n$/);
  const all = await ok(['ps', '-a', '--format', '{{.Names}} {{.Status}}']);
  assert.match(all, /done3 Exited \(3\) (Less than a second|\d+ seconds?) ago/);
  assert.equal((await ok(['ps', '-q', '--filter', 'label=tier=front'])).trim(), id.slice(0, 12));
  assert.equal((await ok(['ps', '-aq', '--filter', 'status=exited', '--filter', 'name=done'])).trim().split('\n').length, 1);
  assert.equal((await ok(['ps', '-a', '--filter', 'exited=3', '--format', '{{.Names}}'])).trim(), 'done3');
  assert.equal((await ok(['ps', '-a', '--filter', 'ancestor=busybox', '--format', '{{.Names}}'])).trim().split('\n').sort().join(','), 'done3,web');
  assert.equal((await ok(['ps', '-q', '--filter', `id=${id.slice(0, 5)}`])).trim(), id.slice(0, 12));
  assert.equal((await ok(['ps', '-a', '--filter', 'before=done3', '--format', '{{.Names}}'])).trim(), 'web');
  assert.equal((await ok(['ps', '-a', '--filter', 'since=web', '--format', '{{.Names}}'])).trim(), 'done3');
  const bad = await e.docker(['ps', '--filter', 'status=sleeping']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /invalid filter 'status=sleeping'/);

  const j = await inspect('web');
  assert.equal(j.Name, '/web');
  assert.equal(j.State.Status, 'running');
  assert.equal(j.State.Running, true);
  assert.ok(j.State.Pid > 0);
  assert.equal(j.Driver, 'overlay2');
  assert.equal(j.Platform, 'linux');
  assert.equal(j.Config.Labels.tier, 'front');
  assert.deepEqual(j.Config.Cmd, ['sleep', '300']);
  assert.equal(j.HostConfig.RestartPolicy.Name, 'no');
  assert.match(j.GraphDriver.Data.UpperDir, /\/fs$/);
  const d3 = await inspect('done3');
  assert.equal(d3.State.ExitCode, 3);
  assert.equal(d3.State.Status, 'exited');
  assert.notEqual(d3.State.FinishedAt, '0001-01-01T00:00:00Z');
  assert.equal((await api(e.d.socket, 'GET', '/containers/nope/json')).json<{ message: string }>().message, 'No such container: nope');
  await ok(['rm', '-f', 'web', 'done3']);
});

test('the init layer (empty mount points) is one per image, shared by its containers, not in diff, and removed with the image', async () => {
  const lowerOf = async (ref: string): Promise<string> => {
    const j = await api(e.d.socket, 'GET', `/containers/${ref}/json`);
    return j.json<{ GraphDriver: { Data: { LowerDir: string } } }>().GraphDriver.Data.LowerDir.split(':')[0];
  };
  await ok(['run', '--name', 'init1', 'busybox', 'sh', '-c', 'echo x > /f']);
  await ok(['create', '--name', 'init2', 'busybox']);
  const init = await lowerOf('init1');
  assert.equal(await lowerOf('init2'), init);
  assert.equal(fs.statSync(`${init}/etc/hosts`).size, 0);
  assert.ok(fs.statSync(`${init}/proc`).isDirectory());
  assert.deepEqual((await ok(['diff', 'init1'])).trim().split('\n'), ['A /f']);
  await ok(['commit', 'init1', 'initimg']);
  await ok(['create', '--name', 'init3', 'initimg']);
  const imgInit = await lowerOf('init3');
  assert.notEqual(imgInit, init);
  assert.equal((await ok(['run', '--rm', 'initimg', 'cat', '/f'])).trim(), 'x');
  // In use by init3: the image goes, its layers stay (as before).
  await ok(['rm', 'init3']);
  await ok(['rmi', 'initimg']);
  assert.equal(fs.existsSync(imgInit), false, 'the image\'s init layer went with it');
  assert.ok(fs.existsSync(init), 'busybox\'s stays');
  await ok(['rm', 'init1', 'init2']);
});

test('name conflicts (409), invalid names, missing images (404)', async () => {
  const id = (await ok(['create', '--name', 'taken', 'busybox'])).trim();
  const r = await e.docker(['create', '--name', 'taken', 'busybox']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, new RegExp(`Conflict. The container name "/taken" is already in use by container "${id}". You have to remove \\(or rename\\) that container to be able to reuse that name.`));
  const raw = await api(e.d.socket, 'POST', '/containers/create?name=taken', { Image: 'busybox' });
  assert.equal(raw.status, 409);
  const inv = await api(e.d.socket, 'POST', '/containers/create?name=-bad', { Image: 'busybox' });
  assert.equal(inv.status, 400);
  const noimg = await api(e.d.socket, 'POST', '/containers/create', { Image: 'nosuchimage' });
  assert.equal(noimg.status, 404);
  assert.equal(noimg.json<{ message: string }>().message, 'No such image: nosuchimage:latest');
  // Generated names are docker-like.
  const gen = (await ok(['create', 'busybox'])).trim();
  assert.match((await inspect(gen)).Name, /^\/[a-z]+_[a-z]+\d?$/);
  await ok(['rm', 'taken', gen]);
});

test('illegal state moves are 409 with docker wording', async () => {
  const id = (await ok(['run', '-d', '--name', 'mover', 'busybox', 'sleep', '300'])).trim();
  const rm = await api(e.d.socket, 'DELETE', '/containers/mover');
  assert.equal(rm.status, 409);
  assert.equal(rm.json<{ message: string }>().message, 'cannot remove container "/mover": container is running: stop the container before removing or force remove');
  assert.equal((await api(e.d.socket, 'POST', '/containers/mover/start')).status, 304);
  assert.equal((await api(e.d.socket, 'POST', '/containers/mover/unpause')).json<{ message: string }>().message, `Container ${id} is not paused`);
  await ok(['pause', 'mover']);
  assert.equal((await inspect('mover')).State.Status, 'paused');
  assert.match(await ok(['ps', '--format', '{{.Status}}', '-f', 'name=mover']), /\(Paused\)/);
  const p2 = await api(e.d.socket, 'POST', '/containers/mover/pause');
  assert.equal(p2.status, 409);
  assert.equal(p2.json<{ message: string }>().message, `Container ${id} is already paused`);
  const st = await api(e.d.socket, 'POST', '/containers/mover/start');
  assert.equal(st.status, 409);
  assert.equal(st.json<{ message: string }>().message, 'cannot start a paused container, try unpause instead');
  await ok(['unpause', 'mover']);
  assert.equal((await inspect('mover')).State.Status, 'running');
  await ok(['stop', '-t', '1', 'mover']);
  const k = await api(e.d.socket, 'POST', '/containers/mover/kill');
  assert.equal(k.status, 409);
  assert.equal(k.json<{ message: string }>().message, `Container ${id} is not running`);
  const ex = await api(e.d.socket, 'POST', '/containers/mover/exec', { Cmd: ['true'] });
  assert.equal(ex.status, 409);
  assert.equal((await api(e.d.socket, 'POST', '/containers/mover/stop')).status, 304);
  await ok(['rm', 'mover']);
});

test('logs: all, --tail, -t, -f until exit; stdout and stderr', async () => {
  await ok(['run', '--name', 'talker', 'busybox', 'sh', '-c', 'for i in 1 2 3 4 5; do echo line$i; done; echo oops >&2']);
  const all = await e.docker(['logs', 'talker']);
  assert.equal(all.stdout, 'line1\nline2\nline3\nline4\nline5\n');
  assert.equal(all.stderr, 'oops\n');
  assert.equal((await e.docker(['logs', '--tail', '2', 'talker'])).stdout, 'line5\n');
  assert.equal((await e.docker(['logs', '--tail', '3', 'talker'])).stdout, 'line4\nline5\n');
  const ts = (await ok(['logs', '-t', 'talker'])).trim().split('\n');
  assert.match(ts[0], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z line1$/);
  assert.equal((await e.docker(['logs', '--until', '2000-01-01T00:00:00Z', 'talker'])).stdout, '');

  await ok(['run', '-d', '--name', 'ticker', 'busybox', 'sh', '-c', 'for i in 1 2 3; do echo tick$i; sleep 0.3; done']);
  const f = await ok(['logs', '-f', 'ticker']);
  assert.equal(f, 'tick1\ntick2\ntick3\n');
  assert.equal(await ok(['wait', 'ticker']), '0\n');
  await ok(['rm', 'talker', 'ticker']);
});

test('exec: output, exit codes, env, detached, inspect', async () => {
  await ok(['run', '-d', '--name', 'exec1', '-e', 'A=1', 'busybox', 'sleep', '300']);
  assert.equal(await ok(['exec', 'exec1', 'sh', '-c', 'echo $A $B', ]), '1\n');
  assert.equal(await ok(['exec', '-e', 'B=2', '-w', '/tmp', 'exec1', 'sh', '-c', 'echo $A $B; pwd']), '1 2\n/tmp\n');
  const r = await e.docker(['exec', 'exec1', 'sh', '-c', 'echo to-err >&2; exit 7']);
  assert.equal(r.code, 7);
  assert.equal(r.stderr, 'to-err\n');
  assert.equal(await ok(['exec', '-i', 'exec1', 'cat'], 'piped\n'), 'piped\n');
  assert.equal(await ok(['exec', '-u', 'nobody', 'exec1', 'id', '-u']), '65534\n');
  await ok(['exec', '-d', 'exec1', 'sh', '-c', 'echo detached > /tmp/marker']);
  await until('detached exec', async () => (await e.docker(['exec', 'exec1', 'cat', '/tmp/marker'])).stdout === 'detached\n');
  const created = await api(e.d.socket, 'POST', '/containers/exec1/exec', { Cmd: ['sh', '-c', 'exit 4'], AttachStdout: true });
  const execId = created.json<{ Id: string }>().Id;
  const started = await api(e.d.socket, 'POST', `/exec/${execId}/start`, { Detach: true });
  assert.equal(started.status, 200);
  await until('exec exit', async () => (await api(e.d.socket, 'GET', `/exec/${execId}/json`)).json<{ Running: boolean }>().Running === false);
  const ij = (await api(e.d.socket, 'GET', `/exec/${execId}/json`)).json<{ ExitCode: number; ProcessConfig: { entrypoint: string } }>();
  assert.equal(ij.ExitCode, 4);
  assert.equal(ij.ProcessConfig.entrypoint, 'sh');
  assert.equal((await api(e.d.socket, 'GET', '/exec/nope/json')).status, 404);
  const missing = await e.docker(['exec', 'exec1', 'no-such-cmd']);
  assert.equal(missing.code, 127, missing.stderr + missing.stdout);
  await ok(['rm', '-f', 'exec1']);
});

test('stop (StopSignal, then SIGKILL), start, restart, kill -s, wait', async () => {
  // A shell ignoring TERM: stop must fall back to SIGKILL after -t.
  await ok(['run', '-d', '--name', 'stubborn', 'busybox', 'sh', '-c', 'trap "" TERM; while true; do sleep 0.1; done']);
  const t0 = Date.now();
  await ok(['stop', '-t', '1', 'stubborn']);
  assert.ok(Date.now() - t0 >= 900, 'waited for the timeout');
  assert.equal((await inspect('stubborn')).State.ExitCode, 137);

  // A shell that exits on TERM with its own code.
  // Signals reach the shell only once its trap is set (as PID 1 it ignores TERM until then).
  const trapped = (name: string): Promise<unknown> => until(`${name}'s trap`, async () => (await ok(['logs', name])).includes('ready'));
  await ok(['run', '-d', '--name', 'polite', 'busybox', 'sh', '-c', 'trap "exit 42" TERM; echo ready; while true; do sleep 0.1; done']);
  await trapped('polite');
  await ok(['stop', 'polite']);
  assert.equal((await inspect('polite')).State.ExitCode, 42);
  const startedBefore = (await inspect('polite')).State.StartedAt;
  await ok(['start', 'polite']);
  const j = await inspect('polite');
  assert.equal(j.State.Status, 'running');
  assert.notEqual(j.State.StartedAt, startedBefore);
  await ok(['restart', '-t', '5', 'polite']);
  assert.equal((await inspect('polite')).State.Status, 'running');

  await ok(['kill', '-s', 'USR1', 'polite']);
  await ok(['run', '-d', '--name', 'usr', 'busybox', 'sh', '-c', 'trap "exit 10" USR1; echo ready; while true; do sleep 0.1; done']);
  await trapped('usr');
  await ok(['kill', '-s', 'SIGUSR1', 'usr']);
  assert.equal(await ok(['wait', 'usr']), '10\n');
  await ok(['run', '-d', '--name', 'usr2', 'busybox', 'sleep', '300']);
  await ok(['kill', '-s', '9', 'usr2']);
  assert.equal(await ok(['wait', 'usr2']), '137\n');
  const badsig = await api(e.d.socket, 'POST', '/containers/polite/kill?signal=NOPE');
  assert.equal(badsig.status, 400);

  // wait with next-exit on a running container; removed on an auto-removed one.
  const waited = api(e.d.socket, 'POST', '/containers/polite/wait?condition=next-exit');
  await new Promise((r) => setTimeout(r, 100));
  await ok(['kill', 'polite']);
  const w = await waited;
  assert.deepEqual(w.json(), { StatusCode: 137, Error: null });
  await ok(['rm', '-f', 'stubborn', 'polite', 'usr', 'usr2']);
});

test('rm -f kills a running container at once; rename', async () => {
  await ok(['run', '-d', '--name', 'old', 'busybox', 'sh', '-c', 'trap "" TERM; sleep 300']);
  await ok(['rename', 'old', 'new']);
  assert.equal((await inspect('new')).Name, '/new');
  assert.equal((await api(e.d.socket, 'GET', '/containers/old/json')).status, 404);
  await ok(['run', '-d', '--name', 'other', 'busybox', 'sleep', '300']);
  const clash = await api(e.d.socket, 'POST', '/containers/new/rename?name=other');
  assert.equal(clash.status, 409);
  const t0 = Date.now();
  await ok(['rm', '-f', 'new', 'other']);
  assert.ok(Date.now() - t0 < 5000);
  assert.equal((await ok(['ps', '-aq', '--filter', 'name=new', '--filter', 'name=other'])).trim(), '');
  assert.deepEqual(mountsUnder(e.d.dir).filter((l) => l.includes(' overlay ')), []);
  const left = new Set(fs.readdirSync(`${e.d.dataRoot}/containers`));
  assert.deepEqual((await ok(['ps', '-aq', '--no-trunc'])).trim().split('\n').filter(Boolean).filter((id) => !left.has(id)), []);
  assert.equal(left.size, (await ok(['ps', '-aq'])).trim().split('\n').filter(Boolean).length);
});

test('top lists the container processes with ps -ef columns', async () => {
  await ok(['run', '-d', '--name', 'topper', 'busybox', 'sh', '-c', 'sleep 300 & sleep 301; true']);
  await new Promise((r) => setTimeout(r, 300));
  const top = (await api(e.d.socket, 'GET', '/containers/topper/top')).json<{ Titles: string[]; Processes: string[][] }>();
  assert.deepEqual(top.Titles, ['UID', 'PID', 'PPID', 'C', 'STIME', 'TTY', 'TIME', 'CMD']);
  const cmds = top.Processes.map((p) => p[7]).sort();
  assert.deepEqual(cmds, ['sh -c sleep 300 & sleep 301; true', 'sleep 300', 'sleep 301']);
  assert.equal(top.Processes[0][0], 'root');
  assert.match(top.Processes[0][6], /^\d\d:\d\d:\d\d$/);
  const cli = await ok(['top', 'topper']);
  assert.match(cli, /UID\s+PID\s+PPID\s+C\s+STIME\s+TTY\s+TIME\s+CMD/);
  const custom = await ok(['top', 'topper', '-o', 'pid,comm']);
  assert.match(custom, /PID\s+COMMAND/);
  assert.equal(custom.trim().split('\n').length, 4);
  await ok(['rm', '-f', 'topper']);
});

test('diff, export, commit (and the committed image runs)', async () => {
  await ok(['run', '--name', 'changer', 'busybox', 'sh', '-c', 'mkdir /data && echo v1 > /data/f && rm /etc/group && echo x >> /etc/passwd']);
  const diff = (await ok(['diff', 'changer'])).trim().split('\n').sort();
  assert.deepEqual(diff, ['A /data', 'A /data/f', 'C /etc', 'C /etc/passwd', 'D /etc/group']);
  const exp = await e.docker(['export', 'changer']);
  assert.equal(exp.code, 0);
  const names = await tarNames(exp.stdoutBuf);
  assert.ok(names.includes('data/f'));
  assert.ok(names.includes('bin/busybox'));
  assert.ok(names.includes('etc/passwd'));
  assert.ok(!names.includes('etc/group'));
  assert.deepEqual(mountsUnder(e.d.dir).filter((l) => l.includes(' overlay ')), []);

  const id = (await ok(['commit', '-a', 'me', '-m', 'added data', '-c', 'CMD ["cat", "/data/f"]', 'changer', 'committed:v1'])).trim();
  assert.match(id, /^sha256:[0-9a-f]{64}$/);
  assert.equal(await ok(['run', '--rm', 'committed:v1']), 'v1\n');
  assert.equal((await e.docker(['run', '--rm', 'committed:v1', 'ls', '/etc/group'])).code, 1);
  const img = JSON.parse(await ok(['image', 'inspect', 'committed:v1']))[0];
  assert.equal(img.Author, 'me');
  assert.equal(img.Comment, 'added data');
  assert.equal(img.RootFS.Layers.length, 2);
  // The base image is in use: removing it is refused.
  const rmi = await e.docker(['rmi', 'busybox']);
  assert.notEqual(rmi.code, 0);
  await ok(['rm', 'changer']);
  await ok(['rmi', 'committed:v1']);
});

test('commit of a running container pauses it and keeps it running', async () => {
  await ok(['run', '-d', '--name', 'live', 'busybox', 'sh', '-c', 'echo live > /live; sleep 300']);
  await new Promise((r) => setTimeout(r, 300));
  await ok(['commit', 'live', 'livecommit']);
  assert.equal((await inspect('live')).State.Status, 'running');
  assert.equal(await ok(['run', '--rm', 'livecommit', 'cat', '/live']), 'live\n');
  await ok(['rm', '-f', 'live']);
  await ok(['rmi', 'livecommit']);
});

test('container prune removes stopped containers only; info counts', async () => {
  const base = (await api(e.d.socket, 'GET', '/info')).json<Record<string, number>>();
  await ok(['run', '-d', '--name', 'keep', 'busybox', 'sleep', '300']);
  await ok(['run', '--name', 'gone1', 'busybox', 'true']);
  await ok(['create', '--name', 'gone2', 'busybox']);
  const info = (await api(e.d.socket, 'GET', '/info')).json<Record<string, number>>();
  assert.equal(info.Containers - base.Containers, 3);
  assert.equal(info.ContainersRunning - base.ContainersRunning, 1);
  assert.equal(info.ContainersStopped - base.ContainersStopped, 2);
  const pr = (await api(e.d.socket, 'POST', '/containers/prune')).json<{ ContainersDeleted: string[] }>();
  assert.ok(pr.ContainersDeleted.length >= 2);
  assert.equal((await ok(['ps', '-a', '--format', '{{.Names}}', '--filter', 'name=keep', '--filter', 'name=gone'])).trim(), 'keep');
  const df = (await api(e.d.socket, 'GET', '/system/df')).json<{ Containers: { Names: string[] }[] }>();
  assert.ok(df.Containers.some((c) => c.Names[0] === '/keep'));
  await ok(['rm', '-f', 'keep']);
});

test('runc via --runtime, --read-only, capabilities, --shm-size, --privileged, host binds', async (t) => {
  assert.equal(await ok(['run', '--rm', '--runtime', 'runc', 'busybox', 'echo', 'from-runc']), 'from-runc\n');
  const badRt = await api(e.d.socket, 'POST', '/containers/create', { Image: 'busybox', HostConfig: { Runtime: 'nope' } });
  assert.equal(badRt.status, 400);
  const ro = await e.docker(['run', '--rm', '--read-only', 'busybox', 'touch', '/x']);
  assert.notEqual(ro.code, 0);
  assert.match(ro.stderr, /Read-only file system/);
  // CapEff of pid 1: docker's default set, then none with --cap-drop ALL.
  assert.equal((await ok(['run', '--rm', 'busybox', 'sh', '-c', 'grep CapEff /proc/self/status'])).trim(), 'CapEff:\t00000000a80425fb');
  assert.equal((await ok(['run', '--rm', '--cap-drop', 'ALL', 'busybox', 'sh', '-c', 'grep CapEff /proc/self/status'])).trim(), 'CapEff:\t0000000000000000');
  assert.equal((await ok(['run', '--rm', '--cap-drop', 'ALL', '--cap-add', 'NET_ADMIN', 'busybox', 'sh', '-c', 'grep CapEff /proc/self/status'])).trim(), 'CapEff:\t0000000000001000');
  assert.match(await ok(['run', '--rm', '--shm-size', '8m', 'busybox', 'df', '-k', '/dev/shm']), /\s8192\s/);
  assert.ok(Number((await ok(['run', '--rm', '--privileged', 'busybox', 'sh', '-c', 'ls /dev | wc -l'])).trim()) > 20);
  const host = fs.mkdtempSync('/tmp/berth-ctr-bind-');
  t.after(() => fs.rmSync(host, { recursive: true, force: true }));
  fs.writeFileSync(`${host}/in`, 'from-host\n');
  assert.equal(await ok(['run', '--rm', '-v', `${host}:/mnt`, 'busybox', 'sh', '-c', 'cat /mnt/in; echo back > /mnt/out']), 'from-host\n');
  assert.equal(fs.readFileSync(`${host}/out`, 'utf8'), 'back\n');
  assert.notEqual((await e.docker(['run', '--rm', '-v', `${host}:/mnt:ro`, 'busybox', 'touch', '/mnt/x'])).code, 0);
});

test('create: wrongly typed fields are a 400 in dockerd\'s words, and nothing is created', async () => {
  const before = (await ok(['ps', '-aq'])).trim();
  for (const body of [{ Image: 5 }, { Image: 'busybox', Cmd: [1] }, { Image: 'busybox', Env: 'A=b' }, { Image: 'busybox', HostConfig: [] }]) {
    const r = await api(e.d.socket, 'POST', '/containers/create', body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.match(r.json<{ message: string }>().message, /^json: cannot unmarshal \w+ into Go struct field ContainerConfigWrapper\.\w+ of type /);
  }
  assert.equal((await ok(['ps', '-aq'])).trim(), before);
});
