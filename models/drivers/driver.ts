// The seam between the queue engine and a database: what a dialect can do (capabilities, never its
// name) and every SQL text the engine runs. A new database is a new driver that passes test/queue.
import type { Options, Sequelize } from 'sequelize';
import type { DatabaseConfig } from '../../config';
import type { StatementLane } from './mysql-lane';

export type Dialect = DatabaseConfig['dialect'];

export interface DriverCapabilities {
  /** `FOR UPDATE SKIP LOCKED`: concurrent claimers take different rows without waiting. */
  skipLocked: boolean;
  /** One writer per database file: this process queues its own writes (see models/write-gate.ts). */
  serialWrites: boolean;
  /**
   * A file beside the program (the quick start): it migrates itself when opened, and an error in
   * opening it is final (a server is waited for instead, and migrated by the operator).
   */
  embedded: boolean;
  /**
   * A failed statement spoils its transaction (PostgreSQL): a statement whose error the engine
   * handles and goes on from (a racing idempotency key) runs under a savepoint.
   */
  errorAbortsTransaction: boolean;
  /**
   * A COMMIT the database may refuse with a lock conflict and roll back cleanly (a Galera
   * certification failure, a deadlock): the queue sends COMMIT itself, retries the transaction
   * and keeps the pooled connection (Sequelize's own commit would warn and drop it).
   */
  refusableCommit: boolean;
}

/** Which due jobs a claim looks at (Queue.claimIn): from the head, or a window of the top priority. */
export type ClaimRange =
  /** From the head of the queue: priority DESC, id ASC. */
  | 'head'
  /** :priority, :fromId → only jobs of that priority from that id on (the spread claim's start). */
  | 'from'
  /** :taken → from the head, leaving out the ids already taken in this transaction. */
  | 'except';

/** Named replacements (`:name`) unless a statement says it takes positional `?`. */
export interface QueueStatements {
  /**
   * Due pending jobs in claim order, up to `limit`, each with the highest output line it has;
   * `quota`: skipping jobs whose owner runs :cap jobs already (a pre-filter: claims count exactly
   * under the owner's lock).
   */
  claimSelect(limit: number, quota?: boolean, range?: ClaimRange): string;
  /** The first `size` due jobs' id and priority, in claim order, without a lock: where a spread claim may start. */
  claimWindow(size: number): string;
  /**
   * An idle runner's poll in one statement: a row `what = 'due'` when a job is due (what claimSelect
   * would look at), a row `what = 'expired'` when a running job's lease ran out (what reapSelect would).
   */
  idleProbe(leaseMs: number): string;
  /** :ids → groupKey of each that may hold its group (not queued behind another): a cancel releases it. */
  groupsOfJobs: string;
  /** :runnerId, :ids → the selected rows become running. */
  claimMark: string;
  /** Multi-row output insert that skips rows already stored (same jobId and seq): positional (jobId, seq, stream, output) × rows. */
  insertOutput(rows: number): string;
  /** :jobId, :runnerId, :attempt → one row while the fence holds (locked against a concurrent finish or reap). */
  fenceHeld: string;
  /** :ids, :runnerId → id, groupKey, attempt, cancel of those running under this runner, locked for the finish. */
  fencesHeldForFinish: string;
  /** :ids, :runnerId, :status, :exitCode, :signal, :error, :command → the outcome of this runner's running jobs. */
  finish: string;
  /**
   * The same outcome for jobs that hold no group, with their fence in the statement (:attempt too):
   * it changes exactly the rows whose fence holds, so its count of changed rows says whether all did.
   */
  finishUngrouped: string;
  /**
   * :id, :runnerId, :attempt, :error, :command → a failed attempt's job goes back to pending at its
   * next attempt, due in `delayMs` (its group position kept: it stays the group's head).
   */
  retryLater(delayMs: number): string;
  /** :jobIds, :runnerId → renews the lease of owned running jobs that have no cancel request. */
  renewLeases: string;
  /** :jobIds → id, runnerId, status, cancel (cancelRequestedAt) of each. */
  leaseStates: string;
  /** :ids → runnerId, attempt, status, exitCode, signal, error of each job (a finish asks after one it no longer holds). */
  endedStates: string;
  /** :ids, :runnerId → renews leases of jobs being stopped on request. */
  renewCancelling: string;
  /** :jobId → lastSeq, the job's highest output line number (null without output). */
  lastSeq: string;
  /** :jobId → bytes: the UTF-8 bytes of its stdout and stderr rows (what JOB_OUTPUT_MAX_BYTES counts). */
  outputBytes: string;
  /** Expired leases, oldest first, up to `batch`, locked (skipped when another reaper has them). */
  reapSelect(leaseMs: number, batch: number): string;
  /** :id → failure/runner_lost, only while still expired. */
  reapMark(leaseMs: number): string;
  /** :id → an expired job goes back to pending at its next attempt (runner_lost), due in `delayMs`. */
  reapRetry(leaseMs: number, delayMs: number): string;
  /** :jobId (and :owner) → the job a person asks to retry, locked. */
  jobForRetry(scoped: boolean): string;
  /** :jobId, :attempt, :maxAttempts, :lastError, :groupQueued → a finished job is pending again, due now. */
  retryNow: string;
  /** :jobId, :by (and :owner when `scoped`) → a pending job becomes cancelled. */
  cancelPending(scoped: boolean): string;
  /** :jobId, :by (and :owner) → a running job gets a cancel request. */
  cancelRunning(scoped: boolean): string;
  /** :jobId (and :owner) → status of a job the viewer may see. */
  jobStatus(scoped: boolean): string;
  /**
   * Positional (task, params, command, createdBy, priority, [runAt], groupKey, groupQueued,
   * idempotencyKey, maxAttempts, rerunOf) × rows, one multi-row INSERT; each row's runAt is its SQL expression in
   * `runAts` (`?` takes a value from the row's list). Its result gives the ids to Driver.insertedIds.
   */
  insertJobs(runAts: string[]): string;
  /** :key → the job an idempotency key made (id, task, params, status). */
  jobByIdempotencyKey: string;
  /**
   * The same as a locking read, which sees the newest committed row, not the transaction's
   * snapshot: after a racing insert of the same key won, this finds its job.
   */
  jobByIdempotencyKeyLatest: string;
  /** :jobId, :runnerId, :key → a claimed job goes back to pending, queued in its group. */
  joinGroup: string;
  /**
   * :ids, :runnerId, :attempt → claimed jobs that never started go back to pending as they were (their
   * group place kept), unless a cancel was asked for.
   */
  releaseClaim: string;
  /** :key, :block → makes sure the group's row exists (and takes its write lock); sets its failure policy. */
  groupUpsert: string;
  /** :key → headJobId, blockedByJobId, blockOnFailure of the group, locked. */
  groupLock: string;
  /** :key → the group's first job waiting behind its head (lowest id), locked. */
  groupNextQueued: string;
  /** :id → a pending job waits behind its group's head (not claimable). */
  groupQueue: string;
  /** :id → a queued job becomes its group's head (claimable). */
  groupPromote: string;
  /** :key, :head, :blockedBy → who holds the group. */
  groupSetHolders: string;
  /**
   * :id → why a pending job waits: later (runAt ahead), attempt, groupQueued, ownerRunning (its
   * owner's running jobs), blockedBy (its group's blocking job).
   */
  waitingOf: string;
  /** Groups that hold a job or are blocked (`state` narrows), with their pending count. */
  groups(state: 'active' | 'blocked' | null): string;
  /** :name, :seenAt → the schedule's row, made by the first runner that sees it (firstSeenAt: its clock). */
  scheduleRegister: string;
  /** name, firstSeenAt, lastFireAt, lastRunAt, lastJobId, lastStatus of every schedule seen. */
  schedulesState: string;
  /** :name → firstSeenAt, lastJobId and that job's status (lastStatus), locked. */
  scheduleLock: string;
  /** :name, :fireAt → 1 row inserted when this fire time is ours to handle, 0 when another runner has it. */
  fireClaim: string;
  /** :name, :fireAt, :jobId, :skipped → what a fire time made. */
  fireRecord: string;
  /** :name, :fireAt → the latest fire time handled (a job made or not), unless a later one is recorded. */
  scheduleFired: string;
  /** :name, :fireAt, :jobId → the schedule's last job and its fire time, unless a later one is recorded. */
  scheduleAdvance: string;
  /**
   * :owners → their JobOwners rows, locked in the order of their names (so two transactions that lock
   * some of the same owners take them in one order); an owner with no row yet: ownerInsert, then again.
   */
  ownersLock: string;
  /** :owner → makes the owner's row. */
  ownerInsert: string;
  /**
   * :owner0 … :owner{count-1}, :status, :upTo → (i, n) for each owner i: its jobs in that status, read
   * current (a locking read), counted up to :upTo (a cap's check needs no more, and an owner with a long
   * backlog costs no more); one statement for them all.
   */
  ownersJobs: (count: number) => string;
  /** :id, :report → upserts a runner's report (JobRunners). */
  reportRunner: string;
  /** status, n: how many jobs each status has. */
  jobCountsByStatus: string;
  /** n, age: due pending jobs and the seconds the oldest of them has waited. */
  dueJobs: string;
  /** :runnerId, :since, :statuses → status, n: the jobs this runner claimed since then and finished so. */
  runnerJobCounts: string;
  /** :jobId → scheduleName of the schedule whose fire made the job. */
  scheduleOfJob: string;
  /**
   * :hashes (a list) → tokenHash, id, expiresAt, lastUsedAt of the bearer tokens with those SHA-256s and
   * username, isAdmin of each one's user.
   */
  tokensWithUser: string;
  /** :sids (a list) → sid, data, expires, lastSeenAt of those sessions and uid, username, isAdmin of each one's user. */
  sessionsWithUser: string;
  /** id, startedAt, seenAt, report, age (seconds since seenAt) of runners seen within `windowMs`, by id. */
  runnerReports(windowMs: number): string;
  /** n: runners not seen within `windowMs`. */
  runnersNotSeen(windowMs: number): string;
  /** :ids (runner ids) → id, runnerId, task, createdBy, startedAt, attempt of their running jobs, by id. */
  runningJobsOf: string;
  /** report of runners seen within `windowMs` (whom an enqueue nudges). */
  runnerNudgeTargets(windowMs: number): string;
  /** Deletes the reports of runners not seen for `olderThanMs`. */
  pruneRunnerReports(olderThanMs: number): string;
  /** `jobIds` (a SELECT of ids) → n, their output rows (prune --dry-run). */
  countOutputOf(jobIds: string): string;
  /** Finished jobs older than `olderThanMs`, by id, up to `limit` (prune). */
  pruneSelectJobs(olderThanMs: number, limit: number): string;
  /** :ids → ids of their output rows, up to `limit`. */
  pruneSelectOutput(limit: number): string;
  /** :rowIds → deletes output rows by primary key. */
  pruneDeleteOutput: string;
  /** :ids → deletes finished jobs. */
  pruneDeleteJobs: string;
  /** Fire records older than `olderThanMs`, but each schedule's last. */
  pruneScheduleFires(olderThanMs: number): string;
  /** Groups that hold nothing, have no pending job and did not change for `olderThanMs`. */
  pruneIdleGroups(olderThanMs: number): string;
}

/**
 * What `migrate --adopt` (models/adopt.ts) needs to convert a host's own Jobs and JobStatuses in place:
 * the only dialect SQL of the conversion; everything else there goes through Sequelize's queryInterface.
 */
export interface AdoptionSql {
  /**
   * 'alter': ALTER TABLE changes the old tables' columns in place (the host's foreign keys to Jobs stay
   * as they are). 'rebuild': the database cannot change a column (SQLite): the old tables are renamed
   * away, made again by the queue's migrations, copied, and dropped, on one connection (`session`).
   */
  method: 'alter' | 'rebuild';
  /** DDL joins a transaction here: an 'alter' conversion commits whole or not at all (else each step commits, and a re-run resumes). */
  transactionalDdl: boolean;
  /** 'alter': numbers each job's output rows 1, 2, … in id order into `seq`, where it is NULL. */
  numberOutput: string | null;
  /** 'alter': JobStatuses.id becomes a 64-bit integer, still auto-incremented; null where it is one already. */
  widenOutputId: string | null;
  /** 'rebuild': statements on its connection before (outside any transaction) and after; its transaction; the final check (any row = refused). */
  session: { before: string[]; begin: string; check: string; commit: string; rollback: string; after: string[] } | null;
}

export interface Driver {
  dialect: Dialect;
  capabilities: DriverCapabilities;
  /** "Now" on the database's clock, with milliseconds (an SQL expression). */
  now: string;
  /** "Now" minus `ms` milliseconds. */
  ago(ms: number): string;
  /** "Now" plus `ms` milliseconds. */
  later(ms: number): string;
  /** Seconds from the time in `expr` (any SQL expression) to now. */
  secondsSince(expr: string): string;
  statements: QueueStatements;
  /** Sequelize options for this database (the app's handle and sequelize-cli alike). */
  sequelizeOptions(
    config: DatabaseConfig,
    options: { logging: false | ((sql: string) => void); poolMax?: number },
  ): Options;
  /** Migration table options (charset, engine). */
  tableOptions: Record<string, string>;
  /** Statements run before migrating (settings kept in the database file itself). */
  beforeMigrate: string[];
  /** `migrate --adopt`: converting a host's own Jobs and JobStatuses (see AdoptionSql). */
  adoption: AdoptionSql;
  /** Deadlocks, lock waits, a busy file: normal under concurrency, so the transaction is run again. */
  isRetryableLockError(err: unknown): boolean;
  /**
   * A statement error that no retry can fix (the statement or its data is refused), as opposed to
   * the database being away: a write that fails so is given up, never retried forever.
   */
  isPermanentError(err: unknown): boolean;
  /** A duplicate key in a unique index (an idempotency key used before). */
  isUniqueViolation(err: unknown): boolean;
  /**
   * The ids a multi-row INSERT (insertJobs) of `rows` rows made, in row order, from what the query
   * returned (the first element of sequelize.query's result for QueryTypes.INSERT): MySQL the first
   * id, then steps of auto_increment_increment; SQLite the last id, one writer at a time;
   * PostgreSQL the rows of its RETURNING id.
   */
  insertedIds(returned: unknown, rows: number, step: number): number[];
  /** SQL that reads the step between auto-increment ids (`step`); null where it is always 1. */
  autoIncrementStep: string | null;
  /**
   * Where the database itself tells idle runners of a job due now (PostgreSQL LISTEN/NOTIFY): `notify`
   * runs in the enqueue's transaction, so the notice goes out at its commit and never after a
   * rollback; runners LISTEN on `channel`. Null: the enqueuer nudges them (models/nudge.ts).
   */
  dueNotice: { channel: string; notify: string } | null;
  /**
   * Whether the server is one primary of several that take writes at once (Galera, Group
   * Replication in multi-primary mode), where row locks do not reach the other nodes and claims
   * that all start at the head collide at commit; `select` runs a statement. Null: never.
   */
  multiPrimary: ((select: (sql: string) => Promise<Record<string, unknown>[]>) => Promise<boolean>) | null;
  /**
   * Connections that take several statements in one round trip (see mysql-lane.ts), opened when
   * first used: the runner's claims and finishes go that way. Null: every statement goes alone.
   */
  openLane: ((sequelize: Sequelize) => StatementLane) | null;
}

/** The driver error under Sequelize's wrapper. */
export function driverError(err: unknown): { errno?: number; code?: string; message?: string } {
  const e = err as { parent?: object; original?: object };
  return (e?.original ?? e?.parent ?? {}) as { errno?: number; code?: string; message?: string };
}
