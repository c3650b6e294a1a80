// Serial groups across real runner processes: 3 runners × 4 slots drain 60 jobs of 6 interleaved groups
// with varied priorities, some enqueued while they run. Each job runs once; a group's jobs run one at a
// time in id order; different groups run side by side.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { QueryTypes } from 'sequelize';
import type { DatabaseConfig } from '../config';
import type { Database } from '../models/database';
import { Queue } from '../models/queue';
import { TaskCatalog } from '../tasks/catalog';
import { checkJobRequest } from '../tasks/job-request';
import { ROOT, databaseEnv, freshDatabase, sqlOf } from './helpers/database';
import { RUNNER_TASKS_FILE, killQuietly, waitFor } from './helpers/runner';
import { toMs } from './queue/harness';

const RUNNERS = 3;
const GROUPS = 6;
const JOBS = 60;
// Long enough that jobs of different groups are seen side by side; the assertions never time anything.
const WORK_MS = 100;

let db: Database;
let config: DatabaseConfig;
let tmp: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  ({ db, config } = await freshDatabase(`cj_test_groups_multi_w${process.env.JEST_WORKER_ID ?? '0'}`));
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cj-groups-multi-'));
});

afterAll(async () => {
  killQuietly(children.flatMap((c) => (c.pid && c.exitCode === null ? [c.pid] : [])));
  await db.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

interface Runner {
  exited: Promise<{ code: number | null; log: string }>;
  child: ChildProcess;
}

/** A long-running `dist/job-runner.js`, stopped by SIGTERM once the queue is empty. */
function startRunner(index: number): Runner {
  const child = spawn(process.execPath, [path.join(ROOT, 'dist', 'job-runner.js')], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      ...databaseEnv(config),
      JOB_TASKS_FILE: RUNNER_TASKS_FILE,
      JOB_RUNNER_CONCURRENCY: '4',
      JOB_RUNNER_POLL_MS: '100',
      JOB_RUNNER_ID: `groups-${index}`,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let log = '';
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  const exited = new Promise<{ code: number | null; log: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, log }));
  });
  return { child, exited };
}

interface Interval {
  start: bigint;
  end: bigint;
}

/** The stamp file's intervals by job id, and how many times each job started and ended. */
function readStamps(file: string): {
  intervals: Map<number, Interval>;
  starts: Map<number, number>;
  ends: Map<number, number>;
} {
  const intervals = new Map<number, Interval>();
  const starts = new Map<number, number>();
  const ends = new Map<number, number>();
  for (const line of fs.readFileSync(file, 'utf8').split('\n').filter(Boolean)) {
    const [what, idText, ns] = line.split(' ');
    const id = Number(idText);
    const interval = intervals.get(id) ?? { start: -1n, end: -1n };
    if (what === 'start') {
      interval.start = BigInt(ns);
      starts.set(id, (starts.get(id) ?? 0) + 1);
    } else {
      interval.end = BigInt(ns);
      ends.set(id, (ends.get(id) ?? 0) + 1);
    }
    intervals.set(id, interval);
  }
  return { intervals, starts, ends };
}

test(`${RUNNERS} runner processes × 4 slots run ${JOBS} jobs of ${GROUPS} groups: one at a time per group, in id order, groups in parallel`, async () => {
  const queue = new Queue(db);
  const catalog = new TaskCatalog(RUNNER_TASKS_FILE);
  const stampFile = path.join(tmp, 'stamps');
  const requests = Array.from({ length: JOBS }, (_, i) =>
    checkJobRequest(
      catalog,
      { username: 'tester', isAdmin: true },
      // Groups interleaved; priorities spread over -100..100 so that later jobs often outrank earlier ones.
      {
        task: 'stamp',
        params: { res: (i % GROUPS) + 1, file: stampFile, ms: WORK_MS },
        priority: ((i * 37) % 201) - 100,
      },
    ),
  );
  const groupOf = new Map<number, number>();
  const remember = (ids: number[], from: number) => ids.forEach((id, k) => groupOf.set(id, (from + k) % GROUPS));

  // Half before the runners start (several per INSERT), the rest one by one while they run.
  const half = JOBS / 2;
  for (let i = 0; i < half; i += 10)
    remember(
      (await queue.enqueueMany(requests.slice(i, i + 10))).map((e) => e.id),
      i,
    );
  const runners = Array.from({ length: RUNNERS }, (_, i) => startRunner(i));
  for (let i = half; i < JOBS; i++) remember([(await queue.enqueue(requests[i])).id], i);

  const unfinished = async () => {
    const [row] = await sqlOf(db).query<{ n: number }>(
      "SELECT COUNT(*) AS n FROM Jobs WHERE status IN ('pending', 'running')",
      { type: QueryTypes.SELECT },
    );
    return Number(row.n);
  };
  await waitFor(async () => (await unfinished()) === 0, 180_000, 100);
  for (const runner of runners) runner.child.kill('SIGTERM');
  const results = await Promise.all(runners.map((r) => r.exited));
  for (const result of results) {
    expect(result.code).toBe(0);
    expect(result.log).not.toMatch(/no longer owned|runner error|unhandled/);
  }

  // Every job succeeded, and ran exactly once.
  const jobs = (
    await sqlOf(db).query<{
      id: number;
      status: string;
      groupKey: string;
      runnerId: string;
      startedAt: unknown;
      finishedAt: unknown;
    }>('SELECT id, status, groupKey, runnerId, startedAt, finishedAt FROM Jobs ORDER BY id', {
      type: QueryTypes.SELECT,
    })
  ).map((j) => ({ ...j, id: Number(j.id), startedAt: toMs(j.startedAt)!, finishedAt: toMs(j.finishedAt)! }));
  expect(jobs).toHaveLength(JOBS);
  expect(jobs.filter((j) => j.status !== 'success')).toEqual([]);
  for (const job of jobs) expect(job.groupKey).toBe(`res:${groupOf.get(job.id)! + 1}`);
  const { intervals, starts, ends } = readStamps(stampFile);
  for (const job of jobs) {
    expect([job.id, starts.get(job.id), ends.get(job.id)]).toEqual([job.id, 1, 1]);
  }
  expect(new Set(jobs.map((j) => j.runnerId)).size).toBeGreaterThan(1);

  // Within a group: in id order, one at a time, by the processes' own clock and by the database's.
  for (let g = 0; g < GROUPS; g++) {
    const group = jobs.filter((j) => groupOf.get(j.id) === g);
    expect(group).toHaveLength(JOBS / GROUPS);
    const byStart = [...group].sort((a, b) => (intervals.get(a.id)!.start < intervals.get(b.id)!.start ? -1 : 1));
    expect(byStart.map((j) => j.id)).toEqual(group.map((j) => j.id));
    for (let k = 1; k < group.length; k++) {
      const [before, after] = [group[k - 1], group[k]];
      expect(intervals.get(after.id)!.start).toBeGreaterThanOrEqual(intervals.get(before.id)!.end);
      expect(after.startedAt).toBeGreaterThanOrEqual(before.finishedAt);
    }
  }

  // Across groups: some jobs of different groups ran at the same time.
  const overlapping = jobs.some((a) =>
    jobs.some((b) => {
      if (groupOf.get(a.id) === groupOf.get(b.id)) return false;
      const [x, y] = [intervals.get(a.id)!, intervals.get(b.id)!];
      return x.start < y.end && y.start < x.end;
    }),
  );
  expect(overlapping).toBe(true);

  // No group is left held.
  expect(await queue.listGroups()).toEqual([]);
});
