// GET /metrics: Prometheus text format, for admins or `Authorization: Bearer $METRICS_TOKEN`.
// The app's prom-client registry holds this process's default metrics and the queue gauges, read from
// the Jobs table at scrape time; each runner's last report (JobRunners) is re-exposed beside them with
// a `runner` label, so one scrape shows the whole fleet.
import crypto from 'node:crypto';
import { Router, type RequestHandler } from 'express';
import { AggregatorRegistry, Gauge, Registry, type PrometheusContentType } from 'prom-client';
import type { Database } from '../models/database';
import {
  readQueueGauges,
  readRunnerRows,
  registerProcessMetrics,
  type QueueGauges,
  type ReportedMetric,
  type RunnerRow,
} from '../models/metrics';
import { authenticate, bearerToken, principalOf } from './auth';
import { HttpError } from './errors';

interface MetricsDeps {
  db: Database;
  metricsToken: string | undefined;
}

export function createMetricsRouter(deps: MetricsDeps): Router {
  const scrape = createScrape(deps.db);
  const router = Router();
  router.get('/', allowScraper(deps), scrape);
  return router;
}

/** The scraper's token lets it in without a user; anything else must be an admin (session or API token). */
function allowScraper(deps: MetricsDeps): RequestHandler {
  const auth = authenticate(deps.db);
  return async (req, res, next) => {
    const token = bearerToken(req);
    if (token !== null && deps.metricsToken !== undefined && sameSecret(token, deps.metricsToken)) return next();
    // authenticate() throws HttpError(401) itself; Express 5 turns the rejection into the JSON error.
    await auth(req, res, (err?: unknown) => {
      if (err) return next(err);
      if (!principalOf(req).isAdmin) return next(new HttpError(403, 'admin_only', 'metrics are for admins'));
      next();
    });
  };
}

function sameSecret(given: string, expected: string): boolean {
  const a = crypto.createHash('sha256').update(given).digest();
  const b = crypto.createHash('sha256').update(expected).digest();
  return crypto.timingSafeEqual(a, b);
}

interface Fleet {
  queue: QueueGauges;
  runners: RunnerRow[];
}

/** The app's registry and the handler that renders it with the runners' reports. */
function createScrape(db: Database): RequestHandler {
  const readFleet = singleFlight(async (): Promise<Fleet> => {
    const [queue, runners] = await Promise.all([readQueueGauges(db), readRunnerRows(db)]);
    return { queue, runners };
  });
  const registry = new Registry();
  registerQueueGauges(registry, readFleet);
  registerProcessMetrics(registry);
  return async (_req, res) => {
    let own: MetricJson[];
    let fleet: Fleet;
    try {
      // Started first, so the gauges' collect() calls share this read.
      const reading = readFleet();
      own = await registry.getMetricsAsJSON();
      fleet = await reading;
    } catch {
      throw new HttpError(503, 'database_unavailable', 'the database does not answer');
    }
    res.type(registry.contentType).send(await renderFleet(own, fleet.runners));
  };
}

/** The queue gauges, each filled from the scrape's one read of Jobs and JobRunners. */
function registerQueueGauges(registry: Registry, readFleet: () => Promise<Fleet>): void {
  const gauge = (name: string, help: string, value: (f: Fleet) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        this.set(value(await readFleet()));
      },
    });
  new Gauge({
    name: 'container_jobs_jobs',
    help: 'Rows in Jobs by status (finished ones until pruned).',
    labelNames: ['status'],
    registers: [registry],
    async collect() {
      const { queue } = await readFleet();
      this.reset();
      for (const [status, n] of Object.entries(queue.byStatus)) this.set({ status }, n);
    },
  });
  gauge(
    'container_jobs_pending_jobs',
    'Pending jobs, due or scheduled later (queue depth).',
    (f) => f.queue.byStatus.pending ?? 0,
  );
  gauge('container_jobs_due_jobs', 'Pending jobs whose runAt has come.', (f) => f.queue.due);
  gauge(
    'container_jobs_oldest_due_job_age_seconds',
    'How long the oldest due pending job has waited.',
    (f) => f.queue.oldestDueAgeSec,
  );
  gauge('container_jobs_running_jobs', 'Jobs marked running.', (f) => f.queue.byStatus.running ?? 0);
  gauge('container_jobs_runners', 'Runners that reported in the last 10 minutes.', (f) => f.runners.length);
  new Gauge({
    name: 'container_jobs_runner_report_age_seconds',
    help: 'Seconds since the runner last reported (database clock); runners silent for 10 minutes are left out.',
    labelNames: ['runner'],
    registers: [registry],
    async collect() {
      const { runners } = await readFleet();
      this.reset();
      for (const r of runners) this.set({ runner: r.id }, r.reportAgeSec);
    },
  });
}

type MetricJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>[number];

/**
 * The exposition of the app's own metrics and every runner's, each family once: a runner's series
 * get its `runner` label (first among the labels), and a series whose family this scrape already
 * has with another type is left out. prom-client's AggregatorRegistry.aggregate() merges the
 * families (it is made for getMetricsAsJSON() output); with `first`, a duplicate series is dropped.
 */
async function renderFleet(own: MetricJson[], runners: RunnerRow[]): Promise<string> {
  const types = new Map<string, string>(own.map((m) => [m.name, String(m.type)]));
  const sources: object[][] = [own.map((m) => ({ ...m, aggregator: 'first' }))];
  for (const runner of runners) {
    const metrics: ReportedMetric[] = [];
    for (const m of runner.metrics ?? []) {
      if ((types.get(m.name) ?? m.type) !== m.type) continue;
      types.set(m.name, m.type);
      metrics.push({
        ...m,
        values: m.values.map((v) => {
          const { runner: _, ...labels } = v.labels;
          return { ...v, labels: { runner: runner.id, ...labels } };
        }),
      });
    }
    sources.push(metrics.map((m) => ({ ...m, aggregator: 'first' })));
  }
  return AggregatorRegistry.aggregate<PrometheusContentType>(sources).metrics();
}

/** Calls made while one is running share its promise; the next call after it settles starts anew. */
function singleFlight<T>(fn: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | null = null;
  return () => {
    running ??= fn().finally(() => {
      running = null;
    });
    return running;
  };
}
