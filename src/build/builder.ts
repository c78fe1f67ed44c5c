// The classic (non-BuildKit) builder: POST /build. Stages run in order up to the target; every
// step makes an image whose parent is the previous step's (so steps are cacheable and show in
// history). Metadata-only steps (ENV, LABEL, CMD, ...) only write a new config with an
// empty_layer history entry; COPY/ADD/WORKDIR build a layer from a prepared directory; RUN is
// delegated to a BuildExecutor, the container runtime's side of the builder.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { BerthError, invalidParameter, messageOf } from '../common/errors';
import type { Logger } from '../common/logger';
import type { ImageService } from '../images/service';
import type { ImageConfig, ImageLayer, ImageRunConfig } from '../images/types';
import { familiarString, parseReference, type Reference } from '../images/reference';
import { tarDirectory } from '../archive/create';
import { mountAll, unmountAll } from '../snapshots/mount';
import { DockerIgnore, cleanPath } from './dockerignore';
import { parseDockerfile, parseInstruction, stageIndex, targetStage, type CommandLine, type CopySpec, type Dockerfile, type Instruction, type InstructionOf } from './dockerfile';
import { envLookup, expandHeredoc, processWord, processWords, ShellWordError, type Lookup } from './shell';
import { copyDirContents, copyEntry, extractTarSafely, isLocalArchive, receiveContext, resolveInRoot, resolveSources, type Ownership, type SourceInfo } from './context';
import { BuildCache, cacheKey } from './cache';

// ---- the container side ------------------------------------------------------------------

/** What a RUN step needs from the container runtime, in docker's terms. */
export interface RunStep {
  /** The image the step runs on (its top layer is the container's lower layer). */
  parentImage: string;
  /** The full argv (shell already prepended for shell form). */
  cmd: string[];
  /** The image's Env plus the build args in effect (docker passes both to RUN). */
  env: string[];
  user: string;
  workdir: string;
  /** The image's runtime config with cmd/env above applied (entrypoint cleared), for the container config. */
  runConfig: ImageRunConfig;
  /** POST /build networkmode ('' means default bridge). */
  network: string;
  extraHosts: string[];
  shmSize?: number;
  memory?: number;
  memorySwap?: number;
  cpuShares?: number;
  cpuSetCpus?: string;
  cpuQuota?: number;
  cpuPeriod?: number;
  ulimits?: { Name: string; Soft: number; Hard: number }[];
  isolation?: string;
}

/**
 * The container runtime's part of a build (implemented by the containers subsystem). A build
 * container is like `docker create` + `start` + wait with stdout/stderr merged into the build
 * output, then a diff of its writable layer, then removal.
 */
export interface BuildExecutor {
  /** Creates the step's container (not started); returns its ID. */
  create(step: RunStep): Promise<string>;
  /** Starts it, streams its merged output, resolves with the exit code when it exits. */
  start(containerId: string, output: (chunk: Buffer) => void, signal?: AbortSignal): Promise<number>;
  /**
   * The container's filesystem changes as an uncompressed OCI layer tar (overlayUpperToLayer of
   * its upper dir, whiteouts included); the container is stopped by then.
   */
  diff(containerId: string): Promise<Readable>;
  /** Removes the container and its writable layer. */
  remove(containerId: string): Promise<void>;
}

/** Builds without a container runtime: RUN fails clearly, everything else works. */
export const noRunExecutor: BuildExecutor = {
  create: () => Promise.reject(invalidParameter('RUN needs the container runtime, which this daemon does not provide')),
  start: () => Promise.reject(new Error('unreachable')),
  diff: () => Promise.reject(new Error('unreachable')),
  remove: () => Promise.resolve(),
};

// ---- parameters ----------------------------------------------------------------------------

export interface BuildParams {
  dockerfile: string;
  tags: string[];
  buildArgs: Record<string, string | null>;
  labels: Record<string, string>;
  target?: string;
  noCache: boolean;
  pull: boolean;
  rm: boolean;
  forceRm: boolean;
  quiet: boolean;
  cacheFrom: string[];
  networkMode: string;
  platform?: string;
  shmSize?: number;
  memory?: number;
  memorySwap?: number;
  cpuShares?: number;
  cpuSetCpus?: string;
  cpuQuota?: number;
  cpuPeriod?: number;
  extraHosts: string[];
  ulimits?: { Name: string; Soft: number; Hard: number }[];
  remote?: string;
}

function jsonParam<T>(q: URLSearchParams, name: string, fallback: T): T {
  const raw = q.get(name);
  if (raw === null || raw === '') return fallback;
  try {
    return JSON.parse(raw) as T;
  } catch {
    throw invalidParameter(`invalid ${name} parameter: ${raw}`);
  }
}

function boolQ(q: URLSearchParams, name: string, def: boolean): boolean {
  const v = q.get(name);
  if (v === null || v === '') return def;
  return !['0', 'false', 'no'].includes(v.toLowerCase());
}

function intQ(q: URLSearchParams, name: string): number | undefined {
  const v = q.get(name);
  if (v === null || v === '') return undefined;
  if (!/^-?\d+$/.test(v)) throw invalidParameter(`invalid ${name} parameter: ${v}`);
  return parseInt(v, 10);
}

/** The POST /build query, as dockerd reads it. */
export function parseBuildParams(q: URLSearchParams): BuildParams {
  const cacheFrom = jsonParam<string[]>(q, 'cachefrom', []);
  const extraHosts = q.getAll('extrahosts').flatMap((h) => h.split(',')).filter(Boolean);
  const version = q.get('version');
  if (version === '2') throw invalidParameter('BuildKit (version=2) is not supported by berth; use the classic builder (DOCKER_BUILDKIT=0)');
  return {
    dockerfile: q.get('dockerfile') || 'Dockerfile',
    tags: q.getAll('t').filter(Boolean),
    buildArgs: jsonParam<Record<string, string | null>>(q, 'buildargs', {}),
    labels: jsonParam<Record<string, string>>(q, 'labels', {}),
    target: q.get('target') || undefined,
    noCache: boolQ(q, 'nocache', false),
    pull: boolQ(q, 'pull', false),
    rm: boolQ(q, 'rm', true),
    forceRm: boolQ(q, 'forcerm', false),
    quiet: boolQ(q, 'q', false),
    cacheFrom: Array.isArray(cacheFrom) ? cacheFrom : [],
    networkMode: q.get('networkmode') || '',
    platform: q.get('platform') || undefined,
    shmSize: intQ(q, 'shmsize'),
    memory: intQ(q, 'memory'),
    memorySwap: intQ(q, 'memswap'),
    cpuShares: intQ(q, 'cpushares'),
    cpuSetCpus: q.get('cpusetcpus') || undefined,
    cpuQuota: intQ(q, 'cpuquota'),
    cpuPeriod: intQ(q, 'cpuperiod'),
    extraHosts,
    ulimits: jsonParam<{ Name: string; Soft: number; Hard: number }[] | undefined>(q, 'ulimits', undefined),
    remote: q.get('remote') || undefined,
  };
}

// ---- the builder ---------------------------------------------------------------------------

export interface BuilderDeps {
  images: ImageService;
  cache: BuildCache;
  executor: BuildExecutor;
  /** A directory for contexts and layer staging (on the data root's file system). */
  tmpRoot: string;
  log: Logger;
  /** Pulls an image (FROM with pull=1, or a FROM image not present); absent: no pulling. */
  pull?: (ref: string, platform: string | undefined, progress: (msg: object) => void) => Promise<void>;
}

/** Build args any Dockerfile may use without declaring them (docker's builtinAllowedBuildArgs). */
const BUILTIN_ARGS = new Set(['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy']);
const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const DEFAULT_SHELL = ['/bin/sh', '-c'];
/** The diffID of a tar with no entries: a step that changed nothing adds no layer. */
const EMPTY_TAR_DIFFID = 'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef';

function short(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12);
}

/** Go's %q-ish rendering of a string list, as docker's history shows CMD/ENTRYPOINT/SHELL. */
function goList(list: string[]): string {
  return `[${list.map((s) => JSON.stringify(s)).join(' ')}]`;
}

function goArch(): string {
  return ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x' } as Record<string, string>)[process.arch] ?? process.arch;
}

/** A failure inside a step: reported in the stream, with docker's optional exit code. */
class StepError extends Error {
  constructor(
    message: string,
    readonly code?: number,
  ) {
    super(message);
  }
}

interface StageState {
  /** The image the next step builds on; '' before any step of a FROM scratch stage. */
  imageId: string;
  config: ImageConfig;
  layers: ImageLayer[];
  /** ARGs declared in this stage, with their values (undefined: declared without a value). */
  args: Map<string, string | undefined>;
  cmdSet: boolean;
}

interface BuildRun {
  params: BuildParams;
  df: Dockerfile;
  contextDir: string;
  /** Stage results by index. */
  stageImages: string[];
  metaArgs: Map<string, string | undefined>;
  /** Build args an ARG declared (to warn about the others). */
  usedArgs: Set<string>;
  out: (text: string) => void;
  step: number;
  total: number;
  /** Aborted when the client went away or the build was cancelled. */
  signal?: AbortSignal;
}

export class Builder {
  constructor(private readonly deps: BuilderDeps) {}

  /**
   * Runs a build. Errors before the first message are thrown (the route turns them into an HTTP
   * error, as dockerd does for a bad Dockerfile); later ones are sent as an errorDetail message.
   * Resolves with the image ID, or undefined when the build failed after output started.
   */
  async build(params: BuildParams, context: Readable, send: (msg: object) => void, signal?: AbortSignal): Promise<string | undefined> {
    let started = false;
    const emit = (msg: object): void => {
      started = true;
      send(msg);
    };
    const out = (text: string): void => {
      if (!params.quiet) emit({ stream: text });
    };
    if (params.remote) throw invalidParameter('building from a remote context (remote=) is not supported; send the context as the request body');
    if (params.platform && !params.platform.startsWith('linux')) throw invalidParameter(`"${params.platform}": unsupported platform`);
    const tagRefs = params.tags.map(parseTag);
    fs.mkdirSync(this.deps.tmpRoot, { recursive: true, mode: 0o700 });
    const contextDir = fs.mkdtempSync(path.join(this.deps.tmpRoot, 'context-'));
    try {
      const received = await receiveContext(context, contextDir, 'Dockerfile');
      const dockerfileName = received.dockerfileOnly ? 'Dockerfile' : params.dockerfile;
      const text = readDockerfile(contextDir, dockerfileName);
      removeIgnoredBuildFiles(contextDir, dockerfileName);
      const df = parseDockerfile(text, { filename: dockerfileName });
      const target = targetStage(df, params.target);
      df.stages = df.stages.slice(0, target + 1);
      const labelKeys = Object.keys(params.labels).sort();
      const total = df.metaArgs.length + df.stages.reduce((n, s) => n + 1 + s.instructions.length, 0) + labelKeys.length;
      const run: BuildRun = { params, df, contextDir, stageImages: [], metaArgs: new Map(), usedArgs: new Set(), out, step: 0, total, signal };
      try {
        for (const w of df.warnings) out(w + '\n');
        for (const a of df.metaArgs) {
          this.stepLine(run, a.original);
          for (const def of a.args) {
            const lookup: Lookup = (n) => run.metaArgs.get(n);
            const value = def.key in params.buildArgs && params.buildArgs[def.key] !== null ? params.buildArgs[def.key]! : def.value === undefined ? undefined : processWord(def.value, lookup, df.directives.escape);
            run.metaArgs.set(def.key, value);
            run.usedArgs.add(def.key);
          }
        }
        let finalState: StageState | undefined;
        for (const stage of df.stages) {
          const extra = stage.index === df.stages.length - 1 ? labelKeys.map((k) => ({ key: k, value: params.labels[k] })) : [];
          finalState = await this.runStage(run, stage.index, extra);
          run.stageImages[stage.index] = finalState.imageId;
        }
        const imageId = finalState?.imageId;
        if (!imageId) throw new StepError('No image was generated. Is your Dockerfile empty?');
        const unused = Object.keys(params.buildArgs).filter((k) => !run.usedArgs.has(k) && !BUILTIN_ARGS.has(k)).sort();
        if (unused.length) out(`[Warning] One or more build-args [${unused.join(' ')}] were not consumed\n`);
        emit({ aux: { ID: imageId } });
        if (params.quiet) emit({ stream: `${imageId}\n` });
        out(`Successfully built ${short(imageId)}\n`);
        for (const ref of tagRefs) {
          await this.deps.images.tag(imageId, familiarString({ ...ref, tag: undefined }), ref.tag ?? 'latest');
          out(`Successfully tagged ${familiarString({ ...ref, tag: ref.tag ?? 'latest' })}\n`);
        }
        return imageId;
      } catch (err) {
        const message = err instanceof ShellWordError ? `failed to process "${messageOf(err)}"` : messageOf(err);
        if (!started && err instanceof BerthError) throw err;
        const code = err instanceof StepError ? err.code : undefined;
        emit({ errorDetail: code !== undefined ? { code, message } : { message }, error: message });
        return undefined;
      }
    } finally {
      fs.rmSync(contextDir, { recursive: true, force: true });
    }
  }

  private stepLine(run: BuildRun, text: string): void {
    if (run.signal?.aborted) throw new StepError('the build was cancelled');
    run.step++;
    run.out(`Step ${run.step}/${run.total} : ${text}\n`);
  }

  private async runStage(run: BuildRun, index: number, extraLabels: { key: string; value: string }[]): Promise<StageState> {
    const stage = run.df.stages[index];
    const esc = run.df.directives.escape;
    this.stepLine(run, stage.from.original);
    const state = await this.beginStage(run, stage.from);
    run.out(` ---> ${state.imageId ? short(state.imageId) : ''}\n`);
    const triggers = state.config.config?.OnBuild ?? [];
    if (triggers.length) {
      run.out(`# Executing ${triggers.length} build trigger${triggers.length > 1 ? 's' : ''}\n`);
      const config = { ...state.config, config: { ...state.config.config, OnBuild: [] } };
      state.config = config;
      for (const t of triggers) await this.dispatch(run, state, parseInstruction(t, esc), esc, true);
    }
    for (const ins of stage.instructions) {
      this.stepLine(run, ins.original);
      await this.dispatch(run, state, ins, esc, false);
      run.out(` ---> ${short(state.imageId)}\n`);
    }
    for (const l of extraLabels) {
      const original = `LABEL ${l.key}=${l.value}`;
      this.stepLine(run, original);
      // Labels from the request are not substituted (docker adds them with NoExp).
      await this.dispatch(run, state, { kind: 'LABEL', line: 0, original, pairs: [{ key: l.key, value: `'${l.value.replace(/'/g, `'"'"'`)}'` }] }, esc, false);
      run.out(` ---> ${short(state.imageId)}\n`);
    }
    return state;
  }

  private async beginStage(run: BuildRun, from: InstructionOf<'FROM'>): Promise<StageState> {
    const esc = run.df.directives.escape;
    let name: string;
    try {
      name = processWord(from.image, (n) => run.metaArgs.get(n), esc);
    } catch (err) {
      throw new StepError(messageOf(err));
    }
    if (name === '') throw new StepError('base name (' + from.image + ') should not be blank');
    const args = new Map<string, string | undefined>();
    if (name.toLowerCase() === 'scratch') {
      const config: ImageConfig = { architecture: goArch(), os: 'linux', config: { Env: [DEFAULT_PATH] }, rootfs: { type: 'layers', diff_ids: [] }, history: [] };
      return { imageId: '', config, layers: [], args, cmdSet: false };
    }
    const stageRef = stageIndex(run.df, name);
    let imageId: string;
    if (stageRef !== undefined && run.stageImages[stageRef] !== undefined) {
      imageId = run.stageImages[stageRef];
    } else {
      imageId = await this.baseImage(run, name);
    }
    const { record, config } = await this.deps.images.resolve(imageId);
    const cfg = JSON.parse(JSON.stringify(config)) as ImageConfig;
    cfg.config ??= {};
    if (!(cfg.config.Env ?? []).some((e) => e.startsWith('PATH='))) cfg.config.Env = [...(cfg.config.Env ?? []), DEFAULT_PATH];
    return { imageId: record.id, config: cfg, layers: record.layers, args, cmdSet: false };
  }

  private async baseImage(run: BuildRun, name: string): Promise<string> {
    const { images, pull } = this.deps;
    const pullIt = async (): Promise<void> => {
      if (!pull) throw new StepError(`pull access denied for ${name}: this daemon cannot pull images; load or import it first`);
      await pull(name, run.params.platform, (msg) => this.forward(run, msg));
    };
    // Without a puller, pull=1 (docker build --pull) is ignored: the local image is used.
    if (run.params.pull && pull) await pullIt();
    try {
      return images.lookup(name).record.id;
    } catch (err) {
      if (!(err instanceof BerthError && err.kind === 'NotFound')) throw err;
      if (run.params.pull || !pull) throw new StepError(messageOf(err));
      await pullIt();
      return images.lookup(name).record.id;
    }
  }

  private forward(run: BuildRun, msg: object): void {
    const m = msg as { status?: string; id?: string };
    if (m.status) run.out(`${m.id ? m.id + ': ' : ''}${m.status}\n`);
  }

  /** The variables visible to substitution: ENV wins over ARG, as in docker. */
  private lookup(state: StageState): Lookup {
    const env = envLookup(state.config.config?.Env ?? []);
    return (n) => env(n) ?? state.args.get(n);
  }

  /** Build args in effect for RUN: declared with a value, not shadowed by ENV; plus builtin proxies. */
  private argsInEffect(run: BuildRun, state: StageState): string[] {
    const env = envLookup(state.config.config?.Env ?? []);
    const out: string[] = [];
    for (const [k, v] of [...state.args].sort(([a], [b]) => a.localeCompare(b))) if (v !== undefined && env(k) === undefined) out.push(`${k}=${v}`);
    for (const k of Object.keys(run.params.buildArgs).sort()) {
      const v = run.params.buildArgs[k];
      if (BUILTIN_ARGS.has(k) && v !== null && !state.args.has(k)) out.push(`${k}=${v}`);
    }
    return out;
  }

  private async dispatch(run: BuildRun, state: StageState, ins: Instruction, esc: string, trigger: boolean): Promise<void> {
    const lookup = this.lookup(state);
    const word = (w: string): string => {
      try {
        return processWord(w, lookup, esc);
      } catch (err) {
        throw new StepError(`failed to process "${w}": ${messageOf(err)}`);
      }
    };
    const rc: ImageRunConfig = JSON.parse(JSON.stringify(state.config.config ?? {})) as ImageRunConfig;
    const meta = (comment: string, extra?: () => void): Promise<void> => {
      extra?.();
      return this.commitMetadata(run, state, rc, comment);
    };
    void trigger;
    switch (ins.kind) {
      case 'ENV': {
        const pairs = ins.pairs.map((p) => `${word(p.key)}=${word(p.value)}`);
        const env = [...(rc.Env ?? [])];
        for (const kv of pairs) {
          const key = kv.slice(0, kv.indexOf('='));
          const at = env.findIndex((e) => e === key || e.startsWith(key + '='));
          if (at >= 0) env[at] = kv;
          else env.push(kv);
        }
        rc.Env = env;
        return meta(`ENV ${pairs.join(' ')}`);
      }
      case 'LABEL': {
        const pairs = ins.pairs.map((p) => [word(p.key), word(p.value)] as const);
        rc.Labels = { ...(rc.Labels ?? {}) };
        for (const [k, v] of pairs) rc.Labels[k] = v;
        return meta(`LABEL ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`);
      }
      case 'ARG': {
        const parts: string[] = [];
        for (const def of ins.args) {
          const given = run.params.buildArgs[def.key];
          let value: string | undefined;
          if (given !== undefined && given !== null) value = given;
          else if (def.value !== undefined) value = word(def.value);
          else value = run.metaArgs.get(def.key);
          state.args.set(def.key, value);
          run.usedArgs.add(def.key);
          parts.push(def.value !== undefined ? `${def.key}=${word(def.value)}` : def.key);
        }
        return meta(`ARG ${parts.join(' ')}`);
      }
      case 'MAINTAINER':
        state.config = { ...state.config, author: ins.maintainer };
        return meta(`MAINTAINER ${ins.maintainer}`);
      case 'EXPOSE': {
        const ports = ins.ports.flatMap((p) => processWords(p, lookup, esc)).flatMap(expandPorts);
        rc.ExposedPorts = { ...(rc.ExposedPorts ?? {}) };
        for (const p of ports) rc.ExposedPorts[p] = {};
        return meta(`EXPOSE ${[...new Set(ports)].sort().join(' ')}`);
      }
      case 'USER':
        rc.User = word(ins.user);
        return meta(`USER ${rc.User}`);
      case 'STOPSIGNAL': {
        const sig = word(ins.signal);
        if (!/^(SIG)?[A-Z0-9+-]+$/i.test(sig)) throw new StepError(`Invalid signal: ${sig}`);
        rc.StopSignal = sig;
        return meta(`STOPSIGNAL ${sig}`);
      }
      case 'VOLUME': {
        const paths = ins.paths.map(word);
        if (paths.some((p) => p.trim() === '')) throw new StepError('VOLUME specified can not be an empty string');
        rc.Volumes = { ...(rc.Volumes ?? {}) };
        for (const p of paths) rc.Volumes[p] = {};
        return meta(`VOLUME ${goList(paths)}`);
      }
      case 'HEALTHCHECK': {
        const hc = ins.health;
        if (rc.Healthcheck && hc.Test?.[0] !== 'NONE') {
          run.out(`Note: overriding previous HEALTHCHECK: ${goList(rc.Healthcheck.Test ?? [])}\n`);
        }
        rc.Healthcheck = hc;
        return meta(`HEALTHCHECK &{${goList(hc.Test ?? [])} "${hc.Interval ?? 0}" "${hc.Timeout ?? 0}" "${hc.StartPeriod ?? 0}" "${hc.StartInterval ?? 0}" '${hc.Retries ?? 0}'}`);
      }
      case 'SHELL':
        rc.Shell = ins.shell;
        return meta(`SHELL ${goList(ins.shell)}`);
      case 'CMD': {
        rc.Cmd = this.commandArgs(ins.command, rc);
        state.cmdSet = true;
        return meta(`CMD ${goList(rc.Cmd)}`);
      }
      case 'ENTRYPOINT': {
        rc.Entrypoint = this.commandArgs(ins.command, rc);
        // A new entrypoint drops an inherited CMD (it belonged to the old entrypoint).
        if (!state.cmdSet) rc.Cmd = null;
        return meta(`ENTRYPOINT ${goList(rc.Entrypoint)}`);
      }
      case 'ONBUILD':
        rc.OnBuild = [...(rc.OnBuild ?? []), ins.expression];
        return meta(`ONBUILD ${ins.expression}`);
      case 'WORKDIR': {
        const p = word(ins.path);
        rc.WorkingDir = cleanPath(p.startsWith('/') ? p : path.posix.join(rc.WorkingDir || '/', p));
        return this.commitWorkdir(run, state, rc);
      }
      case 'COPY':
      case 'ADD':
        return this.copy(run, state, ins, rc, word);
      case 'RUN':
        return this.runStep(run, state, ins, rc);
      case 'FROM':
        throw new StepError('FROM is not allowed here');
    }
  }

  private commandArgs(c: CommandLine, rc: ImageRunConfig): string[] {
    return c.prependShell ? [...(rc.Shell ?? DEFAULT_SHELL), c.args[0]] : c.args;
  }

  /** A new config on top of the stage's current image; no layer when layer is undefined. */
  private async commitImage(run: BuildRun, state: StageState, rc: ImageRunConfig, createdBy: string, key: string, layer?: ImageLayer): Promise<void> {
    const created = new Date().toISOString();
    const layers = layer ? [...state.layers, layer] : state.layers;
    const prev = state.config;
    const config: ImageConfig = {
      architecture: prev.architecture,
      ...(prev.variant ? { variant: prev.variant } : {}),
      os: prev.os,
      ...(prev.author ? { author: prev.author } : {}),
      created,
      config: rc,
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffID) },
      history: [...(prev.history ?? []), { created, created_by: createdBy, ...(layer ? {} : { empty_layer: true }) }],
    };
    const id = await this.deps.images.addImage(Buffer.from(JSON.stringify(config)), layers, { parent: state.imageId || undefined });
    this.deps.cache.put(key, id);
    state.imageId = id;
    state.config = config;
    state.layers = layers;
  }

  /** Uses the cached image for key; true on a hit. */
  private async fromCache(run: BuildRun, state: StageState, key: string): Promise<boolean> {
    if (run.params.noCache) return false;
    const id = this.deps.cache.get(key, (i) => this.deps.images.store.get(i) !== undefined);
    if (!id) return false;
    const { record, config } = await this.deps.images.resolve(id);
    state.imageId = record.id;
    state.config = JSON.parse(JSON.stringify(config)) as ImageConfig;
    state.layers = record.layers;
    run.out(' ---> Using cache\n');
    return true;
  }

  private keyOf(run: BuildRun, state: StageState, rc: ImageRunConfig, createdBy: string, extra: unknown = null): string {
    return cacheKey({ v: 1, parent: state.imageId || 'scratch', base: state.imageId ? null : state.config, rc, createdBy, args: this.argsInEffect(run, state), author: state.config.author ?? '', extra });
  }

  private async commitMetadata(run: BuildRun, state: StageState, rc: ImageRunConfig, comment: string): Promise<void> {
    const createdBy = `/bin/sh -c #(nop)  ${comment}`;
    const key = this.keyOf(run, state, rc, createdBy);
    if (await this.fromCache(run, state, key)) return;
    await this.commitImage(run, state, rc, createdBy, key);
  }

  // ---- layers ------------------------------------------------------------------------------

  /** Runs fn with the image's root filesystem mounted read-only (an empty dir for no layers). */
  private async withRootfs<T>(layers: ImageLayer[], fn: (root: string) => Promise<T> | T): Promise<T> {
    const dir = fs.mkdtempSync(path.join(this.deps.tmpRoot, 'rootfs-'));
    if (layers.length === 0) {
      try {
        return await fn(dir);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
    const sn = this.deps.images.snapshotter;
    const key = `build-view-${randomBytes(8).toString('hex')}`;
    const mounts = sn.view(key, layers[layers.length - 1].chainID);
    try {
      mountAll(mounts, dir);
      try {
        return await fn(dir);
      } finally {
        unmountAll(dir);
      }
    } finally {
      sn.remove(key);
      fs.rmdirSync(dir);
    }
  }

  /** Turns a staging directory into a stored, unpacked layer on top of the stage's layers. */
  private async layerFromDir(state: StageState, dir: string): Promise<ImageLayer> {
    const ingested = await this.deps.images.ingestLayerStream(tarDirectory(dir));
    return this.unpackOnTop(state, ingested);
  }

  private async unpackOnTop(state: StageState, l: Omit<ImageLayer, 'chainID'>): Promise<ImageLayer> {
    const descs = [...state.layers, { ...l, chainID: '' }].map((x) => ({ digest: x.blobDigest, diffID: x.diffID, mediaType: x.mediaType, size: x.blobSize, uncompressedSize: x.size }));
    const unpacked = await this.deps.images.unpack(descs);
    return unpacked[unpacked.length - 1];
  }

  private async commitWorkdir(run: BuildRun, state: StageState, rc: ImageRunConfig): Promise<void> {
    const createdBy = `/bin/sh -c #(nop) WORKDIR ${rc.WorkingDir}`;
    const key = this.keyOf(run, state, rc, createdBy);
    if (await this.fromCache(run, state, key)) return;
    const wd = rc.WorkingDir ?? '/';
    const layer = await this.withRootfs(state.layers, async (root) => {
      const resolved = resolveInRoot(root, wd);
      if (fs.existsSync(resolved)) return undefined;
      const staging = fs.mkdtempSync(path.join(this.deps.tmpRoot, 'layer-'));
      try {
        ensureDirs(staging, root, path.relative(root, resolved), { uid: 0, gid: 0 });
        return await this.layerFromDir(state, staging);
      } finally {
        fs.rmSync(staging, { recursive: true, force: true });
      }
    });
    await this.commitImage(run, state, rc, createdBy, key, layer);
  }

  private async copy(run: BuildRun, state: StageState, ins: CopySpec & { original: string }, rc: ImageRunConfig, word: (w: string) => string): Promise<void> {
    const cmd = ins.kind;
    const scratch = fs.mkdtempSync(path.join(this.deps.tmpRoot, 'copy-'));
    try {
      // Sources: the context, another stage's image, or an image; heredocs become files.
      let fromLayers: ImageLayer[] | undefined;
      if (ins.from) {
        const from = word(ins.from);
        const idx = stageIndex(run.df, from);
        let id: string | undefined;
        if (idx !== undefined) {
          id = run.stageImages[idx];
          if (id === undefined) throw new StepError(`invalid from flag value ${from}: refers to current build stage`);
          if (id === '') id = undefined;
          fromLayers = id ? (await this.deps.images.resolve(id)).record.layers : [];
        } else {
          id = await this.baseImage(run, from);
          fromLayers = (await this.deps.images.resolve(id)).record.layers;
        }
      }
      const dest = word(ins.dest);
      const destIsDirSyntax = dest.endsWith('/') || dest === '.' || dest.endsWith('/.');
      const destAbs = dest.startsWith('/') ? dest : path.posix.join(rc.WorkingDir || '/', dest);
      const collect = (root: string): SourceInfo[] => {
        const infos: SourceInfo[] = [];
        for (const s of ins.sources) {
          const h = /^<<-?["']?([A-Za-z0-9_./-]+)["']?$/.exec(s);
          const doc = h ? ins.heredocs.find((d) => d.name === h[1]) : undefined;
          if (doc) {
            const content = doc.expand ? expandHeredoc(doc.content, this.lookup(state), run.df.directives.escape) : doc.content;
            const file = path.join(scratch, 'heredoc', path.basename(doc.name));
            fs.mkdirSync(path.dirname(file), { recursive: true });
            fs.writeFileSync(file, content, { mode: 0o644 });
            infos.push({ abs: file, rel: doc.name, isDir: false, checksum: createHash('sha256').update(content).digest('hex') });
            continue;
          }
          const src = word(s);
          if (cmd === 'ADD' && /^[a-z]+:\/\//i.test(src)) throw new StepError('ADD from a URL is not supported by berth yet; download the file into the build context');
          try {
            infos.push(...resolveSources(root, src, cmd));
          } catch (err) {
            throw new StepError(messageOf(err));
          }
        }
        return infos;
      };
      const doCopy = async (srcRoot: string): Promise<void> => {
        const infos = collect(srcRoot);
        if (infos.length > 1 && !destIsDirSyntax) throw new StepError(`When using ${cmd} with more than one source file, the destination must be a directory and end with a /`);
        const kind = infos.length > 1 ? 'multi' : infos[0].isDir ? 'dir' : 'file';
        const sum = infos.length > 1 ? createHash('sha256').update(infos.map((i) => `${i.rel}:${i.checksum}`).join('\n')).digest('hex') : infos[0].checksum;
        const createdBy = `/bin/sh -c #(nop) ${cmd} ${kind}:${sum} in ${destAbs} `;
        const key = this.keyOf(run, state, rc, createdBy, { chown: ins.chown ?? '', chmod: ins.chmod ?? '', files: infos.map((i) => [i.rel, i.checksum]) });
        if (await this.fromCache(run, state, key)) return;
        const layer = await this.withRootfs(state.layers, async (root) => {
          const owner = ins.chown ? resolveChown(root, word(ins.chown)) : { uid: 0, gid: 0 };
          const mode = ins.chmod ? parseInt(ins.chmod, 8) : undefined;
          const staging = fs.mkdtempSync(path.join(this.deps.tmpRoot, 'layer-'));
          try {
            const destResolved = resolveInRoot(root, destAbs, false);
            const destRel = path.relative(root, destResolved);
            let destIsDir = destIsDirSyntax;
            try {
              if (!destIsDir) destIsDir = fs.statSync(resolveInRoot(root, destAbs)).isDirectory();
            } catch {}
            for (const info of infos) {
              if (info.isDir) {
                ensureDirs(staging, root, destRel, owner);
                copyDirContents(info.abs, path.join(staging, destRel), { owner, mode });
              } else if (cmd === 'ADD' && !ins.sources.some((s) => s.startsWith('<<')) && isLocalArchive(info.abs)) {
                ensureDirs(staging, root, destRel, owner);
                const unpacked = fs.mkdtempSync(path.join(this.deps.tmpRoot, 'add-'));
                try {
                  await extractTarSafely(fs.createReadStream(info.abs), unpacked);
                  // Archive contents keep their own ownership and modes, as docker's ADD does.
                  copyArchiveContents(unpacked, path.join(staging, destRel));
                } finally {
                  fs.rmSync(unpacked, { recursive: true, force: true });
                }
              } else {
                const targetRel = destIsDir ? path.join(destRel, path.basename(info.rel)) : destRel;
                ensureDirs(staging, root, path.dirname(targetRel), owner);
                copyEntry(info.abs, path.join(staging, targetRel), { owner, mode });
              }
            }
            return await this.layerFromDir(state, staging);
          } finally {
            fs.rmSync(staging, { recursive: true, force: true });
          }
        });
        await this.commitImage(run, state, rc, createdBy, key, layer);
      };
      if (fromLayers) await this.withRootfs(fromLayers, doCopy);
      else await doCopy(run.contextDir);
    } finally {
      fs.rmSync(scratch, { recursive: true, force: true });
    }
  }

  private async runStep(run: BuildRun, state: StageState, ins: InstructionOf<'RUN'>, rc: ImageRunConfig): Promise<void> {
    let cmd: string[];
    if (ins.command.prependShell && ins.heredocs.length) {
      const text = ins.command.args[0];
      const only = /^<<-?["']?([A-Za-z0-9_./-]+)["']?$/.exec(text.trim());
      const script = only && ins.heredocs.length === 1 ? ins.heredocs[0].content : [text, ...ins.heredocs.map((h) => h.content + h.name)].join('\n');
      cmd = [...(rc.Shell ?? DEFAULT_SHELL), script];
    } else {
      cmd = this.commandArgs(ins.command, rc);
    }
    const args = this.argsInEffect(run, state);
    const history = args.filter((a) => !BUILTIN_ARGS.has(a.slice(0, a.indexOf('='))));
    const createdBy = history.length ? `|${history.length} ${history.join(' ')} ${cmd.join(' ')}` : cmd.join(' ');
    const key = this.keyOf(run, state, rc, createdBy, { cmd });
    if (await this.fromCache(run, state, key)) return;
    const { executor } = this.deps;
    const step: RunStep = {
      parentImage: state.imageId,
      cmd,
      env: [...(rc.Env ?? []), ...args],
      user: rc.User ?? '',
      workdir: rc.WorkingDir ?? '',
      runConfig: { ...rc, Cmd: cmd, Entrypoint: null, Env: [...(rc.Env ?? []), ...args] },
      network: run.params.networkMode,
      extraHosts: run.params.extraHosts,
      shmSize: run.params.shmSize,
      memory: run.params.memory,
      memorySwap: run.params.memorySwap,
      cpuShares: run.params.cpuShares,
      cpuSetCpus: run.params.cpuSetCpus,
      cpuQuota: run.params.cpuQuota,
      cpuPeriod: run.params.cpuPeriod,
      ulimits: run.params.ulimits,
    };
    if (!state.imageId) throw new StepError('Please provide a source image with `from` prior to run');
    let id: string;
    try {
      id = await executor.create(step);
    } catch (err) {
      throw new StepError(messageOf(err));
    }
    run.out(` ---> Running in ${short(id)}\n`);
    let ok = false;
    try {
      // A decoder, not chunk.toString(): a UTF-8 character may be split across two chunks.
      const decoder = new StringDecoder('utf8');
      const code = await executor.start(id, (chunk) => {
        const text = decoder.write(chunk);
        if (text) run.out(text);
      }, run.signal);
      const rest = decoder.end();
      if (rest) run.out(rest);
      if (run.signal?.aborted) throw new StepError('the build was cancelled');
      if (code !== 0) throw new StepError(`The command '${cmd.join(' ')}' returned a non-zero code: ${code}`, code);
      const ingested = await this.deps.images.ingestLayerStream(await executor.diff(id));
      const layer = ingested.diffID === EMPTY_TAR_DIFFID ? undefined : await this.unpackOnTop(state, ingested);
      await this.commitImage(run, state, rc, createdBy, key, layer);
      ok = true;
    } finally {
      // A cancelled step's container goes too, as dockerd removes it when the build is cancelled.
      if ((ok && run.params.rm) || run.params.forceRm || run.signal?.aborted) {
        run.out(`Removing intermediate container ${short(id)}\n`);
        await executor.remove(id).catch((err) => this.deps.log.warn('removing a build container failed', { id, err: messageOf(err) }));
      }
    }
  }
}

function parseTag(t: string): Reference {
  let ref: Reference;
  try {
    ref = parseReference(t);
  } catch {
    throw invalidParameter(`invalid reference format: repository name (${t}) must be lowercase`);
  }
  if (ref.digest) throw invalidParameter(`invalid reference format: ${t}`);
  return ref;
}

function readDockerfile(contextDir: string, name: string): string {
  const rel = cleanPath(name.replace(/^\/+/, ''));
  if (rel === '..' || rel.startsWith('../')) throw invalidParameter(`The Dockerfile (${name}) must be within the build context`);
  const candidates = [rel];
  // dockerd falls back to "dockerfile" when the default name is absent.
  if (rel === 'Dockerfile') candidates.push('dockerfile');
  for (const c of candidates) {
    const file = resolveInRoot(contextDir, c);
    try {
      if (fs.statSync(file).isFile()) return fs.readFileSync(file, 'utf8');
    } catch {}
  }
  throw invalidParameter(`Cannot locate specified Dockerfile: ${name}`);
}

/**
 * The daemon's half of docker's .dockerignore handling: the Dockerfile and .dockerignore were sent
 * for the daemon's use, and are removed from the context when the patterns exclude them.
 */
export function removeIgnoredBuildFiles(contextDir: string, dockerfile: string): void {
  let ignore: DockerIgnore;
  try {
    ignore = DockerIgnore.fromContextDir(contextDir);
  } catch (err) {
    throw invalidParameter(`failed to read .dockerignore: ${messageOf(err)}`);
  }
  for (const f of ['.dockerignore', cleanPath(dockerfile.replace(/^\/+/, ''))]) {
    if (ignore.excludes(f)) fs.rmSync(resolveInRoot(contextDir, f, false), { force: true, recursive: true });
  }
}

/** Expands "80", "80/udp", "8000-8002/tcp" into docker's port keys. */
function expandPorts(spec: string): string[] {
  const m = /^(?:[^:]*:)?(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(spec);
  if (!m) throw new StepError(`Invalid containerPort: ${spec}`);
  const start = parseInt(m[1], 10);
  const end = m[2] ? parseInt(m[2], 10) : start;
  if (start > 65535 || end > 65535 || end < start) throw new StepError(`invalid port range: ${spec}`);
  const proto = (m[3] ?? 'tcp').toLowerCase();
  const out: string[] = [];
  for (let p = start; p <= end; p++) out.push(`${p}/${proto}`);
  return out;
}

/**
 * Creates relDir and its parents in the staging dir. A directory that exists in the image keeps
 * the image's owner and mode (the layer must not change it); a new one is 0755 and owned by the
 * COPY's owner, as docker's classic builder creates it.
 */
function ensureDirs(staging: string, root: string, relDir: string, owner: Ownership): void {
  const segs = relDir.split('/').filter((s) => s && s !== '.');
  for (let i = 1; i <= segs.length; i++) {
    const rel = segs.slice(0, i).join('/');
    const dst = path.join(staging, rel);
    if (fs.existsSync(dst)) continue;
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(path.join(root, rel));
    } catch {}
    fs.mkdirSync(dst);
    if (st?.isDirectory()) {
      fs.chownSync(dst, st.uid, st.gid);
      fs.chmodSync(dst, st.mode & 0o7777);
      fs.utimesSync(dst, st.atime, st.mtime);
    } else {
      fs.chownSync(dst, owner.uid, owner.gid);
      fs.chmodSync(dst, 0o755);
    }
  }
}

/** Merges an unpacked archive into dst, keeping the archive's modes and owners. */
function copyArchiveContents(src: string, dst: string): void {
  for (const name of fs.readdirSync(src)) {
    const s = path.join(src, name);
    const d = path.join(dst, name);
    const st = fs.lstatSync(s);
    if (st.isDirectory()) {
      if (!fs.existsSync(d)) fs.mkdirSync(d);
      copyArchiveContents(s, d);
      fs.chmodSync(d, st.mode & 0o7777);
      fs.chownSync(d, st.uid, st.gid);
    } else {
      fs.rmSync(d, { recursive: true, force: true });
      fs.renameSync(s, d);
    }
  }
}

/** --chown=user[:group], numeric or named (names looked up in the image's /etc/passwd, /etc/group). */
export function resolveChown(root: string, spec: string): Ownership {
  const [userPart, groupPart] = spec.split(':', 2);
  const group = groupPart ?? userPart;
  const find = (file: string, name: string, field: number): number | undefined => {
    let text = '';
    try {
      text = fs.readFileSync(resolveInRoot(root, file), 'utf8');
    } catch {}
    for (const line of text.split('\n')) {
      const f = line.split(':');
      if (f[0] === name && f.length > field) return parseInt(f[field], 10);
    }
    return undefined;
  };
  const fail = (what: string, name: string): never => {
    throw new StepError(`unable to convert uid/gid chown string to host mapping: can't find ${what} for ${what === 'uid' ? 'user' : 'group'} ${name}: no such ${what === 'uid' ? 'user' : 'group'}: ${name}`);
  };
  const uid = /^\d+$/.test(userPart) ? parseInt(userPart, 10) : find('/etc/passwd', userPart, 2) ?? fail('uid', userPart);
  const gid = /^\d+$/.test(group) ? parseInt(group, 10) : find('/etc/group', group, 2) ?? fail('gid', group);
  return { uid, gid };
}

/** A route-ready build function: `build(params, body, send)`, with its dependencies bound. */
export function buildFunction(deps: BuilderDeps): (params: BuildParams, context: Readable, send: (msg: object) => void, signal?: AbortSignal) => Promise<string | undefined> {
  const b = new Builder(deps);
  return (params, context, send, signal) => b.build(params, context, send, signal);
}
