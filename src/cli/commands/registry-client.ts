// Registry commands of the client: pull, push, login, logout. Credentials live in the client's
// config file (docker's "auths" layout) and reach the daemon as X-Registry-Auth on pull and push;
// the daemon itself stores nothing.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough, type Writable } from 'node:stream';
import { writeFileAtomic } from '../../common/fsutil';
import { displayJSONMessages, readAll, UsageError } from '../client';
import type { CliIO, CommandContext, CommandSpec } from '../command';
import { splitReference, validateReference } from './images';

export const DEFAULT_INDEX_SERVER = 'https://index.docker.io/v1/';

/** The client config directory: $BERTH_CONFIG, else ~/.berth. */
export function configDir(env: NodeJS.ProcessEnv): string {
  return env.BERTH_CONFIG || path.join(env.HOME || os.homedir(), '.berth');
}

export interface ClientConfig {
  auths?: Record<string, { auth?: string; identitytoken?: string }>;
  [key: string]: unknown;
}

export function loadConfig(env: NodeJS.ProcessEnv): ClientConfig {
  const file = path.join(configDir(env), 'config.json');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw e;
  }
  try {
    return JSON.parse(text) as ClientConfig;
  } catch (e) {
    throw new Error(`loading config file: ${file}: ${(e as Error).message}`);
  }
}

/** Writes the config atomically with mode 0600: it holds credentials. */
export function saveConfig(env: NodeJS.ProcessEnv, cfg: ClientConfig): string {
  const dir = configDir(env);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, 'config.json');
  writeFileAtomic(file, JSON.stringify(cfg, null, '\t') + '\n', 0o600);
  return file;
}

/** The registry a reference names: docker.io when its first component is not a host. */
export function registryOf(ref: string): string {
  const slash = ref.indexOf('/');
  if (slash < 0) return 'docker.io';
  const first = ref.slice(0, slash);
  return first.includes('.') || first.includes(':') || first === 'localhost' ? first : 'docker.io';
}

/** The key of a registry in "auths": docker's index URL for docker.io, else host[:port]. */
export function authKey(registry: string): string {
  const host = registry.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
  return ['docker.io', 'index.docker.io', 'registry-1.docker.io'].includes(host) ? DEFAULT_INDEX_SERVER : host;
}

/** X-Registry-Auth for a registry from the stored credentials: base64url of the JSON AuthConfig. */
export function registryAuthHeader(env: NodeJS.ProcessEnv, registry: string): string {
  const key = authKey(registry);
  const entry = loadConfig(env).auths?.[key];
  const cfg: Record<string, string> = { serveraddress: key };
  if (entry?.auth) {
    const plain = Buffer.from(entry.auth, 'base64').toString();
    const colon = plain.indexOf(':');
    if (colon > 0) {
      cfg.username = plain.slice(0, colon);
      cfg.password = plain.slice(colon + 1);
    }
  }
  if (entry?.identitytoken) cfg.identitytoken = entry.identitytoken;
  return Buffer.from(JSON.stringify(cfg)).toString('base64url');
}

/** docker's FamiliarString turned around: "busybox" -> "docker.io/library/busybox". */
function fullName(repo: string): string {
  if (registryOf(repo) !== 'docker.io' || repo.startsWith('docker.io/')) return repo;
  return `docker.io/${repo.includes('/') ? repo : `library/${repo}`}`;
}

function sinkFor(io: CliIO, quiet: boolean): Writable & { isTTY?: boolean } {
  return quiet ? new PassThrough().resume() : io.stdout;
}

async function pullCmd(ctx: CommandContext, v: Record<string, unknown>, image: string): Promise<number> {
  validateReference(image.replace(/@sha256:[0-9a-f]{64}$/, ''));
  const all = Boolean(v['all-tags']);
  const hasTag = image.includes('@') || image.lastIndexOf(':') > image.lastIndexOf('/');
  if (all && hasTag) throw new Error('tag can\'t be used with --all-tags/-a');
  const { repo, tag, digest } = splitReference(image);
  const quiet = Boolean(v.quiet);
  if (!all && !hasTag && !quiet) ctx.out('Using default tag: latest\n');
  if (all && !quiet) ctx.out(`Pulling repository ${fullName(repo)}\n`);
  const res = await ctx.client.request('POST', '/images/create', {
    query: { fromImage: repo, tag: all ? undefined : digest ?? tag, platform: (v.platform as string) || undefined },
    headers: { 'X-Registry-Auth': registryAuthHeader(ctx.io.env, registryOf(repo)) },
  });
  await displayJSONMessages(res, sinkFor(ctx.io, quiet));
  ctx.out(`${fullName(repo)}${all ? '' : digest ? `@${digest}` : `:${tag}`}\n`);
  return 0;
}

async function pushCmd(ctx: CommandContext, v: Record<string, unknown>, image: string): Promise<number> {
  validateReference(image);
  const all = Boolean(v['all-tags']);
  const hasTag = image.lastIndexOf(':') > image.lastIndexOf('/');
  if (all && hasTag) throw new Error('tag can\'t be used with --all-tags/-a');
  const { repo, tag } = splitReference(image);
  const quiet = Boolean(v.quiet);
  if (!all && !hasTag && !quiet) ctx.out('Using default tag: latest\n');
  const res = await ctx.client.request('POST', `/images/${encodeURIComponent(repo)}/push`, {
    query: { tag: all ? undefined : tag },
    headers: { 'X-Registry-Auth': registryAuthHeader(ctx.io.env, registryOf(repo)) },
  });
  await displayJSONMessages(res, sinkFor(ctx.io, quiet));
  if (quiet) ctx.out(`${all ? repo : `${repo}:${tag}`}\n`);
  return 0;
}

async function readPasswordStdin(io: CliIO): Promise<string> {
  const buf = await readAll(io.stdin);
  return buf.toString().replace(/\r?\n$/, '');
}

async function loginCmd(ctx: CommandContext, v: Record<string, unknown>, args: string[]): Promise<number> {
  const server = args[0] ? authKey(args[0]) : DEFAULT_INDEX_SERVER;
  let user = (v.username as string | undefined) ?? '';
  let password = (v.password as string | undefined) ?? '';
  if (password) ctx.err('WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n');
  if (v['password-stdin']) {
    if (password) throw new UsageError('--password and --password-stdin are mutually exclusive');
    if (!user) throw new UsageError('Must provide --username with --password-stdin');
    password = await readPasswordStdin(ctx.io);
  }
  if (!user || !password) {
    // Without a terminal to prompt on, the stored credentials are the only other source.
    const stored = loadConfig(ctx.io.env).auths?.[server]?.auth;
    const plain = stored ? Buffer.from(stored, 'base64').toString() : '';
    const colon = plain.indexOf(':');
    if (colon > 0 && (!user || user === plain.slice(0, colon))) {
      user = plain.slice(0, colon);
      password ||= plain.slice(colon + 1);
    }
  }
  if (!user) throw new Error('Error: Non-null Username Required');
  if (!password) throw new Error('Error: Non-null Password Required');
  const r = await ctx.client.json<{ Status?: string; IdentityToken?: string }>('POST', '/auth', { body: { username: user, password, serveraddress: server } });
  const cfg = loadConfig(ctx.io.env);
  cfg.auths ??= {};
  cfg.auths[server] = r.IdentityToken ? { auth: Buffer.from(`${user}:`).toString('base64'), identitytoken: r.IdentityToken } : { auth: Buffer.from(`${user}:${password}`).toString('base64') };
  const file = saveConfig(ctx.io.env, cfg);
  ctx.err(`WARNING! Your credentials are stored unencrypted in '${file}'.\nConfigure a credential helper to remove this warning.\n\n`);
  ctx.out(`${r.Status || 'Login Succeeded'}\n`);
  return 0;
}

async function logoutCmd(ctx: CommandContext, args: string[]): Promise<number> {
  const server = args[0] ? authKey(args[0]) : DEFAULT_INDEX_SERVER;
  const cfg = loadConfig(ctx.io.env);
  const shown = server === DEFAULT_INDEX_SERVER ? server : args[0] ?? server;
  if (!cfg.auths?.[server]) {
    ctx.out(`Not logged in to ${shown}\n`);
    return 0;
  }
  ctx.out(`Removing login credentials for ${shown}\n`);
  delete cfg.auths[server];
  saveConfig(ctx.io.env, cfg);
  return 0;
}

export function registryClientCommands(): CommandSpec[] {
  return [
    {
      paths: [['image', 'pull'], ['pull']],
      usage: '[OPTIONS] NAME[:TAG|@DIGEST]',
      description: 'Download an image from a registry',
      flags: [
        { name: 'all-tags', short: 'a', type: 'bool', description: 'Download all tagged images in the repository' },
        { name: 'disable-content-trust', type: 'bool', default: true, description: 'Skip image verification' },
        { name: 'platform', type: 'string', description: 'Set platform if server is multi-platform capable' },
        { name: 'quiet', short: 'q', type: 'bool', description: 'Suppress verbose output' },
      ],
      args: { exact: 1 },
      run: (ctx, f) => pullCmd(ctx, f.values, f.args[0]),
    },
    {
      paths: [['image', 'push'], ['push']],
      usage: '[OPTIONS] NAME[:TAG]',
      description: 'Upload an image to a registry',
      flags: [
        { name: 'all-tags', short: 'a', type: 'bool', description: 'Push all tags of an image to the repository' },
        { name: 'disable-content-trust', type: 'bool', default: true, description: 'Skip image signing' },
        { name: 'platform', type: 'string', description: 'Push a platform-specific manifest as a single-platform image to the registry.' },
        { name: 'quiet', short: 'q', type: 'bool', description: 'Suppress verbose output' },
      ],
      args: { exact: 1 },
      run: (ctx, f) => pushCmd(ctx, f.values, f.args[0]),
    },
    {
      paths: [['login']],
      usage: '[OPTIONS] [SERVER]',
      description: 'Authenticate to a registry.\nDefaults to Docker Hub if no server is specified.',
      flags: [
        { name: 'password', short: 'p', type: 'string', description: 'Password or Personal Access Token (PAT)' },
        { name: 'password-stdin', type: 'bool', description: 'Take the Password or Personal Access Token (PAT) from stdin' },
        { name: 'username', short: 'u', type: 'string', description: 'Username' },
      ],
      args: { max: 1 },
      run: (ctx, f) => loginCmd(ctx, f.values, f.args),
    },
    {
      paths: [['logout']],
      usage: '[SERVER]',
      description: 'Log out from a registry.\nIf no server is specified, the default is defined by the daemon.',
      flags: [],
      args: { max: 1 },
      run: (ctx, f) => logoutCmd(ctx, f.args),
    },
  ];
}
