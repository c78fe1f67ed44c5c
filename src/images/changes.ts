// Dockerfile instructions applied to an image config without running anything: the `changes` of
// `docker import -c` and `docker commit -c`. They are parsed by the builder's Dockerfile parser
// and their words substituted as the builder does (against the config's own Env), so there is one
// Dockerfile grammar in berth. Only instructions that change metadata are allowed, as in docker.
import { invalidParameter } from '../common/errors';
import type { CommandLine } from '../build/dockerfile';
import type { ImageRunConfig } from './types';

const ALLOWED = ['CMD', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'HEALTHCHECK', 'LABEL', 'ONBUILD', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR'];

function setEnv(env: string[], key: string, value: string): string[] {
  const out = env.filter((e) => e.split('=')[0] !== key);
  out.push(`${key}=${value}`);
  return out;
}

/** Exec form as written; shell form behind the config's SHELL (default /bin/sh -c). */
function commandArgs(cmd: CommandLine, cfg: ImageRunConfig): string[] {
  return cmd.prependShell ? [...(cfg.Shell ?? ['/bin/sh', '-c']), ...cmd.args] : cmd.args;
}

/** Applies each change line (e.g. `CMD ["sh"]`, `ENV A=b`) to a copy of cfg. */
export function applyChanges(cfg: ImageRunConfig, changes: string[]): ImageRunConfig {
  // The Dockerfile parser is loaded on first use, not by an idle daemon.
  const { parseInstruction } = require('../build/dockerfile') as typeof import('../build/dockerfile');
  const { envLookup, processWord, processWords } = require('../build/shell') as typeof import('../build/shell');
  const out: ImageRunConfig = structuredClone(cfg);
  for (const line of changes) {
    const trimmed = line.trim();
    if (trimmed === '') continue;
    const keyword = trimmed.split(/\s/, 1)[0].toUpperCase();
    if (!ALLOWED.includes(keyword)) throw invalidParameter(`${keyword} is not a valid change command`);
    const ins = parseInstruction(trimmed);
    const word = (w: string): string => processWord(w, envLookup(out.Env ?? []));
    switch (ins.kind) {
      case 'CMD':
        out.Cmd = commandArgs(ins.command, out);
        break;
      case 'ENTRYPOINT':
        out.Entrypoint = commandArgs(ins.command, out);
        // As in a Dockerfile, a new ENTRYPOINT resets the CMD inherited from before.
        out.Cmd = out.Cmd ?? null;
        break;
      case 'ENV':
        for (const kv of ins.pairs) out.Env = setEnv(out.Env ?? [], kv.key, word(kv.value));
        break;
      case 'LABEL':
        out.Labels = { ...(out.Labels ?? {}) };
        for (const kv of ins.pairs) out.Labels[word(kv.key)] = word(kv.value);
        break;
      case 'EXPOSE':
        out.ExposedPorts = { ...(out.ExposedPorts ?? {}) };
        for (const p of ins.ports.flatMap((w) => processWords(w, envLookup(out.Env ?? [])))) {
          const [port, proto = 'tcp'] = p.split('/');
          if (!/^\d+(-\d+)?$/.test(port) || !['tcp', 'udp', 'sctp'].includes(proto.toLowerCase())) throw invalidParameter(`invalid containerPort: ${p}`);
          out.ExposedPorts[`${port}/${proto.toLowerCase()}`] = {};
        }
        break;
      case 'VOLUME':
        out.Volumes = { ...(out.Volumes ?? {}) };
        for (const v of ins.paths.map(word)) {
          if (v.trim() === '') throw invalidParameter('VOLUME specified can not be an empty string');
          out.Volumes[v] = {};
        }
        break;
      case 'WORKDIR': {
        const dir = word(ins.path);
        out.WorkingDir = dir.startsWith('/') ? dir : `${out.WorkingDir ?? '/'}/${dir}`.replace(/\/+/g, '/');
        break;
      }
      case 'USER':
        out.User = word(ins.user);
        break;
      case 'STOPSIGNAL':
        out.StopSignal = word(ins.signal);
        break;
      case 'ONBUILD':
        out.OnBuild = [...(out.OnBuild ?? []), ins.expression];
        break;
      case 'HEALTHCHECK':
        out.Healthcheck = ins.health;
        break;
    }
  }
  return out;
}
