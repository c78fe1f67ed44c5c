// Container commands: run, create, start, stop, restart, kill, wait, rm, ps, logs, attach, exec,
// top, pause, unpause, rename, diff, export, commit, port, container prune, container inspect.
import * as fs from 'node:fs';
import { PassThrough } from 'node:stream';
import { DaemonError, demuxStream, displayJSONMessages, filtersParam, readAll, UsageError } from '../client';
import { formatFlag, type CliFlag, type CommandContext, type CommandSpec } from '../command';
import { monitorTtySize, proxySignals, pumpHijacked } from '../attach';
import { ellipsis, FormatContext, goTimeString, humanSize, renderRows, shortId, tabwrite, timeAgo } from '../format';
import { buildCreateRequest, parseDurationNs, parseEnv, RUN_FLAGS, RUN_ONLY } from '../runopts';
import { confirm, forEachName, inspectEach } from './common';
import { printInspect, splitReference } from './images';
import { registryAuthHeader, registryOf } from './registry-client';

const enc = encodeURIComponent;

/** An error that ends the command with a given exit status (docker's cli.StatusError). */
export class StatusError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

interface ContainerInspect {
  Id: string;
  Name: string;
  Config: { Tty: boolean; OpenStdin: boolean; Image: string };
  State: { Running: boolean; Paused: boolean; Restarting: boolean; ExitCode: number; Status: string };
}

async function inspectContainer(ctx: CommandContext, name: string): Promise<ContainerInspect> {
  return ctx.client.json<ContainerInspect>('GET', `/containers/${enc(name)}/json`);
}

/** Pulls an image as `run`/`create` do when it is missing, progress on stderr. */
async function pullImage(ctx: CommandContext, image: string, platform: string | undefined, quiet: boolean): Promise<void> {
  const { repo, tag, digest } = splitReference(image);
  const res = await ctx.client.request('POST', '/images/create', {
    query: { fromImage: repo, tag: digest ?? tag, platform },
    headers: { 'X-Registry-Auth': registryAuthHeader(ctx.io.env, registryOf(repo)) },
  });
  const sink = quiet ? new PassThrough().resume() : ctx.io.stderr;
  await displayJSONMessages(res, sink);
}

function withDefaultTag(image: string): string {
  const r = splitReference(image);
  return r.digest ? image : `${r.repo}:${r.tag}`;
}

async function createContainer(ctx: CommandContext, v: Record<string, unknown>, args: string[], isRun: boolean): Promise<{ id: string; req: ReturnType<typeof buildCreateRequest> }> {
  const req = buildCreateRequest(v, args, ctx.io.env, isRun);
  const pull = (v.pull as string | undefined) ?? 'missing';
  if (!['always', 'missing', 'never'].includes(pull)) throw new UsageError(`invalid pull option: '${pull}': must be one of "always", "missing" or "never"`);
  const create = () => ctx.client.json<{ Id: string; Warnings?: string[] | null }>('POST', '/containers/create', { query: { name: req.name, platform: req.platform }, body: req.body });
  if (pull === 'always') await pullImage(ctx, req.body.Image as string, req.platform, Boolean(v.quiet));
  let created: { Id: string; Warnings?: string[] | null };
  try {
    created = await create();
  } catch (e) {
    if (!(e instanceof DaemonError) || e.status !== 404 || pull !== 'missing' || !/No such image/i.test(e.message)) throw e;
    ctx.err(`Unable to find image '${withDefaultTag(req.body.Image as string)}' locally\n`);
    await pullImage(ctx, req.body.Image as string, req.platform, Boolean(v.quiet));
    created = await create();
  }
  for (const w of created.Warnings ?? []) ctx.err(`WARNING: ${w}\n`);
  if (v.cidfile) fs.writeFileSync(v.cidfile as string, created.Id, { flag: 'wx' });
  return { id: created.Id, req };
}

/** docker's exit codes for a container that could not start: 126 not executable, 127 not found. */
function startFailure(e: unknown): never {
  if (e instanceof DaemonError) {
    const m = e.message;
    const code = /executable file not found|no such file or directory|not found in \$PATH/i.test(m) ? 127 : /permission denied|not executable/i.test(m) ? 126 : 125;
    throw new StatusError(code, `berth: Error response from daemon: ${m}`);
  }
  throw e;
}

function delay<T>(ms: number, value: T): Promise<T> {
  return new Promise((r) => setTimeout(() => r(value), ms).unref());
}

/** Asks the daemon to report the next exit before the container starts, as docker does. */
type WaitResult = { StatusCode: number; Error?: { Message: string } | null };

async function waitRequest(ctx: CommandContext, id: string, condition: string): Promise<{ result: Promise<WaitResult> }> {
  const res = ctx.client.request('POST', `/containers/${enc(id)}/wait`, { query: { condition } });
  // dockerd sends the headers at once; give a slower daemon a moment to register the waiter.
  await Promise.race([res.catch(() => undefined), delay(2000, undefined)]);
  const result = res.then(async (r) => {
    const text = (await readAll(r)).toString().trim();
    return JSON.parse(text.split('\n').pop() || '{}') as WaitResult;
  });
  result.catch(() => {});
  return { result };
}

async function runCmd(ctx: CommandContext, v: Record<string, unknown>, args: string[]): Promise<number> {
  // Checked before the container is made (docker checks after, and leaves the container behind).
  if (v.tty && v.interactive && !v.detach && !ctx.io.stdin.isTTY) throw new StatusError(1, 'the input device is not a TTY');
  const { id, req } = await createContainer(ctx, v, args, true);
  const body = req.body;
  if (v.detach) {
    try {
      await ctx.client.call('POST', `/containers/${enc(id)}/start`);
    } catch (e) {
      startFailure(e);
    }
    ctx.out(`${id}\n`);
    return 0;
  }
  const tty = Boolean(body.Tty);
  const attachStdin = Boolean(body.AttachStdin);
  const hijacked = await ctx.client.hijack('POST', `/containers/${enc(id)}/attach`, {
    query: { stream: '1', stdin: attachStdin ? '1' : undefined, stdout: body.AttachStdout ? '1' : undefined, stderr: body.AttachStderr ? '1' : undefined, detachKeys: (v['detach-keys'] as string) || undefined },
  });
  const waitP = (await waitRequest(ctx, id, v.rm ? 'removed' : 'next-exit')).result;
  const streamDone = pumpHijacked(ctx, hijacked, { tty, stdin: attachStdin, output: Boolean(body.AttachStdout || body.AttachStderr), detachKeys: v['detach-keys'] as string | undefined });
  try {
    await ctx.client.call('POST', `/containers/${enc(id)}/start`);
  } catch (e) {
    hijacked.socket.destroy();
    startFailure(e);
  }
  const stopResize = tty ? monitorTtySize(ctx, `/containers/${enc(id)}/resize`) : () => {};
  const stopSignals = !tty && v['sig-proxy'] !== false ? proxySignals(ctx, id) : () => {};
  let detached: boolean;
  try {
    ({ detached } = await streamDone);
  } finally {
    stopResize();
  }
  try {
    // The stream ended: the detach keys were typed (docker exits 0 quietly), or the container exited.
    if (detached) return 0;
    const r = await waitP;
    if (r.Error?.Message) ctx.err(`${r.Error.Message}\n`);
    return r.StatusCode;
  } finally {
    stopSignals();
  }
}

async function createCmd(ctx: CommandContext, v: Record<string, unknown>, args: string[]): Promise<number> {
  const { id } = await createContainer(ctx, v, args, false);
  ctx.out(`${id}\n`);
  return 0;
}

async function startCmd(ctx: CommandContext, v: Record<string, unknown>, names: string[]): Promise<number> {
  if (v.attach || v.interactive) {
    if (names.length > 1) throw new UsageError('you cannot start and attach multiple containers at once');
    const c = await inspectContainer(ctx, names[0]);
    const tty = c.Config.Tty;
    const stdin = Boolean(v.interactive) && c.Config.OpenStdin;
    const hijacked = await ctx.client.hijack('POST', `/containers/${enc(c.Id)}/attach`, {
      query: { stream: '1', stdin: stdin ? '1' : undefined, stdout: '1', stderr: '1', detachKeys: (v['detach-keys'] as string) || undefined },
    });
    const waitP = (await waitRequest(ctx, c.Id, 'next-exit')).result;
    const done = pumpHijacked(ctx, hijacked, { tty, stdin, detachKeys: v['detach-keys'] as string | undefined });
    try {
      await ctx.client.call('POST', `/containers/${enc(c.Id)}/start`);
    } catch (e) {
      hijacked.socket.destroy();
      throw e;
    }
    const stopResize = tty ? monitorTtySize(ctx, `/containers/${enc(c.Id)}/resize`) : () => {};
    const stopSignals = !tty ? proxySignals(ctx, c.Id) : () => {};
    try {
      if ((await done).detached) return 0;
      return (await waitP).StatusCode;
    } finally {
      stopResize();
      stopSignals();
    }
  }
  return forEachName(ctx, names, async (n) => {
    await ctx.client.call('POST', `/containers/${enc(n)}/start`);
    ctx.out(`${n}\n`);
  });
}

function stopQuery(v: Record<string, unknown>): Record<string, string | number | undefined> {
  return { t: v.timeout as number | undefined, signal: (v.signal as string) || undefined };
}

interface PortEntry { IP?: string; PrivatePort: number; PublicPort?: number; Type: string }
interface ContainerSummary {
  Id: string;
  Names?: string[] | null;
  Image: string;
  ImageID?: string;
  Command: string;
  Created: number;
  Ports?: PortEntry[] | null;
  SizeRw?: number;
  SizeRootFs?: number;
  Labels?: Record<string, string> | null;
  State: string;
  Status: string;
  Mounts?: { Name?: string; Source?: string; Type?: string }[] | null;
  NetworkSettings?: { Networks?: Record<string, unknown> | null } | null;
}

/**
 * docker's PORTS column (DisplayablePorts): consecutive unpublished or same-numbered ports are
 * grouped into ranges ("8000-8002/tcp", "0.0.0.0:80-81->80-81/tcp"), then the other mappings
 * ("0.0.0.0:8080->80/tcp", "[::]:8080->80/tcp").
 */
export function displayPorts(ports: PortEntry[]): string {
  const lt = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
  const sorted = [...ports].sort((a, b) => a.PrivatePort - b.PrivatePort || lt(a.IP ?? '', b.IP ?? '') || (a.PublicPort ?? 0) - (b.PublicPort ?? 0) || lt(a.Type, b.Type));
  const groups = new Map<string, { first: number; last: number }>();
  const result: string[] = [];
  const mappings: string[] = [];
  const formGroup = (key: string, first: number, last: number): string => {
    const slash = key.lastIndexOf('/');
    const ip = slash >= 0 ? key.slice(0, slash) : '';
    const type = slash >= 0 ? key.slice(slash + 1) : key;
    let g = first === last ? String(first) : `${first}-${last}`;
    if (ip) g = `${ip}:${g}->${g}`;
    return `${g}/${type}`;
  };
  for (const p of sorted) {
    let key = p.Type;
    if (p.IP) {
      if (p.PublicPort !== p.PrivatePort) {
        mappings.push(`${p.IP.includes(':') ? `[${p.IP}]` : p.IP}:${p.PublicPort ?? 0}->${p.PrivatePort}/${p.Type}`);
        continue;
      }
      key = `${p.IP}/${p.Type}`;
    }
    const g = groups.get(key);
    if (!g) groups.set(key, { first: p.PrivatePort, last: p.PrivatePort });
    else if (p.PrivatePort === g.last + 1) g.last = p.PrivatePort;
    else {
      result.push(formGroup(key, g.first, g.last));
      groups.set(key, { first: p.PrivatePort, last: p.PrivatePort });
    }
  }
  for (const [key, g] of groups) result.push(formGroup(key, g.first, g.last));
  return [...result, ...mappings].join(', ');
}

export class ContainerRow extends FormatContext {
  constructor(private readonly c: ContainerSummary, private readonly trunc: boolean) {
    super();
  }
  headers(): Record<string, string> {
    return {
      ID: 'CONTAINER ID', Image: 'IMAGE', Command: 'COMMAND', CreatedAt: 'CREATED AT', RunningFor: 'CREATED', Ports: 'PORTS', State: 'STATE',
      Status: 'STATUS', Size: 'SIZE', Names: 'NAMES', Labels: 'LABELS', Mounts: 'MOUNTS', Networks: 'NETWORKS', LocalVolumes: 'LOCAL VOLUMES',
    };
  }
  get ID(): string {
    return this.trunc ? shortId(this.c.Id) : this.c.Id;
  }
  get Image(): string {
    const img = this.c.Image || '<no image>';
    return this.trunc && img.startsWith('sha256:') ? shortId(img) : img;
  }
  get Command(): string {
    return JSON.stringify(this.trunc ? ellipsis(this.c.Command, 20) : this.c.Command);
  }
  get CreatedAt(): string {
    return goTimeString(new Date(this.c.Created * 1000));
  }
  get RunningFor(): string {
    return timeAgo(this.c.Created * 1000);
  }
  get Ports(): string {
    return displayPorts(this.c.Ports ?? []);
  }
  get State(): string {
    return this.c.State;
  }
  get Status(): string {
    return this.c.Status;
  }
  get Size(): string {
    if (this.c.SizeRw === undefined && this.c.SizeRootFs === undefined) return '0B';
    return `${humanSize(this.c.SizeRw ?? 0, 3)} (virtual ${humanSize(this.c.SizeRootFs ?? 0, 3)})`;
  }
  get Names(): string {
    const names = (this.c.Names ?? []).map((n) => n.replace(/^\//, ''));
    // Legacy link names ("/other/alias") are shown only with --no-trunc.
    return (this.trunc ? names.filter((n) => !n.includes('/')) : names).join(',');
  }
  get Labels(): string {
    return Object.entries(this.c.Labels ?? {}).sort(([a], [b]) => a.localeCompare(b)).map(([k, val]) => `${k}=${val}`).join(',');
  }
  get Mounts(): string {
    return (this.c.Mounts ?? []).map((m) => {
      const name = m.Name || m.Source || '';
      return this.trunc ? ellipsis(name, 15) : name;
    }).join(',');
  }
  /** {{.Label "key"}}: one label's value. */
  Label(name: string): string {
    return this.c.Labels?.[name] ?? '';
  }
  get Networks(): string {
    return Object.keys(this.c.NetworkSettings?.Networks ?? {}).sort().join(',');
  }
  get LocalVolumes(): string {
    return String((this.c.Mounts ?? []).filter((m) => m.Type === 'volume').length);
  }
}

async function psCmd(ctx: CommandContext, v: Record<string, unknown>): Promise<number> {
  let limit = v.last as number;
  if (v.latest) limit = 1;
  const list = await ctx.client.json<ContainerSummary[]>('GET', '/containers/json', {
    query: { all: v.all || limit > 0 ? '1' : undefined, limit: limit > 0 ? limit : undefined, size: v.size ? '1' : undefined, filters: filtersParam(v.filter as string[]) },
  });
  const rows = (list ?? []).map((c) => new ContainerRow(c, !v['no-trunc']));
  let format = v.format as string | undefined;
  if (v.quiet) format = '{{.ID}}';
  else if (!format || format === 'table') {
    format = 'table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}' + (v.size ? '\t{{.Size}}' : '');
  }
  ctx.out(renderRows(format, rows, () => new ContainerRow({ Id: '', Image: '', Command: '', Created: 0, State: '', Status: '' }, true).headers()));
  return 0;
}

/** --since/--until: a unix timestamp, an RFC 3339 time, or a duration before now ("10m"). */
export function timestampArg(value: string, now = Date.now()): string {
  if (/^\d+(\.\d+)?$/.test(value)) return value;
  if (/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(value)) return String((now - parseDurationNs(value) / 1e6) / 1000);
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw new UsageError(`invalid value for "since": failed to parse value as time or duration: "${value}"`);
  return String(t / 1000);
}

async function logsCmd(ctx: CommandContext, v: Record<string, unknown>, name: string): Promise<number> {
  const c = await inspectContainer(ctx, name);
  const res = await ctx.client.request('GET', `/containers/${enc(c.Id)}/logs`, {
    query: {
      stdout: '1', stderr: '1', follow: v.follow ? '1' : undefined, timestamps: v.timestamps ? '1' : undefined, details: v.details ? '1' : undefined,
      since: v.since ? timestampArg(v.since as string) : undefined, until: v.until ? timestampArg(v.until as string) : undefined, tail: (v.tail as string) || 'all',
    },
  });
  if (c.Config.Tty) {
    await new Promise<void>((resolve, reject) => {
      res.on('end', resolve);
      res.on('error', reject);
      res.pipe(ctx.io.stdout, { end: false });
    });
  } else await demuxStream(res, ctx.io.stdout, ctx.io.stderr);
  return 0;
}

async function attachCmd(ctx: CommandContext, v: Record<string, unknown>, name: string): Promise<number> {
  const c = await inspectContainer(ctx, name);
  if (!c.State.Running) throw new Error('You cannot attach to a stopped container, start it first');
  if (c.State.Paused) throw new Error('You cannot attach to a paused container, unpause it first');
  if (c.State.Restarting) throw new Error('You cannot attach to a restarting container, wait until it is running');
  const stdin = c.Config.OpenStdin && !v['no-stdin'];
  if (stdin && c.Config.Tty && !ctx.io.stdin.isTTY) throw new Error('the input device is not a TTY');
  const hijacked = await ctx.client.hijack('POST', `/containers/${enc(c.Id)}/attach`, {
    query: { stream: '1', stdin: stdin ? '1' : undefined, stdout: '1', stderr: '1', detachKeys: (v['detach-keys'] as string) || undefined },
  });
  const stopResize = c.Config.Tty ? monitorTtySize(ctx, `/containers/${enc(c.Id)}/resize`) : () => {};
  const stopSignals = !c.Config.Tty && v['sig-proxy'] !== false ? proxySignals(ctx, c.Id) : () => {};
  let detached: boolean;
  try {
    ({ detached } = await pumpHijacked(ctx, hijacked, { tty: c.Config.Tty, stdin, detachKeys: v['detach-keys'] as string | undefined }));
  } finally {
    stopResize();
    stopSignals();
  }
  if (detached) return 0;
  // The stream ended with the container: its exit status is ours (not-running answers at once
  // for a container that has already stopped).
  const r = await ctx.client.json<WaitResult>('POST', `/containers/${enc(c.Id)}/wait`, { query: { condition: 'not-running' } }).catch(() => undefined);
  return r?.StatusCode ?? 0;
}

async function execCmd(ctx: CommandContext, v: Record<string, unknown>, args: string[]): Promise<number> {
  const [container, ...cmd] = args;
  const tty = Boolean(v.tty);
  const detach = Boolean(v.detach);
  const stdin = Boolean(v.interactive) && !detach;
  if (tty && stdin && !ctx.io.stdin.isTTY) throw new Error('the input device is not a TTY');
  const created = await ctx.client.json<{ Id: string }>('POST', `/containers/${enc(container)}/exec`, {
    body: {
      User: (v.user as string) || '',
      Privileged: Boolean(v.privileged),
      Tty: tty,
      AttachStdin: stdin,
      AttachStderr: !detach,
      AttachStdout: !detach,
      Detach: detach,
      DetachKeys: (v['detach-keys'] as string) || '',
      Env: parseEnv(v.env as string[], v['env-file'] as string[], ctx.io.env),
      WorkingDir: (v.workdir as string) || '',
      Cmd: cmd,
    },
  });
  if (detach) {
    await ctx.client.call('POST', `/exec/${enc(created.Id)}/start`, { body: { Detach: true, Tty: tty } });
    return 0;
  }
  const hijacked = await ctx.client.hijack('POST', `/exec/${enc(created.Id)}/start`, { body: { Detach: false, Tty: tty } });
  const stopResize = tty ? monitorTtySize(ctx, `/exec/${enc(created.Id)}/resize`) : () => {};
  try {
    await pumpHijacked(ctx, hijacked, { tty, stdin });
  } finally {
    stopResize();
  }
  // The exit code is recorded just after the stream closes; poll briefly for it.
  for (let i = 0; i < 50; i++) {
    const info = await ctx.client.json<{ Running: boolean; ExitCode: number | null }>('GET', `/exec/${enc(created.Id)}/json`);
    if (!info.Running && info.ExitCode !== null) return info.ExitCode;
    await delay(20 * (i < 10 ? 1 : 5), undefined);
  }
  return 0;
}

async function topCmd(ctx: CommandContext, container: string, psArgs: string[]): Promise<number> {
  const r = await ctx.client.json<{ Titles: string[]; Processes: string[][] }>('GET', `/containers/${enc(container)}/top`, { query: { ps_args: psArgs.length ? psArgs.join(' ') : undefined } });
  let t = r.Titles.join('\t') + '\n';
  for (const p of r.Processes ?? []) t += p.join('\t') + '\n';
  ctx.out(tabwrite(t, { minwidth: 20, padding: 1 }));
  return 0;
}

async function diffCmd(ctx: CommandContext, container: string): Promise<number> {
  const changes = await ctx.client.json<{ Path: string; Kind: number }[] | null>('GET', `/containers/${enc(container)}/changes`);
  for (const ch of changes ?? []) ctx.out(`${['C', 'A', 'D'][ch.Kind] ?? '?'} ${ch.Path}\n`);
  return 0;
}

async function exportCmd(ctx: CommandContext, v: Record<string, unknown>, container: string): Promise<number> {
  const output = v.output as string | undefined;
  if (!output && ctx.io.stdout.isTTY) throw new Error('cowardly refusing to save to a terminal. Use the -o flag or redirect');
  const res = await ctx.client.request('GET', `/containers/${enc(container)}/export`);
  const tmp = output ? `${output}.berth-tmp-${process.pid}` : undefined;
  const dst = tmp ? fs.createWriteStream(tmp) : ctx.io.stdout;
  try {
    await new Promise<void>((resolve, reject) => {
      res.on('error', reject);
      if (tmp) {
        dst.on('error', reject);
        dst.on('finish', resolve);
        res.pipe(dst);
      } else {
        res.on('end', resolve);
        res.pipe(dst, { end: false });
      }
    });
    if (tmp) fs.renameSync(tmp, output!);
  } catch (e) {
    if (tmp) fs.rmSync(tmp, { force: true });
    throw e;
  }
  return 0;
}

async function commitCmd(ctx: CommandContext, v: Record<string, unknown>, args: string[]): Promise<number> {
  const [container, ref] = args;
  let repo: string | undefined;
  let tag: string | undefined;
  if (ref) ({ repo, tag } = splitReference(ref, ''));
  const r = await ctx.client.json<{ Id: string }>('POST', '/commit', {
    query: { container, repo, tag: tag || undefined, comment: (v.message as string) || undefined, author: (v.author as string) || undefined, pause: v.pause === false ? '0' : '1', changes: v.change as string[] },
    body: {},
  });
  ctx.out(`${r.Id}\n`);
  return 0;
}

async function portCmd(ctx: CommandContext, container: string, want: string | undefined): Promise<number> {
  const c = await ctx.client.json<{ NetworkSettings?: { Ports?: Record<string, { HostIp: string; HostPort: string }[] | null> } }>('GET', `/containers/${enc(container)}/json`);
  const ports = c.NetworkSettings?.Ports ?? {};
  const fmt = (b: { HostIp: string; HostPort: string }): string => `${b.HostIp.includes(':') ? `[${b.HostIp}]` : b.HostIp}:${b.HostPort}`;
  if (want) {
    const key = want.includes('/') ? want : `${want}/tcp`;
    const b = ports[key];
    if (!b || b.length === 0) throw new Error(`Error: No public port '${key}' published for ${container}`);
    for (const x of b) ctx.out(`${fmt(x)}\n`);
    return 0;
  }
  for (const key of Object.keys(ports).sort((a, b) => parseInt(a) - parseInt(b))) for (const x of ports[key] ?? []) ctx.out(`${key} -> ${fmt(x)}\n`);
  return 0;
}

async function containerPruneCmd(ctx: CommandContext, v: Record<string, unknown>): Promise<number> {
  if (!v.force && !(await confirm(ctx, 'WARNING! This will remove all stopped containers.'))) return 0;
  const r = await ctx.client.json<{ ContainersDeleted?: string[] | null; SpaceReclaimed?: number }>('POST', '/containers/prune', { query: { filters: filtersParam(v.filter as string[]) } });
  let out = '';
  if (r.ContainersDeleted?.length) out += `Deleted Containers:\n${r.ContainersDeleted.join('\n')}\n\n`;
  ctx.out(`${out}Total reclaimed space: ${humanSize(r.SpaceReclaimed ?? 0, 4)}\n`);
  return 0;
}

function containerInspectCmd(ctx: CommandContext, v: Record<string, unknown>, names: string[]): Promise<number> {
  const get = (n: string): Promise<unknown> => ctx.client.json('GET', `/containers/${enc(n)}/json`, { query: { size: v.size ? '1' : undefined } });
  return inspectEach(ctx, names, get, (found) => printInspect(ctx, found, v.format as string | undefined));
}

const timeoutFlag: CliFlag = { name: 'timeout', short: 't', type: 'int', description: 'Seconds to wait before killing the container' };
const signalFlag: CliFlag = { name: 'signal', short: 's', type: 'string', description: 'Signal to send to the container' };

export function containerCommands(): CommandSpec[] {
  return [
    {
      paths: [['container', 'run'], ['run']],
      usage: '[OPTIONS] IMAGE [COMMAND] [ARG...]',
      description: 'Create and run a new container from an image',
      flags: RUN_FLAGS,
      args: { min: 1 },
      interspersed: false,
      errorExit: 125,
      run: async (ctx, f) => {
        try {
          return await runCmd(ctx, f.values, f.args);
        } catch (e) {
          if (e instanceof StatusError) {
            ctx.err(`${e.message}\n`);
            return e.status;
          }
          throw e;
        }
      },
    },
    {
      paths: [['container', 'create'], ['create']],
      usage: '[OPTIONS] IMAGE [COMMAND] [ARG...]',
      description: 'Create a new container',
      flags: RUN_FLAGS.filter((fl) => !RUN_ONLY.has(fl.name)),
      args: { min: 1 },
      interspersed: false,
      errorExit: 125,
      run: (ctx, f) => createCmd(ctx, f.values, f.args),
    },
    {
      paths: [['container', 'start'], ['start']],
      usage: '[OPTIONS] CONTAINER [CONTAINER...]',
      description: 'Start one or more stopped containers',
      flags: [
        { name: 'attach', short: 'a', type: 'bool', description: 'Attach STDOUT/STDERR and forward signals' },
        { name: 'detach-keys', type: 'string', description: 'Override the key sequence for detaching a container' },
        { name: 'interactive', short: 'i', type: 'bool', description: "Attach container's STDIN" },
      ],
      args: { min: 1 },
      run: (ctx, f) => startCmd(ctx, f.values, f.args),
    },
    {
      paths: [['container', 'stop'], ['stop']],
      usage: '[OPTIONS] CONTAINER [CONTAINER...]',
      description: 'Stop one or more running containers',
      flags: [signalFlag, timeoutFlag],
      args: { min: 1 },
      run: (ctx, f) => forEachName(ctx, f.args, async (n) => {
        await ctx.client.call('POST', `/containers/${enc(n)}/stop`, { query: stopQuery(f.values) });
        ctx.out(`${n}\n`);
      }),
    },
    {
      paths: [['container', 'restart'], ['restart']],
      usage: '[OPTIONS] CONTAINER [CONTAINER...]',
      description: 'Restart one or more containers',
      flags: [signalFlag, timeoutFlag],
      args: { min: 1 },
      run: (ctx, f) => forEachName(ctx, f.args, async (n) => {
        await ctx.client.call('POST', `/containers/${enc(n)}/restart`, { query: stopQuery(f.values) });
        ctx.out(`${n}\n`);
      }),
    },
    {
      paths: [['container', 'kill'], ['kill']],
      usage: '[OPTIONS] CONTAINER [CONTAINER...]',
      description: 'Kill one or more running containers',
      flags: [{ name: 'signal', short: 's', type: 'string', description: 'Signal to send to the container' }],
      args: { min: 1 },
      run: (ctx, f) => forEachName(ctx, f.args, async (n) => {
        await ctx.client.call('POST', `/containers/${enc(n)}/kill`, { query: { signal: (f.values.signal as string) || undefined } });
        ctx.out(`${n}\n`);
      }),
    },
    {
      paths: [['container', 'wait'], ['wait']],
      usage: 'CONTAINER [CONTAINER...]',
      description: 'Block until one or more containers stop, then print their exit codes',
      flags: [],
      args: { min: 1 },
      run: (ctx, f) => forEachName(ctx, f.args, async (n) => {
        const r = await ctx.client.json<{ StatusCode: number }>('POST', `/containers/${enc(n)}/wait`);
        ctx.out(`${r.StatusCode}\n`);
      }),
    },
    {
      paths: [['container', 'rm'], ['container', 'remove'], ['rm']],
      usage: '[OPTIONS] CONTAINER [CONTAINER...]',
      description: 'Remove one or more containers',
      flags: [
        { name: 'force', short: 'f', type: 'bool', description: 'Force the removal of a running container (uses SIGKILL)' },
        { name: 'link', short: 'l', type: 'bool', description: 'Remove the specified link' },
        { name: 'volumes', short: 'v', type: 'bool', description: 'Remove anonymous volumes associated with the container' },
      ],
      args: { min: 1 },
      run: (ctx, f) => forEachName(ctx, f.args, async (n) => {
        await ctx.client.call('DELETE', `/containers/${enc(n)}`, { query: { force: f.values.force ? '1' : undefined, v: f.values.volumes ? '1' : undefined, link: f.values.link ? '1' : undefined } });
        ctx.out(`${n}\n`);
      }),
    },
    {
      paths: [['container', 'ls'], ['container', 'list'], ['container', 'ps'], ['ps']],
      usage: '[OPTIONS]',
      description: 'List containers',
      flags: [
        { name: 'all', short: 'a', type: 'bool', description: 'Show all containers (default shows just running)' },
        { name: 'filter', short: 'f', type: 'list', typeName: 'filter', description: 'Filter output based on conditions provided' },
        formatFlag(true, false),
        { name: 'last', short: 'n', type: 'int', default: -1, description: 'Show n last created containers (includes all states)' },
        { name: 'latest', short: 'l', type: 'bool', description: 'Show the latest created container (includes all states)' },
        { name: 'no-trunc', type: 'bool', description: "Don't truncate output" },
        { name: 'quiet', short: 'q', type: 'bool', description: 'Only display container IDs' },
        { name: 'size', short: 's', type: 'bool', description: 'Display total file sizes' },
      ],
      args: { exact: 0 },
      run: (ctx, f) => psCmd(ctx, f.values),
    },
    {
      paths: [['container', 'logs'], ['logs']],
      usage: '[OPTIONS] CONTAINER',
      description: 'Fetch the logs of a container',
      flags: [
        { name: 'details', type: 'bool', description: 'Show extra details provided to logs' },
        { name: 'follow', short: 'f', type: 'bool', description: 'Follow log output' },
        { name: 'since', type: 'string', description: 'Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)' },
        { name: 'tail', short: 'n', type: 'string', default: 'all', description: 'Number of lines to show from the end of the logs' },
        { name: 'timestamps', short: 't', type: 'bool', description: 'Show timestamps' },
        { name: 'until', type: 'string', description: 'Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)' },
      ],
      args: { exact: 1 },
      run: (ctx, f) => logsCmd(ctx, f.values, f.args[0]),
    },
    {
      paths: [['container', 'attach'], ['attach']],
      usage: '[OPTIONS] CONTAINER',
      description: 'Attach local standard input, output, and error streams to a running container',
      flags: [
        { name: 'detach-keys', type: 'string', description: 'Override the key sequence for detaching a container' },
        { name: 'no-stdin', type: 'bool', description: 'Do not attach STDIN' },
        { name: 'sig-proxy', type: 'bool', default: true, description: 'Proxy all received signals to the process' },
      ],
      args: { exact: 1 },
      run: (ctx, f) => attachCmd(ctx, f.values, f.args[0]),
    },
    {
      paths: [['container', 'exec'], ['exec']],
      usage: '[OPTIONS] CONTAINER COMMAND [ARG...]',
      description: 'Execute a command in a running container',
      flags: [
        { name: 'detach', short: 'd', type: 'bool', description: 'Detached mode: run command in the background' },
        { name: 'detach-keys', type: 'string', description: 'Override the key sequence for detaching a container' },
        { name: 'env', short: 'e', type: 'list', description: 'Set environment variables' },
        { name: 'env-file', type: 'list', description: 'Read in a file of environment variables' },
        { name: 'interactive', short: 'i', type: 'bool', description: 'Keep STDIN open even if not attached' },
        { name: 'privileged', type: 'bool', description: 'Give extended privileges to the command' },
        { name: 'tty', short: 't', type: 'bool', description: 'Allocate a pseudo-TTY' },
        { name: 'user', short: 'u', type: 'string', description: 'Username or UID (format: "<name|uid>[:<group|gid>]")' },
        { name: 'workdir', short: 'w', type: 'string', description: 'Working directory inside the container' },
      ],
      args: { min: 2 },
      interspersed: false,
      run: (ctx, f) => execCmd(ctx, f.values, f.args),
    },
    {
      paths: [['container', 'top'], ['top']],
      usage: 'CONTAINER [ps OPTIONS]',
      description: 'Display the running processes of a container',
      flags: [],
      args: { min: 1 },
      interspersed: false,
      run: (ctx, f) => topCmd(ctx, f.args[0], f.args.slice(1)),
    },
    {
      paths: [['container', 'inspect']],
      usage: '[OPTIONS] CONTAINER [CONTAINER...]',
      description: 'Display detailed information on one or more containers',
      flags: [formatFlag(false), { name: 'size', short: 's', type: 'bool', description: 'Display total file sizes' }],
      args: { min: 1 },
      run: (ctx, f) => containerInspectCmd(ctx, f.values, f.args),
    },
    {
      paths: [['container', 'pause'], ['pause']],
      usage: 'CONTAINER [CONTAINER...]',
      description: 'Pause all processes within one or more containers',
      flags: [],
      args: { min: 1 },
      run: (ctx, f) => forEachName(ctx, f.args, async (n) => {
        await ctx.client.call('POST', `/containers/${enc(n)}/pause`);
        ctx.out(`${n}\n`);
      }),
    },
    {
      paths: [['container', 'unpause'], ['unpause']],
      usage: 'CONTAINER [CONTAINER...]',
      description: 'Unpause all processes within one or more containers',
      flags: [],
      args: { min: 1 },
      run: (ctx, f) => forEachName(ctx, f.args, async (n) => {
        await ctx.client.call('POST', `/containers/${enc(n)}/unpause`);
        ctx.out(`${n}\n`);
      }),
    },
    {
      paths: [['container', 'rename'], ['rename']],
      usage: 'CONTAINER NEW_NAME',
      description: 'Rename a container',
      flags: [],
      args: { exact: 2 },
      run: async (ctx, f) => {
        const newName = f.args[1].trim().replace(/^\//, '');
        if (!newName) throw new Error('Error: Neither old nor new names may be empty');
        await ctx.client.call('POST', `/containers/${enc(f.args[0])}/rename`, { query: { name: newName } });
        return 0;
      },
    },
    {
      paths: [['container', 'diff'], ['diff']],
      usage: 'CONTAINER',
      description: "Inspect changes to files or directories on a container's filesystem",
      flags: [],
      args: { exact: 1 },
      run: (ctx, f) => diffCmd(ctx, f.args[0]),
    },
    {
      paths: [['container', 'export'], ['export']],
      usage: '[OPTIONS] CONTAINER',
      description: "Export a container's filesystem as a tar archive",
      flags: [{ name: 'output', short: 'o', type: 'string', description: 'Write to a file, instead of STDOUT' }],
      args: { exact: 1 },
      run: (ctx, f) => exportCmd(ctx, f.values, f.args[0]),
    },
    {
      paths: [['container', 'commit'], ['commit']],
      usage: '[OPTIONS] CONTAINER [REPOSITORY[:TAG]]',
      description: "Create a new image from a container's changes",
      flags: [
        { name: 'author', short: 'a', type: 'string', description: 'Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")' },
        { name: 'change', short: 'c', type: 'list', description: 'Apply Dockerfile instruction to the created image' },
        { name: 'message', short: 'm', type: 'string', description: 'Commit message' },
        { name: 'pause', short: 'p', type: 'bool', default: true, description: 'Pause container during commit' },
      ],
      args: { min: 1, max: 2 },
      run: (ctx, f) => commitCmd(ctx, f.values, f.args),
    },
    {
      paths: [['container', 'port'], ['port']],
      usage: 'CONTAINER [PRIVATE_PORT[/PROTO]]',
      description: 'List port mappings or a specific mapping for the container',
      flags: [],
      args: { min: 1, max: 2 },
      run: (ctx, f) => portCmd(ctx, f.args[0], f.args[1]),
    },
    {
      paths: [['container', 'prune']],
      usage: '[OPTIONS]',
      description: 'Remove all stopped containers',
      flags: [
        { name: 'filter', type: 'list', typeName: 'filter', description: 'Provide filter values (e.g. "until=<timestamp>")' },
        { name: 'force', short: 'f', type: 'bool', description: 'Do not prompt for confirmation' },
      ],
      args: { exact: 0 },
      run: (ctx, f) => containerPruneCmd(ctx, f.values),
    },
  ];
}
