// cp benchmark: copying a big tree of files into and out of a running container through berthd,
// with the docker CLI (`docker cp`) and with berth's own client (`berth cp`), beside
// `tar -c | tar -x` of the same tree between directories on the same file system, measured in the
// same run.
//
// The tree is generated: --files files (default 20,000) in 100 directories two levels deep,
// --mb MB of data in all (default 1024), sizes log-uniform between 512 B and 8 MiB and scaled to
// the total, bodies cut from a random pool (nothing on the way compresses).
//
// These are measurements, not tests: each figure is printed beside its baseline from this run,
// with the target from the issue and PASS/MISS. Steps take turns (the order of tar, docker cp and
// berth cp rotates from run to run), `sync` runs before each step so one step's writeback is not charged to the next,
// and nothing is deleted until the end (ext4 is slow to create files right after freeing many).
//
// Run: `npx tsc -p tsconfig.json && node dist/bench/cp.js` (as root; see bench/README.md).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BERTH } from '../test/helpers/daemon';
import { best, log, MiB, parseArgs, printTable, runMain, sync, timed, verdict, withDaemon, type Row } from './lib';

interface Options {
  mb: number;
  files: number;
  runs: number;
}

function parseOptions(argv: string[]): Options {
  const opts: Options = { mb: 1024, files: 20_000, runs: 1 };
  parseArgs(argv, 'usage: node dist/bench/cp.js [--mb N] [--files N] [--runs N]', (a, value) => {
    if (a === '--mb') opts.mb = value();
    else if (a === '--files') opts.files = value();
    else if (a === '--runs') opts.runs = value();
    else return false;
    return true;
  });
  return opts;
}

/**
 * Runs a shell script through bash, failing loudly; resolves with the CPU seconds (user +
 * system) its child processes used, which bash's `times` reports after the script.
 */
function exec(script: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const p = spawn('bash', ['-c', `${script} || exit; times`, 'bench', ...args], { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    p.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 1_800_000);
    p.on('error', reject);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) {
        reject(new Error(`${script} ${args.join(' ')} exited ${code ?? signal}: ${err.slice(0, 800)}`));
        return;
      }
      // Second line of `times`: the children's user and system time, as "0m1.234s 0m5.678s".
      const m = /^(\d+)m([\d.]+)s (\d+)m([\d.]+)s$/m.exec(out.trim().split('\n').slice(-1)[0] ?? '');
      resolve(m ? Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]) : NaN);
    });
  });
}

/** CPU seconds (user + system, all threads) a process has used so far. */
function cpuSecondsOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ is 100 on Linux
}

/** Generates the tree; returns its file count and byte total. */
function makeTree(root: string, files: number, totalBytes: number): { files: number; bytes: number } {
  const pool = randomBytes(16 * MiB);
  // Log-uniform weights, scaled to the wanted total: mostly small files, a few big ones.
  const lo = Math.log(512);
  const hi = Math.log(8 * MiB);
  const weights = Array.from({ length: files }, () => Math.exp(lo + Math.random() * (hi - lo)));
  const scale = totalBytes / weights.reduce((a, b) => a + b, 0);
  let bytes = 0;
  for (let i = 0; i < files; i++) {
    const dir = path.join(root, `d${i % 10}`, `e${Math.floor(i / 10) % 10}`);
    if (i < 100) fs.mkdirSync(dir, { recursive: true });
    const size = Math.min(pool.length, Math.max(1, Math.round(weights[i] * scale)));
    const start = Math.floor(Math.random() * (pool.length - size + 1));
    fs.writeFileSync(path.join(dir, `f${i}.bin`), pool.subarray(start, start + size));
    bytes += size;
  }
  return { files, bytes };
}

/** Regular files and their bytes below root. */
function census(root: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        files++;
        bytes += fs.statSync(p).size;
      }
    }
  };
  walk(root);
  return { files, bytes };
}

type Client = 'docker' | 'berth';
const CLIENTS: Client[] = ['docker', 'berth'];

/** Wall seconds and CPU seconds of a step. */
interface Step { seconds: number; cpu: string }

async function tarCopy(from: string, to: string): Promise<Step> {
  fs.mkdirSync(to, { recursive: true });
  sync();
  const t = await timed(() => exec('tar -C "$1" -cf - . | tar -C "$2" -xf -', [from, to]));
  return { seconds: t.seconds, cpu: `tar ${t.value.toFixed(1)}` };
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  await withDaemon('bench-cp', {}, async (env) => {
    // Everything lives in the daemon's temp dir (so on the same file system as its data root,
    // and removed by its cleanup).
    const dir = path.join(env.d.dir, 'bench');
    const src = path.join(dir, 'src');
    log(`generating ${opts.files} files, ${opts.mb} MB, in ${src}`);
    const tree = makeTree(src, opts.files, opts.mb * MiB);
    const dk = async (args: string[]): Promise<void> => {
      const r = await env.docker(args, { timeoutMs: 1_800_000 });
      if (r.code !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
    };
    // A timed cp through a client (the docker CLI or berth): the client's own CPU (it makes or
    // unpacks the tar on its side) and berthd's, beside the wall time.
    const clientEnv = {
      docker: { DOCKER_HOST: env.d.host, DOCKER_CONFIG: path.join(env.d.dir, 'docker-config') },
      berth: { BERTH_HOST: env.d.host, BERTH_CONFIG: path.join(env.d.dir, 'berth-config') },
    };
    const clientCp = async (client: Client, args: string[]): Promise<Step> => {
      const pid = env.d.proc.pid!;
      const before = cpuSecondsOf(pid);
      const script = client === 'docker' ? 'docker "$@" >/dev/null' : `"${process.execPath}" "${BERTH}" "$@" >/dev/null`;
      const t = await timed(() => exec(script, args, { env: clientEnv[client] }));
      return { seconds: t.seconds, cpu: `CLI ${t.value.toFixed(1)} + berthd ${(cpuSecondsOf(pid) - before).toFixed(1)}` };
    };
    await dk(['run', '-d', '--name', 'cpbench', '--network', 'none', 'busybox', 'sleep', '1000000']);

    const tarIn: Step[] = [];
    const tarOut: Step[] = [];
    const cpIn: Record<Client, Step[]> = { docker: [], berth: [] };
    const cpOut: Record<Client, Step[]> = { docker: [], berth: [] };
    for (let run = 0; run < opts.runs; run++) {
      log(`run ${run + 1}/${opts.runs}`);
      const tarInDir = path.join(dir, `tar-in-${run}`);
      const tarOutDir = path.join(dir, `tar-out-${run}`);
      const outDir = (c: Client): string => path.join(dir, `${c}-out-${run}`);
      const inside = (c: Client): string => `/${c}${run}`;
      const doTarIn = async (): Promise<void> => void tarIn.push(await tarCopy(src, tarInDir));
      const doTarOut = async (): Promise<void> => void tarOut.push(await tarCopy(tarInDir, tarOutDir));
      const doCpIn = (c: Client) => async (): Promise<void> => {
        sync();
        cpIn[c].push(await clientCp(c, ['cp', src, `cpbench:${inside(c)}`]));
      };
      const doCpOut = (c: Client) => async (): Promise<void> => {
        fs.mkdirSync(outDir(c));
        sync();
        cpOut[c].push(await clientCp(c, ['cp', `cpbench:${inside(c)}`, path.join(outDir(c), 'data')]));
      };
      // Turns: the order of the three copies each way rotates from run to run.
      const ins = [doTarIn, doCpIn('docker'), doCpIn('berth')];
      const outs = [doTarOut, doCpOut('docker'), doCpOut('berth')];
      const k = run % 3;
      const steps = [...ins.slice(k), ...ins.slice(0, k), ...outs.slice(k), ...outs.slice(0, k)];
      for (const s of steps) await s();
      // The copy that went in and came back out must be the whole tree.
      for (const c of CLIENTS) {
        const got = census(path.join(outDir(c), 'data'));
        if (got.files !== tree.files || got.bytes !== tree.bytes) {
          throw new Error(`${c} cp round trip lost data: ${got.files} files / ${got.bytes} B, want ${tree.files} / ${tree.bytes}`);
        }
      }
    }

    const mbps = (s: number): string => `${(tree.bytes / MiB / s).toFixed(0)} MB/s (${s.toFixed(2)} s)`;
    const row = (figure: string, cp: number, base: number): Row => ({
      figure, value: mbps(cp), baseline: `tar|tar ${mbps(base)}`, ratio: `${(base / cp).toFixed(2)}x`, target: '>= 0.70x', result: verdict(base / cp >= 0.7),
    });
    const secs = (xs: Step[]): number[] => xs.map((x) => x.seconds);
    printTable(`cp of ${tree.files} files, ${(tree.bytes / MiB).toFixed(0)} MB (best of ${opts.runs}; ratio = share of tar's speed)`, CLIENTS.flatMap((c) => [
      row(`${c} cp into a running container`, best(secs(cpIn[c])), best(secs(tarIn))),
      row(`${c} cp out of a running container`, best(secs(cpOut[c])), best(secs(tarOut))),
    ]));
    // Wall and CPU seconds per run: the client does half of each copy (it makes the tar going in
    // and unpacks the one coming out), so its share shows what berthd can and cannot speed up.
    // tar's own time varies from run to run on a shared machine: the pairs of one run compare.
    const perRun = (cp: Step[], tar: Step[]): string => cp.map((x, i) => `${(tar[i].seconds / x.seconds).toFixed(2)}x`).join(' / ');
    const cpuList = (xs: Step[]): string => xs.map((x) => `${x.seconds.toFixed(2)} s (${x.cpu})`).join(' / ');
    process.stdout.write([
      'Per run, wall seconds (CPU seconds):',
      `in:  tar|tar ${cpuList(tarIn)}`,
      ...CLIENTS.map((c) => `     ${c} cp ${cpuList(cpIn[c])}`),
      `out: tar|tar ${cpuList(tarOut)}`,
      ...CLIENTS.map((c) => `     ${c} cp ${cpuList(cpOut[c])}`),
      // The same ratio within each run, where tar ran minutes (not runs) apart from the copies.
      ...CLIENTS.map((c) => `Per-run ratios, ${c} cp: in ${perRun(cpIn[c], tarIn)}; out ${perRun(cpOut[c], tarOut)}`),
      '',
    ].join('\n'));
  });
}

runMain(main);
