// Drives a real Runner in-process against the test database, and reads back what it wrote.
import fs from 'node:fs';
import path from 'node:path';
import { QueryTypes } from 'sequelize';
import type { RunnerConfig } from '../../config';
import type { Database } from '../../models/database';
import { createLogger, type Logger } from '../../log';
import { Queue } from '../../models/queue';
import { findPrlimit, findSetpriv } from '../../runner/job-process';
import { Launcher } from '../../runner/launcher';
import { Runner } from '../../runner/runner';
import { TaskCatalog } from '../../tasks/catalog';
import { ROOT, sqlOf } from './database';

export const RUNNER_TASKS_FILE = path.join(ROOT, 'test', 'fixtures', 'runner', 'tasks.json');
export const RUNNER_ID = 'test-runner';

function runnerConfig(overrides: Partial<RunnerConfig> = {}): RunnerConfig {
  return {
    pollMs: 100,
    concurrency: 2,
    // As loadConfig makes it: as many claimed ahead as the concurrency.
    claimAhead: overrides.concurrency ?? 2,
    cwd: ROOT,
    id: RUNNER_ID,
    heartbeatMs: 200,
    leaseMs: 2000,
    outputMaxBytes: 16 * 1024 * 1024,
    shutdownGraceMs: 5000,
    // Polling alone, unless a test asks for nudges.
    nudgeAddress: null,
    stateDir: null,
    ...overrides,
  };
}

/** The runner's own environment in these tests: a PATH that finds node and sleep, and nothing else unless asked. */
export function baseRunnerEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8', HOME: '/', ...extra };
}

export interface TestRunnerOptions {
  config?: Partial<RunnerConfig>;
  runnerEnv?: Record<string, string>;
  once?: boolean;
  killGraceMs?: number;
  /** Another task file than the runner fixtures' (the same one the API under test reads). */
  tasksFile?: string;
  /** Fork jobs in the test's own process instead of a job launcher, as a runner whose launcher died does. */
  inProcess?: boolean;
  /** How often the runner reports to JobRunners (15 s by default). */
  reportMs?: number;
  /** The runner's shortJobMs and aheadMaxWaitMs (claims ahead of free slots). */
  shortJobMs?: number;
  aheadMaxWaitMs?: number;
}

export const LAUNCHER_MAIN = path.join(ROOT, 'dist', 'runner', 'launcher-main.js');

/** The compiled job launcher, as the daemon starts it (the runner closes it when it stops). */
export function startLauncher(log: Logger): Launcher {
  const launcher = Launcher.start(log, LAUNCHER_MAIN);
  if (!launcher) throw new Error(`${LAUNCHER_MAIN} is missing: run npm run build first`);
  return launcher;
}

export function makeRunner(db: Database, options: TestRunnerOptions = {}): { runner: Runner; logs: string[] } {
  const logs: string[] = [];
  const log = createLogger({ write: (_level, line) => logs.push(line), journald: false, level: 'debug' });
  const runner = new Runner({
    queue: new Queue(db),
    catalog: new TaskCatalog(options.tasksFile ?? RUNNER_TASKS_FILE),
    config: runnerConfig(options.config),
    runnerEnv: options.runnerEnv ?? baseRunnerEnv(),
    prlimitPath: findPrlimit(),
    setprivPath: findSetpriv(),
    killGraceMs: options.killGraceMs ?? 1000,
    once: options.once ?? true,
    reportMs: options.reportMs,
    shortJobMs: options.shortJobMs,
    aheadMaxWaitMs: options.aheadMaxWaitMs,
    launcher: options.inProcess ? null : startLauncher(log),
    log,
  });
  return { runner, logs };
}

/** Runs every due job to its end (once mode) and returns the runner's log. */
export async function runOnce(db: Database, options: TestRunnerOptions = {}): Promise<string[]> {
  const { runner, logs } = makeRunner(db, { ...options, once: true });
  await runner.run();
  return logs;
}

/** A job inserted by plain SQL, as another program would (no command, default priority unless given). */
export async function insertJob(
  db: Database,
  task: string,
  params: unknown,
  extra: { createdBy?: string | null; priority?: number } = {},
): Promise<number> {
  const columns = ['task', 'params', 'createdBy'];
  const values: unknown[] = [task, JSON.stringify(params), extra.createdBy === undefined ? 'tester' : extra.createdBy];
  if (extra.priority !== undefined) {
    columns.push('priority');
    values.push(extra.priority);
  }
  return sqlOf(db).insert(
    `INSERT INTO Jobs (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`,
    values,
  );
}

export interface JobRow {
  id: number;
  task: string;
  command: string | null;
  status: string;
  runnerId: string | null;
  exitCode: number | null;
  signal: string | null;
  error: string | null;
  cancelRequestedAt: unknown;
  cancelledBy: string | null;
  startedAt: unknown;
  finishedAt: unknown;
}

export async function jobRow(db: Database, id: number): Promise<JobRow> {
  const [row] = await sqlOf(db).query<JobRow>(
    'SELECT id, task, command, status, runnerId, exitCode, `signal`, error, cancelRequestedAt, cancelledBy, startedAt, finishedAt FROM Jobs WHERE id = ?',
    { type: QueryTypes.SELECT, replacements: [id] },
  );
  if (!row) throw new Error(`job ${id} not found`);
  return {
    ...row,
    id: Number(row.id),
    exitCode: row.exitCode === null ? null : Number(row.exitCode),
  };
}

export interface StatusRow {
  id: number;
  seq: number;
  stream: 'stdout' | 'stderr' | 'system';
  output: string;
}

/** A job's output rows in id order. */
export async function statusRows(db: Database, jobId: number): Promise<StatusRow[]> {
  const rows = await sqlOf(db).query<StatusRow>(
    'SELECT id, seq, stream, output FROM JobStatuses WHERE jobId = ? ORDER BY id',
    { type: QueryTypes.SELECT, replacements: [jobId] },
  );
  return rows.map((r) => ({ ...r, id: Number(r.id), seq: Number(r.seq) }));
}

/** In id order, seq runs 1..n: nothing stored twice, nothing out of order, nothing missing. */
export function expectSeqsInOrder(rows: StatusRow[]): void {
  expect(rows.map((r) => r.seq)).toEqual(rows.map((_, i) => i + 1));
  for (let i = 1; i < rows.length; i++) expect(rows[i].id).toBeGreaterThan(rows[i - 1].id);
}

export const lines = (rows: StatusRow[], stream: StatusRow['stream']): string[] =>
  rows.filter((r) => r.stream === stream).map((r) => r.output);

/** Polls `check` until it returns true or `timeoutMs` passes; the caller asserts the final state. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 30_000,
  everyMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Whether a process exists and is not a zombie (a zombie runs nothing; it only waits to be reaped). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Waits (generously) for every pid to be gone and returns the ones still alive. */
export async function survivors(pids: number[], timeoutMs = 20_000): Promise<number[]> {
  await waitFor(() => pids.every((pid) => !isAlive(pid)), timeoutMs);
  return pids.filter(isAlive);
}

/** Kills what a failed test may have left behind (pids printed by fixtures). */
export function killQuietly(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}
