// The runner loop: claim into free slots, run each job, drain on the first signal. Its duties on
// timers live beside it: lease-keeper.ts (renewal, cancel, lost jobs), reaper.ts (others' dead jobs).
import type { RunnerConfig, TestCrashPoint } from '../config';
import { silentLogger, type Logger } from '../log';
import { DueListener } from '../models/due-notices';
import { NudgeListener } from '../models/nudge';
import type { ClaimedJob, Queue } from '../models/queue';
import { DbHealth } from './db-health';
import { FinishBatcher } from './finish-batcher';
import type { StopReason } from './job-process';
import { JobRun, type JobRunContext, type JobTools } from './job-run';
import { LeaseKeeper } from './lease-keeper';
import { RunnerMetrics, describeRunner } from './metrics';
import { Nap, Periodic, timedOut } from './timers';
import { Reaper, retryAfterLostRunner } from './reaper';
import { Scheduler } from './scheduler';
import { SlotGate } from './slots';

export interface RunnerOptions extends JobTools {
  log?: Logger;
  /** Drain every due job, then resolve `run()` (tests and cron). */
  once?: boolean;
  /** How often the runner reports to JobRunners for GET /metrics (15 s, or the heartbeat if longer). */
  reportMs?: number;
  /** Claims go ahead only while jobs typically hold a slot for less than this (SHORT_JOB_MS; tests set it). */
  shortJobMs?: number;
  /** A job claimed ahead waits this long for a slot at most (AHEAD_MAX_WAIT_MS; tests set it). */
  aheadMaxWaitMs?: number;
}

/** idle → running → draining → closed (in `once` mode the loop ends by itself when nothing is left). */
export type RunnerState = 'idle' | 'running' | 'draining' | 'closed';

/**
 * Claims go ahead of free slots (JOB_RUNNER_CLAIM_AHEAD) only while jobs typically hold a slot for less
 * than this, so a job claimed ahead waits about as long as one short job, not behind long ones.
 */
const SHORT_JOB_MS = 250;
/** A job claimed ahead that has waited this long for a slot goes back to pending (for any runner). */
const AHEAD_MAX_WAIT_MS = 1000;

export class Runner {
  /** Written by run(), stop() and stopNow(). */
  private state: RunnerState = 'idle';
  /** Written by launch() and each job's end: the jobs held, and the end of each one's run. */
  private readonly active = new Map<number, JobRun>();
  private readonly endings = new Map<number, Promise<void>>();
  /** The claim loop's idle wait: woken early by a job's end and by stop. */
  private readonly nap = new Nap();
  /** Set by run(): the claim loop's end. Set by stop(): the drain's end. */
  private loop: Promise<void> | null = null;
  private stopped: Promise<void> | null = null;
  // Set in the constructor, never changed.
  private readonly queue: Queue;
  private readonly config: RunnerConfig;
  private readonly once: boolean;
  private readonly log: Logger;
  private readonly metrics = new RunnerMetrics();
  private readonly health: DbHealth;
  private readonly finisher: FinishBatcher;
  /** Process slots: jobs held beyond them (claimed ahead) wait there for one. */
  private readonly slots: SlotGate;
  private readonly shortJobMs: number;
  /**
   * Written by each claim: whether the last one got all it asked for. A claim that comes back short
   * means the queue holds no more than the runners can start now: claiming ahead would only keep due
   * jobs from idle runners, so it waits for a claim that comes back full.
   */
  private queueDeep = true;
  private readonly leases: LeaseKeeper;
  private readonly reaper: Reaper;
  private readonly reporter: Periodic;
  /** Outside systemd: ends what dead runners on this host left running (runner/leftovers.ts). */
  private readonly sweeper: Periodic | null;
  /** Set by an idle runner's report tick: the claim loop writes it at its next poll (reportTick). */
  private reportDue = false;
  private readonly reportMs: number;
  /** Written by report(): the report being written, if any (a timer's turn is skipped meanwhile). */
  private reporting: Promise<void> | null = null;
  private readonly scheduler: Scheduler;
  private readonly jobContext: JobRunContext;
  private readonly unobserve: () => void;
  /** Opened by run() in daemon mode (JOB_RUNNER_NUDGE_ADDRESS): enqueuers wake the claim loop through it. */
  private nudges: NudgeListener | null = null;
  /** Opened by run() in daemon mode instead, where the database tells of due jobs (PostgreSQL LISTEN). */
  private notices: DueListener | null = null;

  constructor(options: RunnerOptions) {
    const { queue, config } = options;
    this.queue = queue;
    this.config = config;
    this.once = options.once ?? false;
    this.log = options.log ?? silentLogger;
    this.health = new DbHealth(this.log, this.metrics, (err) => queue.isLockConflict(err));
    const unobserveOps = queue.observe(this.metrics.onQueueOp);
    const unobserveDoubts = queue.observeDoubts(({ released, cancelled }) =>
      this.log.warn(
        `${released + cancelled} job(s) claimed as the database went away were not started: ` +
          `${released} back to pending${cancelled > 0 ? `, ${cancelled} cancelled as asked` : ''}`,
      ),
    );
    this.unobserve = () => {
      unobserveOps();
      unobserveDoubts();
    };
    this.slots = new SlotGate(config.concurrency);
    this.shortJobMs = options.shortJobMs ?? SHORT_JOB_MS;
    const aheadMaxWaitMs = options.aheadMaxWaitMs ?? AHEAD_MAX_WAIT_MS;
    // Ending jobs are still held: their successors (and as many claimed ahead) replace them.
    this.finisher = new FinishBatcher(
      queue,
      config.id,
      (ending) => (this.state === 'running' ? Math.max(0, Math.min(ending + this.ahead(), this.room() + ending)) : 0),
      (job) => this.launch(job),
      (asked, got) => this.claimedSome(asked, got),
    );
    const { health, log } = this;
    this.leases = new LeaseKeeper({ ...config, queue, runnerId: config.id, health, log, jobs: () => this.active });
    this.reaper = new Reaper(
      queue,
      config.leaseMs,
      config.heartbeatMs,
      health,
      log,
      retryAfterLostRunner(options.catalog),
    );
    this.scheduler = new Scheduler({
      queue,
      catalog: options.catalog,
      log,
      health,
      onJobMade: () => this.nap.wake(),
    });
    this.reportMs = options.reportMs ?? Math.max(15_000, config.heartbeatMs);
    this.reporter = new Periodic(this.reportMs, () => this.reportTick());
    // As often as the reaper looks for dead runners' rows: their processes go within a lease too.
    const ledger = options.ledger;
    this.sweeper = ledger
      ? new Periodic(Math.max(config.heartbeatMs, config.leaseMs / 4), async () => void this.sweepLeftovers())
      : null;
    this.jobContext = {
      ...options,
      log: this.log,
      health: this.health,
      metrics: this.metrics,
      finish: (fence, outcome, rows) => this.finisher.finish(fence, outcome, rows),
      stopOnStart: () => this.state !== 'running' && !this.once,
      crashPoint: (point) => this.crashPoint(point),
      takeSlot: () => this.slots.enter(aheadMaxWaitMs),
    };
  }

  /**
   * How many more jobs this runner may hold now: its free slots, and while its jobs are short as many
   * claimed ahead as JOB_RUNNER_CLAIM_AHEAD allows (a slot that frees is then filled without a claim).
   */
  private room(): number {
    return this.config.concurrency + this.ahead() - this.active.size;
  }

  private ahead(): number {
    return this.queueDeep && this.slots.typicalHoldMs < this.shortJobMs ? (this.config.claimAhead ?? 0) : 0;
  }

  private claimedSome(asked: number, got: number): void {
    this.queueDeep = got >= asked;
  }

  get runnerId(): string {
    return this.config.id;
  }

  /** For systemd's STATUS=: "2/4 slots busy, last claim 3s ago" and any trouble. */
  statusLine(): string {
    const { concurrency: slots } = this.config;
    const draining = this.state === 'draining';
    const lastClaimAgoSec = this.metrics.lastClaimAgoSec();
    const busy = this.slots.busy;
    return describeRunner({ slots, busy, draining, lastClaimAgoSec }, this.health.trouble());
  }

  /**
   * An idle runner's report is written by its claim loop in place of a poll's probe, so that it makes
   * one statement per poll interval, not one more every report period; a report still waiting at the
   * next tick (the loop is not probing: busy, or the database is away) is written then.
   */
  private reportTick(): Promise<void> {
    if (this.reportDue || this.once || this.state !== 'running' || this.active.size > 0) {
      this.reportDue = false;
      return this.report();
    }
    this.reportDue = true;
    return Promise.resolve();
  }

  /**
   * Upserts this runner's counters into JobRunners (GET /metrics, GET /runners); a failure waits for
   * the next turn. `last`: the runner stops after it (the report says so).
   */
  private report(last = false): Promise<void> {
    if (this.reporting && !last) return this.reporting;
    // One at a time: a timer's report still in flight never lands after the last one.
    const writing: Promise<void> = (this.reporting ?? Promise.resolve())
      .then(() => this.writeReport(last))
      .finally(() => {
        if (this.reporting === writing) this.reporting = null;
      });
    this.reporting = writing;
    return writing;
  }

  private async writeReport(last: boolean): Promise<void> {
    try {
      const report = await this.metrics.report(this.config.concurrency, this.slots.busy, this.state === 'draining');
      report.reportMs = this.reportMs;
      if (last) report.stopped = true;
      if (this.nudges && this.state === 'running') report.nudge = this.nudges.target;
      await this.queue.reportRunner(this.runnerId, report);
    } catch (err) {
      if (this.state !== 'closed') this.health.error(err);
    }
  }

  /** Starts the loop and the lease timers; resolves when the loop has ended (stop, or drained in once mode). */
  run(): Promise<void> {
    if (this.state !== 'idle') return this.loop ?? Promise.resolve();
    this.state = 'running';
    if (this.config.testCrash) {
      this.log.warn(
        `JOB_RUNNER_TEST_CRASH=${this.config.testCrash}: this runner will SIGKILL itself there (test only)`,
      );
    }
    // Before the first claim: what a dead runner of this host left running ends before this one
    // could retry its jobs.
    this.sweepLeftovers();
    this.sweeper?.start();
    this.leases.start();
    this.reaper.start();
    // Schedules and nudges belong to the daemon: a once run (tests, a cron job of its own) has neither.
    if (!this.once) this.scheduler.start();
    // Once mode ends here, with its last report. A draining runner keeps its leases (and hears cancel
    // requests) until its jobs are done: stop() ends the timers.
    this.loop = this.listenForNudges().then(async () => {
      // The first report says where nudges go.
      if (this.state === 'running') {
        void this.report();
        this.reporter.start();
      }
      await this.claimLoop();
      if (!this.once) return;
      await this.report(true);
      this.stopTimers();
      this.close();
    });
    return this.loop;
  }

  private sweepLeftovers(): void {
    try {
      this.jobContext.ledger?.sweep();
    } catch (err) {
      this.log.warn(`cannot look for processes that dead runners left behind: ${(err as Error).message}`);
    }
  }

  private stopTimers(): void {
    this.sweeper?.stop();
    void this.scheduler.stop();
    this.leases.stop();
    this.reaper.stop();
    this.reporter.stop();
  }

  private async claimLoop(): Promise<void> {
    const { pollMs } = this.config;
    let failures = 0;
    // Set when a claim found nothing and the poll timer (not a nudge or a job's end) woke the loop:
    // one cheap statement asks whether anything is due before a claim transaction is opened.
    let probe = false;
    while (this.state === 'running') {
      const free = this.room();
      if (free <= 0) {
        await this.nap.sleep(null);
        continue;
      }
      let claimed: ClaimedJob[];
      try {
        if (probe && this.reportDue) {
          // This poll's one statement is the report; the next one probes.
          this.reportDue = false;
          await this.report();
          probe = !(await this.nap.sleep(pollMs));
          continue;
        }
        if (probe && !(await this.probe())) {
          probe = !(await this.nap.sleep(pollMs));
          continue;
        }
        claimed = await this.queue.claimDueJobs(this.runnerId, free);
        this.claimedSome(free, claimed.length);
        this.health.ok();
        failures = 0;
      } catch (err) {
        this.health.error(err);
        if (this.queue.isLockConflict(err)) {
          // Lost races with other claimers, not an outage: claim again after a short pause.
          await this.nap.sleep(10 + Math.random() * 40);
          continue;
        }
        const backoff = Math.min(30_000, pollMs * 2 ** Math.min(++failures, 5));
        probe = false;
        await this.nap.sleep(backoff / 2 + Math.random() * (backoff / 2));
        continue;
      }
      for (const job of claimed) this.launch(job);
      probe = false;
      if (claimed.length === free) continue; // slots full or more may be due: claim again at once
      if (this.once && claimed.length === 0 && this.active.size === 0) break;
      // Once mode: only a job's end can make more work; otherwise poll (or be nudged).
      const woken = await this.nap.sleep(this.once ? null : pollMs);
      probe = !woken && !this.once && claimed.length === 0;
    }
    if (this.once) await this.waitForJobs();
  }

  /** An idle poll: is anything due? It does the reaper's looking too (a reap only when a lease ran out). */
  private async probe(): Promise<boolean> {
    const { due, expired } = await this.queue.idleProbe(this.config.leaseMs);
    this.health.ok();
    if (expired) this.reaper.reapNow();
    else this.reaper.nothingExpired();
    return due;
  }

  /**
   * Daemon mode: LISTENs where the database tells of due jobs (PostgreSQL), else listens for wake-up
   * nudges (JOB_RUNNER_NUDGE_ADDRESS); without either, polling alone.
   */
  private async listenForNudges(): Promise<void> {
    if (this.once) return;
    if (this.queue.db.driver.dueNotice) {
      this.notices = await DueListener.open(
        this.queue.db,
        () => this.nap.wake(),
        (message) => this.log.warn(message),
      );
      this.log.info(`wake-up notices: LISTEN ${this.queue.db.driver.dueNotice.channel}`);
      return;
    }
    const address = this.config.nudgeAddress;
    if (address === null) return;
    try {
      this.nudges = await NudgeListener.open(address, () => this.nap.wake());
      this.log.info(`wake-up nudges on udp ${address}:${this.nudges.target.port}`);
    } catch (err) {
      this.log.warn(
        `wake-up nudges off: cannot listen on ${address} (${(err as Error).message}); new jobs are found by polling every ${this.config.pollMs} ms`,
      );
    }
  }

  /** Test-only fault injection (JOB_RUNNER_TEST_CRASH): die here as `kill -9` would, writing nothing more. */
  private crashPoint(point: TestCrashPoint): void {
    if (this.config.testCrash === point) process.kill(process.pid, 'SIGKILL');
  }

  /** Starts a claimed job (its claim has committed: the loop's, or a finish batch's refill). */
  private launch(job: ClaimedJob): void {
    this.crashPoint('after-claim');
    const run = new JobRun(job, this.jobContext);
    // Claimed again at a later attempt while an earlier one still ends here: that one is no longer ours,
    // unless it is finishing (a retry claimed again by its own finish's refill; else its fenced write tells).
    const previous = this.active.get(job.id);
    if (previous?.phase !== 'finishing') previous?.lose();
    this.active.set(job.id, run);
    const ending = run
      .run()
      .catch((err) => this.log.error(`job ${job.id}: runner error: ${(err as Error)?.stack ?? String(err)}`))
      .finally(() => {
        if (this.active.get(job.id) === run) {
          this.active.delete(job.id);
          this.endings.delete(job.id);
        }
        this.nap.wake();
      });
    const earlier = this.endings.get(job.id);
    this.endings.set(job.id, earlier ? Promise.all([earlier, ending]).then(() => {}) : ending);
  }

  private async waitForJobs(): Promise<void> {
    while (this.endings.size > 0) await Promise.all(this.endings.values());
  }

  /**
   * Drains: stops claiming (the claim in flight completes), lets running jobs finish within
   * `graceMs`, then stops the rest (failure/shutdown). Idempotent; resolves when all is written.
   */
  stop(graceMs = this.config.shutdownGraceMs): Promise<void> {
    if (this.stopped) return this.stopped;
    if (this.state !== 'closed') this.state = 'draining';
    // Jobs claimed ahead and still waiting go back to pending: a draining runner starts nothing.
    this.slots.close();
    this.nap.wake();
    this.stopped = (async () => {
      await this.scheduler.stop();
      await this.loop;
      if (this.active.size > 0) {
        this.log.notice(
          `draining: ${this.active.size} job(s) running, up to ${Math.round(graceMs / 1000)} s to finish`,
        );
        await timedOut(this.waitForJobs(), graceMs);
        this.stopAll('shutdown', false);
      }
      await this.finishWrites();
      this.stopTimers();
      // The last report, unless the database keeps us waiting: exiting in time matters more.
      await timedOut(this.report(true), 3000);
      this.close();
    })();
    return this.stopped;
  }

  /** The second signal: kill every job now, record what can be recorded quickly, and return. */
  async stopNow(): Promise<void> {
    if (this.state !== 'closed') this.state = 'draining';
    this.slots.close();
    this.nap.wake();
    this.stopAll('shutdown', true);
    await this.finishWrites(5000);
    this.stopTimers();
    this.close();
  }

  private close(): void {
    this.nudges?.close();
    void this.notices?.close();
    this.jobContext.launcher?.close();
    void this.jobContext.ledger?.close();
    this.unobserve();
    this.state = 'closed';
  }

  private stopAll(reason: StopReason, now: boolean): void {
    for (const job of this.active.values()) {
      if (now) job.kill(reason);
      else job.stop(reason);
    }
  }

  /** Waits for jobs to record their outcome; with the database away, gives up after `limitMs`. */
  private async finishWrites(limitMs = (this.jobContext.killGraceMs ?? 10_000) + 15_000): Promise<void> {
    if (!(await timedOut(this.waitForJobs(), limitMs))) return;
    for (const job of this.active.values()) job.writer.abandon();
    this.log.warn(
      `exiting with ${this.active.size} outcome(s) unrecorded; the lease reaper will mark them runner_lost`,
    );
  }
}
