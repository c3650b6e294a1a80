// Any runner's reaper: running jobs whose heartbeat is older than the lease (a runner that died or
// lost the database) become failure/runner_lost, every max(heartbeat, lease/4) — or, when their
// template's retry policy lists runner_lost, pending again at their next attempt. While the runner is
// idle its poll looks for expired leases too (Queue.idleProbe), and the timed reap is skipped.
import type { Logger } from '../log';
import type { ExpiredJob, Queue, ReapRetry } from '../models/queue';
import type { TaskCatalog } from '../tasks/catalog';
import { planRetry } from '../tasks/retry';
import type { DbHealth } from './db-health';
import { Periodic } from './timers';

/** The reaper's retry decision for a job whose runner was lost, from its template as it is now. */
export function retryAfterLostRunner(catalog: TaskCatalog): ReapRetry {
  return (job: ExpiredJob) => {
    const end = { status: 'failure', error: 'runner_lost', exitCode: null };
    return planRetry(catalog.get(job.task)?.retry, end, job.attempt, job.maxAttempts);
  };
}

export class Reaper {
  /** Written by stop(): after it, a reap still in flight fails quietly. */
  private stopped = false;
  private readonly timer: Periodic;
  private readonly everyMs: number;
  /** Written by nothingExpired(): when an idle poll last saw no lease run out. */
  private clearAt = -Infinity;

  constructor(
    private readonly queue: Queue,
    private readonly leaseMs: number,
    heartbeatMs: number,
    private readonly health: DbHealth,
    private readonly log: Logger,
    private readonly retryOf: ReapRetry = () => null,
  ) {
    this.everyMs = Math.max(heartbeatMs, Math.floor(leaseMs / 4));
    this.timer = new Periodic(this.everyMs, () => this.reap());
  }

  /** An idle poll saw no expired lease: the next timed reap has nothing to find, and is skipped. */
  nothingExpired(): void {
    this.clearAt = Date.now();
  }

  /** An idle poll saw an expired lease: reap now. */
  reapNow(): void {
    this.clearAt = -Infinity;
    void this.reap();
  }

  start(): void {
    this.stopped = false;
    this.timer.start(true);
  }

  stop(): void {
    this.stopped = true;
    this.timer.stop();
  }

  private async reap(): Promise<void> {
    if (Date.now() - this.clearAt < this.everyMs) return;
    try {
      const reaped = await this.queue.reapExpiredLeases(this.leaseMs, 100, this.retryOf);
      this.health.ok();
      if (reaped.length > 0) {
        this.log.warn(`reaped ${reaped.length} job(s) whose runner stopped renewing: ${reaped.join(', ')}`);
      }
    } catch (err) {
      if (!this.stopped) this.health.error(err);
    }
  }
}
