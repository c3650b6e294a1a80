// Keeps this runner's leases: one statement renews every running job's heartbeat; jobs found lost
// are killed, cancel requests stopped, and a job whose lease could not be renewed in time is stopped.
import type { Logger } from '../log';
import type { Queue } from '../models/queue';
import type { DbHealth } from './db-health';
import type { JobRun } from './job-run';
import { Periodic } from './timers';

export interface LeaseKeeperOptions {
  queue: Queue;
  runnerId: string;
  heartbeatMs: number;
  leaseMs: number;
  health: DbHealth;
  log: Logger;
  /** The jobs this runner holds right now. */
  jobs: () => Map<number, JobRun>;
}

export class LeaseKeeper {
  /** Written by tick(): the renewal in flight (and whether its hang was reported), or null. */
  private renewal: { startedAt: number; hangReported: boolean } | null = null;
  /** Written by stop(): after it, a renewal still in flight fails quietly (the database is closing). */
  private stopped = false;
  private readonly timer: Periodic;

  constructor(private readonly options: LeaseKeeperOptions) {
    this.timer = new Periodic(options.heartbeatMs, () => this.tick());
  }

  start(): void {
    this.stopped = false;
    this.timer.start();
  }

  stop(): void {
    this.stopped = true;
    this.timer.stop();
  }

  private async tick(): Promise<void> {
    const { queue, runnerId, leaseMs, health } = this.options;
    // Every tick, even while a renewal hangs (a partition resets nothing: a statement may wait for minutes).
    this.expireUnrenewed();
    if (this.renewal) {
      // No answer is trouble too, though nothing failed: say so, once per renewal, as for an error.
      const waited = Date.now() - this.renewal.startedAt;
      if (!this.renewal.hangReported && waited > Math.min(leaseMs / 2, 10_000)) {
        this.renewal.hangReported = true;
        health.error(new Error(`no answer to the lease renewal for ${Math.round(waited / 1000)} s`));
      }
      return;
    }
    const jobs = this.options.jobs();
    const ids = [...jobs.keys()];
    if (ids.length === 0) return;
    const renewal = (this.renewal = { startedAt: Date.now(), hangReported: false });
    try {
      const report = await queue.renewLeases(runnerId, ids);
      health.ok();
      const lost = new Set(report.lost);
      for (const id of ids) {
        const job = jobs.get(id);
        if (job && !lost.has(id)) job.renewedAt = renewal.startedAt;
      }
      for (const id of report.lost) {
        const job = jobs.get(id);
        // Our own finish may have committed before its acknowledgement reached us (InnoDB releases
        // locks before the commit is flushed): not a lost lease. That fenced write reports a real loss.
        if (job && job.phase !== 'finishing') job.lose();
      }
      for (const id of report.cancelRequested) jobs.get(id)?.stop('cancelled');
    } catch (err) {
      if (this.stopped) return;
      health.error(err);
      this.expireUnrenewed();
    } finally {
      this.renewal = null;
    }
  }

  /** Past its lease another runner may reap a job: stop it rather than run it unowned. */
  private expireUnrenewed(): void {
    const now = Date.now();
    for (const job of this.options.jobs().values()) job.expire(now, this.options.leaseMs);
  }
}
