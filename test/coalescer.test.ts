// models/coalescer.ts: calls made while a batch is in flight go together in the next one; a lone call
// goes at once; no call is answered by a batch that started before it was made.
import { Coalescer, keyedReads } from '../models/coalescer';

/** A batch function whose batches are held until released, recording what each batch held. */
function heldBatches() {
  const batches: number[][] = [];
  const releases: (() => void)[] = [];
  const run = (items: number[]) => {
    batches.push(items);
    return new Promise<number[]>((resolve) => releases.push(() => resolve(items.map((n) => n * 10))));
  };
  return { batches, releases, run };
}

/** Lets the promise callbacks queued so far run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

test('a lone call goes at once; calls made while it runs go together in the next batch', async () => {
  const { batches, releases, run } = heldBatches();
  const coalescer = new Coalescer(run);
  const first = coalescer.call(1);
  expect(batches).toEqual([[1]]);
  const later = [2, 3, 4].map((n) => coalescer.call(n));
  await settle();
  // The batch in flight started before 2, 3 and 4 were asked: it does not answer them.
  expect(batches).toEqual([[1]]);
  releases[0]();
  expect(await first).toBe(10);
  await settle();
  expect(batches).toEqual([[1], [2, 3, 4]]);
  releases[1]();
  expect(await Promise.all(later)).toEqual([20, 30, 40]);
});

test('a batch takes at most maxBatch calls; the rest go in the batches after it, in order', async () => {
  const { batches, releases, run } = heldBatches();
  const coalescer = new Coalescer(run, { maxBatch: 2 });
  const calls = [1, 2, 3, 4, 5, 6].map((n) => coalescer.call(n));
  for (let i = 0; i < 4; i++) {
    await settle();
    releases[i]();
  }
  expect(await Promise.all(calls)).toEqual([10, 20, 30, 40, 50, 60]);
  expect(batches).toEqual([[1], [2, 3], [4, 5], [6]]);
});

class Refused extends Error {}

test("a refusal that belongs to one call is that call's alone; any other failure is every call's", async () => {
  let hold: (() => void) | undefined;
  const coalescer = new Coalescer<number, number>(
    async (items) => {
      if (items[0] === 0) await new Promise<void>((resolve) => (hold = resolve));
      if (items.includes(13)) throw new Refused('13 is refused');
      if (items.includes(99)) throw new Error('database down');
      return items;
    },
    { refusesOne: (err) => err instanceof Refused },
  );
  const blocker = coalescer.call(0);
  // Settled at once, so a rejection always has its handler.
  const refused = Promise.allSettled([12, 13, 14].map((n) => coalescer.call(n)));
  hold!();
  await blocker;
  const outcomes = await refused;
  expect(outcomes.map((o) => (o.status === 'fulfilled' ? o.value : (o.reason as Error).message))).toEqual([
    12,
    '13 is refused',
    14,
  ]);

  await settle(); // the first round's flush ends: the next call starts a batch of its own
  const again = coalescer.call(0);
  const failed = Promise.allSettled([98, 99].map((n) => coalescer.call(n)));
  await settle();
  hold!();
  await again;
  const down = await failed;
  expect(down.map((o) => o.status === 'rejected' && (o.reason as Error).message)).toEqual([
    'database down',
    'database down',
  ]);
  // The coalescer goes on after a failure.
  expect(await coalescer.call(7)).toBe(7);
});

test("keyed reads fetch a batch's distinct keys once and give each call its own key's row, matched exactly", async () => {
  const fetched: string[][] = [];
  // A case-insensitive collation would hand back "ABC" for "abc": not "abc"'s row.
  const reads = keyedReads(
    async (keys: string[]) => {
      fetched.push(keys);
      return keys.flatMap((key) => (key === 'abc' ? [{ key: 'ABC' }] : key === 'gone' ? [] : [{ key }]));
    },
    (row) => row.key,
  );
  const first = reads.call('x');
  const rest = Promise.all(['y', 'abc', 'y', 'gone'].map((key) => reads.call(key)));
  expect(await first).toEqual({ key: 'x' });
  expect(await rest).toEqual([{ key: 'y' }, undefined, { key: 'y' }, undefined]);
  expect(fetched).toEqual([['x'], ['y', 'abc', 'gone']]);
});
