// Retries end to end (README, "Retries"): a real Runner in-process runs a template's attempts, with
// their backoff, on the real database; every attempt's output stays in the job, in order.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { QueryTypes } from 'sequelize';
import type { Database } from '../models/database';
import { Queue } from '../models/queue';
import { TaskCatalog } from '../tasks/catalog';
import { checkJobRequest } from '../tasks/job-request';
import { ROOT, freshDatabase, truncateAll, sqlOf } from './helpers/database';
import {
  RUNNER_ID,
  baseRunnerEnv,
  expectSeqsInOrder,
  makeRunner,
  runOnce,
  statusRows,
  waitFor,
  type StatusRow,
} from './helpers/runner';

const TASKS_FILE = path.join(ROOT, 'test', 'fixtures', 'retry', 'tasks.json');
const catalog = new TaskCatalog(TASKS_FILE);

let db: Database;
let queue: Queue;
/** The fixture's RETRY_DIR: one `attempts-<id>` file a job, a line a start. */
let tmp: string;

beforeAll(async () => {
  ({ db } = await freshDatabase(`cj_test_retries_w${process.env.JEST_WORKER_ID ?? '0'}`));
  queue = new Queue(db);
});

afterAll(async () => {
  await db.close();
});

beforeEach(async () => {
  await truncateAll(db);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cj-retries-'));
});

afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

interface FlakyParams {
  failures: number;
  code: number;
  mode: 'exit' | 'hang' | 'tick';
}

/** Enqueues as POST /jobs would (maxAttempts from the template). */
async function enqueue(task: string, params: FlakyParams | Record<string, never>): Promise<number> {
  const job = checkJobRequest(catalog, { username: 'tester', isAdmin: false }, { task, params });
  return (await queue.enqueue(job)).id;
}

const runnerOptions = () => ({ tasksFile: TASKS_FILE, runnerEnv: baseRunnerEnv({ RETRY_DIR: tmp }) });

/** A runner daemon (not once: a retry due later must be waited for) until the job has ended. */
async function runUntilFinal(id: number, timeoutMs = 60_000): Promise<string[]> {
  const { runner, logs } = makeRunner(db, { ...runnerOptions(), once: false });
  const running = runner.run();
  try {
    await waitFor(async () => ['success', 'failure', 'cancelled'].includes((await job(id)).status), timeoutMs);
  } finally {
    await runner.stop(5000);
    await running;
  }
  return logs;
}

interface RetryJobRow {
  status: string;
  attempt: number;
  maxAttempts: number;
  lastError: string | null;
  error: string | null;
  exitCode: number | null;
  signal: string | null;
  runnerId: string | null;
}

async function job(id: number): Promise<RetryJobRow> {
  const [row] = await sqlOf(db).query<RetryJobRow>(
    'SELECT status, attempt, maxAttempts, lastError, error, exitCode, `signal`, runnerId FROM Jobs WHERE id = ?',
    { type: QueryTypes.SELECT, replacements: [id] },
  );
  return {
    ...row,
    attempt: Number(row.attempt),
    maxAttempts: Number(row.maxAttempts),
    exitCode: row.exitCode === null ? null : Number(row.exitCode),
  };
}

/** A job's output rows in order, each with its createdAt (database clock) in epoch ms. */
async function timedRows(id: number): Promise<(StatusRow & { at: number })[]> {
  const rows = await sqlOf(db).query<StatusRow & { createdAt: unknown }>(
    'SELECT id, seq, stream, output, createdAt FROM JobStatuses WHERE jobId = ? ORDER BY id',
    { type: QueryTypes.SELECT, replacements: [id] },
  );
  return rows.map(({ createdAt, ...r }) => ({
    ...r,
    id: Number(r.id),
    seq: Number(r.seq),
    at: createdAt instanceof Date ? createdAt.getTime() : Date.parse(`${String(createdAt).replace(' ', 'T')}Z`),
  }));
}

/** How many times the fixture started for this job. */
function starts(id: number): number {
  const file = path.join(tmp, `attempts-${id}`);
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n').length : 0;
}

/** The rows as [stream, text], the varying texts (durations, pids) replaced by patterns. */
function shape(rows: StatusRow[]): [string, string | RegExp][] {
  return rows.map((r) => {
    if (r.stream === 'stdout' && r.output.startsWith('{"attempt"')) {
      return [r.stream, `{"attempt":${JSON.parse(r.output).attempt}}`];
    }
    const text = r.output.replace(/\d+\.\d\d s/, 'T s').replace(/not executable: .*$/, 'not executable: P');
    return [r.stream, text];
  });
}

/** Logs a runner should never print in these tests. */
const TROUBLE = /lease was taken|no longer owned|runner error|unhandled/;

test('exit code 75 twice, then success: one job, three attempts in order, each after its backoff', async () => {
  const id = await enqueue('flaky', { failures: 2, code: 75, mode: 'exit' });

  const logs = await runUntilFinal(id);

  expect(await job(id)).toEqual({
    status: 'success',
    attempt: 3,
    maxAttempts: 3,
    lastError: 'exit_code',
    error: null,
    exitCode: 0,
    signal: null,
    runnerId: RUNNER_ID,
  });
  expect(starts(id)).toBe(3);
  const rows = await timedRows(id);
  expectSeqsInOrder(rows);
  expect(shape(rows)).toEqual([
    ['stdout', '{"attempt":1}'],
    ['stdout', 'attempt 1 fails with 75'],
    ['system', 'failed after T s (exit code 75)'],
    ['system', 'attempt 1 of 3 failed (exit code 75); next attempt in 1 s'],
    ['system', `attempt 2 of 3, on runner ${RUNNER_ID}`],
    ['stdout', '{"attempt":2}'],
    ['stdout', 'attempt 2 fails with 75'],
    ['system', 'failed after T s (exit code 75)'],
    ['system', 'attempt 2 of 3 failed (exit code 75); next attempt in 2 s'],
    ['system', `attempt 3 of 3, on runner ${RUNNER_ID}`],
    ['stdout', '{"attempt":3}'],
    ['stdout', 'attempt 3 runs'],
    ['stdout', 'attempt 3 succeeds'],
    ['system', 'succeeded in T s (exit code 0)'],
  ]);
  // The backoff, on the database's clock: a lower bound only (a loaded machine may take longer).
  const at = (text: string) => rows.find((r) => r.output === text)!.at;
  const gap1 = at(`attempt 2 of 3, on runner ${RUNNER_ID}`) - at(rows[3].output);
  const gap2 = at(`attempt 3 of 3, on runner ${RUNNER_ID}`) - at(rows[8].output);
  expect(gap1).toBeGreaterThanOrEqual(1000);
  expect(gap2).toBeGreaterThanOrEqual(2000);
  expect(logs.join('\n')).not.toMatch(TROUBLE);
});

test('an exit code that `exitCodes` does not list fails at once, at attempt 1', async () => {
  const id = await enqueue('flaky', { failures: 2, code: 3, mode: 'exit' });

  const logs = await runOnce(db, runnerOptions());

  expect(await job(id)).toEqual({
    status: 'failure',
    attempt: 1,
    maxAttempts: 3,
    lastError: 'exit_code',
    error: 'exit_code',
    exitCode: 3,
    signal: null,
    runnerId: RUNNER_ID,
  });
  expect(starts(id)).toBe(1);
  expect(shape(await statusRows(db, id))).toEqual([
    ['stdout', '{"attempt":1}'],
    ['stdout', 'attempt 1 fails with 3'],
    ['system', 'failed after T s (exit code 3)'],
  ]);
  expect(logs.join('\n')).not.toMatch(TROUBLE);
});

test('without `exitCodes` any non-zero exit code retries; due at once, the same runner claims it again', async () => {
  const id = await enqueue('flaky-any-code', { failures: 2, code: 3, mode: 'exit' });

  const logs = await runOnce(db, runnerOptions());

  expect(await job(id)).toMatchObject({ status: 'success', attempt: 3, maxAttempts: 3, lastError: 'exit_code' });
  expect(starts(id)).toBe(3);
  const rows = await statusRows(db, id);
  expectSeqsInOrder(rows);
  expect(rows.filter((r) => r.stream === 'system').map((r) => r.output.replace(/\d+\.\d\d s/, 'T s'))).toEqual([
    'failed after T s (exit code 3)',
    'attempt 1 of 3 failed (exit code 3); next attempt in 0 s',
    `attempt 2 of 3, on runner ${RUNNER_ID}`,
    'failed after T s (exit code 3)',
    'attempt 2 of 3 failed (exit code 3); next attempt in 0 s',
    `attempt 3 of 3, on runner ${RUNNER_ID}`,
    'succeeded in T s (exit code 0)',
  ]);
  // Claimed again in its own finish (a refill): the attempt that ended is not a lost lease.
  expect(logs.join('\n')).not.toMatch(TROUBLE);
});

test('attempts spent: the last failure is final, at attempt maxAttempts', async () => {
  const id = await enqueue('flaky-any-code', { failures: 5, code: 4, mode: 'exit' });

  await runOnce(db, runnerOptions());

  expect(await job(id)).toMatchObject({
    status: 'failure',
    attempt: 3,
    maxAttempts: 3,
    error: 'exit_code',
    exitCode: 4,
    lastError: 'exit_code',
  });
  expect(starts(id)).toBe(3);
  const rows = await statusRows(db, id);
  expect(rows.filter((r) => /next attempt in/.test(r.output))).toHaveLength(2);
  expect(rows.at(-1)).toMatchObject({
    stream: 'system',
    output: expect.stringMatching(/^failed after .*\(exit code 4\)$/),
  });
});

test('a timeout retries when `on` lists it', async () => {
  const id = await enqueue('flaky-timeout', { failures: 1, code: 1, mode: 'hang' });

  const logs = await runOnce(db, runnerOptions());

  expect(await job(id)).toMatchObject({ status: 'success', attempt: 2, maxAttempts: 2, lastError: 'timeout' });
  expect(starts(id)).toBe(2);
  const rows = await statusRows(db, id);
  expectSeqsInOrder(rows);
  expect(shape(rows)).toEqual([
    ['stdout', '{"attempt":1}'],
    ['stdout', 'attempt 1 hangs'],
    ['system', expect.stringMatching(/^timed out \(limit 1 s\) and was stopped after .* \(killed by SIGTERM\)$/)],
    ['system', 'attempt 1 of 2 failed (timeout); next attempt in 0 s'],
    ['system', `attempt 2 of 2, on runner ${RUNNER_ID}`],
    ['stdout', '{"attempt":2}'],
    ['stdout', 'attempt 2 runs'],
    ['stdout', 'attempt 2 succeeds'],
    ['system', 'succeeded in T s (exit code 0)'],
  ]);
  expect(logs.join('\n')).not.toMatch(TROUBLE);
});

test('a timeout that `on` does not list is final', async () => {
  const id = await enqueue('flaky-timeout-unlisted', { failures: 1, code: 1, mode: 'hang' });

  await runOnce(db, runnerOptions());

  expect(await job(id)).toMatchObject({
    status: 'failure',
    attempt: 1,
    maxAttempts: 2,
    error: 'timeout',
    lastError: 'timeout',
  });
  expect(starts(id)).toBe(1);
  expect((await statusRows(db, id)).some((r) => /next attempt/.test(r.output))).toBe(false);
});

test('spawn_failed retries by default (no `on`), and ends failure when the program never appears', async () => {
  const id = await enqueue('missing-program', {});

  await runOnce(db, runnerOptions());

  expect(await job(id)).toMatchObject({
    status: 'failure',
    attempt: 2,
    maxAttempts: 2,
    error: 'spawn_failed',
    lastError: 'spawn_failed',
  });
  expect(shape(await statusRows(db, id))).toEqual([
    ['system', 'could not start: program not found or not executable: P'],
    ['system', 'attempt 1 of 2 failed (spawn failed); next attempt in 0 s'],
    ['system', `attempt 2 of 2, on runner ${RUNNER_ID}`],
    ['system', 'could not start: program not found or not executable: P'],
  ]);
});

test('a retry by hand: the runner runs the next attempt after the earlier output, and says which', async () => {
  const id = await enqueue('flaky', { failures: 1, code: 3, mode: 'exit' });
  await runOnce(db, runnerOptions());
  expect(await job(id)).toMatchObject({ status: 'failure', attempt: 1 });

  expect(await queue.retryJob(id, 'tester', { owner: 'tester' }, () => ({ blockOnFailure: false }))).toEqual({
    result: 'retried',
    status: 'pending',
    attempt: 2,
  });
  await runOnce(db, runnerOptions());

  expect(await job(id)).toMatchObject({ status: 'success', attempt: 2, maxAttempts: 3, lastError: 'exit_code' });
  const rows = await statusRows(db, id);
  expectSeqsInOrder(rows);
  expect(shape(rows)).toEqual([
    ['stdout', '{"attempt":1}'],
    ['stdout', 'attempt 1 fails with 3'],
    ['system', 'failed after T s (exit code 3)'],
    ['system', 'retried by tester: attempt 2'],
    ['system', `attempt 2 of 3, on runner ${RUNNER_ID}`],
    ['stdout', '{"attempt":2}'],
    ['stdout', 'attempt 2 runs'],
    ['stdout', 'attempt 2 succeeds'],
    ['system', 'succeeded in T s (exit code 0)'],
  ]);
});

test('cancel while the job waits for its next attempt: cancelled at once, never started again', async () => {
  const id = await enqueue('flaky', { failures: 2, code: 75, mode: 'exit' });
  const { runner } = makeRunner(db, { ...runnerOptions(), once: false });
  const running = runner.run();
  try {
    await waitFor(async () => (await job(id)).attempt === 2);
    expect(await job(id)).toMatchObject({ status: 'pending', attempt: 2 });
    expect(await queue.cancelJob(id, 'tester', { owner: 'tester' })).toEqual({
      result: 'cancelled',
      status: 'cancelled',
    });
    // A probe due after the cancelled job would have been (1 s backoff): once it has run, the
    // runner has claimed past that time, and would have taken the cancelled job first.
    const probe = (
      await queue.enqueue(
        checkJobRequest(
          catalog,
          { username: 'tester', isAdmin: false },
          { task: 'flaky', params: { failures: 0, code: 1, mode: 'exit' }, delaySec: 2 },
        ),
      )
    ).id;
    await waitFor(async () => (await job(probe)).status === 'success');
    expect(await job(probe)).toMatchObject({ status: 'success' });
  } finally {
    await runner.stop(5000);
    await running;
  }
  expect(await job(id)).toMatchObject({ status: 'cancelled', attempt: 2, lastError: 'exit_code' });
  expect(starts(id)).toBe(1);
});
