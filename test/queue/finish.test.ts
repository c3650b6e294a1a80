// Queue.finishJob / finishJobs: the outcome and the last rows, written only while the runner owns the job.
import type { Outcome } from '../../models/queue';
import {
  addJob,
  dbNow,
  jobRow,
  makeRunning,
  outputRows,
  setJob,
  storedRows,
  useQueueDatabase,
  type JobRow,
} from './harness';

const t = useQueueDatabase('finish');

const SUCCESS: Outcome = { status: 'success', exitCode: 0, signal: null, error: null };
const KILLED: Outcome = { status: 'failure', exitCode: null, signal: 'SIGKILL', error: 'timeout' };

async function runningJob(runnerId = 'r1', job: Parameters<typeof addJob>[1] = {}): Promise<number> {
  const id = await addJob(t.db, job);
  await makeRunning(t.db, id, runnerId);
  return id;
}

describe('finishJob', () => {
  test('writes status, exitCode, signal, error and finishedAt, and the last rows after the earlier ones', async () => {
    const id = await runningJob();
    await t.queue.appendOutput({ jobId: id, runnerId: 'r1', attempt: 1 }, outputRows(1, ['working']));
    const before = await dbNow(t.db);

    const finished = await t.queue.finishJob({ jobId: id, runnerId: 'r1', attempt: 1 }, KILLED, [
      ...outputRows(2, ['last words'], 'stderr'),
      ...outputRows(3, ['timed out after 1 s; killed'], 'system'),
    ]);

    const after = await dbNow(t.db);
    expect(finished).toBe(true);
    const row = await jobRow(t.db, id);
    expect(row).toMatchObject({
      status: 'failure',
      exitCode: null,
      signal: 'SIGKILL',
      error: 'timeout',
      runnerId: 'r1',
    });
    expect(row.finishedAt).toBeGreaterThanOrEqual(before);
    expect(row.finishedAt).toBeLessThanOrEqual(after);
    expect((await storedRows(t.db, id)).map((r) => [r.seq, r.stream, r.output])).toEqual([
      [1, 'stdout', 'working'],
      [2, 'stderr', 'last words'],
      [3, 'system', 'timed out after 1 s; killed'],
    ]);
  });

  test.each<[string, Outcome]>([
    ['success', SUCCESS],
    ['failure by exit code', { status: 'failure', exitCode: 3, signal: null, error: 'exit_code' }],
    ['failure by signal', { status: 'failure', exitCode: null, signal: 'SIGTERM', error: 'signal' }],
    ['cancelled', { status: 'cancelled', exitCode: null, signal: 'SIGTERM', error: 'cancelled' }],
  ])('stores the outcome exactly: %s', async (_name, outcome) => {
    const id = await runningJob();

    expect(await t.queue.finishJob({ jobId: id, runnerId: 'r1', attempt: 1 }, outcome, [])).toBe(true);

    expect(await jobRow(t.db, id)).toMatchObject({
      status: outcome.status,
      exitCode: outcome.exitCode,
      signal: outcome.signal,
      error: outcome.error,
    });
  });

  test('outcome.command fills a job inserted without one, and never replaces one', async () => {
    const bare = await runningJob('r1', { command: null });
    const rendered = await runningJob('r1', { command: 'echo 1' });

    await t.queue.finishJob({ jobId: bare, runnerId: 'r1', attempt: 1 }, { ...SUCCESS, command: 'echo rendered' }, []);
    await t.queue.finishJob({ jobId: rendered, runnerId: 'r1', attempt: 1 }, { ...SUCCESS, command: 'echo other' }, []);

    expect((await jobRow(t.db, bare)).command).toBe('echo rendered');
    expect((await jobRow(t.db, rendered)).command).toBe('echo 1');
  });

  test('retry-safe: rows already stored by an append are not stored twice', async () => {
    const id = await runningJob();
    await t.queue.appendOutput({ jobId: id, runnerId: 'r1', attempt: 1 }, outputRows(1, ['a', 'b']));

    await t.queue.finishJob({ jobId: id, runnerId: 'r1', attempt: 1 }, SUCCESS, outputRows(2, ['b', 'c']));

    expect((await storedRows(t.db, id)).map((r) => [r.seq, r.output])).toEqual([
      [1, 'a'],
      [2, 'b'],
      [3, 'c'],
    ]);
  });

  describe('a stale runner changes nothing: false, row untouched, its rows not stored', () => {
    async function expectUntouched(id: number, before: JobRow, runnerId: string): Promise<void> {
      const finished = await t.queue.finishJob({ jobId: id, runnerId, attempt: 1 }, KILLED, outputRows(1, ['stale']));
      expect(finished).toBe(false);
      expect(await jobRow(t.db, id)).toEqual(before);
      expect(await storedRows(t.db, id)).toEqual([]);
    }

    test('another runner owns the job', async () => {
      const id = await runningJob('r2');
      await expectUntouched(id, await jobRow(t.db, id), 'r1');
    });

    test('the job was reaped (failure/runner_lost) under the same runner', async () => {
      const id = await runningJob('r1');
      await setJob(t.db, id, { status: 'failure', error: 'runner_lost' });
      await expectUntouched(id, await jobRow(t.db, id), 'r1');
    });

    test('the job was finished already', async () => {
      const id = await runningJob('r1');
      expect(await t.queue.finishJob({ jobId: id, runnerId: 'r1', attempt: 1 }, SUCCESS, [])).toBe(true);
      await expectUntouched(id, await jobRow(t.db, id), 'r1');
    });

    test('the job is pending (never claimed, or put back)', async () => {
      const id = await addJob(t.db);
      await expectUntouched(id, await jobRow(t.db, id), 'r1');
    });
  });
});

describe('finishJobs', () => {
  test('finishes a batch, each job with its own outcome and rows', async () => {
    const a = await runningJob();
    const b = await runningJob();
    const c = await runningJob();

    const { finished, claimed } = await t.queue.finishJobs([
      { fence: { jobId: a, runnerId: 'r1', attempt: 1 }, outcome: SUCCESS, rows: outputRows(1, ['a done'], 'system') },
      { fence: { jobId: b, runnerId: 'r1', attempt: 1 }, outcome: KILLED, rows: outputRows(1, ['b killed'], 'system') },
      { fence: { jobId: c, runnerId: 'r1', attempt: 1 }, outcome: SUCCESS, rows: [] },
    ]);

    expect(finished).toEqual([true, true, true]);
    expect(claimed).toEqual([]);
    expect(await jobRow(t.db, a)).toMatchObject({ status: 'success', exitCode: 0, signal: null, error: null });
    expect(await jobRow(t.db, b)).toMatchObject({
      status: 'failure',
      exitCode: null,
      signal: 'SIGKILL',
      error: 'timeout',
    });
    expect(await jobRow(t.db, c)).toMatchObject({ status: 'success', exitCode: 0 });
    expect((await storedRows(t.db, a)).map((r) => r.output)).toEqual(['a done']);
    expect((await storedRows(t.db, b)).map((r) => r.output)).toEqual(['b killed']);
    expect(await storedRows(t.db, c)).toEqual([]);
  });

  test('a batch with one owned and one not-owned job finishes only the owned one', async () => {
    const mine = await runningJob('r1');
    const theirs = await runningJob('r2');
    const theirsBefore = await jobRow(t.db, theirs);

    const { finished } = await t.queue.finishJobs([
      { fence: { jobId: theirs, runnerId: 'r1', attempt: 1 }, outcome: KILLED, rows: outputRows(1, ['not mine']) },
      { fence: { jobId: mine, runnerId: 'r1', attempt: 1 }, outcome: SUCCESS, rows: outputRows(1, ['mine']) },
    ]);

    expect(finished).toEqual([false, true]);
    expect(await jobRow(t.db, mine)).toMatchObject({ status: 'success', exitCode: 0 });
    expect((await storedRows(t.db, mine)).map((r) => r.output)).toEqual(['mine']);
    expect(await jobRow(t.db, theirs)).toEqual(theirsBefore);
    expect(await storedRows(t.db, theirs)).toEqual([]);
  });

  test('refill claims successors in the same call, in claim order, up to its limit', async () => {
    const done = await runningJob('r1');
    const next = [await addJob(t.db), await addJob(t.db, { priority: 5 }), await addJob(t.db)];

    const { finished, claimed } = await t.queue.finishJobs(
      [{ fence: { jobId: done, runnerId: 'r1', attempt: 1 }, outcome: SUCCESS, rows: [] }],
      { runnerId: 'r1', limit: 2 },
    );

    expect(finished).toEqual([true]);
    expect(claimed.map((j) => [j.id, j.lastSeq])).toEqual([
      [next[1], 0],
      [next[0], 0],
    ]);
    expect(await jobRow(t.db, next[1])).toMatchObject({ status: 'running', runnerId: 'r1' });
    expect(await jobRow(t.db, next[0])).toMatchObject({ status: 'running', runnerId: 'r1' });
    expect(await jobRow(t.db, next[2])).toMatchObject({ status: 'pending', runnerId: null });
    expect((await jobRow(t.db, done)).status).toBe('success');
  });

  test('refill with no free slot claims nothing', async () => {
    const done = await runningJob('r1');
    const waiting = await addJob(t.db);

    const { claimed } = await t.queue.finishJobs(
      [{ fence: { jobId: done, runnerId: 'r1', attempt: 1 }, outcome: SUCCESS, rows: [] }],
      { runnerId: 'r1', limit: 0 },
    );

    expect(claimed).toEqual([]);
    expect((await jobRow(t.db, waiting)).status).toBe('pending');
  });
});
