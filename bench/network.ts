// Networking benchmark: what container networking costs through berthd, beside baselines from the
// same run on the same machine.
//
//   set-up     `docker run --rm busybox true` on the default bridge vs with --network none (the
//              difference is the network's set-up and tear-down per container), and
//              `docker run -d -p 127.0.0.1::5001` vs the same `run -d` without -p
//   throughput container to container on a user-defined network, and host to a published port,
//              vs host loopback; busybox on both ends every time (`nc -l -p 5001 | wc -c`, see sinkScript, and
//              `dd if=/dev/zero bs=1M count=N | nc IP 5001`, timed by busybox `time` around the
//              sender, so the docker exec that starts it is not counted), and the host's own
//              /bin/busybox for the host ends (the same program the containers run)
//
// The issue gives no numbers for networking: the targets printed are provisional (marked so).
// Traffic goes only to 127.0.0.1 and to containers this bench made.
//
// Run: `npx tsc -p tsconfig.json && node dist/bench/network.js` (as root; see bench/README.md).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { testSubnet } from '../test/containers/fixtures';
import { best, freePort, log, median, parseArgs, printTable, sleep, timed, verdict, withDaemon, runMain, type Row } from './lib';

interface Options {
  runs: number;
  throughputRuns: number;
  mb: number;
}

function parseOptions(argv: string[]): Options {
  const opts: Options = { runs: 7, throughputRuns: 3, mb: 1000 };
  parseArgs(argv, 'usage: node dist/bench/network.js [--runs N] [--throughput-runs N] [--mb N]', (a, value) => {
    if (a === '--runs') opts.runs = value();
    else if (a === '--throughput-runs') opts.throughputRuns = value();
    else if (a === '--mb') opts.mb = value();
    else return false;
    return true;
  });
  return opts;
}

const ms = (s: number): string => `${(s * 1000).toFixed(0)} ms`;

/** Runs a command; resolves with its exit code and output. */
function run(cmd: string, args: string[], timeoutMs = 300_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    p.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/**
 * Waits until the network namespace of `pid` has a TCP socket listening on `port`. busybox nc
 * accepts one connection only, so readiness is read from /proc/PID/net/tcp, never probed.
 */
async function waitListening(pid: number, port: number): Promise<void> {
  const hexPort = `:${port.toString(16).toUpperCase().padStart(4, '0')} `;
  const deadline = Date.now() + 20_000;
  for (;;) {
    let table = '';
    for (const f of ['tcp', 'tcp6']) {
      try { table += fs.readFileSync(`/proc/${pid}/net/${f}`, 'utf8'); } catch {}
    }
    // State 0A is LISTEN; the local address is the second column.
    if (table.split('\n').some((l) => l.trim().split(/\s+/)[1]?.endsWith(hexPort.trim()) && l.trim().split(/\s+/)[3] === '0A')) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on port ${port} in the namespace of pid ${pid}`);
    await sleep(20);
  }
}

/**
 * The sink in a container. busybox nc, on EOF of its stdin, shuts down its side of the connection
 * for writing, and the sender's nc exits on seeing that EOF: with stdin at /dev/null (a detached
 * container's) the sender quits after the first few KB. So the sink reads a fifo it holds open for
 * writing itself, which never ends and never yields data. wc -c counts what arrived, so a short
 * transfer fails the bench instead of showing as a fast one.
 */
const sinkScript = 'mkfifo /tmp/hold && nc -l -p 5001 <>/tmp/hold | wc -c';

/** The sender's pipeline, timed by busybox time; its elapsed seconds. */
const senderScript = (mb: number, host: string, port: number): string => `dd if=/dev/zero bs=1M count=${mb} 2>/dev/null | nc ${host} ${port}`;

function checkCount(wcOutput: string, mb: number, what: string): void {
  if (Number(wcOutput.trim()) !== mb * 1024 * 1024) throw new Error(`${what}: the sink got ${wcOutput.trim()} bytes, not ${mb * 1024 * 1024}`);
}

function parseElapsed(stderr: string): number {
  const last = stderr.trim().split('\n').pop() ?? '';
  const s = Number(last);
  if (!(s >= 0)) throw new Error(`no elapsed time from busybox time: ${stderr.slice(-300)}`);
  // busybox time has 10 ms resolution; a zero would make an infinite rate.
  return Math.max(s, 0.01);
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const userNet = testSubnet();
  await withDaemon('bench-net', { subnets: [userNet.subnet] }, async (e) => {
    const dk = async (args: string[]): Promise<string> => {
      const r = await e.docker(args, { timeoutMs: 300_000 });
      if (r.code !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
      return r.stdout.trim();
    };
    const inspect = async (name: string, format: string): Promise<string> => dk(['inspect', '-f', format, name]);

    // ---- set-up time ----
    log('set-up time');
    // One untimed run of each kind first: the first container pays for things made once.
    await dk(['run', '--rm', 'busybox', 'true']);
    await dk(['run', '--rm', '--network', 'none', 'busybox', 'true']);
    const bridgeRun: number[] = [];
    const noneRun: number[] = [];
    const startPlain: number[] = [];
    const startPublished: number[] = [];
    for (let i = 0; i < opts.runs; i++) {
      const pair = [
        async () => bridgeRun.push((await timed(() => dk(['run', '--rm', 'busybox', 'true']))).seconds),
        async () => noneRun.push((await timed(() => dk(['run', '--rm', '--network', 'none', 'busybox', 'true']))).seconds),
      ];
      if (i % 2) pair.reverse();
      for (const step of pair) await step();
      const starts = [
        async () => {
          startPlain.push((await timed(() => dk(['run', '-d', '--name', `plain${i}`, 'busybox', 'sleep', '1000000']))).seconds);
          await dk(['rm', '-f', `plain${i}`]);
        },
        async () => {
          startPublished.push((await timed(() => dk(['run', '-d', '--name', `pub${i}`, '-p', '127.0.0.1::5001', 'busybox', 'sleep', '1000000']))).seconds);
          await dk(['rm', '-f', `pub${i}`]);
        },
      ];
      if (i % 2) starts.reverse();
      for (const step of starts) await step();
    }

    // ---- throughput ----
    log(`throughput (${opts.mb} MB per transfer)`);
    await dk(['network', 'create', '--subnet', userNet.subnet, 'benchnet']);
    await dk(['run', '-d', '--name', 'sender', '--network', 'benchnet', 'busybox', 'sleep', '1000000']);
    const loopback: number[] = [];
    const c2c: number[] = [];
    const published: number[] = [];

    const hostLoopback = async (): Promise<void> => {
      const port = await freePort();
      // stdin is a pipe nobody writes to (see sinkScript).
      const sink = spawn('/bin/busybox', ['sh', '-c', `/bin/busybox nc -l -p ${port} | /bin/busybox wc -c`], { stdio: ['pipe', 'pipe', 'ignore'], detached: true });
      let count = '';
      sink.stdout!.on('data', (b: Buffer) => (count += b.toString()));
      const sinkDone = new Promise<number | null>((r) => sink.once('close', (code) => r(code)));
      try {
        await waitListening(sink.pid!, port);
        const r = await run('/bin/busybox', ['time', '-f', '%e', '/bin/busybox', 'sh', '-c', senderScript(opts.mb, '127.0.0.1', port)]);
        if (r.code !== 0) throw new Error(`host sender: ${r.stderr}`);
        if ((await sinkDone) !== 0) throw new Error('host sink failed');
        checkCount(count, opts.mb, 'host loopback');
        loopback.push(parseElapsed(r.stderr));
      } finally {
        // Its own process group (detached): nc goes with the shell.
        if (sink.exitCode === null) try { process.kill(-sink.pid!, 'SIGKILL'); } catch {}
      }
    };
    const containerToContainer = async (n: number): Promise<void> => {
      const name = `sink${n}`;
      await dk(['run', '-d', '--name', name, '--network', 'benchnet', 'busybox', 'sh', '-c', sinkScript]);
      await waitListening(Number(await inspect(name, '{{.State.Pid}}')), 5001);
      const ip = await inspect(name, '{{(index .NetworkSettings.Networks "benchnet").IPAddress}}');
      const r = await e.docker(['exec', 'sender', 'time', '-f', '%e', 'sh', '-c', senderScript(opts.mb, ip, 5001)], { timeoutMs: 300_000 });
      if (r.code !== 0) throw new Error(`container sender: ${r.stderr}`);
      if ((await dk(['wait', name])) !== '0') throw new Error(`${name} failed`);
      checkCount(await dk(['logs', name]), opts.mb, 'container to container');
      c2c.push(parseElapsed(r.stderr));
      await dk(['rm', name]);
    };
    const hostToPublished = async (n: number): Promise<void> => {
      const name = `psink${n}`;
      await dk(['run', '-d', '--name', name, '-p', '127.0.0.1::5001', 'busybox', 'sh', '-c', sinkScript]);
      await waitListening(Number(await inspect(name, '{{.State.Pid}}')), 5001);
      const port = Number(await inspect(name, '{{(index (index .NetworkSettings.Ports "5001/tcp") 0).HostPort}}'));
      const r = await run('/bin/busybox', ['time', '-f', '%e', '/bin/busybox', 'sh', '-c', senderScript(opts.mb, '127.0.0.1', port)]);
      if (r.code !== 0) throw new Error(`host sender to published port ${port}: ${r.stderr}`);
      if ((await dk(['wait', name])) !== '0') throw new Error(`${name} failed`);
      checkCount(await dk(['logs', name]), opts.mb, 'host to published port');
      published.push(parseElapsed(r.stderr));
      await dk(['rm', name]);
    };
    for (let i = 0; i < opts.throughputRuns; i++) {
      const steps = [hostLoopback, () => containerToContainer(i), () => hostToPublished(i)];
      // Rotate the order so that no step always runs first.
      for (let k = 0; k < steps.length; k++) await steps[(k + i) % steps.length]();
    }
    await dk(['rm', '-f', 'sender']);
    await dk(['network', 'rm', 'benchnet']);

    const bridge = median(bridgeRun);
    const none = median(noneRun);
    const plain = median(startPlain);
    const pub = median(startPublished);
    const mbps = (s: number): number => opts.mb / s;
    const lo = mbps(best(loopback));
    const cc = mbps(best(c2c));
    const hp = mbps(best(published));
    const rows: Row[] = [
      { figure: 'run --rm busybox true, default bridge', value: ms(bridge), baseline: `--network none ${ms(none)}`, ratio: `+${ms(bridge - none)}`, target: '<= +100 ms (provisional)', result: verdict(bridge - none <= 0.1) },
      { figure: 'run -d -p 127.0.0.1::5001 (start)', value: ms(pub), baseline: `run -d without -p ${ms(plain)}`, ratio: `${(pub / plain).toFixed(2)}x`, target: '<= 1.25x (provisional)', result: verdict(pub / plain <= 1.25) },
      { figure: 'TCP container -> container (user network)', value: `${cc.toFixed(0)} MB/s`, baseline: `host loopback ${lo.toFixed(0)} MB/s`, ratio: `${(cc / lo).toFixed(2)}x`, target: '>= 0.50x (provisional)', result: verdict(cc / lo >= 0.5) },
      { figure: 'TCP host -> published port (127.0.0.1)', value: `${hp.toFixed(0)} MB/s`, baseline: `host loopback ${lo.toFixed(0)} MB/s`, ratio: `${(hp / lo).toFixed(2)}x`, target: '>= 0.50x (provisional)', result: verdict(hp / lo >= 0.5) },
    ];
    printTable(`network (set-up: median of ${opts.runs}; throughput: best of ${opts.throughputRuns}, ${opts.mb} MB each, busybox dd | nc)`, rows);
  });
}

runMain(main);
