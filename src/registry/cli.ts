// `berth registry serve` and `berth registry gc`: a standalone OCI distribution registry.
import * as fs from 'node:fs';
import { FlagError, parseFlags, type FlagSpec } from '../common/flags';
import { Logger } from '../common/logger';
import { buildServerOptions, DEFAULT_ADDR, DEFAULT_ROOT, loadConfigFile, type RegistryConfig } from './config';
import { startRegistry } from './server';
import { collectGarbage } from './gc';

const SERVE_FLAGS: FlagSpec[] = [
  { name: 'addr', type: 'string', description: `Address to listen on, HOST:PORT or :PORT for all addresses (default "${DEFAULT_ADDR}")` },
  { name: 'root', type: 'string', description: `Storage directory (default "${DEFAULT_ROOT}")` },
  { name: 'config', type: 'string', description: 'JSON configuration file (same keys as the flags)' },
  { name: 'htpasswd', type: 'string', description: 'htpasswd file of bcrypt entries for basic authentication' },
  { name: 'realm', type: 'string', description: 'Realm of the basic authentication challenge' },
  { name: 'tls-cert', type: 'string', description: 'TLS certificate (PEM)' },
  { name: 'tls-key', type: 'string', description: 'TLS private key (PEM)' },
  { name: 'read-only', type: 'bool', description: 'Refuse all writes' },
  { name: 'disable-delete', type: 'bool', description: 'Refuse deletion of blobs, manifests and tags' },
  { name: 'anonymous-pull', type: 'bool', description: 'Allow pulls without credentials' },
  { name: 'token-realm', type: 'string', description: 'URL of the token service (bearer token authentication)' },
  { name: 'token-issuer', type: 'string', description: 'Issuer of accepted tokens (default "berth-registry")' },
  { name: 'token-service', type: 'string', description: 'Service name tokens are issued for (default "berth-registry")' },
  { name: 'token-key', type: 'string', description: 'PEM key: private (issue and verify) or public/certificate (verify only)' },
  { name: 'token-server', type: 'bool', description: 'Serve the token endpoint from this process (users from --htpasswd)' },
  { name: 'token-expiry', type: 'int', description: 'Lifetime of issued tokens in seconds (default 300)' },
  { name: 'log-level', type: 'string', default: 'info', description: 'Log level (debug, info, warn, error)' },
  { name: 'help', short: 'h', type: 'bool' },
];

const GC_FLAGS: FlagSpec[] = [
  { name: 'root', type: 'string', description: `Storage directory (default "${DEFAULT_ROOT}")` },
  { name: 'config', type: 'string', description: 'JSON configuration file (its "root" is used)' },
  { name: 'dry-run', type: 'bool', description: 'Report what would be deleted without deleting' },
  { name: 'delete-untagged', type: 'bool', description: 'Also delete manifests no tag reaches' },
  { name: 'upload-max-age', type: 'int', default: 168, description: 'Remove upload sessions started more than this many hours ago (default 168)' },
  { name: 'quiet', short: 'q', type: 'bool', description: 'Print only the summary' },
  { name: 'help', short: 'h', type: 'bool' },
];

// Flag name -> config key; only flags given on the command line override the file.
const FLAG_TO_KEY: Record<string, keyof RegistryConfig> = {
  addr: 'addr', root: 'root', htpasswd: 'htpasswd', realm: 'realm', 'tls-cert': 'tlsCert', 'tls-key': 'tlsKey', 'read-only': 'readOnly',
  'anonymous-pull': 'anonymousPull', 'token-realm': 'tokenRealm', 'token-issuer': 'tokenIssuer', 'token-service': 'tokenService',
  'token-key': 'tokenKey', 'token-server': 'tokenServer', 'token-expiry': 'tokenExpiry',
};

function usage(cmd: string, specs: FlagSpec[]): string {
  const lines = specs.filter((s) => s.description).map((s) => `      --${s.name}${s.type === 'bool' ? '' : ` ${s.type}`}  ${s.description}`);
  return `Usage:  berth registry ${cmd} [OPTIONS]\n\nOptions:\n${lines.join('\n')}\n`;
}

const MAIN_USAGE = `Usage:  berth registry COMMAND

Run an OCI distribution registry

Commands:
  serve       Serve the registry API
  gc          Delete blobs no manifest references
`;

function resolveConfig(values: Record<string, unknown>, given: Set<string>): RegistryConfig {
  const fromFile = values.config ? loadConfigFile(values.config as string) : {};
  const cfg: Record<string, unknown> = { ...fromFile };
  for (const [flag, key] of Object.entries(FLAG_TO_KEY)) if (given.has(flag)) cfg[key] = values[flag];
  if (given.has('disable-delete')) cfg.deleteEnabled = !values['disable-delete'];
  cfg.addr ??= DEFAULT_ADDR;
  cfg.root ??= DEFAULT_ROOT;
  return cfg as unknown as RegistryConfig;
}

async function serve(argv: string[]): Promise<number> {
  const { values, given } = parseFlags(argv, SERVE_FLAGS);
  if (values.help) {
    process.stdout.write(usage('serve', SERVE_FLAGS));
    return 0;
  }
  const log = new Logger((values['log-level'] as Logger['level']) ?? 'info');
  const cfg = resolveConfig(values, given);
  fs.mkdirSync(cfg.root, { recursive: true, mode: 0o700 });
  const built = buildServerOptions(cfg);
  const running = await startRegistry({ ...built.registry, ...built.listen, logger: log });
  log.info('registry listening', { addr: cfg.addr, url: running.url, root: cfg.root, tls: !!built.listen.tls, readOnly: !!cfg.readOnly });
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      log.info('registry shutting down');
      running.close().then(resolve, resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  return 0;
}

async function gc(argv: string[]): Promise<number> {
  const { values, given } = parseFlags(argv, GC_FLAGS);
  if (values.help) {
    process.stdout.write(usage('gc', GC_FLAGS));
    return 0;
  }
  const cfg = resolveConfig(values, given);
  if (!fs.existsSync(cfg.root)) {
    process.stderr.write(`registry root ${cfg.root} does not exist\n`);
    return 1;
  }
  const quiet = values.quiet as boolean;
  const result = await collectGarbage({
    root: cfg.root,
    dryRun: values['dry-run'] as boolean,
    deleteUntagged: values['delete-untagged'] as boolean,
    uploadMaxAgeMs: (values['upload-max-age'] as number) * 3600 * 1000,
    log: (line) => {
      if (!quiet || /blobs marked/.test(line)) process.stdout.write(line + '\n');
    },
  });
  void result;
  return 0;
}

/** Entry point of `berth registry ...`; returns the exit status. */
export async function registryMain(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'serve':
        return await serve(rest);
      case 'gc':
        return await gc(rest);
      case undefined:
      case '--help':
      case '-h':
      case 'help':
        process.stdout.write(MAIN_USAGE);
        return cmd === undefined ? 1 : 0;
      default:
        process.stderr.write(`berth registry: unknown command "${cmd}"\n\n${MAIN_USAGE}`);
        return 1;
    }
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    process.stderr.write(`${err instanceof FlagError ? '' : 'Error: '}${msg}\n`);
    if (err instanceof FlagError) process.stderr.write(`See 'berth registry ${cmd} --help'.\n`);
    return err instanceof FlagError ? 125 : 1;
  }
}
