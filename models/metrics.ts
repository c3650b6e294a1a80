// What GET /metrics shows: the queue's gauges read from the Jobs table, and each runner's own
// counters and histograms as it last reported them (JobRunners, written by Queue.reportRunner).
import { QueryTypes } from 'sequelize';
import { sqlAgo, sqlNow, sqlSecondsSince } from './clock';
import type { Database } from './database';

export const JOB_DURATION_BUCKETS = [0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 7200];
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface HistogramSnapshot {
  /** Upper bounds in seconds; `counts` has one more entry, for +Inf. Counts are per bucket, not cumulative. */
  le: number[];
  counts: number[];
  sum: number;
  count: number;
}

/** A Prometheus-style histogram in seconds: observations only add, so it is a counter set. */
export class Histogram {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;

  constructor(private readonly le: readonly number[]) {
    this.counts = new Array<number>(le.length + 1).fill(0);
  }

  observe(seconds: number): void {
    let i = 0;
    while (i < this.le.length && seconds > this.le[i]) i++;
    this.counts[i]++;
    this.sum += seconds;
    this.count++;
  }

  snapshot(): HistogramSnapshot {
    return { le: [...this.le], counts: [...this.counts], sum: this.sum, count: this.count };
  }
}

/** One runner's report: everything counts from the runner's start. */
export interface RunnerReport {
  slots: number;
  busy: number;
  draining: boolean;
  /** Seconds since the last claim that took a job, or null when none yet. */
  lastClaimAgoSec: number | null;
  databaseErrors: number;
  jobsStarted: number;
  /** Finished jobs by status (success, failure, cancelled). */
  finished: Record<string, number>;
  jobDuration: HistogramSnapshot;
  claimLatency: HistogramSnapshot;
  flushLatency: HistogramSnapshot;
  finishLatency: HistogramSnapshot;
}

export interface RunnerRow {
  id: string;
  /** Seconds since its last report, on the database clock. */
  reportAgeSec: number;
  report: RunnerReport;
}

export interface QueueGauges {
  /** Rows in Jobs by status (includes finished jobs not yet pruned). */
  byStatus: Record<string, number>;
  /** Pending jobs whose runAt has come. */
  due: number;
  /** Age of the oldest due pending job in seconds; 0 when none is due. */
  oldestDueAgeSec: number;
}

/** Reports older than this are left out: that runner is gone (or cannot reach the database). */
export const RUNNER_REPORT_WINDOW_SEC = 600;

export async function readQueueGauges(db: Database): Promise<QueueGauges> {
  const select = <T extends object>(sql: string) => db.sequelize.query<T>(sql, { type: QueryTypes.SELECT });
  const byStatus: Record<string, number> = { pending: 0, running: 0, success: 0, failure: 0, cancelled: 0 };
  for (const row of await select<{ status: string; n: number }>(
    'SELECT status, COUNT(*) AS n FROM Jobs GROUP BY status',
  )) {
    byStatus[row.status] = Number(row.n);
  }
  const [due] = await select<{ n: number; age: number | null }>(
    `SELECT COUNT(*) AS n, ${sqlSecondsSince(db.dialect, 'MIN(runAt)')} AS age FROM Jobs WHERE status = 'pending' AND runAt <= ${sqlNow(db.dialect)}`,
  );
  return { byStatus, due: Number(due.n), oldestDueAgeSec: Math.max(0, Number(due.age ?? 0)) };
}

export async function readRunnerRows(db: Database): Promise<RunnerRow[]> {
  const rows = await db.sequelize.query<{ id: string; report: string; age: number }>(
    `SELECT id, report, ${sqlSecondsSince(db.dialect, 'seenAt')} AS age FROM JobRunners
      WHERE seenAt >= ${sqlAgo(db.dialect, RUNNER_REPORT_WINDOW_SEC * 1000)} ORDER BY id`,
    { type: QueryTypes.SELECT },
  );
  const result: RunnerRow[] = [];
  for (const row of rows) {
    try {
      result.push({
        id: row.id,
        reportAgeSec: Math.max(0, Number(row.age)),
        report: JSON.parse(row.report) as RunnerReport,
      });
    } catch {
      // A report this version cannot read (written by another version mid-upgrade): left out.
    }
  }
  return result;
}

/** Reports of runners gone for longer than `olderThanSec` (the prune command). */
export async function pruneRunnerRows(db: Database, olderThanSec: number): Promise<number> {
  return (await db.sequelize.query(
    `DELETE FROM JobRunners WHERE seenAt < ${sqlAgo(db.dialect, Math.floor(olderThanSec) * 1000)}`,
    { type: QueryTypes.BULKDELETE },
  )) as unknown as number;
}
