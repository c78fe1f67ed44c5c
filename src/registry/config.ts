// Registry configuration: the same keys as the command-line flags, from a JSON file (--config) with
// flags taking precedence. Keys may be written as the flag ("tls-cert") or in camelCase ("tlsCert").
// This module also turns a configuration into the parts the server is built from.
import * as fs from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { BasicAuthorizer, HtpasswdFile, loadTokenKeys, NoAuth, SimplePolicy, TokenAuthorizer, type AclEntry, type Authorizer } from './auth';
import { TokenIssuer } from './token';
import type { RateLimit, RegistryOptions, ListenOptions } from './server';

export interface RegistryConfig {
  addr: string;
  root: string;
  htpasswd?: string;
  /** Realm of the Basic challenge. */
  realm?: string;
  tlsCert?: string;
  tlsKey?: string;
  readOnly?: boolean;
  deleteEnabled?: boolean;
  anonymousPull?: boolean;
  tokenRealm?: string;
  tokenIssuer?: string;
  tokenService?: string;
  /** PEM private key (to issue and verify) or public key / certificate (verify only). */
  tokenKey?: string;
  /** Serve the token endpoint (at the realm's path, default /token) from this process. */
  tokenServer?: boolean;
  /** Token lifetime in seconds. */
  tokenExpiry?: number;
  acl?: AclEntry[];
  rateLimit?: RateLimit;
}

export const DEFAULT_ADDR = ':5000';
export const DEFAULT_ROOT = '/var/lib/berth/registry';
const DEFAULT_ISSUER = 'berth-registry';
const DEFAULT_SERVICE = 'berth-registry';

const KEYS: (keyof RegistryConfig)[] = [
  'addr', 'root', 'htpasswd', 'realm', 'tlsCert', 'tlsKey', 'readOnly', 'deleteEnabled', 'anonymousPull', 'tokenRealm',
  'tokenIssuer', 'tokenService', 'tokenKey', 'tokenServer', 'tokenExpiry', 'acl', 'rateLimit',
];

const camel = (k: string): string => k.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());

/** Reads a JSON config file into a partial configuration, refusing unknown keys (typos fail loudly). */
export function loadConfigFile(file: string): Partial<RegistryConfig> {
  let doc: unknown;
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read registry config ${file}: ${(err as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error(`registry config ${file}: must be a JSON object`);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(doc)) {
    const key = camel(k) as keyof RegistryConfig;
    if (!KEYS.includes(key)) throw new Error(`registry config ${file}: unknown key "${k}"`);
    out[key] = v;
  }
  return out as Partial<RegistryConfig>;
}

export interface BuiltServer {
  registry: RegistryOptions;
  listen: ListenOptions;
}

/** Validates a configuration and builds the server's options (reads key, certificate, htpasswd files). */
export function buildServerOptions(cfg: RegistryConfig): BuiltServer {
  if ((cfg.tlsCert === undefined) !== (cfg.tlsKey === undefined)) throw new Error('--tls-cert and --tls-key must be given together');
  const tls = cfg.tlsCert && cfg.tlsKey ? { cert: fs.readFileSync(cfg.tlsCert), key: fs.readFileSync(cfg.tlsKey) } : undefined;
  const policy = new SimplePolicy(cfg.anonymousPull ?? false, cfg.acl);
  const creds = cfg.htpasswd ? new HtpasswdFile(cfg.htpasswd) : undefined;
  const tokenMode = cfg.tokenRealm !== undefined || cfg.tokenServer || cfg.tokenKey !== undefined;
  let authorizer: Authorizer = new NoAuth();
  let tokenIssuer: TokenIssuer | undefined;
  let tokenPath: string | undefined;
  if (tokenMode) {
    if (!cfg.tokenKey) throw new Error('token authentication needs --token-key');
    if (!cfg.tokenRealm && !cfg.tokenServer) throw new Error('token authentication needs --token-realm (or --token-server)');
    const keys = loadTokenKeys(cfg.tokenKey);
    const issuer = cfg.tokenIssuer ?? DEFAULT_ISSUER;
    const service = cfg.tokenService ?? DEFAULT_SERVICE;
    tokenPath = cfg.tokenRealm ? new URL(cfg.tokenRealm).pathname : '/token';
    const scheme = tls ? 'https' : 'http';
    const realm = cfg.tokenRealm ?? ((req: IncomingMessage) => `${scheme}://${req.headers.host ?? 'localhost'}${tokenPath}`);
    authorizer = new TokenAuthorizer({ keys, issuer, service, realm });
    if (cfg.tokenServer) {
      if (!keys.privateKey) throw new Error('--token-server needs a private key in --token-key');
      tokenIssuer = new TokenIssuer({ keys, issuer, service, expiresIn: cfg.tokenExpiry ?? 300, creds, policy });
    }
  } else if (creds) {
    authorizer = new BasicAuthorizer(creds, policy, cfg.realm ?? 'Registry Realm');
  }
  return {
    registry: {
      root: cfg.root,
      readOnly: cfg.readOnly,
      deleteEnabled: cfg.deleteEnabled,
      authorizer,
      tokenIssuer,
      tokenPath,
      rateLimit: cfg.rateLimit,
    },
    listen: { addr: cfg.addr, tls },
  };
}
