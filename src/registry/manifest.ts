// Manifest parsing and validation: Docker image manifest v2 schema 2 and manifest list, OCI image
// manifest and index. The registry stores manifests byte for byte; this module only decides what
// a manifest is, whether it is well formed, and what it references.
import { regErr } from './errors';
import { tryParseDigest, type Digest } from './names';
import type { Descriptor } from './storage';

export const MT_DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const MT_DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const MT_OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const MT_OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const MT_DOCKER_SCHEMA1 = ['application/vnd.docker.distribution.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v1+prettyjws'];
// Layers that the client fetches from elsewhere (Windows base layers); never required to be present.
const NON_DISTRIBUTABLE = [
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
];

export const IMAGE_TYPES = [MT_DOCKER_MANIFEST, MT_OCI_MANIFEST];
export const INDEX_TYPES = [MT_DOCKER_LIST, MT_OCI_INDEX];
export const MANIFEST_TYPES = [...IMAGE_TYPES, ...INDEX_TYPES];

/** Largest manifest accepted; the spec asks registries to take at least 4 MiB. */
export const MAX_MANIFEST_SIZE = 4 << 20;

export interface ParsedManifest {
  mediaType: string;
  kind: 'image' | 'index';
  /** Blobs the manifest needs (config and distributable layers). */
  blobs: Digest[];
  /** Manifests an index lists. */
  manifests: Descriptor[];
  subject?: Descriptor;
  artifactType?: string;
  configMediaType?: string;
  annotations?: Record<string, string>;
}

function invalid(message: string, detail?: unknown): Error {
  return regErr('MANIFEST_INVALID', message, detail);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkDescriptor(v: unknown, where: string): Descriptor {
  if (!isObject(v)) throw invalid(`${where}: descriptor must be an object`);
  if (typeof v.mediaType !== 'string' || v.mediaType === '') throw invalid(`${where}: descriptor has no mediaType`);
  if (typeof v.digest !== 'string' || !tryParseDigest(v.digest)) throw invalid(`${where}: invalid digest`, { digest: String(v.digest).slice(0, 200) });
  if (typeof v.size !== 'number' || !Number.isSafeInteger(v.size) || v.size < 0) throw invalid(`${where}: invalid size`);
  if (v.annotations !== undefined && !isObject(v.annotations)) throw invalid(`${where}: annotations must be an object`);
  if (v.urls !== undefined && !Array.isArray(v.urls)) throw invalid(`${where}: urls must be an array`);
  return v as unknown as Descriptor;
}

/** Strips parameters from a Content-Type (the spec says registries ignore them). */
export function bareMediaType(contentType: string | undefined): string | undefined {
  if (!contentType) return undefined;
  const t = contentType.split(';')[0].trim().toLowerCase();
  return t === '' ? undefined : t;
}

/** Parses and checks a manifest body; contentType is the request's Content-Type. */
export function parseManifest(body: Buffer, contentType: string | undefined): ParsedManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    throw invalid('manifest is not valid JSON');
  }
  if (!isObject(doc)) throw invalid('manifest must be a JSON object');
  const declared = typeof doc.mediaType === 'string' && doc.mediaType !== '' ? doc.mediaType : undefined;
  const header = bareMediaType(contentType);
  let mediaType = declared;
  if (declared && header && header !== declared && MANIFEST_TYPES.includes(header)) {
    throw invalid(`manifest mediaType ${declared} does not match Content-Type ${header}`);
  }
  if (!mediaType && header && MANIFEST_TYPES.includes(header)) mediaType = header;
  // OCI allows mediaType to be absent; fall back on the document's shape.
  if (!mediaType) mediaType = Array.isArray(doc.manifests) ? MT_OCI_INDEX : MT_OCI_MANIFEST;
  if (MT_DOCKER_SCHEMA1.includes(mediaType) || doc.schemaVersion === 1) throw invalid('schema 1 manifests are not supported');
  if (!MANIFEST_TYPES.includes(mediaType)) throw invalid(`unsupported manifest media type ${mediaType}`);
  if (doc.schemaVersion !== 2) throw invalid('schemaVersion must be 2');
  if (doc.annotations !== undefined && !isObject(doc.annotations)) throw invalid('annotations must be an object');
  if (doc.artifactType !== undefined && typeof doc.artifactType !== 'string') throw invalid('artifactType must be a string');
  const subject = doc.subject === undefined ? undefined : checkDescriptor(doc.subject, 'subject');
  const out: ParsedManifest = {
    mediaType,
    kind: INDEX_TYPES.includes(mediaType) ? 'index' : 'image',
    blobs: [],
    manifests: [],
    subject,
    artifactType: typeof doc.artifactType === 'string' && doc.artifactType !== '' ? doc.artifactType : undefined,
    annotations: doc.annotations as Record<string, string> | undefined,
  };
  if (out.kind === 'image') {
    const config = checkDescriptor(doc.config, 'config');
    if (!Array.isArray(doc.layers)) throw invalid('layers must be an array');
    const layers = doc.layers.map((l, i) => checkDescriptor(l, `layers[${i}]`));
    out.configMediaType = config.mediaType;
    out.blobs.push(tryParseDigest(config.digest)!);
    for (const l of layers) {
      if (NON_DISTRIBUTABLE.includes(l.mediaType) || (Array.isArray(l.urls) && l.urls.length > 0)) continue;
      out.blobs.push(tryParseDigest(l.digest)!);
    }
  } else {
    if (!Array.isArray(doc.manifests)) throw invalid('manifests must be an array');
    out.manifests = doc.manifests.map((m, i) => checkDescriptor(m, `manifests[${i}]`));
  }
  return out;
}

/** The descriptor the referrers API lists for a manifest with a subject. */
export function referrerDescriptor(m: ParsedManifest, digest: Digest, size: number): Descriptor {
  const desc: Descriptor = { mediaType: m.mediaType, digest: digest.text, size };
  const artifactType = m.artifactType ?? (m.kind === 'image' ? m.configMediaType : undefined);
  if (artifactType) desc.artifactType = artifactType;
  if (m.annotations && Object.keys(m.annotations).length > 0) desc.annotations = m.annotations;
  return desc;
}

/** Media types named in Accept headers (parameters dropped); empty means the client named none. */
export function acceptedTypes(accept: string | string[] | undefined): string[] {
  if (!accept) return [];
  const joined = Array.isArray(accept) ? accept.join(',') : accept;
  return joined
    .split(',')
    .map((t) => bareMediaType(t))
    .filter((t): t is string => t !== undefined);
}

export function accepts(types: string[], mediaType: string): boolean {
  if (types.length === 0) return true;
  return types.some((t) => t === '*/*' || t === mediaType || (t.endsWith('/*') && mediaType.startsWith(t.slice(0, -1))));
}
