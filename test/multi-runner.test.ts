// Several runner processes draining one database: every job runs exactly once, output intact.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { QueryTypes } from 'sequelize';
import type { Database } from '../models/database';
import { runJobRunnerOnce } from './helpers/cli';
import { ROOT, databaseEnv, dialect, freshDatabase, sqlOf } from './helpers/database';
import type { DatabaseConfig } from '../config';

const RUNNERS = 3;
// 2,000 on MySQL (the claim under contention); SQLite serialises writers, so a smaller batch proves the same.
const JOBS = dialect === 'mysql' ? 2000 : 300;
const LINES = 5;

let db: Database;
let config: DatabaseConfig;
let markDir: string;

beforeAll(async () => {
  ({ db, config } = await freshDatabase(`cj_test_multi_w${process.env.JEST_WORKER_ID ?? '0'}`));
  markDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cj-multi-'));
});

afterAll(async () => {
  await db.close();
  fs.rmSync(markDir, { recursive: true, force: true });
});

function runRunner(index: number): Promise<{ code: number | null; log: string }> {
  return runJobRunnerOnce({
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    ...databaseEnv(config),
    JOB_TASKS_FILE: path.join(ROOT, 'test', 'fixtures', 'multi', 'tasks.json'),
    JOB_RUNNER_CONCURRENCY: '4',
    JOB_RUNNER_ID: `multi-${index}`,
  });
}

test(`${RUNNERS} runners started together with --once drain ${JOBS} jobs, each exactly once`, async () => {
  const values: string[] = [];
  for (let i = 0; i < JOBS; i++) {
    const params = i % 2 === 0 ? { dir: markDir, n: i } : { from: i * 100, to: i * 100 + LINES - 1 };
    values.push(
      `(${db.sequelize.escape(i % 2 === 0 ? 'mark' : 'lines')}, ${db.sequelize.escape(JSON.stringify(params))}, 'multi')`,
    );
  }
  for (let i = 0; i < values.length; i += 500) {
    await sqlOf(db).query(`INSERT INTO Jobs (task, params, createdBy) VALUES ${values.slice(i, i + 500).join(', ')}`);
  }

  const results = await Promise.all(Array.from({ length: RUNNERS }, (_, i) => runRunner(i)));
  for (const r of results) {
    expect(r.code).toBe(0);
    expect(r.log).not.toMatch(/no longer owned|runner error|unhandled/);
  }

  const jobs = await sqlOf(db).query<{
    id: number;
    task: string;
    status: string;
    params: string | object;
    runnerId: string;
  }>('SELECT id, task, status, params, runnerId FROM Jobs ORDER BY id', { type: QueryTypes.SELECT });
  expect(jobs).toHaveLength(JOBS);
  expect(jobs.filter((j) => j.status !== 'success')).toEqual([]);
  // Work was shared: more than one runner took jobs.
  expect(new Set(jobs.map((j) => j.runnerId)).size).toBeGreaterThan(1);

  // Each "mark" job made its directory once (a second run would have failed on mkdir).
  expect(fs.readdirSync(markDir)).toHaveLength(Math.ceil(JOBS / 2));

  const rows = await sqlOf(db).query<{ jobId: number; seq: number; stream: string; output: string }>(
    'SELECT jobId, seq, stream, output FROM JobStatuses ORDER BY jobId, id',
    { type: QueryTypes.SELECT },
  );
  const byJob = new Map<number, { seq: number; stream: string; output: string }[]>();
  for (const row of rows) {
    const list = byJob.get(Number(row.jobId)) ?? [];
    list.push(row);
    byJob.set(Number(row.jobId), list);
  }
  for (const job of jobs) {
    const out = byJob.get(Number(job.id)) ?? [];
    // Output rows in id order are in seq order 1..n: nothing twice, nothing out of order.
    expect(out.map((r) => Number(r.seq))).toEqual(out.map((_, i) => i + 1));
    const stdout = out.filter((r) => r.stream === 'stdout').map((r) => r.output);
    const params = typeof job.params === 'string' ? JSON.parse(job.params) : job.params;
    if (job.task === 'lines') {
      expect(stdout).toEqual(Array.from({ length: LINES }, (_, k) => String(params.from + k)));
    } else {
      expect(stdout).toHaveLength(1);
      expect(stdout[0]).toContain(`job-${params.n}`);
    }
    expect(out.at(-1)?.stream).toBe('system');
  }
});
