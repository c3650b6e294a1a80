// Any runner's reaper: running jobs whose heartbeat is older than the lease (a runner that died or
// lost the database) become failure/runner_lost, every max(heartbeat, lease/4) — or, when their
// template's retry policy lists runner_lost, pending again at their next attempt.
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

  constructor(
    private readonly queue: Queue,
    private readonly leaseMs: number,
    heartbeatMs: number,
    private readonly health: DbHealth,
    private readonly log: Logger,
    private readonly retryOf: ReapRetry = () => null,
  ) {
    this.timer = new Periodic(Math.max(heartbeatMs, Math.floor(leaseMs / 4)), () => this.reap());
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
