// Pieces shared by several command files: the y/N prompt and the type-agnostic inspect.
import { DaemonError } from '../client';
import { formatFlag, type CommandContext, type CommandSpec } from '../command';

/** docker's confirmation prompt; anything but y/yes (case-insensitive) declines. */
export async function confirm(ctx: CommandContext, warning: string): Promise<boolean> {
  ctx.out(`${warning}\nAre you sure you want to continue? [y/N] `);
  const line = await readLine(ctx.io.stdin);
  return /^\s*y(es)?\s*$/i.test(line);
}

function readLine(stdin: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve) => {
    let buf = '';
    const onData = (c: Buffer | string): void => {
      buf += c.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) done(buf.slice(0, nl));
    };
    const done = (s: string): void => {
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      stdin.pause();
      resolve(s);
    };
    const onEnd = (): void => done(buf);
    stdin.on('data', onData);
    stdin.on('end', onEnd);
    stdin.resume();
  });
}

type Kind = 'container' | 'image' | 'network' | 'volume';

const PATHS: Record<Kind, (name: string, size: boolean) => string> = {
  container: (n, size) => `/containers/${encodeURIComponent(n)}/json${size ? '?size=1' : ''}`,
  image: (n) => `/images/${encodeURIComponent(n)}/json`,
  network: (n) => `/networks/${encodeURIComponent(n)}`,
  volume: (n) => `/volumes/${encodeURIComponent(n)}`,
};

/** `berth inspect`: each name is looked up as a container, then image, network, volume. */
export function inspectCommand(print: (ctx: CommandContext, objects: unknown[], format: string | undefined) => void): CommandSpec {
  return {
    paths: [['inspect']],
    usage: '[OPTIONS] NAME|ID [NAME|ID...]',
    description: 'Return low-level information on berth objects',
    flags: [
      formatFlag(false),
      { name: 'size', short: 's', type: 'bool', description: 'Display total file sizes if the type is container' },
      { name: 'type', type: 'string', description: 'Only inspect objects of the given type' },
    ],
    args: { min: 1 },
    async run(ctx, f) {
      const type = f.values.type as string | undefined;
      if (type && !(type in PATHS)) throw new Error(`"${type}" is not a valid value for --type`);
      const kinds: Kind[] = type ? [type as Kind] : ['container', 'image', 'network', 'volume'];
      const found: unknown[] = [];
      const errors: string[] = [];
      for (const name of f.args) {
        let obj: unknown;
        let lastErr: DaemonError | undefined;
        for (const k of kinds) {
          try {
            obj = await ctx.client.json('GET', PATHS[k](name, Boolean(f.values.size)));
            break;
          } catch (e) {
            if (!(e instanceof DaemonError)) throw e;
            // 404 covers both "no such object" and endpoints this daemon does not have yet.
            if (e.status !== 404) {
              lastErr = e;
              break;
            }
          }
        }
        if (obj !== undefined) found.push(obj);
        else if (lastErr) errors.push(`Error response from daemon: ${lastErr.message}`);
        else errors.push(type ? `Error: No such ${type}: ${name}` : `Error: No such object: ${name}`);
      }
      print(ctx, found, f.values.format as string | undefined);
      for (const e of errors) ctx.err(`${e}\n`);
      return errors.length ? 1 : 0;
    },
  };
}

/**
 * Runs fn for each name in turn, as docker's rm-style commands do: a daemon error is printed and
 * makes the exit status 1, and the names after it still run. `ignore` picks daemon errors that
 * are not failures at all (rm -f of something already gone). Any other error is thrown.
 */
export async function forEachName(ctx: CommandContext, names: string[], fn: (name: string) => Promise<void>, ignore?: (e: DaemonError) => boolean): Promise<number> {
  let failed = false;
  for (const n of names) {
    try {
      await fn(n);
    } catch (e) {
      if (!(e instanceof DaemonError)) throw e;
      if (ignore?.(e)) continue;
      ctx.err(`Error response from daemon: ${e.message}\n`);
      failed = true;
    }
  }
  return failed ? 1 : 0;
}

/**
 * docker's `<object> inspect`: gets each name, prints what was found (print), then one line per
 * daemon error; the exit status is 1 when any name failed.
 */
export async function inspectEach(ctx: CommandContext, names: string[], get: (name: string) => Promise<unknown>, print: (found: unknown[]) => void): Promise<number> {
  const found: unknown[] = [];
  const errors: string[] = [];
  for (const n of names) {
    try {
      found.push(await get(n));
    } catch (e) {
      if (!(e instanceof DaemonError)) throw e;
      errors.push(`Error response from daemon: ${e.message}`);
    }
  }
  print(found);
  for (const e of errors) ctx.err(`${e}\n`);
  return errors.length ? 1 : 0;
}
