// Every runner's scheduler: wakes at the next fire time of the task file's schedules and asks the
// database to fire it (models/schedules.ts: the first runner's insert of a fire time wins, so each
// fire time makes one job however many runners try). Fire times passed while no runner ran are
// `missed`: dropped, or with `latest` the most recent one runs once when a runner starts.
import type { Logger } from '../log';
import type { Queue } from '../models/queue';
import { fireSchedule, registerSchedules, scheduleRecords } from '../models/schedules';
import type { TaskCatalog } from '../tasks/catalog';
import { checkJobRequest } from '../tasks/job-request';
import type { Schedule } from '../tasks/schedules';
import type { DbHealth } from './db-health';

export interface SchedulerOptions {
  queue: Queue;
  catalog: TaskCatalog;
  log: Logger;
  health: DbHealth;
  /** The clock (tests fake it); fire times are absolute instants, so any host's clock will do. */
  now?: () => number;
  /** The longest sleep: how soon a changed task file is seen without a fire time to wake for. */
  maxSleepMs?: number;
  /** Called when a fire made a job (the runner claims at once instead of at its next poll). */
  onJobMade?: () => void;
}

/** What a schedule's definition is made of: a change of any of these starts it afresh. */
function signature(s: Schedule): string {
  return JSON.stringify([s.task, s.params, s.cron, s.timezone, s.missed, s.overlap, s.createdBy]);
}

const RETRY_MS = 5_000;

export class Scheduler {
  /** Written by pass(): per schedule, the latest fire time this runner has handled (or its start). */
  private readonly cursors = new Map<string, number>();
  /** Written by pass(): the definition each cursor belongs to. */
  private readonly known = new Map<string, string>();
  /** Written by adopt(): false until the start-up catch-up has been done (it is retried until then). */
  private started = false;
  /** Written by pass(): when it last read the task file (a schedule that is new since then starts there). */
  private lookedAt: number | null = null;
  /** Written by start(), stop() and arm(). */
  private timer: NodeJS.Timeout | null = null;
  private stopped = true;
  /** Written by wake(): the pass in flight. */
  private passing: Promise<void> | null = null;
  private readonly now: () => number;

  constructor(private readonly options: SchedulerOptions) {
    this.now = options.now ?? Date.now;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.wake();
  }

  /** Stops waking; resolves when a pass in flight has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.passing;
  }

  /** One pass now (tests with a faked clock call it directly); the next wake is armed after it. */
  async wake(): Promise<void> {
    if (this.passing) return this.passing;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.passing = (async () => {
      let ok = true;
      try {
        await this.pass();
        this.options.health.ok();
      } catch (err) {
        ok = false;
        if (!this.stopped) this.options.health.error(err);
      } finally {
        this.passing = null;
        this.arm(ok);
      }
    })();
    return this.passing;
  }

  private arm(ok: boolean): void {
    if (this.stopped || this.options.now) return; // a faked clock is driven by its test
    const now = this.now();
    let next = now + (ok ? (this.options.maxSleepMs ?? 30_000) : RETRY_MS);
    // After a failed pass its fire times are still due: try again after RETRY_MS, not at once.
    for (const schedule of ok ? this.options.catalog.schedules().values() : []) {
      // From what this runner handled last, not from now: a fire time that passed during the pass is
      // due at once (a schedule not adopted yet waits for the next pass, within the longest sleep).
      const cursor = this.cursors.get(schedule.name);
      if (cursor === undefined) continue;
      const at = schedule.nextAfter(new Date(cursor))?.getTime();
      if (at !== undefined && at < next) next = at;
    }
    // A few ms late, never early: at the fire time itself latestAtOrBefore already names it.
    this.timer = setTimeout(() => void this.wake(), Math.max(0, next - now) + 5);
    this.timer.unref?.();
  }

  private async pass(): Promise<void> {
    const now = this.now();
    const schedules = this.options.catalog.schedules();
    const since = this.lookedAt ?? now;
    this.lookedAt = now;
    for (const name of [...this.known.keys()]) {
      if (!schedules.has(name)) {
        this.known.delete(name);
        this.cursors.delete(name);
      }
    }
    const fresh = [...schedules.values()].filter((s) => this.known.get(s.name) !== signature(s));
    if (fresh.length > 0) await this.adopt(fresh, now, since);
    for (const schedule of schedules.values()) {
      const cursor = this.cursors.get(schedule.name)!;
      const due = schedule.latestAtOrBefore(new Date(now));
      if (!due || due.getTime() <= cursor) continue;
      const first = schedule.nextAfter(new Date(cursor));
      if (first && first < due) {
        this.options.log.warn(
          `schedule ${schedule.name}: this runner was held up past fire times from ${first.toISOString()}; firing only the latest, ${due.toISOString()}`,
        );
      }
      await this.fire(schedule, due, 'due');
      this.cursors.set(schedule.name, due.getTime());
    }
  }

  /**
   * Schedules seen for the first time start from now at start-up, and from the previous look at the
   * file (`since`) when added or changed by a reload: the edit may be seen first at the very fire
   * time the timer was armed for, which must still run (under the new definition).
   * At start-up a `latest` schedule runs its most recent fire time once, if nobody did and the
   * schedule existed then (a schedule just added has missed nothing).
   */
  private async adopt(fresh: Schedule[], now: number, since: number): Promise<void> {
    const { queue } = this.options;
    await registerSchedules(
      queue,
      fresh.map((s) => s.name),
      new Date(now),
    );
    const catchUp = !this.started;
    const records = catchUp ? await scheduleRecords(queue) : new Map();
    for (const schedule of fresh) {
      if (catchUp && schedule.missed === 'latest') {
        const latest = schedule.latestAtOrBefore(new Date(now));
        const firstSeenAt = records.get(schedule.name)?.firstSeenAt;
        if (latest && firstSeenAt && latest >= firstSeenAt) await this.fire(schedule, latest, 'missed');
      }
      this.known.set(schedule.name, signature(schedule));
      this.cursors.set(schedule.name, catchUp ? now : since);
    }
    // Only now: a catch-up that failed on the database is tried again by the next pass.
    this.started = true;
  }

  private async fire(schedule: Schedule, fireAt: Date, why: 'due' | 'missed'): Promise<void> {
    const { queue, catalog, log } = this.options;
    const at = fireAt.toISOString();
    let job;
    try {
      job = checkJobRequest(
        catalog,
        { username: schedule.createdBy, isAdmin: true },
        {
          task: schedule.task,
          params: schedule.params,
        },
      );
    } catch (err) {
      log.error(`schedule ${schedule.name}: fire time ${at} makes no job: ${(err as Error).message}`);
      return;
    }
    const result = await fireSchedule(queue, schedule.name, fireAt, job, {
      allowOverlap: schedule.overlap === 'allow',
    });
    switch (result.result) {
      case 'created':
        this.options.onJobMade?.();
        log.info(
          `schedule ${schedule.name}: ${why === 'missed' ? 'missed ' : ''}fire time ${at} made job ${result.jobId}`,
        );
        break;
      case 'overlap':
        log.notice(
          `schedule ${schedule.name}: fire time ${at} skipped: its job ${result.activeJobId} is still pending or running`,
        );
        break;
      case 'taken':
        log.debug(`schedule ${schedule.name}: fire time ${at} was handled by another runner`);
        break;
    }
  }
}
