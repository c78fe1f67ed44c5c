// The Dockerfile parser, as docker's classic builder parses: parser directives (# escape=,
// # syntax=), comments, line continuations with the escape token, heredocs for RUN/COPY/ADD, and
// then per-instruction argument forms (JSON exec form or shell form, KEY=VALUE lists, flags).
//
// Parsing is pure: no variable is substituted here, because substitution depends on the build
// state (ARG/ENV in effect at each step). Instructions keep their raw words, and the builder
// substitutes with processWord/processWords at dispatch time.
import { BerthError, invalidParameter } from '../common/errors';
import type { HealthConfig } from '../images/types';

export class DockerfileParseError extends BerthError {
  constructor(
    readonly line: number,
    readonly detail: string,
  ) {
    super('InvalidParameter', line > 0 ? `dockerfile parse error on line ${line}: ${detail}` : `dockerfile parse error: ${detail}`);
  }
}

export interface Heredoc {
  /** The delimiter word, unquoted: also the file name when COPY writes it into a directory. */
  name: string;
  content: string;
  /** False when the delimiter was quoted: the builder substitutes nothing in the content. */
  expand: boolean;
  /** <<- : leading tabs were stripped. */
  chomp: boolean;
}

/** One instruction as written: its command word and raw argument text, with its line span. */
export interface RawNode {
  /** Lower-case command word. */
  cmd: string;
  /** The command word as written (for error messages). */
  cmdOriginal: string;
  /** Everything after the command word (continuations joined), flags included. */
  rest: string;
  /** The instruction's text (continuations joined), without heredoc bodies. */
  original: string;
  startLine: number;
  endLine: number;
  heredocs: Heredoc[];
}

export interface Directives {
  escape: string;
  syntax?: string;
  check?: string;
}

export interface ParsedFile {
  directives: Directives;
  nodes: RawNode[];
  warnings: string[];
}

// ---- instructions --------------------------------------------------------------------------

interface Base {
  line: number;
  /** The instruction text as written (continuations joined), used in "Step n/m : ..." lines. */
  original: string;
}

/** Exec form (JSON) or shell form of RUN, CMD, ENTRYPOINT. */
export interface CommandLine {
  /** Exec form words, or a one-element list holding the shell form text. */
  args: string[];
  /** True for shell form: the builder prepends the stage's SHELL. */
  prependShell: boolean;
}

export interface KeyValue {
  key: string;
  /** Raw (unsubstituted, still quoted) value. */
  value: string;
}

export interface ArgDef {
  key: string;
  /** Raw default, or undefined for "ARG name" without one. */
  value?: string;
}

export type Instruction =
  | (Base & { kind: 'FROM'; image: string; stageName?: string; platform?: string })
  | (Base & { kind: 'RUN'; command: CommandLine; heredocs: Heredoc[] })
  | (Base & { kind: 'CMD'; command: CommandLine })
  | (Base & { kind: 'ENTRYPOINT'; command: CommandLine })
  | (Base & { kind: 'ENV'; pairs: KeyValue[] })
  | (Base & { kind: 'LABEL'; pairs: KeyValue[] })
  | (Base & { kind: 'ARG'; args: ArgDef[] })
  | (Base & { kind: 'EXPOSE'; ports: string[] })
  | (Base & CopySpec & { kind: 'COPY' })
  | (Base & CopySpec & { kind: 'ADD' })
  | (Base & { kind: 'WORKDIR'; path: string })
  | (Base & { kind: 'USER'; user: string })
  | (Base & { kind: 'VOLUME'; paths: string[] })
  | (Base & { kind: 'STOPSIGNAL'; signal: string })
  | (Base & { kind: 'HEALTHCHECK'; health: HealthConfig })
  | (Base & { kind: 'SHELL'; shell: string[] })
  | (Base & { kind: 'ONBUILD'; expression: string })
  | (Base & { kind: 'MAINTAINER'; maintainer: string });

export interface CopySpec {
  kind: 'COPY' | 'ADD';
  /** Raw source words; a heredoc source is "<<NAME" and is found in heredocs by name. */
  sources: string[];
  dest: string;
  heredocs: Heredoc[];
  from?: string;
  chown?: string;
  chmod?: string;
  link: boolean;
  checksum?: string;
  keepGitDir?: boolean;
}

export type InstructionOf<K extends Instruction['kind']> = Extract<Instruction, { kind: K }>;

export interface Stage {
  /** Lower-case stage name from "AS name", if any. */
  name?: string;
  index: number;
  from: InstructionOf<'FROM'>;
  instructions: Instruction[];
}

export interface Dockerfile {
  directives: Directives;
  /** ARG instructions before the first FROM. */
  metaArgs: InstructionOf<'ARG'>[];
  stages: Stage[];
  warnings: string[];
}

const KNOWN = ['from', 'run', 'cmd', 'entrypoint', 'env', 'arg', 'label', 'expose', 'copy', 'add', 'workdir', 'user', 'volume', 'stopsignal', 'healthcheck', 'shell', 'onbuild', 'maintainer'];
const HEREDOC_COMMANDS = new Set(['run', 'copy', 'add']);
const DIRECTIVE = /^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$/;
const KNOWN_DIRECTIVES = new Set(['escape', 'syntax', 'check']);
const HEREDOC_WORD = /^<<(-?)(["']?)([A-Za-z0-9_./-]+)\2$/;
const STAGE_NAME = /^[a-z][a-z0-9-_.]*$/;

function isComment(line: string): boolean {
  return /^\s*#/.test(line);
}

function isBlank(line: string): boolean {
  return line.trim() === '';
}

/**
 * Splits words on whitespace outside quotes, keeping quotes and escapes in the words (docker's
 * parseWords): the quoting is removed later, by substitution.
 */
export function splitQuotedWords(text: string, escape: string): string[] {
  const words: string[] = [];
  let cur = '';
  let quote = '';
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === escape && i + 1 < text.length) {
      // An escaped character never starts or ends a quote, nor splits.
      cur += c + text[++i];
      inWord = true;
      continue;
    }
    if (quote) {
      if (c === quote) quote = '';
      cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      cur += c;
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

/** Pass 1: lines to raw instruction nodes. */
export function parseLines(text: string): ParsedFile {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const directives: Directives = { escape: '\\' };
  const warnings: string[] = [];
  const seen = new Set<string>();
  let i = 0;
  // Directives are only honoured at the very top, before any blank line, comment or instruction.
  for (; i < lines.length; i++) {
    const m = DIRECTIVE.exec(lines[i]);
    if (!m) break;
    const name = m[1].toLowerCase();
    if (!KNOWN_DIRECTIVES.has(name)) break;
    if (seen.has(name)) throw new DockerfileParseError(i + 1, `only one ${name} parser directive can be used`);
    seen.add(name);
    if (name === 'escape') {
      if (m[2] !== '\\' && m[2] !== '`') throw new DockerfileParseError(i + 1, `invalid escape token '${m[2]}' does not match \` or \\`);
      directives.escape = m[2];
    } else if (name === 'syntax') {
      directives.syntax = m[2];
    } else {
      directives.check = m[2];
    }
  }
  const esc = directives.escape;
  const continuation = new RegExp(`${esc === '\\' ? '\\\\' : '`'}[ \\t]*$`);
  const nodes: RawNode[] = [];
  let emptyContinuationWarned = false;

  while (i < lines.length) {
    const first = lines[i];
    if (isBlank(first) || isComment(first)) {
      i++;
      continue;
    }
    const startLine = i + 1;
    let line = first.replace(/^\s+/, '');
    i++;
    let continues = continuation.test(line);
    if (continues) line = line.replace(continuation, '');
    while (continues && i < lines.length) {
      const next = lines[i++];
      if (isComment(next)) continue;
      if (isBlank(next)) {
        if (!emptyContinuationWarned) {
          warnings.push(`[WARNING]: Empty continuation line found in:\n    ${line}\n[WARNING]: Empty continuation lines will become errors in a future release.`);
          emptyContinuationWarned = true;
        }
        continue;
      }
      continues = continuation.test(next);
      line += continues ? next.replace(continuation, '') : next;
    }
    const endLineBeforeHeredocs = i;
    const m = /^(\S+)\s*([\s\S]*)$/.exec(line.trim());
    if (!m) continue;
    const cmdOriginal = m[1];
    const cmd = cmdOriginal.toLowerCase();
    const rest = m[2];
    const heredocs: Heredoc[] = [];
    if (HEREDOC_COMMANDS.has(cmd) && rest.includes('<<')) {
      for (const word of splitQuotedWords(stripFlags(rest), esc)) {
        const h = HEREDOC_WORD.exec(word);
        if (!h) continue;
        const chomp = h[1] === '-';
        const name = h[3];
        const body: string[] = [];
        let terminated = false;
        while (i < lines.length) {
          const raw = lines[i++];
          const l = chomp ? raw.replace(/^\t+/, '') : raw;
          if (l === name) {
            terminated = true;
            break;
          }
          body.push(l);
        }
        if (!terminated) throw new DockerfileParseError(startLine, `unterminated heredoc ${name}`);
        heredocs.push({ name, content: body.length ? body.join('\n') + '\n' : '', expand: h[2] === '', chomp });
      }
    }
    nodes.push({ cmd, cmdOriginal, rest, original: line.trim(), startLine, endLine: heredocs.length ? i : endLineBeforeHeredocs, heredocs });
  }
  return { directives, nodes, warnings };
}

/** The text after any leading --flags. */
function stripFlags(rest: string): string {
  return splitFlags(rest).rest;
}

/** Leading "--name[=value]" words (docker's builder flags), then the rest of the arguments. */
export function splitFlags(rest: string): { flags: { name: string; value?: string; raw: string }[]; rest: string } {
  const flags: { name: string; value?: string; raw: string }[] = [];
  let s = rest.replace(/^\s+/, '');
  for (;;) {
    const m = /^--([^\s=]*)(?:=(\S*))?(?:\s+|$)/.exec(s);
    if (!m) break;
    if (m[1] === '') {
      // "--" alone ends the flags.
      s = s.slice(m[0].length);
      break;
    }
    flags.push({ name: m[1], value: m[2], raw: m[0].trim() });
    s = s.slice(m[0].length);
  }
  return { flags, rest: s };
}

type FlagKind = 'string' | 'bool' | 'strings';

/** Flags with docker's checks: known names only, no duplicates, values where needed. */
function parseFlagSet(cmd: string, given: { name: string; value?: string }[], known: Record<string, FlagKind>): Map<string, string | boolean | string[]> {
  const out = new Map<string, string | boolean | string[]>();
  for (const f of given) {
    if (cmd === 'run' && (f.name === 'mount' || f.name === 'network' || f.name === 'security')) {
      throw new Error(`the --${f.name} option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled`);
    }
    const kind = known[f.name];
    if (!kind) throw new Error(`unknown flag: ${f.name}`);
    if (kind === 'strings') {
      if (f.value === undefined) throw new Error(`Missing a value on flag: ${f.name}`);
      out.set(f.name, [...((out.get(f.name) as string[] | undefined) ?? []), f.value]);
      continue;
    }
    if (out.has(f.name)) throw new Error(`Duplicate flag specified: ${f.name}`);
    if (kind === 'bool') {
      const v = (f.value ?? 'true').toLowerCase();
      if (v !== 'true' && v !== 'false') throw new Error(`expecting boolean value for flag ${f.name}, not: ${f.value}`);
      out.set(f.name, v === 'true');
    } else {
      if (f.value === undefined) throw new Error(`Missing a value on flag: ${f.name}`);
      out.set(f.name, f.value);
    }
  }
  return out;
}

/** Docker's parseMaybeJSON: a JSON array of strings is the exec form, anything else is shell text. */
function maybeJSON(rest: string): string[] | undefined {
  const t = rest.trim();
  if (!t.startsWith('[')) return undefined;
  try {
    const v = JSON.parse(t) as unknown;
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
  } catch {}
  return undefined;
}

function commandLine(rest: string): CommandLine {
  const json = maybeJSON(rest);
  if (json) return { args: json, prependShell: false };
  return { args: [rest.trim()], prependShell: true };
}

function whitespaceWords(rest: string): string[] {
  return rest.trim() === '' ? [] : rest.trim().split(/\s+/);
}

/** ENV and LABEL: "KEY value" (legacy, one pair) or KEY=VALUE pairs. */
function nameValues(cmd: string, rest: string, escape: string): KeyValue[] {
  const words = splitQuotedWords(rest, escape);
  if (words.length === 0) throw new Error(`${cmd} requires at least one argument`);
  if (!words[0].includes('=')) {
    const m = /^(\S+)\s+([\s\S]*)$/.exec(rest.trim());
    if (!m || m[2].trim() === '') throw new Error(`${cmd} must have two arguments`);
    return [{ key: m[1], value: m[2].trim() }];
  }
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq < 0) throw new Error(`Syntax error - can't find = in "${w}". Must be of the form: name=value`);
    if (eq === 0) throw new Error(`${cmd} names can not be blank`);
    return { key: w.slice(0, eq), value: w.slice(eq + 1) };
  });
}

/** Go's time.ParseDuration, in nanoseconds. */
export function parseGoDuration(s: string): number {
  const units: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, μs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  const t = s.trim();
  if (t === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
  let sign = 1;
  let pos = 0;
  if (t[0] === '-' || t[0] === '+') {
    sign = t[0] === '-' ? -1 : 1;
    pos = 1;
  }
  let total = 0;
  if (pos >= t.length) throw new Error(`time: invalid duration "${s}"`);
  while (pos < t.length) {
    re.lastIndex = pos;
    const m = re.exec(t);
    if (!m) throw new Error(`time: invalid duration "${s}"`);
    total += parseFloat(m[1]) * units[m[2]];
    pos = re.lastIndex;
  }
  return Math.round(sign * total);
}

function healthcheck(flags: Map<string, string | boolean | string[]>, rest: string): HealthConfig {
  const words = whitespaceWords(rest);
  if (words.length === 0) throw new Error('HEALTHCHECK requires at least one argument');
  const type = words[0].toUpperCase();
  if (type === 'NONE') {
    if (words.length > 1 || flags.size > 0) throw new Error('HEALTHCHECK NONE takes no arguments');
    return { Test: ['NONE'] };
  }
  if (type !== 'CMD') throw new Error(`Unknown type "${words[0]}" in HEALTHCHECK (try CMD)`);
  const cmdText = rest.trim().slice(words[0].length).trim();
  if (cmdText === '') throw new Error('Missing command after HEALTHCHECK CMD');
  const json = maybeJSON(cmdText);
  const hc: HealthConfig = { Test: json ? ['CMD', ...json] : ['CMD-SHELL', cmdText] };
  const duration = (name: string): number => {
    const v = flags.get(name) as string | undefined;
    if (v === undefined || v === '') return 0;
    let d: number;
    try {
      d = parseGoDuration(v);
    } catch (err) {
      throw new Error((err as Error).message);
    }
    if (d !== 0 && d < 1e6) throw new Error(`${name.replace(/^./, (c) => c.toUpperCase()).replace('-p', ' p').replace('-i', ' i')} cannot be less than 1ms`);
    if (d < 0) throw new Error(`${name} cannot be negative`);
    return d;
  };
  const interval = duration('interval');
  const timeout = duration('timeout');
  const startPeriod = duration('start-period');
  const startInterval = duration('start-interval');
  if (interval) hc.Interval = interval;
  if (timeout) hc.Timeout = timeout;
  if (startPeriod) hc.StartPeriod = startPeriod;
  if (startInterval) hc.StartInterval = startInterval;
  const retries = flags.get('retries') as string | undefined;
  if (retries !== undefined && retries !== '') {
    if (!/^-?\d+$/.test(retries)) throw new Error(`strconv.ParseInt: parsing "${retries}": invalid syntax`);
    const n = parseInt(retries, 10);
    if (n < 0) throw new Error(`--retries cannot be negative (${n})`);
    if (n) hc.Retries = n;
  }
  return hc;
}

const NO_FLAGS: Record<string, FlagKind> = {};
const FLAGS: Record<string, Record<string, FlagKind>> = {
  from: { platform: 'string' },
  copy: { from: 'string', chown: 'string', chmod: 'string', link: 'bool' },
  add: { chown: 'string', chmod: 'string', link: 'bool', checksum: 'string', 'keep-git-dir': 'bool' },
  run: {},
  healthcheck: { interval: 'string', timeout: 'string', 'start-period': 'string', 'start-interval': 'string', retries: 'string' },
};

function exactlyOne(cmd: string, words: string[]): string {
  if (words.length !== 1) throw new Error(`${cmd.toUpperCase()} requires exactly one argument`);
  return words[0];
}

/** Pass 2 for one node: its typed instruction. Errors are plain Errors; the caller adds the line. */
function instructionOf(node: RawNode, escape: string, inOnbuild = false): Instruction {
  const { cmd } = node;
  const { flags: rawFlags, rest } = splitFlags(node.rest);
  const flags = parseFlagSet(cmd, rawFlags, FLAGS[cmd] ?? NO_FLAGS);
  const base = { line: node.startLine, original: node.original };
  const CMD = cmd.toUpperCase();
  switch (cmd) {
    case 'from': {
      const words = whitespaceWords(rest);
      let stageName: string | undefined;
      if (words.length === 3 && words[1].toLowerCase() === 'as') {
        stageName = words[2].toLowerCase();
        if (!STAGE_NAME.test(stageName)) throw new Error(`invalid name for build stage: "${words[2]}", name can't start with a number or contain symbols`);
      } else if (words.length !== 1) {
        throw new Error('FROM requires either one or three arguments');
      }
      return { ...base, kind: 'FROM', image: words[0], stageName, platform: flags.get('platform') as string | undefined };
    }
    case 'run':
    case 'cmd':
    case 'entrypoint': {
      if (rest.trim() === '' && cmd === 'run') throw new Error('RUN requires at least one argument');
      const command = commandLine(rest);
      if (cmd === 'run') return { ...base, kind: 'RUN', command, heredocs: node.heredocs };
      return { ...base, kind: cmd === 'cmd' ? 'CMD' : 'ENTRYPOINT', command } as Instruction;
    }
    case 'env':
    case 'label': {
      const pairs = nameValues(CMD, rest, escape);
      return { ...base, kind: cmd === 'env' ? 'ENV' : 'LABEL', pairs } as Instruction;
    }
    case 'arg': {
      const words = splitQuotedWords(rest, escape);
      if (words.length === 0) throw new Error('ARG requires exactly one argument');
      const args = words.map((w): ArgDef => {
        const eq = w.indexOf('=');
        if (eq === 0) throw new Error('ARG names can not be blank');
        return eq < 0 ? { key: w } : { key: w.slice(0, eq), value: w.slice(eq + 1) };
      });
      return { ...base, kind: 'ARG', args };
    }
    case 'expose': {
      const ports = whitespaceWords(rest);
      if (ports.length === 0) throw new Error('EXPOSE requires at least one argument');
      return { ...base, kind: 'EXPOSE', ports };
    }
    case 'copy':
    case 'add': {
      const json = maybeJSON(rest);
      const words = json ?? whitespaceWords(rest);
      if (words.length === 0) throw new Error(`${CMD} requires at least two arguments`);
      if (words.length === 1 && node.heredocs.length === 0) {
        throw new Error(`${CMD} requires at least two arguments, but only one was provided. Destination could not be determined.`);
      }
      const dest = words[words.length - 1];
      const sources = words.slice(0, -1);
      if (sources.length === 0) throw new Error(`${CMD} requires at least two arguments, but only one was provided. Destination could not be determined.`);
      if (cmd === 'copy' && flags.has('from') && node.heredocs.length) throw new Error('COPY --from cannot be used with heredocs');
      const spec: CopySpec = {
        kind: cmd === 'copy' ? 'COPY' : 'ADD',
        sources,
        dest,
        heredocs: node.heredocs,
        from: flags.get('from') as string | undefined,
        chown: flags.get('chown') as string | undefined,
        chmod: flags.get('chmod') as string | undefined,
        link: (flags.get('link') as boolean | undefined) ?? false,
        checksum: flags.get('checksum') as string | undefined,
        keepGitDir: flags.get('keep-git-dir') as boolean | undefined,
      };
      if (spec.chmod !== undefined && !/^[0-7]{1,4}$/.test(spec.chmod)) throw new Error(`invalid chmod parameter: ${spec.chmod}. it should be octal string and between 0 and 07777`);
      return { ...base, ...spec } as Instruction;
    }
    case 'workdir':
      return { ...base, kind: 'WORKDIR', path: exactlyOne(cmd, [rest.trim()].filter((s) => s !== '')) };
    case 'user':
      return { ...base, kind: 'USER', user: exactlyOne(cmd, whitespaceWords(rest)) };
    case 'stopsignal':
      return { ...base, kind: 'STOPSIGNAL', signal: exactlyOne(cmd, whitespaceWords(rest)) };
    case 'maintainer':
      if (rest.trim() === '') throw new Error('MAINTAINER requires exactly one argument');
      return { ...base, kind: 'MAINTAINER', maintainer: rest.trim() };
    case 'volume': {
      const paths = maybeJSON(rest) ?? whitespaceWords(rest);
      if (paths.length === 0) throw new Error('VOLUME requires at least one argument');
      if (paths.some((p) => p.trim() === '')) throw new Error('VOLUME specified can not be an empty string');
      return { ...base, kind: 'VOLUME', paths };
    }
    case 'healthcheck':
      return { ...base, kind: 'HEALTHCHECK', health: healthcheck(flags, rest) };
    case 'shell': {
      const shell = maybeJSON(rest);
      if (!shell) throw new Error('SHELL requires the arguments to be in JSON form');
      if (shell.length === 0) throw new Error('SHELL requires at least one argument');
      return { ...base, kind: 'SHELL', shell };
    }
    case 'onbuild': {
      if (inOnbuild) throw new Error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
      const expression = rest.trim();
      if (expression === '') throw new Error('ONBUILD requires at least one argument');
      const trigger = parseLines(expression).nodes[0];
      if (!trigger) throw new Error('ONBUILD requires at least one argument');
      if (trigger.cmd === 'onbuild') throw new Error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
      if (trigger.cmd === 'from' || trigger.cmd === 'maintainer') throw new Error(`${trigger.cmd.toUpperCase()} isn't allowed as an ONBUILD trigger`);
      instructionOf(trigger, escape, true);
      return { ...base, kind: 'ONBUILD', expression };
    }
    default:
      throw new Error(`unknown instruction: ${node.cmdOriginal}${suggestion(cmd)}`);
  }
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  }
  return d[a.length][b.length];
}

function suggestion(cmd: string): string {
  let best = '';
  let bestD = 3;
  for (const k of KNOWN) {
    const dist = editDistance(cmd, k);
    if (dist < bestD) {
      best = k;
      bestD = dist;
    }
  }
  return best ? ` (did you mean ${best}?)` : '';
}

/** Parses one instruction line (ONBUILD triggers, docker commit --change style text). */
export function parseInstruction(text: string, escape = '\\'): Instruction {
  const node = parseLines(text).nodes[0];
  if (!node) throw invalidParameter('empty instruction');
  try {
    return instructionOf(node, escape);
  } catch (err) {
    if (err instanceof DockerfileParseError) throw err;
    throw new DockerfileParseError(node.startLine, (err as Error).message);
  }
}

/** Parses a whole Dockerfile into meta ARGs and stages. */
export function parseDockerfile(text: string, opts: { filename?: string } = {}): Dockerfile {
  const parsed = parseLines(text);
  if (parsed.nodes.length === 0) throw invalidParameter(`the Dockerfile (${opts.filename ?? 'Dockerfile'}) cannot be empty`);
  const metaArgs: InstructionOf<'ARG'>[] = [];
  const stages: Stage[] = [];
  const names = new Set<string>();
  for (const node of parsed.nodes) {
    let ins: Instruction;
    try {
      ins = instructionOf(node, parsed.directives.escape);
    } catch (err) {
      throw new DockerfileParseError(node.startLine, (err as Error).message);
    }
    if (ins.kind === 'FROM') {
      if (ins.stageName) {
        if (names.has(ins.stageName)) throw new DockerfileParseError(node.startLine, `duplicate stage name "${ins.stageName}"`);
        names.add(ins.stageName);
      }
      stages.push({ name: ins.stageName, index: stages.length, from: ins, instructions: [] });
    } else if (stages.length === 0) {
      if (ins.kind !== 'ARG') throw new DockerfileParseError(node.startLine, 'no build stage in current context');
      metaArgs.push(ins);
    } else {
      stages[stages.length - 1].instructions.push(ins);
    }
  }
  return { directives: parsed.directives, metaArgs, stages, warnings: parsed.warnings };
}

/** A stage by name (case-insensitive) or by index, as COPY --from and FROM refer to stages. */
export function stageIndex(df: Dockerfile, nameOrIndex: string): number | undefined {
  const lower = nameOrIndex.toLowerCase();
  const byName = df.stages.find((s) => s.name === lower);
  if (byName) return byName.index;
  if (/^\d+$/.test(nameOrIndex)) {
    const n = parseInt(nameOrIndex, 10);
    if (n < df.stages.length) return n;
  }
  return undefined;
}

/** The stage to stop at for --target; docker's message when it does not exist. */
export function targetStage(df: Dockerfile, target: string | undefined): number {
  if (!target) return df.stages.length - 1;
  const s = df.stages.find((st) => st.name === target.toLowerCase());
  if (!s) throw invalidParameter(`failed to reach build target ${target} in Dockerfile`);
  return s.index;
}
