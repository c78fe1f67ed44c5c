// Published ports. netavark installs the DNAT rules; berth additionally holds a socket bound to
// each published host port, as docker's userland proxy does. The held socket never sees traffic
// (nat PREROUTING/OUTPUT rewrite the destination before delivery) but it makes the host port
// genuinely taken: another process, or another berthd, that tries to use it fails instead of
// silently losing its traffic to our DNAT rule. It also is how a random port is checked free.
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { BerthError, hasCode, invalidParameter, systemError } from '../common/errors';
import type { PortBinding, PortBindingRequest } from './types';

type Held = net.Server | dgram.Socket;

export function ephemeralRange(): { low: number; high: number } {
  try {
    const [low, high] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low > 0 && high >= low) return { low, high };
  } catch {}
  return { low: 32768, high: 60999 };
}

function listenTCP(ip: string, port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const s = net.createServer((c) => c.destroy());
    s.once('error', reject);
    // exclusive: with the cluster module absent this is the default, but say it: no sharing.
    s.listen({ host: ip, port, exclusive: true, backlog: 1 }, () => {
      s.removeListener('error', reject);
      s.on('error', () => {});
      resolve(s);
    });
  });
}

function bindUDP(ip: string, port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket({ type: 'udp4', reuseAddr: false });
    s.once('error', (e) => {
      s.close();
      reject(e);
    });
    s.bind({ address: ip, port, exclusive: true }, () => {
      s.removeAllListeners('error');
      s.on('error', () => {});
      // Datagrams that would reach it are dropped: it only reserves the port.
      s.on('message', () => {});
      resolve(s);
    });
  });
}

function hold(p: { protocol: 'tcp' | 'udp'; hostIP: string }, port: number): Promise<Held> {
  const ip = p.hostIP === '' ? '0.0.0.0' : p.hostIP;
  return p.protocol === 'udp' ? bindUDP(ip, port) : listenTCP(ip, port);
}

function close(h: Held): void {
  try {
    h.close();
  } catch {}
}

export class PortReservations {
  private readonly held = new Map<string, Held[]>();

  /** Reserves every binding (random ports for hostPort 0) or none; returns the chosen ports. */
  async reserve(owner: string, reqs: PortBindingRequest[]): Promise<PortBinding[]> {
    const out: PortBinding[] = [];
    const held: Held[] = [];
    const { low, high } = ephemeralRange();
    try {
      for (const r of reqs) {
        if (r.hostIP !== '' && !net.isIPv4(r.hostIP)) throw invalidParameter(`invalid host IP ${JSON.stringify(r.hostIP)} for port ${r.containerPort}/${r.protocol}: berth publishes IPv4 only`);
        const ipText = r.hostIP === '' ? '0.0.0.0' : r.hostIP;
        if (r.hostPort !== 0) {
          try {
            held.push(await hold(r, r.hostPort));
          } catch (err) {
            if (hasCode(err, 'EADDRINUSE')) throw new BerthError('System', `Bind for ${ipText}:${r.hostPort} failed: port is already allocated`);
            if (hasCode(err, 'EADDRNOTAVAIL')) throw invalidParameter(`Bind for ${ipText}:${r.hostPort} failed: cannot assign requested address`);
            throw systemError(`Bind for ${ipText}:${r.hostPort} failed: ${(err as Error).message}`, err);
          }
          out.push({ ...r });
          continue;
        }
        // A random port: start at a random place in the range and walk, so that concurrent
        // daemons rarely try the same port first.
        const span = high - low + 1;
        const start = Math.floor(Math.random() * span);
        let got: number | undefined;
        for (let i = 0; i < Math.min(span, 200) && got === undefined; i++) {
          const port = low + ((start + i) % span);
          try {
            held.push(await hold(r, port));
            got = port;
          } catch (err) {
            if (!hasCode(err, 'EADDRINUSE')) throw systemError(`Bind for ${ipText}:${port} failed: ${(err as Error).message}`, err);
          }
        }
        if (got === undefined) throw systemError(`no free host port in ${low}-${high} for ${r.containerPort}/${r.protocol}`);
        out.push({ ...r, hostPort: got });
      }
    } catch (err) {
      held.forEach(close);
      throw err;
    }
    this.held.set(owner, [...(this.held.get(owner) ?? []), ...held]);
    return out;
  }

  /** Re-holds ports after a daemon restart; a port someone else took meanwhile is only reported. */
  async restore(owner: string, bindings: PortBinding[]): Promise<string[]> {
    const problems: string[] = [];
    const held: Held[] = [];
    for (const b of bindings) {
      try {
        held.push(await hold(b, b.hostPort));
      } catch (err) {
        problems.push(`${b.hostIP || '0.0.0.0'}:${b.hostPort}/${b.protocol}: ${(err as Error).message}`);
      }
    }
    this.held.set(owner, held);
    return problems;
  }

  release(owner: string): void {
    this.held.get(owner)?.forEach(close);
    this.held.delete(owner);
  }

  closeAll(): void {
    for (const k of [...this.held.keys()]) this.release(k);
  }
}
