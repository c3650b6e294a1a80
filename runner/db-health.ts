// The runner's view of the database: trouble is logged once per change, not once per attempt, and
// summed up for systemd's STATUS= line.
import type { Logger } from '../log';
import type { RunnerMetrics } from './metrics';

export class DbHealth {
  /** Written by ok() and error(), from any of the runner's loops: when the trouble began, or null. */
  private downSince: number | null = null;

  constructor(
    private readonly log: Logger,
    private readonly metrics: RunnerMetrics,
    /** Lock conflicts (deadlocks, lock-wait timeouts, refused certifications): the database answered. */
    private readonly isLockConflict: (err: unknown) => boolean = () => false,
  ) {}

  ok(): void {
    if (this.downSince === null) return;
    this.downSince = null;
    this.log.notice('database reachable again; catching up');
  }

  /** "database unavailable for 40s" while it is; null when it answers. */
  trouble(): string | null {
    return this.downSince === null
      ? null
      : `database unavailable for ${Math.round((Date.now() - this.downSince) / 1000)}s`;
  }

  error(err: unknown): void {
    // A write that lost a race with another one (its retries used up): it runs again, no outage.
    if (this.isLockConflict(err)) {
      this.log.debug(`lock conflict, retrying: ${(err as Error)?.message ?? String(err)}`);
      return;
    }
    this.metrics.databaseError();
    if (this.downSince !== null) return;
    this.downSince = Date.now();
    this.log.warn(
      `database unavailable (${(err as Error)?.message ?? String(err)}); jobs keep running, retrying with backoff`,
    );
  }
}
