// The queue engine: claim, output, finish, heartbeat, reap, cancel, each one short transaction.
// Its SQL comes from the database's driver (models/drivers/): raw on purpose, since Sequelize drops
// skipLocked on MySQL. Nothing here knows which database it talks to, only what it can do.
import { QueryTypes, type Transaction } from 'sequelize';
import { ClaimsInDoubt, type ClaimTicket, type DoubtfulClaim } from './claims-in-doubt';
import { Coalescer } from './coalescer';
import {
  countOwnersJobs,
  IdempotencyConflictError,
  insertAlone,
  insertJobs,
  insertsAlone,
  QuotaExceededError,
  type Enqueued,
  type NewJob,
} from './enqueue';
import { Nudger, nudgeForJobs } from './nudge';
import { admitNext, lockGroupForEnqueue, releaseGroup, unblockGroup } from './groups';
import { sqlIn } from './sql';
import type { Database } from './database';
import type { Driver, QueueStatements } from './drivers';
import type { LaneSend, StatementLane } from './drivers/mysql-lane';
import { driverError } from './drivers/driver';
import type { RunnerReport } from './metrics';
import { writeGateFor, type WriteGate } from './write-gate';
import { parseJsonColumn, type JobStatusName, type OutputStream } from './models';

export interface ClaimedJob {
  id: number;
  task: string;
  params: unknown;
  command: string | null;
  createdBy: string | null;
  /** Its serial group (null: none, or inserted by plain SQL before it joined one). */
  groupKey: string | null;
  /** This run's attempt (from 1) and how many the job may have (README, "Retries"). */
  attempt: number;
  maxAttempts: number;
  /** The highest output line number the job already has (0 for a fresh job). */
  lastSeq: number;
}

/** Why a pending job has not started (README, "Serial groups"). */
export type WaitingReason = 'run_at' | 'retry' | 'group' | 'group_blocked' | 'quota' | 'slot';

/** Limits between users (README, "Fair shares between users"); 0: no limit. */
export interface Quotas {
  /** JOB_USER_MAX_RUNNING: the most jobs of one owner running at once, across the fleet. */
  userMaxRunning: number;
  /** JOB_USER_MAX_PENDING: the most pending jobs one owner may have (an enqueue beyond it fails). */
  userMaxPending: number;
}

export const NO_QUOTAS: Quotas = { userMaxRunning: 0, userMaxPending: 0 };

/**
 * How many due jobs of the top priority a spread claim may start in. Wide enough that claimers on
 * different nodes seldom pick overlapping rows, narrow enough that the queue stays near FIFO.
 */
export const CLAIM_WINDOW = 64;

export interface QueueOptions {
  /**
   * Spread claims over the first CLAIM_WINDOW due jobs instead of all taking the head: 'auto' (the
   * default) when the database is one primary of several (Galera, multi-primary Group Replication).
   */
  claimWindow?: 'auto' | 'on' | 'off';
  /**
   * Claims and finishes in two round trips each where the database has a lane (Database.lane): true
   * (the default), or false for one statement a round trip (tests compare the two).
   */
  lane?: boolean;
}

export interface GroupState {
  key: string;
  state: 'active' | 'blocked';
  /** The group's job that runs now (null while its head waits for a slot or its runAt). */
  runningJobId: number | null;
  pendingJobs: number;
  blockedByJobId: number | null;
}

export interface OutputRow {
  seq: number;
  stream: OutputStream;
  output: string;
}

/** Proof that this runner still owns a job at this attempt: every write of a claimed job checks it. */
export interface Fence {
  jobId: number;
  runnerId: string;
  attempt: number;
}

export interface Outcome {
  status: Extract<JobStatusName, 'success' | 'failure' | 'cancelled'>;
  exitCode: number | null;
  signal: string | null;
  error: string | null;
  command?: string | null;
  /**
   * A failure the template retries: the job goes back to pending at its next attempt, due in
   * `delayMs`, and `note` is its last system row. Not done when a cancel was requested meanwhile.
   */
  retry?: { delayMs: number; note: string } | null;
}

/** How a claimed job whose cancel was asked for before it started ends: its outcome and its system row. */
export const CANCELLED_UNSTARTED: { outcome: Outcome; line: string } = {
  outcome: { status: 'cancelled', exitCode: null, signal: null, error: 'cancelled' },
  line: 'cancelled on request before it started',
};

/** What a reaper needs to know of an expired job to decide on a retry (runner_lost). */
export interface ExpiredJob {
  id: number;
  task: string;
  attempt: number;
  maxAttempts: number;
}

/** What a reaper says about an expired job: run it again in `delayMs` (its `note` a system row), or null. */
export type ReapRetry = (job: ExpiredJob) => { delayMs: number; note: string } | null;

export type RetryResult =
  | { result: 'retried'; status: 'pending'; attempt: number }
  | { result: 'not_retryable'; status: JobStatusName }
  | { result: 'not_found' };

/** The job a person asks to retry, as the caller checks it against the task file. */
export interface RetryCandidate {
  task: string;
  params: unknown;
  groupKey: string | null;
}

export interface LeaseReport {
  /** Jobs this runner no longer owns (reaped, or changed under it): stop them, write nothing more. */
  lost: number[];
  /** Jobs someone asked to cancel. */
  cancelRequested: number[];
}

export type CancelResult =
  | { result: 'cancelled'; status: 'cancelled' }
  | { result: 'requested'; status: 'running' }
  | { result: 'finished'; status: JobStatusName }
  | { result: 'not_found' };

/** What Queue.observeDoubts reports: jobs of claims in doubt given back to pending, or ended cancelled. */
export type DoubtObserver = (settled: { released: number; cancelled: number }) => void;

/** What Queue.observe reports: a claim, an output flush, or a finish (which may claim successors). */
export type QueueOp = 'claim' | 'flush' | 'finish';
export type QueueObserver = (op: QueueOp, seconds: number, claimed: number) => void;

/**
 * The text a line is stored as, the same on every database: NUL (which SQL text and PostgreSQL
 * cannot carry) becomes U+2400 (␀), a lone UTF-16 surrogate U+FFFD; invalid UTF-8 became U+FFFD
 * when the bytes were decoded. Everything else is kept as printed.
 */
export function storableText(text: string): string {
  const noNul = text.includes('\0') ? text.replaceAll('\0', '\u2400') : text;
  return noNul.isWellFormed() ? noNul : noNul.toWellFormed();
}

/** A claimed row as the runner takes it (numbers as numbers, params parsed). */
function claimedJob(r: ClaimedJob): ClaimedJob {
  return {
    ...r,
    id: Number(r.id),
    params: parseJsonColumn<unknown>(r.params),
    attempt: Number(r.attempt),
    maxAttempts: Number(r.maxAttempts),
    lastSeq: Number(r.lastSeq),
  };
}

/** insertOutput's positional values for `rows`. */
function outputValues(rows: { jobId: number; row: OutputRow }[]): unknown[] {
  const values: unknown[] = [];
  for (const { jobId, row } of rows) values.push(jobId, row.seq, row.stream, storableText(row.output));
  return values;
}

/** Jobs that ended alike at the same attempt (the common case: all exit 0 at their first) share one UPDATE. */
function outcomeGroups(
  jobs: { fence: Fence; outcome: Outcome }[],
): { outcome: Outcome; ids: number[]; attempt: number }[] {
  const groups = new Map<string, { outcome: Outcome; ids: number[]; attempt: number }>();
  for (const { fence, outcome } of jobs) {
    const key = JSON.stringify([
      outcome.status,
      outcome.exitCode,
      outcome.signal,
      outcome.error,
      outcome.command ?? null,
      outcome.command ? fence.jobId : 0,
      fence.attempt,
    ]);
    const group = groups.get(key) ?? { outcome, ids: [], attempt: fence.attempt };
    group.ids.push(fence.jobId);
    groups.set(key, group);
  }
  return [...groups.values()];
}

export class Queue {
  private readonly driver: Driver;
  private readonly sql: QueueStatements;
  /** Set when the database takes one writer at a time (SQLite): this process queues its writes. */
  private readonly writeGate: WriteGate | null;
  private readonly observers = new Set<QueueObserver>();
  private readonly doubtObservers = new Set<DoubtObserver>();
  /** Tells idle runners of jobs due now (models/nudge.ts); null where the database tells them (dueNotice). */
  private readonly nudger: Nudger | null;
  /**
   * enqueue() calls made outside a transaction, coalesced (models/coalescer.ts): one lock per owner, one
   * count of their pending jobs, one INSERT and one COMMIT for all the calls that arrived while the last
   * went. One call's refusal (its owner at the pending cap, its key used for another job) is its own.
   */
  private readonly enqueues = new Coalescer<NewJob, Enqueued>((jobs) => this.enqueueMany(jobs), {
    refusesOne: (err) => err instanceof QuotaExceededError || err instanceof IdempotencyConflictError,
  });
  /** Whether claims spread (QueueOptions.claimWindow): set by the first claim that asks, reset when asking failed. */
  private spreadClaims: Promise<boolean> | null;
  /** Where claims and finishes go in few round trips (QueueOptions.lane); null: statement by statement. */
  private readonly lane: StatementLane | null;
  /** Claims whose COMMIT got no answer: their jobs go back to pending before the next claim. */
  private readonly doubts = new ClaimsInDoubt(
    (claims) => this.settleClaimsInDoubt(claims),
    (err) => !this.driver.isRetryableLockError(err),
  );

  constructor(
    readonly db: Database,
    readonly quotas: Quotas = NO_QUOTAS,
    options: QueueOptions = {},
  ) {
    const window = options.claimWindow ?? 'auto';
    this.spreadClaims = window === 'auto' ? null : Promise.resolve(window === 'on');
    this.lane = options.lane === false ? null : db.lane;
    this.nudger = db.driver.dueNotice ? null : new Nudger(db);
    this.driver = db.driver;
    this.sql = db.driver.statements;
    this.writeGate = db.driver.capabilities.serialWrites ? writeGateFor(storageOf(db)) : null;
  }

  /** Whether claims and finishes may go in two round trips each (the database has a lane, and it is not turned off). */
  get hasLane(): boolean {
    return this.lane !== null;
  }

  /** A write that no retry can fix: its statement or data is refused (see Driver.isPermanentError). */
  isPermanentError(err: unknown): boolean {
    return this.driver.isPermanentError(err);
  }

  /** A deadlock, a lock-wait timeout, a refused certification, a busy file: expected traffic, not an outage. */
  isLockConflict(err: unknown): boolean {
    return this.driver.isRetryableLockError(err);
  }

  /** The database's own words for an error (Sequelize's wrapper may say only "Validation error"). */
  static describeError(err: unknown): string {
    return driverError(err).message ?? (err as Error)?.message ?? String(err);
  }

  /**
   * A write (a transaction, or statements that take the write lock): on SQLite, one at a time in
   * this process; `urgent` (lease renewal) goes before the writes already waiting.
   */
  private write<T>(work: () => Promise<T>, urgent = false): Promise<T> {
    return this.writeGate ? this.writeGate.run(work, urgent) : work();
  }

  /** Calls `observer` when jobs of claims in doubt were given back (or ended cancelled); returns its remover. */
  observeDoubts(observer: DoubtObserver): () => void {
    this.doubtObservers.add(observer);
    return () => this.doubtObservers.delete(observer);
  }

  /** Calls `observer` after each claim, output flush and finish that succeeded; returns its remover. */
  observe(observer: QueueObserver): () => void {
    this.observers.add(observer);
    return () => this.observers.delete(observer);
  }

  private async timed<T>(op: QueueOp, work: () => Promise<T>, claimed: (result: T) => number): Promise<T> {
    if (this.observers.size === 0) return work();
    const started = performance.now();
    const result = await work();
    const seconds = (performance.now() - started) / 1000;
    for (const observer of this.observers) observer(op, seconds, claimed(result));
    return result;
  }

  private async update(sql: string, replacements: unknown, transaction?: Transaction): Promise<number> {
    return (await this.db.sequelize.query(sql, {
      type: QueryTypes.BULKUPDATE,
      replacements: replacements as Record<string, unknown>,
      transaction,
    })) as unknown as number;
  }

  private select<T extends object>(sql: string, replacements: unknown, transaction?: Transaction): Promise<T[]> {
    return this.db.sequelize.query<T>(sql, {
      type: QueryTypes.SELECT,
      replacements: replacements as Record<string, unknown>,
      transaction,
    });
  }

  /** Runs `work` in a transaction, retrying deadlocks and lock-wait timeouts a few times. */
  async transaction<T>(work: (t: Transaction) => Promise<T>): Promise<T> {
    if (this.driver.capabilities.refusableCommit) return this.retrying(() => this.committedHere(work));
    return this.retrying(() => this.db.sequelize.transaction(work));
  }

  /**
   * A transaction whose COMMIT the queue sends itself (DriverCapabilities.refusableCommit): a lock
   * conflict at COMMIT left the transaction rolled back and the connection sound, so it goes back
   * to the pool and the caller retries; only another COMMIT error (the connection lost, in doubt)
   * drops the connection, as Sequelize's commit would.
   */
  private async committedHere<T>(work: (t: Transaction) => Promise<T>): Promise<T> {
    const transaction = await this.db.sequelize.transaction();
    let result: T;
    try {
      result = await work(transaction);
    } catch (err) {
      await transaction.rollback().catch(() => undefined);
      throw err;
    }
    const internals = transaction as unknown as SequelizeTransactionInternals;
    try {
      await this.db.sequelize.query('COMMIT', { transaction });
    } catch (err) {
      if (this.driver.isRetryableLockError(err)) await transaction.rollback().catch(() => undefined);
      else await internals.forceCleanup().catch(() => undefined);
      internals.finished = 'rollback';
      throw err;
    }
    internals.finished = 'commit';
    internals.cleanup();
    for (const hook of internals._afterCommitHooks) await hook(transaction);
    return result;
  }

  /** A write (through the SQLite write gate), again after a lock conflict, up to 5 times. */
  private async retrying<T>(write: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.write(write);
      } catch (err) {
        if (attempt >= 5 || !this.driver.isRetryableLockError(err)) throw err;
        await new Promise((r) => setTimeout(r, 5 * attempt + Math.random() * 20));
      }
    }
  }

  /**
   * Claims up to `limit` due pending jobs (priority DESC, id ASC) in one short transaction.
   * On MySQL the SELECT walks jobs_claim_ready in index order with SKIP LOCKED, so concurrent
   * runners each take different rows and never wait on each other.
   */
  async claimDueJobs(runnerId: string, limit: number): Promise<ClaimedJob[]> {
    if (limit <= 0) return [];
    return this.timed(
      'claim',
      () =>
        this.doubts.claim(
          runnerId,
          async (ticket) =>
            (await this.claimsOnLane())
              ? this.onLane((send) => this.claimOnLane(send, ticket, limit))
              : this.transaction((transaction) => this.claimIn(transaction, ticket, limit)),
          (jobs) => jobs.map((j) => j.id),
        ),
      (jobs) => jobs.length,
    );
  }

  /**
   * An idle runner's poll: whether any job is due, and whether any lease ran out (the reaper's
   * work). One statement, no transaction, no lock.
   */
  async idleProbe(leaseMs: number): Promise<{ due: boolean; expired: boolean }> {
    const rows = await this.select<{ what: string }>(this.sql.idleProbe(leaseMs), {});
    return { due: rows.some((r) => r.what === 'due'), expired: rows.some((r) => r.what === 'expired') };
  }

  /** Whether claims spread over the window (asked of the database once, by the first claim). */
  private spreading(transaction?: Transaction): Promise<boolean> {
    const detect = this.driver.multiPrimary;
    if (this.spreadClaims) return this.spreadClaims;
    if (!detect) return (this.spreadClaims = Promise.resolve(false));
    const asked = detect((sql) => this.select<Record<string, unknown>>(sql, {}, transaction));
    this.spreadClaims = asked;
    asked.catch(() => {
      if (this.spreadClaims === asked) this.spreadClaims = null;
    });
    return asked;
  }

  /**
   * The rows a claim takes, locked: from the head of the queue; or, spread, from a random one of the
   * first CLAIM_WINDOW due jobs of the top priority on (topped up from the head when that comes up
   * short), so claimers on different nodes of a multi-primary cluster seldom take the same rows.
   * Either way no job passes one of a higher priority, and a group's jobs stay in order (only a
   * group's head is claimable).
   */
  private async claimRows(transaction: Transaction, limit: number, cap: number): Promise<ClaimedJob[]> {
    const quota = cap > 0;
    if (!(await this.spreading(transaction))) {
      return this.select<ClaimedJob>(this.sql.claimSelect(limit, quota), { cap }, transaction);
    }
    const window = await this.select<{ id: number; priority: number }>(
      this.sql.claimWindow(CLAIM_WINDOW),
      {},
      transaction,
    );
    if (window.length === 0) return [];
    const priority = Number(window[0].priority);
    const top = window.filter((r) => Number(r.priority) === priority);
    const fromId = Number(top[Math.floor(Math.random() * top.length)].id);
    const rows =
      fromId === Number(top[0].id)
        ? []
        : await this.select<ClaimedJob>(
            this.sql.claimSelect(limit, quota, 'from'),
            { cap, priority, fromId },
            transaction,
          );
    if (rows.length >= limit) return rows;
    const taken = rows.length > 0 ? rows.map((r) => r.id) : [-1];
    const head = await this.select<ClaimedJob>(
      this.sql.claimSelect(limit - rows.length, quota, 'except'),
      { cap, taken },
      transaction,
    );
    return [...rows, ...head];
  }

  private async claimIn(transaction: Transaction, ticket: ClaimTicket, limit: number): Promise<ClaimedJob[]> {
    ticket.committing = [];
    if (limit <= 0) return [];
    const cap = this.quotas.userMaxRunning;
    let rows = await this.claimRows(transaction, limit, cap);
    if (rows.length === 0) return [];
    if (cap > 0) rows = await this.withinQuota(rows, cap, transaction);
    if (rows.length === 0) return [];
    const jobs = rows.map(claimedJob);
    await this.update(this.sql.claimMark, { runnerId: ticket.runnerId, ids: jobs.map((j) => j.id) }, transaction);
    ticket.committing = jobs;
    return jobs;
  }

  /**
   * Whether claims go on the lane: there is one, no owner has a cap (counted under each owner's lock,
   * statement by statement), and claims start at the head (a spread claim reads a window first).
   */
  private async claimsOnLane(): Promise<boolean> {
    if (this.lane === null || this.quotas.userMaxRunning > 0) return false;
    return !(await this.spreading());
  }

  /** A transaction on the lane, again after a lock conflict (as transaction() does). */
  private onLane<T>(work: (send: LaneSend) => Promise<T>): Promise<T> {
    return this.retrying(() => this.lane!.session(work));
  }

  /** claimIn in two round trips: the locked SELECT, then the mark and the COMMIT. */
  private async claimOnLane(send: LaneSend, ticket: ClaimTicket, limit: number): Promise<ClaimedJob[]> {
    ticket.committing = [];
    const [, rows] = await send(['START TRANSACTION', this.sql.claimSelect(limit)]);
    return this.commitClaims(send, ticket, rows as unknown as ClaimedJob[]);
  }

  /** The last step of a lane transaction: the claimed rows become running, and all commits. */
  private async commitClaims(send: LaneSend, ticket: ClaimTicket, rows: ClaimedJob[]): Promise<ClaimedJob[]> {
    // Read before the COMMIT: a row that cannot be read fails the claim and rolls it back, as claimIn does.
    const jobs = rows.map(claimedJob);
    const { runnerId } = ticket;
    const mark =
      jobs.length > 0 ? [this.lane!.format(this.sql.claimMark, { runnerId, ids: jobs.map((j) => j.id) })] : [];
    ticket.committing = jobs;
    await send([...mark, 'COMMIT']);
    return jobs;
  }

  /**
   * The claimed rows each owner may still start: under the owner's lock (owners in name order), a
   * current count of their running jobs, so two runners never both take an owner's last place.
   */
  private async withinQuota(rows: ClaimedJob[], cap: number, transaction: Transaction): Promise<ClaimedJob[]> {
    const sql = sqlIn(this.db.sequelize, transaction);
    const owners = [...new Set(rows.flatMap((r) => (r.createdBy === null ? [] : [r.createdBy])))];
    const counted = await countOwnersJobs(sql, this.sql, owners, 'running', cap);
    const room = new Map([...counted].map(([owner, n]) => [owner, cap - n]));
    return rows.filter((r) => {
      if (r.createdBy === null) return true;
      const left = room.get(r.createdBy)!;
      room.set(r.createdBy, left - 1);
      return left > 0;
    });
  }

  private insertOutput(jobId: number, rows: OutputRow[], transaction: Transaction): Promise<unknown> {
    return this.insertRows(
      rows.map((row) => ({ jobId, row })),
      transaction,
    );
  }

  /** One multi-row INSERT; rows already stored (same jobId and seq) are skipped. */
  private insertRows(rows: { jobId: number; row: OutputRow }[], transaction: Transaction): Promise<unknown> {
    return this.db.sequelize.query(this.sql.insertOutput(rows.length), {
      type: QueryTypes.INSERT,
      replacements: outputValues(rows),
      transaction,
    });
  }

  private async holdsFence(fence: Fence, transaction: Transaction): Promise<boolean> {
    return (await this.select(this.sql.fenceHeld, fence, transaction)).length === 1;
  }

  /**
   * Stores output rows of a running job, fenced by its owner. Safe to retry after a commit in
   * doubt: (jobId, seq) is unique and rows already stored are skipped. False when the fence is lost.
   */
  async appendOutput(fence: Fence, rows: OutputRow[]): Promise<boolean> {
    if (rows.length === 0) return true;
    return this.timed(
      'flush',
      () =>
        this.transaction(async (transaction) => {
          if (!(await this.holdsFence(fence, transaction))) return false;
          await this.insertOutput(fence.jobId, rows, transaction);
          return true;
        }),
      () => 0,
    );
  }

  /**
   * Writes claimed jobs' last output rows and outcomes in one transaction (one commit for many
   * jobs), each fenced by its owner, and may claim their successors in the same transaction.
   * `finished[i]` is false when job i was no longer this runner's (nothing is written for it).
   * One batch is one runner's: the fences are checked against the first job's runner.
   */
  async finishJobs(
    jobs: { fence: Fence; outcome: Outcome; rows: OutputRow[] }[],
    refill?: { runnerId: string; limit: number },
  ): Promise<{ finished: boolean[]; claimed: ClaimedJob[] }> {
    return this.timed(
      'finish',
      () => this.finishJobsIn(jobs, refill),
      (result) => result.claimed.length,
    );
  }

  private finishJobsIn(
    jobs: { fence: Fence; outcome: Outcome; rows: OutputRow[] }[],
    refill?: { runnerId: string; limit: number },
  ): Promise<{ finished: boolean[]; claimed: ClaimedJob[] }> {
    if (jobs.length === 0) return Promise.resolve({ finished: [], claimed: [] });
    if (!refill) return this.finishOnLane(jobs).then((done) => done ?? this.finishInTransaction(jobs));
    return this.doubts.claim(
      refill.runnerId,
      async (ticket) => {
        const successors = { ticket, limit: refill.limit };
        return (await this.finishOnLane(jobs, successors)) ?? this.finishInTransaction(jobs, successors);
      },
      (result) => result.claimed.map((j) => j.id),
    );
  }

  /**
   * finishJobsIn in two round trips, for a batch of jobs that hold no group and are not retried: the
   * fenced outcomes, the output rows and the successors' locked SELECT, then their mark and COMMIT.
   * Null when it does not apply, or when a fence did not hold (all rolled back): the batch then goes
   * statement by statement, which settles each job on its own.
   */
  private async finishOnLane(
    jobs: { fence: Fence; outcome: Outcome; rows: OutputRow[] }[],
    refill?: { ticket: ClaimTicket; limit: number },
  ): Promise<{ finished: boolean[]; claimed: ClaimedJob[] } | null> {
    const runnerId = jobs[0].fence.runnerId;
    if (this.lane === null || jobs.some((j) => j.outcome.retry || j.fence.runnerId !== runnerId)) return null;
    if (refill && !(await this.claimsOnLane())) return null;
    const lane = this.lane;
    return this.onLane(async (send) => {
      const groups = outcomeGroups(jobs);
      const statements = ['START TRANSACTION'];
      for (const { outcome, ids, attempt } of groups) {
        const { status, exitCode, signal, error } = outcome;
        const command = outcome.command ?? null;
        statements.push(
          lane.format(this.sql.finishUngrouped, { status, exitCode, signal, error, command, ids, runnerId, attempt }),
        );
      }
      const rows = jobs.flatMap(({ fence, rows: jobRows }) => jobRows.map((row) => ({ jobId: fence.jobId, row })));
      if (rows.length > 0) statements.push(lane.format(this.sql.insertOutput(rows.length), outputValues(rows)));
      if (refill) statements.push(this.sql.claimSelect(refill.limit));
      const results = await send(statements);
      const changed = (i: number) => (results[i + 1] as { affectedRows: number }).affectedRows;
      if (!groups.every((group, i) => changed(i) === group.ids.length)) {
        await send(['ROLLBACK']);
        return null;
      }
      const successors = refill ? (results[results.length - 1] as unknown as ClaimedJob[]) : [];
      const claimed = await this.commitClaims(send, refill?.ticket ?? { runnerId, committing: [] }, successors);
      return { finished: jobs.map(() => true), claimed };
    });
  }

  private finishInTransaction(
    jobs: { fence: Fence; outcome: Outcome; rows: OutputRow[] }[],
    refill?: { ticket: ClaimTicket; limit: number },
  ): Promise<{ finished: boolean[]; claimed: ClaimedJob[] }> {
    return this.transaction(async (transaction) => {
      // The fence for the whole batch in one read: the rows this runner still owns, locked.
      const runnerId = jobs[0].fence.runnerId;
      const held = await this.select<{ id: number; groupKey: string | null; attempt: number; cancel: unknown }>(
        this.sql.fencesHeldForFinish,
        { ids: jobs.map((j) => j.fence.jobId), runnerId },
        transaction,
      );
      const owned = new Map(held.map((r) => [Number(r.id), r]));
      const mine = jobs.filter(
        (j) => Number(owned.get(j.fence.jobId)?.attempt) === j.fence.attempt && j.fence.runnerId === runnerId,
      );
      // A retried attempt: the job goes back to pending (its group kept), unless a cancel was asked for.
      const retried = mine.filter(({ fence, outcome }) => outcome.retry && owned.get(fence.jobId)!.cancel === null);
      for (const { fence, outcome } of retried) {
        await this.update(
          this.sql.retryLater(outcome.retry!.delayMs),
          { id: fence.jobId, runnerId, attempt: fence.attempt, error: outcome.error, command: outcome.command ?? null },
          transaction,
        );
      }
      const settling = mine.filter((j) => !retried.includes(j));
      for (const { outcome, ids } of outcomeGroups(settling)) {
        const { status, exitCode, signal, error } = outcome;
        await this.update(
          this.sql.finish,
          { status, exitCode, signal, error, command: outcome.command ?? null, ids, runnerId },
          transaction,
        );
      }
      const rows = mine.flatMap(({ fence, rows: jobRows }) => jobRows.map((row) => ({ jobId: fence.jobId, row })));
      if (rows.length > 0) await this.insertRows(rows, transaction);
      for (const { fence, outcome } of retried)
        await this.appendSystemRow(fence.jobId, outcome.retry!.note, transaction);
      const settled = settling.map(({ fence, outcome }) => ({
        id: fence.jobId,
        groupKey: owned.get(fence.jobId)?.groupKey ?? null,
        failed: outcome.status === 'failure',
      }));
      await this.releaseGroupsOf(settled, transaction);
      // After the release, so a group's next job may be among the successors.
      const claimed = refill ? await this.claimIn(transaction, refill.ticket, refill.limit) : [];
      const already = await this.endedAlready(
        jobs.filter((j) => !mine.includes(j)),
        transaction,
      );
      return { finished: jobs.map((j) => mine.includes(j) || already.has(j)), claimed };
    });
  }

  /**
   * Of jobs whose fence no longer holds, those that ended exactly as asked under that fence: a finish
   * whose COMMIT took effect though its answer was lost, asked again. A retried outcome is not
   * recognised (its job is pending again, as a reaper's retry leaves it).
   */
  private async endedAlready<T extends { fence: Fence; outcome: Outcome }>(
    jobs: T[],
    transaction: Transaction,
  ): Promise<Set<T>> {
    const candidates = jobs.filter((j) => !j.outcome.retry);
    if (candidates.length === 0) return new Set();
    const rows = await this.select<{
      id: number;
      runnerId: string | null;
      attempt: number;
      status: string;
      exitCode: number | null;
      signal: string | null;
      error: string | null;
    }>(this.sql.endedStates, { ids: candidates.map((j) => j.fence.jobId) }, transaction);
    const byId = new Map(rows.map((r) => [Number(r.id), r]));
    return new Set(
      candidates.filter(({ fence, outcome }) => {
        const row = byId.get(fence.jobId);
        return (
          row !== undefined &&
          row.runnerId === fence.runnerId &&
          Number(row.attempt) === fence.attempt &&
          row.status === outcome.status &&
          (row.exitCode === null ? null : Number(row.exitCode)) === outcome.exitCode &&
          row.signal === outcome.signal &&
          row.error === outcome.error
        );
      }),
    );
  }

  /** Settled jobs give up the groups they hold, in key order (every transaction locks groups so). */
  private async releaseGroupsOf(
    jobs: { id: number; groupKey: string | null; failed: boolean }[],
    transaction: Transaction,
  ): Promise<void> {
    const grouped = jobs.filter((j) => j.groupKey !== null).sort((a, b) => (a.groupKey! < b.groupKey! ? -1 : 1));
    const sql = sqlIn(this.db.sequelize, transaction);
    for (const job of grouped) await releaseGroup(sql, this.sql, job.groupKey!, job.id, job.failed);
  }

  async finishJob(fence: Fence, outcome: Outcome, rows: OutputRow[]): Promise<boolean> {
    const { finished } = await this.finishJobs([{ fence, outcome, rows }]);
    return finished[0];
  }

  /**
   * Renews the lease of this runner's running jobs in one statement and reports the ones it no
   * longer owns or that have a cancel request (a second read only when the first did not match all).
   */
  async renewLeases(runnerId: string, jobIds: number[]): Promise<LeaseReport> {
    if (jobIds.length === 0) return { lost: [], cancelRequested: [] };
    return this.write(() => this.renewLeasesNow(runnerId, jobIds), true);
  }

  private async renewLeasesNow(runnerId: string, jobIds: number[]): Promise<LeaseReport> {
    const renewed = await this.update(this.sql.renewLeases, { jobIds, runnerId });
    if (renewed === jobIds.length) return { lost: [], cancelRequested: [] };
    const rows = await this.select<{ id: number; runnerId: string | null; status: string; cancel: unknown }>(
      this.sql.leaseStates,
      { jobIds },
    );
    const owned = new Map(
      rows.filter((r) => r.runnerId === runnerId && r.status === 'running').map((r) => [Number(r.id), r]),
    );
    const cancelRequested = [...owned.values()].filter((r) => r.cancel !== null).map((r) => Number(r.id));
    if (cancelRequested.length > 0) {
      // Keep the lease of a job being stopped, so nobody reaps it while it shuts down.
      await this.update(this.sql.renewCancelling, { ids: cancelRequested, runnerId });
    }
    return { lost: jobIds.filter((id) => !owned.has(id)), cancelRequested };
  }

  /** The bytes of output a job stored so far (its earlier attempts'): the output cap is per job. */
  async outputBytes(jobId: number): Promise<number> {
    const [row] = await this.select<{ bytes: number | string }>(this.sql.outputBytes, { jobId });
    return Number(row?.bytes ?? 0);
  }

  /** A system row after a job's last line (written outside its runner: reaper, cancel). */
  private async appendSystemRow(jobId: number, message: string, transaction: Transaction): Promise<void> {
    const [row] = await this.select<{ lastSeq: number | null }>(this.sql.lastSeq, { jobId }, transaction);
    await this.insertOutput(
      jobId,
      [{ seq: Number(row?.lastSeq ?? 0) + 1, stream: 'system', output: message }],
      transaction,
    );
  }

  /**
   * Any runner's reaper: running jobs whose heartbeat is older than the lease become
   * failure/runner_lost, each with a system row. Guarded, so a job renewed meanwhile is left alone.
   */
  async reapExpiredLeases(leaseMs: number, batch = 100, retryOf: ReapRetry = () => null): Promise<number[]> {
    return this.transaction(async (transaction) => {
      const rows = await this.select<{
        id: number;
        runnerId: string | null;
        groupKey: string | null;
        task: string;
        attempt: number;
        maxAttempts: number;
        cancel: unknown;
      }>(this.sql.reapSelect(leaseMs, batch), {}, transaction);
      const reaped: number[] = [];
      const settled: { id: number; groupKey: string | null; failed: boolean }[] = [];
      for (const row of rows) {
        const id = Number(row.id);
        const lost = `runner ${row.runnerId ?? '?'} stopped renewing its lease for over ${Math.round(leaseMs / 1000)} s`;
        const job = { id, task: row.task, attempt: Number(row.attempt), maxAttempts: Number(row.maxAttempts) };
        const retry = row.cancel === null ? retryOf(job) : null;
        if (retry) {
          // Listed `runner_lost`: the same row runs again at its next attempt, keeping its group.
          if ((await this.update(this.sql.reapRetry(leaseMs, retry.delayMs), { id }, transaction)) !== 1) continue;
          await this.appendSystemRow(id, `${lost}; ${retry.note}`, transaction);
          reaped.push(id);
          continue;
        }
        const changed = await this.update(this.sql.reapMark(leaseMs), { id: row.id }, transaction);
        if (changed !== 1) continue;
        await this.appendSystemRow(row.id, `${lost}; job marked failed (runner_lost)`, transaction);
        reaped.push(id);
        settled.push({ id, groupKey: row.groupKey, failed: true });
      }
      await this.releaseGroupsOf(settled, transaction);
      return reaped;
    });
  }

  /**
   * Cancels a pending job at once; for a running job records the request, which its runner acts
   * on within one heartbeat. `visibleTo` scopes the lookup (undefined: an admin, sees all).
   */
  async cancelJob(jobId: number, by: string, scope: { owner?: string } = {}): Promise<CancelResult> {
    const scoped = scope.owner !== undefined;
    return this.transaction(async (transaction) => {
      const params = { jobId, by, owner: scope.owner ?? null };
      const cancelled = await this.update(this.sql.cancelPending(scoped), params, transaction);
      if (cancelled === 1) {
        // A pending job may be its group's head (claimable, not yet claimed): the group passes on.
        const [grouped] = await this.select<{ groupKey: string }>(this.sql.groupsOfJobs, { ids: [jobId] }, transaction);
        if (grouped)
          await this.releaseGroupsOf([{ id: jobId, groupKey: grouped.groupKey, failed: false }], transaction);
        await this.appendSystemRow(jobId, `cancelled by ${by} before it started`, transaction);
        return { result: 'cancelled', status: 'cancelled' } as const;
      }
      const requested = await this.update(this.sql.cancelRunning(scoped), params, transaction);
      if (requested === 1) return { result: 'requested', status: 'running' } as const;
      const [row] = await this.select<{ status: JobStatusName }>(this.sql.jobStatus(scoped), params, transaction);
      return row ? ({ result: 'finished', status: row.status } as const) : ({ result: 'not_found' } as const);
    });
  }

  /**
   * A person's retry of a finished job (failure or cancelled): the same row goes back to pending,
   * due now, at its next attempt (one more than it had: a retry never starts a new series), in the
   * same place in its group: the group's head again when it is free or blocked by this job, else
   * queued in id order, ahead of the group's later jobs. `allowed` checks the job against the task
   * file (throws to refuse); `group` is the group's failure policy now. Scoped like cancel.
   */
  async retryJob(
    jobId: number,
    by: string,
    scope: { owner?: string },
    allowed: (job: RetryCandidate) => { blockOnFailure: boolean },
  ): Promise<RetryResult> {
    const scoped = scope.owner !== undefined;
    const result: RetryResult = await this.transaction(async (transaction) => {
      const [row] = await this.select<{
        status: JobStatusName;
        task: string;
        params: unknown;
        attempt: number;
        maxAttempts: number;
        groupKey: string | null;
        error: string | null;
        lastError: string | null;
      }>(this.sql.jobForRetry(scoped), { jobId, owner: scope.owner ?? null }, transaction);
      if (!row) return { result: 'not_found' } as const;
      if (row.status !== 'failure' && row.status !== 'cancelled') {
        return { result: 'not_retryable', status: row.status } as const;
      }
      const { blockOnFailure } = allowed({
        task: row.task,
        params: parseJsonColumn(row.params),
        groupKey: row.groupKey,
      });
      const attempt = Number(row.attempt) + 1;
      let groupQueued = false;
      const sql = sqlIn(this.db.sequelize, transaction);
      if (row.groupKey !== null) {
        const group = await lockGroupForEnqueue(sql, this.sql, row.groupKey, blockOnFailure);
        const free =
          group.headJobId === null && (group.blockedByJobId === null || Number(group.blockedByJobId) === jobId);
        groupQueued = !free;
        if (free)
          await this.update(this.sql.groupSetHolders, { key: row.groupKey, head: jobId, blockedBy: null }, transaction);
      }
      await this.update(
        this.sql.retryNow,
        {
          jobId,
          attempt,
          maxAttempts: Math.max(Number(row.maxAttempts), attempt),
          // A cancel is not a failed attempt: lastError keeps the last failure's reason.
          lastError: row.status === 'failure' ? row.error : row.lastError,
          groupQueued,
        },
        transaction,
      );
      await this.appendSystemRow(jobId, `retried by ${by}: attempt ${attempt}`, transaction);
      if (this.driver.dueNotice) await sql.select(this.driver.dueNotice.notify);
      return { result: 'retried', status: 'pending', attempt } as const;
    });
    if (result.result === 'retried') this.nudger?.nudge();
    return result;
  }

  /**
   * Enqueues jobs in one multi-row INSERT, in `transaction` when given (the job exists only if it
   * commits), else in a transaction of its own (the API and the CLI). See models/enqueue.ts.
   */
  async enqueueMany(jobs: NewJob[], transaction?: Transaction): Promise<Enqueued[]> {
    const limits = { maxPending: this.quotas.userMaxPending };
    const enqueued = transaction
      ? await insertJobs(this.db, jobs, transaction, limits)
      : insertsAlone(this.db, jobs, limits)
        ? await this.retrying(() => insertAlone(this.db, jobs))
        : await this.transaction((t) => insertJobs(this.db, jobs, t, limits));
    // PostgreSQL: the enqueue's NOTIFY did it (no nudger).
    if (this.nudger) nudgeForJobs(this.nudger, jobs, enqueued, transaction);
    return enqueued;
  }

  /** Resolves once the wake-up nudges of this queue's enqueues are sent (before a short-lived process exits). */
  nudgesSent(): Promise<void> {
    return this.nudger?.sent() ?? Promise.resolve();
  }

  /**
   * One job. In the caller's transaction when given; otherwise coalesced with the enqueues of this
   * queue that arrive while one is in flight (models/coalescer.ts), each with its own answer.
   */
  async enqueue(job: NewJob, transaction?: Transaction): Promise<Enqueued> {
    if (!transaction) return this.enqueues.call(job);
    return (await this.enqueueMany([job], transaction))[0];
  }

  /** Why a pending job waits; null when it is not pending. */
  async waitingReason(jobId: number): Promise<WaitingReason | null> {
    const [row] = await this.select<{
      later: number;
      attempt: number;
      groupQueued: number | boolean;
      ownerRunning: number;
      blockedBy: number | null;
    }>(this.sql.waitingOf, { id: jobId });
    if (!row) return null;
    // Its group comes first: a queued job's own runAt only matters once its turn has come.
    if (Number(row.groupQueued)) return row.blockedBy === null ? 'group' : 'group_blocked';
    // Due later: at its next attempt's backoff, or when it was asked to run.
    if (Number(row.later) === 1) return Number(row.attempt) > 1 ? 'retry' : 'run_at';
    const cap = this.quotas.userMaxRunning;
    if (cap > 0 && Number(row.ownerRunning) >= cap) return 'quota';
    return 'slot';
  }

  /** Groups that hold a job or are blocked (admins: GET /groups). */
  async listGroups(state: 'active' | 'blocked' | null = null): Promise<GroupState[]> {
    const rows = await this.select<{
      key: string;
      headJobId: number | null;
      blockedByJobId: number | null;
      headStatus: string | null;
      pendingJobs: number;
    }>(this.sql.groups(state), {});
    return rows.map((r) => ({
      key: r.key,
      state: r.blockedByJobId === null ? 'active' : 'blocked',
      runningJobId: r.headStatus === 'running' ? Number(r.headJobId) : null,
      pendingJobs: Number(r.pendingJobs),
      blockedByJobId: r.blockedByJobId === null ? null : Number(r.blockedByJobId),
    }));
  }

  /** An admin lifts a group's block; null for an unknown group, false when it was not blocked. */
  releaseGroup(key: string): Promise<boolean | null> {
    return this.transaction((t) => unblockGroup(sqlIn(this.db.sequelize, t), this.sql, key));
  }

  /**
   * A claimed job of a grouped task that was inserted without its group (plain SQL): it goes back
   * to pending in its group, behind the group's earlier jobs, instead of running now. Fenced.
   */
  async joinGroup(fence: Fence, group: { key: string; blockOnFailure: boolean }): Promise<boolean> {
    return this.transaction(async (t) => {
      const sql = sqlIn(this.db.sequelize, t);
      const held = await lockGroupForEnqueue(sql, this.sql, group.key, group.blockOnFailure);
      const moved = await this.update(this.sql.joinGroup, { ...fence, key: group.key }, t);
      if (moved === 1 && held.headJobId === null && held.blockedByJobId === null) {
        await admitNext(sql, this.sql, group.key);
      }
      return moved === 1;
    });
  }

  /**
   * A claimed job that never started goes back to pending as it was (its group place kept), fenced by
   * its claim. False when the claim is no longer this runner's, or its cancel was asked for meanwhile.
   */
  async releaseClaim(fence: Fence): Promise<boolean> {
    const { jobId, runnerId, attempt } = fence;
    return (await this.retrying(() => this.update(this.sql.releaseClaim, { ids: [jobId], runnerId, attempt }))) === 1;
  }

  /**
   * The jobs of claims in doubt (models/claims-in-doubt.ts): those still this runner's go back to
   * pending; those of them with a cancel asked for end cancelled, never started; the rest (the claim
   * did not commit) are left as they are.
   */
  private async settleClaimsInDoubt(claims: DoubtfulClaim[]): Promise<void> {
    const fences = new Map<string, { runnerId: string; attempt: number; ids: number[] }>();
    for (const { id, runnerId, attempt } of claims) {
      const key = JSON.stringify([runnerId, attempt]);
      const fence = fences.get(key) ?? { runnerId, attempt, ids: [] };
      fence.ids.push(id);
      fences.set(key, fence);
    }
    let released = 0;
    for (const fence of fences.values()) {
      released += await this.retrying(() => this.update(this.sql.releaseClaim, fence));
    }
    let cancelled = 0;
    if (released < claims.length) {
      const { finished } = await this.finishJobsIn(
        claims.map(({ id, runnerId, attempt, lastSeq }) => ({
          fence: { jobId: id, runnerId, attempt },
          outcome: CANCELLED_UNSTARTED.outcome,
          rows: [{ seq: lastSeq + 1, stream: 'system', output: CANCELLED_UNSTARTED.line }],
        })),
      );
      cancelled = finished.filter(Boolean).length;
    }
    if (released + cancelled > 0) for (const observer of this.doubtObservers) observer({ released, cancelled });
  }

  /** Upserts this runner's report (JobRunners) on the database clock: what GET /metrics reads. */
  async reportRunner(runnerId: string, report: RunnerReport): Promise<void> {
    await this.write(() =>
      this.db.sequelize.query(this.sql.reportRunner, {
        replacements: { id: runnerId, report: JSON.stringify(report) },
      }),
    );
  }
}

/** The file a SQLite handle writes (its write gate's key). */
export function storageOf(db: Pick<Database, 'sequelize'>): string {
  return String((db.sequelize as unknown as { options: { storage?: string } }).options.storage ?? '');
}

/** Sequelize 6's Transaction beyond its typings: what its own commit() does after the COMMIT. */
interface SequelizeTransactionInternals {
  finished?: 'commit' | 'rollback';
  cleanup(): void;
  forceCleanup(): Promise<void>;
  _afterCommitHooks: ((t: Transaction) => unknown)[];
}
