// Dockerfile instructions applied to an image config without running anything: the `changes` of
// `docker import -c` and `docker commit -c`. Only instructions that change metadata are allowed,
// as in docker.
import { invalidParameter } from '../common/errors';
import type { ImageRunConfig } from './types';

const ALLOWED = ['CMD', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'HEALTHCHECK', 'LABEL', 'ONBUILD', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR'];

/** JSON array form (exec form) when the text is a JSON array of strings; otherwise undefined. */
function jsonArray(text: string): string[] | undefined {
  const t = text.trim();
  if (!t.startsWith('[')) return undefined;
  try {
    const v = JSON.parse(t) as unknown;
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
  } catch {}
  return undefined;
}

/** Splits KEY=VALUE pairs with docker's quoting rules (quotes and backslashes group words). */
export function splitWords(text: string): string[] {
  const words: string[] = [];
  let cur = '';
  let quote: string | null = null;
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"' && i + 1 < text.length) cur += text[++i];
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < text.length) {
      cur += text[++i];
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
  if (quote) throw invalidParameter(`unexpected end of statement while looking for matching ${quote}`);
  if (inWord) words.push(cur);
  return words;
}

function keyValues(instr: string, rest: string): [string, string][] {
  const words = splitWords(rest);
  if (words.length === 0) throw invalidParameter(`${instr} requires at least one argument`);
  if (!words[0].includes('=')) {
    // Legacy form: ENV KEY value with spaces
    const m = /^\s*(\S+)\s+(.*)$/.exec(rest);
    if (!m) throw invalidParameter(`${instr} requires at least two arguments`);
    return [[m[1], m[2].trim()]];
  }
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq <= 0) throw invalidParameter(`${instr} names can not be blank`);
    return [w.slice(0, eq), w.slice(eq + 1)];
  });
}

function setEnv(env: string[], key: string, value: string): string[] {
  const out = env.filter((e) => e.split('=')[0] !== key);
  out.push(`${key}=${value}`);
  return out;
}

/** Applies each change line (e.g. `CMD ["sh"]`, `ENV A=b`) to a copy of cfg. */
export function applyChanges(cfg: ImageRunConfig, changes: string[]): ImageRunConfig {
  const out: ImageRunConfig = structuredClone(cfg);
  for (const line of changes) {
    const trimmed = line.trim();
    if (trimmed === '') continue;
    const m = /^(\S+)\s*(.*)$/s.exec(trimmed)!;
    const instr = m[1].toUpperCase();
    const rest = m[2];
    if (!ALLOWED.includes(instr)) throw invalidParameter(`${instr} is not a valid change command`);
    switch (instr) {
      case 'CMD':
      case 'ENTRYPOINT': {
        const argv = jsonArray(rest) ?? (rest.trim() === '' ? [] : ['/bin/sh', '-c', rest]);
        if (instr === 'CMD') out.Cmd = argv;
        else {
          out.Entrypoint = argv;
          // As in a Dockerfile, a new ENTRYPOINT resets the CMD inherited from before.
          out.Cmd = out.Cmd ?? null;
        }
        break;
      }
      case 'ENV':
        for (const [k, v] of keyValues(instr, rest)) out.Env = setEnv(out.Env ?? [], k, v);
        break;
      case 'LABEL':
        out.Labels = out.Labels ?? {};
        for (const [k, v] of keyValues(instr, rest)) out.Labels[k] = v;
        break;
      case 'EXPOSE':
        out.ExposedPorts = out.ExposedPorts ?? {};
        for (const p of splitWords(rest)) {
          const [port, proto = 'tcp'] = p.split('/');
          if (!/^\d+(-\d+)?$/.test(port) || !['tcp', 'udp', 'sctp'].includes(proto.toLowerCase())) throw invalidParameter(`invalid containerPort: ${p}`);
          out.ExposedPorts[`${port}/${proto.toLowerCase()}`] = {};
        }
        break;
      case 'VOLUME': {
        const vols = jsonArray(rest) ?? splitWords(rest);
        out.Volumes = out.Volumes ?? {};
        for (const v of vols) {
          if (v === '') throw invalidParameter('VOLUME specified can not be an empty string');
          out.Volumes[v] = {};
        }
        break;
      }
      case 'WORKDIR': {
        const dir = rest.trim();
        out.WorkingDir = dir.startsWith('/') ? dir : `${out.WorkingDir ?? '/'}/${dir}`.replace(/\/+/g, '/');
        break;
      }
      case 'USER':
        out.User = rest.trim();
        break;
      case 'STOPSIGNAL':
        out.StopSignal = rest.trim();
        break;
      case 'ONBUILD':
        out.OnBuild = [...(out.OnBuild ?? []), rest.trim()];
        break;
      case 'HEALTHCHECK': {
        const t = rest.trim();
        if (t.toUpperCase() === 'NONE') out.Healthcheck = { Test: ['NONE'] };
        else {
          const cm = /^CMD\s+(.*)$/is.exec(t);
          if (!cm) throw invalidParameter('Unknown type in HEALTHCHECK (try CMD)');
          const argv = jsonArray(cm[1]);
          out.Healthcheck = { Test: argv ? ['CMD', ...argv] : ['CMD-SHELL', cm[1]] };
        }
        break;
      }
    }
  }
  return out;
}
