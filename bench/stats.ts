// The cost of container stats (issue: resources and security): one-shot stats of 50 running
// containers (target <= 0.3 s; Moby takes 2.5 s here) and streaming stats of 100 containers
// (target <= 10% of a core, berthd's own CPU), measured on a berthd started for the bench.
//
//   node dist/bench/stats.js [--count 50] [--stream-count 100] [--seconds 10]
import * as fs from 'node:fs';
import * as http from 'node:http';
import { api } from '../test/helpers/daemon';
import { log, median, parseArgs, pool, printTable, ratio, runMain, timed, verdict, withDaemon, type Row } from './lib';

let count = 50;
let streamCount = 100;
let seconds = 10;
parseArgs(process.argv.slice(2), 'usage: node dist/bench/stats.js [--count N] [--stream-count N] [--seconds N]', (arg, value) => {
  if (arg === '--count') count = value();
  else if (arg === '--stream-count') streamCount = value();
  else if (arg === '--seconds') seconds = value();
  else return false;
  return true;
});

/** user+system CPU seconds of a process, from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

runMain(async () => {
  await withDaemon('bench-stats', {}, async (env) => {
    const start = async (n: number): Promise<string[]> => {
      const ids: string[] = [];
      await pool(Array.from({ length: n }, (_v, i) => i), 8, async () => {
        const r = await env.docker(['run', '-d', '--network', 'none', 'busybox', 'sleep', '100000']);
        if (r.code !== 0) throw new Error(`docker run failed: ${r.stderr}`);
        ids.push(r.stdout.trim());
      });
      return ids;
    };
    log(`starting ${count} containers`);
    const ids = await start(count);

    // One-shot stats of every running container, all at once (as `docker stats --no-stream` asks).
    const oneShot: number[] = [];
    for (let run = 0; run < 5; run++) {
      const t = await timed(() => Promise.all(ids.map(async (id) => {
        const r = await api(env.d.socket, 'GET', `/containers/${id}/stats?stream=false&one-shot=true`);
        if (r.status !== 200) throw new Error(`stats ${id}: ${r.status}`);
      })));
      oneShot.push(t.seconds);
    }
    const cli: number[] = [];
    for (let run = 0; run < 3; run++) {
      const t = await timed(() => env.docker(['stats', '--no-stream', '--format', '{{.ID}}']));
      cli.push(t.seconds);
    }
    const version: number[] = [];
    for (let run = 0; run < 3; run++) version.push((await timed(() => env.docker(['version', '--format', '{{.Server.Version}}']))).seconds);

    // Streaming stats: one open stream per container for a while; berthd's CPU over that time.
    if (streamCount > ids.length) {
      log(`starting ${streamCount - ids.length} more containers`);
      ids.push(...(await start(streamCount - ids.length)));
    }
    const pid = env.d.proc.pid!;
    // Baseline: berthd's CPU with the same containers running and no stats stream open.
    await new Promise((r) => setTimeout(r, 2000));
    const idle0 = cpuSeconds(pid);
    const i0 = Date.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const idleShare = (cpuSeconds(pid) - idle0) / ((Date.now() - i0) / 1000);
    const agent = new http.Agent({ socketPath: env.d.socket, maxSockets: Infinity } as http.AgentOptions);
    const reqs = ids.slice(0, streamCount).map((id) => {
      const req = http.get({ agent, socketPath: env.d.socket, path: `/containers/${id}/stats?stream=true` }, (res) => res.resume());
      req.on('error', () => {});
      return req;
    });
    await new Promise((r) => setTimeout(r, 2000)); // let every stream start
    const cpu0 = cpuSeconds(pid);
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const share = (cpuSeconds(pid) - cpu0) / ((Date.now() - t0) / 1000);
    for (const r of reqs) r.destroy();
    agent.destroy();

    const oneShotMedian = median(oneShot);
    const rows: Row[] = [
      { figure: `one-shot stats of ${count} (API, parallel)`, value: `${oneShotMedian.toFixed(3)} s`, baseline: '-', ratio: '-', target: '<= 0.3 s', result: verdict(oneShotMedian <= 0.3) },
      { figure: `docker stats --no-stream, ${count} running`, value: `${median(cli).toFixed(3)} s`, baseline: `${median(version).toFixed(3)} s docker version`, ratio: ratio(median(cli), median(version)), target: '(report)', result: '' },
      { figure: `streaming stats of ${streamCount}, berthd CPU`, value: `${(share * 100).toFixed(1)}% of a core`, baseline: `${(idleShare * 100).toFixed(1)}% idle, no stream`, ratio: '-', target: '<= 10% of a core', result: verdict(share <= 0.1) },
    ];
    printTable('Container stats', rows);
  });
});
