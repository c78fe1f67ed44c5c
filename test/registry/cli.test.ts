// The command line: `berth registry serve` with flags and a JSON config, stopped by SIGTERM, and
// `berth registry gc`; run as child processes through registryMain, as the berth binary will.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { errorCode, postBlob, request, rmrf, startTestRegistry, tmpDir } from './helpers';
import { parseAddr } from '../../src/registry/server';

const CLI = path.resolve(__dirname, '../../src/registry/cli.js');
const runner = `require(${JSON.stringify(CLI)}).registryMain(process.argv.slice(1)).then((c) => process.exit(c))`;

function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return promisify(execFile)(process.execPath, ['-e', runner, ...args])
    .then((r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }))
    .catch((e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }));
}

it('serves with a JSON config plus flags, stops cleanly on SIGTERM, then gc runs', async (t) => {
  const dir = tmpDir();
  t.after(() => rmrf(dir));
  const root = path.join(dir, 'root');
  const config = path.join(dir, 'config.json');
  fs.writeFileSync(config, JSON.stringify({ root, 'read-only': true, addr: '127.0.0.1:1' }));
  // The flag overrides the file's addr and read-only.
  const child = spawn(process.execPath, ['-e', runner, 'serve', '--config', config, '--addr', '127.0.0.1:0', '--read-only=false'], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
      const m = stderr.match(/url="(http:\/\/[^"]+)"/);
      if (m) resolve(m[1]);
    });
    child.on('exit', () => reject(new Error(`serve exited: ${stderr}`)));
  });
  assert.equal((await request(url, 'GET', '/v2/')).status, 200);
  assert.equal((await postBlob(url, 'cli/a', 'orphan blob')).status, 201);
  const code = await new Promise<number | null>((resolve) => {
    child.on('exit', (c) => resolve(c));
    child.kill('SIGTERM');
  });
  assert.equal(code, 0);

  const dry = await runCli(['gc', '--root', root, '--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /blob eligible for deletion: sha256:/);
  assert.match(dry.stdout, /0 blobs marked, 1 blobs eligible for deletion/);
  const real = await runCli(['gc', '--root', root]);
  assert.match(real.stdout, /0 blobs marked, 1 blobs deleted/);
  const again = await runCli(['gc', '--root', root, '-q']);
  assert.equal(again.stdout, '0 blobs marked, 0 blobs deleted\n');
});

it('reports bad flags, bad configs and unknown commands', async () => {
  const dir = tmpDir();
  try {
    const unknownFlag = await runCli(['serve', '--nope']);
    assert.equal(unknownFlag.code, 125);
    assert.match(unknownFlag.stderr, /unknown flag: --nope/);
    const badCfg = path.join(dir, 'bad.json');
    fs.writeFileSync(badCfg, JSON.stringify({ root: dir, typo: 1 }));
    const bad = await runCli(['serve', '--config', badCfg]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /unknown key "typo"/);
    const noKey = await runCli(['serve', '--root', dir, '--addr', '127.0.0.1:0', '--token-server']);
    assert.equal(noKey.code, 1);
    assert.match(noKey.stderr, /--token-key/);
    const badAddr = await runCli(['serve', '--root', dir, '--addr', 'nonsense']);
    assert.match(badAddr.stderr, /invalid listen address/);
    const cmd = await runCli(['frobnicate']);
    assert.equal(cmd.code, 1);
    assert.match(cmd.stderr, /unknown command "frobnicate"/);
    const gcMissing = await runCli(['gc', '--root', path.join(dir, 'missing')]);
    assert.equal(gcMissing.code, 1);
  } finally {
    rmrf(dir);
  }
});

it('parses listen addresses like distribution (":5000" is every address)', () => {
  assert.deepEqual(parseAddr(':5000'), { host: undefined, port: 5000 });
  assert.deepEqual(parseAddr('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
  assert.deepEqual(parseAddr('[::1]:443'), { host: '::1', port: 443 });
  for (const bad of ['5000', 'host:', 'host:99999', '::1:80']) assert.throws(() => parseAddr(bad), /invalid/, bad);
});

it('answers 429 TOOMANYREQUESTS past the configured rate', async (t) => {
  const s = await startTestRegistry({ rateLimit: { perSecond: 1, burst: 3 } });
  t.after(async () => {
    await s.close();
    rmrf(s.root);
  });
  const statuses: number[] = [];
  let limited;
  for (let i = 0; i < 5; i++) {
    const r = await request(s.url, 'GET', '/v2/');
    statuses.push(r.status);
    if (r.status === 429) limited = r;
  }
  assert.deepEqual(statuses.slice(0, 3), [200, 200, 200]);
  assert.ok(limited, `statuses ${statuses}`);
  assert.equal(errorCode(limited), 'TOOMANYREQUESTS');
  assert.equal(limited.headers['retry-after'], '1');
});
