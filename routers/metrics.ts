// GET /metrics: Prometheus text format, for admins or `Authorization: Bearer $METRICS_TOKEN`.
// Queue gauges come from the Jobs table; claim/flush/finish latency, job durations, finished jobs
// and database errors come from each runner's last report (JobRunners), labelled by runner id.
import crypto from 'node:crypto';
import { Router, type RequestHandler } from 'express';
import type { Database } from '../models/database';
import { readQueueGauges, readRunnerRows, type HistogramSnapshot, type RunnerRow } from '../models/metrics';
import { authenticate, bearerToken, principalOf } from './auth';
import { HttpError } from './errors';

type Labels = Record<string, string>;

/** Builds the exposition text: one HELP/TYPE header per family, then its samples. */
class Exposition {
  private readonly lines: string[] = [];

  family(name: string, type: 'gauge' | 'counter' | 'histogram', help: string): this {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    return this;
  }

  sample(name: string, labels: Labels, value: number): this {
    const body = Object.entries(labels)
      .map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')}"`)
      .join(',');
    this.lines.push(`${name}${body ? `{${body}}` : ''} ${formatNumber(value)}`);
    return this;
  }

  histogram(name: string, labels: Labels, h: HistogramSnapshot): this {
    let cumulative = 0;
    h.le.forEach((le, i) => {
      cumulative += h.counts[i];
      this.sample(`${name}_bucket`, { ...labels, le: formatNumber(le) }, cumulative);
    });
    this.sample(`${name}_bucket`, { ...labels, le: '+Inf' }, h.count);
    this.sample(`${name}_sum`, labels, h.sum);
    return this.sample(`${name}_count`, labels, h.count);
  }

  text(): string {
    return `${this.lines.join('\n')}\n`;
  }
}

function formatNumber(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (!Number.isFinite(value)) return value > 0 ? '+Inf' : '-Inf';
  return String(Math.round(value * 1e6) / 1e6);
}

function runnerFamilies(out: Exposition, runners: RunnerRow[]): void {
  const perRunner: [string, 'gauge' | 'counter', string, (r: RunnerRow) => number][] = [
    [
      'container_jobs_runner_slots',
      'gauge',
      'Job slots of the runner (JOB_RUNNER_CONCURRENCY).',
      (r) => r.report.slots,
    ],
    [
      'container_jobs_runner_busy_slots',
      'gauge',
      'Jobs the runner was running at its last report.',
      (r) => r.report.busy,
    ],
    ['container_jobs_runner_draining', 'gauge', '1 while the runner drains for shutdown.', (r) => +r.report.draining],
    [
      'container_jobs_runner_report_age_seconds',
      'gauge',
      'Seconds since the runner last reported (database clock); runners silent for 10 minutes are left out.',
      (r) => r.reportAgeSec,
    ],
    ['container_jobs_runner_jobs_started_total', 'counter', 'Jobs the runner started.', (r) => r.report.jobsStarted],
    [
      'container_jobs_runner_database_errors_total',
      'counter',
      'Failed database statements seen by the runner (claims, output, outcomes, leases, reports).',
      (r) => r.report.databaseErrors,
    ],
  ];
  for (const [name, type, help, value] of perRunner) {
    out.family(name, type, help);
    for (const r of runners) out.sample(name, { runner: r.id }, value(r));
  }
  out.family('container_jobs_runner_jobs_finished_total', 'counter', 'Jobs the runner finished, by final status.');
  for (const r of runners) {
    for (const [status, n] of Object.entries(r.report.finished)) {
      out.sample('container_jobs_runner_jobs_finished_total', { runner: r.id, status }, n);
    }
  }
  const histograms: [string, string, (r: RunnerRow) => HistogramSnapshot][] = [
    ['container_jobs_job_duration_seconds', 'Run time of the jobs the runner finished.', (r) => r.report.jobDuration],
    [
      'container_jobs_claim_duration_seconds',
      'Claim transactions (select, lock, mark running).',
      (r) => r.report.claimLatency,
    ],
    [
      'container_jobs_output_flush_duration_seconds',
      'Output batch writes (fenced multi-row inserts).',
      (r) => r.report.flushLatency,
    ],
    [
      'container_jobs_finish_duration_seconds',
      'Outcome writes (group commits, with successor claims).',
      (r) => r.report.finishLatency,
    ],
  ];
  for (const [name, help, pick] of histograms) {
    out.family(name, 'histogram', help);
    for (const r of runners) out.histogram(name, { runner: r.id }, pick(r));
  }
}

async function render(db: Database): Promise<string> {
  const [queue, runners] = await Promise.all([readQueueGauges(db), readRunnerRows(db)]);
  const out = new Exposition();
  out.family('container_jobs_jobs', 'gauge', 'Rows in Jobs by status (finished ones until pruned).');
  for (const [status, n] of Object.entries(queue.byStatus)) out.sample('container_jobs_jobs', { status }, n);
  out
    .family('container_jobs_pending_jobs', 'gauge', 'Pending jobs, due or scheduled later (queue depth).')
    .sample('container_jobs_pending_jobs', {}, queue.byStatus.pending ?? 0)
    .family('container_jobs_due_jobs', 'gauge', 'Pending jobs whose runAt has come.')
    .sample('container_jobs_due_jobs', {}, queue.due)
    .family('container_jobs_oldest_due_job_age_seconds', 'gauge', 'How long the oldest due pending job has waited.')
    .sample('container_jobs_oldest_due_job_age_seconds', {}, queue.oldestDueAgeSec)
    .family('container_jobs_running_jobs', 'gauge', 'Jobs marked running.')
    .sample('container_jobs_running_jobs', {}, queue.byStatus.running ?? 0)
    .family('container_jobs_runners', 'gauge', 'Runners that reported in the last 10 minutes.')
    .sample('container_jobs_runners', {}, runners.length);
  runnerFamilies(out, runners);
  return out.text();
}

function sameSecret(given: string, expected: string): boolean {
  const a = crypto.createHash('sha256').update(given).digest();
  const b = crypto.createHash('sha256').update(expected).digest();
  return crypto.timingSafeEqual(a, b);
}

export function createMetricsRouter(deps: { db: Database; metricsToken: string | undefined }): Router {
  const router = Router();
  const auth = authenticate(deps.db);
  // The scraper's token lets it in without a user; anything else must be an admin (session or API token).
  const allow: RequestHandler = async (req, res, next) => {
    const token = bearerToken(req);
    if (token !== null && deps.metricsToken !== undefined && sameSecret(token, deps.metricsToken)) return next();
    // authenticate() throws HttpError(401) itself; Express 5 turns the rejection into the JSON error.
    await auth(req, res, (err?: unknown) => {
      if (err) return next(err);
      if (!principalOf(req).isAdmin) return next(new HttpError(403, 'admin_only', 'metrics are for admins'));
      next();
    });
  };
  router.get('/', allow, async (_req, res) => {
    let text: string;
    try {
      text = await render(deps.db);
    } catch {
      throw new HttpError(503, 'database_unavailable', 'the database does not answer');
    }
    res.type('text/plain; version=0.0.4; charset=utf-8').send(text);
  });
  return router;
}
