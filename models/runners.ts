// What GET /runners shows of the fleet: each runner's last report (JobRunners, written by
// Queue.reportRunner) read on the database clock, and the jobs the Jobs table says it runs now.
import type { Database } from './database';
import { parseRunnerReport, type ReportedMetric } from './metrics';
import { readTime, sqlIn } from './sql';

/** Runners silent for longer than this are not listed (gone; `prune` deletes their rows). */
export const RUNNER_LIST_WINDOW_SEC = 86_400;
/** A runner is stale when this many of its report intervals passed without a report. */
export const STALE_AFTER_REPORTS = 3;
/** The interval of a runner whose report does not say (older versions): the default. */
const DEFAULT_REPORT_SEC = 15;

export interface RunnerJob {
  id: number;
  task: string;
  createdBy: string | null;
  startedAt: Date | null;
  attempt: number;
}

export interface RunnerView {
  id: string;
  /** From the report; null when an older runner did not say. */
  host: string | null;
  pid: number | null;
  /** The Node.js version the runner runs on (its `nodejs_version_info`). */
  nodeVersion: string | null;
  /** Where it hears wake-up nudges (`address:port`); null when they are off. Its key is never shown. */
  nudgeAddress: string | null;
  startedAt: Date | null;
  lastReportAt: Date | null;
  /** Seconds since its last report, on the database clock. */
  reportAgeSec: number;
  reportEverySec: number;
  /** Its last report said it stopped (drained at a signal, or ran once): it is not expected again. */
  stopped: boolean;
  /** Not stopped, yet no report for STALE_AFTER_REPORTS intervals: it died, or cannot reach the database. */
  stale: boolean;
  /** From its last report (null when this version cannot read it). */
  slots: number | null;
  busySlots: number | null;
  draining: boolean;
  jobsStarted: number | null;
  /** Jobs whose row says this runner holds them now (live, unlike busySlots). */
  runningJobs: RunnerJob[];
}

export interface RunnerList {
  runners: RunnerView[];
  /** Runners whose last report is older than RUNNER_LIST_WINDOW_SEC (not listed). */
  notListed: number;
}

interface RunnerRowRaw {
  id: string;
  startedAt: unknown;
  seenAt: unknown;
  report: string;
  age: number | string;
}

/** Live runners by id, then stale and stopped ones, the most recently heard first. */
export async function listRunners(db: Database): Promise<RunnerList> {
  const sql = sqlIn(db.sequelize);
  const s = db.driver.statements;
  const windowMs = RUNNER_LIST_WINDOW_SEC * 1000;
  const rows = await sql.select<RunnerRowRaw>(s.runnerReports(windowMs));
  const [{ n }] = await sql.select<{ n: number | string }>(s.runnersNotSeen(windowMs));
  const jobs = rows.length
    ? await sql.select<RunnerJob & { runnerId: string; startedAt: unknown }>(s.runningJobsOf, {
        ids: rows.map((r) => r.id),
      })
    : [];
  const runners = rows.map((row) =>
    runnerView(
      row,
      jobs
        .filter((j) => j.runnerId === row.id)
        .map((j) => ({
          id: Number(j.id),
          task: j.task,
          createdBy: j.createdBy,
          startedAt: readTime(j.startedAt),
          attempt: Number(j.attempt),
        })),
    ),
  );
  const gone = (r: RunnerView) => r.stale || r.stopped;
  const live = runners.filter((r) => !gone(r));
  const silent = runners.filter(gone).sort((a, b) => a.reportAgeSec - b.reportAgeSec);
  return { runners: [...live, ...silent], notListed: Number(n) };
}

function runnerView(row: RunnerRowRaw, runningJobs: RunnerJob[]): RunnerView {
  const about = reportFacts(row.report);
  const metrics = parseRunnerReport(row.report);
  const reportEverySec = about.reportMs ? about.reportMs / 1000 : DEFAULT_REPORT_SEC;
  const reportAgeSec = Math.max(0, Number(row.age));
  return {
    id: row.id,
    host: about.host,
    pid: about.pid,
    nodeVersion: metrics ? (labelOf(metrics, 'nodejs_version_info', 'version') ?? null) : null,
    nudgeAddress: about.nudgeAddress,
    startedAt: readTime(row.startedAt),
    lastReportAt: readTime(row.seenAt),
    reportAgeSec,
    reportEverySec,
    stopped: about.stopped,
    stale: !about.stopped && reportAgeSec > STALE_AFTER_REPORTS * reportEverySec,
    slots: metrics ? valueOf(metrics, 'container_jobs_runner_slots') : null,
    busySlots: metrics ? valueOf(metrics, 'container_jobs_runner_busy_slots') : null,
    draining: metrics ? valueOf(metrics, 'container_jobs_runner_draining') === 1 : false,
    jobsStarted: metrics ? valueOf(metrics, 'container_jobs_runner_jobs_started_total') : null,
    runningJobs,
  };
}

/** The report's plain fields, each null when missing or of the wrong type (a report is never trusted). */
function reportFacts(text: string): {
  host: string | null;
  pid: number | null;
  reportMs: number | null;
  nudgeAddress: string | null;
  stopped: boolean;
} {
  let report: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) report = parsed as typeof report;
  } catch {
    // Not JSON: no facts.
  }
  const text255 = (v: unknown) => (typeof v === 'string' && v.length <= 255 ? v : null);
  const positive = (v: unknown) => (Number.isSafeInteger(v) && (v as number) > 0 ? (v as number) : null);
  const nudge = report.nudge as Record<string, unknown> | undefined;
  const address = typeof nudge === 'object' && nudge !== null ? text255(nudge.address) : null;
  const port = typeof nudge === 'object' && nudge !== null ? positive(nudge.port) : null;
  return {
    host: text255(report.host),
    pid: positive(report.pid),
    reportMs: positive(report.reportMs),
    stopped: report.stopped === true,
    // An IPv6 address in brackets, as in a URL, so the port stays apart.
    nudgeAddress: address && port ? `${address.includes(':') ? `[${address}]` : address}:${port}` : null,
  };
}

/** The value of an unlabelled gauge or counter, or null when the report has none. */
function valueOf(metrics: ReportedMetric[], name: string): number | null {
  const value = metrics.find((m) => m.name === name)?.values[0]?.value;
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

function labelOf(metrics: ReportedMetric[], name: string, label: string): string | undefined {
  const value = metrics.find((m) => m.name === name)?.values[0]?.labels[label];
  return value === undefined ? undefined : String(value);
}
