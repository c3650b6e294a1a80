// Queue.claimDueJobs with serial groups: only a group's head is ever claimable; the jobs queued behind
// it are not, whatever their priority, until the head settles and the group passes to the next one.
import { QueryTypes } from 'sequelize';
import type { NewJob } from '../../models/enqueue';
import type { Outcome } from '../../models/queue';
import { addJob, jobRow, withRowLocks, useQueueDatabase } from './harness';
import { sqlOf } from '../helpers/database';

const t = useQueueDatabase('claim_groups');

const SUCCESS: Outcome = { status: 'success', exitCode: 0, signal: null, error: null };

function grouped(key: string, priority = 0): NewJob {
  return {
    task: 'echo',
    params: { key, priority },
    command: 'echo',
    createdBy: 'alice',
    priority,
    group: { key, blockOnFailure: false },
  };
}

const ids = (jobs: { id: number }[]) => jobs.map((j) => j.id);

test('jobs queued behind a group head are never claimed, whatever their priority: a claim returns only heads', async () => {
  const [a1, a2, a3, b1, b2] = ids(
    await t.queue.enqueueMany([grouped('a', -5), grouped('a', 100), grouped('a', 100), grouped('b'), grouped('b', 50)]),
  );
  const loose = await addJob(t.db, { priority: 10 });

  expect(ids(await t.queue.claimDueJobs('r1', 10))).toEqual([loose, b1, a1]);
  expect(await t.queue.claimDueJobs('r1', 10)).toEqual([]);
  for (const id of [a2, a3, b2]) expect(await jobRow(t.db, id)).toMatchObject({ status: 'pending', runnerId: null });
});

test("after the head finishes, its successor (and only it) is claimable; a finish batch's refill takes it at once", async () => {
  const [a1, a2, a3] = ids(await t.queue.enqueueMany([grouped('a'), grouped('a'), grouped('a')]));
  expect(ids(await t.queue.claimDueJobs('r1', 10))).toEqual([a1]);

  expect(await t.queue.finishJob({ jobId: a1, runnerId: 'r1', attempt: 1 }, SUCCESS, [])).toBe(true);
  expect(ids(await t.queue.claimDueJobs('r2', 10))).toEqual([a2]);
  expect(await t.queue.claimDueJobs('r2', 10)).toEqual([]);

  const { finished, claimed } = await t.queue.finishJobs(
    [{ fence: { jobId: a2, runnerId: 'r2', attempt: 1 }, outcome: SUCCESS, rows: [] }],
    {
      runnerId: 'r2',
      limit: 4,
    },
  );
  expect(finished).toEqual([true]);
  expect(ids(claimed)).toEqual([a3]);
  expect(await jobRow(t.db, a3)).toMatchObject({ status: 'running', runnerId: 'r2' });
});

test('a job enqueued into an idle group is claimable at once; one enqueued behind a held group is not', async () => {
  const { id: first } = await t.queue.enqueue(grouped('a'));
  expect(ids(await t.queue.claimDueJobs('r1', 10))).toEqual([first]);

  const { id: second } = await t.queue.enqueue(grouped('a', 100));
  expect(await t.queue.claimDueJobs('r1', 10)).toEqual([]);

  await t.queue.finishJob({ jobId: first, runnerId: 'r1', attempt: 1 }, SUCCESS, []);
  expect(ids(await t.queue.claimDueJobs('r1', 10))).toEqual([second]);
  await t.queue.finishJob({ jobId: second, runnerId: 'r1', attempt: 1 }, SUCCESS, []);

  const { id: third } = await t.queue.enqueue(grouped('a'));
  expect(ids(await t.queue.claimDueJobs('r1', 10))).toEqual([third]);
});

withRowLocks('a claim locks none of the rows queued behind a busy group, only the ready rows it takes', async () => {
  const [head, ...queued] = ids(await t.queue.enqueueMany(Array.from({ length: 40 }, () => grouped('busy', 100))));
  const stored = await sqlOf(t.db).query<{ id: number }>("SELECT id FROM Jobs WHERE groupKey = 'busy' ORDER BY id", {
    type: QueryTypes.SELECT,
  });
  expect(stored.map((r) => Number(r.id))).toEqual([head, ...queued]);
  expect(ids(await t.queue.claimDueJobs('r1', 1))).toEqual([head]);
  const ready = [await addJob(t.db), await addJob(t.db)];

  // Another runner mid-claim: its SELECT has run, its transaction is still open.
  const claimer = t.secondHandle();
  const claim = await claimer.sequelize.transaction();
  const other = t.secondHandle({ poolMax: 1 });
  try {
    const taken = await sqlOf(claimer).query<{ id: number }>(t.db.driver.statements.claimSelect(10), {
      type: QueryTypes.SELECT,
      transaction: claim,
    });
    expect(taken.map((r) => Number(r.id))).toEqual(ready);
    const lockNow = (id: number) =>
      sqlOf(other).query('SELECT id FROM Jobs WHERE id = :id FOR UPDATE NOWAIT', {
        type: QueryTypes.SELECT,
        replacements: { id },
      });
    for (const id of queued) await lockNow(id);
    for (const id of ready) await expect(lockNow(id)).rejects.toThrow();
  } finally {
    await claim.rollback();
  }
});

withRowLocks('the claim is answered in index order (jobs_claim_ready), without a filesort', async () => {
  await t.queue.enqueueMany(Array.from({ length: 50 }, (_, i) => grouped(`g${i % 5}`, i % 7)));
  if (t.db.dialect === 'postgres') {
    // Rows come off the index in claim order and LockRows locks only those the LIMIT takes: no Sort node.
    const lines = await t.db.sequelize.query<{ 'QUERY PLAN': string }>(
      `EXPLAIN ${t.db.driver.statements.claimSelect(4)}`,
      { type: QueryTypes.SELECT },
    );
    const text = lines.map((row) => row['QUERY PLAN']).join('\n');
    expect(text).toMatch(/Index Scan using jobs_claim_ready on "Jobs"/);
    expect(text).toMatch(/LockRows/);
    expect(text).not.toMatch(/\bSort\b/);
    return;
  }
  const plan = await sqlOf(t.db).query<{ key: string | null; Extra: string | null }>(
    `EXPLAIN ${t.db.driver.statements.claimSelect(4)}`,
    { type: QueryTypes.SELECT },
  );
  const jobs = plan.find((row) => row.key === 'jobs_claim_ready');
  expect(jobs).toBeDefined();
  expect(plan.map((row) => row.Extra ?? '').join(' ')).not.toMatch(/filesort/i);
});
