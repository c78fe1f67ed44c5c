// The API listener: one HTTP server bound to every -H address. Unix sockets are made 0660 (group
// "berth", created at start-up when missing), never world-writable. tcp:// needs mutual TLS
// (--tlsverify) unless plain TCP is explicitly allowed (see tls.ts).
import * as fs from 'node:fs';
import * as http from 'node:http';
import type * as https from 'node:https';
import * as net from 'node:net';
import * as path from 'node:path';
import type { Logger } from '../common/logger';
import type { Router } from './router';
import { ApiSecurityError, checkTcpListen, ensureSocketGroup, tlsServerOptions, type ApiSecurity } from './tls';

export interface Listener {
  address: string;
  close(): Promise<void>;
}

export class ListenAddressError extends Error {}

/** True when something accepts connections on the unix socket at p. */
function socketInUse(p: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(p);
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}

export class ApiServer {
  private readonly servers: http.Server[] = [];
  /** The socket group's id, looked up (or the group created) once, at the first unix listen. */
  private socketGid?: number | null;

  constructor(private readonly router: Router, private readonly log: Logger, private readonly security: ApiSecurity = { tlsVerify: false, insecureTcp: false }) {}

  /** One http.Server (https.Server for --tlsverify) per address, all sharing the router. */
  private createHttpServer(tlsOptions?: https.ServerOptions): http.Server {
    const router = this.router;
    const opts = { keepAliveTimeout: 60_000, requestTimeout: 0 };
    const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      void router.dispatch(req, res);
    };
    // node:https (and with it TLS) is loaded only for a TLS listener: an idle daemon on its unix
    // socket does not carry it (idle RSS is one of berth's targets).
    const srv: http.Server = tlsOptions ? (require('node:https') as typeof https).createServer({ ...opts, ...tlsOptions }, onRequest) : http.createServer(opts, onRequest);
    if (tlsOptions) {
      // A client without a valid certificate never gets past the handshake; say so in the log.
      srv.on('tlsClientError', (err: Error) => this.log.debug(`TLS handshake refused: ${err.message}`));
    }
    srv.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      // Hijacked connections (attach, exec start): the handler owns the socket from here on.
      const res = new http.ServerResponse(req);
      void router.dispatch(req, res, { socket, head });
    });
    srv.on('clientError', (_err, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    });
    return srv;
  }

  async listen(address: string): Promise<Listener> {
    const m = /^([a-z]+):\/\/(.*)$/.exec(address);
    if (!m) throw new ListenAddressError(`invalid listen address ${JSON.stringify(address)}: expected unix:///path`);
    const [, proto, rest] = m;
    if (proto === 'tcp') return this.listenTcp(address, rest);
    if (proto !== 'unix') throw new ListenAddressError(`invalid listen address ${JSON.stringify(address)}: unsupported protocol ${proto}`);
    const sockPath = rest;
    if (!path.isAbsolute(sockPath)) throw new ListenAddressError(`invalid listen address ${JSON.stringify(address)}: path must be absolute`);
    fs.mkdirSync(path.dirname(sockPath), { recursive: true });
    if (fs.existsSync(sockPath)) {
      if (await socketInUse(sockPath)) throw new ListenAddressError(`${sockPath} is in use by another daemon`);
      fs.rmSync(sockPath, { force: true });
    }
    const srv = this.createHttpServer();
    // The umask makes the socket 0660 from its first moment, with no window where it is wider.
    const oldMask = process.umask(0o117);
    try {
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(sockPath, () => { srv.off('error', reject); resolve(); });
      });
    } finally {
      process.umask(oldMask);
    }
    if (this.socketGid === undefined) this.socketGid = ensureSocketGroup(this.log) ?? null;
    fs.chmodSync(sockPath, 0o660);
    if (this.socketGid !== null) fs.chownSync(sockPath, 0, this.socketGid);
    this.servers.push(srv);
    this.log.info('API listen on ' + sockPath);
    return {
      address,
      close: () => new Promise<void>((resolve) => {
        srv.close(() => { fs.rmSync(sockPath, { force: true }); resolve(); });
        srv.closeIdleConnections();
      }),
    };
  }

  /** tcp://host:port: mutual TLS with --tlsverify; plain only when explicitly allowed. */
  private async listenTcp(address: string, rest: string): Promise<Listener> {
    const hm = /^(\[[^\]]+\]|[^:/]*):(\d+)\/?$/.exec(rest);
    if (!hm) throw new ListenAddressError(`invalid listen address ${JSON.stringify(address)}: expected tcp://host:port`);
    const host = hm[1].replace(/^\[|\]$/g, '') || '0.0.0.0';
    const port = Number(hm[2]);
    if (port > 65535) throw new ListenAddressError(`invalid listen address ${JSON.stringify(address)}: invalid port`);
    let tlsOptions: https.ServerOptions | undefined;
    try {
      checkTcpListen(address, this.security);
      if (this.security.tlsVerify) tlsOptions = tlsServerOptions(this.security);
    } catch (err) {
      if (err instanceof ApiSecurityError) throw new ListenAddressError(err.message);
      throw err;
    }
    if (!tlsOptions) this.log.warn(`API listening on ${address} WITHOUT TLS: anyone who can connect to it has root access on this machine`);
    const srv = this.createHttpServer(tlsOptions);
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, host, () => { srv.off('error', reject); resolve(); });
    });
    this.servers.push(srv);
    const bound = srv.address() as net.AddressInfo;
    const actual = `tcp://${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`;
    this.log.info(`API listen on ${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`, { tls: tlsOptions !== undefined });
    return {
      address: actual,
      close: () => new Promise<void>((resolve) => {
        srv.close(() => resolve());
        srv.closeIdleConnections();
      }),
    };
  }

  /** Stops accepting, ends idle keep-alive connections, and cuts the rest after a grace period. */
  async close(graceMs = 2000): Promise<void> {
    const all = this.servers.map((s) => new Promise<void>((r) => { s.close(() => r()); s.closeIdleConnections(); }));
    const timer = setTimeout(() => { for (const s of this.servers) s.closeAllConnections(); }, graceMs);
    await Promise.all(all);
    clearTimeout(timer);
  }
}
