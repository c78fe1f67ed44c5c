// Validation of the identifiers that come from request paths: repository names, tags and digests.
// These are the only parts of a URL that ever become parts of a file path, so everything that can
// reach the file system passes through here first; the regexes admit no '/..', no '%', no NUL.
import { createHash, type Hash } from 'node:crypto';
import { regErr } from './errors';

// The spec's grammar for <name>: path components of lowercase alphanumerics joined by separators.
const NAME_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
// The generic digest grammar; what passes it but is not a supported algorithm is still refused.
const DIGEST_GRAMMAR_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
/** Longest repository name accepted, as distribution (the whole name, host part excluded). */
export const MAX_NAME_LENGTH = 255;

export type DigestAlgorithm = 'sha256' | 'sha512';
const ENCODED_RE: Record<DigestAlgorithm, RegExp> = { sha256: /^[a-f0-9]{64}$/, sha512: /^[a-f0-9]{128}$/ };

export interface Digest {
  algorithm: DigestAlgorithm;
  hex: string;
  /** algorithm:hex */
  text: string;
}

export function isValidName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && NAME_RE.test(name);
}

export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}

export function checkName(name: string): string {
  if (!isValidName(name)) throw regErr('NAME_INVALID', 'invalid repository name', { name });
  return name;
}

/** Parses a digest, throwing DIGEST_INVALID (400) for anything malformed or of an unsupported algorithm. */
export function parseDigest(text: string): Digest {
  const d = tryParseDigest(text);
  if (!d) throw regErr('DIGEST_INVALID', 'invalid digest', { digest: text.slice(0, 200) });
  return d;
}

export function tryParseDigest(text: string): Digest | undefined {
  if (typeof text !== 'string' || text.length > 256 || !DIGEST_GRAMMAR_RE.test(text)) return undefined;
  const colon = text.indexOf(':');
  const algorithm = text.slice(0, colon);
  const hex = text.slice(colon + 1);
  if (algorithm !== 'sha256' && algorithm !== 'sha512') return undefined;
  if (!ENCODED_RE[algorithm].test(hex)) return undefined;
  return { algorithm, hex, text };
}

export function looksLikeDigest(reference: string): boolean {
  return reference.includes(':');
}

export function newHash(algorithm: DigestAlgorithm): Hash {
  return createHash(algorithm);
}

export function digestOf(data: Uint8Array, algorithm: DigestAlgorithm = 'sha256'): Digest {
  const hex = createHash(algorithm).update(data).digest('hex');
  return { algorithm, hex, text: `${algorithm}:${hex}` };
}

// Upload session ids are our own random UUIDs; anything else is unknown (never a path).
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export function isValidUploadId(id: string): boolean {
  return UUID_RE.test(id);
}
