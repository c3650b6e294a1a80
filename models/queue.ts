// Every locking statement of the queue lives here: claim, output, finish, heartbeat, reap, cancel.
// Raw SQL on purpose: Sequelize drops skipLocked on MySQL and neither database has UPDATE … RETURNING.
import { QueryTypes, type Transaction } from 'sequelize';
import { sqlAgo, sqlNow } from './clock';
import type { Database } from './database';
import { parseJsonColumn, type JobParams, type JobStatusName, type OutputStream } from './models';

export interface ClaimedJob {
  id: number;
  task: string;
  params: unknown;
  command: string | null;
  createdBy: string | null;
  /** The highest output line number the job already has (0 for a fresh job). */
  lastSeq: number;
}

export interface OutputRow {
  seq: number;
  stream: OutputStream;
  output: string;
}

/** Proof that this runner still owns a job: every write of a claimed job checks it. */
export interface Fence {
  jobId: number;
  runnerId: string;
}

export interface Outcome {
  status: Extract<JobStatusName, 'success' | 'failure' | 'cancelled'>;
  exitCode: number | null;
  signal: string | null;
  error: string | null;
  command?: string | null;
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

const DEADLOCK_CODES = new Set([1213, 1205]);

/** MySQL deadlock (1213) and lock-wait timeout (1205) are normal under concurrency: retry. */
export function isRetryableLockError(err: unknown): boolean {
  const e = err as { parent?: { errno?: number }; original?: { errno?: number; code?: string } };
  const errno = e?.parent?.errno ?? e?.original?.errno;
  return (errno !== undefined && DEADLOCK_CODES.has(errno)) || e?.original?.code === 'SQLITE_BUSY';
}

/** Runs async work one at a time, in call order; urgent work goes to the front of the line. */
/** What Queue.observe reports: a claim, an output flush, or a finish (which may claim successors). */
export type QueueOp = 'claim' | 'flush' | 'finish';
export type QueueObserver = (op: QueueOp, seconds: number, claimed: number) => void;

class Gate {
  private busy = false;
  private readonly waiting: (() => void)[] = [];
  async run<T>(work: () => Promise<T>, urgent = false): Promise<T> {
    if (this.busy) {
      await new Promise<void>((resolve) => (urgent ? this.waiting.unshift(resolve) : this.waiting.push(resolve)));
    }
    this.busy = true;
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.busy = false;
    }
  }
}

/**
 * SQLite: one write at a time per process and file. node-sqlite3 runs every statement on libuv's
 * thread pool (4 threads); writes waiting for the file lock (busy timeout) each hold a thread, so a
 * process with four of them starves its own transaction that holds the lock: it cannot run its next
 * statement, and every process on the file stalls until busy timeouts expire (seen with 5 runners).
 * SQLite admits one writer anyway, so queueing them in the process costs nothing.
 */
const sqliteWriteGates = new Map<string, Gate>();

function sqliteWriteGate(db: Database): Gate {
  const storage = String((db.sequelize as unknown as { options: { storage?: string } }).options.storage ?? '');
  let gate = sqliteWriteGates.get(storage);
  if (!gate) sqliteWriteGates.set(storage, (gate = new Gate()));
  return gate;
}

export class Queue {
  private readonly mysql: boolean;
  /** "Now" on the database's clock, with milliseconds. */
  readonly now: string;
  private readonly writeGate: Gate | null;
  private readonly observers = new Set<QueueObserver>();

  constructor(readonly db: Database) {
    this.mysql = db.dialect === 'mysql';
    this.now = sqlNow(db.dialect);
    this.writeGate = this.mysql ? null : sqliteWriteGate(db);
  }

  /**
   * A write (a transaction, or statements that take the write lock): on SQLite, one at a time in
   * this process; `urgent` (lease renewal) goes before the writes already waiting.
   */
  private write<T>(work: () => Promise<T>, urgent = false): Promise<T> {
    return this.writeGate ? this.writeGate.run(work, urgent) : work();
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

  /** `now` minus `ms` milliseconds, on the database's clock. */
  private ago(ms: number): string {
    return sqlAgo(this.db.dialect, ms);
  }

  private get insertIgnore(): string {
    return this.mysql ? 'INSERT IGNORE' : 'INSERT OR IGNORE';
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
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.write(() => this.db.sequelize.transaction(work));
      } catch (err) {
        if (attempt >= 5 || !isRetryableLockError(err)) throw err;
        await new Promise((r) => setTimeout(r, 5 * attempt + Math.random() * 20));
      }
    }
  }

  /**
   * Claims up to `limit` due pending jobs (priority DESC, id ASC) in one short transaction.
   * On MySQL the SELECT walks jobs_claim_order in index order with SKIP LOCKED, so concurrent
   * runners each take different rows and never wait on each other.
   */
  async claimDueJobs(runnerId: string, limit: number): Promise<ClaimedJob[]> {
    if (limit <= 0) return [];
    return this.timed(
      'claim',
      () => this.transaction((transaction) => this.claimIn(transaction, runnerId, limit)),
      (jobs) => jobs.length,
    );
  }

  private async claimIn(transaction: Transaction, runnerId: string, limit: number): Promise<ClaimedJob[]> {
    if (limit <= 0) return [];
    const lock = this.mysql ? 'FOR UPDATE SKIP LOCKED' : '';
    const force = this.mysql ? 'FORCE INDEX (jobs_claim_order)' : '';
    // lastSeq: a job put back to pending by hand keeps its earlier output; new lines follow it.
    const rows = await this.select<ClaimedJob>(
      `SELECT id, task, params, command, createdBy,
         (SELECT COALESCE(MAX(s.seq), 0) FROM JobStatuses s WHERE s.jobId = Jobs.id) AS lastSeq
       FROM Jobs ${force}
       WHERE status = 'pending' AND runAt <= ${this.now}
       ORDER BY priority DESC, id ASC LIMIT ${Math.floor(limit)} ${lock}`,
      {},
      transaction,
    );
    if (rows.length === 0) return [];
    await this.update(
      `UPDATE Jobs SET status = 'running', runnerId = :runnerId, startedAt = ${this.now},
         heartbeatAt = ${this.now}, updatedAt = ${this.now}
       WHERE id IN (:ids) AND status = 'pending'`,
      { runnerId, ids: rows.map((r) => r.id) },
      transaction,
    );
    return rows.map((r) => ({
      ...r,
      id: Number(r.id),
      params: parseJsonColumn<unknown>(r.params),
      lastSeq: Number(r.lastSeq),
    }));
  }

  private insertOutput(jobId: number, rows: OutputRow[], transaction: Transaction): Promise<unknown> {
    return this.insertRows(
      rows.map((row) => ({ jobId, row })),
      transaction,
    );
  }

  /** One multi-row INSERT; rows already stored (same jobId and seq) are skipped. */
  private insertRows(rows: { jobId: number; row: OutputRow }[], transaction: Transaction): Promise<unknown> {
    const values: unknown[] = [];
    const tuples = rows.map(({ jobId, row }) => {
      values.push(jobId, row.seq, row.stream, row.output);
      return '(?, ?, ?, ?)';
    });
    return this.db.sequelize.query(
      `${this.insertIgnore} INTO JobStatuses (jobId, seq, stream, output) VALUES ${tuples.join(', ')}`,
      { type: QueryTypes.INSERT, replacements: values, transaction },
    );
  }

  private async holdsFence(fence: Fence, transaction: Transaction): Promise<boolean> {
    const share = this.mysql ? 'LOCK IN SHARE MODE' : '';
    const rows = await this.select(
      `SELECT id FROM Jobs WHERE id = :jobId AND runnerId = :runnerId AND status = 'running' ${share}`,
      fence,
      transaction,
    );
    return rows.length === 1;
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
    return this.transaction(async (transaction) => {
      // The fence for the whole batch in one read: the rows this runner still owns, locked.
      const lock = this.mysql ? 'FOR UPDATE' : '';
      const owned = new Set(
        (
          await this.select<{ id: number }>(
            `SELECT id FROM Jobs WHERE id IN (:ids) AND runnerId = :runnerId AND status = 'running' ${lock}`,
            { ids: jobs.map((j) => j.fence.jobId), runnerId: jobs[0].fence.runnerId },
            transaction,
          )
        ).map((r) => Number(r.id)),
      );
      const mine = jobs.filter((j) => owned.has(j.fence.jobId) && j.fence.runnerId === jobs[0].fence.runnerId);
      // Jobs that ended alike (the common case: all exit 0) share one UPDATE.
      const groups = new Map<string, { outcome: Outcome; ids: number[] }>();
      for (const { fence, outcome } of mine) {
        const key = JSON.stringify([
          outcome.status,
          outcome.exitCode,
          outcome.signal,
          outcome.error,
          outcome.command ?? null,
          outcome.command ? fence.jobId : 0,
        ]);
        const group = groups.get(key) ?? { outcome, ids: [] };
        group.ids.push(fence.jobId);
        groups.set(key, group);
      }
      for (const { outcome, ids } of groups.values()) {
        await this.update(
          `UPDATE Jobs SET status = :status, exitCode = :exitCode, \`signal\` = :signal, error = :error,
             command = COALESCE(command, :command), finishedAt = ${this.now}, updatedAt = ${this.now}
           WHERE id IN (:ids) AND status = 'running'`,
          { ...outcome, command: outcome.command ?? null, ids },
          transaction,
        );
      }
      const rows = mine.flatMap(({ fence, rows: jobRows }) => jobRows.map((row) => ({ jobId: fence.jobId, row })));
      if (rows.length > 0) await this.insertRows(rows, transaction);
      const claimed = refill ? await this.claimIn(transaction, refill.runnerId, refill.limit) : [];
      return { finished: jobs.map((j) => mine.includes(j)), claimed };
    });
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
    const renewed = await this.update(
      `UPDATE Jobs SET heartbeatAt = ${this.now}
       WHERE id IN (:jobIds) AND runnerId = :runnerId AND status = 'running' AND cancelRequestedAt IS NULL`,
      { jobIds, runnerId },
    );
    if (renewed === jobIds.length) return { lost: [], cancelRequested: [] };
    const rows = await this.select<{ id: number; runnerId: string | null; status: string; cancel: unknown }>(
      'SELECT id, runnerId, status, cancelRequestedAt AS cancel FROM Jobs WHERE id IN (:jobIds)',
      { jobIds },
    );
    const owned = new Map(
      rows.filter((r) => r.runnerId === runnerId && r.status === 'running').map((r) => [Number(r.id), r]),
    );
    const cancelRequested = [...owned.values()].filter((r) => r.cancel !== null).map((r) => Number(r.id));
    if (cancelRequested.length > 0) {
      // Keep the lease of a job being stopped, so nobody reaps it while it shuts down.
      await this.update(
        `UPDATE Jobs SET heartbeatAt = ${this.now} WHERE id IN (:ids) AND runnerId = :runnerId AND status = 'running'`,
        { ids: cancelRequested, runnerId },
      );
    }
    return { lost: jobIds.filter((id) => !owned.has(id)), cancelRequested };
  }

  /** The next output line number of a job (for system rows written outside its runner). */
  private async appendSystemRow(jobId: number, message: string, transaction: Transaction): Promise<void> {
    const [row] = await this.select<{ lastSeq: number | null }>(
      'SELECT MAX(seq) AS lastSeq FROM JobStatuses WHERE jobId = :jobId',
      { jobId },
      transaction,
    );
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
  async reapExpiredLeases(leaseMs: number, batch = 100): Promise<number[]> {
    const lock = this.mysql ? 'FOR UPDATE SKIP LOCKED' : '';
    return this.transaction(async (transaction) => {
      const rows = await this.select<{ id: number; runnerId: string | null }>(
        `SELECT id, runnerId FROM Jobs WHERE status = 'running' AND heartbeatAt < ${this.ago(leaseMs)}
         ORDER BY heartbeatAt LIMIT ${batch} ${lock}`,
        {},
        transaction,
      );
      const reaped: number[] = [];
      for (const row of rows) {
        const changed = await this.update(
          `UPDATE Jobs SET status = 'failure', error = 'runner_lost', finishedAt = ${this.now}, updatedAt = ${this.now}
           WHERE id = :id AND status = 'running' AND heartbeatAt < ${this.ago(leaseMs)}`,
          { id: row.id },
          transaction,
        );
        if (changed !== 1) continue;
        await this.appendSystemRow(
          row.id,
          `runner ${row.runnerId ?? '?'} stopped renewing its lease for over ${Math.round(leaseMs / 1000)} s; job marked failed (runner_lost)`,
          transaction,
        );
        reaped.push(Number(row.id));
      }
      return reaped;
    });
  }

  /**
   * Cancels a pending job at once; for a running job records the request, which its runner acts
   * on within one heartbeat. `visibleTo` scopes the lookup (undefined: an admin, sees all).
   */
  async cancelJob(jobId: number, by: string, scope: { owner?: string } = {}): Promise<CancelResult> {
    const ownerClause = scope.owner === undefined ? '' : 'AND createdBy = :owner';
    return this.transaction(async (transaction) => {
      const params = { jobId, by, owner: scope.owner ?? null };
      const cancelled = await this.update(
        `UPDATE Jobs SET status = 'cancelled', error = 'cancelled', cancelledBy = :by, cancelRequestedAt = ${this.now},
           finishedAt = ${this.now}, updatedAt = ${this.now}
         WHERE id = :jobId AND status = 'pending' ${ownerClause}`,
        params,
        transaction,
      );
      if (cancelled === 1) {
        await this.appendSystemRow(jobId, `cancelled by ${by} before it started`, transaction);
        return { result: 'cancelled', status: 'cancelled' } as const;
      }
      const requested = await this.update(
        `UPDATE Jobs SET cancelRequestedAt = COALESCE(cancelRequestedAt, ${this.now}),
           cancelledBy = COALESCE(cancelledBy, :by), updatedAt = ${this.now}
         WHERE id = :jobId AND status = 'running' ${ownerClause}`,
        params,
        transaction,
      );
      if (requested === 1) return { result: 'requested', status: 'running' } as const;
      const [row] = await this.select<{ status: JobStatusName }>(
        `SELECT status FROM Jobs WHERE id = :jobId ${ownerClause}`,
        params,
        transaction,
      );
      return row ? ({ result: 'finished', status: row.status } as const) : ({ result: 'not_found' } as const);
    });
  }

  /** Enqueues one job (the API and the CLI; other programs may simply INSERT). Returns its id. */
  async enqueue(job: {
    task: string;
    params: JobParams;
    command: string;
    createdBy: string | null;
    priority?: number;
  }): Promise<number> {
    const [insertId] = (await this.write(() =>
      this.db.sequelize.query(
        'INSERT INTO Jobs (task, params, command, createdBy, priority) VALUES (:task, :params, :command, :createdBy, :priority)',
        {
          type: QueryTypes.INSERT,
          replacements: { ...job, params: JSON.stringify(job.params), priority: job.priority ?? 0 },
        },
      ),
    )) as unknown as [number, number];
    return Number(insertId);
  }

  /** Upserts this runner's report (JobRunners) on the database clock: what GET /metrics reads. */
  async reportRunner(runnerId: string, report: object): Promise<void> {
    const upsert = this.mysql
      ? 'ON DUPLICATE KEY UPDATE seenAt = VALUES(seenAt), report = VALUES(report)'
      : 'ON CONFLICT(id) DO UPDATE SET seenAt = excluded.seenAt, report = excluded.report';
    await this.write(() =>
      this.db.sequelize.query(
        `INSERT INTO JobRunners (id, startedAt, seenAt, report) VALUES (:id, ${this.now}, ${this.now}, :report) ${upsert}`,
        { replacements: { id: runnerId, report: JSON.stringify(report) } },
      ),
    );
  }
}
