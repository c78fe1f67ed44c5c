// Image references, parsed and normalised as docker does: "busybox" is
// docker.io/library/busybox:latest; "host:5000/a/b:tag" keeps its registry; "name@sha256:..." pins
// a digest. Error messages follow the docker daemon's wording, since clients show them verbatim.
import { invalidParameter } from '../common/errors';

export const DEFAULT_DOMAIN = 'docker.io';
const LEGACY_DOMAIN = 'index.docker.io';
const OFFICIAL_PREFIX = 'library/';
export const DEFAULT_TAG = 'latest';

const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*';
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?`;
const TAG = '[\\w][\\w.-]{0,127}';
const DIGEST = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';
const NAME = `(?:${DOMAIN}/)?${COMPONENT}(?:/${COMPONENT})*`;
const REFERENCE_RE = new RegExp(`^(${NAME})(?::(${TAG}))?(?:@(${DIGEST}))?$`);
const ANCHORED_DOMAIN_RE = new RegExp(`^${DOMAIN}$`);
const ANCHORED_TAG_RE = new RegExp(`^${TAG}$`);
const SHA256_HEX_RE = /^[a-f0-9]{64}$/;
const NAME_TOTAL_MAX = 255;

export interface Reference {
  /** Registry host, e.g. docker.io or localhost:5000. */
  domain: string;
  /** Repository path within the registry, e.g. library/busybox. */
  path: string;
  tag?: string;
  digest?: string;
}

/** The full repository name: docker.io/library/busybox. */
export function repoName(r: Reference): string {
  return `${r.domain}/${r.path}`;
}

/** The name people type: busybox, myuser/app, localhost:5000/app. */
export function familiarName(r: Reference): string {
  if (r.domain === DEFAULT_DOMAIN) return r.path.startsWith(OFFICIAL_PREFIX) ? r.path.slice(OFFICIAL_PREFIX.length) : r.path;
  return repoName(r);
}

/** docker.io/library/busybox:latest or ...@sha256:... */
export function formatReference(r: Reference): string {
  let s = repoName(r);
  if (r.tag) s += `:${r.tag}`;
  if (r.digest) s += `@${r.digest}`;
  return s;
}

/** busybox:latest, as the docker CLI shows RepoTags. */
export function familiarString(r: Reference): string {
  let s = familiarName(r);
  if (r.tag) s += `:${r.tag}`;
  if (r.digest) s += `@${r.digest}`;
  return s;
}

function splitDomain(name: string): { domain: string; path: string } {
  const i = name.indexOf('/');
  let domain: string;
  let rest: string;
  if (i === -1) {
    domain = DEFAULT_DOMAIN;
    rest = name;
  } else {
    const first = name.slice(0, i);
    // Like docker: the first component is a registry only when it looks like a host.
    if (!first.includes('.') && !first.includes(':') && first !== 'localhost' && first.toLowerCase() === first) {
      domain = DEFAULT_DOMAIN;
      rest = name;
    } else {
      domain = first;
      rest = name.slice(i + 1);
    }
  }
  if (domain === LEGACY_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !rest.includes('/')) rest = OFFICIAL_PREFIX + rest;
  return { domain, path: rest };
}

/**
 * Parses a reference as a user wrote it and normalises it. A bare 64-hex string is refused (it is
 * an image ID, not a name), as docker refuses it.
 */
export function parseReference(s: string): Reference {
  if (s === '') throw invalidParameter('invalid reference format');
  if (SHA256_HEX_RE.test(s)) {
    throw invalidParameter(`invalid repository name (${s}), cannot specify 64-byte hexadecimal strings`);
  }
  const m = REFERENCE_RE.exec(s);
  if (!m) {
    // Docker explains the most common mistake, upper-case letters, specially.
    const lower = REFERENCE_RE.exec(s.toLowerCase());
    if (lower) {
      const name = s.replace(/@.*$/, '').replace(new RegExp(`:${TAG}$`), '');
      throw invalidParameter(`invalid reference format: repository name (${splitDomain(name).path}) must be lowercase`);
    }
    throw invalidParameter('invalid reference format');
  }
  const [, name, tag, digest] = m;
  if (name.length > NAME_TOTAL_MAX) throw invalidParameter(`invalid reference format: repository name must not be more than ${NAME_TOTAL_MAX} characters`);
  const { domain, path } = splitDomain(name);
  if (!ANCHORED_DOMAIN_RE.test(domain)) throw invalidParameter('invalid reference format');
  if (path !== path.toLowerCase()) throw invalidParameter(`invalid reference format: repository name (${path}) must be lowercase`);
  const ref: Reference = { domain, path };
  if (tag) ref.tag = tag;
  if (digest) {
    if (!/^sha256:[a-f0-9]{64}$/.test(digest)) throw invalidParameter(`invalid reference format: unsupported digest ${digest}`);
    ref.digest = digest;
  }
  return ref;
}

/** Parses and adds the default tag when neither tag nor digest is given. */
export function parseNormalizedNamed(s: string): Reference {
  const r = parseReference(s);
  if (!r.tag && !r.digest) r.tag = DEFAULT_TAG;
  return r;
}

export function isValidTag(tag: string): boolean {
  return ANCHORED_TAG_RE.test(tag);
}

/** Validates a tag given on its own (docker tag's second argument, the `tag` query parameter). */
export function validateTag(tag: string): string {
  if (!isValidTag(tag)) throw invalidParameter(`invalid tag format`);
  return tag;
}

/** True for a string that can only be meant as an image ID (full or a hex prefix). */
export function looksLikeID(s: string): boolean {
  return /^(sha256:)?[a-f0-9]{1,64}$/.test(s);
}
