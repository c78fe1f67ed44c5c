// The event bus on its own: ring buffer bounds, ordering, legacy fields, filters, timestamps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventsService, eventJSON, eventMatches, parseEventTimestamp, validateEventFilters, type EventMessage } from '../../src/events';

function fakeClock(start = 1_700_000_000_000_000_000n) {
  let t = start;
  return { now: () => (t += 1_000_000n) };
}

test('ring buffer keeps the newest N events, oldest first; history bounds by since/until', () => {
  const bus = new EventsService(4, fakeClock());
  const evs: EventMessage[] = [];
  for (let i = 0; i < 6; i++) evs.push(bus.image('tag', `sha256:${i}`, { name: `x:${i}` }));
  const all = bus.history(0n, 0n);
  assert.deepEqual(all.map((e) => e.Actor.ID), ['sha256:2', 'sha256:3', 'sha256:4', 'sha256:5']);
  assert.deepEqual(bus.history(evs[3].timeNano, evs[4].timeNano).map((e) => e.Actor.ID), ['sha256:3', 'sha256:4']);
  assert.throws(() => new EventsService(0));
});

test('legacy fields: container events carry status/id/from, network events do not', () => {
  const bus = new EventsService(8, fakeClock());
  const c = bus.container('start', 'abc', { name: 'web', image: 'busybox' });
  assert.equal(c.status, 'start');
  assert.equal(c.id, 'abc');
  assert.equal(c.from, 'busybox');
  const n = bus.publish('network', 'create', { ID: 'n1', Attributes: { name: 'net', type: 'bridge' } });
  assert.equal(n.status, undefined);
  assert.equal(n.from, undefined);
  const line = JSON.parse(eventJSON(c)) as Record<string, unknown>;
  assert.equal(line.Type, 'container');
  assert.equal(line.scope, 'local');
  assert.equal(typeof line.timeNano, 'number');
  assert.match(eventJSON(c), /"timeNano":1700000000001000000\}$/);
});

test('subscribers get events synchronously; one throwing does not stop the others', () => {
  const bus = new EventsService(8, fakeClock());
  const seen: string[] = [];
  const un1 = bus.subscribe(() => {
    throw new Error('boom');
  });
  const un2 = bus.subscribe((e) => seen.push(e.Action));
  bus.image('delete', 'sha256:1', {});
  assert.deepEqual(seen, ['delete']);
  assert.equal(bus.listenerCount(), 2);
  un1();
  un2();
  assert.equal(bus.listenerCount(), 0);
});

test('filters follow dockerd: container by ID prefix or name, labels, event prefixes', () => {
  const bus = new EventsService(8, fakeClock());
  const c = bus.container('exec_start: sh -c true', 'abcdef123', { name: 'web', image: 'busybox:latest', tier: 'front' });
  const f = (o: Record<string, string[]>) => new Map(Object.entries(o));
  assert.ok(eventMatches(f({ container: ['abc'] }), c));
  assert.ok(eventMatches(f({ container: ['web'] }), c));
  assert.ok(!eventMatches(f({ container: ['we'] }), c));
  assert.ok(eventMatches(f({ image: ['busybox'] }), c));
  assert.ok(eventMatches(f({ event: ['exec_start'] }), c));
  assert.ok(eventMatches(f({ label: ['tier'] }), c));
  assert.ok(eventMatches(f({ label: ['tier=front'] }), c));
  assert.ok(!eventMatches(f({ label: ['tier=back'] }), c));
  assert.ok(!eventMatches(f({ network: ['abc'] }), c));
  assert.ok(eventMatches(f({ type: ['container', 'image'] }), c));
  assert.throws(() => validateEventFilters(f({ type: ['bogus'] })), /Invalid filter 'type=bogus'/);
  assert.throws(() => validateEventFilters(f({ nope: ['x'] })), /invalid filter 'nope'/);
});

test('timestamps: unix with fractions and RFC 3339', () => {
  assert.equal(parseEventTimestamp('1700000000', 'since'), 1_700_000_000_000_000_000n);
  assert.equal(parseEventTimestamp('1700000000.5', 'since'), 1_700_000_000_500_000_000n);
  assert.equal(parseEventTimestamp('1700000000.000000001', 'since'), 1_700_000_000_000_000_001n);
  assert.equal(parseEventTimestamp('2023-11-14T22:13:20Z', 'since'), 1_700_000_000_000_000_000n);
  assert.equal(parseEventTimestamp('2023-11-14T23:13:20.25+01:00', 'since'), 1_700_000_000_250_000_000n);
  assert.equal(parseEventTimestamp('', 'since'), undefined);
  assert.equal(parseEventTimestamp(null, 'since'), undefined);
  assert.throws(() => parseEventTimestamp('soon', 'until'), /failed to parse value of until/);
});
