// The cost of `logs --tail 100` on a 1 GB log (issue #9: target <= 50 ms; the tail is read
// backwards from the end, never the whole file): a container whose log is one 1 GB file, and one
// whose log is rotated (two 500 MB generations and a current file of 10 lines, so the tail spans
// files). Baseline: GNU `tail -n 100` of the same 1 GB file, in the same run.
//
//   node dist/bench/logs.js [--mb 1024] [--runs 7]
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { api } from '../test/helpers/daemon';
import { generationPath, generationsDir } from '../src/logs/files';
import { best, log, MiB, parseArgs, printTable, ratio, runMain, timed, verdict, withDaemon, type Row } from './lib';

let mb = 1024;
let runs = 7;
parseArgs(process.argv.slice(2), 'usage: node dist/bench/logs.js [--mb N] [--runs N]', (arg, value) => {
  if (arg === '--mb') mb = value();
  else if (arg === '--runs') runs = value();
  else return false;
  return true;
});

/** k8s-file records numbered from `from`, as conmon writes them. */
function records(from: number, count: number): Buffer {
  let s = '';
  for (let i = 0; i < count; i++) s += `2026-01-01T00:00:00.${String((from + i) % 1e9).padStart(9, '0')}+00:00 stdout F line ${from + i} ${'x'.repeat(40)}\n`;
  return Buffer.from(s);
}

/** Writes about `bytes` of records to file; returns the number of the last line. */
function writeLog(file: string, bytes: number, first = 0): number {
  const fd = fs.openSync(file, 'w', 0o600);
  const per = 40_000;
  let n = first;
  let written = 0;
  // One block of records repeated (numbers then repeat; only the end is checked), the last
  // block numbered on from there.
  const block = records(first, per);
  while (written + block.length < bytes) {
    fs.writeSync(fd, block);
    written += block.length;
  }
  n = first + per * 1000;
  fs.writeSync(fd, records(n, per));
  fs.closeSync(fd);
  return n + per - 1;
}

runMain(async () => {
  await withDaemon('bench-logs', {}, async (env) => {
    const ok = async (args: string[]): Promise<string> => {
      const r = await env.docker(args);
      if (r.code !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    await ok(['create', '--name', 'big', 'busybox', 'true']);
    await ok(['create', '--name', 'rot', '--log-opt', 'max-size=600m', '--log-opt', 'max-file=3', 'busybox', 'true']);
    const bigLog = (await ok(['inspect', '-f', '{{.LogPath}}', 'big'])).trim();
    const rotLog = (await ok(['inspect', '-f', '{{.LogPath}}', 'rot'])).trim();
    log(`writing a ${mb} MB log`);
    const last = writeLog(bigLog, mb * MiB);
    log(`writing a rotated log: 2 x ${mb / 2} MB and 10 lines`);
    fs.mkdirSync(generationsDir(rotLog), { recursive: true });
    writeLog(generationPath(rotLog, 1), (mb / 2) * MiB);
    const rotLast = writeLog(generationPath(rotLog, 2), (mb / 2) * MiB, 5_000_000) ;
    fs.writeFileSync(generationPath(rotLog, 3), records(rotLast + 1, 10));
    fs.symlinkSync(path.relative(path.dirname(rotLog), generationPath(rotLog, 3)), rotLog);
    execFileSync('sync');

    const tailApi = async (name: string): Promise<Buffer> => {
      const r = await api(env.d.socket, 'GET', `/containers/${name}/logs?stdout=1&stderr=1&tail=100`);
      if (r.status !== 200) throw new Error(`logs ${name}: ${r.status}`);
      return r.body;
    };
    // Correctness first: the last 100 lines, across files for the rotated log.
    const out = (await ok(['logs', '--tail', '100', 'big'])).trimEnd().split('\n');
    if (out.length !== 100 || !out[99].startsWith(`line ${last} `)) throw new Error(`wrong tail: ${out.length} lines, last ${out[99]}`);
    const rout = (await ok(['logs', '--tail', '100', 'rot'])).trimEnd().split('\n');
    if (rout.length !== 100 || !rout[89].startsWith(`line ${rotLast} `)) throw new Error(`wrong rotated tail: ${rout[89]}`);

    const t = { big: [] as number[], rot: [] as number[], cli: [] as number[], gnu: [] as number[] };
    for (let i = 0; i < runs; i++) {
      // Turns, so that a busy spell on the shared machine slows all of them alike.
      t.gnu.push((await timed(async () => execFileSync('tail', ['-n', '100', bigLog]))).seconds);
      t.big.push((await timed(() => tailApi('big'))).seconds);
      t.rot.push((await timed(() => tailApi('rot'))).seconds);
      t.cli.push((await timed(() => ok(['logs', '--tail', '100', 'big']))).seconds);
    }
    const ms = (s: number): string => `${(s * 1000).toFixed(1)} ms`;
    const gnu = best(t.gnu);
    const rows: Row[] = [
      { figure: `GET /logs?tail=100, ${mb} MB file`, value: ms(best(t.big)), baseline: ms(gnu), ratio: ratio(best(t.big), gnu), target: '<= 50 ms', result: verdict(best(t.big) <= 0.05) },
      { figure: 'GET /logs?tail=100, rotated (tail spans files)', value: ms(best(t.rot)), baseline: ms(gnu), ratio: ratio(best(t.rot), gnu), target: '<= 50 ms', result: verdict(best(t.rot) <= 0.05) },
      { figure: 'docker logs --tail 100 (CLI included)', value: ms(best(t.cli)), baseline: ms(gnu), ratio: ratio(best(t.cli), gnu), target: '-', result: '-' },
    ];
    printTable(`logs --tail 100 on a ${mb} MB log (best of ${runs}; baseline: GNU tail -n 100 of the same file)`, rows);
  });
});
