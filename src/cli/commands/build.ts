// `berth build`: packs the context directory (honouring .dockerignore) into a tar, sends it to
// POST /build and shows the classic builder's JSON stream as docker's legacy builder output.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import type * as TarStream from 'tar-stream';

type EntryHeader = Partial<TarStream.Header> & { name: string };
import { parseKeyValues } from '../../common/flags';
import { DockerIgnore, walkContext } from '../../build/dockerignore';
import { displayJSONMessages, readAll, UsageError } from '../client';
import type { CommandContext, CommandSpec } from '../command';
import { humanSize } from '../format';
import { validateReference } from './images';

/** tar-stream, loaded when a build runs: it costs ~20 ms of every other command's start-up. */
let tarStream: typeof TarStream | undefined;
const tar = (): typeof TarStream => (tarStream ??= require('tar-stream') as typeof TarStream);

interface ContextTar {
  stream: NodeJS.ReadableStream;
  /** The Dockerfile's name inside the tar. */
  dockerfile: string;
}

function tarEntryName(rel: string, isDir: boolean): string {
  return isDir ? `${rel}/` : rel;
}

/**
 * Streams the context as a tar: entries in sorted walk order, files read one at a time so large
 * contexts never sit in memory. An extra entry (a Dockerfile from outside the context) goes last.
 */
export function packContext(dir: string, dockerfileArg: string | undefined): ContextTar {
  const root = path.resolve(dir);
  let st: fs.Stats;
  try {
    st = fs.statSync(root);
  } catch {
    throw new Error(`unable to prepare context: path "${dir}" not found`);
  }
  if (!st.isDirectory()) throw new Error(`unable to prepare context: context must be a directory: ${root}`);
  let dockerfile = 'Dockerfile';
  let extra: { name: string; data: Buffer } | undefined;
  if (dockerfileArg) {
    const abs = path.resolve(dockerfileArg);
    const rel = path.relative(root, abs);
    if (!fs.existsSync(abs)) throw new Error(`unable to prepare context: the Dockerfile (${dockerfileArg}) cannot be found`);
    if (rel.startsWith('..') || path.isAbsolute(rel)) {
      // As docker: a Dockerfile outside the context is added under a random name.
      dockerfile = `.dockerfile.${randomBytes(10).toString('hex')}`;
      extra = { name: dockerfile, data: fs.readFileSync(abs) };
    } else dockerfile = rel.split(path.sep).join('/');
  } else if (!fs.existsSync(path.join(root, 'Dockerfile'))) {
    throw new Error(`unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat ${path.join(root, 'Dockerfile')}: no such file or directory`);
  }
  const ignore = DockerIgnore.fromContextDir(root).forSending(dockerfile);
  const pack = tar().pack();
  const out = new PassThrough();
  pack.on('error', (e: Error) => out.destroy(e));
  pack.pipe(out);
  void (async () => {
    try {
      for (const { rel, stat } of walkContext(root, ignore)) {
        const header: EntryHeader = { name: tarEntryName(rel, stat.isDirectory()), mode: stat.mode & 0o7777, uid: stat.uid, gid: stat.gid, mtime: stat.mtime };
        if (stat.isDirectory()) await addEntry(pack, { ...header, type: 'directory' });
        else if (stat.isSymbolicLink()) await addEntry(pack, { ...header, type: 'symlink', linkname: fs.readlinkSync(path.join(root, rel)) });
        else if (stat.isFile()) await addFile(pack, header, path.join(root, rel), stat.size);
      }
      if (extra) await addEntry(pack, { name: extra.name, mode: 0o600, mtime: new Date(), type: 'file', size: extra.data.length }, extra.data);
      pack.finalize();
    } catch (e) {
      out.destroy(e as Error);
    }
  })();
  return { stream: out, dockerfile };
}

function addEntry(pack: TarStream.Pack, header: EntryHeader, data?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    {
      const done = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (data) pack.entry(header as TarStream.Header, data, done);
      else pack.entry(header as TarStream.Header, done);
    };
  });
}

function addFile(pack: TarStream.Pack, header: EntryHeader, file: string, size: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const entry = pack.entry({ ...header, type: 'file', size } as TarStream.Header, (err) => (err ? reject(err) : resolve()));
    const src = fs.createReadStream(file);
    src.on('error', (e) => {
      entry.destroy(e);
      reject(e);
    });
    src.pipe(entry);
  });
}

/** A byte counter in front of the request body, for "Sending build context" size. */
function counted(src: NodeJS.ReadableStream): { stream: PassThrough; bytes: () => number } {
  let n = 0;
  const pt = new PassThrough();
  src.on('data', (c: Buffer) => (n += c.length));
  src.on('error', (e: Error) => pt.destroy(e));
  src.pipe(pt);
  return { stream: pt, bytes: () => n };
}

function isArchive(head: Buffer): boolean {
  if (head.length >= 262 && head.subarray(257, 262).toString() === 'ustar') return true;
  // gzip, bzip2, xz, zstd
  return (head[0] === 0x1f && head[1] === 0x8b) || head.subarray(0, 3).toString() === 'BZh' || (head[0] === 0xfd && head.subarray(1, 6).toString() === '7zXZ\0') || head.readUInt32LE(0) === 0xfd2fb528;
}

async function stdinContext(ctx: CommandContext): Promise<ContextTar & { size: number }> {
  const data = await readAll(ctx.io.stdin);
  if (data.length >= 4 && isArchive(data)) return { stream: bufferStream(data), dockerfile: '', size: data.length };
  // Plain text on stdin is a Dockerfile with an empty context.
  const pack = tar().pack();
  const buf = readAll(pack as unknown as NodeJS.ReadableStream);
  pack.entry({ name: 'Dockerfile', mode: 0o600, mtime: new Date(), size: data.length }, data);
  pack.finalize();
  const tarBuf = await buf;
  return { stream: bufferStream(tarBuf), dockerfile: 'Dockerfile', size: tarBuf.length };
}

function bufferStream(b: Buffer): PassThrough {
  const pt = new PassThrough();
  pt.end(b);
  return pt;
}

async function buildCmd(ctx: CommandContext, v: Record<string, unknown>, context: string): Promise<number> {
  const tags = v.tag as string[];
  for (const t of tags) {
    try {
      validateReference(t);
    } catch (e) {
      throw new UsageError(`invalid argument "${t}" for "-t, --tag" flag: ${(e as Error).message}`);
    }
  }
  const quiet = Boolean(v.quiet);
  ctx.err('DEPRECATED: The legacy builder is deprecated and will be removed in a future release.\n            BuildKit is currently disabled; enable it by removing the DOCKER_BUILDKIT=0\n            environment-variable.\n\n');
  let body: NodeJS.ReadableStream;
  let dockerfile: string;
  let knownSize: number | undefined;
  if (context === '-') {
    const c = await stdinContext(ctx);
    body = c.stream;
    dockerfile = (v.file as string) || c.dockerfile || 'Dockerfile';
    knownSize = c.size;
  } else {
    const c = packContext(context, (v.file as string) || undefined);
    body = c.stream;
    dockerfile = c.dockerfile;
  }
  const buildArgs: Record<string, string> = {};
  for (const a of v['build-arg'] as string[]) {
    const eq = a.indexOf('=');
    // A bare NAME takes its value from the environment, and is dropped when unset.
    if (eq < 0) {
      if (ctx.io.env[a] !== undefined) buildArgs[a] = ctx.io.env[a]!;
    } else buildArgs[a.slice(0, eq)] = a.slice(eq + 1);
  }
  const query = {
    t: tags,
    dockerfile,
    buildargs: JSON.stringify(buildArgs),
    labels: JSON.stringify(parseKeyValues(v.label as string[])),
    target: (v.target as string) || undefined,
    nocache: v['no-cache'] ? '1' : undefined,
    pull: v.pull ? '1' : undefined,
    q: quiet ? '1' : undefined,
    rm: v.rm === false ? '0' : '1',
    forcerm: v['force-rm'] ? '1' : undefined,
    networkmode: (v.network as string) || undefined,
    platform: (v.platform as string) || undefined,
    extrahosts: (v['add-host'] as string[]).length ? (v['add-host'] as string[]) : undefined,
    shmsize: (v['shm-size'] as string) || undefined,
    cachefrom: (v['cache-from'] as string[]).length ? JSON.stringify(v['cache-from']) : undefined,
    version: '1',
  };
  const sent = counted(body);
  const res = await ctx.client.request('POST', '/build', { query, body: sent.stream, headers: { 'Content-Type': 'application/x-tar' } });
  if (!quiet) ctx.out(`Sending build context to Docker daemon  ${humanSize(knownSize ?? sent.bytes(), 4)}\r\r\n`);
  let imageId = '';
  const sink = quiet ? new PassThrough().resume() : ctx.io.stdout;
  await displayJSONMessages(res, sink, (aux) => {
    const id = (aux as { ID?: string })?.ID;
    if (id) imageId = id;
  });
  if (quiet) ctx.out(`${imageId}\n`);
  if (v.iidfile) fs.writeFileSync(v.iidfile as string, imageId, { mode: 0o644 });
  return 0;
}

export function buildCommands(): CommandSpec[] {
  return [
    {
      paths: [['image', 'build'], ['build'], ['builder', 'build']],
      usage: '[OPTIONS] PATH | URL | -',
      description: 'Build an image from a Dockerfile',
      flags: [
        { name: 'add-host', type: 'list', description: 'Add a custom host-to-IP mapping ("host:ip")' },
        { name: 'build-arg', type: 'list', description: 'Set build-time variables' },
        { name: 'cache-from', type: 'list', typeName: 'strings', description: 'Images to consider as cache sources' },
        { name: 'file', short: 'f', type: 'string', description: "Name of the Dockerfile (Default is \"PATH/Dockerfile\")" },
        { name: 'force-rm', type: 'bool', description: 'Always remove intermediate containers' },
        { name: 'iidfile', type: 'string', description: 'Write the image ID to the file' },
        { name: 'label', type: 'list', description: 'Set metadata for an image' },
        { name: 'network', type: 'string', default: 'default', description: 'Set the networking mode for the RUN instructions during build' },
        { name: 'no-cache', type: 'bool', description: 'Do not use cache when building the image' },
        { name: 'platform', type: 'string', description: 'Set platform if server is multi-platform capable' },
        { name: 'pull', type: 'bool', description: 'Always attempt to pull a newer version of the image' },
        { name: 'quiet', short: 'q', type: 'bool', description: 'Suppress the build output and print image ID on success' },
        { name: 'rm', type: 'bool', default: true, description: 'Remove intermediate containers after a successful build' },
        { name: 'shm-size', type: 'string', typeName: 'bytes', description: 'Size of "/dev/shm"' },
        { name: 'tag', short: 't', type: 'list', description: 'Name and optionally a tag in the "name:tag" format' },
        { name: 'target', type: 'string', description: 'Set the target build stage to build.' },
      ],
      args: { exact: 1 },
      run: (ctx, f) => buildCmd(ctx, f.values, f.args[0]),
    },
  ];
}
