// One claimed job on this runner, from its claim to its recorded outcome: validate, spawn, stream
// its output, describe how it ended, write that (fenced). Its phase is the one word for where it is.
import { ConfigError, type RunnerConfig, type TestCrashPoint } from '../config';
import type { Logger } from '../log';
import { adminTaskAllowed, type CreatorRights } from '../models/job-rights';
import { CANCELLED_UNSTARTED, Queue, type ClaimedJob, type Fence, type Outcome, type OutputRow } from '../models/queue';
import type { TaskCatalog, TaskTemplate } from '../tasks/catalog';
import { prepareJob, renderEnvironment, renderGroupKey, ParamsError } from '../tasks/render';
import { planRetry } from '../tasks/retry';
import type { DbHealth } from './db-health';
import { JobProcess, type StopReason } from './job-process';
import { resolveJobUser, type JobUser } from './job-user';
import type { Launcher } from './launcher';
import { MARK_VARIABLE, ProcessLedger } from './leftovers';
import { LineSplitter } from './line-splitter';
import type { RunnerMetrics } from './metrics';
import { describeOutcome, mentionsOutOfMemory } from './outcome';
import { OutputWriter } from './output-writer';
import type { Place, Turn } from './slots';

/**
 * waiting → starting → running → finishing → done, where
 * - `waiting`: claimed, waiting for a process slot (runner/slots.ts); it may go back to pending from here;
 * - `expired`: stopped because its lease could not be renewed in time (it still ends and finishes);
 * - `lost`: no longer this runner's (reaped, or changed by someone else): killed, nothing more written.
 */
export type JobPhase = 'waiting' | 'starting' | 'running' | 'expired' | 'finishing' | 'lost' | 'done';

/** What a runner is built with and lends each of its jobs. */
export interface JobTools {
  queue: Queue;
  catalog: TaskCatalog;
  config: RunnerConfig;
  runnerEnv: Readonly<Record<string, string | undefined>>;
  prlimitPath?: string;
  setprivPath?: string;
  /** Jobs die with the runner (outside systemd, whose cgroup does that). */
  pdeathsig?: boolean;
  /** Forks the jobs outside the runner, and ends them if the runner dies (without a setpriv exec per job). */
  launcher?: Launcher | null;
  /** SIGTERM-to-SIGKILL grace for a job being stopped (10 s in production). */
  killGraceMs?: number;
  /** Outside systemd: where this runner records its jobs' process groups, for the next runner on the host. */
  ledger?: ProcessLedger | null;
}

/** What a job borrows from its runner. */
export interface JobRunContext extends JobTools {
  log: Logger;
  health: DbHealth;
  metrics: RunnerMetrics;
  /** Writes the outcome (the runner batches finishes across jobs). */
  finish: (fence: Fence, outcome: Outcome, rows: OutputRow[]) => Promise<boolean>;
  /** True when a job that starts now should be stopped at once (the runner is draining). */
  stopOnStart: () => boolean;
  crashPoint: (point: TestCrashPoint) => void;
  /** A place in line for a process slot (the runner's SlotGate). */
  takeSlot: () => Place;
}

const STDERR_TAIL = 5;
const RETRY_MAX_MS = 5000;

export class JobRun {
  /** Written by run() (its own progress), and by lose()/expire() from the lease keeper or the writer. */
  phase: JobPhase = 'waiting';
  /** Local time its lease was last known renewed: written by the lease keeper (and at claim). */
  renewedAt = Date.now();
  /** Written by run() once spawned. */
  private process: JobProcess | null = null;
  /** Written by run(): its place for a process slot. */
  private place: Place | null = null;
  /** Written by stop()/kill() while waiting: why the job is not to start. */
  private stoppedWaiting: StopReason | null = null;
  readonly writer: OutputWriter;

  constructor(
    private readonly job: ClaimedJob,
    private readonly ctx: JobRunContext,
  ) {
    this.writer = new OutputWriter({
      queue: ctx.queue,
      fence: this.fence,
      lastSeq: job.lastSeq,
      maxBytes: ctx.config.outputMaxBytes,
      finishJob: (fence, outcome, rows) => ctx.finish(fence, outcome, rows),
      onPressure: (paused) => this.process?.setPaused(paused),
      // A fenced write found the job gone: the same as a heartbeat finding it so.
      onLost: () => this.lose(),
      onStoreFailed: (err) => {
        ctx.log.error(`job ${job.id}: its output cannot be stored (${Queue.describeError(err)}); stopping it`);
        this.process?.stop('output_failed');
      },
      onDbError: (err) => ctx.health.error(err),
      onDbOk: () => ctx.health.ok(),
    });
  }

  get id(): number {
    return this.job.id;
  }

  /** This run's claim: the job, this runner, this attempt. */
  get fence(): Fence {
    return { jobId: this.job.id, runnerId: this.ctx.config.id, attempt: this.job.attempt };
  }

  /**
   * Runs the job to its recorded outcome once a process slot is its own (its slot is given back when
   * its process ends, before the outcome is written); never rejects for the job's own failures.
   */
  async run(): Promise<void> {
    const place = (this.place = this.ctx.takeSlot());
    const turn = await place.turn;
    if (turn !== 'go') return this.notStarted(turn);
    if (this.phase === 'waiting') this.phase = 'starting';
    // Counted when it takes its slot: a job claimed ahead and sent back is counted when it runs.
    this.ctx.metrics.jobStarted();
    try {
      await this.runInSlot(place);
    } finally {
      place.leave();
    }
  }

  /**
   * A claimed job that never got a slot: cancelled on request, or back to pending (the runner drains,
   * or it waited too long behind long jobs), for this runner or another to claim again.
   */
  private async notStarted(turn: Exclude<Turn, 'go'>): Promise<void> {
    if (this.phase === 'lost') return;
    const cancelled = turn === 'withdrawn' && this.stoppedWaiting === 'cancelled';
    if (!cancelled) {
      this.phase = 'finishing';
      const released = await this.askUntilAnswered(() => this.ctx.queue.releaseClaim(this.fence));
      if (released !== false) {
        this.phase = 'done';
        this.writer.abandon();
        if (released) {
          const why = turn === 'late' ? 'it waited too long for a slot' : 'the runner drains';
          this.ctx.log.info(`job ${this.id}: claimed ahead and not started; back to pending (${why})`);
        }
        return;
      }
      // Not released: its cancel was asked for meanwhile (recorded below), or it is no longer ours (the fence tells).
    }
    await this.record(CANCELLED_UNSTARTED.outcome, CANCELLED_UNSTARTED.line, null);
  }

  private async runInSlot(place: Place): Promise<void> {
    const { job, ctx, writer } = this;
    const template = ctx.catalog.get(job.task);
    if (!template) return this.refuse(`task "${job.task}" is not in the task file; job not run`);
    let prepared;
    try {
      prepared = prepareJob(template, job.params);
    } catch (err) {
      if (!(err instanceof ParamsError)) throw err;
      return this.refuse(`params do not validate against task "${job.task}": ${err.message}; job not run`);
    }
    const group = renderGroupKey(template, prepared.params);
    if (group !== null && job.groupKey === null) return this.joinGroup(group, template.groupOnFailure === 'block');
    if (template.adminOnly) {
      const rights = await this.creatorRights();
      if (rights === null) return; // lost meanwhile
      if (!rights.allowed) {
        return this.refuse(`task "${job.task}" is for admins and ${rights.why}; job not run`, 'not_allowed');
      }
    }
    let user: JobUser | undefined;
    try {
      user = this.jobUser(template);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      return this.refuse(`${err.message}; job not run`);
    }
    if (job.attempt > 1) {
      // The output cap is the job's, not each attempt's.
      try {
        writer.countEarlier(await ctx.queue.outputBytes(job.id));
      } catch (err) {
        // The database is away: run anyway, with this attempt's own cap (its writes wait for the database).
        ctx.health.error(err);
      }
      writer.addSystem(`attempt ${job.attempt} of ${job.maxAttempts}, on runner ${ctx.config.id}`);
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
    const env = renderEnvironment(template, job, ctx.runnerEnv);
    const { ledger } = ctx;
    const mark = ledger ? ProcessLedger.newMark() : null;
    if (mark !== null) env[MARK_VARIABLE] = mark;
    const proc = new JobProcess({
      argv: prepared.argv,
      cwd: template.cwd ?? ctx.config.cwd,
      env,
      timeoutMs: template.timeoutSec * 1000,
      limits: template.limits,
      prlimitPath: ctx.prlimitPath,
      setprivPath: ctx.setprivPath,
      pdeathsig: ctx.pdeathsig,
      launcher: ctx.launcher,
      user,
      killGraceMs: ctx.killGraceMs,
      ...(ledger && mark !== null && { onSpawn: (pgid: number) => ledger.add(job.id, pgid, mark) }),
      onStdout: (chunk) => out.write(chunk),
      onStderr: (chunk) => errOut.write(chunk),
    });
    this.process = proc;
    if (this.phase === 'starting') this.phase = 'running';
    proc.start();
    if (ctx.stopOnStart()) proc.stop('shutdown');
    const exit = await proc.done;
    place.leave();
    ledger?.remove(job.id);
    out.end();
    errOut.end();
    const durationMs = Date.now() - started;
    const { outcome, line } = describeOutcome({
      exit,
      template,
      durationMs,
      stderrTail: outOfMemoryLine === null ? stderrTail : [outOfMemoryLine, ...stderrTail],
      storeError: writer.storeError,
    });
    outcome.command = job.command === null ? prepared.command : null;
    outcome.retry = planRetry(template.retry, outcome, job.attempt, job.maxAttempts);
    if (this.phase === 'lost') return;
    ctx.crashPoint('before-finish');
    await this.record(outcome, line, durationMs);
  }

  /**
   * A job of a grouped task inserted without its group (plain SQL): it goes back to pending in its
   * group, behind the group's earlier jobs, and runs in its turn.
   */
  private async joinGroup(key: string, blockOnFailure: boolean): Promise<void> {
    this.phase = 'finishing';
    const joined = await this.ctx.queue.joinGroup(this.fence, { key, blockOnFailure });
    this.phase = 'done';
    this.ctx.log.info(`job ${this.id}: ${joined ? `joined its group ${key}; it runs in its turn` : 'no longer ours'}`);
  }

  /** The user the job runs as (the template's, else the runner's JOB_RUNNER_JOB_USER); throws ConfigError. */
  private jobUser(template: TaskTemplate): JobUser | undefined {
    if (template.user !== undefined) return resolveJobUser(template.user, `task "${template.name}": user`);
    const spec = this.ctx.config.jobUser;
    return spec === undefined ? undefined : resolveJobUser(spec, 'JOB_RUNNER_JOB_USER');
  }

  /**
   * Whether the creator may still run an adminOnly task, read now. Fails closed: while the database
   * cannot answer, it asks again (with backoff) rather than run; null once the job is no longer ours.
   */
  private creatorRights(): Promise<CreatorRights | null> {
    return this.askUntilAnswered(() => adminTaskAllowed(this.ctx.queue.db, this.job));
  }

  /** `ask` again (with backoff) while the database cannot answer; null once the job is no longer ours. */
  private async askUntilAnswered<T>(ask: () => Promise<T>): Promise<T | null> {
    let delay = 100;
    for (;;) {
      try {
        const answer = await ask();
        this.ctx.health.ok();
        return answer;
      } catch (err) {
        this.ctx.health.error(err);
      }
      if ((this.phase as JobPhase) === 'lost') return null;
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(RETRY_MAX_MS, delay * 2);
    }
  }

  /** Ends a job that cannot run as it stands (unknown task, params that no longer validate, no right to). */
  private refuse(reason: string, error: 'invalid_template' | 'not_allowed' = 'invalid_template'): Promise<void> {
    return this.record({ status: 'failure', exitCode: null, signal: null, error }, reason, null);
  }

  private async record(outcome: Outcome, line: string, durationMs: number | null): Promise<void> {
    this.phase = 'finishing';
    const recorded = await this.writer.finish(outcome, [line]);
    if (recorded) {
      this.phase = 'done';
      if (outcome.retry) this.ctx.metrics.attemptRetried(durationMs);
      else this.ctx.metrics.jobFinished(outcome.status, durationMs);
    } else if ((this.phase as JobPhase) !== 'lost') {
      this.ctx.log.warn(`job ${this.id}: no longer owned by this runner; outcome not recorded`);
    }
  }

  /** Stops the job's processes gently (SIGTERM, then SIGKILL after the grace); a waiting job does not start. */
  stop(reason: StopReason): void {
    if (this.phase === 'waiting') this.stopWaiting(reason);
    else this.process?.stop(reason);
  }

  /** Stops the job's processes at once; a waiting job does not start. */
  kill(reason: StopReason): void {
    if (this.phase === 'waiting') this.stopWaiting(reason);
    else this.process?.kill(reason);
  }

  private stopWaiting(reason: StopReason): void {
    this.stoppedWaiting ??= reason;
    this.place?.leave();
  }

  /** Past its lease another runner may reap the job: stop it rather than run it unowned. Once. */
  expire(now: number, leaseMs: number): void {
    if (this.phase !== 'running' || now - this.renewedAt <= leaseMs) return;
    this.phase = 'expired';
    this.ctx.log.warn(
      `job ${this.id}: lease not renewed for ${Math.round((now - this.renewedAt) / 1000)} s (over JOB_RUNNER_LEASE_MS); stopping it`,
    );
    this.process?.stop('runner_lost');
  }

  /** The job is no longer ours (reaped, or changed by someone else): kill it, write nothing more. Once. */
  lose(): void {
    if (this.phase === 'lost' || this.phase === 'done') return;
    const waiting = this.phase === 'waiting';
    this.phase = 'lost';
    this.writer.abandon();
    this.ctx.log.warn(
      `job ${this.id}: its lease was taken (reaped, or changed by someone else); stopping its processes, writing nothing more`,
    );
    if (waiting) this.place?.leave();
    this.process?.kill('runner_lost');
  }
}
