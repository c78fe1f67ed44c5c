// The Dockerfile parser and the word lexer: directives, continuations, heredocs, forms, flags,
// substitution, and errors that name their line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDockerfile, parseLines, parseGoDuration, type Instruction, type InstructionOf } from '../../src/build/dockerfile';
import { expandHeredoc, processWord, processWords, envLookup } from '../../src/build/shell';

const env = envLookup(['a=hello', 'empty=', 'sp=x y']);

function only<K extends Instruction['kind']>(text: string, kind: K): InstructionOf<K> {
  const df = parseDockerfile(`FROM busybox\n${text}`);
  const ins = df.stages[0].instructions[0];
  assert.equal(ins.kind, kind);
  return ins as never;
}

function parseError(text: string, line: number, message: RegExp): void {
  assert.throws(() => parseDockerfile(text), (err: Error) => {
    assert.match(err.message, new RegExp(`^dockerfile parse error on line ${line}: `));
    assert.match(err.message, message);
    return true;
  });
}

test('substitution forms', () => {
  assert.equal(processWord('$a ${a} ${a}x', env), 'hello hello hellox');
  assert.equal(processWord('${unset:-def} ${empty:-def} ${empty-def} ${unset-def}', env), 'def def  def');
  assert.equal(processWord('${a:+alt} ${empty:+alt} ${empty+alt} ${unset+alt}', env), 'alt  alt ');
  assert.equal(processWord('\\$a \'$a\' "$a"', env), '$a $a hello');
  assert.equal(processWord('${unset:-${a}}', env), 'hello');
  assert.equal(processWord('$ $1x a$ $-', env), '$ x a$ $-');
  assert.throws(() => processWord('${unset:?must be set}', env), /unset: must be set/);
  assert.throws(() => processWord('${a', env), /missing '}'/);
  assert.throws(() => processWord('${a:x}', env), /unsupported modifier/);
  assert.throws(() => processWord('"open', env), /double-quote/);
  assert.deepEqual(processWords('$sp "$sp" z', env), ['x', 'y', 'x y', 'z']);
  assert.equal(processWord('`$a', env, '`'), '$a');
  assert.equal(expandHeredoc('echo "$a" \'q\' \\$a\n', env), 'echo "hello" \'q\' $a\n');
});

test('directives: escape and syntax, only at the top', () => {
  const df = parseDockerfile('# syntax=docker/dockerfile:1\n# escape=`\nFROM busybox\nRUN echo a `\n  b\n');
  assert.equal(df.directives.escape, '`');
  assert.equal(df.directives.syntax, 'docker/dockerfile:1');
  const run = df.stages[0].instructions[0] as InstructionOf<'RUN'>;
  assert.equal(run.command.args[0], 'echo a   b');
  // After an instruction the line is a comment.
  const late = parseDockerfile('FROM busybox\n# escape=`\nRUN echo a \\\n b');
  assert.equal(late.directives.escape, '\\');
  // After a blank line, too.
  assert.equal(parseDockerfile('\n# escape=`\nFROM x').directives.escape, '\\');
  parseError('# escape=x\nFROM busybox', 1, /invalid escape token 'x' does not match ` or \\/);
  parseError('# escape=`\n# escape=\\\nFROM busybox', 2, /only one escape parser directive can be used/);
});

test('continuations skip comments and empty lines; a warning for empty ones', () => {
  const p = parseLines('FROM busybox\nRUN echo a \\\n# comment\n\n   b \\\n  c\nCMD x');
  assert.equal(p.nodes.length, 3);
  assert.equal(p.nodes[1].original, 'RUN echo a    b   c');
  assert.equal(p.nodes[1].startLine, 2);
  assert.equal(p.nodes[1].endLine, 6);
  assert.equal(p.nodes[2].startLine, 7);
  assert.match(p.warnings[0], /Empty continuation line/);
  // A continuation at end of file just ends the instruction.
  assert.equal(parseLines('FROM a \\').nodes[0].original, 'FROM a');
});

test('heredocs: plain, <<- , quoted, several in one line', () => {
  const df = parseDockerfile('FROM busybox\nRUN <<EOF\necho $HOME\nEOF\nCOPY <<-"A" <<B /dest/\n\t\tone $x\n\tA\ntwo\nB\nRUN cat <<X > f\nhi\nX\nENV after=1\n');
  const [run, copy, run2, env] = df.stages[0].instructions;
  assert.equal(run.kind, 'RUN');
  assert.deepEqual((run as InstructionOf<'RUN'>).heredocs, [{ name: 'EOF', content: 'echo $HOME\n', expand: true, chomp: false }]);
  const c = copy as InstructionOf<'COPY'>;
  assert.deepEqual(c.sources, ['<<-"A"', '<<B']);
  assert.equal(c.dest, '/dest/');
  assert.deepEqual(c.heredocs, [{ name: 'A', content: 'one $x\n', expand: false, chomp: true }, { name: 'B', content: 'two\n', expand: true, chomp: false }]);
  assert.equal((run2 as InstructionOf<'RUN'>).heredocs[0].content, 'hi\n');
  assert.equal(env.kind, 'ENV');
  assert.equal(env.line, 13);
  parseError('FROM busybox\nRUN <<EOF\necho\n', 2, /unterminated heredoc EOF/);
});

test('exec and shell forms', () => {
  assert.deepEqual(only('RUN ["echo", "a b"]', 'RUN').command, { args: ['echo', 'a b'], prependShell: false });
  assert.deepEqual(only('RUN echo "a  b"', 'RUN').command, { args: ['echo "a  b"'], prependShell: true });
  // Not valid JSON: shell form, as docker does.
  assert.deepEqual(only("CMD ['x']", 'CMD').command, { args: ["['x']"], prependShell: true });
  assert.deepEqual(only('ENTRYPOINT ["/bin/app"]', 'ENTRYPOINT').command.args, ['/bin/app']);
  assert.deepEqual(only('SHELL ["/bin/bash", "-c"]', 'SHELL').shell, ['/bin/bash', '-c']);
  parseError('FROM a\nSHELL /bin/bash', 2, /SHELL requires the arguments to be in JSON form/);
});

test('ENV, LABEL, ARG forms', () => {
  assert.deepEqual(only('ENV a=1 b="two words" c=x\\ y', 'ENV').pairs, [{ key: 'a', value: '1' }, { key: 'b', value: '"two words"' }, { key: 'c', value: 'x\\ y' }]);
  assert.deepEqual(only('ENV legacy value with spaces', 'ENV').pairs, [{ key: 'legacy', value: 'value with spaces' }]);
  assert.deepEqual(only('LABEL "com.x"="y" z=1', 'LABEL').pairs, [{ key: '"com.x"', value: '"y"' }, { key: 'z', value: '1' }]);
  assert.deepEqual(only('ARG a b=2', 'ARG').args, [{ key: 'a' }, { key: 'b', value: '2' }]);
  parseError('FROM a\nENV onlyname', 2, /ENV must have two arguments/);
  parseError('FROM a\nENV =x', 2, /ENV names can not be blank/);
  parseError('FROM a\nLABEL a=1 b', 2, /can't find = in "b"/);
  parseError('FROM a\nENV', 2, /ENV requires at least one argument/);
});

test('FROM, stages, meta ARGs', () => {
  const df = parseDockerfile('ARG V=1\nFROM --platform=linux/amd64 busybox:$V AS Build\nRUN x\nfrom scratch\ncopy --from=build /a /b');
  assert.equal(df.metaArgs.length, 1);
  assert.equal(df.stages.length, 2);
  assert.equal(df.stages[0].name, 'build');
  assert.equal(df.stages[0].from.platform, 'linux/amd64');
  assert.equal(df.stages[0].from.image, 'busybox:$V');
  assert.equal((df.stages[1].instructions[0] as InstructionOf<'COPY'>).from, 'build');
  parseError('FROM a b', 1, /FROM requires either one or three arguments/);
  parseError('FROM a AS 1x', 1, /invalid name for build stage: "1x"/);
  parseError('FROM a AS x\nFROM b AS X', 2, /duplicate stage name "x"/);
  parseError('ENV a=b\nFROM a', 1, /no build stage in current context/);
  assert.throws(() => parseDockerfile('# just a comment\n\n'), /the Dockerfile \(Dockerfile\) cannot be empty/);
});

test('flags: known ones parsed, --mount refused, unknown named', () => {
  const c = only('COPY --chown=1:2 --chmod=0755 --link --from=img a b/', 'COPY');
  assert.equal(c.chown, '1:2');
  assert.equal(c.chmod, '0755');
  assert.equal(c.link, true);
  assert.equal(c.from, 'img');
  assert.equal(only('ADD --checksum=sha256:abc a b', 'ADD').checksum, 'sha256:abc');
  parseError('FROM a\n\nRUN --mount=type=cache,target=/x true', 3, /the --mount option requires BuildKit/);
  parseError('FROM a\nCOPY --bogus=1 a b', 2, /unknown flag: bogus/);
  parseError('FROM a\nCOPY --from=a --from=b a b', 2, /Duplicate flag specified: from/);
  parseError('FROM a\nCOPY --chown a b', 2, /Missing a value on flag: chown/);
  parseError('FROM a\nCOPY --link=maybe a b', 2, /expecting boolean value for flag link, not: maybe/);
  parseError('FROM a\nCOPY --chmod=999 a b', 2, /invalid chmod parameter/);
  parseError('FROM a\nCOPY onlyone', 2, /COPY requires at least two arguments, but only one was provided/);
});

test('the other instructions', () => {
  assert.equal(only('WORKDIR /a b', 'WORKDIR').path, '/a b');
  assert.equal(only('USER app:grp', 'USER').user, 'app:grp');
  assert.deepEqual(only('VOLUME ["/a", "/b"]', 'VOLUME').paths, ['/a', '/b']);
  assert.deepEqual(only('VOLUME /a /b', 'VOLUME').paths, ['/a', '/b']);
  assert.deepEqual(only('EXPOSE 80 443/tcp', 'EXPOSE').ports, ['80', '443/tcp']);
  assert.equal(only('STOPSIGNAL SIGKILL', 'STOPSIGNAL').signal, 'SIGKILL');
  assert.equal(only('MAINTAINER Jane <j@x>', 'MAINTAINER').maintainer, 'Jane <j@x>');
  assert.equal(only('ONBUILD RUN echo hi', 'ONBUILD').expression, 'RUN echo hi');
  assert.deepEqual(only('HEALTHCHECK --interval=5s --timeout=1m30s --retries=3 --start-period=100ms CMD curl -f x', 'HEALTHCHECK').health, {
    Test: ['CMD-SHELL', 'curl -f x'], Interval: 5e9, Timeout: 90e9, StartPeriod: 1e8, Retries: 3,
  });
  assert.deepEqual(only('HEALTHCHECK CMD ["true"]', 'HEALTHCHECK').health, { Test: ['CMD', 'true'] });
  assert.deepEqual(only('HEALTHCHECK NONE', 'HEALTHCHECK').health, { Test: ['NONE'] });
  assert.equal(parseGoDuration('1h2m3.5s'), 3723.5e9);
  parseError('FROM a\nHEALTHCHECK NONE x', 2, /HEALTHCHECK NONE takes no arguments/);
  parseError('FROM a\nHEALTHCHECK FOO', 2, /Unknown type "FOO" in HEALTHCHECK \(try CMD\)/);
  parseError('FROM a\nHEALTHCHECK CMD', 2, /Missing command after HEALTHCHECK CMD/);
  parseError('FROM a\nHEALTHCHECK --interval=1us CMD x', 2, /cannot be less than 1ms/);
  parseError('FROM a\nHEALTHCHECK --retries=-1 CMD x', 2, /--retries cannot be negative \(-1\)/);
  parseError('FROM a\nHEALTHCHECK --interval=5 CMD x', 2, /invalid duration/);
  parseError('FROM a\nONBUILD ONBUILD RUN x', 2, /Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed/);
  parseError('FROM a\nONBUILD FROM x', 2, /FROM isn't allowed as an ONBUILD trigger/);
  parseError('FROM a\nWORKDIR', 2, /WORKDIR requires exactly one argument/);
  parseError('FROM a\nUSER a b', 2, /USER requires exactly one argument/);
  parseError('FROM a\nEXPOSE', 2, /EXPOSE requires at least one argument/);
  parseError('FROM a\nVOLUME [""]', 2, /VOLUME specified can not be an empty string/);
  parseError('FROM a\n\n\nRUNN x', 4, /unknown instruction: RUNN \(did you mean run\?\)/);
});
