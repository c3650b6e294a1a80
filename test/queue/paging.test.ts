// The paging reads beside the queue: listVisibleJobs (newest first, scoped) and readOutput (a job's rows in order).
import { listVisibleJobs, readOutput, type Viewer } from '../../routers/job-reads';
import { addJob, makeRunning, numberedLines, outputRows, setJob, storedRows, useQueueDatabase } from './harness';

const t = useQueueDatabase('paging');

const alice: Viewer = { username: 'alice', isAdmin: false };
const admin: Viewer = { username: 'root', isAdmin: true };

describe('listVisibleJobs', () => {
  /** Oldest first: owners alice, bob and none in turn; every other job has succeeded, the rest wait. */
  let jobs: { id: number; owner: string | null; status: string }[];

  beforeEach(async () => {
    jobs = [];
    const owners = ['alice', 'bob', null];
    for (let i = 0; i < 15; i++) {
      const owner = owners[i % 3];
      const id = await addJob(t.db, { createdBy: owner });
      const status = i % 2 === 0 ? 'success' : 'pending';
      if (status !== 'pending') await setJob(t.db, id, { status });
      jobs.push({ id, owner, status });
    }
  });

  const ids = (list: { id: number }[]) => list.map((j) => Number(j.id));
  const newestFirst = (list: typeof jobs) => ids(list).reverse();

  test('a user sees their own jobs, newest first', async () => {
    const seen = await listVisibleJobs(t.db, alice, { limit: 50, offset: 0 });
    expect(ids(seen)).toEqual(newestFirst(jobs.filter((j) => j.owner === 'alice')));
  });

  test('an admin sees every job, including those with no owner', async () => {
    const seen = await listVisibleJobs(t.db, admin, { limit: 50, offset: 0 });
    expect(ids(seen)).toEqual(newestFirst(jobs));
  });

  test('limit and offset page through, with no job twice and none missing', async () => {
    const pages = [];
    for (let offset = 0; offset < 20; offset += 4)
      pages.push(ids(await listVisibleJobs(t.db, admin, { limit: 4, offset })));
    expect(pages.map((p) => p.length)).toEqual([4, 4, 4, 3, 0]);
    expect(pages.flat()).toEqual(newestFirst(jobs));
  });

  test('status filters, within the user’s own jobs', async () => {
    const seen = await listVisibleJobs(t.db, alice, { status: 'success', limit: 50, offset: 0 });
    const expected = newestFirst(jobs.filter((j) => j.owner === 'alice' && j.status === 'success'));
    expect(expected.length).toBeGreaterThan(0);
    expect(ids(seen)).toEqual(expected);
  });

  test('createdBy filters for an admin, and only narrows for a user', async () => {
    expect(ids(await listVisibleJobs(t.db, admin, { createdBy: 'bob', limit: 50, offset: 0 }))).toEqual(
      newestFirst(jobs.filter((j) => j.owner === 'bob')),
    );
    expect(await listVisibleJobs(t.db, alice, { createdBy: 'bob', limit: 50, offset: 0 })).toEqual([]);
    expect(ids(await listVisibleJobs(t.db, alice, { createdBy: 'alice', limit: 50, offset: 0 }))).toEqual(
      newestFirst(jobs.filter((j) => j.owner === 'alice')),
    );
  });
});

describe('readOutput', () => {
  const LINES = 2500;
  let job: number;
  let rowIds: number[];

  // Two jobs written in alternating batches, so their rows' ids interleave in the table.
  beforeEach(async () => {
    job = await addJob(t.db);
    const other = await addJob(t.db);
    for (const id of [job, other]) await makeRunning(t.db, id, 'r1');
    for (let from = 1; from <= LINES; from += 500) {
      for (const id of [job, other]) {
        const ok = await t.queue.appendOutput(
          { jobId: id, runnerId: 'r1', attempt: 1 },
          outputRows(from, numberedLines(id, from, 500)),
        );
        expect(ok).toBe(true);
      }
    }
    rowIds = (await storedRows(t.db, job)).map((r) => r.id);
    expect(rowIds).toHaveLength(LINES);
  });

  const expectLines = (rows: { output: string; jobId: number }[], from: number, count: number) => {
    expect(rows.map((r) => r.output)).toEqual(numberedLines(job, from, count));
    for (const r of rows) expect(r.jobId).toBe(job);
  };

  test('pages by offset and limit, in output order, only this job’s rows', async () => {
    expectLines(await readOutput(t.db, job, { offset: 0, limit: 1000 }), 1, 1000);
    expectLines(await readOutput(t.db, job, { offset: 1000, limit: 1000 }), 1001, 1000);
    expectLines(await readOutput(t.db, job, { offset: 2000, limit: 1000 }), 2001, 500);
    expect(await readOutput(t.db, job, { offset: LINES, limit: 1000 })).toEqual([]);
  });

  test('without an offset, reads from the first row', async () => {
    expectLines(await readOutput(t.db, job, { limit: 10 }), 1, 10);
  });

  test('rows carry numeric ids, the job id, the stream and the time', async () => {
    const [first] = await readOutput(t.db, job, { offset: 0, limit: 1 });
    expect(first).toMatchObject({ id: rowIds[0], jobId: job, stream: 'stdout', output: numberedLines(job, 1, 1)[0] });
    expect(typeof first.id).toBe('number');
    expect(first.createdAt).toBeTruthy();
  });

  test('pages by key with afterId, to the end', async () => {
    const seen: string[] = [];
    let afterId = 0;
    for (;;) {
      const page = await readOutput(t.db, job, { afterId, limit: 1000 });
      if (page.length === 0) break;
      seen.push(...page.map((r) => r.output));
      afterId = page[page.length - 1].id;
    }
    expect(seen).toEqual(numberedLines(job, 1, LINES));
    expect(afterId).toBe(rowIds[LINES - 1]);
  });

  test('afterId in the middle, and with an offset on top of it', async () => {
    expectLines(await readOutput(t.db, job, { afterId: rowIds[999], limit: 5 }), 1001, 5);
    expectLines(await readOutput(t.db, job, { afterId: rowIds[99], offset: 50, limit: 10 }), 151, 10);
    expect(await readOutput(t.db, job, { afterId: rowIds[LINES - 1], limit: 10 })).toEqual([]);
  });

  test('a job without output reads empty', async () => {
    const empty = await addJob(t.db);
    expect(await readOutput(t.db, empty, { limit: 1000 })).toEqual([]);
    expect(await readOutput(t.db, empty, { offset: 10, limit: 1000 })).toEqual([]);
  });
});
