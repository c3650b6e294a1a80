// Chaos with retries (README, "Retries"): a lost runner's job runs again on another runner only when
// its template lists runner_lost; a runner frozen past its lease never writes into the next attempt.
// Real runner processes, real database.
import fs from 'node:fs';
import path from 'node:path';
import { QueryTypes } from 'sequelize';
import { Queue } from '../../models/queue';
import { TaskCatalog } from '../../tasks/catalog';
import { checkJobRequest } from '../../tasks/job-request';
import { ROOT, sqlOf } from '../helpers/database';
import {
  startRunner,
  useChaosDatabase,
  waitForExit,
  waitForFinal,
  waitForLog,
  worker,
  type RunnerProcess,
} from '../helpers/chaos';
import { expectSeqsInOrder, lines, statusRows, survivors, waitFor, type StatusRow } from '../helpers/runner';

const TASKS_FILE = path.join(ROOT, 'test', 'fixtures', 'retry', 'tasks.json');
const catalog = new TaskCatalog(TASKS_FILE);

// `markers` is the fixture's RETRY_DIR: attempts-<id> (a line a start), speak-<id>, release-<id>.
const chaos = useChaosDatabase('retry_lost', { markers: true });

/** Enqueues as POST /jobs would (maxAttempts from the template). */
async function enqueue(task: string, mode: 'hang' | 'tick'): Promise<number> {
  const job = checkJobRequest(
    catalog,
    { username: 'tester', isAdmin: false },
    { task, params: { failures: 1, code: 1, mode } },
  );
  return (await new Queue(chaos.db).enqueue(job)).id;
}

function runner(id: string, env: Record<string, string> = {}): RunnerProcess {
  return startRunner(chaos.config, {
    id,
    env: { JOB_TASKS_FILE: TASKS_FILE, RETRY_DIR: chaos.markers, ...env },
  });
}

interface AttemptRow {
  status: string;
  attempt: number;
  maxAttempts: number;
  lastError: string | null;
  error: string | null;
  runnerId: string | null;
}

async function attemptRow(id: number): Promise<AttemptRow> {
  const [row] = await sqlOf(chaos.db).query<AttemptRow>(
    'SELECT status, attempt, maxAttempts, lastError, error, runnerId FROM Jobs WHERE id = ?',
    { type: QueryTypes.SELECT, replacements: [id] },
  );
  return { ...row, attempt: Number(row.attempt), maxAttempts: Number(row.maxAttempts) };
}

/** The pid attempt `n` printed, once its output is stored (remembered, to be killed after the file). */
async function pidOfAttempt(id: number, n: number): Promise<number> {
  const printed = (rows: StatusRow[]) =>
    lines(rows, 'stdout')
      .filter((l) => l.startsWith('{"attempt"'))
      .map((l) => JSON.parse(l) as { attempt: number; pid: number })
      .find((p) => p.attempt === n);
  await waitFor(async () => printed(await statusRows(chaos.db, id)) !== undefined);
  const found = printed(await statusRows(chaos.db, id));
  if (!found) throw new Error(`attempt ${n} of job ${id} printed no pid`);
  chaos.seenPids.push(found.pid);
  return found.pid;
}

/** How many times the fixture started for this job. */
function starts(id: number): number {
  const file = path.join(chaos.markers, `attempts-${id}`);
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n').length : 0;
}

/** The rows as [stream, text], durations and pids replaced. */
function shape(rows: StatusRow[]): [string, string][] {
  return rows.map((r) => [
    r.stream,
    r.output.replace(/\d+\.\d\d s/, 'T s').replace(/^\{"attempt":(\d+),"pid":\d+\}$/, '{"attempt":$1}'),
  ]);
}

async function stopCleanly(...runners: RunnerProcess[]): Promise<void> {
  for (const r of runners) r.child.kill('SIGTERM');
  for (const r of runners) {
    const exit = await waitForExit(r);
    if (exit?.code !== 0) console.log(r.log());
    expect(exit).toEqual({ code: 0, signal: null });
    expect(r.log()).not.toMatch(/runner error|unhandled/);
  }
}

/**
 * kill -9 of the runner of `task`'s attempt 1 (which hangs): the job's process dies with it, and a
 * second runner, up before the first dies, reaps the job after the lease.
 */
async function killRunnerMidJob(task: string, name: string) {
  const id = await enqueue(task, 'hang');
  const doomed = runner(`retry-${name}-doomed-w${worker}`);
  const firstPid = await pidOfAttempt(id, 1);
  expect(await attemptRow(id)).toMatchObject({ status: 'running', attempt: 1, runnerId: doomed.id });
  const survivor = runner(`retry-${name}-survivor-w${worker}`);
  await waitForLog(survivor, /started:/);

  process.kill(doomed.pid, 'SIGKILL');

  expect(await waitForExit(doomed)).toEqual({ code: null, signal: 'SIGKILL' });
  expect(await survivors([firstPid])).toEqual([]);
  return { id, doomed, survivor };
}

test('kill -9 mid-job, runner_lost listed: another runner retries it after the lease, and it succeeds at attempt 2', async () => {
  const { id, doomed, survivor } = await killRunnerMidJob('lost-retry', 'listed');

  const job = await waitForFinal(chaos.db, id);

  expect(job).toMatchObject({ status: 'success', runnerId: survivor.id });
  expect(await attemptRow(id)).toEqual({
    status: 'success',
    attempt: 2,
    maxAttempts: 3,
    lastError: 'runner_lost',
    error: null,
    runnerId: survivor.id,
  });
  expect(starts(id)).toBe(2);
  await pidOfAttempt(id, 2);
  const rows = await statusRows(chaos.db, id);
  expectSeqsInOrder(rows);
  expect(shape(rows)).toEqual([
    ['stdout', '{"attempt":1}'],
    ['stdout', 'attempt 1 hangs'],
    [
      'system',
      `runner ${doomed.id} stopped renewing its lease for over 2 s; attempt 1 of 3 failed (runner lost); next attempt in 0 s`,
    ],
    ['system', `attempt 2 of 3, on runner ${survivor.id}`],
    ['stdout', '{"attempt":2}'],
    ['stdout', 'attempt 2 runs'],
    ['stdout', 'attempt 2 succeeds'],
    ['system', 'succeeded in T s (exit code 0)'],
  ]);
  await waitForLog(survivor, new RegExp(`reaped 1 job\\(s\\) whose runner stopped renewing: ${id}\\b`));
  expect(survivor.log()).toMatch(new RegExp(`reaped 1 job\\(s\\) whose runner stopped renewing: ${id}\\b`));
  await stopCleanly(survivor);
});

test('kill -9 mid-job, runner_lost not listed: failure/runner_lost at attempt 1, never run again', async () => {
  const { id, doomed, survivor } = await killRunnerMidJob('lost-final', 'unlisted');

  const job = await waitForFinal(chaos.db, id);

  expect(job).toMatchObject({ status: 'failure', error: 'runner_lost' });
  expect(await attemptRow(id)).toEqual({
    status: 'failure',
    attempt: 1,
    maxAttempts: 3,
    lastError: 'runner_lost',
    error: 'runner_lost',
    runnerId: doomed.id,
  });
  const rows = await statusRows(chaos.db, id);
  expectSeqsInOrder(rows);
  expect(shape(rows)).toEqual([
    ['stdout', '{"attempt":1}'],
    ['stdout', 'attempt 1 hangs'],
    ['system', `runner ${doomed.id} stopped renewing its lease for over 2 s; job marked failed (runner_lost)`],
  ]);
  await stopCleanly(survivor);
  expect(starts(id)).toBe(1);
  expect(await attemptRow(id)).toMatchObject({ status: 'failure', attempt: 1 });
});

/**
 * SIGSTOPs `frozen` at a moment it holds no database lock (a process stopped inside a transaction
 * would hold up every other runner until it runs again): a write to the job must get through.
 */
async function freezeIdle(frozen: RunnerProcess, jobId: number): Promise<void> {
  for (let tries = 1; ; tries++) {
    process.kill(frozen.pid, 'SIGSTOP');
    const probe = sqlOf(chaos.db).query('UPDATE Jobs SET updatedAt = updatedAt WHERE id = ?', {
      replacements: [jobId],
    });
    let timer: NodeJS.Timeout | undefined;
    const through = await Promise.race([
      probe.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 1000))),
    ]);
    clearTimeout(timer);
    if (through) return;
    process.kill(frozen.pid, 'SIGCONT');
    await probe;
    if (tries >= 5) throw new Error(`runner ${frozen.id} held a database lock each time it was stopped`);
  }
}

/**
 * A runner frozen (SIGSTOP) mid-job past its lease: `fresh` reaps the job, retries it (runner_lost
 * is listed) and runs attempt 2, held running; then the frozen one runs again with attempt 1's
 * output in its pipe. Nothing of it may land: not its lines, not its outcome, not a retry of its own.
 */
async function frozenPastLease(staleId: string, freshId: string) {
  const id = await enqueue('lost-retry', 'tick');
  // A long lease of its own: the frozen runner learns of its loss from the database, not its clock.
  const stale = runner(staleId, { JOB_RUNNER_LEASE_MS: '600000', JOB_RUNNER_CONCURRENCY: '1' });
  const firstPid = await pidOfAttempt(id, 1);
  await waitFor(async () => lines(await statusRows(chaos.db, id), 'stdout').includes('attempt 1 waits'));
  const fresh = runner(freshId);
  await waitForLog(fresh, /started:/);

  await freezeIdle(stale, id);
  fs.writeFileSync(path.join(chaos.markers, `speak-${id}`), '');
  await waitFor(async () => lines(await statusRows(chaos.db, id), 'stdout').includes('attempt 2 runs'));
  expect(await attemptRow(id)).toMatchObject({ status: 'running', attempt: 2, runnerId: fresh.id });
  const rowsBefore = await statusRows(chaos.db, id);

  process.kill(stale.pid, 'SIGCONT');
  await waitForLog(stale, new RegExp(`job ${id}: (its lease was taken|no longer owned)`));
  expect(stale.log()).toMatch(new RegExp(`job ${id}: (its lease was taken|no longer owned)`));
  expect(await survivors([firstPid])).toEqual([]);
  // Attempt 2 ran on, untouched, until now.
  expect(await attemptRow(id)).toMatchObject({ status: 'running', attempt: 2, runnerId: fresh.id });
  expect(await statusRows(chaos.db, id)).toEqual(rowsBefore);

  fs.writeFileSync(path.join(chaos.markers, `release-${id}`), '');
  await waitForFinal(chaos.db, id);
  expect(await attemptRow(id)).toEqual({
    status: 'success',
    attempt: 2,
    maxAttempts: 3,
    lastError: 'runner_lost',
    error: null,
    runnerId: fresh.id,
  });
  const rows = await statusRows(chaos.db, id);
  expectSeqsInOrder(rows);
  const note = rows.findIndex((r) => r.stream === 'system');
  // Before the reaper's note, attempt 1 (as written before the freeze); after it, attempt 2 alone.
  expect(shape(rows.slice(0, note))).toEqual([
    ['stdout', '{"attempt":1}'],
    ['stdout', 'attempt 1 waits'],
  ]);
  expect(shape(rows.slice(note))).toEqual([
    [
      'system',
      `runner ${stale.id} stopped renewing its lease for over 2 s; attempt 1 of 3 failed (runner lost); next attempt in 0 s`,
    ],
    ['system', `attempt 2 of 3, on runner ${fresh.id}`],
    ['stdout', '{"attempt":2}'],
    ['stdout', 'attempt 2 runs'],
    ['stdout', 'attempt 2 succeeds'],
    ['system', 'succeeded in T s (exit code 0)'],
  ]);
  expect(starts(id)).toBe(2);
  await stopCleanly(stale, fresh);
  expect(await statusRows(chaos.db, id)).toEqual(rows);
}

test('a runner frozen past its lease writes nothing into the next attempt, which another runner runs', async () => {
  await frozenPastLease(`retry-frozen-w${worker}`, `retry-fresh-w${worker}`);
});

test('the same, when the next attempt runs under the same runner id (the attempt alone fences it)', async () => {
  const twin = `retry-twin-w${worker}`;
  await frozenPastLease(twin, twin);
});
