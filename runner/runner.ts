// The runner loop: claim into free slots, run, heartbeat, reap; drain on the first signal.
import type { RunnerConfig, TestCrashPoint } from '../config';
import type { ClaimedJob, Queue } from '../models/queue';
import type { TaskCatalog, TaskTemplate } from '../tasks/catalog';
import { prepareJob, renderEnvironment, ParamsError } from '../tasks/render';
import { JobProcess, type StopReason } from './job-process';
import { LineSplitter } from './line-splitter';
import { FinishBatcher } from './finish-batcher';
import { RunnerMetrics, describeRunner } from './metrics';
import { describeOutcome, mentionsOutOfMemory } from './outcome';
import { OutputWriter } from './output-writer';

export type Logger = (line: string) => void;

export interface RunnerOptions {
  queue: Queue;
  catalog: TaskCatalog;
  config: RunnerConfig;
  runnerEnv: Readonly<Record<string, string | undefined>>;
  prlimitPath?: string;
  setprivPath?: string;
  log?: Logger;
  /** Drain every due job, then resolve `run()` (tests and cron). */
  once?: boolean;
  /** SIGTERM-to-SIGKILL grace for a job being stopped (10 s in production). */
  killGraceMs?: number;
  /** How often the runner reports to JobRunners for GET /metrics (15 s, or the heartbeat if longer). */
  reportMs?: number;
}

interface ActiveJob {
  id: number;
  process: JobProcess | null;
  writer: OutputWriter;
  lost: boolean;
  /** Its outcome is being written (the process has ended): that write is fenced and reports a lost job itself. */
  finishing: boolean;
  /** Local time when its lease was last known renewed (claimed, or the start of a successful renewal). */
  renewedAt: number;
  /** Stopped because its lease could not be renewed in time. */
  expired: boolean;
  done: Promise<void>;
}

const STDERR_TAIL = 5;

/** Tracks database health so trouble is logged once per change, not once per attempt. */
class DbHealth {
  private downSince: number | null = null;
  constructor(
    private readonly log: Logger,
    private readonly metrics: RunnerMetrics,
  ) {}
  ok(): void {
    if (this.downSince !== null) {
      this.downSince = null;
      this.log('database reachable again; catching up');
    }
  }
  /** "database unavailable for 40s" while it is; null when it answers. */
  trouble(): string | null {
    return this.downSince === null
      ? null
      : `database unavailable for ${Math.round((Date.now() - this.downSince) / 1000)}s`;
  }
  error(err: unknown): void {
    this.metrics.databaseError();
    if (this.downSince === null) {
      this.downSince = Date.now();
      this.log(
        `database unavailable (${(err as Error)?.message ?? String(err)}); jobs keep running, retrying with backoff`,
      );
    }
  }
}

export class Runner {
  private readonly active = new Map<number, ActiveJob>();
  private readonly log: Logger;
  private readonly health: DbHealth;
  private readonly finisher: FinishBatcher;
  private stopping = false;
  private wakeUp: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private reaperTimer: NodeJS.Timeout | null = null;
  private reportTimer: NodeJS.Timeout | null = null;
  private readonly metrics = new RunnerMetrics();
  private readonly unobserve: () => void;
  private heartbeatRunning = false;
  private heartbeatStartedAt = 0;
  private heartbeatHangReported = false;
  private stopped: Promise<void> | null = null;
  /** Set once stopped: the database is being closed, so a heartbeat or reap still in flight may fail quietly. */
  private closed = false;

  constructor(private readonly o: RunnerOptions) {
    this.log = o.log ?? ((line) => console.log(line));
    this.health = new DbHealth(this.log, this.metrics);
    this.unobserve = o.queue.observe(this.metrics.onQueueOp);
    this.finisher = new FinishBatcher(
      o.queue,
      o.config.id,
      (ending) => (this.stopping ? 0 : Math.max(0, Math.min(ending, o.config.concurrency - this.active.size + ending))),
      (job) => this.launch(job),
    );
  }

  get runnerId(): string {
    return this.o.config.id;
  }

  /** For systemd's STATUS=: "2/4 slots busy, last claim 3s ago" and any trouble. */
  statusLine(): string {
    return describeRunner(
      {
        slots: this.o.config.concurrency,
        busy: this.active.size,
        draining: this.stopping,
        lastClaimAgoSec: this.metrics.lastClaimAgoSec(),
      },
      this.health.trouble(),
    );
  }

  /** Upserts this runner's counters into JobRunners (GET /metrics); a failure waits for the next turn. */
  private async report(): Promise<void> {
    try {
      await this.o.queue.reportRunner(
        this.runnerId,
        this.metrics.report(this.o.config.concurrency, this.active.size, this.stopping),
      );
    } catch (err) {
      if (!this.closed) this.health.error(err);
    }
  }

  /** Starts the loop and the lease timers; resolves when the loop has ended (stop, or drained in once mode). */
  run(): Promise<void> {
    if (!this.loop) {
      if (this.o.config.testCrash) {
        this.log(`JOB_RUNNER_TEST_CRASH=${this.o.config.testCrash}: this runner will SIGKILL itself there (test only)`);
      }
      this.heartbeatTimer = setInterval(() => void this.heartbeat(), this.o.config.heartbeatMs);
      const reapEvery = Math.max(this.o.config.heartbeatMs, Math.floor(this.o.config.leaseMs / 4));
      this.reaperTimer = setInterval(() => void this.reap(), reapEvery);
      void this.reap();
      const reportEvery = this.o.reportMs ?? Math.max(15_000, this.o.config.heartbeatMs);
      this.reportTimer = setInterval(() => void this.report(), reportEvery);
      void this.report();
      // Once mode ends here: its last report (a draining runner reports again when stop() is done).
      this.loop = this.claimLoop()
        .then(() => (this.o.once ? this.report() : undefined))
        .finally(() => this.clearTimers());
    }
    return this.loop;
  }

  private clearTimers(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.reaperTimer) clearInterval(this.reaperTimer);
    if (this.reportTimer) clearInterval(this.reportTimer);
    this.heartbeatTimer = this.reaperTimer = this.reportTimer = null;
  }

  private wake(): void {
    this.wakeUp?.();
  }

  /** Sleeps until `ms` pass or something wakes the loop (a job ended, stop was called). */
  private sleep(ms: number | null): Promise<void> {
    return new Promise((resolve) => {
      const timer = ms === null ? null : setTimeout(done, ms);
      function done() {
        if (timer) clearTimeout(timer);
        resolve();
      }
      this.wakeUp = () => {
        this.wakeUp = null;
        done();
      };
    });
  }

  private async claimLoop(): Promise<void> {
    let failures = 0;
    while (!this.stopping) {
      const free = this.o.config.concurrency - this.active.size;
      if (free <= 0) {
        await this.sleep(null);
        continue;
      }
      let claimed: ClaimedJob[];
      try {
        claimed = await this.o.queue.claimDueJobs(this.runnerId, free);
        this.health.ok();
        failures = 0;
      } catch (err) {
        this.health.error(err);
        failures++;
        const backoff = Math.min(30_000, this.o.config.pollMs * 2 ** Math.min(failures, 5));
        await this.sleep(backoff / 2 + Math.random() * (backoff / 2));
        continue;
      }
      for (const job of claimed) this.launch(job);
      if (claimed.length === free) continue; // slots full or more may be due: claim again at once
      if (this.o.once && claimed.length === 0) {
        if (this.active.size === 0) break;
        await this.sleep(null); // a job's end may make room; nothing else is due
        continue;
      }
      await this.sleep(this.o.once ? null : this.o.config.pollMs);
    }
    if (this.o.once) await this.waitForJobs();
  }

  /** Test-only fault injection (JOB_RUNNER_TEST_CRASH): die here as `kill -9` would, writing nothing more. */
  private crashPoint(point: TestCrashPoint): void {
    if (this.o.config.testCrash === point) process.kill(process.pid, 'SIGKILL');
  }

  private launch(job: ClaimedJob): void {
    // Every claim (the loop's, or a finish batch's refill) has committed by the time a job is launched.
    this.crashPoint('after-claim');
    const entry = {} as ActiveJob;
    entry.id = job.id;
    entry.lost = false;
    entry.finishing = false;
    entry.renewedAt = Date.now();
    entry.expired = false;
    entry.process = null;
    entry.writer = new OutputWriter({
      queue: this.o.queue,
      fence: { jobId: job.id, runnerId: this.runnerId },
      lastSeq: job.lastSeq,
      maxBytes: this.o.config.outputMaxBytes,
      finishJob: (fence, outcome, rows) => {
        entry.finishing = true;
        return this.finisher.finish(fence, outcome, rows);
      },
      onPressure: (paused) => entry.process?.setPaused(paused),
      // A fenced write found the job gone: the same as a heartbeat finding it so (and logged the same way).
      onLost: () => this.loseJob(entry),
      onDbError: (err) => this.health.error(err),
      onDbOk: () => this.health.ok(),
    });
    this.active.set(job.id, entry);
    this.metrics.jobStarted();
    entry.done = this.execute(job, entry)
      .catch((err) => this.log(`job ${job.id}: runner error: ${(err as Error)?.stack ?? String(err)}`))
      .finally(() => {
        this.active.delete(job.id);
        this.wake();
      });
  }

  private async execute(job: ClaimedJob, entry: ActiveJob): Promise<void> {
    const { writer } = entry;
    const template = this.o.catalog.get(job.task);
    const invalid = async (reason: string) => {
      const outcome = { status: 'failure', exitCode: null, signal: null, error: 'invalid_template' } as const;
      if (await writer.finish(outcome, [reason])) this.metrics.jobFinished(outcome.status, null);
    };
    if (!template) return void (await invalid(`task "${job.task}" is not in the task file; job not run`));
    let prepared;
    try {
      prepared = prepareJob(template, job.params);
    } catch (err) {
      if (!(err instanceof ParamsError)) throw err;
      return void (await invalid(`params do not validate against task "${job.task}": ${err.message}; job not run`));
    }
    const started = Date.now();
    const stderrTail: string[] = [];
    // An out-of-memory message may be far above the tail (node prints a native stack trace after it).
    let outOfMemoryLine: string | null = null;
    const out = new LineSplitter((line) => writer.add('stdout', line));
    const errOut = new LineSplitter((line) => {
      writer.add('stderr', line);
      if (mentionsOutOfMemory(line)) outOfMemoryLine = line;
      stderrTail.push(line);
      if (stderrTail.length > STDERR_TAIL) stderrTail.shift();
    });
    const proc = new JobProcess({
      argv: prepared.argv,
      cwd: template.cwd ?? this.o.config.cwd,
      env: renderEnvironment(template, job, this.o.runnerEnv),
      timeoutMs: template.timeoutSec * 1000,
      limits: template.limits,
      prlimitPath: this.o.prlimitPath,
      setprivPath: this.o.setprivPath,
      killGraceMs: this.o.killGraceMs,
      onStdout: (chunk) => out.write(chunk),
      onStderr: (chunk) => errOut.write(chunk),
    });
    entry.process = proc;
    proc.start();
    if (this.stopping && !this.o.once) proc.stop('shutdown');
    const exit = await proc.done;
    out.end();
    errOut.end();
    const durationMs = Date.now() - started;
    const { outcome, line } = describeOutcome({
      exit,
      template: template as TaskTemplate,
      durationMs,
      stderrTail: outOfMemoryLine === null ? stderrTail : [outOfMemoryLine, ...stderrTail],
    });
    outcome.command = job.command === null ? prepared.command : null;
    if (entry.lost) return;
    this.crashPoint('before-finish');
    const recorded = await writer.finish(outcome, [line]);
    if (recorded) this.metrics.jobFinished(outcome.status, durationMs);
    if (!recorded && !entry.lost) this.log(`job ${job.id}: no longer owned by this runner; outcome not recorded`);
  }

  /** One statement renews every lease; lost jobs are killed, cancel requests stopped. */
  private async heartbeat(): Promise<void> {
    // Every tick, even while a renewal hangs (a partition resets nothing: a statement may wait for minutes).
    this.stopUnrenewed();
    if (this.heartbeatRunning) {
      // No answer is trouble too, though nothing failed: say so, once per renewal, as for an error.
      const waited = Date.now() - this.heartbeatStartedAt;
      if (!this.heartbeatHangReported && waited > Math.min(this.o.config.leaseMs / 2, 10_000)) {
        this.heartbeatHangReported = true;
        this.health.error(new Error(`no answer to the lease renewal for ${Math.round(waited / 1000)} s`));
      }
      return;
    }
    this.heartbeatRunning = true;
    try {
      const ids = [...this.active.keys()];
      if (ids.length === 0) return;
      const startedAt = (this.heartbeatStartedAt = Date.now());
      this.heartbeatHangReported = false;
      try {
        const report = await this.o.queue.renewLeases(this.runnerId, ids);
        this.health.ok();
        for (const id of ids) {
          const job = this.active.get(id);
          if (job && !report.lost.includes(id)) job.renewedAt = startedAt;
        }
        for (const id of report.lost) {
          const job = this.active.get(id);
          // Our own finish may have committed before its acknowledgement reached us (InnoDB releases
          // locks before the commit is flushed): not a lost lease. That fenced write reports a real loss.
          if (job && !job.finishing) this.loseJob(job);
        }
        for (const id of report.cancelRequested) this.active.get(id)?.process?.stop('cancelled');
      } catch (err) {
        if (this.closed) return;
        this.health.error(err);
        this.stopUnrenewed();
      }
    } finally {
      this.heartbeatRunning = false;
    }
  }

  /** Past its lease another runner may reap a job: stop it rather than run it unowned. */
  private stopUnrenewed(): void {
    const now = Date.now();
    for (const job of this.active.values()) {
      if (job.expired || job.finishing || !job.process || now - job.renewedAt <= this.o.config.leaseMs) continue;
      job.expired = true;
      this.log(
        `job ${job.id}: lease not renewed for ${Math.round((now - job.renewedAt) / 1000)} s (over JOB_RUNNER_LEASE_MS); stopping it`,
      );
      job.process.stop('runner_lost');
    }
  }

  /** The job is no longer ours (reaped, or changed by someone else): kill it, write nothing more. Once. */
  private loseJob(job: ActiveJob): void {
    if (job.lost) return;
    job.lost = true;
    job.writer.abandon();
    this.log(
      `job ${job.id}: its lease was taken (reaped, or changed by someone else); stopping its processes, writing nothing more`,
    );
    job.process?.kill('runner_lost');
  }

  private async reap(): Promise<void> {
    try {
      const reaped = await this.o.queue.reapExpiredLeases(this.o.config.leaseMs);
      this.health.ok();
      if (reaped.length > 0)
        this.log(`reaped ${reaped.length} job(s) whose runner stopped renewing: ${reaped.join(', ')}`);
    } catch (err) {
      if (!this.closed) this.health.error(err);
    }
  }

  private async waitForJobs(): Promise<void> {
    while (this.active.size > 0) await Promise.all([...this.active.values()].map((j) => j.done));
  }

  /**
   * Drains: stops claiming (the claim in flight completes), lets running jobs finish within
   * `graceMs`, then stops the rest (failure/shutdown). Idempotent; resolves when all is written.
   */
  stop(graceMs = this.o.config.shutdownGraceMs): Promise<void> {
    if (!this.stopped) {
      this.stopping = true;
      this.wake();
      this.stopped = (async () => {
        await this.loop;
        if (this.active.size > 0) {
          this.log(`draining: ${this.active.size} job(s) running, up to ${Math.round(graceMs / 1000)} s to finish`);
          let graceTimer: NodeJS.Timeout | undefined;
          await Promise.race([this.waitForJobs(), new Promise<void>((r) => (graceTimer = setTimeout(r, graceMs)))]);
          clearTimeout(graceTimer);
          this.stopAll('shutdown', false);
        }
        await this.finishWrites();
        this.clearTimers();
        // The last report, unless the database keeps us waiting: exiting in time matters more.
        let reportTimer: NodeJS.Timeout | undefined;
        await Promise.race([this.report(), new Promise<void>((r) => (reportTimer = setTimeout(r, 3000)))]);
        clearTimeout(reportTimer);
        this.unobserve();
        this.closed = true;
      })();
    }
    return this.stopped;
  }

  /** The second signal: kill every job now, record what can be recorded quickly, and return. */
  async stopNow(): Promise<void> {
    this.stopping = true;
    this.wake();
    this.stopAll('shutdown', true);
    await this.finishWrites(5000);
    this.clearTimers();
    this.unobserve();
    this.closed = true;
  }

  private stopAll(reason: StopReason, now: boolean): void {
    for (const job of this.active.values()) {
      if (now) job.process?.kill(reason);
      else job.process?.stop(reason);
    }
  }

  /** Waits for jobs to record their outcome; with the database away, gives up after `limitMs`. */
  private async finishWrites(limitMs = (this.o.killGraceMs ?? 10_000) + 15_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = await Promise.race([
      this.waitForJobs().then(() => false),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(true), limitMs))),
    ]);
    clearTimeout(timer);
    if (gaveUp) {
      for (const job of this.active.values()) job.writer.abandon();
      this.log(`exiting with ${this.active.size} outcome(s) unrecorded; the lease reaper will mark them runner_lost`);
    }
  }
}
