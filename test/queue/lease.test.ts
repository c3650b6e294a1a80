// Queue.renewLeases and Queue.reapExpiredLeases: a runner keeps its jobs alive; anyone fails the ones left to lapse.
import {
  addJob,
  dbNow,
  holdJobRows,
  impatientQueue,
  jobRow,
  makeRunning,
  withRowLocks,
  outputRows,
  setJob,
  setJobTime,
  storedRows,
  useQueueDatabase,
} from './harness';

const t = useQueueDatabase('lease');

const LEASE_MS = 30_000;

/** A running job whose last heartbeat was `agoMs` ago. */
async function runningJob(runnerId: string, agoMs = 0): Promise<number> {
  const id = await addJob(t.db);
  await makeRunning(t.db, id, runnerId);
  if (agoMs) await setJobTime(t.db, id, 'heartbeatAt', -agoMs);
  return id;
}

describe('renewLeases', () => {
  test('renews heartbeatAt of the runner’s running jobs on the database clock', async () => {
    const a = await runningJob('r1', 20_000);
    const b = await runningJob('r1', 20_000);
    const before = await dbNow(t.db);

    const report = await t.queue.renewLeases('r1', [a, b]);

    const after = await dbNow(t.db);
    expect(report).toEqual({ lost: [], cancelRequested: [] });
    for (const id of [a, b]) {
      const { heartbeatAt, status } = await jobRow(t.db, id);
      expect(status).toBe('running');
      expect(heartbeatAt).toBeGreaterThanOrEqual(before);
      expect(heartbeatAt).toBeLessThanOrEqual(after);
    }
  });

  test('reports as lost the jobs it does not own or that are not running, and renews none of them', async () => {
    const mine = await runningJob('r1', 20_000);
    const theirs = await runningJob('r2', 20_000);
    const reaped = await runningJob('r1', 20_000);
    await setJob(t.db, reaped, { status: 'failure', error: 'runner_lost' });
    const pending = await addJob(t.db);
    const missing = pending + 1000;
    const theirsBefore = await jobRow(t.db, theirs);
    const reapedBefore = await jobRow(t.db, reaped);
    const before = await dbNow(t.db);

    const report = await t.queue.renewLeases('r1', [mine, theirs, reaped, pending, missing]);

    expect(report).toEqual({ lost: [theirs, reaped, pending, missing], cancelRequested: [] });
    expect((await jobRow(t.db, mine)).heartbeatAt).toBeGreaterThanOrEqual(before);
    expect(await jobRow(t.db, theirs)).toEqual(theirsBefore);
    expect(await jobRow(t.db, reaped)).toEqual(reapedBefore);
    expect(await jobRow(t.db, pending)).toMatchObject({ status: 'pending', heartbeatAt: null });
  });

  test('reports jobs with a cancel request, and keeps their lease so nobody reaps them while they stop', async () => {
    const plain = await runningJob('r1', 20_000);
    const stopping = await runningJob('r1', 20_000);
    await setJobTime(t.db, stopping, 'cancelRequestedAt', -1000);
    const before = await dbNow(t.db);

    const report = await t.queue.renewLeases('r1', [plain, stopping]);

    expect(report).toEqual({ lost: [], cancelRequested: [stopping] });
    for (const id of [plain, stopping]) {
      expect(await jobRow(t.db, id)).toMatchObject({ status: 'running', runnerId: 'r1' });
      expect((await jobRow(t.db, id)).heartbeatAt).toBeGreaterThanOrEqual(before);
    }
  });

  test('a cancel request on another runner’s job is reported as lost, not as a request', async () => {
    const theirs = await runningJob('r2');
    await setJobTime(t.db, theirs, 'cancelRequestedAt', -1000);

    expect(await t.queue.renewLeases('r1', [theirs])).toEqual({ lost: [theirs], cancelRequested: [] });
  });

  test('no jobs: nothing to renew, nothing to report', async () => {
    expect(await t.queue.renewLeases('r1', [])).toEqual({ lost: [], cancelRequested: [] });
  });
});

describe('reapExpiredLeases', () => {
  test('a running job whose heartbeat is older than the lease becomes failure/runner_lost with a system row', async () => {
    const id = await runningJob('gone', 60_000);
    await t.queue.appendOutput({ jobId: id, runnerId: 'gone', attempt: 1 }, outputRows(1, ['one', 'two']));
    const before = await dbNow(t.db);

    const reaped = await t.queue.reapExpiredLeases(LEASE_MS);

    expect(reaped).toEqual([id]);
    const row = await jobRow(t.db, id);
    expect(row).toMatchObject({ status: 'failure', error: 'runner_lost', exitCode: null, signal: null });
    expect(row.finishedAt).toBeGreaterThanOrEqual(before);
    const rows = await storedRows(t.db, id);
    expect(rows.map((r) => [r.seq, r.stream])).toEqual([
      [1, 'stdout'],
      [2, 'stdout'],
      [3, 'system'],
    ]);
    expect(rows[2].output).toContain('runner_lost');
    expect(rows[2].output).toContain('gone');
  });

  test('a recently renewed job is left alone, and so are pending and finished jobs', async () => {
    const renewed = await runningJob('r1', 60_000);
    await t.queue.renewLeases('r1', [renewed]);
    const fresh = await runningJob('r1', 1_000);
    const pending = await addJob(t.db);
    const finished = await runningJob('r1', 60_000);
    await setJob(t.db, finished, { status: 'success', exitCode: 0 });
    // A heartbeat left over on a job put back to pending must not make it reapable.
    await setJobTime(t.db, pending, 'heartbeatAt', -60_000);
    const untouched = await Promise.all([renewed, fresh, pending, finished].map((id) => jobRow(t.db, id)));

    expect(await t.queue.reapExpiredLeases(LEASE_MS)).toEqual([]);

    expect(await Promise.all([renewed, fresh, pending, finished].map((id) => jobRow(t.db, id)))).toEqual(untouched);
    for (const id of [renewed, fresh, pending, finished]) expect(await storedRows(t.db, id)).toEqual([]);
  });

  test('reaps at most `batch` jobs a call, oldest heartbeat first', async () => {
    const older = await runningJob('r1', 90_000);
    const oldest = await runningJob('r1', 120_000);
    const old = await runningJob('r1', 60_000);

    expect(await t.queue.reapExpiredLeases(LEASE_MS, 2)).toEqual([oldest, older]);
    expect((await jobRow(t.db, old)).status).toBe('running');
    expect(await t.queue.reapExpiredLeases(LEASE_MS, 2)).toEqual([old]);
    expect(await t.queue.reapExpiredLeases(LEASE_MS, 2)).toEqual([]);
  });

  test('the reaped runner is fenced out: its renewal reports the job lost, its writes are refused', async () => {
    const id = await runningJob('gone', 60_000);
    await t.queue.reapExpiredLeases(LEASE_MS);
    const afterReap = await jobRow(t.db, id);

    expect(await t.queue.renewLeases('gone', [id])).toEqual({ lost: [id], cancelRequested: [] });
    expect(await t.queue.appendOutput({ jobId: id, runnerId: 'gone', attempt: 1 }, outputRows(1, ['late']))).toBe(
      false,
    );
    expect(
      await t.queue.finishJob(
        { jobId: id, runnerId: 'gone', attempt: 1 },
        { status: 'success', exitCode: 0, signal: null, error: null },
        [],
      ),
    ).toBe(false);
    expect(await jobRow(t.db, id)).toEqual(afterReap);
    expect((await storedRows(t.db, id)).map((r) => r.stream)).toEqual(['system']);
  });

  withRowLocks('skips an expired job another transaction holds, without waiting for it', async () => {
    const held = await runningJob('r1', 90_000);
    const free = await runningJob('r2', 60_000);
    const reaper = await impatientQueue(t);

    const holder = await holdJobRows(t, [held]);
    try {
      expect(await reaper.reapExpiredLeases(LEASE_MS)).toEqual([free]);
    } finally {
      await holder.rollback();
    }

    expect((await jobRow(t.db, held)).status).toBe('running');
    expect(await t.queue.reapExpiredLeases(LEASE_MS)).toEqual([held]);
  });
});
