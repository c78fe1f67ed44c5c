// Builds berth's own N-API addon (src/native) with node-gyp. Quiet, and skipped when the built
// .node file is newer than its sources, so repeated builds cost nothing.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const dir = path.join(root, 'src', 'native');
const out = path.join(dir, 'build', 'Release', 'berth_native.node');
const sources = fs.readdirSync(dir).filter((f) => /\.(c|h|gyp)$/.test(f)).map((f) => path.join(dir, f));

const mtime = (f) => { try { return fs.statSync(f).mtimeMs; } catch { return -1; } };
const built = mtime(out);
if (built > 0 && sources.every((s) => mtime(s) <= built)) process.exit(0);

const gyp = path.join(root, 'node_modules', '.bin', 'node-gyp');
try {
  execFileSync(gyp, ['rebuild', `--directory=${dir}`], { stdio: ['ignore', 'pipe', 'pipe'] });
} catch (err) {
  process.stderr.write(String(err.stdout ?? '') + String(err.stderr ?? ''));
  process.stderr.write('build-native: building the berth_native addon failed\n');
  process.exit(1);
}
