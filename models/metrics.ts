// What GET /metrics reads: the queue's gauges from the Jobs table and each runner's last report from
// JobRunners (written by Queue.reportRunner); the report's format; the process metrics of both daemons.
import type { NudgeTarget } from './nudge';
import { collectDefaultMetrics, Registry, type Metric } from 'prom-client';
import { QueryTypes } from 'sequelize';
import type { Database } from './database';

/**
 * A runner's report: its registry as prom-client's `getMetricsAsJSON()` gives it (counters count
 * from the runner's start), which the API re-exposes with a `runner` label.
 */
export interface RunnerReport {
  version: typeof RUNNER_REPORT_VERSION;
  metrics: ReportedMetric[];
  /** Where the runner hears wake-up nudges (models/nudge.ts); absent when they are off. */
  nudge?: NudgeTarget;
  /** The runner's host and process (GET /runners); absent in reports of older runners. */
  host?: string;
  pid?: number;
  /** How often it reports: GET /runners calls a runner stale after a few of these without one. */
  reportMs?: number;
  /** Set on the last report of a runner that stopped (drained, or ran once): it is not expected again. */
  stopped?: boolean;
}

/** Reports of version 1 (a JSON object of counters and bucket counts) had no version field. */
export const RUNNER_REPORT_VERSION = 2;

export type ReportedMetricType = 'counter' | 'gauge' | 'histogram' | 'summary';

export interface ReportedMetric {
  name: string;
  help: string;
  type: ReportedMetricType;
  values: ReportedSample[];
}

export interface ReportedSample {
  labels: Record<string, string | number>;
  value: number;
  /** The sample's own name where it differs from the family's (`_bucket`, `_sum`, `_count`). */
  metricName?: string;
}

export interface RunnerRow {
  id: string;
  /** Seconds since its last report, on the database clock. */
  reportAgeSec: number;
  /** Null when this version cannot read the report (written by another version mid-upgrade). */
  metrics: ReportedMetric[] | null;
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

let processMetrics: Registry | null = null;

/**
 * prom-client's gauges named like counters, which `promtool check metrics` rejects; each is the sum
 * of its `nodejs_active_*{type}` family, which stays.
 */
const LEFT_OUT_DEFAULT_METRICS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/**
 * Adds this process's default metrics (CPU, memory, file descriptors, event-loop lag, GC, heap,
 * Node version) to `registry`. They are collected once per process and shared by every registry:
 * each `collectDefaultMetrics` call starts a GC observer and a lag monitor that are never stopped.
 */
export function registerProcessMetrics(registry: Registry): void {
  if (!processMetrics) {
    processMetrics = new Registry();
    collectDefaultMetrics({ register: processMetrics });
    for (const name of LEFT_OUT_DEFAULT_METRICS) processMetrics.removeSingleMetric(name);
  }
  // getMetricsAsArray() is typed loosely; what it holds are the collectors themselves.
  for (const metric of processMetrics.getMetricsAsArray()) registry.registerMetric(metric as unknown as Metric);
}

/** What a runner stores in JobRunners: its registry's JSON, without prom-client's cluster aggregator hints. */
export function runnerReport(metrics: Awaited<ReturnType<Registry['getMetricsAsJSON']>>): RunnerReport {
  return {
    version: RUNNER_REPORT_VERSION,
    metrics: metrics.map((m) => ({
      name: m.name,
      help: m.help,
      // prom-client's typings say an enum; at run time it is the exposition's type word.
      type: String(m.type) as ReportedMetricType,
      values: m.values.map((v: { labels: object; value: number; metricName?: string }) => ({
        labels: v.labels as ReportedSample['labels'],
        value: v.value,
        metricName: v.metricName,
      })),
    })),
  };
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES: readonly string[] = ['counter', 'gauge', 'histogram', 'summary'];

/**
 * The metrics of a stored report, or null when it is not a report this version reads. A metric or
 * sample that is malformed is left out (it would make the whole exposition unreadable).
 */
export function parseRunnerReport(text: string): ReportedMetric[] | null {
  let report: unknown;
  try {
    report = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isObject(report) || report.version !== RUNNER_REPORT_VERSION || !Array.isArray(report.metrics)) return null;
  const metrics: ReportedMetric[] = [];
  for (const m of report.metrics as unknown[]) {
    if (!isObject(m) || typeof m.name !== 'string' || !METRIC_NAME.test(m.name)) continue;
    if (typeof m.help !== 'string' || typeof m.type !== 'string' || !TYPES.includes(m.type)) continue;
    if (!Array.isArray(m.values)) continue;
    const values = (m.values as unknown[]).map(parseSample).filter((v) => v !== null);
    metrics.push({ name: m.name, help: m.help, type: m.type as ReportedMetricType, values });
  }
  return metrics;
}

function parseSample(v: unknown): ReportedSample | null {
  if (!isObject(v) || !isObject(v.labels)) return null;
  // JSON writes NaN and ±Infinity as null; a gauge may hold NaN (an event-loop mean before any sample).
  const value = v.value === null ? NaN : v.value;
  if (typeof value !== 'number') return null;
  const labels: Record<string, string | number> = {};
  for (const [k, l] of Object.entries(v.labels)) {
    if (!LABEL_NAME.test(k) || (typeof l !== 'string' && typeof l !== 'number')) return null;
    labels[k] = l;
  }
  if (v.metricName === undefined) return { labels, value };
  if (typeof v.metricName !== 'string' || !METRIC_NAME.test(v.metricName)) return null;
  return { labels, value, metricName: v.metricName };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export async function readQueueGauges(db: Database): Promise<QueueGauges> {
  const select = <T extends object>(sql: string) => db.sequelize.query<T>(sql, { type: QueryTypes.SELECT });
  const byStatus: Record<string, number> = { pending: 0, running: 0, success: 0, failure: 0, cancelled: 0 };
  for (const row of await select<{ status: string; n: number }>(db.driver.statements.jobCountsByStatus)) {
    byStatus[row.status] = Number(row.n);
  }
  const [due] = await select<{ n: number; age: number | null }>(db.driver.statements.dueJobs);
  return { byStatus, due: Number(due.n), oldestDueAgeSec: Math.max(0, Number(due.age ?? 0)) };
}

/** Runners that reported within the window, by id. */
export async function readRunnerRows(db: Database): Promise<RunnerRow[]> {
  const rows = await db.sequelize.query<{ id: string; report: string; age: number }>(
    db.driver.statements.runnerReports(RUNNER_REPORT_WINDOW_SEC * 1000),
    { type: QueryTypes.SELECT },
  );
  return rows.map((row) => ({
    id: row.id,
    reportAgeSec: Math.max(0, Number(row.age)),
    metrics: parseRunnerReport(row.report),
  }));
}

/** Reports of runners gone for longer than `olderThanSec` (the prune command). */
export async function pruneRunnerRows(db: Database, olderThanSec: number): Promise<number> {
  return (await db.sequelize.query(db.driver.statements.pruneRunnerReports(Math.floor(olderThanSec) * 1000), {
    type: QueryTypes.BULKDELETE,
  })) as unknown as number;
}
