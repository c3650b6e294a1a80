// The runner's process slots (runner/slots.ts): a free slot is taken at once, the rest wait in
// arrival order, a wait ends late, closed or withdrawn, and the typical hold is what jobs held.
import { SlotGate, type Turn } from '../runner/slots';

/** The turns that have come so far, by name. */
function watch(places: Record<string, { turn: Promise<Turn> }>): Record<string, Turn | undefined> {
  const seen: Record<string, Turn | undefined> = {};
  for (const [name, place] of Object.entries(places)) void place.turn.then((turn) => (seen[name] = turn));
  return seen;
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

test('free slots are taken at once; the others wait and get them in arrival order', async () => {
  const gate = new SlotGate(2);
  const places = { a: gate.enter(60_000), b: gate.enter(60_000), c: gate.enter(60_000), d: gate.enter(60_000) };
  const seen = watch(places);
  await settle();
  expect(seen).toEqual({ a: 'go', b: 'go' });
  expect([gate.busy, gate.waiting]).toEqual([2, 2]);
  places.b.leave();
  places.b.leave(); // once only
  await settle();
  expect(seen).toEqual({ a: 'go', b: 'go', c: 'go' });
  expect([gate.busy, gate.waiting]).toEqual([2, 1]);
  places.d.leave(); // leaves the line
  await settle();
  expect(seen.d).toBe('withdrawn');
  places.a.leave();
  places.c.leave();
  expect([gate.busy, gate.waiting]).toEqual([0, 0]);
  // A newcomer does not pass those waiting: with a slot free and nobody in line it goes at once.
  const e = gate.enter(60_000);
  expect(await e.turn).toBe('go');
});

test('a wait past its limit ends late, and long holds are what the gate then reports', async () => {
  const gate = new SlotGate(1);
  expect(gate.typicalHoldMs).toBe(Number.POSITIVE_INFINITY);
  const first = gate.enter(60_000);
  expect(await first.turn).toBe('go');
  first.leave();
  expect(gate.typicalHoldMs).toBeLessThan(60_000);
  const holder = gate.enter(60_000);
  const late = gate.enter(20);
  expect(await late.turn).toBe('late');
  expect(gate.typicalHoldMs).toBeGreaterThanOrEqual(20);
  expect([gate.busy, gate.waiting]).toEqual([1, 0]);
  late.leave(); // nothing to give back
  holder.leave();
  expect(gate.busy).toBe(0);
});

test('closing ends every wait and every later one; held slots are still given back', async () => {
  const gate = new SlotGate(1);
  const holder = gate.enter(60_000);
  const waiting = gate.enter(60_000);
  gate.close();
  expect(await waiting.turn).toBe('closed');
  expect(await gate.enter(60_000).turn).toBe('closed');
  expect(await holder.turn).toBe('go');
  holder.leave();
  expect([gate.busy, gate.waiting]).toEqual([0, 0]);
});

test('a long hold is the typical one at once; short ones bring it down a little at a time', async () => {
  // The gate reads the wall clock; a hold's length is set on it exactly (a real timer of 300 ms
  // can end 299 ms later on Date.now's whole milliseconds).
  let now = 1_000_000;
  const clock = jest.spyOn(Date, 'now').mockImplementation(() => now);
  const gate = new SlotGate(1);
  const hold = async (ms: number) => {
    const place = gate.enter(60_000);
    await place.turn;
    now += ms;
    place.leave();
  };
  try {
    await hold(0);
    const short = gate.typicalHoldMs;
    expect(short).toBeLessThan(Number.POSITIVE_INFINITY);
    await hold(300);
    const long = gate.typicalHoldMs;
    expect(long).toBeGreaterThanOrEqual(300);
    await hold(0);
    // One short hold takes a fifth of the way back, no more.
    expect(gate.typicalHoldMs).toBeLessThan(long);
    expect(gate.typicalHoldMs).toBeGreaterThanOrEqual(long * 0.8 - 1);
  } finally {
    clock.mockRestore();
  }
});
