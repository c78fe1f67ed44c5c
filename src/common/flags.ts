// A command-line flag parser in the style of docker's (pflag): --name value, --name=value,
// -n value, grouped short booleans (-it), repeated flags for lists, "--" ending flags.
// Used by berthd and by every berth command, so that flags behave the same everywhere.
import { invalidParameter } from './errors';

export interface FlagSpec {
  name: string;
  short?: string;
  type: 'bool' | 'string' | 'list' | 'int';
  default?: unknown;
  description?: string;
}

export interface ParsedFlags {
  values: Record<string, unknown>;
  /** Names of the flags given on the command line (not defaults). */
  given: Set<string>;
  args: string[];
}

export class FlagError extends Error {}

/**
 * Parses argv against specs. With interspersed false (docker run, exec), parsing stops at the
 * first positional argument, so the container's own command keeps its flags.
 */
export function parseFlags(argv: string[], specs: FlagSpec[], interspersed = true): ParsedFlags {
  const byName = new Map<string, FlagSpec>();
  const byShort = new Map<string, FlagSpec>();
  for (const s of specs) {
    byName.set(s.name, s);
    if (s.short) byShort.set(s.short, s);
  }
  const values: Record<string, unknown> = {};
  for (const s of specs) values[s.name] = s.type === 'list' ? [...((s.default as string[]) ?? [])] : s.default ?? (s.type === 'bool' ? false : undefined);
  const given = new Set<string>();
  const args: string[] = [];

  const set = (spec: FlagSpec, raw: string | undefined, next: () => string): void => {
    if (spec.type === 'bool') {
      if (raw === undefined) values[spec.name] = true;
      else if (['true', '1', 't', 'T', 'TRUE', 'True'].includes(raw)) values[spec.name] = true;
      else if (['false', '0', 'f', 'F', 'FALSE', 'False'].includes(raw)) values[spec.name] = false;
      else throw new FlagError(`invalid argument "${raw}" for "--${spec.name}" flag: strconv.ParseBool: parsing "${raw}": invalid syntax`);
    } else {
      const v = raw ?? next();
      if (spec.type === 'list') {
        if (!given.has(spec.name)) values[spec.name] = [];
        (values[spec.name] as string[]).push(v);
      } else if (spec.type === 'int') {
        if (!/^-?\d+$/.test(v)) throw new FlagError(`invalid argument "${v}" for "--${spec.name}" flag: strconv.ParseInt: parsing "${v}": invalid syntax`);
        values[spec.name] = Number(v);
      } else values[spec.name] = v;
    }
    given.add(spec.name);
  };

  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = (flag: string) => (): string => {
      if (i + 1 >= argv.length) throw new FlagError(`flag needs an argument: ${flag}`);
      return argv[++i];
    };
    if (a === '--') {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--') && a.length > 2) {
      const eq = a.indexOf('=');
      const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      const spec = byName.get(name);
      if (!spec) throw new FlagError(`unknown flag: --${name}`);
      set(spec, eq >= 0 ? a.slice(eq + 1) : undefined, next(`--${name}`));
    } else if (a.startsWith('-') && a.length > 1) {
      // Grouped shorts: -it, -p8080:80, -eFOO=bar
      for (let j = 1; j < a.length; j++) {
        const spec = byShort.get(a[j]);
        if (!spec) throw new FlagError(`unknown shorthand flag: '${a[j]}' in ${a}`);
        if (spec.type === 'bool') {
          set(spec, undefined, next(`-${a[j]}`));
          continue;
        }
        const rest = a.slice(j + 1);
        set(spec, rest.length > 0 ? rest.replace(/^=/, '') : undefined, next(`'${a[j]}' in -${a[j]}`));
        break;
      }
    } else {
      args.push(a);
      if (!interspersed) {
        args.push(...argv.slice(i + 1));
        break;
      }
    }
  }
  return { values, given, args };
}

/** Parses docker's KEY=VALUE lists (labels, build args); a bare KEY gives "" unless from env. */
export function parseKeyValues(list: string[], what = 'label'): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    if (eq === 0) throw invalidParameter(`invalid ${what} format: ${item}`);
    if (eq < 0) out[item] = '';
    else out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}
