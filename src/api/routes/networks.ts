// Network routes (/networks/...): HTTP shapes and filters; the work is the NetworkService's, and
// connect/disconnect of containers go through the containers service (ContainerNetworking).
import { invalidParameter, notImplemented } from '../../common/errors';
import { networkJSON } from '../../network/format';
import type { CreateNetworkRequest, NetworkService } from '../../network/service';
import type { ContainerNetworking, EndpointRequest, NetworkRecord } from '../../network/types';
import { parseFilters, readJSON, sendJSON, sendNoContent, type Filters } from '../httputil';
import type { Route } from '../router';
import type { EventPublisher } from '../../events';

const LIST_FILTERS = ['dangling', 'driver', 'id', 'label', 'name', 'scope', 'type'];
const PRUNE_FILTERS = ['until', 'label', 'label!'];

export interface NetworkRoutesDeps {
  networks: NetworkService;
  /** Where create and destroy events go. */
  events?: EventPublisher;
  /** Absent until the containers service exists: connect/disconnect then answer 501. */
  containers?: () => ContainerNetworking | undefined;
}

/** docker's filters.Match: the value is a regular expression searched in the field. */
function matches(patterns: string[], value: string): boolean {
  return patterns.some((p) => {
    if (p === value) return true;
    try {
      return new RegExp(p).test(value);
    } catch {
      return value.includes(p);
    }
  });
}

/** label=key or label=key=value; every one given must hold. */
function labelsMatch(want: string[], labels: Record<string, string>): boolean {
  return want.every((w) => {
    const eq = w.indexOf('=');
    if (eq < 0) return w in labels;
    return labels[w.slice(0, eq)] === w.slice(eq + 1);
  });
}

function boolFilter(f: Filters, key: string): boolean | undefined {
  const v = f.get(key);
  if (!v || v.length === 0) return undefined;
  const x = v[v.length - 1].toLowerCase();
  if (x === 'true' || x === '1') return true;
  if (x === 'false' || x === '0') return false;
  throw invalidParameter(`invalid filter '${key}=${v[v.length - 1]}'`);
}

function listFilter(f: Filters, inUse: (n: NetworkRecord) => boolean): (n: NetworkRecord) => boolean {
  const types = f.get('type') ?? [];
  for (const t of types) if (t !== 'custom' && t !== 'builtin') throw invalidParameter(`invalid filter: 'type'='${t}'`);
  const dangling = boolFilter(f, 'dangling');
  return (n) => {
    if (f.has('driver') && !f.get('driver')!.includes(n.driver)) return false;
    if (f.has('name') && !matches(f.get('name')!, n.name)) return false;
    if (f.has('id') && !matches(f.get('id')!, n.id)) return false;
    if (f.has('label') && !labelsMatch(f.get('label')!, n.labels)) return false;
    if (f.has('scope') && !f.get('scope')!.includes('local')) return false;
    if (types.length > 0 && !types.includes(n.predefined ? 'builtin' : 'custom')) return false;
    if (dangling === true && (n.predefined || inUse(n))) return false;
    if (dangling === false && !n.predefined && !inUse(n)) return false;
    return true;
  };
}

/** until=<timestamp|duration>: docker's forms (RFC 3339, Unix seconds, or a Go duration ago). */
function untilCutoff(v: string): number {
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  const dur = /^(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)$/.exec(v);
  if (dur) {
    const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
    return Date.now() - Number(dur[1]) * unit[dur[2]];
  }
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw invalidParameter(`invalid filter 'until=${v}'`);
  return t;
}

export function networkRoutes(deps: NetworkRoutesDeps): Route[] {
  const svc = deps.networks;
  // dockerd's network events: Actor.ID is the network ID, attributes its name and driver.
  const emit = (action: 'create' | 'destroy', n: NetworkRecord): void => {
    deps.events?.publish('network', action, { ID: n.id, Attributes: { name: n.name, type: n.driver } });
  };
  const nameOf = (id: string) => deps.containers?.()?.containerName(id);
  const inUse = (n: NetworkRecord) => svc.endpoints(n.id).length > 0;
  const containersOrThrow = () => {
    const c = deps.containers?.();
    if (!c) throw notImplemented('connecting containers to networks is not available yet');
    return c;
  };
  return [
    {
      method: 'GET',
      path: '/networks',
      handler: (ctx) => {
        const keep = listFilter(parseFilters(ctx.query.get('filters'), LIST_FILTERS), inUse);
        // As dockerd, the list carries no Containers (inspect has them).
        sendJSON(ctx, 200, svc.list().filter(keep).map((n) => networkJSON(n, [], nameOf)));
      },
    },
    {
      method: 'GET',
      path: '/networks/{id}',
      handler: (ctx) => {
        const scope = ctx.query.get('scope');
        const n = svc.get(ctx.params.id);
        if (scope && scope !== 'local') throw invalidParameter(`network ${ctx.params.id} not found`);
        sendJSON(ctx, 200, networkJSON(n, svc.endpoints(n.id), nameOf));
      },
    },
    {
      method: 'POST',
      path: '/networks/create',
      handler: async (ctx) => {
        const body = await readJSON<CreateNetworkRequest>(ctx);
        if (!body || typeof body !== 'object') throw invalidParameter('network create needs a JSON body');
        const n = svc.create(body);
        await svc.isolationSettled();
        emit('create', n);
        sendJSON(ctx, 201, { Id: n.id, Warning: '' });
      },
    },
    {
      method: 'DELETE',
      path: '/networks/{id}',
      handler: async (ctx) => {
        // Endpoints of removed --rm containers go away in the background; wait for them.
        await svc.settled();
        const n = svc.get(ctx.params.id);
        svc.remove(ctx.params.id);
        await svc.isolationSettled();
        emit('destroy', n);
        sendNoContent(ctx);
      },
    },
    {
      method: 'POST',
      path: '/networks/prune',
      handler: async (ctx) => {
        const f = parseFilters(ctx.query.get('filters'), PRUNE_FILTERS);
        await svc.settled();
        const until = f.get('until')?.map(untilCutoff);
        const cutoff = until && until.length > 0 ? Math.min(...until) : undefined;
        const before = svc.list();
        const names = svc.prune((n) => {
          if (cutoff !== undefined && Date.parse(n.created) >= cutoff) return false;
          if (f.has('label') && !labelsMatch(f.get('label')!, n.labels)) return false;
          if (f.has('label!') && f.get('label!')!.some((l) => labelsMatch([l], n.labels))) return false;
          return true;
        });
        await svc.isolationSettled();
        for (const n of before) if (names.includes(n.name)) emit('destroy', n);
        deps.events?.publish('network', 'prune', { ID: '', Attributes: { reclaimed: '0' } });
        sendJSON(ctx, 200, { NetworksDeleted: names.length > 0 ? names : null });
      },
    },
    {
      method: 'POST',
      path: '/networks/{id}/connect',
      handler: async (ctx) => {
        const body = await readJSON<{ Container?: string; EndpointConfig?: { IPAMConfig?: { IPv4Address?: string; IPv6Address?: string } | null; Aliases?: string[] | null; MacAddress?: string } | null }>(ctx);
        if (!body?.Container) throw invalidParameter('Container is required');
        const n = svc.get(ctx.params.id);
        const ec = body.EndpointConfig ?? {};
        if (ec.IPAMConfig?.IPv6Address) throw invalidParameter('IPv6 addresses are not supported by berth');
        const req: EndpointRequest = {
          ...(ec.IPAMConfig?.IPv4Address ? { ipv4Address: ec.IPAMConfig.IPv4Address } : {}),
          ...(ec.Aliases && ec.Aliases.length > 0 ? { aliases: ec.Aliases } : {}),
          ...(ec.MacAddress ? { macAddress: ec.MacAddress } : {}),
        };
        await containersOrThrow().connectContainer(body.Container, n, req);
        sendJSON(ctx, 200, {});
      },
    },
    {
      method: 'POST',
      path: '/networks/{id}/disconnect',
      handler: async (ctx) => {
        const body = await readJSON<{ Container?: string; Force?: boolean }>(ctx);
        if (!body?.Container) throw invalidParameter('Container is required');
        const n = svc.get(ctx.params.id);
        await containersOrThrow().disconnectContainer(body.Container, n, !!body.Force);
        sendJSON(ctx, 200, {});
      },
    },
  ];
}
