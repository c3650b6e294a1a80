// Queue.claimDueJobs: which jobs a claim takes, in what order, and what it writes on them.
import {
  addJob,
  dbNow,
  jobRow,
  makeRunning,
  numberedLines,
  outputRows,
  setJob,
  setJobTime,
  useQueueDatabase,
} from './harness';

const t = useQueueDatabase('claim');

test('takes jobs by priority DESC, then id ASC', async () => {
  const low = await addJob(t.db, { priority: -1 });
  const a = await addJob(t.db, { priority: 5 });
  const plain = await addJob(t.db);
  const b = await addJob(t.db, { priority: 5 });
  const top = await addJob(t.db, { priority: 10 });

  const claimed = await t.queue.claimDueJobs('r1', 10);

  expect(claimed.map((j) => j.id)).toEqual([top, a, b, plain, low]);
});

test('takes only due jobs: runAt in the future is skipped until it comes', async () => {
  const later = await addJob(t.db, { priority: 10 });
  await setJobTime(t.db, later, 'runAt', 3_600_000);
  const past = await addJob(t.db);
  await setJobTime(t.db, past, 'runAt', -60_000);
  const now = await addJob(t.db);

  const claimed = await t.queue.claimDueJobs('r1', 10);

  expect(claimed.map((j) => j.id)).toEqual([past, now]);
  expect(await jobRow(t.db, later)).toMatchObject({ status: 'pending', runnerId: null, startedAt: null });

  await setJobTime(t.db, later, 'runAt', -1);
  expect((await t.queue.claimDueJobs('r1', 10)).map((j) => j.id)).toEqual([later]);
});

test('takes only pending jobs', async () => {
  const ids: Record<string, number> = {};
  for (const status of ['running', 'success', 'failure', 'cancelled', 'pending']) {
    ids[status] = await addJob(t.db, { priority: status === 'pending' ? 0 : 10 });
    await setJob(t.db, ids[status], { status, runnerId: status === 'pending' ? null : 'other' });
  }

  const claimed = await t.queue.claimDueJobs('r1', 10);

  expect(claimed.map((j) => j.id)).toEqual([ids.pending]);
  for (const status of ['running', 'success', 'failure', 'cancelled']) {
    expect(await jobRow(t.db, ids[status])).toMatchObject({ status, runnerId: 'other', startedAt: null });
  }
});

test('marks each claimed job running, owned by the runner, started and renewed on the database clock', async () => {
  const id = await addJob(t.db);
  const before = await dbNow(t.db);

  await t.queue.claimDueJobs('runner-a', 1);

  const after = await dbNow(t.db);
  const row = await jobRow(t.db, id);
  expect(row).toMatchObject({ status: 'running', runnerId: 'runner-a', finishedAt: null, exitCode: null });
  for (const at of [row.startedAt, row.heartbeatAt]) {
    expect(at).not.toBeNull();
    expect(at).toBeGreaterThanOrEqual(before);
    expect(at).toBeLessThanOrEqual(after);
  }
});

test('returns what the runner needs: task, parsed params, command, createdBy', async () => {
  const id = await addJob(t.db, {
    task: 'greet',
    params: { name: 'Zoë', count: 3, loud: true },
    command: "greet --name 'Zoë'",
    createdBy: 'bob',
  });
  const anonymous = await addJob(t.db, { command: null, createdBy: null });

  const claimed = await t.queue.claimDueJobs('r1', 10);

  expect(claimed).toEqual([
    {
      id,
      task: 'greet',
      params: { name: 'Zoë', count: 3, loud: true },
      command: "greet --name 'Zoë'",
      createdBy: 'bob',
      groupKey: null,
      attempt: 1,
      maxAttempts: 1,
      lastSeq: 0,
    },
    {
      id: anonymous,
      task: 'echo',
      params: { n: 1 },
      command: null,
      createdBy: null,
      groupKey: null,
      attempt: 1,
      maxAttempts: 1,
      lastSeq: 0,
    },
  ]);
});

test('returns lastSeq: the highest line number of output the job already has', async () => {
  const requeued = await addJob(t.db);
  await makeRunning(t.db, requeued, 'earlier');
  expect(
    await t.queue.appendOutput({ jobId: requeued, runnerId: 'earlier', attempt: 1 }, outputRows(1, ['a', 'b', 'c'])),
  ).toBe(true);
  // Put back to pending by hand, keeping its output.
  await setJob(t.db, requeued, { status: 'pending', runnerId: null });
  const fresh = await addJob(t.db);

  const claimed = await t.queue.claimDueJobs('r1', 10);

  expect(claimed.map((j) => [j.id, j.lastSeq])).toEqual([
    [requeued, 3],
    [fresh, 0],
  ]);
});

test('lastSeq counts only the job’s own output', async () => {
  const other = await addJob(t.db);
  await makeRunning(t.db, other, 'r0');
  await t.queue.appendOutput({ jobId: other, runnerId: 'r0', attempt: 1 }, outputRows(1, numberedLines(other, 1, 7)));
  const id = await addJob(t.db);

  const [claimed] = await t.queue.claimDueJobs('r1', 1);

  expect(claimed).toMatchObject({ id, lastSeq: 0 });
});

test('limit is the free slots: 0 claims nothing, n claims at most n', async () => {
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push(await addJob(t.db));

  expect(await t.queue.claimDueJobs('r1', 0)).toEqual([]);
  for (const id of ids) expect((await jobRow(t.db, id)).status).toBe('pending');

  expect((await t.queue.claimDueJobs('r1', 2)).map((j) => j.id)).toEqual(ids.slice(0, 2));
  expect((await t.queue.claimDueJobs('r2', 1)).map((j) => j.id)).toEqual(ids.slice(2, 3));
  // More slots than due jobs: the rest, and no more.
  expect((await t.queue.claimDueJobs('r3', 10)).map((j) => j.id)).toEqual(ids.slice(3));
  expect(await t.queue.claimDueJobs('r3', 10)).toEqual([]);

  const owners = await Promise.all(ids.map(async (id) => (await jobRow(t.db, id)).runnerId));
  expect(owners).toEqual(['r1', 'r1', 'r2', 'r3', 'r3']);
});

test('an empty queue claims nothing', async () => {
  expect(await t.queue.claimDueJobs('r1', 4)).toEqual([]);
});
