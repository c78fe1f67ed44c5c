// The log rotation worker thread (see LogRotation in rotate.ts): watches the directories of
// rotating logs and settles their files as soon as conmon switches, whatever the main thread is
// busy with.
import { parentPort, workerData } from 'node:worker_threads';
import { LogFilesKeeper } from './rotate';

const port = parentPort!;
const log = {
  warn: (msg: string, fields: Record<string, unknown> = {}) => port.postMessage({ op: 'log', level: 'warn', msg, fields }),
  debug: (msg: string, fields: Record<string, unknown> = {}) => port.postMessage({ op: 'log', level: 'debug', msg, fields }),
};
const keeper = new LogFilesKeeper(log, (workerData as { seq: Int32Array }).seq, (logPath) => port.postMessage({ op: 'settled', logPath }));

port.on('message', (m: { op: string; id: string; logPath: string; cfg: never; final: boolean; reqId: number }) => {
  try {
    if (m.op === 'watch') keeper.watch(m.id, m.logPath, m.cfg);
    else if (m.op === 'unwatch') keeper.unwatch(m.id, m.final);
  } catch (err) {
    log.warn('log rotation failed', { id: m.id, error: (err as Error).message });
  }
  if (m.op === 'unwatch') port.postMessage({ op: 'done', reqId: m.reqId });
});
