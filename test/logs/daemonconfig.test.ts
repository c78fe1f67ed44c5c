// berthd's log settings: --log-driver/--log-opt flags and log-driver/log-opts in daemon.json,
// checked at start-up with dockerd's wording.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig } from '../../src/daemon/config';

function withFile(content: object | undefined, fn: (args: string[]) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-logcfg-'));
  try {
    const file = path.join(dir, 'daemon.json');
    if (content) fs.writeFileSync(file, JSON.stringify(content));
    fn(content ? ['--config-file', file] : ['--config-file', path.join(dir, 'absent.json')]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('defaults, flags and daemon.json give the containers\' default LogConfig', () => {
  withFile({}, (args) => assert.deepEqual(loadConfig(args).logConfig, { Type: 'json-file', Config: {} }));
  withFile({}, (args) => {
    assert.deepEqual(loadConfig([...args, '--log-driver', 'local', '--log-opt', 'max-size=5m', '--log-opt', 'max-file=2']).logConfig, { Type: 'local', Config: { 'max-size': '5m', 'max-file': '2' } });
  });
  withFile({ 'log-driver': 'json-file', 'log-opts': { 'max-size': '10m', 'max-file': '3', labels: 'a,b' } }, (args) => {
    assert.deepEqual(loadConfig(args).logConfig, { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3', labels: 'a,b' } });
  });
});

test('bad settings stop berthd with dockerd\'s messages', () => {
  withFile({}, (args) => {
    assert.throws(() => loadConfig([...args, '--log-opt', 'max-size=zz']), /^.*failed to set log opts: invalid size: 'zz'$/);
    assert.throws(() => loadConfig([...args, '--log-opt', 'nokey']), /bad format of log opt, should be key=value/);
    assert.throws(() => loadConfig([...args, '--log-driver', 'gelfx']), /logger: no log driver named 'gelfx' is registered/);
    assert.throws(() => loadConfig([...args, '--log-opt', 'foo=1']), /unknown log opt 'foo' for json-file log driver/);
  });
  withFile({ 'log-opts': { 'max-size': '1m' } }, (args) => {
    assert.throws(() => loadConfig([...args, '--log-opt', 'max-file=2']), /specified both as a flag and in the configuration file: log-opts/);
  });
  withFile({ 'log-opts': { 'max-file': 3 } }, (args) => {
    assert.throws(() => loadConfig(args), /log-opts value for max-file must be a string/);
  });
});
