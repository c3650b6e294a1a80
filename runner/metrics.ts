// A runner's own counters and latency histograms, reported to JobRunners for GET /metrics and
// summed up in the systemd STATUS= line.
import { Histogram, JOB_DURATION_BUCKETS, LATENCY_BUCKETS, type RunnerReport } from '../models/metrics';
import type { QueueOp } from '../models/queue';

export class RunnerMetrics {
  private readonly jobDuration = new Histogram(JOB_DURATION_BUCKETS);
  private readonly latency: Record<QueueOp, Histogram> = {
    claim: new Histogram(LATENCY_BUCKETS),
    flush: new Histogram(LATENCY_BUCKETS),
    finish: new Histogram(LATENCY_BUCKETS),
  };
  private readonly finished: Record<string, number> = { success: 0, failure: 0, cancelled: 0 };
  private databaseErrors = 0;
  private jobsStarted = 0;
  private lastClaimAt: number | null = null;

  /** A Queue observer: latency of every claim, flush and finish; a claim that took jobs. */
  readonly onQueueOp = (op: QueueOp, seconds: number, claimed: number): void => {
    this.latency[op].observe(seconds);
    if (claimed > 0) this.lastClaimAt = Date.now();
  };

  jobStarted(): void {
    this.jobsStarted++;
  }

  jobFinished(status: string, durationMs: number | null): void {
    this.finished[status] = (this.finished[status] ?? 0) + 1;
    if (durationMs !== null) this.jobDuration.observe(durationMs / 1000);
  }

  databaseError(): void {
    this.databaseErrors++;
  }

  lastClaimAgoSec(now = Date.now()): number | null {
    return this.lastClaimAt === null ? null : Math.max(0, (now - this.lastClaimAt) / 1000);
  }

  report(slots: number, busy: number, draining: boolean): RunnerReport {
    return {
      slots,
      busy,
      draining,
      lastClaimAgoSec: this.lastClaimAgoSec(),
      databaseErrors: this.databaseErrors,
      jobsStarted: this.jobsStarted,
      finished: { ...this.finished },
      jobDuration: this.jobDuration.snapshot(),
      claimLatency: this.latency.claim.snapshot(),
      flushLatency: this.latency.flush.snapshot(),
      finishLatency: this.latency.finish.snapshot(),
    };
  }
}

/** "2/4 slots busy, last claim 3s ago" (+ the database's trouble, + draining). */
export function describeRunner(
  report: Pick<RunnerReport, 'slots' | 'busy' | 'draining' | 'lastClaimAgoSec'>,
  databaseTrouble: string | null,
): string {
  const ago = report.lastClaimAgoSec;
  const parts = [
    `${report.busy}/${report.slots} slots busy`,
    ago === null ? 'no claim yet' : `last claim ${formatAgo(ago)} ago`,
  ];
  if (databaseTrouble) parts.push(databaseTrouble);
  if (report.draining) parts.push('draining');
  return parts.join(', ');
}

function formatAgo(sec: number): string {
  if (sec < 90) return `${Math.round(sec)}s`;
  if (sec < 5400) return `${Math.round(sec / 60)}m`;
  return `${Math.round(sec / 3600)}h`;
}
