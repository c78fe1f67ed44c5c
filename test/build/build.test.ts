// End-to-end classic builds without RUN, on a real image service over a temp data root: FROM
// scratch + COPY/ENV/WORKDIR/CMD, multi-stage COPY --from, the JSON stream, the cache (hits on a
// rebuild, invalidation of only the steps copying a changed file, survival across restarts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { makeTar } from '../archive/fixtures';
import { MetadataDB } from '../../src/metadata/db';
import { ContentStore } from '../../src/content/store';
import { OverlaySnapshotter } from '../../src/snapshots/overlay';
import { ImageStore } from '../../src/images/store';
import { ImageService } from '../../src/images/service';
import { mountAll, unmountAll } from '../../src/snapshots/mount';
import { silentLogger } from '../../src/common/logger';
import { BuildCache } from '../../src/build/cache';
import { Builder, noRunExecutor, parseBuildParams, type BuildParams } from '../../src/build/builder';

interface Env { images: ImageService; builder: Builder; close(): void; base: string }

function open(base: string): Env {
  const meta = new MetadataDB(path.join(base, 'metadata.db'));
  const sn = new OverlaySnapshotter(path.join(base, 'overlay2'));
  const images = new ImageService(new ImageStore(meta), new ContentStore(path.join(base, 'content')), sn, silentLogger);
  const builder = new Builder({ images, cache: new BuildCache(meta), executor: noRunExecutor, tmpRoot: path.join(base, 'tmp'), log: silentLogger });
  return { images, builder, base, close: () => { sn.close(); meta.close(); } };
}

function params(query: string): BuildParams {
  return parseBuildParams(new URLSearchParams(query));
}

async function build(env: Env, files: Record<string, string>, query = ''): Promise<{ id?: string; msgs: Record<string, unknown>[]; stream: string }> {
  const entries = Object.entries(files).map(([name, body]) => ({ name, body, mode: 0o644 }));
  const msgs: Record<string, unknown>[] = [];
  const id = await env.builder.build(params(query), Readable.from([await makeTar(entries)]), (m) => msgs.push(m as Record<string, unknown>));
  return { id, msgs, stream: msgs.map((m) => (m.stream as string | undefined) ?? '').join('') };
}

/** Reads files from an image's root filesystem through a real read-only overlay mount. */
async function readRootfs(env: Env, id: string, files: string[]): Promise<Record<string, string | null>> {
  const { record } = await env.images.resolve(id);
  const key = `test-view-${randomBytes(4).toString('hex')}`;
  const mnt = fs.mkdtempSync(path.join(env.base, 'mnt-'));
  const sn = env.images.snapshotter;
  mountAll(sn.view(key, record.layers[record.layers.length - 1].chainID), mnt);
  try {
    const out: Record<string, string | null> = {};
    for (const f of files) out[f] = fs.existsSync(path.join(mnt, f)) ? fs.readFileSync(path.join(mnt, f), 'utf8') : null;
    return out;
  } finally {
    unmountAll(mnt);
    sn.remove(key);
    fs.rmdirSync(mnt);
  }
}

const DOCKERFILE = `# syntax=docker/dockerfile:1
FROM scratch AS base
COPY hello.txt /app/
COPY dir /app/data
ENV GREETING=hi \\
    OTHER="two words"
WORKDIR /app/work
COPY <<EOF /app/note
greeting=\${GREETING}
EOF
CMD ["/app/run"]

FROM scratch
ARG V=1
COPY --from=base /app/hello.txt /copied-$V.txt
COPY --from=base /app/data/ /data/
LABEL v=$V
`;

function context(overrides: Record<string, string> = {}): Record<string, string> {
  return { Dockerfile: DOCKERFILE, 'hello.txt': 'hello\n', 'dir/a': 'A', 'dir/sub/b': 'B', ...overrides };
}

test('scratch + COPY + ENV + WORKDIR + CMD, multi-stage COPY --from; cache hits and invalidation', async (t) => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-build-test-e2e-'));
  let env = open(base);
  t.after(() => { env.close(); fs.rmSync(base, { recursive: true, force: true }); });

  const first = await build(env, context(), 't=app:v1&t=other&buildargs=' + encodeURIComponent(JSON.stringify({ V: '2', unused: 'x' })));
  assert.ok(first.id, JSON.stringify(first.msgs));
  assert.match(first.stream, /^Step 1\/12 : FROM scratch AS base\n ---> \nStep 2\/12 : COPY hello.txt \/app\/\n ---> [0-9a-f]{12}\n/);
  assert.match(first.stream, /Step 10\/12 : COPY --from=base \/app\/hello.txt \/copied-\$V.txt\n/);
  assert.match(first.stream, /\[Warning\] One or more build-args \[unused\] were not consumed\n/);
  assert.match(first.stream, new RegExp(`Successfully built ${first.id!.slice(7, 19)}\nSuccessfully tagged app:v1\nSuccessfully tagged other:latest\n$`));
  assert.deepEqual(first.msgs.find((m) => m.aux), { aux: { ID: first.id } });
  assert.doesNotMatch(first.stream, /Using cache/);

  // The final image: the second stage.
  const final = await env.images.resolve('app:v1');
  assert.equal(final.record.id, first.id);
  assert.deepEqual(final.config.config?.Labels, { v: '2' });
  assert.equal(final.config.rootfs.diff_ids.length, 2);
  assert.deepEqual(await readRootfs(env, first.id!, ['copied-2.txt', 'data/a', 'data/sub/b', 'app/hello.txt']), { 'copied-2.txt': 'hello\n', 'data/a': 'A', 'data/sub/b': 'B', 'app/hello.txt': null });
  const history = final.config.history ?? [];
  assert.equal(history.length, 4);
  assert.match(history[1].created_by ?? '', /^\/bin\/sh -c #\(nop\) COPY file:[0-9a-f]{64} in \/copied-2.txt $/);
  assert.deepEqual(history.map((h) => h.empty_layer ?? false), [true, false, false, true]);

  // --target stops at the first stage: its config and files.
  const tgt = await build(env, context(), 'target=base&t=base');
  assert.ok(tgt.id, JSON.stringify(tgt.msgs));
  assert.match(tgt.stream, /Step 1\/7 : FROM scratch AS base/);
  assert.match(tgt.stream, / ---> Using cache\n/);
  const b = await env.images.resolve('base');
  assert.deepEqual(b.config.config?.Env, ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'GREETING=hi', 'OTHER=two words']);
  assert.equal(b.config.config?.WorkingDir, '/app/work');
  assert.deepEqual(b.config.config?.Cmd, ['/app/run']);
  assert.deepEqual(await readRootfs(env, tgt.id!, ['app/hello.txt', 'app/data/a', 'app/data/sub/b', 'app/note']), { 'app/hello.txt': 'hello\n', 'app/data/a': 'A', 'app/data/sub/b': 'B', 'app/note': 'greeting=hi\n' });
  assert.ok(fs.statSync(path.join(base, 'tmp')).isDirectory());
  assert.deepEqual(fs.readdirSync(path.join(base, 'tmp')), [], 'temp dirs cleaned up');

  // A rebuild, after a daemon restart: every step from the cache, the same image.
  env.close();
  env = open(base);
  const again = await build(env, context(), 'buildargs=' + encodeURIComponent(JSON.stringify({ V: '2' })));
  assert.equal(again.id, first.id);
  assert.equal(again.stream.match(/ ---> Using cache\n/g)?.length, 10);

  // Changing a file invalidates the steps copying it, and only those.
  const changed = await build(env, context({ 'dir/sub/b': 'B2' }), 'buildargs=' + encodeURIComponent(JSON.stringify({ V: '2' })));
  assert.ok(changed.id && changed.id !== first.id);
  const steps = changed.stream.split(/(?=Step \d+\/12 : )/);
  const cached = steps.filter((s) => s.includes('Using cache')).map((s) => /Step (\d+)/.exec(s)![1]);
  // Step 3 copies the changed tree (and 4-7 build on it); stage two's ARG and its copy of the
  // unchanged hello.txt still hit, as the copied file's checksum did not change.
  assert.deepEqual(cached, ['2', '9', '10'], changed.stream);
  assert.deepEqual(await readRootfs(env, changed.id!, ['data/sub/b', 'copied-2.txt']), { 'data/sub/b': 'B2', 'copied-2.txt': 'hello\n' });

  // --no-cache rebuilds everything.
  const nocache = await build(env, context(), 'nocache=1');
  assert.doesNotMatch(nocache.stream, /Using cache/);
  assert.ok(nocache.id);
});

test('errors: parse errors are thrown before output; step errors come in the stream', async (t) => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-build-test-err-'));
  const env = open(base);
  t.after(() => { env.close(); fs.rmSync(base, { recursive: true, force: true }); });
  await assert.rejects(build(env, { Dockerfile: 'FROM scratch\nBOGUS x\n' }), /dockerfile parse error on line 2: unknown instruction: BOGUS/);
  await assert.rejects(build(env, { 'x.txt': 'x' }), /Cannot locate specified Dockerfile: Dockerfile/);
  await assert.rejects(build(env, context(), 'target=nope'), /failed to reach build target nope in Dockerfile/);

  const run = await build(env, { Dockerfile: 'FROM scratch\nCOPY a /a\nRUN echo hi\n', a: 'x' });
  assert.equal(run.id, undefined);
  const last = run.msgs[run.msgs.length - 1];
  assert.match(String(last.error), /RUN needs the container runtime/);
  assert.deepEqual(last.errorDetail, { message: last.error });

  const missing = await build(env, { Dockerfile: 'FROM scratch\nCOPY nothere /x\n' });
  assert.match(String(missing.msgs.at(-1)?.error), /COPY failed: file not found in build context or excluded by .dockerignore: stat nothere: file does not exist/);
  const multi = await build(env, { Dockerfile: 'FROM scratch\nCOPY a b /x\n', a: '1', b: '2' });
  assert.match(String(multi.msgs.at(-1)?.error), /When using COPY with more than one source file, the destination must be a directory and end with a \//);
  const empty = await build(env, { Dockerfile: 'FROM scratch\n' });
  assert.match(String(empty.msgs.at(-1)?.error), /No image was generated/);

  // A bare Dockerfile as the body (docker build - < Dockerfile), quiet mode.
  const msgs: Record<string, unknown>[] = [];
  const id = await env.builder.build(params('q=1'), Readable.from([Buffer.from('FROM scratch\nENV A=1\nCMD ["x"]\n')]), (m) => msgs.push(m as Record<string, unknown>));
  assert.ok(id);
  assert.deepEqual(msgs, [{ aux: { ID: id } }, { stream: `${id}\n` }]);
});
