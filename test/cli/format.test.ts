// The --format template engine, docker's table layout, human units and JSON output, checked
// against outputs of the real docker CLI (Go text/template, text/tabwriter, go-units).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  bytesSize, ellipsis, formatG, FormatContext, goJSON, goSprintf, goString, goTimeString, humanDuration, humanSize, prettyJSON,
  renderRows, shortId, tabwrite, Template, TemplateError, timeAgo,
} from '../../src/cli/format';

const run = (tmpl: string, data: unknown): string => new Template(tmpl).execute(data);

test('fields, nested fields, missing map keys', () => {
  const data = { Name: 'web', State: { Pid: 42, Running: true }, Labels: { 'com.example': 'x' }, Nil: null };
  assert.equal(run('{{.Name}} {{.State.Pid}} {{.State.Running}}', data), 'web 42 true');
  assert.equal(run('{{.Missing}}', data), '<no value>');
  assert.equal(run('{{.Nil}}', data), '<nil>');
  assert.equal(run('{{.}}', 'plain'), 'plain');
  assert.equal(run('{{.Labels}}', data), 'map[com.example:x]');
  assert.equal(run('{{.List}}', { List: ['a', 'b'] }), '[a b]');
  assert.equal(run('{{.F}}', { F: 1.5 }), '1.5');
});

test('json, index, join, lower/upper, split, len, printf', () => {
  const data = { Labels: { k: 'v', 'a.b': 'c' }, Env: ['A=1', 'B=2'], Name: 'MiXed', Cfg: { Cmd: ['sh', '-c', 'echo <hi> & bye'] } };
  assert.equal(run('{{json .}}', { b: 1, a: [1, 'x'] }), '{"b":1,"a":[1,"x"]}');
  assert.equal(run('{{json .Cfg.Cmd}}', data), '["sh","-c","echo \\u003chi\\u003e \\u0026 bye"]');
  assert.equal(run('{{index .Labels "a.b"}}', data), 'c');
  assert.equal(run('{{index .Env 1}}', data), 'B=2');
  assert.equal(run('{{join .Env ","}}', data), 'A=1,B=2');
  assert.equal(run('{{lower .Name}}/{{upper .Name}}', data), 'mixed/MIXED');
  assert.equal(run('{{.Name | lower}}', data), 'mixed');
  assert.equal(run('{{len .Env}} {{len .Labels}}', data), '2 2');
  assert.equal(run('{{split "a:b:c" ":"}}', data), '[a b c]');
  assert.equal(run('{{printf "%-5s|%3d|%q" .Name 7 "x"}}', data), 'MiXed|  7|"x"');
  assert.equal(run('{{title "hello world"}}', data), 'Hello World');
  assert.equal(run('{{(index .Env 0)}}', data), 'A=1');
});

test('range, if/else if/else, with, variables, whitespace trimming', () => {
  const data = { Mounts: [{ Source: '/a', Destination: '/x' }, { Source: '/b', Destination: '/y' }], Empty: [], N: 0, S: 'set' };
  assert.equal(run('{{range .Mounts}}{{.Source}}->{{.Destination}};{{end}}', data), '/a->/x;/b->/y;');
  assert.equal(run('{{range $i, $m := .Mounts}}{{$i}}={{$m.Source}} {{end}}', data), '0=/a 1=/b ');
  assert.equal(run('{{range .Empty}}x{{else}}none{{end}}', data), 'none');
  assert.equal(run('{{range $k, $v := .M}}{{$k}}:{{$v}},{{end}}', { M: { b: 2, a: 1 } }), 'a:1,b:2,');
  assert.equal(run('{{if .N}}yes{{else if .S}}s={{.S}}{{else}}no{{end}}', data), 's=set');
  assert.equal(run('{{if not .N}}zero{{end}}', data), 'zero');
  assert.equal(run('{{if eq .S "set" "other"}}eq{{end}}{{if ne .S "x"}}ne{{end}}', data), 'eqne');
  assert.equal(run('{{if and .S .N}}a{{else}}b{{end}}{{if or .N .S}}c{{end}}', data), 'bc');
  assert.equal(run('{{with .S}}[{{.}}]{{end}}{{with .N}}never{{else}}else{{end}}', data), '[set]else');
  assert.equal(run('{{$x := .S}}{{$x}}-{{$.S}}', data), 'set-set');
  assert.equal(run('a  {{- .S -}}  b', data), 'asetb');
  assert.equal(run('{{range .Mounts}}{{$.S}}{{end}}', data), 'setset');
  assert.equal(run('{{/* a comment */}}ok', data), 'ok');
});

test('template errors look like Go\'s', () => {
  assert.throws(() => new Template('{{nosuchfn .X}}'), (e: Error) => e instanceof TemplateError && /function "nosuchfn" not defined/.test(e.message));
  assert.throws(() => new Template('{{if .X}}'), TemplateError);
  assert.throws(() => new Template('{{.X'), TemplateError);
  class Row extends FormatContext {
    headers() { return { ID: 'ID' }; }
    get ID() { return 'x'; }
  }
  class Labelled extends FormatContext {
    headers() { return { ID: 'ID' }; }
    Label(k: string) { return k === 'tier' ? 'front' : ''; }
  }
  assert.equal(run('{{.Label "tier"}}|{{.Label "x"}}', new Labelled()), 'front|');
  assert.throws(() => run('{{.ID "arg"}}', new Row()), /can't give argument to non-function .ID/);
  assert.throws(() => run('{{.Nope}}', new Row()), (e: Error) => /can't evaluate field Nope in type \*formatter.Row/.test(e.message));
  assert.throws(() => run('{{.A.B}}', { A: null }), /nil pointer evaluating/);
});

test('tabwriter aligns as Go text/tabwriter (minwidth 10, padding 3)', () => {
  // The exact layout docker prints for an empty system df -v section and an images table.
  assert.equal(tabwrite('CACHE ID\tCACHE TYPE\tSIZE\tCREATED\tLAST USED\tUSAGE\tSHARED\n'), 'CACHE ID   CACHE TYPE   SIZE      CREATED   LAST USED   USAGE     SHARED\n');
  assert.equal(
    tabwrite('REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\nbusybox\tlatest\tcccd56102434\t3 seconds ago\t2.13MB\n<none>\t<none>\t4ba3caa8db25\t3 seconds ago\t2.13MB\n'),
    'REPOSITORY   TAG       IMAGE ID       CREATED         SIZE\n' +
      'busybox      latest    cccd56102434   3 seconds ago   2.13MB\n' +
      '<none>       <none>    4ba3caa8db25   3 seconds ago   2.13MB\n',
  );
  // A line with fewer cells ends the column block above it: the blocks are sized separately.
  assert.equal(tabwrite('a\tb\tc\nlonger-cell-here\td\nx\n1\t2\t3\n'), `a${' '.repeat(18)}b${' '.repeat(9)}c\nlonger-cell-here   d\nx\n1         2         3\n`);
  // Multibyte cells count as one column each.
  assert.equal(tabwrite('é\tx\nab\ty\n', { minwidth: 0, padding: 1 }), 'é  x\nab y\n');
});

test('renderRows: table header, json lines, plain templates', () => {
  class Row extends FormatContext {
    constructor(readonly ID: string, readonly Name: string) { super(); }
    headers() { return { ID: 'CONTAINER ID', Name: 'NAMES' }; }
  }
  const rows = [new Row('abc', 'one'), new Row('def', 'two')];
  assert.equal(renderRows('table {{.ID}}\\t{{.Name}}', rows), 'CONTAINER ID   NAMES\nabc            one\ndef            two\n');
  assert.equal(renderRows('{{.ID}}:{{.Name}}', rows), 'abc:one\ndef:two\n');
  assert.equal(renderRows('json', rows), '{"ID":"abc","Name":"one"}\n{"ID":"def","Name":"two"}\n');
  assert.equal(renderRows('table {{.ID}}', []), '\n');
  assert.equal(renderRows('table {{.ID}}', [], () => ({ ID: 'X ID' })), 'X ID\n');
});

test('human sizes match go-units', () => {
  assert.equal(humanSize(0), '0B');
  assert.equal(humanSize(999), '999B');
  assert.equal(humanSize(1000), '1kB');
  assert.equal(humanSize(4261000), '4.26MB');
  assert.equal(humanSize(2131000), '2.13MB');
  assert.equal(humanSize(2131000, 4), '2.131MB');
  assert.equal(humanSize(77800000), '77.8MB');
  assert.equal(humanSize(123456789012), '123GB');
  assert.equal(humanSize(999999), '1e+03kB'); // Go's %.3g rounds up into exponent form, as docker shows
  assert.equal(bytesSize(25275928576), '23.54GiB');
  assert.equal(bytesSize(1024), '1KiB');
  assert.equal(formatG(0.0001234, 3), '0.000123');
  assert.equal(formatG(1234567, 3), '1.23e+06');
  assert.equal(formatG(100, 3), '100');
});

test('human durations match go-units', () => {
  assert.equal(humanDuration(500), 'Less than a second');
  assert.equal(humanDuration(1000), '1 second');
  assert.equal(humanDuration(45_000), '45 seconds');
  assert.equal(humanDuration(61_000), 'About a minute');
  assert.equal(humanDuration(5 * 60_000), '5 minutes');
  assert.equal(humanDuration(60 * 60_000), 'About an hour');
  assert.equal(humanDuration(2 * 3600_000), '2 hours');
  assert.equal(humanDuration(47 * 3600_000), '47 hours');
  assert.equal(humanDuration(3 * 86400_000), '3 days');
  assert.equal(humanDuration(20 * 86400_000), '2 weeks');
  assert.equal(humanDuration(90 * 86400_000), '3 months');
  assert.equal(humanDuration(800 * 86400_000), '2 years');
  assert.equal(timeAgo(1000, 1000 + 2 * 3600_000), '2 hours ago');
});

test('IDs, ellipsis, Go time strings, printf and %v', () => {
  assert.equal(shortId('sha256:cccd561024346d94c5e8d046f3cee2d35caf9a34e42c6bf23acf572afcd81191'), 'cccd56102434');
  assert.equal(shortId('0123456789abcdef'), '0123456789ab');
  assert.equal(ellipsis('sleep 1000000000000000', 20), 'sleep 1000000000000…');
  assert.equal(ellipsis('short', 20), 'short');
  const prevTZ = process.env.TZ;
  try {
    process.env.TZ = 'UTC';
    assert.equal(goTimeString(new Date(Date.UTC(2025, 0, 2, 3, 4, 5))), '2025-01-02 03:04:05 +0000 UTC');
  } finally {
    if (prevTZ === undefined) delete process.env.TZ;
    else process.env.TZ = prevTZ;
  }
  assert.equal(goSprintf('%s=%d%%', 'a', 5), 'a=5%');
  assert.equal(goString(true), 'true');
  assert.equal(goJSON({ a: '<&>' }), '{"a":"\\u003c\\u0026\\u003e"}');
});

test('inspect JSON is indented with four spaces, empty containers stay compact', () => {
  assert.equal(prettyJSON([{ A: [], B: {}, C: [1] }]), '[\n    {\n        "A": [],\n        "B": {},\n        "C": [\n            1\n        ]\n    }\n]');
  assert.equal(prettyJSON([]), '[]');
});
