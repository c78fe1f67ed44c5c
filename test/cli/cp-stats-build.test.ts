// berth cp, stats, update, build and system prune against a real berthd with real containers,
// with the docker CLI on the same daemon as the reference where the output should be identical.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tar from 'tar-stream';
import { Readable, Writable } from 'node:stream';
import { berth, destroyDaemon, docker, startDaemon, type TestDaemon } from '../helpers/daemon';
import { computeStats, updateBody } from '../../src/cli/commands/stats';
import { extractTar, packPath, rebaseName, safeTarget, splitCpArg } from '../../src/cli/commands/cp';

let d: TestDaemon;
before(async () => {
  d = await startDaemon({ name: 'cli-cpstats' });
  const seed = await berth(d, ['image', 'seed', 'busybox']);
  assert.equal(seed.code, 0, seed.stderr);
});
after(async () => {
  if (d) {
    const ids = (await berth(d, ['ps', '-aq'])).stdout.split('\n').filter(Boolean);
    if (ids.length) await berth(d, ['rm', '-f', ...ids]);
  }
  await destroyDaemon(d);
});

async function ok(args: string[], input?: string | Buffer): Promise<string> {
  const r = await berth(d, args, { input });
  assert.equal(r.code, 0, `berth ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

function tarNames(buf: Buffer): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const names: string[] = [];
    const ex = tar.extract();
    ex.on('entry', (h, s, next) => {
      names.push(h.name);
      s.resume();
      s.on('end', next);
    });
    ex.on('finish', () => resolve(names));
    ex.on('error', reject);
    ex.end(buf);
  });
}

test('cp argument parsing, entry renaming and the escape guard', () => {
  assert.deepEqual(splitCpArg('ctr:/etc'), { container: 'ctr', path: '/etc' });
  assert.deepEqual(splitCpArg('./a:b'), { path: './a:b' });
  assert.deepEqual(splitCpArg('/abs:x'), { path: '/abs:x' });
  assert.deepEqual(splitCpArg('dir/a:b'), { path: 'dir/a:b' });
  assert.equal(rebaseName('src/a/b', { kind: 'rename', to: 'dst' }), 'dst/a/b');
  assert.equal(rebaseName('src/', { kind: 'contents' }), undefined);
  assert.equal(rebaseName('src/x', { kind: 'contents' }), 'x');
  const root = fs.mkdtempSync('/tmp/berth-cli-cpguard-');
  try {
    assert.throws(() => safeTarget(root, 'a/../../etc/passwd'), /escapes/);
    fs.symlinkSync('/etc', path.join(root, 'link'));
    assert.throws(() => safeTarget(root, 'link/passwd'), /symlink/);
    assert.equal(safeTarget(root, 'x/y'), path.join(root, 'x/y'));
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test("cp's own tar both ways: names, modes, times, links; what an existing destination allows", async () => {
  const root = fs.mkdtempSync('/tmp/berth-cli-cptar-');
  try {
    const src = path.join(root, 'src');
    fs.mkdirSync(path.join(src, 'sub/deep'), { recursive: true });
    fs.writeFileSync(path.join(src, 'sub/deep/x.bin'), Buffer.alloc(3 << 20, 7)); // bigger than a 1 MiB chunk
    fs.writeFileSync(path.join(src, 'sub/ro.txt'), 'ro\n');
    fs.chmodSync(path.join(src, 'sub/ro.txt'), 0o444);
    fs.writeFileSync(path.join(src, 'exec.sh'), '#!/bin/sh\n');
    fs.chmodSync(path.join(src, 'exec.sh'), 0o4755);
    fs.linkSync(path.join(src, 'exec.sh'), path.join(src, 'hard'));
    fs.symlinkSync('sub/ro.txt', path.join(src, 'link'));
    fs.chmodSync(path.join(src, 'sub'), 0o750);
    const t = new Date('2020-02-03T04:05:06Z');
    for (const f of ['sub/deep/x.bin', 'sub/ro.txt', 'exec.sh', 'sub/deep', 'sub']) fs.utimesSync(path.join(src, f), t, t);
    fs.symlinkSync(src, path.join(root, 'srclink'));

    // The tar names its root after the destination; -L follows the root link only.
    const dst = path.join(root, 'dst');
    fs.mkdirSync(dst);
    const packed = packPath(path.join(root, 'srclink'), 'renamed', true);
    await extractTar(packed.stream, dst, { kind: 'keep' }, false);
    assert.ok(packed.size() > 3 << 20);
    // As a request body the same tar is written by writeTo (its chunks reused), counted alike.
    const viaWriter = packPath(path.join(root, 'srclink'), 'renamed', true);
    const parts: Buffer[] = [];
    await viaWriter.writeTo(new Writable({ write(c: Buffer, _e, cb) { parts.push(Buffer.from(c)); setImmediate(cb); } }));
    const viaStream: Buffer[] = [];
    for await (const c of packPath(path.join(root, 'srclink'), 'renamed', true).stream) viaStream.push(c as Buffer);
    assert.ok(Buffer.concat(parts).equals(Buffer.concat(viaStream)), 'writeTo and stream give the same tar');
    assert.equal(viaWriter.size(), packed.size());
    const out = path.join(dst, 'renamed');
    assert.deepEqual(fs.readdirSync(out).sort(), ['exec.sh', 'hard', 'link', 'sub']);
    assert.deepEqual(fs.readFileSync(path.join(out, 'sub/deep/x.bin')), Buffer.alloc(3 << 20, 7));
    assert.equal(fs.statSync(path.join(out, 'sub/ro.txt')).mode & 0o7777, 0o444);
    assert.equal(fs.statSync(path.join(out, 'exec.sh')).mode & 0o7777, 0o4755);
    assert.equal(fs.statSync(path.join(out, 'sub')).mode & 0o7777, 0o750);
    assert.equal(fs.statSync(path.join(out, 'hard')).ino, fs.statSync(path.join(out, 'exec.sh')).ino);
    assert.equal(fs.readlinkSync(path.join(out, 'link')), 'sub/ro.txt');
    for (const f of ['sub/deep/x.bin', 'sub/ro.txt', 'sub/deep', 'sub']) assert.equal(fs.statSync(path.join(out, f)).mtimeMs, t.getTime(), f);

    // Without -L a root link is sent as a link; a file root is one entry.
    const dst2 = path.join(root, 'dst2');
    fs.mkdirSync(dst2);
    await extractTar(packPath(path.join(root, 'srclink'), 'l', false).stream, dst2, { kind: 'keep' }, false);
    assert.equal(fs.readlinkSync(path.join(dst2, 'l')), src);
    await extractTar(packPath(path.join(src, 'sub/ro.txt'), 'one.txt', false).stream, dst2, { kind: 'keep' }, false);
    assert.equal(fs.readFileSync(path.join(dst2, 'one.txt'), 'utf8'), 'ro\n');
    // dir/. : the contents, renamed on the way out.
    await extractTar(packPath(src, '', false).stream, dst2, { kind: 'keep' }, false);
    assert.ok(fs.statSync(path.join(dst2, 'sub/deep/x.bin')).isFile());

    // Again over the copy: files (even read-only ones) and links are replaced, directories stay.
    fs.writeFileSync(path.join(src, 'sub/ro.txt.new'), 'new\n');
    await extractTar(packPath(src, 'renamed', false).stream, dst, { kind: 'keep' }, false);
    assert.equal(fs.readFileSync(path.join(out, 'sub/ro.txt.new'), 'utf8'), 'new\n');
    assert.equal(fs.readFileSync(path.join(out, 'sub/ro.txt'), 'utf8'), 'ro\n');
    // A directory never replaces a file, nor a file a directory (docker's cp rules).
    fs.rmSync(path.join(out, 'sub/deep'), { recursive: true });
    fs.writeFileSync(path.join(out, 'sub/deep'), 'a file\n');
    await assert.rejects(extractTar(packPath(src, 'renamed', false).stream, dst, { kind: 'keep' }, false), /cannot overwrite non-directory/);
    fs.rmSync(path.join(out, 'exec.sh'));
    fs.rmSync(path.join(out, 'hard'));
    fs.mkdirSync(path.join(out, 'exec.sh'));
    await assert.rejects(extractTar(packPath(path.join(src, 'exec.sh'), 'exec.sh', false).stream, out, { kind: 'keep' }, false), /cannot overwrite directory/);
    // A link planted in the destination is not written through.
    fs.symlinkSync('/nonexistent-dir', path.join(dst2, 'planted'));
    await assert.rejects(extractTar(packPath(src, 'planted', false).stream, dst2, { kind: 'rename', to: 'planted/x' }, false), /symlink/);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('cp out of a big tar stops at a member through a symlink, nothing written past it', async () => {
  const root = fs.mkdtempSync('/tmp/berth-cli-cpbig-');
  try {
    const outside = path.join(root, 'outside');
    fs.mkdirSync(outside);
    const dst = path.join(root, 'dst');
    fs.mkdirSync(dst);
    const big = Buffer.alloc(3 << 20, 9);
    const pack = tar.pack();
    pack.entry({ name: 'c/big', size: big.length }, big);
    pack.entry({ name: 'c/l', type: 'symlink', linkname: outside });
    pack.entry({ name: 'c/l/planted' }, 'x');
    pack.entry({ name: 'c/after' }, 'y');
    pack.finalize();
    await assert.rejects(extractTar(Readable.from(pack), dst, { kind: 'rename', to: 'copy' }, false), /passes through a symlink/);
    assert.deepEqual(fs.readFileSync(path.join(dst, 'copy/big')), big);
    assert.equal(fs.readlinkSync(path.join(dst, 'copy/l')), outside);
    assert.deepEqual(fs.readdirSync(outside), []);
    assert.equal(fs.existsSync(path.join(dst, 'copy/after')), false);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('cp both ways: files, directories, dir/. contents, tar streams, renames', async () => {
  await ok(['run', '-d', '--name', 'cpc', 'busybox', 'sh', '-c', 'mkdir -p /data/sub && echo hello > /data/sub/f.txt && ln -s sub/f.txt /data/link && sleep 300']);
  const work = fs.mkdtempSync(path.join(d.dir, 'cp-'));
  // A file into an existing local directory keeps its name; without a terminal both clients are silent.
  const cpOut = await berth(d, ['cp', 'cpc:/data/sub/f.txt', work]);
  const dockerOut = await docker(d, ['cp', 'cpc:/data/sub/f.txt', path.join(work, 'by-docker.txt')]);
  assert.deepEqual([cpOut.code, cpOut.stdout, cpOut.stderr], [dockerOut.code, dockerOut.stdout, dockerOut.stderr]);
  assert.equal(fs.readFileSync(path.join(work, 'f.txt'), 'utf8'), 'hello\n');
  // A directory to a new name; symlinks stay symlinks.
  await ok(['cp', 'cpc:/data', path.join(work, 'copy')]);
  assert.equal(fs.readFileSync(path.join(work, 'copy/sub/f.txt'), 'utf8'), 'hello\n');
  assert.equal(fs.readlinkSync(path.join(work, 'copy/link')), 'sub/f.txt');
  // -L follows the link and copies the file under the link's name.
  await ok(['cp', '-L', 'cpc:/data/link', path.join(work, 'followed')]);
  assert.equal(fs.readFileSync(path.join(work, 'followed'), 'utf8'), 'hello\n');
  assert.ok(!fs.lstatSync(path.join(work, 'followed')).isSymbolicLink());
  // dir/. copies the contents into an existing directory.
  fs.mkdirSync(path.join(work, 'contents'));
  await ok(['cp', 'cpc:/data/.', path.join(work, 'contents')]);
  assert.deepEqual(fs.readdirSync(path.join(work, 'contents')).sort(), ['link', 'sub']);
  // To stdout as a tar, as docker streams it.
  const b = await berth(d, ['cp', 'cpc:/data/sub', '-']);
  const k = await docker(d, ['cp', 'cpc:/data/sub', '-']);
  assert.equal(b.code, 0, b.stderr);
  assert.deepEqual(await tarNames(b.stdoutBuf), await tarNames(k.stdoutBuf));
  assert.deepEqual(await tarNames(b.stdoutBuf), ['sub/', 'sub/f.txt']);

  // Local to the container: a directory into an existing directory, a file to a new name.
  fs.mkdirSync(path.join(work, 'up/inner'), { recursive: true });
  fs.writeFileSync(path.join(work, 'up/inner/a.txt'), 'from host\n');
  fs.chmodSync(path.join(work, 'up/inner/a.txt'), 0o640);
  await ok(['cp', path.join(work, 'up'), 'cpc:/tmp']);
  assert.equal(await ok(['exec', 'cpc', 'cat', '/tmp/up/inner/a.txt']), 'from host\n');
  assert.equal((await ok(['exec', 'cpc', 'stat', '-c', '%a', '/tmp/up/inner/a.txt'])).trim(), '640');
  await ok(['cp', path.join(work, 'up/inner/a.txt'), 'cpc:/tmp/renamed.txt']);
  assert.equal(await ok(['exec', 'cpc', 'cat', '/tmp/renamed.txt']), 'from host\n');
  // A tar on stdin, extracted into a directory.
  await ok(['cp', '-', 'cpc:/tmp'], b.stdoutBuf);
  assert.equal(await ok(['exec', 'cpc', 'cat', '/tmp/sub/f.txt']), 'hello\n');
  // Errors as docker reports them.
  for (const args of [['cp', 'cpc:/nonexistent', work], ['cp', 'nosuchctr:/x', work]]) {
    const br = await berth(d, args);
    const dr = await docker(d, args);
    assert.equal(br.code, dr.code, args.join(' '));
    assert.equal(br.stderr, dr.stderr, args.join(' '));
  }
  const both = await berth(d, ['cp', work, path.join(work, 'x')]);
  assert.equal(both.code, 125);
  assert.match(both.stderr, /must specify at least one container source/);
  await ok(['rm', '-f', 'cpc']);
});

test('stats: docker calculations, the --no-stream table, -a and --format', async () => {
  const f = computeStats({
    cpu_stats: { cpu_usage: { total_usage: 3_000_000 }, system_cpu_usage: 20_000_000, online_cpus: 2 },
    precpu_stats: { cpu_usage: { total_usage: 1_000_000 }, system_cpu_usage: 10_000_000 },
    memory_stats: { usage: 10 * 1024 * 1024, limit: 100 * 1024 * 1024, stats: { total_inactive_file: 2 * 1024 * 1024 } },
    networks: { eth0: { rx_bytes: 1500, tx_bytes: 500 }, eth1: { rx_bytes: 500, tx_bytes: 0 } },
    blkio_stats: { io_service_bytes_recursive: [{ op: 'Read', value: 4096 }, { op: 'Write', value: 8192 }, { op: 'Total', value: 12288 }] },
    pids_stats: { current: 3 },
  });
  assert.equal(f.cpuPercent, 40);
  assert.equal(f.memory, 8 * 1024 * 1024);
  assert.equal(f.memoryPercent, 8);
  assert.deepEqual([f.netRx, f.netTx, f.blockRead, f.blockWrite, f.pids], [2000, 500, 4096, 8192, 3]);

  const id = (await ok(['run', '-d', '--name', 'st1', '-m', '64m', 'busybox', 'sleep', '300'])).trim();
  await ok(['create', '--name', 'st2', 'busybox', 'true']);
  const table = await ok(['stats', '--no-stream']);
  assert.match(table, /^CONTAINER ID +NAME +CPU % +MEM USAGE \/ LIMIT +MEM % +NET I\/O +BLOCK I\/O +PIDS\n/);
  assert.match(table, new RegExp(`\\n${id.slice(0, 12)} +st1 +\\d+\\.\\d\\d% +[\\d.]+[KMG]?i?B / 64MiB +\\d+\\.\\d\\d% +\\S+ / \\S+ +\\S+ / \\S+ +1\\n$`));
  assert.ok(!table.includes('st2'));
  const all = await ok(['stats', '--no-stream', '-a', '--format', '{{.Name}} {{.PIDs}} {{.MemPerc}}']);
  assert.match(all, /^st\d \d+ \S+%\nst\d \d+ \S+%\n$/);
  assert.ok(all.includes('st2 0 0.00%'));
  const fmt = '{{.Container}} {{.Name}} {{.PIDs}}';
  const b = await ok(['stats', '--no-stream', '--format', fmt, 'st1']);
  assert.equal(b, (await docker(d, ['stats', '--no-stream', '--format', fmt, 'st1'])).stdout);
  const missing = await berth(d, ['stats', '--no-stream', 'nosuchctr']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /No such container: nosuchctr/);
  // The live view redraws until interrupted: two refreshes then the child is stopped.
  const live = await berth(d, ['stats', '--format', '{{.Name}}', 'st1'], { timeoutMs: 2500 });
  assert.ok(live.stdout.split('\n').filter((l) => l === 'st1').length >= 2, live.stdout);
});

test('update changes limits of a running container', async () => {
  assert.deepEqual(updateBody({ memory: '128m', cpus: '0.5', 'pids-limit': '50', restart: 'on-failure:3' }, new Set(['memory', 'cpus', 'pids-limit', 'restart'])), {
    Memory: 128 * 1024 * 1024, NanoCpus: 500_000_000, PidsLimit: 50, RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 3 },
  });
  assert.equal(await ok(['update', '-m', '96m', '--memory-swap', '-1', '--cpus', '0.5', '--pids-limit', '40', 'st1']), 'st1\n');
  assert.equal((await ok(['inspect', '-f', '{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}}', 'st1'])).trim(), `${96 * 1024 * 1024} 500000000 40`);
  const none = await berth(d, ['update', 'st1']);
  assert.equal(none.code, 125);
  assert.match(none.stderr, /you must provide one or more flags when using this command/);
  const missing = await berth(d, ['update', '-m', '96m', 'nosuchctr']);
  const dk = await docker(d, ['update', '-m', '96m', 'nosuchctr']);
  assert.equal(missing.code, dk.code);
  assert.equal(missing.stderr, dk.stderr);
  await ok(['rm', '-f', 'st1', 'st2']);
});

test('build: a context with .dockerignore, tags, build args, labels, -q, -f outside, stdin', async () => {
  const ctxDir = fs.mkdtempSync(path.join(d.dir, 'build-'));
  fs.writeFileSync(path.join(ctxDir, 'Dockerfile'), 'FROM busybox\nARG GREETING=none\nCOPY . /ctx/\nRUN echo "$GREETING" > /greeting\nCMD ["cat", "/greeting"]\n');
  fs.writeFileSync(path.join(ctxDir, 'keep.txt'), 'kept\n');
  fs.writeFileSync(path.join(ctxDir, 'secret.key'), 'nope\n');
  fs.mkdirSync(path.join(ctxDir, 'logs'));
  fs.writeFileSync(path.join(ctxDir, 'logs', 'a.log'), 'x');
  fs.writeFileSync(path.join(ctxDir, '.dockerignore'), '*.key\nlogs\n');
  const r = await berth(d, ['build', '-t', 'built:one', '-t', 'built:two', '--build-arg', 'GREETING=hi', '--label', 'stage=test', ctxDir]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /^Sending build context to Docker daemon {2}\S+\r\r\nStep 1\/6 : FROM busybox\n/);
  assert.match(r.stdout, /Successfully built [0-9a-f]{12}\nSuccessfully tagged built:one\nSuccessfully tagged built:two\n$/);
  assert.match(r.stderr, /^DEPRECATED: The legacy builder is deprecated/);
  assert.equal(await ok(['run', '--rm', 'built:one']), 'hi\n');
  assert.equal(await ok(['run', '--rm', 'built:two', 'ls', '-A', '/ctx']), '.dockerignore\nDockerfile\nkeep.txt\n');
  assert.equal((await ok(['inspect', '-f', '{{.Config.Labels.stage}}', 'built:one'])).trim(), 'test');
  // -q prints only the ID; the cache makes it the same image.
  const q = await ok(['build', '-q', '--build-arg', 'GREETING=hi', '--label', 'stage=test', ctxDir]);
  assert.equal(q.trim(), (await ok(['inspect', '-f', '{{.Id}}', 'built:one'])).trim());
  // A Dockerfile outside the context, with a target stage.
  const outside = path.join(d.dir, 'Other.dockerfile');
  fs.writeFileSync(outside, 'FROM busybox AS first\nRUN echo first > /stage\nFROM busybox AS second\nRUN echo second > /stage\n');
  await ok(['build', '-f', outside, '--target', 'first', '-t', 'built:target', ctxDir]);
  assert.equal(await ok(['run', '--rm', 'built:target', 'cat', '/stage']), 'first\n');
  // A Dockerfile on stdin (no context).
  await ok(['build', '-t', 'built:stdin', '-'], 'FROM busybox\nRUN echo from-stdin > /s\n');
  assert.equal(await ok(['run', '--rm', 'built:stdin', 'cat', '/s']), 'from-stdin\n');
  // A failing step fails the command with the daemon's message.
  const bad = await berth(d, ['build', '-'], { input: 'FROM busybox\nRUN exit 7\n' });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /returned a non-zero code: 7/);
  const noDir = await berth(d, ['build', path.join(d.dir, 'nope')]);
  assert.equal(noDir.code, 1);
  assert.match(noDir.stderr, /unable to prepare context: path ".*nope" not found/);
});

test('system prune -f -a --volumes', async () => {
  await ok(['create', '--name', 'dead', 'busybox', 'true']);
  await ok(['network', 'create', 'spare']);
  const out = await ok(['system', 'prune', '-f', '-a', '--volumes']);
  assert.match(out, /^Deleted Containers:\n(?:[0-9a-f]{64}\n)+\nDeleted Networks:\nspare\n\n/);
  assert.match(out, /Total reclaimed space: \S+\n$/);
  assert.equal(await ok(['ps', '-aq']), '');
  const declined = await ok(['system', 'prune'], 'n\n');
  assert.match(declined, /^WARNING! This will remove:\n {2}- all stopped containers\n/);
});
