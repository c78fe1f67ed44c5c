// The metadata database's durability contract: WAL with synchronous=NORMAL, so a commit is a
// write to the WAL (no fsync) and a daemon killed right after it finds the change on restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { MetadataDB } from '../../src/metadata/db';
import { OverlaySnapshotter } from '../../src/snapshots/overlay';

test('metadata and snapshot databases run WAL with synchronous=NORMAL', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-metadata-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const m = new MetadataDB(path.join(dir, 'metadata.db'));
  try {
    assert.equal(m.db.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(m.db.pragma('synchronous', { simple: true }), 1); // NORMAL
  } finally {
    m.close();
  }
  new OverlaySnapshotter(path.join(dir, 'overlay2'));
  const raw = new Database(path.join(dir, 'overlay2', 'metadata.db'), { readonly: true });
  try {
    assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
  } finally {
    raw.close();
  }
});

test('a commit survives the process being killed right after it', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-metadata-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'metadata.db');
  // A child commits 200 transactions and SIGKILLs itself before closing the database: no
  // checkpoint, no clean shutdown, the changes live only in the WAL.
  const script = `
    const { MetadataDB } = require(${JSON.stringify(path.resolve(__dirname, '../../src/metadata/db'))});
    const m = new MetadataDB(${JSON.stringify(file)});
    m.db.exec('CREATE TABLE t (n INTEGER PRIMARY KEY, v TEXT NOT NULL)');
    const ins = m.db.prepare('INSERT INTO t (n, v) VALUES (?, ?)');
    for (let i = 0; i < 200; i++) m.db.transaction(() => { ins.run(i, 'x'.repeat(100)); })();
    process.kill(process.pid, 'SIGKILL');
  `;
  const r = spawnSync(process.execPath, ['-e', script]);
  assert.equal(r.signal, 'SIGKILL', r.stderr.toString());
  assert.ok(fs.statSync(`${file}-wal`).size > 0, 'the commits should still be in the WAL');
  const m = new MetadataDB(file);
  try {
    assert.equal(m.db.pragma('integrity_check', { simple: true }), 'ok');
    assert.deepEqual(m.db.prepare('SELECT count(*) AS c, max(n) AS last FROM t').get(), { c: 200, last: 199 });
  } finally {
    m.close();
  }
});

test('prepared statements are compiled once per SQL text and stay usable', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-metadata-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const m = new MetadataDB(path.join(dir, 'metadata.db'));
  try {
    m.db.exec('CREATE TABLE t (n INTEGER PRIMARY KEY, v TEXT)');
    const sql = 'INSERT INTO t (n, v) VALUES (?, ?)';
    assert.equal(m.db.prepare(sql), m.db.prepare(sql));
    for (let i = 0; i < 3; i++) m.db.prepare(sql).run(i, String(i));
    assert.deepEqual(m.db.prepare('SELECT v FROM t ORDER BY n').all(), [{ v: '0' }, { v: '1' }, { v: '2' }]);
    // A schema change under a cached statement: SQLite recompiles it.
    m.db.exec('ALTER TABLE t ADD COLUMN w TEXT');
    m.db.prepare(sql).run(3, '3');
    assert.deepEqual(m.db.prepare('SELECT count(*) AS c FROM t').get(), { c: 4 });
  } finally {
    m.close();
  }
});
