// The word lexer the classic builder applies to Dockerfile arguments: quotes, the escape token, and
// variable substitution ($a, ${a}, ${a:-b}, ${a-b}, ${a:+b}, ${a+b}, ${a:?msg}, ${a?msg}). It is a
// small subset of POSIX sh, deliberately: no command substitution, no globbing, no arithmetic,
// because docker evaluates these words in the builder, not in a shell.

/** Looks a variable up; undefined means unset (which differs from set-but-empty for ${a-b}). */
export type Lookup = (name: string) => string | undefined;

export class ShellWordError extends Error {}

const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_]/;
const SPACE = /\s/;

class Lexer {
  private i = 0;
  private text = '';
  private words: string[] = [];
  private cur = '';
  private inWord = false;
  /** Names referenced through $ while lexing (build args are "used" only by ARG, but callers may want this). */
  readonly referenced = new Set<string>();

  constructor(
    private readonly s: string,
    private readonly lookup: Lookup,
    private readonly escape: string,
    /** Heredoc mode: quotes are plain characters and only an escaped '$' loses its escape. */
    private readonly raw = false,
  ) {}

  /** raw: added as-is to the current word (quoted, escaped); otherwise whitespace splits words. */
  private add(ch: string, raw: boolean): void {
    this.text += ch;
    if (!raw && SPACE.test(ch)) {
      if (this.inWord) this.words.push(this.cur);
      this.cur = '';
      this.inWord = false;
      return;
    }
    this.cur += ch;
    this.inWord = true;
  }

  run(): { text: string; words: string[] } {
    const s = this.s;
    while (this.i < s.length) {
      const ch = s[this.i];
      if (this.raw && ch !== '$') {
        if (ch === this.escape && s[this.i + 1] === '$') {
          this.add('$', true);
          this.i += 2;
        } else {
          this.add(ch, true);
          this.i++;
        }
      } else if (ch === this.escape) {
        if (this.i + 1 < s.length) {
          this.add(s[this.i + 1], true);
          this.i += 2;
        } else {
          // A trailing escape has nothing to escape: docker keeps it.
          this.add(ch, true);
          this.i++;
        }
      } else if (ch === "'") {
        this.i++;
        this.inWord = true;
        this.singleQuoted();
      } else if (ch === '"') {
        this.i++;
        this.inWord = true;
        this.doubleQuoted();
      } else if (ch === '$') {
        for (const c of this.dollar()) this.add(c, false);
      } else {
        this.add(ch, false);
        this.i++;
      }
    }
    if (this.inWord) this.words.push(this.cur);
    return { text: this.text, words: this.words };
  }

  private singleQuoted(): void {
    const s = this.s;
    while (this.i < s.length && s[this.i] !== "'") this.add(s[this.i++], true);
    if (this.i >= s.length) throw new ShellWordError('unexpected end of statement while looking for matching single-quote');
    this.i++;
  }

  private doubleQuoted(): void {
    const s = this.s;
    for (;;) {
      if (this.i >= s.length) throw new ShellWordError('unexpected end of statement while looking for matching double-quote');
      const ch = s[this.i];
      if (ch === '"') {
        this.i++;
        return;
      }
      if (ch === this.escape && this.i + 1 < s.length && (s[this.i + 1] === '"' || s[this.i + 1] === '$' || s[this.i + 1] === this.escape)) {
        this.add(s[this.i + 1], true);
        this.i += 2;
      } else if (ch === '$') {
        for (const c of this.dollar()) this.add(c, true);
      } else {
        this.add(ch, true);
        this.i++;
      }
    }
  }

  /** At a '$': returns the substituted text and moves past the reference. */
  private dollar(): string {
    const s = this.s;
    this.i++; // '$'
    if (this.i >= s.length) return '$';
    if (s[this.i] !== '{') {
      if (/[0-9]/.test(s[this.i])) {
        // Positional parameters ($1) are one digit long, and never set in a build.
        this.i++;
        return this.lookup(s[this.i - 1]) ?? '';
      }
      if (!NAME_START.test(s[this.i])) return '$';
      const start = this.i;
      while (this.i < s.length && NAME_CHAR.test(s[this.i])) this.i++;
      const name = s.slice(start, this.i);
      this.referenced.add(name);
      return this.lookup(name) ?? '';
    }
    this.i++; // '{'
    const start = this.i;
    while (this.i < s.length && NAME_CHAR.test(s[this.i])) this.i++;
    const name = s.slice(start, this.i);
    if (this.i >= s.length) throw new ShellWordError("missing '}' in substitution");
    if (name === '' || !NAME_START.test(name[0])) throw new ShellWordError(`bad substitution: \${${s.slice(start, this.i + 1)}`);
    this.referenced.add(name);
    const value = this.lookup(name);
    if (s[this.i] === '}') {
      this.i++;
      return value ?? '';
    }
    let colon = false;
    if (s[this.i] === ':') {
      colon = true;
      this.i++;
    }
    const modifier = s[this.i];
    if (modifier !== '-' && modifier !== '+' && modifier !== '?') {
      throw new ShellWordError(`unsupported modifier (${colon ? ':' : ''}${modifier ?? ''}) in substitution`);
    }
    this.i++;
    const word = this.modifierWord();
    // With a colon, empty counts as unset (POSIX).
    const isSet = value !== undefined && (!colon || value !== '');
    switch (modifier) {
      case '-':
        return isSet ? value! : word;
      case '+':
        return isSet ? word : '';
      default:
        if (!isSet) throw new ShellWordError(`${name}: ${word || 'is not allowed to be unset'}`);
        return value!;
    }
  }

  /** The word after a modifier, up to the matching '}', itself substituted (nesting allowed). */
  private modifierWord(): string {
    const s = this.s;
    let out = '';
    for (;;) {
      if (this.i >= s.length) throw new ShellWordError("missing '}' in substitution");
      const ch = s[this.i];
      if (ch === '}') {
        this.i++;
        return out;
      }
      if (ch === this.escape && this.i + 1 < s.length) {
        out += s[this.i + 1];
        this.i += 2;
      } else if (ch === '$') {
        out += this.dollar();
      } else if (ch === "'") {
        this.i++;
        const end = s.indexOf("'", this.i);
        if (end < 0) throw new ShellWordError('unexpected end of statement while looking for matching single-quote');
        out += s.slice(this.i, end);
        this.i = end + 1;
      } else if (ch === '"') {
        this.i++;
        while (this.i < s.length && s[this.i] !== '"') {
          if (s[this.i] === '$') out += this.dollar();
          else if (s[this.i] === this.escape && this.i + 1 < s.length) {
            out += s[this.i + 1];
            this.i += 2;
          } else out += s[this.i++];
        }
        if (this.i >= s.length) throw new ShellWordError('unexpected end of statement while looking for matching double-quote');
        this.i++;
      } else {
        out += ch;
        this.i++;
      }
    }
  }
}

/** Substitutes variables in a word and removes its quoting: one string out. */
export function processWord(word: string, lookup: Lookup, escape = '\\'): string {
  return new Lexer(word, lookup, escape).run().text;
}

/**
 * Substitutes variables and splits into words on unquoted whitespace (after substitution, as
 * docker does: an unquoted variable holding spaces gives several words).
 */
export function processWords(text: string, lookup: Lookup, escape = '\\'): string[] {
  return new Lexer(text, lookup, escape).run().words;
}

/** Substitutes variables in heredoc content, leaving quotes and other escapes as written. */
export function expandHeredoc(content: string, lookup: Lookup, escape = '\\'): string {
  return new Lexer(content, lookup, escape, true).run().text;
}

/** A lookup over "KEY=VALUE" lists, the later entry of a name winning. */
export function envLookup(...lists: string[][]): Lookup {
  const m = new Map<string, string>();
  for (const list of lists) {
    for (const kv of list) {
      const eq = kv.indexOf('=');
      if (eq < 0) m.set(kv, '');
      else m.set(kv.slice(0, eq), kv.slice(eq + 1));
    }
  }
  return (name) => m.get(name);
}
