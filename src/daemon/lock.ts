// One daemon per data root. The lock is an abstract unix socket named after the data root: the
// kernel releases it the moment the holder dies (even by SIGKILL), so there is no stale lock file
// to clean up and no race between two daemons starting together.
import { createHash } from 'node:crypto';
import * as net from 'node:net';

export class DataRootLock {
  private constructor(private readonly server: net.Server) {}

  static async acquire(dataRoot: string): Promise<DataRootLock> {
    const name = '\0berthd-lock-' + createHash('sha256').update(dataRoot).digest('hex').slice(0, 32);
    const server = net.createServer((s) => s.destroy());
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'EADDRINUSE') {
          reject(new Error(`another berthd is already running on data root ${dataRoot} (its lock is held); stop it first or use --data-root`));
        } else reject(err);
      });
      server.listen(name, () => resolve());
    });
    server.unref();
    return new DataRootLock(server);
  }

  release(): void {
    this.server.close();
  }
}
