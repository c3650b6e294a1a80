// Claims ahead of free slots (README, "How the runner works"; JOB_RUNNER_CLAIM_AHEAD): jobs claimed
// beyond the free slots wait for one in claim order, never run two in a slot, and go back to pending
// as they were when they wait too long or the runner drains; a cancel ends a waiting job unstarted.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { QueryTypes } from 'sequelize';
import type { Database } from '../models/database';
import { Queue } from '../models/queue';
import { readTime } from '../models/sql';
import { freshDatabase, sqlOf, truncateAll } from './helpers/database';
import { insertJob, jobRow, lines, makeRunner, runOnce, statusRows, waitFor } from './helpers/runner';

let db: Database;
let queue: Queue;
let tmp: string;

beforeAll(async () => {
  ({ db } = await freshDatabase(`cj_test_ahead_w${process.env.JEST_WORKER_ID ?? '0'}`));
  queue = new Queue(db);
});

afterAll(async () => {
  await db.close();
});

beforeEach(async () => {
  await truncateAll(db);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cj-ahead-'));
});

afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** An `exclusive` job: holds tmp/held for `ms` (exits 3 if another holds it) and appends its id to tmp/order. */
const exclusive = (ms: number) => insertJob(db, 'exclusive', { dir: tmp, ms });

const ran = (): number[] => {
  const file = path.join(tmp, 'order');
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n').map(Number) : [];
};

const ms = (value: unknown): number => readTime(value as Date | string | null)!.getTime();

/** Runner options that claim ahead once one job has ended (any job counts as short). */
const ahead = (claimAhead: number, aheadMaxWaitMs = 60_000) => ({
  config: { concurrency: 1, claimAhead },
  shortJobMs: 600_000,
  aheadMaxWaitMs,
});

test('jobs claimed ahead wait for the one slot: one at a time, in claim order, each once', async () => {
  const ids: number[] = [];
  for (let i = 0; i < 10; i++) ids.push(await exclusive(i % 3 === 0 ? 50 : 0));
  const logs = await runOnce(db, ahead(3));
  expect(logs.filter((l) => / error| warn/i.test(l))).toEqual([]);
  for (const id of ids) expect((await jobRow(db, id)).status).toBe('success');
  expect(ran()).toEqual(ids);
  // Claimed ahead: a job was claimed (startedAt) before the one before it had ended.
  const rows = await Promise.all(ids.map((id) => jobRow(db, id)));
  const early = rows.slice(1).filter((row, i) => ms(row.startedAt) < ms(rows[i].finishedAt));
  expect(early.length).toBeGreaterThan(0);
});

test('a job claimed ahead that waits too long goes back to pending as it was, and runs later, once', async () => {
  const first = await exclusive(0);
  const long = await exclusive(2500);
  const waiting = await exclusive(0);
  const logs = await runOnce(db, ahead(1, 200));
  expect(ran()).toEqual([first, long, waiting]);
  for (const id of [first, long, waiting]) expect((await jobRow(db, id)).status).toBe('success');
  expect(logs.some((l) => l.includes(`job ${waiting}: claimed ahead and not started; back to pending`))).toBe(true);
  // Its one attempt, its one outcome line: the waits left nothing behind.
  const [{ attempt }] = await sqlOf(db).query<{ attempt: number }>('SELECT attempt FROM Jobs WHERE id = ?', {
    type: QueryTypes.SELECT,
    replacements: [waiting],
  });
  expect(Number(attempt)).toBe(1);
  expect(lines(await statusRows(db, waiting), 'system')).toEqual([expect.stringMatching(/^succeeded in /)]);
});

test('a draining runner sends the jobs it claimed ahead back to pending; the next runner runs them', async () => {
  const first = await exclusive(0);
  const { runner, logs } = makeRunner(db, { ...ahead(2), once: false });
  const loop = runner.run();
  try {
    await waitFor(async () => (await jobRow(db, first)).status === 'success');
    const long = await exclusive(1500);
    const waiting = [await exclusive(0), await exclusive(0)];
    // The long job runs; the two behind it are claimed (running, on this runner) but not started.
    await waitFor(async () => {
      const rows = await Promise.all([long, ...waiting].map((id) => jobRow(db, id)));
      return ran().includes(long) && rows.every((r) => r.status === 'running');
    });
    expect(ran()).toEqual([first, long]);
    await runner.stop();
    await loop;
    expect((await jobRow(db, long)).status).toBe('success');
    for (const id of waiting) {
      const row = await jobRow(db, id);
      expect([row.status, row.runnerId, row.startedAt]).toEqual(['pending', null, null]);
      expect(await statusRows(db, id)).toEqual([]);
      expect(
        logs.some((l) => l.includes(`job ${id}: claimed ahead and not started; back to pending (the runner drains)`)),
      ).toBe(true);
    }
    await runOnce(db, ahead(2));
    for (const id of waiting) expect((await jobRow(db, id)).status).toBe('success');
    expect(ran()).toEqual([first, long, ...waiting]);
  } finally {
    await runner.stop();
  }
});

test('a cancel asked for a job claimed ahead ends it cancelled, never started', async () => {
  const first = await exclusive(0);
  const { runner } = makeRunner(db, { ...ahead(1), once: false });
  const loop = runner.run();
  try {
    await waitFor(async () => (await jobRow(db, first)).status === 'success');
    const long = await exclusive(1500);
    const waiting = await exclusive(0);
    await waitFor(async () => ran().includes(long) && (await jobRow(db, waiting)).status === 'running');
    expect(await queue.cancelJob(waiting, 'tester')).toMatchObject({ result: 'requested' });
    await waitFor(async () => (await jobRow(db, waiting)).status === 'cancelled');
    expect(lines(await statusRows(db, waiting), 'system')).toEqual(['cancelled on request before it started']);
    await waitFor(async () => (await jobRow(db, long)).status === 'success');
    expect(ran()).toEqual([first, long]);
  } finally {
    await runner.stop();
    await loop;
  }
});

describe('Queue.releaseClaim', () => {
  test('a claimed job goes back to pending once, only for its claim, not once its cancel was asked for', async () => {
    const a = await insertJob(db, 'hello', {});
    const b = await insertJob(db, 'hello', {});
    const claimed = await queue.claimDueJobs('r1', 2);
    expect(claimed.map((j) => j.id)).toEqual([a, b]);
    expect(await queue.releaseClaim({ jobId: a, runnerId: 'r2', attempt: 1 })).toBe(false);
    expect(await queue.releaseClaim({ jobId: a, runnerId: 'r1', attempt: 2 })).toBe(false);
    expect(await queue.releaseClaim({ jobId: a, runnerId: 'r1', attempt: 1 })).toBe(true);
    expect(await queue.releaseClaim({ jobId: a, runnerId: 'r1', attempt: 1 })).toBe(false);
    const row = await jobRow(db, a);
    expect([row.status, row.runnerId, row.startedAt]).toEqual(['pending', null, null]);
    await queue.cancelJob(b, 'tester');
    expect(await queue.releaseClaim({ jobId: b, runnerId: 'r1', attempt: 1 })).toBe(false);
    expect((await jobRow(db, b)).status).toBe('running');
    // Released, it is due again at its place.
    expect((await queue.claimDueJobs('r3', 5)).map((j) => j.id)).toEqual([a]);
  });
});
