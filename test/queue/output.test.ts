// Queue.appendOutput: rows stored in order with their line numbers, once, and only by the job's owner.
import { addJob, makeRunning, numberedLines, outputRows, setJob, storedRows, useQueueDatabase } from './harness';

const t = useQueueDatabase('output');

async function runningJob(runnerId = 'r1'): Promise<number> {
  const id = await addJob(t.db);
  await makeRunning(t.db, id, runnerId);
  return id;
}

test('stores rows with their seq, stream and text, in order across batches', async () => {
  const id = await runningJob();
  const fence = { jobId: id, runnerId: 'r1', attempt: 1 };

  expect(
    await t.queue.appendOutput(fence, [...outputRows(1, ['one', 'two']), ...outputRows(3, ['oops'], 'stderr')]),
  ).toBe(true);
  expect(await t.queue.appendOutput(fence, outputRows(4, ['four', 'five']))).toBe(true);

  const rows = await storedRows(t.db, id);
  expect(rows.map(({ seq, stream, output }) => ({ seq, stream, output }))).toEqual([
    { seq: 1, stream: 'stdout', output: 'one' },
    { seq: 2, stream: 'stdout', output: 'two' },
    { seq: 3, stream: 'stderr', output: 'oops' },
    { seq: 4, stream: 'stdout', output: 'four' },
    { seq: 5, stream: 'stdout', output: 'five' },
  ]);
  for (let i = 1; i < rows.length; i++) expect(rows[i].id).toBeGreaterThan(rows[i - 1].id);
});

test('a batch of 1,000 rows is stored whole and in order', async () => {
  const id = await runningJob();
  const lines = numberedLines(id, 1, 1000);

  expect(await t.queue.appendOutput({ jobId: id, runnerId: 'r1', attempt: 1 }, outputRows(1, lines))).toBe(true);

  const rows = await storedRows(t.db, id);
  expect(rows.map((r) => r.output)).toEqual(lines);
  expect(rows.map((r) => r.seq)).toEqual(lines.map((_, i) => i + 1));
});

test('retry-safe: the same rows appended again are not stored twice', async () => {
  const id = await runningJob();
  const fence = { jobId: id, runnerId: 'r1', attempt: 1 };
  const batch = outputRows(1, ['a', 'b', 'c']);

  expect(await t.queue.appendOutput(fence, batch)).toBe(true);
  // The commit was in doubt: the writer sends the same batch again, then one overlapping the next.
  expect(await t.queue.appendOutput(fence, batch)).toBe(true);
  expect(await t.queue.appendOutput(fence, outputRows(3, ['c', 'd']))).toBe(true);

  expect((await storedRows(t.db, id)).map((r) => [r.seq, r.output])).toEqual([
    [1, 'a'],
    [2, 'b'],
    [3, 'c'],
    [4, 'd'],
  ]);
});

test('the same seq in two jobs is two rows', async () => {
  const a = await runningJob();
  const b = await runningJob();

  await t.queue.appendOutput({ jobId: a, runnerId: 'r1', attempt: 1 }, outputRows(1, ['from a']));
  await t.queue.appendOutput({ jobId: b, runnerId: 'r1', attempt: 1 }, outputRows(1, ['from b']));

  expect((await storedRows(t.db, a)).map((r) => r.output)).toEqual(['from a']);
  expect((await storedRows(t.db, b)).map((r) => r.output)).toEqual(['from b']);
});

describe('a stale fence stores nothing and returns false', () => {
  test('another runner owns the job', async () => {
    const id = await runningJob('r2');
    expect(await t.queue.appendOutput({ jobId: id, runnerId: 'r1', attempt: 1 }, outputRows(1, ['stale']))).toBe(false);
    expect(await storedRows(t.db, id)).toEqual([]);
  });

  test.each(['success', 'failure', 'cancelled'])('the job is no longer running (%s), same runner', async (status) => {
    const id = await runningJob('r1');
    await setJob(t.db, id, { status });
    expect(await t.queue.appendOutput({ jobId: id, runnerId: 'r1', attempt: 1 }, outputRows(1, ['late']))).toBe(false);
    expect(await storedRows(t.db, id)).toEqual([]);
  });

  test('the job was put back to pending', async () => {
    const id = await runningJob('r1');
    await setJob(t.db, id, { status: 'pending', runnerId: null });
    expect(await t.queue.appendOutput({ jobId: id, runnerId: 'r1', attempt: 1 }, outputRows(1, ['late']))).toBe(false);
    expect(await storedRows(t.db, id)).toEqual([]);
  });

  test('the job does not exist', async () => {
    const id = await runningJob('r1');
    expect(
      await t.queue.appendOutput({ jobId: id + 1000, runnerId: 'r1', attempt: 1 }, outputRows(1, ['nowhere'])),
    ).toBe(false);
    expect(await storedRows(t.db, id + 1000)).toEqual([]);
  });
});
