// Builds berth's own N-API addon (src/native) with node-gyp. Quiet, and skipped when the built
// .node file is newer than its sources, so repeated builds cost nothing.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const dir = path.join(root, 'src', 'native');
const out = path.join(dir, 'build', 'Release', 'berth_native.node');
const sources = fs.readdirSync(dir).filter((f) => /\.(c|cc|h|gyp)$/.test(f)).map((f) => path.join(dir, f));

const mtime = (f) => { try { return fs.statSync(f).mtimeMs; } catch { return -1; } };
const built = mtime(out);
if (built > 0 && sources.every((s) => mtime(s) <= built)) process.exit(0);

// node-gyp run directly ignores ~/.npmrc and would try to download Node's headers, which this
// network cannot reach: point it at the headers installed beside Node (npm's nodedir setting).
function nodedir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  try {
    const v = execFileSync('npm', ['config', 'get', 'nodedir'], { encoding: 'utf8' }).trim();
    if (v && v !== 'undefined' && v !== 'null') return v;
  } catch {}
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined;
}

const gyp = path.join(root, 'node_modules', '.bin', 'node-gyp');
const nd = nodedir();
try {
  execFileSync(gyp, ['rebuild', `--directory=${dir}`, ...(nd ? [`--nodedir=${nd}`] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
} catch (err) {
  process.stderr.write(String(err.stdout ?? '') + String(err.stderr ?? ''));
  process.stderr.write('build-native: building the berth_native addon failed\n');
  process.exit(1);
}
