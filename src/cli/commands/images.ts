// Image commands: images / image ls, image inspect, history, tag, rmi, import, load, save,
// image prune, and image seed (busybox and debian base images built on this machine).
import * as fs from 'node:fs';
import { displayJSONMessages, filtersParam, openInput, UsageError } from '../client';
import { formatFlag, type CommandContext, type CommandSpec } from '../command';
import { FormatContext, goTimeString, humanSize, prettyJSON, renderRows, shortId, Template, timeAgo, ellipsis } from '../format';
import { confirm, forEachName, inspectCommand, inspectEach } from './common';

/** Splits "repo[:tag]" or "repo@digest"; the tag defaults to latest when asked. */
export function splitReference(ref: string, defaultTag = 'latest'): { repo: string; tag: string; digest?: string } {
  const at = ref.indexOf('@');
  if (at >= 0) return { repo: ref.slice(0, at), tag: '', digest: ref.slice(at + 1) };
  const colon = ref.lastIndexOf(':');
  if (colon > ref.lastIndexOf('/')) return { repo: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  return { repo: ref, tag: defaultTag };
}

const REFERENCE = /^(?:[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?::[0-9]+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?$/;

export function validateReference(ref: string): void {
  if (!REFERENCE.test(ref)) {
    throw new Error(/[A-Z]/.test(ref) ? `invalid reference format: repository name (${ref.split(':')[0]}) must be lowercase` : 'invalid reference format');
  }
}

interface ImageSummary {
  Id: string;
  ParentId?: string;
  RepoTags?: string[] | null;
  RepoDigests?: string[] | null;
  Created: number;
  Size: number;
  SharedSize?: number;
  Labels?: Record<string, string> | null;
  Containers?: number;
}

export class ImageRow extends FormatContext {
  constructor(private readonly i: ImageSummary, readonly Repository: string, readonly Tag: string, readonly Digest: string, private readonly trunc: boolean) {
    super();
  }
  headers(): Record<string, string> {
    return {
      Containers: 'CONTAINERS', CreatedAt: 'CREATED AT', CreatedSince: 'CREATED', Digest: 'DIGEST', ID: 'IMAGE ID', Repository: 'REPOSITORY',
      SharedSize: 'SHARED SIZE', Size: 'SIZE', Tag: 'TAG', UniqueSize: 'UNIQUE SIZE', VirtualSize: 'VIRTUAL SIZE',
    };
  }
  get ID(): string {
    return this.trunc ? shortId(this.i.Id) : this.i.Id;
  }
  get CreatedSince(): string {
    return this.i.Created ? timeAgo(this.i.Created * 1000) : 'N/A';
  }
  get CreatedAt(): string {
    return goTimeString(new Date(this.i.Created * 1000));
  }
  get Size(): string {
    return humanSize(this.i.Size, 3);
  }
  get VirtualSize(): string {
    return humanSize(this.i.Size, 4);
  }
  get SharedSize(): string {
    return (this.i.SharedSize ?? -1) === -1 ? 'N/A' : humanSize(this.i.SharedSize!, 3);
  }
  get UniqueSize(): string {
    return (this.i.SharedSize ?? -1) === -1 ? 'N/A' : humanSize(this.i.Size - this.i.SharedSize!, 3);
  }
  get Containers(): string {
    return (this.i.Containers ?? -1) === -1 ? 'N/A' : String(this.i.Containers);
  }
}

/** One row per tag (and per digest with --digests), as docker's image formatter expands them. */
export function imageRows(images: ImageSummary[], digests: boolean, trunc: boolean): ImageRow[] {
  const rows: ImageRow[] = [];
  for (const img of images) {
    const before = rows.length;
    const tags = img.RepoTags ?? [];
    const dgs = img.RepoDigests ?? [];
    if (tags.length === 0 && dgs.length === 0) {
      rows.push(new ImageRow(img, '<none>', '<none>', '<none>', trunc));
      continue;
    }
    const repoTags = new Map<string, string[]>();
    const repoDigests = new Map<string, string[]>();
    for (const t of tags) {
      const { repo, tag } = splitReference(t, '');
      if (repo === '<none>') continue;
      repoTags.set(repo, [...(repoTags.get(repo) ?? []), tag]);
    }
    for (const d of dgs) {
      const at = d.indexOf('@');
      if (at < 0 || d.startsWith('<none>')) continue;
      repoDigests.set(d.slice(0, at), [...(repoDigests.get(d.slice(0, at)) ?? []), d.slice(at + 1)]);
    }
    for (const [repo, ts] of repoTags) {
      const ds = digests ? repoDigests.get(repo) ?? [] : [];
      repoDigests.delete(repo);
      for (const tag of ts) {
        if (ds.length === 0) rows.push(new ImageRow(img, repo, tag, '<none>', trunc));
        else for (const d of ds) rows.push(new ImageRow(img, repo, tag, d, trunc));
      }
    }
    for (const [repo, ds] of repoDigests) {
      if (digests) for (const d of ds) rows.push(new ImageRow(img, repo, '<none>', d, trunc));
      else rows.push(new ImageRow(img, repo, '<none>', '', trunc));
    }
    if (rows.length === before) rows.push(new ImageRow(img, '<none>', '<none>', '<none>', trunc));
  }
  return rows;
}

async function imagesCmd(ctx: CommandContext, v: Record<string, unknown>, args: string[]): Promise<number> {
  const filters = [...(v.filter as string[])];
  if (args[0]) filters.push(`reference=${args[0]}`);
  const images = await ctx.client.json<ImageSummary[]>('GET', '/images/json', { query: { all: v.all ? '1' : undefined, filters: filtersParam(filters), digests: v.digests ? '1' : undefined } });
  const trunc = !v['no-trunc'];
  const rows = imageRows(images ?? [], Boolean(v.digests), trunc);
  let format = v.format as string | undefined;
  if (v.quiet) format = '{{.ID}}';
  else if (!format || format === 'table') {
    format = v.digests ? 'table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}' : 'table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}';
  }
  ctx.out(renderRows(format, rows, () => rows[0]?.headers() ?? new ImageRow({ Id: '', Created: 0, Size: 0 }, '', '', '', true).headers()));
  return 0;
}

interface HistoryEntry {
  Id: string;
  Created: number;
  CreatedBy: string;
  Tags?: string[] | null;
  Size: number;
  Comment: string;
}

class HistoryRow extends FormatContext {
  constructor(private readonly h: HistoryEntry, private readonly trunc: boolean, private readonly human: boolean) {
    super();
  }
  headers(): Record<string, string> {
    return { ID: 'IMAGE', CreatedSince: 'CREATED', CreatedAt: 'CREATED AT', CreatedBy: 'CREATED BY', Size: 'SIZE', Comment: 'COMMENT' };
  }
  get ID(): string {
    if (this.h.Id === '<missing>' || !this.h.Id) return '<missing>';
    return this.trunc ? shortId(this.h.Id) : this.h.Id;
  }
  get CreatedSince(): string {
    return this.human ? timeAgo(this.h.Created * 1000) : this.CreatedAt;
  }
  get CreatedAt(): string {
    return this.human ? goTimeString(new Date(this.h.Created * 1000)) : new Date(this.h.Created * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
  }
  get CreatedBy(): string {
    const by = this.h.CreatedBy.replace(/\t/g, ' ');
    return this.trunc ? ellipsis(by, 45) : by;
  }
  get Size(): string {
    return this.human ? humanSize(this.h.Size, 3) : String(this.h.Size);
  }
  get Comment(): string {
    return this.h.Comment;
  }
}

async function historyCmd(ctx: CommandContext, v: Record<string, unknown>, image: string): Promise<number> {
  const hist = await ctx.client.json<HistoryEntry[]>('GET', `/images/${encodeURIComponent(image)}/history`);
  const rows = hist.map((h) => new HistoryRow(h, !v['no-trunc'], v.human !== false));
  let format = v.format as string | undefined;
  if (v.quiet) format = '{{.ID}}';
  else if (!format || format === 'table') format = 'table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}';
  ctx.out(renderRows(format, rows, () => new HistoryRow({ Id: '', Created: 0, CreatedBy: '', Size: 0, Comment: '' }, true, true).headers()));
  return 0;
}

async function tagCmd(ctx: CommandContext, source: string, target: string): Promise<number> {
  validateReference(target);
  const { repo, tag } = splitReference(target);
  await ctx.client.call('POST', `/images/${encodeURIComponent(source)}/tag`, { query: { repo, tag } });
  return 0;
}

interface DeleteItem { Untagged?: string; Deleted?: string }

function rmiCmd(ctx: CommandContext, v: Record<string, unknown>, names: string[]): Promise<number> {
  return forEachName(ctx, names, async (name) => {
    const items = await ctx.client.json<DeleteItem[]>('DELETE', `/images/${encodeURIComponent(name)}`, { query: { force: v.force ? '1' : undefined, noprune: v['no-prune'] ? '1' : undefined } });
    for (const it of items ?? []) ctx.out(it.Untagged ? `Untagged: ${it.Untagged}\n` : `Deleted: ${it.Deleted}\n`);
  });
}

async function importCmd(ctx: CommandContext, v: Record<string, unknown>, args: string[]): Promise<number> {
  const [source, ref] = args;
  let repo: string | undefined;
  let tag: string | undefined;
  if (ref) {
    validateReference(ref);
    ({ repo, tag } = splitReference(ref, ''));
  }
  const query: Record<string, string | string[] | undefined> = { repo, tag: tag || undefined, message: (v.message as string) || undefined, changes: v.change as string[] };
  if (v.platform) query.platform = v.platform as string;
  let body: NodeJS.ReadableStream | undefined;
  if (source === '-') {
    query.fromSrc = '-';
    body = ctx.io.stdin;
  } else if (/^https?:\/\//.test(source)) {
    query.fromSrc = source;
  } else {
    query.fromSrc = '-';
    body = openInput(source);
  }
  const res = await ctx.client.request('POST', '/images/create', { query, body, headers: body ? { 'Content-Type': 'application/x-tar' } : {} });
  await displayJSONMessages(res, ctx.io.stdout);
  return 0;
}

async function loadCmd(ctx: CommandContext, v: Record<string, unknown>): Promise<number> {
  let body: NodeJS.ReadableStream;
  if (v.input) body = openInput(v.input as string);
  else {
    if (ctx.io.stdin.isTTY) throw new Error('requested load from stdin, but stdin is empty');
    body = ctx.io.stdin;
  }
  const res = await ctx.client.request('POST', '/images/load', { query: { quiet: v.quiet ? '1' : '0' }, body, headers: { 'Content-Type': 'application/x-tar' } });
  if ((res.headers['content-type'] ?? '').includes('json')) await displayJSONMessages(res, ctx.io.stdout);
  else res.pipe(ctx.io.stdout, { end: false });
  return 0;
}

async function saveCmd(ctx: CommandContext, v: Record<string, unknown>, names: string[]): Promise<number> {
  const output = v.output as string | undefined;
  if (!output && ctx.io.stdout.isTTY) throw new Error('cowardly refusing to save to a terminal. Use the -o flag or redirect');
  const res = await ctx.client.request('GET', '/images/get', { query: { names } });
  if (!output) {
    await new Promise<void>((resolve, reject) => {
      res.on('error', reject);
      res.on('end', resolve);
      res.pipe(ctx.io.stdout, { end: false });
    });
    return 0;
  }
  // Written beside the target and renamed into place, so a failed save leaves no partial file.
  const tmp = `${output}.berth-tmp-${process.pid}`;
  const file = fs.createWriteStream(tmp, { mode: 0o644 });
  try {
    await new Promise<void>((resolve, reject) => {
      res.on('error', reject);
      file.on('error', reject);
      file.on('finish', resolve);
      res.pipe(file);
    });
    const fd = fs.openSync(tmp, 'r');
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(tmp, output);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  return 0;
}

async function pruneCmd(ctx: CommandContext, v: Record<string, unknown>): Promise<number> {
  const all = Boolean(v.all);
  const warning = all
    ? 'WARNING! This will remove all images without at least one container associated to them.'
    : 'WARNING! This will remove all dangling images.';
  if (!v.force && !(await confirm(ctx, warning))) return 0;
  const filters = [...(v.filter as string[])];
  filters.push(`dangling=${all ? 'false' : 'true'}`);
  const r = await ctx.client.json<{ ImagesDeleted?: DeleteItem[] | null; SpaceReclaimed?: number }>('POST', '/images/prune', { query: { filters: filtersParam(filters) } });
  const deleted = r.ImagesDeleted ?? [];
  let out = '';
  if (deleted.length) {
    out += 'Deleted Images:\n';
    for (const d of deleted) out += d.Untagged ? `untagged: ${d.Untagged}\n` : `deleted: ${d.Deleted}\n`;
    out += '\n';
  }
  ctx.out(`${out}Total reclaimed space: ${humanSize(r.SpaceReclaimed ?? 0, 4)}\n`);
  return 0;
}

function imageInspectCmd(ctx: CommandContext, v: Record<string, unknown>, names: string[]): Promise<number> {
  const get = (n: string): Promise<unknown> => ctx.client.json('GET', `/images/${encodeURIComponent(n)}/json`);
  return inspectEach(ctx, names, get, (found) => printInspect(ctx, found, v.format as string | undefined));
}

/** inspect's output: the indented JSON array, or the template once per object. */
export function printInspect(ctx: CommandContext, objects: unknown[], format: string | undefined): void {
  if (!format || format === 'json') {
    ctx.out(prettyJSON(objects) + '\n');
    return;
  }
  const tmpl = new Template(format.replace(/\\t/g, '\t').replace(/\\n/g, '\n'));
  for (const o of objects) ctx.out(tmpl.execute(o) + '\n');
}

async function seedCmd(ctx: CommandContext, v: Record<string, unknown>, which: string): Promise<number> {
  const seed = await import('./seed');
  if (which === 'busybox') return seed.seedBusybox(ctx, v);
  if (which === 'debian') return seed.seedDebian(ctx, v);
  throw new UsageError(`unknown seed image "${which}": choose busybox or debian`);
}

const filterFlag = { name: 'filter', short: 'f', type: 'list' as const, typeName: 'filter', description: 'Filter output based on conditions provided' };

export function imageCommands(): CommandSpec[] {
  return [
    {
      paths: [['image', 'ls'], ['image', 'list'], ['images']],
      usage: '[OPTIONS] [REPOSITORY[:TAG]]',
      description: 'List images',
      flags: [
        { name: 'all', short: 'a', type: 'bool', description: 'Show all images (default hides intermediate images)' },
        { name: 'digests', type: 'bool', description: 'Show digests' },
        filterFlag,
        formatFlag(true, false),
        { name: 'no-trunc', type: 'bool', description: "Don't truncate output" },
        { name: 'quiet', short: 'q', type: 'bool', description: 'Only show image IDs' },
      ],
      args: { max: 1 },
      run: (ctx, f) => imagesCmd(ctx, f.values, f.args),
    },
    {
      paths: [['image', 'inspect']],
      usage: '[OPTIONS] IMAGE [IMAGE...]',
      description: 'Display detailed information on one or more images',
      flags: [formatFlag(false)],
      args: { min: 1 },
      run: (ctx, f) => imageInspectCmd(ctx, f.values, f.args),
    },
    inspectCommand(printInspect),
    {
      paths: [['image', 'history'], ['history']],
      usage: '[OPTIONS] IMAGE',
      description: 'Show the history of an image',
      flags: [
        formatFlag(true, false),
        { name: 'human', short: 'H', type: 'bool', default: true, description: 'Print sizes and dates in human readable format' },
        { name: 'no-trunc', type: 'bool', description: "Don't truncate output" },
        { name: 'quiet', short: 'q', type: 'bool', description: 'Only show image IDs' },
      ],
      args: { exact: 1 },
      run: (ctx, f) => historyCmd(ctx, f.values, f.args[0]),
    },
    {
      paths: [['image', 'tag'], ['tag']],
      usage: 'SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]',
      description: 'Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE',
      flags: [],
      args: { exact: 2 },
      run: (ctx, f) => tagCmd(ctx, f.args[0], f.args[1]),
    },
    {
      paths: [['image', 'rm'], ['image', 'remove'], ['rmi']],
      usage: '[OPTIONS] IMAGE [IMAGE...]',
      description: 'Remove one or more images',
      flags: [
        { name: 'force', short: 'f', type: 'bool', description: 'Force removal of the image' },
        { name: 'no-prune', type: 'bool', description: 'Do not delete untagged parents' },
      ],
      args: { min: 1 },
      run: (ctx, f) => rmiCmd(ctx, f.values, f.args),
    },
    {
      paths: [['image', 'import'], ['import']],
      usage: '[OPTIONS] file|URL|- [REPOSITORY[:TAG]]',
      description: 'Import the contents from a tarball to create a filesystem image',
      flags: [
        { name: 'change', short: 'c', type: 'list', description: 'Apply Dockerfile instruction to the created image' },
        { name: 'message', short: 'm', type: 'string', description: 'Set commit message for imported image' },
        { name: 'platform', type: 'string', description: 'Set platform if server is multi-platform capable' },
      ],
      args: { min: 1, max: 2 },
      run: (ctx, f) => importCmd(ctx, f.values, f.args),
    },
    {
      paths: [['image', 'load'], ['load']],
      usage: '[OPTIONS]',
      description: 'Load an image from a tar archive or STDIN',
      flags: [
        { name: 'input', short: 'i', type: 'string', description: 'Read from tar archive file, instead of STDIN' },
        { name: 'quiet', short: 'q', type: 'bool', description: 'Suppress the load output' },
      ],
      args: { exact: 0 },
      run: (ctx, f) => loadCmd(ctx, f.values),
    },
    {
      paths: [['image', 'save'], ['save']],
      usage: '[OPTIONS] IMAGE [IMAGE...]',
      description: 'Save one or more images to a tar archive (streamed to STDOUT by default)',
      flags: [{ name: 'output', short: 'o', type: 'string', description: 'Write to a file, instead of STDOUT' }],
      args: { min: 1 },
      run: (ctx, f) => saveCmd(ctx, f.values, f.args),
    },
    {
      paths: [['image', 'prune']],
      usage: '[OPTIONS]',
      description: 'Remove unused images',
      flags: [
        { name: 'all', short: 'a', type: 'bool', description: 'Remove all unused images, not just dangling ones' },
        { name: 'filter', type: 'list', typeName: 'filter', description: 'Provide filter values (e.g. "until=<timestamp>")' },
        { name: 'force', short: 'f', type: 'bool', description: 'Do not prompt for confirmation' },
      ],
      args: { exact: 0 },
      run: (ctx, f) => pruneCmd(ctx, f.values),
    },
    {
      paths: [['image', 'seed']],
      usage: '[OPTIONS] busybox|debian',
      description: 'Build a base image (busybox or debian) from this machine',
      flags: [
        { name: 'mirror', type: 'string', description: 'Debian mirror for debootstrap (default: from /etc/apt/sources.list)' },
        { name: 'refresh', type: 'bool', description: 'Rebuild the cached debian rootfs tar' },
        { name: 'busybox', type: 'string', description: 'Path of the static busybox binary (default "/bin/busybox")' },
      ],
      args: { exact: 1 },
      run: (ctx, f) => seedCmd(ctx, f.values, f.args[0]),
    },
  ];
}
