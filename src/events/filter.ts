// Which events a GET /events subscriber wants, with dockerd's matching rules: every filter key
// given must match; values of one key are alternatives. Names match by prefix of the ID or
// exactly by name; images by ID, name or name without its tag; labels as key or key=value.
import { invalidParameter } from '../common/errors';
import { parseReference, familiarName } from '../images/reference';
import type { EventMessage } from './types';

export const EVENT_FILTER_KEYS = ['config', 'container', 'daemon', 'event', 'image', 'label', 'network', 'node', 'plugin', 'scope', 'secret', 'service', 'type', 'volume'];

export type EventFilters = Map<string, string[]>;

/** Actions that carry a suffix (exec_start: sh -c ..., health_status: healthy) match by prefix. */
const PREFIX_ACTIONS = ['exec_create', 'exec_start', 'health_status'];

export function validateEventFilters(filters: EventFilters): void {
  for (const key of filters.keys()) if (!EVENT_FILTER_KEYS.includes(key)) throw invalidParameter(`invalid filter '${key}'`);
  for (const t of filters.get('type') ?? []) {
    if (!['builder', 'config', 'container', 'daemon', 'image', 'network', 'node', 'plugin', 'secret', 'service', 'volume'].includes(t)) {
      throw invalidParameter(`Invalid filter 'type=${t}'`);
    }
  }
  for (const s of filters.get('scope') ?? []) if (s !== 'local' && s !== 'swarm') throw invalidParameter(`Invalid filter 'scope=${s}'`);
}

function exact(filters: EventFilters, key: string, ...candidates: (string | undefined)[]): boolean {
  const want = filters.get(key);
  if (!want || want.length === 0) return true;
  return candidates.some((c) => c !== undefined && want.includes(c));
}

/** The filter value is a prefix of the ID, or equals the name. */
function idOrName(filters: EventFilters, key: string, ev: EventMessage): boolean {
  const want = filters.get(key);
  if (!want || want.length === 0) return true;
  const name = ev.Actor.Attributes.name;
  return want.some((w) => w !== '' && (ev.Actor.ID.startsWith(w) || ev.Actor.ID === `sha256:${w}` || name === w));
}

function stripTag(name: string): string {
  try {
    return familiarName(parseReference(name));
  } catch {
    return name;
  }
}

export function eventMatches(filters: EventFilters, ev: EventMessage): boolean {
  if (filters.size === 0) return true;
  const actions = filters.get('event');
  if (actions && actions.length > 0) {
    const prefixed = actions.some((a) => PREFIX_ACTIONS.includes(a));
    if (!actions.some((a) => (prefixed ? ev.Action.startsWith(a) : ev.Action === a))) return false;
  }
  if (!exact(filters, 'type', ev.Type)) return false;
  if (!exact(filters, 'scope', ev.scope)) return false;
  for (const key of ['container', 'daemon', 'network', 'volume', 'plugin', 'node', 'service', 'secret', 'config']) {
    if (filters.has(key) && (ev.Type !== key || !idOrName(filters, key, ev))) return false;
  }
  if (filters.has('image')) {
    const imageName = ev.Actor.Attributes[ev.Type === 'image' ? 'name' : 'image'];
    const ids = ev.Type === 'image' ? [ev.Actor.ID, ev.Actor.ID.replace(/^sha256:/, '')] : [];
    if (!exact(filters, 'image', ...ids, imageName, imageName === undefined ? undefined : stripTag(imageName))) return false;
  }
  for (const l of filters.get('label') ?? []) {
    const eq = l.indexOf('=');
    const k = eq < 0 ? l : l.slice(0, eq);
    if (!(k in ev.Actor.Attributes)) return false;
    if (eq >= 0 && ev.Actor.Attributes[k] !== l.slice(eq + 1)) return false;
  }
  return true;
}
