// berthd's entry point: parse flags and daemon.json, take the data-root lock, start the daemon,
// and shut it down cleanly on SIGTERM/SIGINT.
import { FlagError } from '../common/flags';
import { Logger } from '../common/logger';
import { loadConfig, usage } from './config';
import { Daemon, BERTH_VERSION } from './daemon';

export async function main(argv: string[]): Promise<void> {
  let cfg;
  try {
    cfg = loadConfig(argv);
  } catch (err) {
    if (err instanceof FlagError) {
      process.stderr.write(`berthd: ${err.message}\nSee 'berthd --help'.\n`);
      process.exit(125);
    }
    throw err;
  }
  if (cfg.help) {
    process.stdout.write(usage());
    return;
  }
  if (cfg.version) {
    process.stdout.write(`berthd version ${BERTH_VERSION}\n`);
    return;
  }
  const log = new Logger(cfg.logLevel);
  const daemon = new Daemon(cfg, log);
  try {
    await daemon.start();
  } catch (err) {
    log.error(`failed to start daemon: ${(err as Error).message}`);
    if (cfg.logLevel === 'debug') process.stderr.write(String((err as Error).stack) + '\n');
    await daemon.stop().catch(() => {});
    process.exit(1);
  }
  let stopping = false;
  const shutdown = (sig: string): void => {
    if (stopping) return;
    stopping = true;
    log.info(`Processing signal '${sig}'`);
    daemon.stop().then(
      () => process.exit(0),
      (err) => {
        log.error(`error during shutdown: ${(err as Error).message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('terminated'));
  process.on('SIGINT', () => shutdown('interrupt'));
  process.on('SIGPIPE', () => {});
}
