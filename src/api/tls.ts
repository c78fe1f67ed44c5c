// Who may talk to the API. Access to berthd's API is root on this machine, so:
// - unix sockets are 0660, owned by group "berth" (made at start-up when missing, as dockerd's
//   "docker" group), never world-accessible;
// - tcp:// listeners need mutual TLS (--tlsverify with a CA that signs the client certificates);
//   a plain TCP listener is refused unless a flag that names the risk is given.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import type * as tls from 'node:tls';
import type { Logger } from '../common/logger';

/** The group that owns the API's unix sockets. */
export const API_SOCKET_GROUP = 'berth';

/** The flag that lets berthd listen on plain TCP; its name says what it does. */
export const INSECURE_TCP_FLAG = 'insecure-tcp-exposes-root';

export interface ApiSecurity {
  /** --tlsverify: TLS with client certificates signed by tlsCACert required. */
  tlsVerify: boolean;
  tlsCACert?: string;
  tlsCert?: string;
  tlsKey?: string;
  /** --insecure-tcp-exposes-root: plain TCP allowed (anyone who can connect is root). */
  insecureTcp: boolean;
}

export class ApiSecurityError extends Error {}

/** The group's id from /etc/group, or undefined. */
export function groupId(name: string, groupFile = '/etc/group'): number | undefined {
  try {
    for (const line of fs.readFileSync(groupFile, 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[0] === name && /^\d+$/.test(f[2] ?? '')) return Number(f[2]);
    }
  } catch {}
  return undefined;
}

/**
 * The API socket group's id, creating the group (a system group) when it is missing. Runs once at
 * start-up: one groupadd spawn at most. A failure is a warning, not fatal: the socket then stays
 * root-only (0660 root:root), which is safe.
 */
export function ensureSocketGroup(log: Logger, name = API_SOCKET_GROUP): number | undefined {
  const gid = groupId(name);
  if (gid !== undefined) return gid;
  try {
    execFileSync('groupadd', ['--system', name], { stdio: ['ignore', 'ignore', 'pipe'] });
    log.info(`created group ${name} for the API socket`);
  } catch (err) {
    const stderr = String((err as { stderr?: Buffer }).stderr ?? '').trim();
    log.warn(`could not create group ${name}; the API socket stays root-only: ${stderr || (err as Error).message}`);
  }
  return groupId(name);
}

/**
 * Checks that a tcp:// address may be listened on with these settings, in dockerd's words. Plain
 * TCP (no --tlsverify) is refused unless --insecure-tcp-exposes-root is given.
 */
export function checkTcpListen(address: string, sec: ApiSecurity): void {
  if (sec.tlsVerify) return;
  if (sec.insecureTcp) return;
  throw new ApiSecurityError(
    `refusing to listen on ${address} without --tlsverify: tcp:// listeners need TLS with client verification, because binding ` +
      `to an IP address without it gives root access on this machine to everyone who can reach it. Use --tlsverify with --tlscacert, --tlscert and --tlskey, ` +
      `or pass --${INSECURE_TCP_FLAG} if you really mean it`,
  );
}

function readPem(what: string, flag: string, file: string | undefined): Buffer {
  if (!file) throw new ApiSecurityError(`--tlsverify needs --${flag} (${what})`);
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new ApiSecurityError(`could not read ${what} ${JSON.stringify(file)}: ${(err as Error).message}`);
  }
}

/**
 * The server TLS options of a --tlsverify listener: our certificate and key, and the CA that
 * client certificates must chain to. A client without a valid certificate fails the handshake.
 */
export function tlsServerOptions(sec: ApiSecurity): tls.TlsOptions {
  const ca = readPem('CA certificate', 'tlscacert', sec.tlsCACert);
  const cert = readPem('server certificate', 'tlscert', sec.tlsCert);
  const key = readPem('server key', 'tlskey', sec.tlsKey);
  return { ca, cert, key, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' };
}

/** Settings from the daemon config: flags and daemon.json keys as dockerd names them. */
export function apiSecurityFrom(cfg: { tlsVerify?: boolean; tlsCACert?: string; tlsCert?: string; tlsKey?: string; insecureTcp?: boolean }): ApiSecurity {
  return { tlsVerify: cfg.tlsVerify === true, tlsCACert: cfg.tlsCACert, tlsCert: cfg.tlsCert, tlsKey: cfg.tlsKey, insecureTcp: cfg.insecureTcp === true };
}
