// Authentication and authorisation. Three roles, split so each can be swapped:
//   - CredentialStore: checks a user's password (htpasswd with bcrypt entries);
//   - AccessPolicy: which actions an account (or anonymous) gets on a resource;
//   - Authorizer: turns a request's Authorization header into a decision for the access it needs,
//     answering 401 with the right WWW-Authenticate challenge (Basic or Bearer) or 403.
// Bearer tokens are JWTs (ES256 or RS256, node:crypto) carrying Docker's "access" claim; the same
// process can issue them (token.ts), or verify tokens of another issuer given its public key.
import * as fs from 'node:fs';
import { createHash, createPrivateKey, createPublicKey, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import bcrypt from 'bcryptjs';
import { regErr, RegistryError } from './errors';

export type Action = 'pull' | 'push' | 'delete' | '*';

/** One resource and the actions a request needs on it (Docker's scope: type:name:actions). */
export interface Access {
  type: string;
  name: string;
  actions: string[];
}

export function formatScope(a: Access): string {
  return `${a.type}:${a.name}:${a.actions.join(',')}`;
}

/** Parses "repository:foo/bar:pull,push" (and "repository(plugin):..."); undefined if malformed. */
export function parseScope(scope: string): Access | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first) return undefined;
  const type = scope.slice(0, first).replace(/\(.*\)$/, '');
  const name = scope.slice(first + 1, last);
  const actions = scope.slice(last + 1).split(',').filter((a) => a !== '');
  if (name === '') return undefined;
  return { type, name, actions };
}

// ---------------------------------------------------------------------------------------------
// Credentials

export interface CredentialStore {
  verify(user: string, password: string): Promise<boolean>;
}

/**
 * An htpasswd file of bcrypt entries (htpasswd -B). Reloaded when its mtime changes. Because bcrypt
 * is deliberately slow and clients send Basic credentials on every request, a successful check is
 * remembered (keyed by a salted hash of user, password and the stored hash) so only the first
 * request of a client pays for bcrypt.
 */
export class HtpasswdFile implements CredentialStore {
  private entries = new Map<string, string>();
  private mtimeMs = -1;
  private readonly verified = new Set<string>();
  private readonly salt = randomBytes(16);

  constructor(readonly file: string) {
    this.reload();
  }

  private reload(): void {
    const st = fs.statSync(this.file);
    if (st.mtimeMs === this.mtimeMs) return;
    const entries = new Map<string, string>();
    for (const raw of fs.readFileSync(this.file, 'utf8').split('\n')) {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) continue;
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const hash = line.slice(colon + 1);
      // Only bcrypt entries are honoured; crypt/MD5/SHA1 htpasswd formats are refused, as distribution does.
      if (!/^\$2[aby]?\$\d\d\$/.test(hash)) continue;
      entries.set(line.slice(0, colon), hash);
    }
    this.entries = entries;
    this.mtimeMs = st.mtimeMs;
    this.verified.clear();
  }

  async verify(user: string, password: string): Promise<boolean> {
    try {
      this.reload();
    } catch {
      return false;
    }
    const hash = this.entries.get(user);
    if (!hash) return false;
    const key = createHash('sha256').update(this.salt).update(user).update('\0').update(password).update('\0').update(hash).digest('hex');
    if (this.verified.has(key)) return true;
    const ok = await bcrypt.compare(password, hash);
    if (ok) this.verified.add(key);
    return ok;
  }
}

export function parseBasic(header: string | undefined): { user: string; password: string } | undefined {
  if (!header || !/^basic /i.test(header)) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

// ---------------------------------------------------------------------------------------------
// Policy

export interface AclEntry {
  /** A user name, or "*" for any authenticated user. */
  account: string;
  /** Repository name pattern; "*" matches any run of characters (including "/"). */
  name: string;
  actions: string[];
  /** Resource type, default "repository". */
  type?: string;
}

export interface AccessPolicy {
  /** The subset of a.actions granted to account (undefined: anonymous). */
  grant(account: string | undefined, a: Access): string[];
}

function globToRegExp(glob: string): RegExp {
  return new RegExp('^' + glob.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$');
}

/**
 * Default policy: authenticated users may do everything (pull, push, delete, catalog); anonymous
 * users may pull when anonymousPull is on. With an ACL, authenticated users get the union of the
 * entries that match them instead.
 */
export class SimplePolicy implements AccessPolicy {
  private readonly acl?: { account: string; type: string; name: RegExp; actions: string[] }[];

  constructor(
    private readonly anonymousPull: boolean,
    acl?: AclEntry[],
  ) {
    this.acl = acl?.map((e) => ({ account: e.account, type: e.type ?? 'repository', name: globToRegExp(e.name), actions: e.actions }));
  }

  grant(account: string | undefined, a: Access): string[] {
    if (account === undefined) {
      return this.anonymousPull && a.type === 'repository' ? a.actions.filter((x) => x === 'pull') : [];
    }
    if (!this.acl) return a.actions.filter((x) => ['pull', 'push', 'delete', '*'].includes(x));
    const allowed = new Set<string>();
    for (const e of this.acl) {
      if ((e.account === '*' || e.account === account) && e.type === a.type && e.name.test(a.name)) e.actions.forEach((x) => allowed.add(x));
    }
    return a.actions.filter((x) => allowed.has(x) || allowed.has('*'));
  }
}

// ---------------------------------------------------------------------------------------------
// Authorizers

export interface AuthResult {
  account?: string;
  /** Actions granted per "type:name", for callers that try optional extras (cross-repo mount). */
  can(a: Access): boolean;
}

export interface Authorizer {
  /** Resolves when the request may proceed with `needed` (empty: just be authenticated); else throws. */
  authorize(req: IncomingMessage, needed: Access[]): Promise<AuthResult>;
}

const allowAll: AuthResult = { can: () => true };

export class NoAuth implements Authorizer {
  async authorize(): Promise<AuthResult> {
    return allowAll;
  }
}

function covers(granted: string[], needed: string[]): boolean {
  return needed.every((n) => granted.includes(n) || granted.includes('*'));
}

export class BasicAuthorizer implements Authorizer {
  constructor(
    private readonly creds: CredentialStore,
    private readonly policy: AccessPolicy,
    private readonly realm: string,
  ) {}

  private challenge(message = 'authentication required'): RegistryError {
    const err = regErr('UNAUTHORIZED', message);
    err.headers['WWW-Authenticate'] = `Basic realm=${JSON.stringify(this.realm)}`;
    return err;
  }

  async authorize(req: IncomingMessage, needed: Access[]): Promise<AuthResult> {
    const basic = parseBasic(req.headers.authorization);
    let account: string | undefined;
    if (basic) {
      if (!(await this.creds.verify(basic.user, basic.password))) throw this.challenge('invalid username or password');
      account = basic.user;
    } else if (needed.length === 0) {
      // The /v2/ ping always challenges, so clients learn to send credentials.
      throw this.challenge();
    }
    for (const a of needed) {
      if (!covers(this.policy.grant(account, a), a.actions)) {
        if (account === undefined) throw this.challenge();
        throw regErr('DENIED', 'requested access to the resource is denied', [{ Type: a.type, Name: a.name, Action: a.actions.join(',') }]);
      }
    }
    return { account, can: (a) => covers(this.policy.grant(account, a), a.actions) };
  }
}

// ---------------------------------------------------------------------------------------------
// JWT

export interface TokenClaims {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  nbf: number;
  iat: number;
  jti: string;
  access: Access[];
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

export interface TokenKeys {
  /** Present when this process can issue tokens. */
  privateKey?: KeyObject;
  publicKey: KeyObject;
  alg: 'ES256' | 'RS256';
  kid: string;
}

/** Loads a PEM private key (issue and verify) or public key / certificate (verify only). */
export function loadTokenKeys(file: string): TokenKeys {
  const pem = fs.readFileSync(file);
  let privateKey: KeyObject | undefined;
  let publicKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
    publicKey = createPublicKey(privateKey);
  } catch {
    publicKey = createPublicKey(pem);
  }
  let alg: TokenKeys['alg'];
  if (publicKey.asymmetricKeyType === 'ec' && publicKey.asymmetricKeyDetails?.namedCurve === 'prime256v1') alg = 'ES256';
  else if (publicKey.asymmetricKeyType === 'rsa') alg = 'RS256';
  else throw new Error(`${file}: token key must be an EC P-256 or RSA key`);
  // RFC 7638 JWK thumbprint: lets a verifier with several keys pick the right one.
  const jwk = publicKey.export({ format: 'jwk' }) as Record<string, string>;
  const members = alg === 'ES256' ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y } : { e: jwk.e, kty: jwk.kty, n: jwk.n };
  const kid = createHash('sha256').update(JSON.stringify(members)).digest('base64url');
  return { privateKey, publicKey, alg, kid };
}

export function signToken(keys: TokenKeys, claims: TokenClaims): string {
  if (!keys.privateKey) throw new Error('token key has no private part; cannot issue tokens');
  const header = b64url(JSON.stringify({ typ: 'JWT', alg: keys.alg, kid: keys.kid }));
  const payload = b64url(JSON.stringify(claims));
  const input = Buffer.from(`${header}.${payload}`);
  const sig = keys.alg === 'ES256' ? sign('sha256', input, { key: keys.privateKey, dsaEncoding: 'ieee-p1363' }) : sign('sha256', input, keys.privateKey);
  return `${header}.${payload}.${b64url(sig)}`;
}

const CLOCK_LEEWAY_S = 60;

/** Verifies signature, algorithm, issuer, audience and lifetime; returns claims or a reason. */
export function verifyToken(keys: TokenKeys, token: string, issuer: string, service: string, now = Date.now() / 1000): TokenClaims | string {
  const parts = token.split('.');
  if (parts.length !== 3) return 'malformed token';
  let header: { alg?: string };
  let claims: TokenClaims;
  try {
    header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
    claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch {
    return 'malformed token';
  }
  // The algorithm is fixed by our key, never taken from the token (no "none", no HS256 confusion).
  if (header.alg !== keys.alg) return 'unexpected token algorithm';
  const input = Buffer.from(`${parts[0]}.${parts[1]}`);
  const sig = Buffer.from(parts[2], 'base64url');
  const ok = keys.alg === 'ES256' ? verify('sha256', input, { key: keys.publicKey, dsaEncoding: 'ieee-p1363' }, sig) : verify('sha256', input, keys.publicKey, sig);
  if (!ok) return 'invalid token signature';
  if (typeof claims !== 'object' || claims === null) return 'malformed token';
  if (claims.iss !== issuer) return 'token issuer mismatch';
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!aud.includes(service)) return 'token audience mismatch';
  if (typeof claims.exp !== 'number' || claims.exp + CLOCK_LEEWAY_S < now) return 'token expired';
  if (typeof claims.nbf === 'number' && claims.nbf - CLOCK_LEEWAY_S > now) return 'token not yet valid';
  if (!Array.isArray(claims.access)) claims.access = [];
  return claims;
}

export interface TokenAuthOptions {
  keys: TokenKeys;
  issuer: string;
  service: string;
  /** Realm URL; a function lets the server derive it from the request (its own /token endpoint). */
  realm: string | ((req: IncomingMessage) => string);
}

export class TokenAuthorizer implements Authorizer {
  constructor(private readonly opts: TokenAuthOptions) {}

  private challenge(req: IncomingMessage, needed: Access[], error?: string, message = 'authentication required'): RegistryError {
    const realm = typeof this.opts.realm === 'string' ? this.opts.realm : this.opts.realm(req);
    let value = `Bearer realm=${JSON.stringify(realm)},service=${JSON.stringify(this.opts.service)}`;
    if (needed.length > 0) value += `,scope=${JSON.stringify(needed.map(formatScope).join(' '))}`;
    if (error) value += `,error=${JSON.stringify(error)}`;
    const err = regErr('UNAUTHORIZED', message, needed.length > 0 ? needed.map((a) => ({ Type: a.type, Name: a.name, Action: a.actions.join(',') })) : undefined);
    err.headers['WWW-Authenticate'] = value;
    return err;
  }

  async authorize(req: IncomingMessage, needed: Access[]): Promise<AuthResult> {
    const header = req.headers.authorization;
    if (!header || !/^bearer /i.test(header)) throw this.challenge(req, needed);
    const claims = verifyToken(this.opts.keys, header.slice(7).trim(), this.opts.issuer, this.opts.service);
    if (typeof claims === 'string') throw this.challenge(req, needed, 'invalid_token', claims);
    const can = (a: Access): boolean => {
      const granted = new Set<string>();
      for (const g of claims.access) {
        if (g && g.type === a.type && g.name === a.name && Array.isArray(g.actions)) g.actions.forEach((x) => granted.add(x));
      }
      return covers([...granted], a.actions);
    };
    for (const a of needed) if (!can(a)) throw this.challenge(req, needed, 'insufficient_scope', 'insufficient scope');
    return { account: claims.sub || undefined, can };
  }
}
