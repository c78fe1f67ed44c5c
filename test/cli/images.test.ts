// berth's system and image commands end to end against a real berthd, with the real docker CLI
// on the same daemon as the reference for layouts and messages.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { berth, destroyDaemon, docker, startDaemon, type TestDaemon } from '../helpers/daemon';
import { busyboxEntries, packEntries, SEED_MTIME, aptMirror, seedCacheDir } from '../../src/cli/commands/seed';
import { readAll } from '../../src/cli/client';

let d: TestDaemon;
before(async () => { d = await startDaemon({ name: 'cli-images' }); });
after(async () => { await destroyDaemon(d); });

async function ok(args: string[], input?: Buffer | string): Promise<string> {
  const r = await berth(d, args, { input });
  assert.equal(r.code, 0, `berth ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

const after1 = (text: string, marker: string): string => text.slice(text.indexOf(marker));

test('version and info: the server sections are what docker prints', async () => {
  const bv = await ok(['version']);
  const dv = await docker(d, ['version']);
  assert.equal(dv.code, 0, dv.stderr);
  assert.match(bv, /^Client:\n Version: +\d/);
  assert.equal(after1(bv, '\nServer:'), after1(dv.stdout, '\nServer:'));
  const bi = await ok(['info']);
  const di = await docker(d, ['info']);
  assert.equal(di.code, 0, di.stderr);
  // NFd and SystemTime change between calls; the layout has neither unless debug is on. The
  // docker CLI lists runtimes in Go's random map order: compare that line's names as a set.
  const sortRuntimes = (text: string): string => text.replace(/^( Runtimes:)(.*)$/m, (_m, k: string, v: string) => `${k} ${v.trim().split(/\s+/).sort().join(' ')}`);
  assert.equal(sortRuntimes(after1(bi, '\nServer:')), sortRuntimes(after1(di.stdout, '\nServer:')));
  assert.equal((await ok(['info', '--format', '{{.DockerRootDir}} {{.Driver}} {{.ClientInfo.Context}}'])).trim(), `${d.dataRoot} overlay2 default`);
  assert.equal((await ok(['version', '--format', '{{.Server.APIVersion}}'])).trim(), '1.50');
  const json = JSON.parse(await ok(['info', '--format', 'json'])) as { OSType: string };
  assert.equal(json.OSType, 'linux');
});

test('the busybox seed tar is deterministic and laid out as the official image', async () => {
  const entries = busyboxEntries('/bin/busybox');
  const a = createHash('sha256').update(await readAll(packEntries(entries))).digest('hex');
  const b = createHash('sha256').update(await readAll(packEntries(busyboxEntries('/bin/busybox')))).digest('hex');
  assert.equal(a, b);
  const byName = new Map(entries.map((e) => [e.header.name, e.header]));
  assert.equal(byName.get('tmp/')?.mode, 0o1777);
  assert.equal(byName.get('root/')?.mode, 0o700);
  assert.equal(byName.get('bin/sh')?.type, 'link');
  assert.equal(byName.get('bin/sh')?.linkname, 'bin/busybox');
  assert.equal(byName.get('bin/busybox')?.type, 'file');
  assert.ok(byName.has('bin/ls') && byName.has('bin/wget') && byName.has('etc/passwd') && byName.has('etc/group'));
  assert.ok(!byName.has('etc/hostname'), 'the daemon provides /etc/hostname');
  assert.ok(entries.every((e) => e.header.mtime?.getTime() === SEED_MTIME.getTime() && e.header.uid === 0));
  // The mirror comes from this machine's apt sources.
  assert.match(aptMirror(), /^https?:\/\//);
  assert.equal(seedCacheDir({ XDG_CACHE_HOME: '/x' }), '/x/berth/seed');
});

test('image seed busybox, then images / inspect / history as docker shows them', async () => {
  const out = await ok(['image', 'seed', 'busybox']);
  assert.match(out, /sha256:[0-9a-f]{64}\nTagged busybox:latest\n$/);
  const id = /sha256:[0-9a-f]{64}/.exec(out)![0];
  const images = await ok(['images']);
  assert.match(images, new RegExp(`^REPOSITORY   TAG       IMAGE ID       CREATED +SIZE\\nbusybox      latest    ${id.slice(7, 19)}   .* ago +\\d+(\\.\\d+)?MB\\n$`));
  assert.equal(await ok(['images', '-q']), (await docker(d, ['images', '-q'])).stdout);
  assert.equal(await ok(['images', '--no-trunc', '--format', '{{.ID}} {{.Repository}}:{{.Tag}} {{.Size}} {{.Digest}}']), `${id} busybox:latest ${/(\S+MB)\n$/.exec(images)![1]} <none>\n`);
  const norm = (t: string): string => t.replace(/"CreatedSince":"[^"]*"/g, '"CreatedSince":""');
  assert.equal(norm(await ok(['images', '--format', 'json'])), norm((await docker(d, ['images', '--format', '{{json .}}'])).stdout));
  // inspect: byte-for-byte what docker prints, for the image and through the generic inspect.
  const dInspect = await docker(d, ['image', 'inspect', 'busybox']);
  assert.equal(await ok(['image', 'inspect', 'busybox']), dInspect.stdout);
  assert.equal(await ok(['inspect', 'busybox']), dInspect.stdout);
  assert.equal(await ok(['inspect', '--format', '{{json .Config.Cmd}} {{.Os}}/{{.Architecture}}', 'busybox']), '["sh"] linux/amd64\n'.replace('amd64', process.arch === 'x64' ? 'amd64' : process.arch));
  const hist = '--format={{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}';
  assert.equal(await ok(['history', hist, 'busybox']), (await docker(d, ['history', hist, 'busybox'])).stdout);
  assert.equal(await ok(['history', '-q', '--no-trunc', 'busybox']), `${id}\n`);
  assert.match(await ok(['history', 'busybox']), /^IMAGE {10}CREATED +CREATED BY +SIZE +COMMENT\n[0-9a-f]{12} {3}.* ago +\S+MB +berth image seed busybox\n$/);

  // Seeding again gives the same layer.
  const layers = await ok(['inspect', '-f', '{{json .RootFS.Layers}}', 'busybox']);
  await ok(['image', 'seed', 'busybox']);
  assert.equal(await ok(['inspect', '-f', '{{json .RootFS.Layers}}', 'busybox']), layers);
});

test('tag, rmi, and daemon errors', async () => {
  await ok(['tag', 'busybox', 'localhost:5000/team/box:v1']);
  assert.match(await ok(['images', 'localhost:5000/team/box']), /\nlocalhost:5000\/team\/box {3}v1 /);
  assert.equal(await ok(['rmi', 'localhost:5000/team/box:v1']), 'Untagged: localhost:5000/team/box:v1\n');
  const bad = await berth(d, ['tag', 'busybox', 'UPPER:case']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /invalid reference format/);
  for (const args of [['rmi', 'nosuchimage'], ['history', 'nosuchimage'], ['image', 'inspect', 'nosuchimage'], ['tag', 'nosuchimage', 'x:y']]) {
    const b = await berth(d, args);
    const dk = await docker(d, args);
    assert.equal(b.code, dk.code, `exit code of ${args.join(' ')}`);
    assert.equal(b.stderr, dk.stderr, `stderr of ${args.join(' ')}`);
    assert.equal(b.stdout, dk.stdout, `stdout of ${args.join(' ')}`);
  }
  const obj = await berth(d, ['inspect', 'nosuchthing']);
  assert.equal(obj.code, 1);
  assert.equal(obj.stdout, '[]\n');
  assert.equal(obj.stderr, 'Error: No such object: nosuchthing\n');
});

test('save / load round trip, to a file and through stdout/stdin', async () => {
  const id = (await ok(['inspect', '-f', '{{.Id}}', 'busybox'])).trim();
  const file = path.join(d.dir, 'busybox.tar');
  await ok(['save', '-o', file, 'busybox']);
  assert.ok(fs.statSync(file).size > 1_000_000);
  assert.deepEqual(fs.readdirSync(d.dir).filter((f) => f.includes('berth-tmp')), []);
  const viaStdout = await berth(d, ['save', 'busybox']);
  assert.equal(viaStdout.code, 0, viaStdout.stderr);
  assert.equal(viaStdout.stdoutBuf.subarray(257, 262).toString(), 'ustar');
  await ok(['rmi', '-f', 'busybox']);
  assert.equal(await ok(['images', '-q', 'busybox']), '');
  assert.match(await ok(['load', '-i', file]), /Loaded image: busybox:latest\n/);
  assert.equal((await ok(['inspect', '-f', '{{.Id}}', 'busybox'])).trim(), id);
  await ok(['rmi', 'busybox']);
  assert.match(await ok(['load'], viaStdout.stdoutBuf), /Loaded image: busybox:latest\n/);
  assert.equal(await ok(['load', '-q', '-i', file]), 'Loaded image: busybox:latest\n');
  const missing = await berth(d, ['load', '-i', path.join(d.dir, 'nope.tar')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no such file or directory/);
});

test('import from a file and from stdin, with --change and --message', async () => {
  const file = path.join(d.dir, 'rootfs.tar');
  fs.writeFileSync(file, await readAll(packEntries(busyboxEntries('/bin/busybox').slice(0, 3))));
  const out = await ok(['import', '-c', 'CMD ["/bin/busybox", "true"]', '-c', 'ENV A=1', '-m', 'hello import', file, 'imported:v1']);
  assert.match(out, /^sha256:[0-9a-f]{64}\n$/);
  assert.equal(await ok(['inspect', '-f', '{{json .Config.Cmd}}|{{join .Config.Env ","}}|{{.Comment}}', 'imported:v1']), '["/bin/busybox","true"]|A=1|hello import\n');
  const viaStdin = await ok(['import', '-', 'imported:stdin'], fs.readFileSync(file));
  assert.match(viaStdin, /^sha256:[0-9a-f]{64}\n$/);
  assert.match(await ok(['images', '--format', '{{.Repository}}:{{.Tag}}', 'imported']), /imported:stdin\nimported:v1\n|imported:v1\nimported:stdin\n/);
});

test('image prune and system df', async () => {
  // Untag an import so that it dangles, then prune it.
  const id = (await ok(['inspect', '-f', '{{.Id}}', 'imported:stdin'])).trim();
  await ok(['tag', 'imported:stdin', 'keep:me']);
  await ok(['rmi', 'imported:stdin']);
  await ok(['rmi', 'keep:me']);
  const prune = await ok(['image', 'prune', '-f']);
  assert.match(prune, /Total reclaimed space: /);
  const declined = await berth(d, ['image', 'prune'], { input: 'n\n' });
  assert.equal(declined.code, 0);
  assert.equal(declined.stdout, 'WARNING! This will remove all dangling images.\nAre you sure you want to continue? [y/N] ');
  assert.ok(!(await ok(['images', '-a', '-q', '--no-trunc'])).includes(id));
  const bdf = await ok(['system', 'df']);
  const ddf = await docker(d, ['system', 'df']);
  assert.equal(bdf, ddf.stdout);
  const verbose = await ok(['system', 'df', '-v']);
  assert.match(verbose, /^Images space usage:\n\nREPOSITORY +TAG +IMAGE ID +CREATED +SIZE +SHARED SIZE +UNIQUE SIZE +CONTAINERS\n/);
});
