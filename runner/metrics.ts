// A runner's own metrics in its prom-client registry: counters, latency histograms and this process's
// default metrics. report() is what it upserts into JobRunners, for the API's GET /metrics to re-expose
// with a `runner` label; the systemd STATUS= line is drawn from the same figures.
import os from 'node:os';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { registerProcessMetrics, runnerReport, type RunnerReport } from '../models/metrics';
import type { QueueOp } from '../models/queue';

export const JOB_DURATION_BUCKETS = [0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 7200];
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** What the STATUS= line says about a runner. */
export interface RunnerStatus {
  slots: number;
  busy: number;
  draining: boolean;
  /** Seconds since the last claim that took a job, or null when none yet. */
  lastClaimAgoSec: number | null;
}

export class RunnerMetrics {
  private readonly registry = new Registry();
  private readonly slots = this.gauge(
    'container_jobs_runner_slots',
    'Job slots of the runner (JOB_RUNNER_CONCURRENCY).',
  );
  private readonly busy = this.gauge(
    'container_jobs_runner_busy_slots',
    'Jobs the runner was running at its last report.',
  );
  private readonly draining = this.gauge('container_jobs_runner_draining', '1 while the runner drains for shutdown.');
  private readonly started = new Counter({
    name: 'container_jobs_runner_jobs_started_total',
    help: 'Jobs the runner started.',
    registers: [this.registry],
  });
  private readonly finished = new Counter({
    name: 'container_jobs_runner_jobs_finished_total',
    help: 'Jobs the runner finished, by final status.',
    labelNames: ['status'],
    registers: [this.registry],
  });
  private readonly retried = new Counter({
    name: 'container_jobs_runner_attempts_retried_total',
    help: 'Failed attempts the runner sent back to pending for their next attempt (retry policy).',
    registers: [this.registry],
  });
  private readonly databaseErrors = new Counter({
    name: 'container_jobs_runner_database_errors_total',
    help: 'Failed database statements seen by the runner (claims, output, outcomes, leases, reports).',
    registers: [this.registry],
  });
  private readonly jobDuration = this.histogram(
    'container_jobs_job_duration_seconds',
    'Run time of the jobs the runner finished.',
    JOB_DURATION_BUCKETS,
  );
  private readonly latency: Record<QueueOp, Histogram> = {
    claim: this.histogram(
      'container_jobs_claim_duration_seconds',
      'Claim transactions (select, lock, mark running).',
      LATENCY_BUCKETS,
    ),
    flush: this.histogram(
      'container_jobs_output_flush_duration_seconds',
      'Output batch writes (fenced multi-row inserts).',
      LATENCY_BUCKETS,
    ),
    finish: this.histogram(
      'container_jobs_finish_duration_seconds',
      'Outcome writes (group commits, with successor claims).',
      LATENCY_BUCKETS,
    ),
  };
  /** Written by onQueueOp (the claim loop and the finish batcher). */
  private lastClaimAt: number | null = null;

  constructor() {
    registerProcessMetrics(this.registry);
    // Every status from the start, so a rate() sees the first failure.
    for (const status of ['success', 'failure', 'cancelled']) this.finished.inc({ status }, 0);
  }

  /** A Queue observer: latency of every claim, flush and finish; a claim that took jobs. */
  readonly onQueueOp = (op: QueueOp, seconds: number, claimed: number): void => {
    this.latency[op].observe(seconds);
    if (claimed > 0) this.lastClaimAt = Date.now();
  };

  jobStarted(): void {
    this.started.inc();
  }

  jobFinished(status: string, durationMs: number | null): void {
    this.finished.inc({ status });
    if (durationMs !== null) this.jobDuration.observe(durationMs / 1000);
  }

  /** A failed attempt that runs again: not a finished job (the reaper's retries are not counted here). */
  attemptRetried(durationMs: number | null): void {
    this.retried.inc();
    if (durationMs !== null) this.jobDuration.observe(durationMs / 1000);
  }

  databaseError(): void {
    this.databaseErrors.inc();
  }

  lastClaimAgoSec(now = Date.now()): number | null {
    return this.lastClaimAt === null ? null : Math.max(0, (now - this.lastClaimAt) / 1000);
  }

  /** The runner's registry with its slot gauges set, as JobRunners stores it (asynchronous: collectors may be). */
  async report(slots: number, busy: number, draining: boolean): Promise<RunnerReport> {
    this.slots.set(slots);
    this.busy.set(busy);
    this.draining.set(draining ? 1 : 0);
    return { ...runnerReport(await this.registry.getMetricsAsJSON()), host: os.hostname(), pid: process.pid };
  }

  private gauge(name: string, help: string): Gauge {
    return new Gauge({ name, help, registers: [this.registry] });
  }

  private histogram(name: string, help: string, buckets: number[]): Histogram {
    return new Histogram({ name, help, buckets, registers: [this.registry] });
  }
}

/** "2/4 slots busy, last claim 3s ago" (+ the database's trouble, + draining). */
export function describeRunner(status: RunnerStatus, databaseTrouble: string | null): string {
  const ago = status.lastClaimAgoSec;
  const parts = [
    `${status.busy}/${status.slots} slots busy`,
    ago === null ? 'no claim yet' : `last claim ${formatAgo(ago)} ago`,
  ];
  if (databaseTrouble) parts.push(databaseTrouble);
  if (status.draining) parts.push('draining');
  return parts.join(', ');
}

function formatAgo(sec: number): string {
  if (sec < 90) return `${Math.round(sec)}s`;
  if (sec < 5400) return `${Math.round(sec / 60)}m`;
  return `${Math.round(sec / 3600)}h`;
}
