// prune: old finished jobs and their output go, in batches; pending, running and recent jobs stay.
import { QueryTypes } from 'sequelize';
import type { Database } from '../models/database';
import { parseDuration, pruneFinishedJobs } from '../models/prune';
import { freshDatabase, truncateAll } from './helpers/database';

let db: Database;

beforeAll(async () => {
  ({ db } = await freshDatabase(`cj_test_prune_w${process.env.JEST_WORKER_ID ?? '0'}`));
});
beforeEach(() => truncateAll(db));
afterAll(() => db.close());

async function job(status: string, finishedDaysAgo: number | null, outputRows: number): Promise<number> {
  const finishedAt =
    finishedDaysAgo === null
      ? null
      : new Date(Date.now() - finishedDaysAgo * 86400_000).toISOString().slice(0, 23).replace('T', ' ');
  await db.sequelize.query('INSERT INTO Jobs (task, params, createdBy, status, finishedAt) VALUES (?, ?, ?, ?, ?)', {
    replacements: ['echo', '{}', 'alice', status, finishedAt],
  });
  const [{ id }] = await db.sequelize.query<{ id: number }>('SELECT MAX(id) AS id FROM Jobs', {
    type: QueryTypes.SELECT,
  });
  for (let seq = 1; seq <= outputRows; seq++) {
    await db.sequelize.query("INSERT INTO JobStatuses (jobId, seq, stream, output) VALUES (?, ?, 'stdout', 'x')", {
      replacements: [id, seq],
    });
  }
  return Number(id);
}

const ids = async (table: string, column: string) =>
  (
    await db.sequelize.query<{ v: number }>(`SELECT DISTINCT ${column} AS v FROM ${table} ORDER BY v`, {
      type: QueryTypes.SELECT,
    })
  ).map((r) => Number(r.v));

test('parseDuration reads s, m, h, d, w and refuses anything else', () => {
  expect(parseDuration('30d')).toBe(30 * 86400);
  expect(parseDuration('12h')).toBe(43200);
  expect(parseDuration('90m')).toBe(5400);
  expect(parseDuration('15s')).toBe(15);
  expect(parseDuration('2w')).toBe(1209600);
  for (const bad of ['30', 'd', '-1d', '1.5d', '3x', '']) expect(parseDuration(bad)).toBeUndefined();
});

test('deletes only finished jobs older than the cutoff, with their output, in small batches', async () => {
  const old = [await job('success', 40, 3), await job('failure', 31, 25), await job('cancelled', 90, 0)];
  const keep = [
    await job('success', 5, 2),
    await job('pending', null, 0),
    await job('running', null, 4),
    // A running job with a stale finishedAt (never happens, but prune must not touch running jobs).
    await job('running', 60, 1),
  ];
  const result = await pruneFinishedJobs(db, 30 * 86400, { jobBatch: 2, rowBatch: 7 });
  expect(result).toEqual({ jobs: 3, outputRows: 28 });
  expect(await ids('Jobs', 'id')).toEqual(keep);
  expect(await ids('JobStatuses', 'jobId')).toEqual([keep[0], keep[2], keep[3]]);
  expect(old.every((id) => !keep.includes(id))).toBe(true);
  expect(await pruneFinishedJobs(db, 30 * 86400)).toEqual({ jobs: 0, outputRows: 0 });
});
