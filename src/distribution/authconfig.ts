// Registry credentials as the Engine API carries them: the X-Registry-Auth header (base64url JSON)
// on pull and push, and the JSON body of POST /auth.
import { invalidParameter } from '../common/errors';
import { DEFAULT_DOMAIN } from '../images/reference';

export interface AuthConfig {
  username?: string;
  password?: string;
  /** base64("user:password"), as config.json stores it; some clients send only this. */
  auth?: string;
  email?: string;
  serveraddress?: string;
  /** An OAuth refresh token from an earlier login (used instead of the password). */
  identitytoken?: string;
  /** A bearer token for the registry itself (skips the token service). */
  registrytoken?: string;
}

/** Decodes X-Registry-Auth; absent or "{}" means anonymous. Malformed values are a 400, as in dockerd. */
export function decodeAuthHeader(value: string | string[] | undefined): AuthConfig | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined || raw.trim() === '') return undefined;
  let parsed: unknown;
  try {
    // Node's base64 decoder takes both the standard and the URL-safe alphabet, padded or not.
    parsed = JSON.parse(Buffer.from(raw.trim(), 'base64').toString('utf8'));
  } catch {
    throw invalidParameter('invalid X-Registry-Auth header: invalid character in base64-encoded JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw invalidParameter('invalid X-Registry-Auth header: not a JSON object');
  }
  return normalizeAuthConfig(parsed as Record<string, unknown>);
}

/** Keeps the known string fields (docker's JSON keys are matched case-insensitively, as Go does). */
export function normalizeAuthConfig(obj: Record<string, unknown>): AuthConfig | undefined {
  const out: AuthConfig = {};
  const keys: (keyof AuthConfig)[] = ['username', 'password', 'auth', 'email', 'serveraddress', 'identitytoken', 'registrytoken'];
  for (const [k, v] of Object.entries(obj)) {
    const key = keys.find((x) => x === k.toLowerCase());
    if (key && typeof v === 'string' && v !== '') out[key] = v;
  }
  if (!out.username && !out.password && out.auth) {
    const decoded = Buffer.from(out.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) {
      out.username = decoded.slice(0, colon);
      out.password = decoded.slice(colon + 1);
    }
  }
  const anything = out.username || out.password || out.identitytoken || out.registrytoken;
  return anything ? out : undefined;
}

/**
 * The registry a login's serveraddress names, as a reference domain: "https://index.docker.io/v1/",
 * "docker.io" and "" are Docker Hub; "http://host:5000/" is host:5000.
 */
export function serverAddressDomain(address: string | undefined): string {
  let s = (address ?? '').trim();
  if (s === '') return DEFAULT_DOMAIN;
  s = s.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  s = s.replace(/\/.*$/, '');
  if (['index.docker.io', 'registry-1.docker.io', 'docker.io', 'registry.hub.docker.com'].includes(s.toLowerCase())) return DEFAULT_DOMAIN;
  if (s === '') throw invalidParameter(`invalid registry address ${JSON.stringify(address)}`);
  return s;
}
