// Output formatting for the berth client, as the docker CLI formats: a Go text/template subset for
// --format, docker's "table" layout through a tabwriter (Go's text/tabwriter algorithm, so columns
// line up exactly as docker's do), human units from go-units, and inspect's indented JSON.

// ---------------------------------------------------------------------------------------------
// Template engine

export class TemplateError extends Error {}

type Arg =
  | { kind: 'dot' }
  | { kind: 'field'; base: 'dot' | 'var'; varName?: string; path: string[]; text: string }
  | { kind: 'var'; name: string }
  | { kind: 'ident'; name: string }
  | { kind: 'literal'; value: unknown }
  | { kind: 'pipe'; pipe: Pipeline };

interface Command {
  args: Arg[];
}

interface Pipeline {
  decl: string[];
  cmds: Command[];
}

type Node =
  | { kind: 'text'; text: string }
  | { kind: 'action'; pipe: Pipeline; col: number }
  | { kind: 'if' | 'with'; pipe: Pipeline; list: Node[]; elseList: Node[] | null }
  | { kind: 'range'; pipe: Pipeline; list: Node[]; elseList: Node[] | null };

type Fn = (...args: unknown[]) => unknown;

/** Go's notion of truth: false, 0, nil, and empty strings, lists and maps are false. */
export function truthy(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (isMap(v)) return Object.keys(v as object).length > 0;
  return true;
}

function isMap(v: unknown): boolean {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** A value printed as Go's fmt %v prints it. */
export function goString(v: unknown): string {
  if (v === undefined) return '<no value>';
  if (v === null) return '<nil>';
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : goFloat(v);
  if (typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (Array.isArray(v)) return `[${v.map(goString).join(' ')}]`;
  if (v instanceof FormatContext) return `{${v.fieldNames().map((k) => goString(v.get(k))).join(' ')}}`;
  if (typeof v === 'object') {
    const keys = Object.keys(v as object).sort();
    return `map[${keys.map((k) => `${k}:${goString((v as Record<string, unknown>)[k])}`).join(' ')}]`;
  }
  return String(v);
}

function goFloat(v: number): string {
  // Go's %v for float64 is %g with the shortest representation: exponent form at 1e21 and above
  // or below 1e-4.
  const abs = Math.abs(v);
  if (abs !== 0 && (abs < 1e-4 || abs >= 1e21)) {
    const [m, e] = v.toExponential().split('e');
    const exp = Number(e);
    return `${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  return String(v);
}

/** Base of the row objects that docker's formatters expose (ps rows, image rows, ...). */
export abstract class FormatContext {
  /** The template field names and the header each shows in a table. */
  abstract headers(): Record<string, string>;
  fieldNames(): string[] {
    return Object.keys(this.headers());
  }
  get(name: string): unknown {
    return (this as unknown as Record<string, unknown>)[name];
  }
  has(name: string): boolean {
    return name in this.headers() || name in this;
  }
  /** `{{json .}}` prints every field, keys sorted, as docker's marshalMap does. */
  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const k of this.fieldNames().sort()) out[k] = this.get(k);
    return out;
  }
}

function tokenizeAction(src: string): string[] {
  const toks: string[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (/\s/.test(c)) { i++; continue; }
    if (c === '"') {
      let j = i + 1;
      while (j < src.length && src[j] !== '"') j += src[j] === '\\' ? 2 : 1;
      if (j >= src.length) throw new TemplateError('unterminated quoted string');
      toks.push(src.slice(i, j + 1));
      i = j + 1;
    } else if (c === '`') {
      const j = src.indexOf('`', i + 1);
      if (j < 0) throw new TemplateError('unterminated raw quoted string');
      toks.push(src.slice(i, j + 1));
      i = j + 1;
    } else if (c === '(' || c === ')' || c === '|' || c === ',') {
      toks.push(c);
      i++;
    } else if (c === ':' && src[i + 1] === '=') {
      toks.push(':=');
      i += 2;
    } else if (c === '=') {
      toks.push('=');
      i++;
    } else {
      let j = i;
      while (j < src.length && !/[\s()|,"`]/.test(src[j]) && !(src[j] === ':' && src[j + 1] === '=')) j++;
      toks.push(src.slice(i, j));
      i = j;
    }
  }
  return toks;
}

function unquote(tok: string): string {
  if (tok.startsWith('`')) return tok.slice(1, -1);
  return JSON.parse(tok.replace(/\\x([0-9a-fA-F]{2})/g, '\\u00$1')) as string;
}

function parseArg(tok: string): Arg {
  if (tok === '.') return { kind: 'dot' };
  if (tok.startsWith('"') || tok.startsWith('`')) return { kind: 'literal', value: unquote(tok) };
  if (tok === 'true' || tok === 'false') return { kind: 'literal', value: tok === 'true' };
  if (tok === 'nil') return { kind: 'literal', value: null };
  if (/^-?\d+(\.\d+)?$/.test(tok)) return { kind: 'literal', value: Number(tok) };
  if (tok.startsWith('.')) return { kind: 'field', base: 'dot', path: tok.slice(1).split('.'), text: tok };
  if (tok.startsWith('$')) {
    const [name, ...path] = tok.split('.');
    if (path.length === 0) return { kind: 'var', name };
    return { kind: 'field', base: 'var', varName: name, path, text: tok };
  }
  if (/^[A-Za-z_]\w*$/.test(tok)) return { kind: 'ident', name: tok };
  throw new TemplateError(`unexpected "${tok}" in command`);
}

function parsePipeline(toks: string[], funcs: Record<string, Fn>): Pipeline {
  let pos = 0;
  const decl: string[] = [];
  // Declarations: $x := ..., or $i, $e := ... (range)
  const assign = toks.indexOf(':=');
  if (assign > 0 && toks.slice(0, assign).every((t) => t.startsWith('$') || t === ',')) {
    for (const t of toks.slice(0, assign)) if (t !== ',') decl.push(t);
    pos = assign + 1;
  }
  const parseCmds = (end: string | null): Command[] => {
    const cmds: Command[] = [];
    let args: Arg[] = [];
    for (;;) {
      if (pos >= toks.length) {
        if (end) throw new TemplateError('unclosed left paren');
        break;
      }
      const t = toks[pos++];
      if (t === end) break;
      if (t === '|') {
        if (args.length === 0) throw new TemplateError('missing command');
        cmds.push({ args });
        args = [];
      } else if (t === '(') {
        args.push({ kind: 'pipe', pipe: { decl: [], cmds: parseCmds(')') } });
      } else if (t === ')') {
        throw new TemplateError('unexpected right paren');
      } else {
        const a = parseArg(t);
        if (a.kind === 'ident' && !(a.name in funcs)) throw new TemplateError(`function "${a.name}" not defined`);
        args.push(a);
      }
    }
    if (args.length === 0) throw new TemplateError('missing command');
    cmds.push({ args });
    return cmds;
  };
  return { decl, cmds: parseCmds(null) };
}

interface ParsedTemplate {
  nodes: Node[];
}

function parseTemplate(src: string, funcs: Record<string, Fn>): ParsedTemplate {
  // Split into text and actions, honouring {{- and -}} whitespace trimming.
  const items: ({ text: string } | { action: string; col: number })[] = [];
  let i = 0;
  let trimNext = false;
  while (i < src.length) {
    const open = src.indexOf('{{', i);
    let text = open < 0 ? src.slice(i) : src.slice(i, open);
    if (trimNext) text = text.replace(/^\s+/, '');
    trimNext = false;
    if (open < 0) {
      items.push({ text });
      break;
    }
    let start = open + 2;
    if (src[start] === '-' && /\s/.test(src[start + 1] ?? '')) {
      text = text.replace(/\s+$/, '');
      start += 1;
    }
    items.push({ text });
    // Find the closing braces outside of quoted strings.
    let j = start;
    let close = -1;
    while (j < src.length) {
      const c = src[j];
      if (c === '"') {
        j++;
        while (j < src.length && src[j] !== '"') j += src[j] === '\\' ? 2 : 1;
        j++;
      } else if (c === '`') {
        j = src.indexOf('`', j + 1) + 1;
        if (j === 0) throw new TemplateError('unterminated raw quoted string');
      } else if (c === '}' && src[j + 1] === '}') {
        close = j;
        break;
      } else j++;
    }
    if (close < 0) throw new TemplateError('unclosed action');
    let body = src.slice(start, close);
    if (/\s-$/.test(body)) {
      body = body.slice(0, -1);
      trimNext = true;
    }
    items.push({ action: body.trim(), col: open });
    i = close + 2;
  }

  let pos = 0;
  const parseList = (terminators: string[]): { nodes: Node[]; end: string } => {
    const nodes: Node[] = [];
    while (pos < items.length) {
      const it = items[pos++];
      if ('text' in it) {
        if (it.text) nodes.push({ kind: 'text', text: it.text });
        continue;
      }
      const body = it.action;
      if (body.startsWith('/*')) continue;
      const toks = tokenizeAction(body);
      const kw = toks[0];
      if (kw === 'end' || kw === 'else') {
        if (!terminators.includes(kw)) throw new TemplateError(`unexpected {{${kw}}}`);
        if (kw === 'else' && toks.length > 1) {
          // "else if ..." chains: parse as a nested if that consumes the shared {{end}}.
          if (toks[1] !== 'if' && toks[1] !== 'with') throw new TemplateError(`unexpected "${toks[1]}" in else`);
          return { nodes, end: `else ${toks.slice(1).join(' ')}` };
        }
        return { nodes, end: kw };
      }
      if (kw === 'if' || kw === 'with' || kw === 'range') {
        nodes.push(parseBlock(kw, toks.slice(1)));
        continue;
      }
      if (kw === 'define' || kw === 'template' || kw === 'block') throw new TemplateError(`"${kw}" is not supported`);
      nodes.push({ kind: 'action', pipe: parsePipeline(toks, funcs), col: it.col });
    }
    if (terminators.length > 0) throw new TemplateError('unexpected EOF');
    return { nodes, end: '' };
  };
  const parseBlock = (kw: 'if' | 'with' | 'range', toks: string[]): Node => {
    if (toks.length === 0) throw new TemplateError(`missing value for ${kw}`);
    const pipe = parsePipeline(toks, funcs);
    const body = parseList(['else', 'end']);
    let elseList: Node[] | null = null;
    if (body.end === 'else') {
      elseList = parseList(['end']).nodes;
    } else if (body.end.startsWith('else ')) {
      const rest = tokenizeAction(body.end.slice(5));
      elseList = [parseBlock(rest[0] as 'if' | 'with', rest.slice(1))];
    }
    return kw === 'range' ? { kind: 'range', pipe, list: body.nodes, elseList } : { kind: kw, pipe, list: body.nodes, elseList };
  };
  const { nodes } = parseList([]);
  return { nodes };
}

function typeName(v: unknown): string {
  if (v instanceof FormatContext) return `*formatter.${v.constructor.name}`;
  if (Array.isArray(v)) return '[]interface {}';
  if (v === null || v === undefined) return 'interface {}';
  if (typeof v === 'object') return 'map[string]interface {}';
  return typeof v === 'number' ? 'float64' : typeof v;
}

function fieldOf(v: unknown, name: string, text: string): unknown {
  if (v instanceof FormatContext) {
    if (!v.has(name)) throw new TemplateError(`executing "" at <${text}>: can't evaluate field ${name} in type ${typeName(v)}`);
    return v.get(name);
  }
  if (v === null || v === undefined) {
    if (v === null) throw new TemplateError(`executing "" at <${text}>: nil pointer evaluating interface {}.${name}`);
    return undefined;
  }
  if (typeof v === 'object' && !Array.isArray(v)) {
    const m = v as Record<string, unknown>;
    return Object.prototype.hasOwnProperty.call(m, name) ? m[name] : isMap(v) ? undefined : m[name];
  }
  throw new TemplateError(`executing "" at <${text}>: can't evaluate field ${name} in type ${typeName(v)}`);
}

class Executor {
  private vars: { name: string; value: unknown }[] = [];

  constructor(private readonly funcs: Record<string, Fn>, root: unknown) {
    this.vars.push({ name: '$', value: root });
  }

  private lookupVar(name: string): unknown {
    for (let i = this.vars.length - 1; i >= 0; i--) if (this.vars[i].name === name) return this.vars[i].value;
    throw new TemplateError(`undefined variable: ${name}`);
  }

  private evalArg(a: Arg, dot: unknown): unknown {
    switch (a.kind) {
      case 'dot': return dot;
      case 'literal': return a.value;
      case 'var': return this.lookupVar(a.name);
      case 'pipe': return this.evalPipe(a.pipe, dot);
      case 'ident': return this.call(a.name, [], dot);
      case 'field': {
        let v = a.base === 'dot' ? dot : this.lookupVar(a.varName!);
        for (const p of a.path) v = fieldOf(v, p, a.text);
        return v;
      }
    }
  }

  private call(name: string, args: unknown[], _dot: unknown): unknown {
    const f = this.funcs[name];
    if (!f) throw new TemplateError(`function "${name}" not defined`);
    try {
      return f(...args);
    } catch (err) {
      if (err instanceof TemplateError) throw err;
      throw new TemplateError(`executing "" at <${name}>: error calling ${name}: ${(err as Error).message}`);
    }
  }

  private evalCmd(c: Command, dot: unknown, piped: unknown, hasPiped: boolean): unknown {
    const first = c.args[0];
    if (first.kind === 'ident') {
      const args = c.args.slice(1).map((a) => this.evalArg(a, dot));
      if (hasPiped) args.push(piped);
      return this.call(first.name, args, dot);
    }
    if (c.args.length > 1 || hasPiped) {
      // A method with arguments, as docker's {{.Label "com.example"}} on ps rows.
      if (first.kind === 'field') {
        let recv = first.base === 'dot' ? dot : this.lookupVar(first.varName!);
        for (const p of first.path.slice(0, -1)) recv = fieldOf(recv, p, first.text);
        const method = recv instanceof FormatContext ? (recv as unknown as Record<string, unknown>)[first.path[first.path.length - 1]] : undefined;
        if (typeof method === 'function') {
          const args = c.args.slice(1).map((a) => this.evalArg(a, dot));
          if (hasPiped) args.push(piped);
          return (method as Fn).apply(recv, args);
        }
      }
      throw new TemplateError(`can't give argument to non-function ${describe(first)}`);
    }
    return this.evalArg(first, dot);
  }

  evalPipe(p: Pipeline, dot: unknown): unknown {
    let v: unknown;
    p.cmds.forEach((c, i) => (v = this.evalCmd(c, dot, v, i > 0)));
    if (p.decl.length === 1) this.vars.push({ name: p.decl[0], value: v });
    return v;
  }

  exec(nodes: Node[], dot: unknown, out: string[]): void {
    for (const n of nodes) {
      switch (n.kind) {
        case 'text': out.push(n.text); break;
        case 'action': {
          const v = this.evalPipe(n.pipe, dot);
          if (n.pipe.decl.length === 0) out.push(goString(v));
          break;
        }
        case 'if':
        case 'with': {
          const mark = this.vars.length;
          const v = this.evalPipe(n.pipe, dot);
          if (truthy(v)) this.exec(n.list, n.kind === 'with' ? v : dot, out);
          else if (n.elseList) this.exec(n.elseList, dot, out);
          this.vars.length = mark;
          break;
        }
        case 'range': {
          const mark = this.vars.length;
          const decl = n.pipe.decl;
          const v = this.evalPipe({ decl: [], cmds: n.pipe.cmds }, dot);
          let entries: [unknown, unknown][] = [];
          if (Array.isArray(v)) entries = v.map((e, i) => [i, e]);
          else if (typeof v === 'number') entries = Array.from({ length: v }, (_x, i) => [i, i]);
          else if (v && typeof v === 'object') entries = Object.keys(v).sort().map((k) => [k, (v as Record<string, unknown>)[k]]);
          else if (v !== null && v !== undefined) throw new TemplateError(`range can't iterate over ${goString(v)}`);
          if (entries.length === 0) {
            if (n.elseList) this.exec(n.elseList, dot, out);
          } else {
            for (const [k, e] of entries) {
              const inner = this.vars.length;
              if (decl.length === 1) this.vars.push({ name: decl[0], value: e });
              else if (decl.length === 2) this.vars.push({ name: decl[0], value: k }, { name: decl[1], value: e });
              this.exec(n.list, e, out);
              this.vars.length = inner;
            }
          }
          this.vars.length = mark;
          break;
        }
      }
    }
  }
}

function describe(a: Arg): string {
  if (a.kind === 'field') return a.text;
  if (a.kind === 'dot') return '.';
  if (a.kind === 'literal') return JSON.stringify(a.value);
  return a.kind;
}

function compare(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  throw new Error('incompatible types for comparison');
}

/** Go's printf subset: %s %v %d %q %x %f with flags and widths, %%. */
export function goSprintf(fmt: string, ...args: unknown[]): string {
  let ai = 0;
  return fmt.replace(/%([-+ 0#]*)(\d+)?(?:\.(\d+))?([svdqxXftT%])/g, (_m, flags: string, width: string | undefined, prec: string | undefined, verb: string) => {
    if (verb === '%') return '%';
    if (ai >= args.length) return `%!${verb}(MISSING)`;
    const a = args[ai++];
    let s: string;
    switch (verb) {
      case 'd': s = typeof a === 'number' ? String(Math.trunc(a)) : `%!d(${typeof a}=${goString(a)})`; break;
      case 'q': s = JSON.stringify(goString(a)); break;
      case 'x': case 'X': s = typeof a === 'number' ? a.toString(16) : Buffer.from(goString(a)).toString('hex'); if (verb === 'X') s = s.toUpperCase(); break;
      case 'f': s = typeof a === 'number' ? a.toFixed(prec !== undefined ? Number(prec) : 6) : goString(a); break;
      case 't': s = String(Boolean(a)); break;
      case 'T': s = typeName(a); break;
      default: s = goString(a); if (prec !== undefined && verb === 's') s = s.slice(0, Number(prec));
    }
    const w = width ? Number(width) : 0;
    if (s.length < w) s = flags.includes('-') ? s.padEnd(w) : s.padStart(w, flags.includes('0') && verb !== 's' ? '0' : ' ');
    return s;
  });
}

/** JSON as Go's encoding/json writes it: <, > and & escaped, as docker's json function shows. */
export function goJSON(v: unknown): string {
  return (JSON.stringify(v === undefined ? null : v) ?? 'null')
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/** docker's template functions plus Go's builtins. */
export const TEMPLATE_FUNCS: Record<string, Fn> = {
  json: (v) => goJSON(v),
  join: (list, sep) => (Array.isArray(list) ? list.map(goString).join(String(sep)) : goString(list)),
  split: (s, sep) => String(s).split(String(sep)),
  lower: (s) => goString(s).toLowerCase(),
  upper: (s) => goString(s).toUpperCase(),
  title: (s) => goString(s).replace(/(^|[^\p{L}\p{N}'])(\p{L})/gu, (_m, a: string, b: string) => a + b.toUpperCase()),
  pad: (s, l, r) => ' '.repeat(Number(l)) + goString(s) + ' '.repeat(Number(r)),
  truncate: (s, n) => { const str = goString(s); return [...str].length > Number(n) ? [...str].slice(0, Number(n)).join('') : str; },
  println: (...a) => a.map(goString).join(' ') + '\n',
  print: (...a) => a.map((x, i) => (i > 0 && typeof x !== 'string' && typeof a[i - 1] !== 'string' ? ' ' : '') + goString(x)).join(''),
  printf: (f, ...a) => goSprintf(String(f), ...a),
  len: (v) => {
    if (typeof v === 'string') return Buffer.byteLength(v);
    if (Array.isArray(v)) return v.length;
    if (v && typeof v === 'object') return Object.keys(v).length;
    throw new Error(`len of type ${typeName(v)}`);
  },
  index: (v, ...keys) => {
    let cur = v;
    for (const k of keys) {
      if (cur === null || cur === undefined) return undefined;
      if (Array.isArray(cur)) {
        if (typeof k !== 'number' || k < 0 || k >= cur.length) throw new Error(`index out of range: ${goString(k)}`);
        cur = cur[k];
      } else if (cur instanceof FormatContext) cur = cur.get(String(k));
      else if (typeof cur === 'object') cur = (cur as Record<string, unknown>)[String(k)];
      else throw new Error(`can't index item of type ${typeName(cur)}`);
    }
    return cur;
  },
  slice: (v, i, j) => (typeof v === 'string' || Array.isArray(v) ? v.slice(Number(i ?? 0), j === undefined ? undefined : Number(j)) : v),
  not: (v) => !truthy(v),
  and: (...a) => { for (const x of a) if (!truthy(x)) return x; return a[a.length - 1]; },
  or: (...a) => { for (const x of a) if (truthy(x)) return x; return a[a.length - 1]; },
  eq: (a, ...bs) => bs.some((b) => a === b || (a === undefined && b === null)),
  ne: (a, b) => a !== b,
  lt: (a, b) => compare(a, b) < 0,
  le: (a, b) => compare(a, b) <= 0,
  gt: (a, b) => compare(a, b) > 0,
  ge: (a, b) => compare(a, b) >= 0,
};

/** A parsed --format template; execute() renders one value. */
export class Template {
  private readonly parsed: ParsedTemplate;

  constructor(readonly source: string, private readonly funcs: Record<string, Fn> = TEMPLATE_FUNCS) {
    try {
      this.parsed = parseTemplate(source, funcs);
    } catch (err) {
      if (err instanceof TemplateError) throw new TemplateError(`template parsing error: template: :1: ${err.message}`);
      throw err;
    }
  }

  execute(data: unknown): string {
    const out: string[] = [];
    try {
      new Executor(this.funcs, data).exec(this.parsed.nodes, data, out);
    } catch (err) {
      if (err instanceof TemplateError) throw new TemplateError(`template: :1:${err.message.startsWith('executing') ? '' : ' '}${err.message}`);
      throw err;
    }
    return out.join('');
  }
}

// ---------------------------------------------------------------------------------------------
// Tables

export interface TabwriterOptions {
  minwidth: number;
  padding: number;
}

/** docker's table settings: tabwriter.NewWriter(out, 10, 1, 3, ' ', 0). */
export const DOCKER_TABLE: TabwriterOptions = { minwidth: 10, padding: 3 };

const cellWidth = (s: string): number => [...s].length;

/**
 * Aligns tab-separated cells as Go's text/tabwriter does: a column block is a run of consecutive
 * lines that have a cell in that column (a line's last cell is never part of a column); each
 * block's width is max(minwidth, widest cell + padding).
 */
export function tabwrite(text: string, opts: TabwriterOptions = DOCKER_TABLE): string {
  const endsWithNewline = text.endsWith('\n');
  const lines = (endsWithNewline ? text.slice(0, -1) : text).split('\n').map((l) => l.split('\t'));
  const out: string[] = [];
  const widths: number[] = [];
  const writeLines = (from: number, to: number): void => {
    for (let i = from; i < to; i++) {
      const line = lines[i];
      let s = '';
      line.forEach((cell, j) => {
        if (j < widths.length && j < line.length - 1) s += cell + ' '.repeat(Math.max(0, widths[j] - cellWidth(cell)));
        else s += cell;
      });
      out.push(s);
    }
  };
  const format = (line0: number, line1: number): void => {
    const column = widths.length;
    for (let cur = line0; cur < line1; cur++) {
      if (column >= lines[cur].length - 1) continue;
      writeLines(line0, cur);
      line0 = cur;
      let width = opts.minwidth;
      for (; cur < line1; cur++) {
        const line = lines[cur];
        if (column >= line.length - 1) break;
        width = Math.max(width, cellWidth(line[column]) + opts.padding);
      }
      widths.push(width);
      format(line0, cur);
      widths.pop();
      line0 = cur;
    }
    writeLines(line0, line1);
  };
  format(0, lines.length);
  return out.join('\n') + (endsWithNewline ? '\n' : '');
}

/**
 * Renders rows through a --format value as docker's formatters do: "table ..." gets a header row
 * (from the rows' header names) and tabwriter alignment; "json" prints each row as a JSON line;
 * anything else is a template executed once per row, each followed by a newline.
 */
export function renderRows(format: string, rows: FormatContext[], headerOf?: () => Record<string, string>): string {
  if (format === 'json') format = '{{json .}}';
  const isTable = format.startsWith('table');
  let body = isTable ? format.slice(5).trim() : format;
  body = body.replace(/\\t/g, '\t').replace(/\\n/g, '\n');
  const tmpl = new Template(body);
  let out = '';
  if (isTable) {
    const headers = headerOf ? headerOf() : rows[0]?.headers() ?? {};
    out += tmpl.execute(new HeaderContext(headers)) + '\n';
  }
  for (const r of rows) out += tmpl.execute(r) + '\n';
  return isTable ? tabwrite(out) : out;
}

/** Stands in for a row when the header line is rendered: every field is its column title. */
class HeaderContext extends FormatContext {
  constructor(private readonly h: Record<string, string>) {
    super();
  }
  headers(): Record<string, string> {
    return this.h;
  }
  override get(name: string): unknown {
    return this.h[name] ?? '';
  }
  override has(_name: string): boolean {
    // docker renders the header from a plain map: an unknown field is blank, not an error.
    return true;
  }
}

// ---------------------------------------------------------------------------------------------
// Human units (go-units)

/** Go's %.{prec}g. */
export function formatG(x: number, prec: number): string {
  if (x === 0) return '0';
  if (!Number.isFinite(x)) return x > 0 ? '+Inf' : x < 0 ? '-Inf' : 'NaN';
  const [mant, expStr] = x.toExponential(prec - 1).split('e');
  const exp = Number(expStr);
  if (exp < -4 || exp >= prec) {
    const m = mant.includes('.') ? mant.replace(/0+$/, '').replace(/\.$/, '') : mant;
    return `${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  const fixed = x.toFixed(Math.max(0, prec - 1 - exp));
  return fixed.includes('.') ? fixed.replace(/0+$/, '').replace(/\.$/, '') : fixed;
}

const DECIMAL_UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB', 'ZB', 'YB'];
const BINARY_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB', 'ZiB', 'YiB'];

/** go-units HumanSizeWithPrecision: SI units; docker's tables use precision 3 ("4.26MB"). */
export function humanSize(bytes: number, precision = 3): string {
  let size = bytes;
  let i = 0;
  while (size >= 1000 && i < DECIMAL_UNITS.length - 1) {
    size /= 1000;
    i++;
  }
  return formatG(size, precision) + DECIMAL_UNITS[i];
}

/** go-units BytesSize: binary units with two decimals ("23.54GiB"), used by docker info. */
export function bytesSize(bytes: number): string {
  let size = bytes;
  let i = 0;
  while (size >= 1024 && i < BINARY_UNITS.length - 1) {
    size /= 1024;
    i++;
  }
  return `${formatG(size, 4)}${BINARY_UNITS[i]}`;
}

/** go-units HumanDuration. */
export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  if (seconds < 1) return 'Less than a second';
  if (seconds === 1) return '1 second';
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.trunc(ms / 60_000);
  if (minutes === 1) return 'About a minute';
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.trunc(ms / 3_600_000 + 0.5);
  if (hours === 1) return 'About an hour';
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.trunc(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.trunc(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24 / 30)} months`;
  return `${Math.trunc(ms / 3_600_000 / 24 / 365)} years`;
}

/** "2 hours ago", as docker's CREATED columns. */
export function timeAgo(when: Date | number, now: number = Date.now()): string {
  const t = typeof when === 'number' ? when : when.getTime();
  return `${humanDuration(now - t)} ago`;
}

/** Go's time.Time.String() layout: "2006-01-02 15:04:05 -0700 MST" in local time. */
export function goTimeString(d: Date): string {
  const pad = (n: number, w = 2): string => String(n).padStart(w, '0');
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  const offStr = `${sign}${pad(Math.trunc(Math.abs(off) / 60))}${pad(Math.abs(off) % 60)}`;
  let zone = off === 0 ? 'UTC' : offStr;
  try {
    const part = new Intl.DateTimeFormat('en-US', { timeZoneName: 'short' }).formatToParts(d).find((p) => p.type === 'timeZoneName');
    if (part && /^[A-Z]{2,5}$/.test(part.value)) zone = part.value;
  } catch {}
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${offStr} ${zone}`;
}

// ---------------------------------------------------------------------------------------------
// IDs and JSON

/** docker's stringid.TruncateID: drops an algorithm prefix and keeps 12 characters. */
export function shortId(id: string): string {
  const colon = id.indexOf(':');
  return (colon >= 0 ? id.slice(colon + 1) : id).slice(0, 12);
}

/** docker inspect's output: a JSON array indented with four spaces. */
export function prettyJSON(v: unknown): string {
  return JSON.stringify(v, null, 4);
}

/** Collapses a command line for the ps COMMAND column: quoted and cut with an ellipsis. */
export function ellipsis(s: string, max: number): string {
  const chars = [...s];
  if (chars.length <= max) return s;
  if (max <= 1) return chars.slice(0, max).join('');
  return chars.slice(0, max - 1).join('') + '…';
}
