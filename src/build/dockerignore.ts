// .dockerignore: docker's pattern rules (Go filepath.Match syntax plus "**", "!" exceptions, the
// last matching rule winning, a path excluded when it or any parent matches), and a context walker
// that yields the files a client sends.
//
// Docker's split of work: the client leaves excluded files out of the context tar, but always
// sends the Dockerfile and .dockerignore (the daemon needs them); the daemon then deletes those
// two from the context when the patterns exclude them, so COPY cannot see them.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalidParameter } from '../common/errors';

export interface IgnorePattern {
  /** The cleaned pattern, without the "!" */
  pattern: string;
  exclusion: boolean;
  regex: RegExp;
  /** Path segments, for deciding whether a skipped directory may hold re-included files. */
  dirs: string[];
}

/** Go's path.Clean for slash paths. */
export function cleanPath(p: string): string {
  if (p === '') return '.';
  const rooted = p.startsWith('/');
  const out: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (out.length && out[out.length - 1] !== '..') out.pop();
      else if (!rooted) out.push('..');
      continue;
    }
    out.push(seg);
  }
  const s = out.join('/');
  return rooted ? '/' + s : s || '.';
}

/** Reads .dockerignore text into patterns, as docker's ignorefile.ReadAll. */
export function parseDockerignore(text: string): string[] {
  const out: string[] = [];
  for (const rawLine of text.replace(/^\uFEFF/, '').split(/\r?\n/)) {
    let line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    let invert = false;
    if (line.startsWith('!')) {
      invert = true;
      line = line.slice(1).trim();
    }
    if (line.length > 0) {
      line = cleanPath(line);
      if (line.length > 1 && line.startsWith('/')) line = line.slice(1);
    }
    if (invert) line = '!' + line;
    out.push(line);
  }
  return out;
}

function compile(pattern: string): RegExp {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === '*') {
      if (pattern[i + 1] === '*') {
        i++;
        // "**/" is "**": any number of directories, even none.
        if (pattern[i + 1] === '/') i++;
        re += i + 1 >= pattern.length ? '.*' : '(.*/)?';
      } else {
        re += '[^/]*';
      }
    } else if (ch === '?') {
      re += '[^/]';
    } else if (ch === '\\') {
      i++;
      if (i >= pattern.length) throw new Error('syntax error in pattern');
      re += '\\' + pattern[i];
    } else if (ch === '[') {
      // A character class, Go style: [abc], [a-z], [^a] / [!a].
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) throw new Error('syntax error in pattern');
      let body = pattern.slice(i + 1, end);
      if (body.startsWith('!')) body = '^' + body.slice(1);
      re += '[' + body.replace(/\\/g, '\\\\') + ']';
      i = end;
    } else if ('.+()|{}$^]'.includes(ch)) {
      re += '\\' + ch;
    } else {
      re += ch;
    }
  }
  return new RegExp(re + '$', 's');
}

export function compilePatterns(patterns: string[]): IgnorePattern[] {
  return patterns.map((p) => {
    const exclusion = p.startsWith('!');
    const pattern = exclusion ? p.slice(1) : p;
    if (pattern === '') throw invalidParameter(`illegal exclusion pattern: "!"`);
    let regex: RegExp;
    try {
      regex = compile(pattern);
    } catch (err) {
      throw invalidParameter(`invalid .dockerignore pattern ${JSON.stringify(p)}: ${(err as Error).message}`);
    }
    return { pattern, exclusion, regex, dirs: pattern.split('/') };
  });
}

/**
 * True when rel (a slash path relative to the context root) is excluded: the last rule that
 * matches it or one of its parent directories decides.
 */
export function isExcluded(rel: string, patterns: IgnorePattern[]): boolean {
  const file = cleanPath(rel);
  const parents = path.posix.dirname(file) === '.' ? [] : path.posix.dirname(file).split('/');
  let matched = false;
  for (const p of patterns) {
    // An inclusion only matters while not excluded, an exception only while excluded.
    if (p.exclusion !== matched) continue;
    let match = p.regex.test(file);
    for (let i = 0; !match && i < parents.length; i++) match = p.regex.test(parents.slice(0, i + 1).join('/'));
    if (match) matched = !p.exclusion;
  }
  return matched;
}

export class DockerIgnore {
  readonly patterns: IgnorePattern[];

  constructor(lines: string[]) {
    this.patterns = compilePatterns(lines);
  }

  static fromText(text: string): DockerIgnore {
    return new DockerIgnore(parseDockerignore(text));
  }

  /** Reads dir/.dockerignore (absent: nothing excluded). */
  static fromContextDir(dir: string): DockerIgnore {
    let text = '';
    try {
      text = fs.readFileSync(path.join(dir, '.dockerignore'), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    return DockerIgnore.fromText(text);
  }

  excludes(rel: string): boolean {
    return isExcluded(rel, this.patterns);
  }

  /** Whether an excluded directory may still hold files that an exception re-includes. */
  mayReinclude(dirRel: string): boolean {
    const dirSegs = cleanPath(dirRel).split('/');
    return this.patterns.some((p) => {
      if (!p.exclusion) return false;
      // A "**" anywhere can reach into any directory; otherwise the exception's leading segments
      // must be able to match the directory's.
      if (p.pattern.includes('**')) return true;
      if (p.dirs.length <= dirSegs.length) return false;
      return dirSegs.every((seg, i) => compile(p.dirs[i]).test(seg));
    });
  }

  /**
   * The client's rule: exclusions applied, but the named Dockerfile and .dockerignore are always
   * sent (docker's TrimBuildFilesFromExcludes).
   */
  forSending(dockerfile: string): DockerIgnore {
    const lines = this.patterns.map((p) => (p.exclusion ? '!' : '') + p.pattern);
    if (this.excludes('.dockerignore')) lines.push('!.dockerignore');
    const df = cleanPath(dockerfile);
    if (this.excludes(df)) lines.push('!' + df);
    return new DockerIgnore(lines);
  }
}

export interface WalkEntry {
  /** Slash path relative to the context root. */
  rel: string;
  stat: fs.Stats;
}

/**
 * Walks a context directory in sorted order, yielding every entry that is not excluded (a
 * directory before its contents). Symlinks are yielded, never followed.
 */
export function* walkContext(root: string, ignore: DockerIgnore): Generator<WalkEntry> {
  function* walk(dirRel: string): Generator<WalkEntry> {
    const abs = dirRel ? path.join(root, dirRel) : root;
    const names = fs.readdirSync(abs).sort();
    for (const name of names) {
      const rel = dirRel ? `${dirRel}/${name}` : name;
      const stat = fs.lstatSync(path.join(root, rel));
      const excluded = ignore.excludes(rel);
      if (stat.isDirectory()) {
        if (!excluded) yield { rel, stat };
        if (!excluded || ignore.mayReinclude(rel)) yield* walk(rel);
      } else if (!excluded) {
        yield { rel, stat };
      }
    }
  }
  yield* walk('');
}
