// The API listener: one HTTP server bound to every -H address. Unix sockets are made 0660 (group
// "berth" when that group exists), never world-writable. tcp:// is refused until TLS exists.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import type { Logger } from '../common/logger';
import type { Router } from './router';

export interface Listener {
  address: string;
  close(): Promise<void>;
}

export class ListenAddressError extends Error {}

function groupId(name: string): number | undefined {
  try {
    for (const line of fs.readFileSync('/etc/group', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[0] === name) return Number(f[2]);
    }
  } catch {}
  return undefined;
}

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

  constructor(private readonly router: Router, private readonly log: Logger) {}

  /** One http.Server per address, all sharing the router. */
  private createHttpServer(): http.Server {
    const router = this.router;
    const srv = http.createServer({ keepAliveTimeout: 60_000, requestTimeout: 0 }, (req, res) => {
      void router.dispatch(req, res);
    });
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
    if (proto === 'tcp') {
      throw new ListenAddressError(`refusing to listen on ${address}: tcp:// listeners need TLS, which berthd does not support yet; use unix://`);
    }
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
    const gid = groupId('berth');
    fs.chmodSync(sockPath, 0o660);
    if (gid !== undefined) fs.chownSync(sockPath, 0, gid);
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

  /** Stops accepting, ends idle keep-alive connections, and cuts the rest after a grace period. */
  async close(graceMs = 2000): Promise<void> {
    const all = this.servers.map((s) => new Promise<void>((r) => { s.close(() => r()); s.closeIdleConnections(); }));
    const timer = setTimeout(() => { for (const s of this.servers) s.closeAllConnections(); }, graceMs);
    await Promise.all(all);
    clearTimeout(timer);
  }
}
