// The command model of the berth client: each command declares its paths (canonical first, then
// aliases such as "images" for "image ls"), usage, flags and argument counts; the dispatcher in
// main.ts parses flags with the shared parser and prints docker's usage errors and help.
import type { Readable, Writable } from 'node:stream';
import type { FlagSpec, ParsedFlags } from '../common/flags';
import { ApiClient, UsageError } from './client';

export const PROG = 'berth';

export interface CliFlag extends FlagSpec {
  /** The value name in help ("string", "list", "filter", "int", "duration", ...). */
  typeName?: string;
  hidden?: boolean;
}

export interface CliIO {
  stdin: Readable & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  stdout: Writable & { isTTY?: boolean; columns?: number; rows?: number };
  stderr: Writable;
  env: NodeJS.ProcessEnv;
}

export interface CommandContext {
  io: CliIO;
  /** The daemon address in use (-H, BERTH_HOST, DOCKER_HOST, default). */
  host: string;
  /** Connects lazily, so commands that never talk to the daemon (help, seed's tar) need none. */
  readonly client: ApiClient;
  /** "berth image ls": the path the user typed, for messages. */
  commandPath: string;
  out(s: string): void;
  err(s: string): void;
}

export interface ArgCount {
  min?: number;
  max?: number;
  exact?: number;
}

export interface CommandSpec {
  /** Canonical path first (["image", "ls"]), then aliases (["images"]). */
  paths: string[][];
  usage: string;
  description: string;
  flags: CliFlag[];
  args?: ArgCount;
  /** false for run/exec/create: flags after the first argument belong to the container's command. */
  interspersed?: boolean;
  /** docker exits 125 when run/create fail before the container starts. */
  errorExit?: number;
  run(ctx: CommandContext, f: ParsedFlags): Promise<number | void>;
}

/** A management command group ("image", "container", "system", "registry"). */
export interface GroupSpec {
  name: string;
  description: string;
}

export function contextFor(io: CliIO, host: string, commandPath: string): CommandContext {
  let client: ApiClient | undefined;
  return {
    io,
    host,
    commandPath,
    get client(): ApiClient {
      client ??= new ApiClient(host);
      return client;
    },
    out: (s) => void io.stdout.write(s),
    err: (s) => void io.stderr.write(s),
  };
}

function flagLeft(f: CliFlag): string {
  const type = f.type === 'bool' ? '' : ` ${f.typeName ?? (f.type === 'int' ? 'int' : f.type === 'list' ? 'list' : 'string')}`;
  return `${f.short ? `  -${f.short}, ` : '      '}--${f.name}${type}`;
}

export function formatFlags(flags: CliFlag[]): string {
  const visible = flags.filter((f) => !f.hidden && f.name !== 'help');
  if (visible.length === 0) return '';
  const lefts = visible.map(flagLeft);
  const width = Math.max(...lefts.map((l) => l.length));
  return visible
    .map((f, i) => {
      let desc = f.description ?? '';
      if (f.default !== undefined && f.default !== false && f.default !== '' && !(Array.isArray(f.default) && f.default.length === 0)) {
        desc += ` (default ${typeof f.default === 'string' ? `"${f.default}"` : String(f.default)})`;
      }
      return `${lefts[i].padEnd(width)}   ${desc.split('\n').join('\n' + ' '.repeat(width + 3))}`;
    })
    .join('\n');
}

export function commandHelp(spec: CommandSpec, invoked: string[]): string {
  const lines = [`Usage:  ${PROG} ${invoked.join(' ')} ${spec.usage}`.trimEnd(), '', spec.description, ''];
  if (spec.paths.length > 1) {
    lines.push('Aliases:', `  ${spec.paths.map((p) => `${PROG} ${p.join(' ')}`).join(', ')}`, '');
  }
  const flags = formatFlags(spec.flags);
  if (flags) lines.push('Options:', flags, '');
  return lines.join('\n') + '\n';
}

/** docker's argument-count errors (cli/required.go), with berth's name. */
export function checkArgs(spec: CommandSpec, invoked: string[], args: string[]): void {
  const a = spec.args;
  if (!a) return;
  const name = `${PROG} ${invoked.join(' ')}`;
  const usage = `Usage:  ${name} ${spec.usage}`.trimEnd();
  const plural = (n: number): string => `${n} argument${n === 1 ? '' : 's'}`;
  const fail = (what: string, verb: 'See' | 'Run'): never => {
    throw new ArgCountError(`${PROG}: '${name}' ${what}\n\n${usage}\n\n${verb} '${name} --help' for more information`);
  };
  if (a.exact !== undefined && args.length !== a.exact) {
    if (a.exact === 0) fail('accepts no arguments', 'Run');
    fail(`requires ${plural(a.exact)}`, 'Run');
  }
  if (a.min !== undefined && args.length < a.min) fail(`requires at least ${plural(a.min)}`, 'See');
  if (a.max !== undefined && args.length > a.max) {
    if (a.max === 0) fail('accepts no arguments', 'Run');
    fail(`requires at most ${plural(a.max)}`, 'Run');
  }
}

/** A wrong number of arguments: the message is complete, printed as is, exit 1. */
export class ArgCountError extends UsageError {}

/** The standard --format flag. */
export function formatFlag(table = true, short = true): CliFlag {
  return {
    name: 'format',
    ...(short ? { short: 'f' } : {}),
    type: 'string',
    description: table
      ? "Format output using a custom template:\n'table':            Print output in table format with column headers (default)\n'table TEMPLATE':   Print output in table format using the given Go template\n'json':             Print in JSON format\n'TEMPLATE':         Print output using the given Go template"
      : "Format output using a custom template:\n'json':             Print in JSON format\n'TEMPLATE':         Print output using the given Go template",
  };
}
