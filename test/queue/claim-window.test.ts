// Spread claims (QueueOptions.claimWindow): on a multi-primary cluster a claim starts at a random one
// of the first CLAIM_WINDOW due jobs of the top priority, so claimers on different nodes seldom take
// the same rows; priority order and group order hold all the same, and no job is claimed twice.
import { QueryTypes } from 'sequelize';
import type { NewJob } from '../../models/enqueue';
import { CLAIM_WINDOW, NO_QUOTAS, Queue, type ClaimedJob, type Outcome } from '../../models/queue';
import { addJob, dialect, setJob, useQueueDatabase } from './harness';

const t = useQueueDatabase('claim_window');

const SUCCESS: Outcome = { status: 'success', exitCode: 0, signal: null, error: null };
const ids = (jobs: { id: number }[]) => jobs.map((j) => j.id);
const spread = (db = t.db) => new Queue(db, NO_QUOTAS, { claimWindow: 'on' });

async function addJobs(n: number, priority = 0): Promise<number[]> {
  const added = [];
  for (let i = 0; i < n; i++) added.push(await addJob(t.db, { priority }));
  return added;
}

async function finish(queue: Queue, runnerId: string, jobs: ClaimedJob[]): Promise<void> {
  if (jobs.length === 0) return;
  await queue.finishJobs(
    jobs.map((j) => ({ fence: { jobId: j.id, runnerId, attempt: j.attempt }, outcome: SUCCESS, rows: [] })),
  );
}

test('on a server that is not a multi-primary cluster, the default claims from the head, in order', async () => {
  const added = await addJobs(10);
  const claimed: number[] = [];
  for (let i = 0; i < 10; i++) claimed.push(...ids(await t.queue.claimDueJobs('r1', 1)));
  expect(claimed).toEqual(added);
  if (dialect === 'mysql') {
    const select = (sql: string) => t.db.sequelize.query<Record<string, unknown>>(sql, { type: QueryTypes.SELECT });
    expect(await t.db.driver.multiPrimary!(select)).toBe(false);
  }
});

test('spread claims start inside the window of due jobs, not always at the head', async () => {
  const added = await addJobs(CLAIM_WINDOW + 20);
  const window = new Set(added.slice(0, CLAIM_WINDOW));
  const starts: number[] = [];
  for (let i = 0; i < 20; i++) {
    const queue = spread();
    const [job] = await queue.claimDueJobs(`r${i}`, 1);
    starts.push(job.id);
    // Put it back: every claim sees the same window.
    await setJob(t.db, job.id, { status: 'pending', runnerId: null, startedAt: null, heartbeatAt: null });
  }
  for (const id of starts) expect(window.has(id)).toBe(true);
  // 20 draws from 64: all at the head has a chance of 64^-19.
  expect(new Set(starts).size).toBeGreaterThan(1);
});

test('a spread claim never passes a job of higher priority, and tops up from the head when the window is short', async () => {
  const low = await addJobs(30, 0);
  const high = await addJobs(3, 5);
  const queue = spread();
  const claimed = await queue.claimDueJobs('r1', 5);
  // The three of priority 5, then the oldest of priority 0.
  expect(new Set(ids(claimed))).toEqual(new Set([...high, ...low.slice(0, 2)]));
  const again = await queue.claimDueJobs('r1', 40);
  expect(new Set(ids(again))).toEqual(new Set(low.slice(2)));
});

test('spread claims keep group order: a group’s jobs run one at a time, in id order', async () => {
  const grouped = (key: string): NewJob => ({
    task: 'echo',
    params: { key },
    command: 'echo',
    createdBy: 'alice',
    priority: 0,
    group: { key, blockOnFailure: false },
  });
  const queue = spread();
  const a = ids(await queue.enqueueMany([grouped('a'), grouped('a'), grouped('a'), grouped('a')]));
  await addJobs(20);
  const b = ids(await queue.enqueueMany([grouped('b'), grouped('b'), grouped('b')]));
  const order: number[] = [];
  for (;;) {
    const jobs = await queue.claimDueJobs('r1', 3);
    if (jobs.length === 0) break;
    // Never two jobs of one group at once.
    const keys = jobs.flatMap((j) => (j.groupKey ? [j.groupKey] : []));
    expect(new Set(keys).size).toBe(keys.length);
    order.push(...ids(jobs));
    await finish(queue, 'r1', jobs);
  }
  expect(order.filter((id) => a.includes(id))).toEqual(a);
  expect(order.filter((id) => b.includes(id))).toEqual(b);
  expect(order).toHaveLength(27);
});

test('spread claimers side by side never take the same job', async () => {
  const added = await addJobs(150);
  const claimers = ['r1', 'r2', 'r3'].map((runnerId) => ({
    runnerId,
    queue: spread(t.secondHandle({ poolMax: 2 })),
  }));
  const taken: number[] = [];
  await Promise.all(
    claimers.map(async ({ runnerId, queue }) => {
      for (;;) {
        const jobs = await queue.claimDueJobs(runnerId, 4);
        if (jobs.length === 0) return;
        taken.push(...ids(jobs));
        await finish(queue, runnerId, jobs);
      }
    }),
  );
  expect(taken).toHaveLength(added.length);
  expect(new Set(taken)).toEqual(new Set(added));
});
