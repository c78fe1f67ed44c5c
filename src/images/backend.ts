// The Engine API's view of images: turns ImageService records into docker's JSON shapes
// (ImageSummary, ImageInspect, HistoryResponseItem) and applies the list filters.
import type { Readable } from 'node:stream';
import { invalidParameter } from '../common/errors';
import { lazyModule } from '../common/lazy';
import type { Filters } from '../api/httputil';
import type { ImageBackend } from '../api/routes/images';
import { compareVersions } from '../api/router';
import { familiarName, parseReference } from './reference';
import { parseTimestamp, type ImageService } from './service';
import type { ImageRecord } from './store';

/** docker save/load archives (and tar-stream with them), loaded on first use (see common/lazy.ts). */
const imageArchive = lazyModule(() => require('./archive') as typeof import('./archive'));

/** docker's reference filter: shell-style globs matched against name and name:tag. */
function globToRegExp(glob: string): RegExp {
  let re = '';
  for (const c of glob) {
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

export class ImageApi implements ImageBackend {
  pull?: ImageBackend['pull'];
  push?: ImageBackend['push'];

  /** `dist` (the registry client) provides pull and push; without it those routes answer 501. */
  constructor(private readonly svc: ImageService, dist?: Required<Pick<ImageBackend, 'pull' | 'push'>>) {
    if (dist) {
      this.pull = (ctx, progress) => dist.pull(ctx, progress);
      this.push = (ctx, name, progress) => dist.push(ctx, name, progress);
    }
  }

  private createdUnix(rec: ImageRecord): number {
    return Math.floor(Date.parse(rec.created) / 1000);
  }

  async list(opts: { all: boolean; digests: boolean; filters: Filters; manifests: boolean; apiVersion: string }): Promise<object[]> {
    const { filters } = opts;
    const svc = this.svc;
    const danglingF = filters.get('dangling');
    let dangling: boolean | undefined;
    if (danglingF) {
      const v = danglingF[0].toLowerCase();
      if (!['true', 'false', '1', '0'].includes(v)) throw invalidParameter(`invalid filter 'dangling=${danglingF[0]}'`);
      dangling = v === 'true' || v === '1';
    }
    const timeOf = (name: string): number => {
      const { record } = svc.lookup(name);
      return Date.parse(record.created);
    };
    const before = filters.get('before')?.map(timeOf);
    const since = filters.get('since')?.map(timeOf);
    const until = filters.get('until')?.map(parseTimestamp);
    const refPatterns = filters.get('reference')?.map((p) => p);

    const out: object[] = [];
    for (const rec of svc.store.list()) {
      const fullTags = svc.store.tagsOf(rec.id);
      const tags = svc.repoTags(rec.id);
      const digests = svc.repoDigests(rec.id);
      const isDangling = fullTags.length === 0 && digests.length === 0;
      if (dangling !== undefined && isDangling !== dangling) continue;
      // Untagged images that others build on (intermediate layers) stay hidden without -a; and
      // dangling=true means dangling heads only, even with -a (dockerd lists imageStore.Heads()).
      if (isDangling && (!opts.all || dangling === true) && svc.store.children(rec.id).length > 0) continue;
      const created = Date.parse(rec.created);
      if (before && !before.every((t) => created < t)) continue;
      if (since && !since.every((t) => created > t)) continue;
      if (until && !until.every((t) => created < t)) continue;
      let shownTags = tags;
      if (refPatterns) {
        shownTags = tags.filter((t) => {
          const ref = parseReference(t);
          const name = familiarName(ref);
          return refPatterns.some((p) => {
            const re = globToRegExp(p.includes(':') || p.includes('@') ? p : p);
            return re.test(name) || re.test(t) || re.test(`${ref.domain}/${ref.path}`);
          });
        });
        if (shownTags.length === 0) continue;
      }
      if (!(await svc.matchesLabels(rec.id, filters))) continue;
      const config = await svc.config(rec.id);
      const summary: Record<string, unknown> = {
        Containers: -1,
        Created: this.createdUnix(rec),
        Id: rec.id,
        Labels: config.config?.Labels ?? null,
        ParentId: rec.parent,
        RepoDigests: digests.length ? digests : isDangling ? ['<none>@<none>'] : [],
        RepoTags: shownTags.length ? shownTags : isDangling ? ['<none>:<none>'] : [],
        SharedSize: -1,
        Size: rec.size,
      };
      if (compareVersions(opts.apiVersion, '1.44') < 0) summary.VirtualSize = rec.size;
      if (compareVersions(opts.apiVersion, '1.43') >= 0 && isDangling) {
        // API 1.43+ reports untagged images with empty lists, not the <none> placeholders.
        summary.RepoTags = [];
        summary.RepoDigests = [];
      }
      if (opts.manifests) summary.Manifests = [];
      out.push(summary);
    }
    return out;
  }

  async inspect(name: string, apiVersion: string): Promise<object> {
    const { record, config } = await this.svc.resolve(name);
    const out: Record<string, unknown> = {
      Id: record.id,
      RepoTags: this.svc.repoTags(record.id),
      RepoDigests: this.svc.repoDigests(record.id),
      Parent: record.parent,
      Comment: config.comment ?? '',
      Created: config.created ?? '',
      DockerVersion: config.docker_version ?? '',
      Author: config.author ?? '',
      Config: runConfigForInspect(config.config),
      Architecture: config.architecture,
      ...(config.variant ? { Variant: config.variant } : {}),
      Os: config.os,
      Size: record.size,
      GraphDriver: { Data: null, Name: 'overlay2' },
      RootFS: { Type: 'layers', Layers: config.rootfs.diff_ids },
      Metadata: { LastTagTime: record.lastTagTime || '0001-01-01T00:00:00Z' },
    };
    if (compareVersions(apiVersion, '1.44') < 0) {
      out.VirtualSize = record.size;
      out.Container = '';
      out.ContainerConfig = runConfigForInspect(undefined);
    }
    return out;
  }

  async history(name: string): Promise<object[]> {
    const { record, config } = await this.svc.resolve(name);
    const hist = config.history?.length ? config.history : record.layers.map(() => ({ created: config.created, created_by: '' }));
    const out: object[] = [];
    let layer = 0;
    for (const h of hist) {
      const empty = 'empty_layer' in h && h.empty_layer === true;
      const size = empty ? 0 : (record.layers[layer++]?.size ?? 0);
      out.push({ Comment: ('comment' in h && h.comment) || '', Created: Math.floor(Date.parse(h.created ?? config.created ?? '') / 1000) || 0, CreatedBy: h.created_by ?? '', Id: '<missing>', Size: size, Tags: null });
    }
    out.reverse();
    if (out.length > 0) {
      const top = out[0] as Record<string, unknown>;
      top.Id = record.id;
      const tags = this.svc.repoTags(record.id);
      top.Tags = tags.length ? tags : null;
    }
    return out;
  }

  tag(source: string, repo: string, tag: string | null): Promise<void> {
    return this.svc.tag(source, repo, tag);
  }

  remove(name: string, opts: { force: boolean; noprune: boolean }): Promise<object[]> {
    return this.svc.remove(name, opts);
  }

  importRootfs(input: Readable, opts: { repo?: string; tag?: string; changes: string[]; message?: string; platform?: string }): Promise<string> {
    return this.svc.importRootfs(input, opts);
  }

  load(input: Readable, quiet: boolean, progress: (msg: object) => void): Promise<void> {
    return imageArchive().loadImages(this.svc, input, quiet, progress);
  }

  save(names: string[]): Promise<Readable> {
    return imageArchive().saveImages(this.svc, names);
  }

  prune(filters: Filters): Promise<object> {
    return this.svc.prune(filters);
  }
}

/** Docker fills the container config of inspect with explicit empty values. */
function runConfigForInspect(c: import('./types').ImageRunConfig | undefined): object {
  return {
    Hostname: '', Domainname: '', User: c?.User ?? '', AttachStdin: false, AttachStdout: false, AttachStderr: false,
    ...(c?.ExposedPorts ? { ExposedPorts: c.ExposedPorts } : {}),
    Tty: false, OpenStdin: false, StdinOnce: false,
    Env: c?.Env ?? null, Cmd: c?.Cmd ?? null,
    ...(c?.Healthcheck ? { Healthcheck: c.Healthcheck } : {}),
    ...(c?.ArgsEscaped ? { ArgsEscaped: true } : {}),
    Image: '', Volumes: c?.Volumes ?? null, WorkingDir: c?.WorkingDir ?? '', Entrypoint: c?.Entrypoint ?? null,
    OnBuild: c?.OnBuild ?? null, Labels: c?.Labels ?? null,
    ...(c?.StopSignal ? { StopSignal: c.StopSignal } : {}),
    ...(c?.Shell ? { Shell: c.Shell } : {}),
  };
}
