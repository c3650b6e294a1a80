// Retries in the queue (README, "Retries"): a failed attempt put back to pending at its next attempt,
// fenced by runner and attempt; a lost runner's job retried by the reaper; cancel between attempts;
// a person's retry of a finished job, in its place in its group.
import { QueryTypes } from 'sequelize';
import type { NewJob } from '../../models/enqueue';
import type { ExpiredJob, Fence, Outcome, RetryCandidate } from '../../models/queue';
import {
  addJob,
  dbNow,
  makeRunning,
  outputRows,
  quote,
  setJob,
  setJobTime,
  storedRows,
  toMs,
  useQueueDatabase,
} from './harness';
import { sqlOf } from '../helpers/database';

const t = useQueueDatabase('retry');

const LEASE_MS = 30_000;
const SUCCESS: Outcome = { status: 'success', exitCode: 0, signal: null, error: null };
const EXIT_75: Outcome = { status: 'failure', exitCode: 75, signal: null, error: 'exit_code' };
const NOTE_1 = 'attempt 1 of 3 failed (exit code 75); next attempt in 1.5 s';

/** A failure the template retries, due again in `delayMs`. */
function retried(delayMs: number, note = NOTE_1, outcome: Outcome = EXIT_75): Outcome {
  return { ...outcome, retry: { delayMs, note } };
}

const fence = (jobId: number, runnerId: string, attempt: number): Fence => ({ jobId, runnerId, attempt });

/** What retries change on a job's row, datetimes in epoch milliseconds. */
interface RetryRow {
  status: string;
  attempt: number;
  maxAttempts: number;
  lastError: string | null;
  error: string | null;
  exitCode: number | null;
  signal: string | null;
  runnerId: string | null;
  command: string | null;
  groupQueued: number;
  cancelledBy: string | null;
  runAt: number | null;
  updatedAt: number | null;
  heartbeatAt: number | null;
  startedAt: number | null;
  finishedAt: number | null;
  cancelRequestedAt: number | null;
}

const RETRY_COLUMNS = ['status', 'attempt', 'maxAttempts', 'lastError', 'error', 'exitCode', 'signal', 'runnerId'];
const MORE_COLUMNS = ['command', 'groupQueued', 'cancelledBy'];
const TIMES = ['runAt', 'updatedAt', 'heartbeatAt', 'startedAt', 'finishedAt', 'cancelRequestedAt'] as const;

async function retryRow(id: number): Promise<RetryRow> {
  const columns = [...RETRY_COLUMNS, ...MORE_COLUMNS, ...TIMES].map((c) => quote(t.db, c)).join(', ');
  const [row] = await sqlOf(t.db).query<Record<string, unknown>>(`SELECT ${columns} FROM Jobs WHERE id = :id`, {
    type: QueryTypes.SELECT,
    replacements: { id },
  });
  if (!row) throw new Error(`job ${id} not found`);
  const num = (v: unknown) => (v === null ? null : Number(v));
  return {
    ...(row as unknown as RetryRow),
    attempt: Number(row.attempt),
    maxAttempts: Number(row.maxAttempts),
    exitCode: num(row.exitCode),
    groupQueued: Number(row.groupQueued),
    ...Object.fromEntries(TIMES.map((c) => [c, toMs(row[c])])),
  };
}

/** Who holds a group: its head (claimable or running) and the failed job that blocks it. */
async function groupOf(key: string): Promise<{ head: number | null; blockedBy: number | null }> {
  const [row] = await sqlOf(t.db).query<{ headJobId: unknown; blockedByJobId: unknown }>(
    `SELECT headJobId, blockedByJobId FROM JobGroups WHERE ${quote(t.db, 'key')} = :key`,
    { type: QueryTypes.SELECT, replacements: { key } },
  );
  const num = (v: unknown) => (v === null ? null : Number(v));
  return { head: num(row.headJobId), blockedBy: num(row.blockedByJobId) };
}

/** A pending job of 3 attempts (plain SQL, as another program would insert it). */
async function retryableJob(extra: Parameters<typeof addJob>[1] = {}): Promise<number> {
  const id = await addJob(t.db, extra);
  await setJob(t.db, id, { maxAttempts: 3 });
  return id;
}

/** A job running under `runnerId` at `attempt` of 3. */
async function runningJob(runnerId = 'r1', attempt = 1): Promise<number> {
  const id = await retryableJob();
  await setJob(t.db, id, { attempt });
  await makeRunning(t.db, id, runnerId);
  return id;
}

function grouped(key: string, blockOnFailure = false): NewJob {
  return {
    task: 'echo',
    params: { key },
    command: 'echo',
    createdBy: 'alice',
    group: { key, blockOnFailure },
    maxAttempts: 3,
  };
}

const ids = (jobs: { id: number }[]) => jobs.map((j) => j.id);
const texts = (rows: { seq: number; stream: string; output: string }[]) => rows.map((r) => [r.seq, r.stream, r.output]);

/** Claims (for `runnerId`) exactly the one job expected next, and returns its claim. */
async function claimOnly(runnerId: string, id: number) {
  const claimed = await t.queue.claimDueJobs(runnerId, 10);
  expect(ids(claimed)).toEqual([id]);
  return claimed[0];
}

describe('finishJobs with outcome.retry', () => {
  test('the job goes back to pending at attempt + 1, due delayMs after the finish on the database clock', async () => {
    const id = await runningJob();
    const before = await dbNow(t.db);

    expect(await t.queue.finishJob(fence(id, 'r1', 1), retried(1500), [])).toBe(true);

    const after = await dbNow(t.db);
    const row = await retryRow(id);
    expect(row).toMatchObject({
      status: 'pending',
      attempt: 2,
      maxAttempts: 3,
      lastError: 'exit_code',
      // The attempt's outcome is in lastError and the note; the job itself has not ended.
      error: null,
      exitCode: null,
      signal: null,
      runnerId: null,
      heartbeatAt: null,
      finishedAt: null,
      cancelRequestedAt: null,
    });
    // One statement sets both on one clock: exactly the delay, whatever the machine's load.
    expect(row.runAt! - row.updatedAt!).toBe(1500);
    expect(row.updatedAt).toBeGreaterThanOrEqual(before);
    expect(row.updatedAt).toBeLessThanOrEqual(after);
    // Not due yet; once due, claimed at attempt 2 with its output numbered on.
    expect(await t.queue.claimDueJobs('r1', 10)).toEqual([]);
    await setJobTime(t.db, id, 'runAt', -1);
    expect(await claimOnly('r2', id)).toMatchObject({ id, attempt: 2, maxAttempts: 3, lastSeq: 1 });
    expect(await retryRow(id)).toMatchObject({ status: 'running', runnerId: 'r2', attempt: 2 });
  });

  test('the attempt’s last rows are stored first, then the note; earlier output stays, in order', async () => {
    const id = await runningJob();
    expect(await t.queue.appendOutput(fence(id, 'r1', 1), outputRows(1, ['working', 'still working']))).toBe(true);

    const closing = [
      ...outputRows(3, ['oops'], 'stderr'),
      ...outputRows(4, ['failed after 0.20 s (exit code 75)'], 'system'),
    ];
    expect(await t.queue.finishJob(fence(id, 'r1', 1), retried(0), closing)).toBe(true);

    expect(texts(await storedRows(t.db, id))).toEqual([
      [1, 'stdout', 'working'],
      [2, 'stdout', 'still working'],
      [3, 'stderr', 'oops'],
      [4, 'system', 'failed after 0.20 s (exit code 75)'],
      [5, 'system', NOTE_1],
    ]);
    // The next attempt's lines follow the note.
    expect(await claimOnly('r1', id)).toMatchObject({ attempt: 2, lastSeq: 5 });
  });

  test('outcome.command fills a job inserted without one, as a final finish does', async () => {
    const id = await retryableJob({ command: null });
    await makeRunning(t.db, id, 'r1');

    await t.queue.finishJob(fence(id, 'r1', 1), { ...retried(0), command: 'node flaky.js' }, []);

    expect(await retryRow(id)).toMatchObject({ status: 'pending', attempt: 2, command: 'node flaky.js' });
  });

  test('a grouped job keeps its group: not released, not blocked, and the next job of the group is not claimable', async () => {
    const [a1, a2] = ids(await t.queue.enqueueMany([grouped('g', true), grouped('g', true)]));
    await claimOnly('r1', a1);

    expect(await t.queue.finishJob(fence(a1, 'r1', 1), retried(60_000), [])).toBe(true);

    expect(await groupOf('g')).toEqual({ head: a1, blockedBy: null });
    expect(await retryRow(a1)).toMatchObject({ status: 'pending', attempt: 2, groupQueued: 0 });
    expect(await retryRow(a2)).toMatchObject({ status: 'pending', groupQueued: 1 });
    // a1 waits for its backoff, and a2 waits behind a1.
    expect(await t.queue.claimDueJobs('r1', 10)).toEqual([]);

    await setJobTime(t.db, a1, 'runAt', -1);
    await claimOnly('r1', a1);
    expect(await t.queue.finishJob(fence(a1, 'r1', 2), SUCCESS, [])).toBe(true);
    await claimOnly('r1', a2);
  });

  test('in a batch with a refill: the retried job is claimed again at once when due now, the others settle', async () => {
    const again = await runningJob();
    const done = await runningJob();

    const { finished, claimed } = await t.queue.finishJobs(
      [
        { fence: fence(again, 'r1', 1), outcome: retried(0), rows: outputRows(1, ['failed'], 'system') },
        { fence: fence(done, 'r1', 1), outcome: SUCCESS, rows: outputRows(1, ['succeeded'], 'system') },
      ],
      { runnerId: 'r1', limit: 2 },
    );

    expect(finished).toEqual([true, true]);
    expect(claimed).toEqual([expect.objectContaining({ id: again, attempt: 2, maxAttempts: 3, lastSeq: 2 })]);
    expect(await retryRow(again)).toMatchObject({ status: 'running', runnerId: 'r1', attempt: 2 });
    expect(await retryRow(done)).toMatchObject({ status: 'success', attempt: 1, lastError: null });
    expect(texts(await storedRows(t.db, again))).toEqual([
      [1, 'system', 'failed'],
      [2, 'system', NOTE_1],
    ]);
  });

  test('a cancel requested before the finish: no retry, the failure is final', async () => {
    const [a1, a2] = ids(await t.queue.enqueueMany([grouped('g'), grouped('g')]));
    await claimOnly('r1', a1);
    expect(await t.queue.cancelJob(a1, 'alice')).toEqual({ result: 'requested', status: 'running' });

    expect(await t.queue.finishJob(fence(a1, 'r1', 1), retried(0), outputRows(1, ['failed'], 'system'))).toBe(true);

    const row = await retryRow(a1);
    expect(row).toMatchObject({
      status: 'failure',
      attempt: 1,
      error: 'exit_code',
      exitCode: 75,
      lastError: 'exit_code',
      cancelledBy: 'alice',
    });
    expect(row.finishedAt).not.toBeNull();
    expect(texts(await storedRows(t.db, a1))).toEqual([[1, 'system', 'failed']]);
    // Settled: the group passes on.
    await claimOnly('r1', a2);
  });

  test('the last attempt (no outcome.retry) ends failure as before, with lastError', async () => {
    const id = await runningJob('r1', 3);

    expect(await t.queue.finishJob(fence(id, 'r1', 3), EXIT_75, [])).toBe(true);

    expect(await retryRow(id)).toMatchObject({
      status: 'failure',
      attempt: 3,
      error: 'exit_code',
      lastError: 'exit_code',
    });
  });
});

describe('the fence holds the attempt', () => {
  test('a stale fence at attempt 1, after the same runner re-claimed the job at attempt 2, writes nothing', async () => {
    const id = await runningJob('r1');
    await t.queue.appendOutput(fence(id, 'r1', 1), outputRows(1, ['attempt 1']));
    await t.queue.finishJob(fence(id, 'r1', 1), retried(0), []);
    await claimOnly('r1', id);
    const before = await retryRow(id);
    const rowsBefore = await storedRows(t.db, id);

    expect(await t.queue.appendOutput(fence(id, 'r1', 1), outputRows(3, ['stale line']))).toBe(false);
    expect(await t.queue.finishJob(fence(id, 'r1', 1), SUCCESS, outputRows(3, ['stale end'], 'system'))).toBe(false);
    const batch = await t.queue.finishJobs([
      { fence: fence(id, 'r1', 1), outcome: retried(0), rows: outputRows(3, ['stale retry'], 'system') },
    ]);
    expect(batch).toEqual({ finished: [false], claimed: [] });
    expect(await retryRow(id)).toEqual(before);
    expect(await storedRows(t.db, id)).toEqual(rowsBefore);

    // The attempt-2 fence holds.
    expect(await t.queue.appendOutput(fence(id, 'r1', 2), outputRows(3, ['attempt 2']))).toBe(true);
    expect(await t.queue.finishJob(fence(id, 'r1', 2), SUCCESS, outputRows(4, ['done'], 'system'))).toBe(true);
    expect(await retryRow(id)).toMatchObject({ status: 'success', attempt: 2, lastError: 'exit_code' });
    expect(texts(await storedRows(t.db, id))).toEqual([
      [1, 'stdout', 'attempt 1'],
      [2, 'system', NOTE_1],
      [3, 'stdout', 'attempt 2'],
      [4, 'system', 'done'],
    ]);
  });

  test('a fence at a later attempt than the job’s does not hold either', async () => {
    const id = await runningJob('r1', 1);
    expect(await t.queue.appendOutput(fence(id, 'r1', 2), outputRows(1, ['from the future']))).toBe(false);
    expect(await t.queue.finishJob(fence(id, 'r1', 2), SUCCESS, [])).toBe(false);
    expect(await retryRow(id)).toMatchObject({ status: 'running', attempt: 1 });
    expect(await storedRows(t.db, id)).toEqual([]);
  });
});

describe('reapExpiredLeases with a ReapRetry', () => {
  test('a delay: the lost job is pending again at attempt + 1, lastError runner_lost, with one system row', async () => {
    const id = await runningJob('r1');
    await t.queue.appendOutput(fence(id, 'r1', 1), outputRows(1, ['working']));
    await setJobTime(t.db, id, 'heartbeatAt', -LEASE_MS - 5000);
    const asked: ExpiredJob[] = [];
    const before = await dbNow(t.db);

    const reaped = await t.queue.reapExpiredLeases(LEASE_MS, 100, (job) => {
      asked.push(job);
      return { delayMs: 2500, note: 'attempt 1 of 3 failed (runner lost); next attempt in 2.5 s' };
    });

    const after = await dbNow(t.db);
    expect(reaped).toEqual([id]);
    expect(asked).toEqual([{ id, task: 'echo', attempt: 1, maxAttempts: 3 }]);
    const row = await retryRow(id);
    expect(row).toMatchObject({
      status: 'pending',
      attempt: 2,
      lastError: 'runner_lost',
      error: null,
      runnerId: null,
      heartbeatAt: null,
      finishedAt: null,
    });
    expect(row.runAt! - row.updatedAt!).toBe(2500);
    expect(row.updatedAt).toBeGreaterThanOrEqual(before);
    expect(row.updatedAt).toBeLessThanOrEqual(after);
    expect(texts(await storedRows(t.db, id))).toEqual([
      [1, 'stdout', 'working'],
      [
        2,
        'system',
        'runner r1 stopped renewing its lease for over 30 s; attempt 1 of 3 failed (runner lost); next attempt in 2.5 s',
      ],
    ]);
    // The lost runner's fence no longer holds, even if it comes back to claim the job itself.
    expect(await t.queue.appendOutput(fence(id, 'r1', 1), outputRows(3, ['late']))).toBe(false);
    await setJobTime(t.db, id, 'runAt', -1);
    await claimOnly('r1', id);
    expect(await t.queue.finishJob(fence(id, 'r1', 1), SUCCESS, [])).toBe(false);
    expect(await t.queue.finishJob(fence(id, 'r1', 2), SUCCESS, [])).toBe(true);
  });

  test('null: failure/runner_lost at the same attempt, as without a retry policy', async () => {
    const id = await runningJob('r1', 2);
    await setJobTime(t.db, id, 'heartbeatAt', -LEASE_MS - 5000);

    expect(await t.queue.reapExpiredLeases(LEASE_MS, 100, () => null)).toEqual([id]);

    const row = await retryRow(id);
    expect(row).toMatchObject({ status: 'failure', error: 'runner_lost', attempt: 2, lastError: 'runner_lost' });
    expect(row.finishedAt).not.toBeNull();
    const rows = await storedRows(t.db, id);
    expect(rows).toHaveLength(1);
    expect(rows[0].output).toMatch(
      /^runner r1 stopped renewing its lease for over 30 s; job marked failed \(runner_lost\)$/,
    );
  });

  test('a grouped job keeps its group through the reaper’s retry', async () => {
    const [a1, a2] = ids(await t.queue.enqueueMany([grouped('g'), grouped('g')]));
    await claimOnly('r1', a1);
    await setJobTime(t.db, a1, 'heartbeatAt', -LEASE_MS - 5000);

    await t.queue.reapExpiredLeases(LEASE_MS, 100, () => ({ delayMs: 0, note: 'again' }));

    expect(await groupOf('g')).toEqual({ head: a1, blockedBy: null });
    expect(await retryRow(a2)).toMatchObject({ status: 'pending', groupQueued: 1 });
    expect(await claimOnly('r2', a1)).toMatchObject({ attempt: 2 });
  });

  test('a job with a cancel request is not retried (the retry is not even asked for)', async () => {
    const id = await runningJob('r1');
    await t.queue.cancelJob(id, 'alice');
    await setJobTime(t.db, id, 'heartbeatAt', -LEASE_MS - 5000);
    const retryOf = jest.fn(() => ({ delayMs: 0, note: 'again' }));

    expect(await t.queue.reapExpiredLeases(LEASE_MS, 100, retryOf)).toEqual([id]);

    expect(retryOf).not.toHaveBeenCalled();
    expect(await retryRow(id)).toMatchObject({ status: 'failure', error: 'runner_lost', attempt: 1 });
  });

  test('a job renewed meanwhile is neither reaped nor retried', async () => {
    const id = await runningJob('r1');
    await setJobTime(t.db, id, 'heartbeatAt', -1000);

    expect(await t.queue.reapExpiredLeases(LEASE_MS, 100, () => ({ delayMs: 0, note: 'again' }))).toEqual([]);

    expect(await retryRow(id)).toMatchObject({ status: 'running', attempt: 1, runnerId: 'r1' });
  });
});

describe('cancelJob between attempts', () => {
  test('a job pending for its next attempt is cancelled at once, and its group passes on', async () => {
    const [a1, a2] = ids(await t.queue.enqueueMany([grouped('g'), grouped('g')]));
    await claimOnly('r1', a1);
    await t.queue.finishJob(fence(a1, 'r1', 1), retried(60_000), []);

    expect(await t.queue.cancelJob(a1, 'alice', { owner: 'alice' })).toEqual({
      result: 'cancelled',
      status: 'cancelled',
    });

    expect(await retryRow(a1)).toMatchObject({
      status: 'cancelled',
      error: 'cancelled',
      cancelledBy: 'alice',
      attempt: 2,
      lastError: 'exit_code',
    });
    const rows = await storedRows(t.db, a1);
    expect(rows.map((r) => r.output)).toEqual([NOTE_1, 'cancelled by alice before it started']);
    await claimOnly('r1', a2);
  });
});

describe('retryJob', () => {
  const allowAll = () => ({ blockOnFailure: false });

  /** A job that ran once under r1 and ended with `outcome`. */
  async function finishedJob(outcome: Outcome = EXIT_75, maxAttempts = 3): Promise<number> {
    const id = await addJob(t.db, { createdBy: 'alice' });
    await setJob(t.db, id, { maxAttempts });
    await makeRunning(t.db, id, 'r1');
    await t.queue.appendOutput(fence(id, 'r1', 1), outputRows(1, ['ran']));
    await t.queue.finishJob(fence(id, 'r1', 1), outcome, outputRows(2, ['ended'], 'system'));
    return id;
  }

  test('failure: pending again at attempt + 1, due now, lastError the old error, the outcome cleared', async () => {
    const id = await finishedJob({ status: 'failure', exitCode: null, signal: 'SIGKILL', error: 'signal' });
    const seen: RetryCandidate[] = [];
    const before = await dbNow(t.db);

    const result = await t.queue.retryJob(id, 'alice', { owner: 'alice' }, (job) => {
      seen.push(job);
      return { blockOnFailure: false };
    });

    const after = await dbNow(t.db);
    expect(result).toEqual({ result: 'retried', status: 'pending', attempt: 2 });
    expect(seen).toEqual([{ task: 'echo', params: { n: 1 }, groupKey: null }]);
    const row = await retryRow(id);
    expect(row).toMatchObject({
      status: 'pending',
      attempt: 2,
      maxAttempts: 3,
      lastError: 'signal',
      error: null,
      exitCode: null,
      signal: null,
      runnerId: null,
      heartbeatAt: null,
      startedAt: null,
      finishedAt: null,
      cancelRequestedAt: null,
      cancelledBy: null,
    });
    expect(row.runAt).toBe(row.updatedAt);
    expect(row.runAt).toBeGreaterThanOrEqual(before);
    expect(row.runAt).toBeLessThanOrEqual(after);
    expect(texts(await storedRows(t.db, id))).toEqual([
      [1, 'stdout', 'ran'],
      [2, 'system', 'ended'],
      [3, 'system', 'retried by alice: attempt 2'],
    ]);
    expect(await claimOnly('r2', id)).toMatchObject({ attempt: 2, maxAttempts: 3, lastSeq: 3 });
  });

  test('maxAttempts is raised to at least the new attempt (a job without retries, or with its retries spent)', async () => {
    const single = await finishedJob(EXIT_75, 1);
    const spent = await finishedJob(EXIT_75, 3);
    await setJob(t.db, spent, { attempt: 3 });

    expect(await t.queue.retryJob(single, 'alice', {}, allowAll)).toMatchObject({ attempt: 2 });
    expect(await t.queue.retryJob(spent, 'alice', {}, allowAll)).toMatchObject({ attempt: 4 });

    expect(await retryRow(single)).toMatchObject({ attempt: 2, maxAttempts: 2 });
    expect(await retryRow(spent)).toMatchObject({ attempt: 4, maxAttempts: 4 });
  });

  test('cancelled (pending or running when cancelled): pending again, the cancel cleared', async () => {
    const before = await addJob(t.db, { createdBy: 'alice' });
    await t.queue.cancelJob(before, 'alice');
    const during = await finishedJob({ status: 'cancelled', exitCode: null, signal: 'SIGTERM', error: 'cancelled' });

    for (const id of [before, during]) {
      expect(await t.queue.retryJob(id, 'bob', {}, allowAll)).toEqual({
        result: 'retried',
        status: 'pending',
        attempt: 2,
      });
      expect(await retryRow(id)).toMatchObject({
        status: 'pending',
        attempt: 2,
        // A cancel is not a failed attempt: no failure came before it.
        lastError: null,
        error: null,
        cancelledBy: null,
        cancelRequestedAt: null,
        finishedAt: null,
      });
    }
    expect(ids(await t.queue.claimDueJobs('r1', 10)).sort((a, b) => a - b)).toEqual([before, during]);
  });

  test.each(['pending', 'running', 'success'])('%s: not_retryable, untouched', async (status) => {
    const id = status === 'success' ? await finishedJob(SUCCESS) : await addJob(t.db, { createdBy: 'alice' });
    if (status === 'running') await makeRunning(t.db, id, 'r1');
    const before = await retryRow(id);
    const rowsBefore = await storedRows(t.db, id);
    const allowed = jest.fn(allowAll);

    expect(await t.queue.retryJob(id, 'alice', { owner: 'alice' }, allowed)).toEqual({
      result: 'not_retryable',
      status,
    });

    expect(allowed).not.toHaveBeenCalled();
    expect(await retryRow(id)).toEqual(before);
    expect(await storedRows(t.db, id)).toEqual(rowsBefore);
  });

  test('scoped by owner: another user gets not_found and changes nothing; the owner and an admin may', async () => {
    const id = await finishedJob();
    const before = await retryRow(id);

    expect(await t.queue.retryJob(id, 'bob', { owner: 'bob' }, allowAll)).toEqual({ result: 'not_found' });
    expect(await t.queue.retryJob(id + 1000, 'alice', {}, allowAll)).toEqual({ result: 'not_found' });
    expect(await retryRow(id)).toEqual(before);

    expect(await t.queue.retryJob(id, 'alice', { owner: 'alice' }, allowAll)).toMatchObject({ result: 'retried' });
    await claimOnly('r1', id);
    await t.queue.finishJob(fence(id, 'r1', 2), EXIT_75, []);
    expect(await t.queue.retryJob(id, 'root', {}, allowAll)).toEqual({
      result: 'retried',
      status: 'pending',
      attempt: 3,
    });
  });

  test('a refusal from `allowed` (the task file says no) changes nothing', async () => {
    const id = await finishedJob();
    const before = await retryRow(id);
    const rowsBefore = await storedRows(t.db, id);

    await expect(
      t.queue.retryJob(id, 'alice', {}, () => {
        throw new Error('admin_only');
      }),
    ).rejects.toThrow('admin_only');

    expect(await retryRow(id)).toEqual(before);
    expect(await storedRows(t.db, id)).toEqual(rowsBefore);
  });

  describe('in its group', () => {
    const block = () => ({ blockOnFailure: true });

    test('blocked by this job: it becomes the head again and runs before the jobs behind it', async () => {
      const [a1, a2] = ids(await t.queue.enqueueMany([grouped('g', true), grouped('g', true)]));
      await claimOnly('r1', a1);
      await t.queue.finishJob(fence(a1, 'r1', 1), EXIT_75, []);
      expect(await groupOf('g')).toEqual({ head: null, blockedBy: a1 });
      expect(await t.queue.claimDueJobs('r1', 10)).toEqual([]);

      await t.queue.retryJob(a1, 'alice', {}, block);

      expect(await groupOf('g')).toEqual({ head: a1, blockedBy: null });
      expect(await retryRow(a1)).toMatchObject({ status: 'pending', attempt: 2, groupQueued: 0 });
      await claimOnly('r1', a1);
      await t.queue.finishJob(fence(a1, 'r1', 2), SUCCESS, []);
      await claimOnly('r1', a2);
    });

    test('free: it becomes the head and is claimable at once', async () => {
      const [a1, a2] = ids(await t.queue.enqueueMany([grouped('g'), grouped('g')]));
      await claimOnly('r1', a1);
      await t.queue.finishJob(fence(a1, 'r1', 1), EXIT_75, []);
      await claimOnly('r1', a2);
      await t.queue.finishJob(fence(a2, 'r1', 1), SUCCESS, []);
      expect(await groupOf('g')).toEqual({ head: null, blockedBy: null });

      await t.queue.retryJob(a1, 'alice', {}, allowAll);

      expect(await groupOf('g')).toEqual({ head: a1, blockedBy: null });
      await claimOnly('r1', a1);
    });

    test('held by another job: it waits queued, then is first in line, before later jobs', async () => {
      const [a1, a2, a3] = ids(await t.queue.enqueueMany([grouped('g'), grouped('g'), grouped('g')]));
      await claimOnly('r1', a1);
      await t.queue.finishJob(fence(a1, 'r1', 1), EXIT_75, []);
      await claimOnly('r1', a2);

      await t.queue.retryJob(a1, 'alice', {}, allowAll);

      expect(await retryRow(a1)).toMatchObject({ status: 'pending', attempt: 2, groupQueued: 1 });
      expect(await groupOf('g')).toEqual({ head: a2, blockedBy: null });
      expect(await t.queue.claimDueJobs('r1', 10)).toEqual([]);
      await t.queue.finishJob(fence(a2, 'r1', 1), SUCCESS, []);
      // a1 (lower id) before a3, which was queued before a1 was retried.
      await claimOnly('r1', a1);
      await t.queue.finishJob(fence(a1, 'r1', 2), SUCCESS, []);
      await claimOnly('r1', a3);
    });

    test('blocked by another job: it waits queued behind the block, which its retry does not lift', async () => {
      const [a1, a2, a3] = ids(await t.queue.enqueueMany([grouped('g', true), grouped('g', true), grouped('g', true)]));
      await t.queue.cancelJob(a1, 'alice');
      await claimOnly('r1', a2);
      await t.queue.finishJob(fence(a2, 'r1', 1), EXIT_75, []);
      expect(await groupOf('g')).toEqual({ head: null, blockedBy: a2 });

      await t.queue.retryJob(a1, 'alice', {}, block);

      expect(await retryRow(a1)).toMatchObject({ status: 'pending', attempt: 2, groupQueued: 1 });
      expect(await groupOf('g')).toEqual({ head: null, blockedBy: a2 });
      expect(await t.queue.claimDueJobs('r1', 10)).toEqual([]);

      // The blocking job's own retry lifts the block; after it, the group's order is by id again.
      await t.queue.retryJob(a2, 'alice', {}, block);
      await claimOnly('r1', a2);
      await t.queue.finishJob(fence(a2, 'r1', 2), SUCCESS, []);
      await claimOnly('r1', a1);
      await t.queue.finishJob(fence(a1, 'r1', 2), SUCCESS, []);
      await claimOnly('r1', a3);
    });
  });
});
