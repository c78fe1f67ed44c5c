// Digest strings (OCI "algorithm:encoded"). Only sha256 is accepted: it is the one algorithm
// images use, and a strict check here keeps digests safe to use as file names.
import { createHash } from 'node:crypto';
import { invalidParameter } from '../common/errors';

export type Digest = string;

const SHA256_RE = /^sha256:[0-9a-f]{64}$/;

export function isDigest(value: unknown): value is Digest {
  return typeof value === 'string' && SHA256_RE.test(value);
}

/** Throws InvalidParameter unless value is "sha256:" followed by 64 lowercase hex digits. */
export function validateDigest(value: unknown): Digest {
  if (!isDigest(value)) throw invalidParameter(`invalid digest ${JSON.stringify(value)}: expected sha256: followed by 64 lowercase hex digits`);
  return value;
}

/** The hex part of a validated digest. */
export function digestHex(digest: Digest): string {
  return validateDigest(digest).slice('sha256:'.length);
}

export function sha256Digest(data: string | Uint8Array): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}
