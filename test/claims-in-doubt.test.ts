// The bookkeeping of claims in doubt (models/claims-in-doubt.ts), without a database: what goes in
// doubt, when a settlement runs (never beside a claim in flight), and what it is given. The queue
// settling real rows: test/queue/claims-in-doubt.test.ts.
import { ClaimsInDoubt, type DoubtfulClaim } from '../models/claims-in-doubt';

class Lost extends Error {}
class Conflict extends Error {}

/** A promise with its resolver, to hold a claim or a settlement open. */
function held<T = void>(): { promise: Promise<T>; release: (value: T) => void } {
  let release!: (value: T) => void;
  const promise = new Promise<T>((resolve) => (release = resolve));
  return { promise, release };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));
const job = (id: number, attempt = 1) => ({ id, attempt, lastSeq: 0 });

function ledger() {
  const settled: DoubtfulClaim[][] = [];
  let gate: Promise<void> | null = null;
  let failNext = false;
  const doubts = new ClaimsInDoubt(
    async (claims) => {
      settled.push(claims);
      if (gate) await gate;
      if (failNext) {
        failNext = false;
        throw new Lost('still away');
      }
    },
    (err) => !(err instanceof Conflict),
  );
  /** A claim that takes `ids` (its COMMIT held until `until`, if given), then fails with `err` or returns them. */
  const claim = (ids: number[], err?: Error, until?: Promise<void>) =>
    doubts.claim(
      'r1',
      async (ticket) => {
        ticket.committing = ids.map((id) => job(id));
        if (until) await until;
        if (err) throw err;
        return ids;
      },
      (result) => result,
    );
  return {
    doubts,
    settled,
    claim,
    holdSettlements: (until: Promise<void>) => (gate = until),
    failNextSettlement: () => (failNext = true),
  };
}

test('the jobs of a claim that lost its answer are settled before the next claim, once', async () => {
  const l = ledger();
  await expect(l.claim([1, 2], new Lost('connection lost'))).rejects.toThrow('connection lost');
  expect(l.doubts.size).toBe(2);
  expect(await l.claim([3])).toEqual([3]);
  expect(l.settled).toEqual([
    [
      { ...job(1), runnerId: 'r1' },
      { ...job(2), runnerId: 'r1' },
    ],
  ]);
  expect(l.doubts.size).toBe(0);
  await l.claim([4]);
  expect(l.settled).toHaveLength(1);
});

test('a lock conflict rolled the claim back: nothing is in doubt', async () => {
  const l = ledger();
  await expect(l.claim([1], new Conflict('deadlock'))).rejects.toThrow('deadlock');
  expect(l.doubts.size).toBe(0);
  await l.claim([2]);
  expect(l.settled).toEqual([]);
});

test('a failure before the claim reached its COMMIT puts nothing in doubt', async () => {
  const l = ledger();
  const early = l.doubts.claim(
    'r1',
    async () => {
      throw new Lost('connection lost at the SELECT');
    },
    () => [],
  );
  await expect(early).rejects.toThrow('SELECT');
  expect(l.doubts.size).toBe(0);
});

test('a settlement waits for the claims in flight, and new claims wait for it', async () => {
  const l = ledger();
  const inFlight = held();
  const slow = l.claim([7], undefined, inFlight.promise);
  await expect(l.claim([1], new Lost('gone'))).rejects.toThrow('gone');
  const settlement = held();
  l.holdSettlements(settlement.promise);
  const next = l.claim([2]);
  const after = l.claim([3]);
  await settle();
  expect(l.settled).toEqual([]); // the slow claim is still in flight
  inFlight.release();
  expect(await slow).toEqual([7]);
  await settle();
  expect(l.settled).toEqual([[{ ...job(1), runnerId: 'r1' }]]);
  let done = 0;
  void next.then(() => done++);
  void after.then(() => done++);
  await settle();
  expect(done).toBe(0); // both wait for the settlement
  settlement.release();
  expect(await Promise.all([next, after])).toEqual([[2], [3]]);
  expect(l.settled).toHaveLength(1);
});

test('jobs another claim took while the failed one was in flight do not go in doubt', async () => {
  const l = ledger();
  const inFlight = held();
  const failing = l.claim([1, 2], new Lost('answer lost, though the rows were rolled back'), inFlight.promise);
  expect(await l.claim([2])).toEqual([2]); // took job 2 after the failed claim's rollback
  inFlight.release();
  await expect(failing).rejects.toThrow('answer lost');
  await l.claim([]);
  expect(l.settled).toEqual([[{ ...job(1), runnerId: 'r1' }]]);
});

test('a settlement that fails fails the claim and is tried again by the next', async () => {
  const l = ledger();
  await expect(l.claim([1], new Lost('gone'))).rejects.toThrow('gone');
  l.failNextSettlement();
  await expect(l.claim([2])).rejects.toThrow('still away');
  expect(l.doubts.size).toBe(1);
  expect(await l.claim([3])).toEqual([3]);
  expect(l.settled).toHaveLength(2);
  expect(l.doubts.size).toBe(0);
});

test("a claim in flight that returns a job in doubt takes it out (it is this runner's for certain)", async () => {
  const l = ledger();
  const inFlight = held();
  const slow = l.claim([2], undefined, inFlight.promise);
  // The failed claim's answer comes first; the rows it had were rolled back and the slow claim took one.
  await expect(l.claim([1, 2], new Lost('gone'))).rejects.toThrow('gone');
  expect(l.doubts.size).toBe(2);
  inFlight.release();
  expect(await slow).toEqual([2]);
  expect(l.doubts.size).toBe(1);
  await l.claim([]);
  expect(l.settled).toEqual([[{ ...job(1), runnerId: 'r1' }]]);
});
