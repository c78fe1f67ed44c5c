// berth: the docker-style command-line client of berthd. Global flags, command lookup (management
// groups such as "image ls" and their top-level aliases such as "images"), help, and the mapping
// of errors to docker's messages and exit codes.
import { FlagError, parseFlags, type ParsedFlags } from '../common/flags';
import { ConnectError, DaemonError, resolveHost, StreamError, UsageError } from './client';
import { ArgCountError, checkArgs, commandHelp, contextFor, formatFlags, PROG, type CliFlag, type CliIO, type CommandSpec, type GroupSpec } from './command';
import { TemplateError } from './format';
import { systemCommands } from './commands/system';
import { imageCommands } from './commands/images';
import { containerCommands } from './commands/containers';
import { networkCommands } from './commands/network';
import { volumeCommands } from './commands/volume';
import { registryClientCommands } from './commands/registry-client';
import { buildCommands } from './commands/build';
import { cpCommands } from './commands/cp';
import { statsCommands } from './commands/stats';

export const CLIENT_VERSION = '0.1.0';

const GLOBAL_FLAGS: CliFlag[] = [
  { name: 'config', type: 'string', description: 'Location of client config files' },
  { name: 'context', short: 'c', type: 'string', description: 'Name of the context to use to connect to the daemon' },
  { name: 'debug', short: 'D', type: 'bool', description: 'Enable debug mode' },
  { name: 'host', short: 'H', type: 'string', typeName: 'list', description: 'Daemon socket to connect to' },
  { name: 'log-level', short: 'l', type: 'string', description: 'Set the logging level ("debug"|"info"|"warn"|"error"|"fatal")', default: 'info' },
  { name: 'help', short: 'h', type: 'bool', description: 'Print usage' },
  { name: 'version', short: 'v', type: 'bool', description: 'Print version information and quit' },
];

export const GROUPS: GroupSpec[] = [
  { name: 'container', description: 'Manage containers' },
  { name: 'image', description: 'Manage images' },
  { name: 'network', description: 'Manage networks' },
  { name: 'registry', description: 'Run and maintain an image registry' },
  { name: 'system', description: 'Manage berth' },
  { name: 'volume', description: 'Manage volumes' },
];

/** Exit with a code and an optional message (printed to stderr), as docker's StatusError. */
export class ExitError extends Error {
  constructor(readonly code: number, message = '') {
    super(message);
  }
}

export function allCommands(): CommandSpec[] {
  return [
    ...systemCommands(), ...imageCommands(), ...containerCommands(), ...networkCommands(), ...volumeCommands(),
    ...registryClientCommands(), ...buildCommands(), ...cpCommands(), ...statsCommands(),
  ];
}

/** The command whose path matches the most leading words of argv. */
export function findCommand(commands: CommandSpec[], argv: string[]): { spec: CommandSpec; invoked: string[] } | undefined {
  let best: { spec: CommandSpec; invoked: string[] } | undefined;
  for (const spec of commands) {
    for (const p of spec.paths) {
      if (p.length <= argv.length && p.every((w, i) => argv[i] === w) && (!best || p.length > best.invoked.length)) {
        best = { spec, invoked: p };
      }
    }
  }
  return best;
}

/** A command's line in a list: the first line of its description, as docker lists its Short text. */
function shortDescription(description: string): string {
  return description.split('\n')[0].replace(/\.$/, '');
}

function topHelp(commands: CommandSpec[]): string {
  const lines = [`Usage:  ${PROG} [OPTIONS] COMMAND`, '', 'A self-sufficient runtime for containers', '', 'Management Commands:'];
  for (const g of GROUPS) lines.push(`  ${g.name.padEnd(11)} ${g.description}`);
  lines.push('', 'Commands:');
  const top = commands.flatMap((c) => c.paths.filter((p) => p.length === 1).map((p) => [p[0], shortDescription(c.description)] as const));
  for (const [name, desc] of top.sort((a, b) => a[0].localeCompare(b[0]))) lines.push(`  ${name.padEnd(11)} ${desc}`);
  lines.push('', 'Global Options:', formatFlags(GLOBAL_FLAGS.filter((f) => f.name !== 'help')), '', `Run '${PROG} COMMAND --help' for more information on a command.`, '');
  return lines.join('\n');
}

function groupHelp(group: GroupSpec, commands: CommandSpec[]): string {
  const subs = commands.flatMap((c) => c.paths.filter((p) => p.length === 2 && p[0] === group.name).slice(0, 1).map((p) => [p[1], shortDescription(c.description)] as const));
  const lines = [`Usage:  ${PROG} ${group.name} COMMAND`, '', group.description, '', 'Commands:'];
  for (const [name, desc] of subs.sort((a, b) => a[0].localeCompare(b[0]))) lines.push(`  ${name.padEnd(11)} ${desc}`);
  lines.push('', `Run '${PROG} ${group.name} COMMAND --help' for more information on a command.`, '');
  return lines.join('\n');
}

function processIO(): CliIO {
  return { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env };
}

/** Runs one berth invocation against the given streams and returns its exit code. */
export async function runCli(argv: string[], io: CliIO = processIO()): Promise<number> {
  const err = (s: string): void => void io.stderr.write(s);
  let global: ParsedFlags;
  try {
    global = parseFlags(argv, GLOBAL_FLAGS, false);
  } catch (e) {
    err(`${(e as Error).message}\n\nUsage:  ${PROG} [OPTIONS] COMMAND\n\nRun '${PROG} --help' for more information\n`);
    return 125;
  }
  // --config names the client config directory, as BERTH_CONFIG does.
  if (global.values.config) io = { ...io, env: { ...io.env, BERTH_CONFIG: global.values.config as string } };
  const commands = allCommands();
  const rest = global.args;
  if (global.values.version) {
    io.stdout.write(`berth version ${CLIENT_VERSION}\n`);
    return 0;
  }
  if (rest.length === 0 || global.values.help) {
    io.stdout.write(topHelp(commands));
    return 0;
  }
  if (rest[0] === 'help') {
    const found = findCommand(commands, rest.slice(1));
    io.stdout.write(found ? commandHelp(found.spec, found.invoked) : topHelp(commands));
    return 0;
  }
  const host = resolveHost(global.values.host as string | undefined, io.env);

  if (rest[0] === 'registry') {
    // Loaded on demand, so that a broken registry module cannot break the rest of the client.
    try {
      const mod = require('../registry/cli') as { registryMain(argv: string[]): Promise<number> };
      return await mod.registryMain(rest.slice(1));
    } catch (e) {
      err(`${PROG}: ${(e as Error).message}\n`);
      return 1;
    }
  }

  const found = findCommand(commands, rest);
  if (!found) {
    const group = GROUPS.find((g) => g.name === rest[0]);
    if (group) {
      if (rest.length === 1 || rest[1] === '--help' || rest[1] === '-h') {
        io.stdout.write(groupHelp(group, commands));
        return 0;
      }
      err(`${PROG}: unknown command: ${PROG} ${group.name} ${rest[1]}\n\nUsage:  ${PROG} ${group.name}\n\nRun '${PROG} ${group.name} --help' for more information\n`);
      return 1;
    }
    err(`${PROG}: unknown command: ${PROG} ${rest[0]}\n\nRun '${PROG} --help' for more information\n`);
    return 1;
  }
  const { spec, invoked } = found;
  const name = `${PROG} ${invoked.join(' ')}`;
  const args = rest.slice(invoked.length);
  const hasShortH = spec.flags.some((f) => f.short === 'h');
  const flagSpecs: CliFlag[] = [...spec.flags, { name: 'help', ...(hasShortH ? {} : { short: 'h' }), type: 'bool', description: 'Print usage' }];
  let parsed: ParsedFlags;
  try {
    parsed = parseFlags(args, flagSpecs, spec.interspersed ?? true);
  } catch (e) {
    if (!(e instanceof FlagError)) throw e;
    // --help anywhere wins over a flag error, as in cobra.
    if (args.includes('--help') || (!hasShortH && args.includes('-h'))) {
      io.stdout.write(commandHelp(spec, invoked));
      return 0;
    }
    err(`${e.message}\n\nUsage:  ${name} ${spec.usage}\n\nRun '${name} --help' for more information\n`.replace(/ +\n/g, '\n'));
    return 125;
  }
  if (parsed.values.help) {
    io.stdout.write(commandHelp(spec, invoked));
    return 0;
  }
  const ctx = contextFor(io, host, name);
  try {
    checkArgs(spec, invoked, parsed.args);
    const code = await spec.run(ctx, parsed);
    return code ?? 0;
  } catch (e) {
    return reportError(e, spec, name, io);
  }
}

function reportError(e: unknown, spec: CommandSpec, name: string, io: CliIO): number {
  const err = (s: string): void => void io.stderr.write(s);
  if (e instanceof ExitError) {
    if (e.message) err(`${e.message}\n`);
    return e.code;
  }
  if (e instanceof ArgCountError) {
    err(`${e.message}\n`);
    return 1;
  }
  let message: string;
  if (e instanceof DaemonError) message = `Error response from daemon: ${e.message}`;
  else if (e instanceof ConnectError || e instanceof StreamError || e instanceof TemplateError) message = e.message;
  else if (e instanceof UsageError) {
    err(`${PROG}: ${e.message}\n\nRun '${name} --help' for more information\n`);
    return spec.errorExit ?? 125;
  } else if (e instanceof Error) message = e.message;
  else message = String(e);
  if (spec.errorExit !== undefined) {
    err(`${PROG}: ${message}\n\nRun '${name} --help' for more information\n`);
    return spec.errorExit;
  }
  err(`${message}\n`);
  return 1;
}

/** The entry point bin/berth calls: runs the command, then exits once output is flushed. */
export function main(argv: string[]): void {
  runCli(argv).then(
    (code) => exitAfterFlush(code),
    (e: unknown) => {
      process.stderr.write(`${PROG}: ${(e as Error)?.stack ?? String(e)}\n`);
      exitAfterFlush(1);
    },
  );
}

function exitAfterFlush(code: number): void {
  // Open stdin (attach, -i) would keep the process alive: exit explicitly once stdout drained.
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}
