// Fair shares (SPEC §11, README "Fair shares between users"): JOB_USER_MAX_RUNNING counted across the
// fleet inside the claim, under the owner's lock; JOB_USER_MAX_PENDING inside the enqueue.
import { QuotaExceededError } from '../../models/enqueue';
import { Queue } from '../../models/queue';
import { addJob, jobRow, makeRunning, useQueueDatabase } from './harness';
import { sqlOf } from '../helpers/database';

const t = useQueueDatabase('quota');
const SUCCESS = { status: 'success', exitCode: 0, signal: null, error: null } as const;

function capped(userMaxRunning: number, userMaxPending = 0, db = t.db): Queue {
  return new Queue(db, { userMaxRunning, userMaxPending });
}

async function addJobsOf(owner: string | null, n: number): Promise<number[]> {
  const ids = [];
  for (let i = 0; i < n; i++) ids.push(await addJob(t.db, { createdBy: owner }));
  return ids;
}

describe('JOB_USER_MAX_RUNNING', () => {
  test('a claim skips an owner at the cap and takes the jobs behind theirs', async () => {
    const bobs = await addJobsOf('bob', 3);
    const [alices] = await addJobsOf('alice', 1);
    const [nobodys] = await addJobsOf(null, 1);
    const queue = capped(1);

    expect((await queue.claimDueJobs('r1', 10)).map((j) => j.id)).toEqual([bobs[0], alices, nobodys]);
    expect(await queue.claimDueJobs('r1', 10)).toEqual([]);
    expect(await queue.waitingReason(bobs[1])).toBe('quota');
    // Without a cap the same job just waits for a slot.
    expect(await t.queue.waitingReason(bobs[1])).toBe('slot');

    expect(await queue.finishJob({ jobId: bobs[0], runnerId: 'r1', attempt: 1 }, SUCCESS, [])).toBe(true);
    expect((await queue.claimDueJobs('r2', 10)).map((j) => j.id)).toEqual([bobs[1]]);
  });

  test('a finish’s refill claims within the cap too', async () => {
    const bobs = await addJobsOf('bob', 4);
    const queue = capped(2);
    expect((await queue.claimDueJobs('r1', 10)).map((j) => j.id)).toEqual(bobs.slice(0, 2));
    const { claimed } = await queue.finishJobs(
      [{ fence: { jobId: bobs[0], runnerId: 'r1', attempt: 1 }, outcome: SUCCESS, rows: [] }],
      { runnerId: 'r1', limit: 5 },
    );
    expect(claimed.map((j) => j.id)).toEqual([bobs[2]]);
    expect((await jobRow(t.db, bobs[3])).status).toBe('pending');
  });

  test('jobs already running count, whoever runs them', async () => {
    const [running] = await addJobsOf('bob', 1);
    await makeRunning(t.db, running, 'elsewhere');
    const [next] = await addJobsOf('bob', 1);
    expect(await capped(1).claimDueJobs('r1', 10)).toEqual([]);
    expect(await capped(1).waitingReason(next)).toBe('quota');
    expect((await capped(2).claimDueJobs('r1', 10)).map((j) => j.id)).toEqual([next]);
  });

  test('claimers racing through separate handles never start more than the cap for one owner', async () => {
    await addJobsOf('bob', 30);
    const [alice] = await addJobsOf('alice', 1);
    const handles = [t.db, t.secondHandle(), t.secondHandle()];
    const queues = handles.map((db) => capped(3, 0, db));
    const claims = await Promise.all(
      Array.from({ length: 12 }, (_, i) => queues[i % 3].claimDueJobs(`runner-${i % 3}`, 2)),
    );
    const claimed = claims.flat();
    expect(claimed.filter((j) => j.createdBy === 'bob').length).toBeLessThanOrEqual(3);
    const [{ n }] = await sqlOf(t.db).query<{ n: number }>(
      "SELECT COUNT(*) AS n FROM Jobs WHERE createdBy = 'bob' AND status = 'running'",
      { type: 'SELECT' as never },
    );
    expect(Number(n)).toBe(3);
    // Alice's job behind bob's thirty is taken by the next claim at the latest: claims racing with
    // the ones that filled bob's places may each have picked bob's rows and dropped them at the cap.
    if ((await jobRow(t.db, alice)).status === 'pending') await queues[0].claimDueJobs('runner-0', 2);
    expect((await jobRow(t.db, alice)).status).toBe('running');
  });
});

describe('JOB_USER_MAX_PENDING', () => {
  const job = (createdBy: string | null, idempotencyKey: string | null = null) => ({
    task: 'echo',
    params: { n: 1 },
    command: 'echo 1',
    createdBy,
    idempotencyKey,
  });

  test('an enqueue beyond the cap is refused and writes nothing; others and ownerless jobs are not counted', async () => {
    const queue = capped(0, 2);
    await queue.enqueue(job('bob'));
    await queue.enqueue(job('bob', 'k1'));
    await expect(queue.enqueue(job('bob'))).rejects.toThrow(QuotaExceededError);
    await expect(queue.enqueueMany([job('carol'), job('carol'), job('carol')])).rejects.toThrow(/JOB_USER_MAX_PENDING/);
    await queue.enqueue(job('alice'));
    await queue.enqueue(job(null));
    await queue.enqueue(job(null));
    await queue.enqueue(job(null));
    const [{ n }] = await sqlOf(t.db).query<{ n: number }>(
      "SELECT COUNT(*) AS n FROM Jobs WHERE createdBy = 'bob' OR createdBy = 'carol'",
      { type: 'SELECT' as never },
    );
    expect(Number(n)).toBe(2);
  });

  test('a replayed idempotency key at the cap answers with its job, and running jobs do not count', async () => {
    const queue = capped(0, 1);
    const first = await queue.enqueue(job('bob', 'same'));
    expect(await queue.enqueue(job('bob', 'same'))).toEqual({ ...first, replayed: true });
    await makeRunning(t.db, first.id, 'r1');
    await queue.enqueue(job('bob'));
    await expect(queue.enqueue(job('bob'))).rejects.toThrow(QuotaExceededError);
  });

  test('racing enqueues through separate handles stop exactly at the cap', async () => {
    const queues = [t.db, t.secondHandle(), t.secondHandle()].map((db) => capped(0, 5, db));
    const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => queues[i % 3].enqueue(job('bob'))));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(5);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(QuotaExceededError);
  });
});
