// Queue.cancelJob in each state of a job, and scoped to its owner.
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

const t = useQueueDatabase('cancel');

test('pending: cancelled at once, with a system row, by whom and when', async () => {
  const id = await addJob(t.db, { createdBy: 'alice' });
  const before = await dbNow(t.db);

  expect(await t.queue.cancelJob(id, 'alice', { owner: 'alice' })).toEqual({
    result: 'cancelled',
    status: 'cancelled',
  });

  const after = await dbNow(t.db);
  const row = await jobRow(t.db, id);
  expect(row).toMatchObject({ status: 'cancelled', error: 'cancelled', cancelledBy: 'alice', runnerId: null });
  for (const at of [row.finishedAt, row.cancelRequestedAt]) {
    expect(at).toBeGreaterThanOrEqual(before);
    expect(at).toBeLessThanOrEqual(after);
  }
  const rows = await storedRows(t.db, id);
  expect(rows.map((r) => [r.seq, r.stream])).toEqual([[1, 'system']]);
  expect(rows[0].output).toContain('alice');
  // Cancelled is final: the job is never claimed.
  expect(await t.queue.claimDueJobs('r1', 10)).toEqual([]);
});

test('pending with earlier output (put back by hand): the system row follows its last line', async () => {
  const id = await addJob(t.db);
  await makeRunning(t.db, id, 'r0');
  await t.queue.appendOutput({ jobId: id, runnerId: 'r0', attempt: 1 }, outputRows(1, ['a', 'b']));
  await setJob(t.db, id, { status: 'pending', runnerId: null });

  expect(await t.queue.cancelJob(id, 'admin')).toEqual({ result: 'cancelled', status: 'cancelled' });

  expect((await storedRows(t.db, id)).map((r) => [r.seq, r.stream])).toEqual([
    [1, 'stdout'],
    [2, 'stdout'],
    [3, 'system'],
  ]);
});

test('running: the request is recorded, the job stays running for its runner to stop', async () => {
  const id = await addJob(t.db);
  await makeRunning(t.db, id, 'r1');
  const before = await dbNow(t.db);

  expect(await t.queue.cancelJob(id, 'alice', { owner: 'alice' })).toEqual({ result: 'requested', status: 'running' });

  const row = await jobRow(t.db, id);
  expect(row).toMatchObject({ status: 'running', runnerId: 'r1', cancelledBy: 'alice', finishedAt: null, error: null });
  expect(row.cancelRequestedAt).toBeGreaterThanOrEqual(before);
  expect(await storedRows(t.db, id)).toEqual([]);
  expect(await t.queue.renewLeases('r1', [id])).toEqual({ lost: [], cancelRequested: [id] });
});

test('running, asked twice: the first request (who and when) is kept', async () => {
  const id = await addJob(t.db);
  await makeRunning(t.db, id, 'r1');
  await t.queue.cancelJob(id, 'alice');
  const first = await jobRow(t.db, id);

  expect(await t.queue.cancelJob(id, 'admin')).toEqual({ result: 'requested', status: 'running' });

  const second = await jobRow(t.db, id);
  expect(second.cancelledBy).toBe('alice');
  expect(second.cancelRequestedAt).toBe(first.cancelRequestedAt);
});

test.each([
  ['success', { exitCode: 0 }],
  ['failure', { exitCode: 2, error: 'exit_code' }],
  ['cancelled', { error: 'cancelled', cancelledBy: 'bob' }],
])('finished (%s): reported with its status, unchanged', async (status, extra) => {
  const id = await addJob(t.db);
  await makeRunning(t.db, id, 'r1');
  await setJob(t.db, id, { status, ...extra });
  const before = await jobRow(t.db, id);

  expect(await t.queue.cancelJob(id, 'alice')).toEqual({ result: 'finished', status });

  expect(await jobRow(t.db, id)).toEqual(before);
  expect(await storedRows(t.db, id)).toEqual([]);
});

test('a missing id: not_found', async () => {
  const id = await addJob(t.db);
  expect(await t.queue.cancelJob(id + 1000, 'admin')).toEqual({ result: 'not_found' });
  expect(await t.queue.cancelJob(id + 1000, 'alice', { owner: 'alice' })).toEqual({ result: 'not_found' });
});

describe('another owner’s job with scope.owner: not_found, and unchanged', () => {
  async function expectHidden(id: number, before: JobRow): Promise<void> {
    expect(await t.queue.cancelJob(id, 'mallory', { owner: 'mallory' })).toEqual({ result: 'not_found' });
    expect(await jobRow(t.db, id)).toEqual(before);
    expect(await storedRows(t.db, id)).toEqual([]);
  }

  test('pending', async () => {
    const id = await addJob(t.db, { createdBy: 'alice' });
    await expectHidden(id, await jobRow(t.db, id));
  });

  test('running', async () => {
    const id = await addJob(t.db, { createdBy: 'alice' });
    await makeRunning(t.db, id, 'r1');
    await expectHidden(id, await jobRow(t.db, id));
  });

  test('finished', async () => {
    const id = await addJob(t.db, { createdBy: 'alice' });
    await setJob(t.db, id, { status: 'success', exitCode: 0 });
    await expectHidden(id, await jobRow(t.db, id));
  });

  test('a job with no owner (createdBy NULL) is an admin’s only', async () => {
    const id = await addJob(t.db, { createdBy: null });
    await expectHidden(id, await jobRow(t.db, id));
    expect(await t.queue.cancelJob(id, 'admin')).toEqual({ result: 'cancelled', status: 'cancelled' });
  });
});
