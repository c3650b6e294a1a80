// Any runner's reaper: running jobs whose heartbeat is older than the lease (a runner that died or
// lost the database) become failure/runner_lost, every max(heartbeat, lease/4).
import type { Logger } from '../log';
import type { Queue } from '../models/queue';
import type { DbHealth } from './db-health';
import { Periodic } from './timers';

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
      const reaped = await this.queue.reapExpiredLeases(this.leaseMs);
      this.health.ok();
      if (reaped.length > 0) {
        this.log.warn(`reaped ${reaped.length} job(s) whose runner stopped renewing: ${reaped.join(', ')}`);
      }
    } catch (err) {
      if (!this.stopped) this.health.error(err);
    }
  }
}
