// Volume commands: volume create / ls / inspect / rm / prune, laid out as docker 28 prints them.
import { parseKeyValues } from '../../common/flags';
import { filtersParam } from '../client';
import { formatFlag, type CommandContext, type CommandSpec } from '../command';
import { FormatContext, humanSize, renderRows } from '../format';
import { confirm, forEachName, inspectEach } from './common';
import { printInspect } from './images';
import { joinLabels, naturalLess, sortMapKeys } from './network';

const enc = encodeURIComponent;

interface Volume {
  Name: string;
  Driver: string;
  Mountpoint: string;
  Scope?: string;
  Labels?: Record<string, string> | null;
  UsageData?: { Size: number; RefCount: number } | null;
}

export class VolumeRow extends FormatContext {
  constructor(private readonly vol: Volume) {
    super();
  }
  headers(): Record<string, string> {
    return { Name: 'VOLUME NAME', Driver: 'DRIVER', Scope: 'SCOPE', Mountpoint: 'MOUNTPOINT', Labels: 'LABELS', Links: 'LINKS', Size: 'SIZE', Group: 'GROUP', Availability: 'AVAILABILITY', Status: 'STATUS' };
  }
  get Name(): string {
    return this.vol.Name;
  }
  get Driver(): string {
    return this.vol.Driver;
  }
  get Scope(): string {
    return this.vol.Scope ?? 'local';
  }
  get Mountpoint(): string {
    return this.vol.Mountpoint;
  }
  get Labels(): string {
    return joinLabels(this.vol.Labels);
  }
  Label(name: string): string {
    return this.vol.Labels?.[name] ?? '';
  }
  get Links(): string {
    return this.vol.UsageData ? String(this.vol.UsageData.RefCount) : 'N/A';
  }
  get Size(): string {
    return this.vol.UsageData && this.vol.UsageData.Size >= 0 ? humanSize(this.vol.UsageData.Size, 3) : 'N/A';
  }
  get Group(): string {
    return 'N/A';
  }
  get Availability(): string {
    return 'N/A';
  }
  get Status(): string {
    return 'N/A';
  }
}

async function lsCmd(ctx: CommandContext, v: Record<string, unknown>): Promise<number> {
  const r = await ctx.client.json<{ Volumes?: Volume[] | null; Warnings?: string[] | null }>('GET', '/volumes', { query: { filters: filtersParam(v.filter as string[]) } });
  const vols = r.Volumes ?? [];
  vols.sort((a, b) => naturalLess(a.Name, b.Name));
  const rows = vols.map((x) => new VolumeRow(x));
  let format = v.format as string | undefined;
  if (v.quiet) format = '{{.Name}}';
  else if (!format || format === 'table') format = 'table {{.Driver}}\t{{.Name}}';
  ctx.out(renderRows(format, rows, () => new VolumeRow({ Name: '', Driver: '', Mountpoint: '' }).headers()));
  for (const w of r.Warnings ?? []) ctx.err(`${w}\n`);
  return 0;
}

async function createCmd(ctx: CommandContext, v: Record<string, unknown>, args: string[]): Promise<number> {
  let name = (v.name as string | undefined) ?? '';
  if (args[0]) {
    if (name && name !== args[0]) throw new Error(`conflicting options: cannot specify a volume-name through both --name and as a positional arg`);
    name = args[0];
  }
  const body = { Name: name, Driver: v.driver as string, DriverOpts: parseKeyValues(v.opt as string[], 'opt'), Labels: parseKeyValues(v.label as string[]) };
  const vol = await ctx.client.json<Volume>('POST', '/volumes/create', { body });
  ctx.out(`${vol.Name}\n`);
  return 0;
}

function inspectCmd(ctx: CommandContext, v: Record<string, unknown>, names: string[]): Promise<number> {
  return inspectEach(ctx, names, async (n) => sortMapKeys(await ctx.client.json('GET', `/volumes/${enc(n)}`), [['Labels'], ['Options'], ['Status']]), (found) => printInspect(ctx, found, v.format as string | undefined));
}

function rmCmd(ctx: CommandContext, v: Record<string, unknown>, names: string[]): Promise<number> {
  return forEachName(ctx, names, async (n) => {
    await ctx.client.call('DELETE', `/volumes/${enc(n)}`, { query: { force: v.force ? '1' : undefined } });
    ctx.out(`${n}\n`);
  });
}

async function pruneCmd(ctx: CommandContext, v: Record<string, unknown>): Promise<number> {
  const all = Boolean(v.all);
  const warning = all
    ? 'WARNING! This will remove all local volumes not used by at least one container.'
    : 'WARNING! This will remove anonymous local volumes not used by at least one container.';
  if (!v.force && !(await confirm(ctx, warning))) return 0;
  const filters = [...(v.filter as string[])];
  if (all) filters.push('all=true');
  const r = await ctx.client.json<{ VolumesDeleted?: string[] | null; SpaceReclaimed?: number }>('POST', '/volumes/prune', { query: { filters: filtersParam(filters) } });
  const deleted = r.VolumesDeleted ?? [];
  let out = '';
  if (deleted.length) out += `Deleted Volumes:\n${deleted.map((d) => `${d}\n`).join('')}\n`;
  ctx.out(`${out}Total reclaimed space: ${humanSize(r.SpaceReclaimed ?? 0, 4)}\n`);
  return 0;
}

export function volumeCommands(): CommandSpec[] {
  return [
    {
      paths: [['volume', 'create']],
      usage: '[OPTIONS] [VOLUME]',
      description: 'Create a volume',
      flags: [
        { name: 'driver', short: 'd', type: 'string', default: 'local', description: 'Specify volume driver name' },
        { name: 'label', type: 'list', description: 'Set metadata for a volume' },
        { name: 'name', type: 'string', description: 'Specify volume name', hidden: true },
        { name: 'opt', short: 'o', type: 'list', typeName: 'map', description: 'Set driver specific options' },
      ],
      args: { max: 1 },
      run: (ctx, f) => createCmd(ctx, f.values, f.args),
    },
    {
      paths: [['volume', 'ls'], ['volume', 'list']],
      usage: '[OPTIONS]',
      description: 'List volumes',
      flags: [
        { name: 'cluster', type: 'bool', description: 'Display only cluster volumes, and use cluster volume list formatting', hidden: true },
        { name: 'filter', short: 'f', type: 'list', typeName: 'filter', description: 'Provide filter values (e.g. "dangling=true")' },
        formatFlag(true, false),
        { name: 'quiet', short: 'q', type: 'bool', description: 'Only display volume names' },
      ],
      args: { exact: 0 },
      run: (ctx, f) => lsCmd(ctx, f.values),
    },
    {
      paths: [['volume', 'inspect']],
      usage: '[OPTIONS] VOLUME [VOLUME...]',
      description: 'Display detailed information on one or more volumes',
      flags: [formatFlag(false)],
      args: { min: 1 },
      run: (ctx, f) => inspectCmd(ctx, f.values, f.args),
    },
    {
      paths: [['volume', 'rm'], ['volume', 'remove']],
      usage: '[OPTIONS] VOLUME [VOLUME...]',
      description: 'Remove one or more volumes',
      flags: [{ name: 'force', short: 'f', type: 'bool', description: 'Force the removal of one or more volumes' }],
      args: { min: 1 },
      run: (ctx, f) => rmCmd(ctx, f.values, f.args),
    },
    {
      paths: [['volume', 'prune']],
      usage: '[OPTIONS]',
      description: 'Remove unused local volumes',
      flags: [
        { name: 'all', short: 'a', type: 'bool', description: 'Remove all unused volumes, not just anonymous ones' },
        { name: 'filter', type: 'list', typeName: 'filter', description: 'Provide filter values (e.g. "label=<label>")' },
        { name: 'force', short: 'f', type: 'bool', description: 'Do not prompt for confirmation' },
      ],
      args: { exact: 0 },
      run: (ctx, f) => pruneCmd(ctx, f.values),
    },
  ];
}
