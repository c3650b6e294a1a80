// Enqueues outside a caller's transaction are coalesced (models/coalescer.ts): the calls that
// arrive while one enqueue transaction is in flight go together in the next, yet each call keeps its
// own answer — its id in arrival order, its own quota refusal, its own idempotency conflict or replay.
import { IdempotencyConflictError, QuotaExceededError, type NewJob } from '../../models/enqueue';
import { Queue } from '../../models/queue';
import { useQueueDatabase } from './harness';

const t = useQueueDatabase('enqueue_batch');

function job(createdBy: string | null, params: Record<string, unknown> = {}, idempotencyKey?: string): NewJob {
  // Typed loosely on purpose: one test passes a value JSON cannot hold.
  const stored = params as NewJob['params'];
  return { task: 'greet', params: stored, command: 'echo', createdBy, ...(idempotencyKey ? { idempotencyKey } : {}) };
}

/** Counts the statements matching `pattern` this database handle runs while `work` does. */
async function statementsDuring<T>(pattern: RegExp, work: () => Promise<T>): Promise<{ result: T; count: number }> {
  let count = 0;
  const hook = (_options: unknown, query: { sql?: string }) => {
    if (pattern.test(query.sql ?? '')) count++;
  };
  t.db.sequelize.addHook('afterQuery', 'count-statements', hook as never);
  try {
    return { result: await work(), count };
  } finally {
    t.db.sequelize.removeHook('afterQuery', 'count-statements');
  }
}

/** Counts the multi-row INSERTs into Jobs this database handle runs while `work` does. */
async function insertsDuring<T>(work: () => Promise<T>): Promise<{ result: T; inserts: number }> {
  const { result, count } = await statementsDuring(/^\s*INSERT INTO\s+["`]?Jobs["`]?\s/i, work);
  return { result, inserts: count };
}

test('calls made while one enqueue is in flight go together: ids in call order, one INSERT for the lot', async () => {
  const queue = new Queue(t.db);
  const { result, inserts } = await insertsDuring(() =>
    Promise.all(Array.from({ length: 30 }, (_, i) => queue.enqueue(job('bob', { n: i })))),
  );
  // The first call goes at once, alone; the other 29 arrive while it is in flight and go next, together.
  expect(inserts).toBe(2);
  const ids = result.map((r) => r.id);
  expect(ids).toEqual([...ids].sort((a, b) => a - b));
  expect(new Set(ids).size).toBe(30);
  for (const [i, r] of result.entries()) {
    expect(r).toEqual({ id: r.id, status: 'pending', replayed: false });
    expect((await t.db.models.Job.findByPk(r.id))?.toJSON()).toMatchObject({ createdBy: 'bob', params: { n: i } });
  }
});

test('at the pending cap inside a batch: the owner’s first calls are taken, the rest refused, others untouched', async () => {
  const queue = new Queue(t.db, { userMaxRunning: 0, userMaxPending: 3 });
  const owners = ['bob', 'bob', 'alice', 'bob', 'bob', 'bob', 'alice', null];
  const results = await Promise.allSettled([
    queue.enqueue(job('carol')),
    ...owners.map((owner, i) => queue.enqueue(job(owner, { i }))),
  ]);
  const [, ...batch] = results;
  const outcome = batch.map((r) => (r.status === 'fulfilled' ? 'ok' : r.reason.constructor.name));
  expect(outcome).toEqual(['ok', 'ok', 'ok', 'ok', 'QuotaExceededError', 'QuotaExceededError', 'ok', 'ok']);
  for (const r of batch) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(QuotaExceededError);
  const rows = await t.db.models.Job.findAll({ where: { createdBy: 'bob' } });
  expect(rows.map((row) => (row.params as { i: number }).i).sort()).toEqual([0, 1, 3]);
});

test('an idempotency conflict inside a batch is its call’s alone; a repeated key is a replay of the first', async () => {
  const queue = new Queue(t.db);
  const results = await Promise.allSettled([
    queue.enqueue(job('bob', { first: true })),
    queue.enqueue(job('bob', { a: 1 }, 'key-1')),
    queue.enqueue(job('bob', { a: 2 }, 'key-1')),
    queue.enqueue(job('bob', { b: 1 }, 'key-2')),
    queue.enqueue(job('bob', { b: 1 }, 'key-2')),
    queue.enqueue(job('bob', { c: 1 })),
  ]);
  const [, keyed, conflicting, fresh, replay, plain] = results;
  expect(conflicting.status).toBe('rejected');
  if (conflicting.status === 'rejected') expect(conflicting.reason).toBeInstanceOf(IdempotencyConflictError);
  for (const r of [keyed, fresh, replay, plain]) expect(r.status).toBe('fulfilled');
  if (fresh.status !== 'fulfilled' || replay.status !== 'fulfilled') return;
  expect(fresh.value.replayed).toBe(false);
  expect(replay.value).toEqual({ id: fresh.value.id, status: 'pending', replayed: true });
  expect(await t.db.models.Job.count()).toBe(4);
});

test('any other failure is every waiting call’s, and the next calls go through again', async () => {
  const queue = new Queue(t.db);
  const first = queue.enqueue(job('bob'));
  // Queued behind the first: the batch they form fails (params that cannot be stored as JSON).
  const failing = [queue.enqueue(job('bob', { n: 1n })), queue.enqueue(job('alice'))];
  await first;
  for (const r of await Promise.allSettled(failing)) expect(r.status).toBe('rejected');
  expect((await queue.enqueue(job('carol'))).status).toBe('pending');
  expect(await t.db.models.Job.count()).toBe(2);
});

test('a batch of many owners locks them in one statement and counts them in one, each against its own backlog', async () => {
  const queue = new Queue(t.db, { userMaxRunning: 0, userMaxPending: 2 });
  const owners = Array.from({ length: 20 }, (_, i) => `owner${i}`);
  const round = (extra: (string | null)[] = []) =>
    Promise.allSettled([queue.enqueue(job('carol')), ...[...owners, ...extra].map((o) => queue.enqueue(job(o)))]);
  // The first round makes their JobOwners rows; in the second, the 20 owners (one job each) cost two statements.
  expect((await round()).every((r) => r.status === 'fulfilled')).toBe(true);
  const locks = await statementsDuring(/FROM\s+["`]?JobOwners["`]?/i, () =>
    statementsDuring(/\bcounted0\b/, () => round()),
  );
  // The lone first call and the batch: one lock and one count each.
  expect([locks.count, locks.result.count]).toEqual([2, 2]);
  expect(locks.result.result.every((r) => r.status === 'fulfilled')).toBe(true);
  // A third round: carol and each owner are at their cap of 2 now, and owner7 asks once more; null has no cap.
  const third = await round(['owner7', null]);
  const refused = third.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason);
  expect(refused).toHaveLength(1 + owners.length + 1);
  for (const reason of refused) expect(reason).toBeInstanceOf(QuotaExceededError);
  expect(third.at(-1)!.status).toBe('fulfilled');
  expect(await t.db.models.Job.count({ where: { createdBy: 'owner7' } })).toBe(2);
});
