// Runners side by side on one queue: a claim skips rows another transaction holds, no job is claimed
// twice, and a runner's writes on its own jobs never wait for rows another runner holds.
import { Queue, type ClaimedJob } from '../../models/queue';
import {
  addJob,
  holdJobRows,
  impatientQueue,
  jobRow,
  makeRunning,
  withRowLocks,
  outputRows,
  storedRows,
  useQueueDatabase,
} from './harness';

const t = useQueueDatabase('concurrency');

async function addJobs(n: number): Promise<number[]> {
  const ids = [];
  for (let i = 0; i < n; i++) ids.push(await addJob(t.db));
  return ids;
}

withRowLocks(
  'a claim skips the rows another transaction holds FOR UPDATE and takes the next ones at once',
  async () => {
    const ids = await addJobs(6);
    const claimer = await impatientQueue(t);

    const held = await holdJobRows(t, ids.slice(0, 2));
    try {
      expect((await claimer.claimDueJobs('runner-b', 3)).map((j) => j.id)).toEqual(ids.slice(2, 5));
      expect((await claimer.claimDueJobs('runner-b', 10)).map((j) => j.id)).toEqual(ids.slice(5));
      expect(await claimer.claimDueJobs('runner-b', 10)).toEqual([]);
    } finally {
      await held.rollback();
    }

    // Released: the rows that were held are still pending, and the next claim takes them.
    for (const id of ids.slice(0, 2))
      expect(await jobRow(t.db, id)).toMatchObject({ status: 'pending', runnerId: null });
    expect((await t.queue.claimDueJobs('runner-a', 10)).map((j) => j.id)).toEqual(ids.slice(0, 2));
  },
);

withRowLocks('a runner’s writes on its own jobs never wait for the rows another runner holds', async () => {
  const [theirs1, theirs2, mine1, mine2, mine3, pending] = await addJobs(6);
  for (const id of [theirs1, theirs2]) await makeRunning(t.db, id, 'runner-a');
  for (const id of [mine1, mine2, mine3]) await makeRunning(t.db, id, 'runner-b');
  const b = await impatientQueue(t);

  // Runner A mid-transaction on its two jobs (a finish, say).
  const held = await holdJobRows(t, [theirs1, theirs2]);
  try {
    expect(await b.appendOutput({ jobId: mine1, runnerId: 'runner-b', attempt: 1 }, outputRows(1, ['line']))).toBe(
      true,
    );
    expect(await b.renewLeases('runner-b', [mine1, mine2, mine3])).toEqual({ lost: [], cancelRequested: [] });
    const success = { status: 'success', exitCode: 0, signal: null, error: null } as const;
    expect(await b.finishJob({ jobId: mine2, runnerId: 'runner-b', attempt: 1 }, success, [])).toBe(true);
    const { finished, claimed } = await b.finishJobs(
      [{ fence: { jobId: mine3, runnerId: 'runner-b', attempt: 1 }, outcome: success, rows: [] }],
      { runnerId: 'runner-b', limit: 1 },
    );
    expect(finished).toEqual([true]);
    expect(claimed.map((j) => j.id)).toEqual([pending]);
  } finally {
    await held.rollback();
  }

  expect((await storedRows(t.db, mine1)).map((r) => r.output)).toEqual(['line']);
  expect((await jobRow(t.db, mine2)).status).toBe('success');
  for (const id of [theirs1, theirs2])
    expect(await jobRow(t.db, id)).toMatchObject({ status: 'running', runnerId: 'runner-a' });
});

test('two claimers racing through two handles never take the same job', async () => {
  const JOBS = 60;
  const ids = await addJobs(JOBS);
  const queues = [t.queue, new Queue(t.secondHandle())];

  const results = await Promise.all(
    Array.from({ length: 24 }, (_, i) =>
      queues[i % 2].claimDueJobs(`runner-${i % 2}`, 3).then((jobs) => ({ runnerId: `runner-${i % 2}`, jobs })),
    ),
  );

  const taken = results.flatMap((r) => r.jobs.map((j: ClaimedJob) => j.id));
  expect(taken.length).toBeGreaterThan(0);
  expect(new Set(taken).size).toBe(taken.length);
  // Each job is owned by the claimer that got it, and every job not taken is still pending.
  for (const { runnerId, jobs } of results) {
    for (const job of jobs) expect(await jobRow(t.db, job.id)).toMatchObject({ status: 'running', runnerId });
  }
  const left = ids.filter((id) => !taken.includes(id));
  for (const id of left) expect(await jobRow(t.db, id)).toMatchObject({ status: 'pending', runnerId: null });
  // A claim may come back short while the other holds the last rows; a last claim takes exactly what is left.
  expect((await t.queue.claimDueJobs('runner-z', JOBS)).map((j) => j.id)).toEqual(left);
});
