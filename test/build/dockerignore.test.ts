// .dockerignore rules and the context walker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DockerIgnore, parseDockerignore, walkContext } from '../../src/build/dockerignore';
import { removeIgnoredBuildFiles } from '../../src/build/builder';

test('patterns are cleaned; comments and blanks dropped', () => {
  assert.deepEqual(parseDockerignore('# c\n\n /a/b \n./c//d/\n! e \n**/x\n'), ['a/b', 'c/d', '!e', '**/x']);
  assert.throws(() => new DockerIgnore(parseDockerignore('!')), /illegal exclusion pattern/);
});

test('matching: *, ?, **, classes, parents, exceptions with the last rule winning', () => {
  const ig = DockerIgnore.fromText('*.log\n!keep.log\ntmp?\ndocs/**/*.md\n**/secret\nbuild\n!build/out\n[ab].txt\n');
  assert.equal(ig.excludes('x.log'), true);
  assert.equal(ig.excludes('dir/x.log'), false, '* does not cross /');
  assert.equal(ig.excludes('keep.log'), false);
  assert.equal(ig.excludes('tmp1'), true);
  assert.equal(ig.excludes('tmp12'), false);
  assert.equal(ig.excludes('docs/a.md'), true, '** matches no directory too');
  assert.equal(ig.excludes('docs/x/y/a.md'), true);
  assert.equal(ig.excludes('a/b/secret'), true);
  assert.equal(ig.excludes('secret'), true);
  assert.equal(ig.excludes('build/x'), true, 'a matching parent excludes its contents');
  assert.equal(ig.excludes('build/out'), false);
  assert.equal(ig.excludes('a.txt'), true);
  assert.equal(ig.excludes('c.txt'), false);
  assert.equal(DockerIgnore.fromText('*\n!*.go\n*_test.go').excludes('a_test.go'), true);
  assert.equal(DockerIgnore.fromText('*\n!*.go\n*_test.go').excludes('a.go'), false);
});

test('the walker skips excluded trees but finds re-included files; Dockerfile and .dockerignore always sent', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-build-test-ign-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const f of ['a.txt', 'node_modules/m/index.js', 'logs/x.log', 'logs/keep/important', 'src/main.ts', 'Dockerfile']) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.writeFileSync(path.join(dir, f), f);
  }
  fs.writeFileSync(path.join(dir, '.dockerignore'), 'node_modules\nlogs\n!logs/keep\nDockerfile\n.dockerignore\n');
  const ig = DockerIgnore.fromContextDir(dir).forSending('Dockerfile');
  const files = [...walkContext(dir, ig)].map((e) => e.rel);
  assert.deepEqual(files, ['.dockerignore', 'Dockerfile', 'a.txt', 'logs/keep', 'logs/keep/important', 'src', 'src/main.ts']);
  // The daemon side: excluded build files are removed from the received context.
  removeIgnoredBuildFiles(dir, 'Dockerfile');
  assert.equal(fs.existsSync(path.join(dir, 'Dockerfile')), false);
  assert.equal(fs.existsSync(path.join(dir, '.dockerignore')), false);
  assert.equal(fs.existsSync(path.join(dir, 'a.txt')), true);
});
