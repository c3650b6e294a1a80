// Enqueueing: one multi-row INSERT for any number of jobs, inside the caller's transaction; serial
// groups (their jobs wait in id order behind the group's head), idempotency keys (a unique index,
// so racing requests make one job), and due times on the database clock.
import crypto from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { Transaction } from 'sequelize';
import type { Database } from './database';
import type { QueueStatements } from './drivers';
import { admitNext, lockGroupForEnqueue } from './groups';
import { parseJsonColumn, type JobParams, type JobStatusName } from './models';
import { sqlIn, sqlTime, type Sql } from './sql';

export interface NewJob {
  task: string;
  params: JobParams;
  /** The rendered argv for people (never run); null lets the runner fill it in. */
  command: string | null;
  createdBy: string | null;
  priority?: number;
  /** Due at this time (a past one means now) … */
  runAt?: Date | null;
  /** … or this long from now (database clock). */
  delayMs?: number | null;
  /** The template's serial group, rendered. */
  group?: { key: string; blockOnFailure: boolean } | null;
  /** The client's Idempotency-Key (scoped to createdBy). */
  idempotencyKey?: string | null;
  /** Attempts the template's retry policy allows (default 1). */
  maxAttempts?: number;
  /** The job this one runs again ("Run again"). */
  rerunOf?: number | null;
}

export interface Enqueued {
  id: number;
  status: JobStatusName;
  /** True when an earlier request with the same idempotency key made this job. */
  replayed: boolean;
}

/** An owner already has JOB_USER_MAX_PENDING pending jobs (the API's 429 quota_exceeded). */
export class QuotaExceededError extends Error {
  override name = 'QuotaExceededError';
  constructor(
    readonly owner: string,
    readonly maxPending: number,
  ) {
    super(`${owner} already has ${maxPending} pending job(s), the most one user may have (JOB_USER_MAX_PENDING)`);
  }
}

/**
 * How many jobs in `status` each owner has, up to `upTo`, counted under the owners' JobOwners rows
 * (made on first use), locked together first: claims and enqueues count this way, so two of them
 * never both take an owner's last place. Two statements for any number of owners.
 */
export async function countOwnersJobs(
  sql: Sql,
  s: QueueStatements,
  owners: string[],
  status: 'pending' | 'running',
  upTo: number,
): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  if (owners.length === 0) return counts;
  const locked = await sql.select<{ owner: string }>(s.ownersLock, { owners });
  if (locked.length < owners.length) {
    const have = new Set(locked.map((r) => r.owner));
    for (const owner of owners) if (!have.has(owner)) await sql.update(s.ownerInsert, { owner });
    await sql.select(s.ownersLock, { owners });
  }
  const replacements: Record<string, unknown> = { status, upTo };
  owners.forEach((owner, i) => (replacements[`owner${i}`] = owner));
  const rows = await sql.select<{ i: number; n: number }>(s.ownersJobs(owners.length), replacements);
  for (const { i, n } of rows) counts.set(owners[Number(i)], Number(n));
  return counts;
}

/** The same idempotency key came with another task or other params. */
export class IdempotencyConflictError extends Error {
  override name = 'IdempotencyConflictError';
  /** `jobId` null: the key came twice in one batch, with other params. */
  constructor(readonly jobId: number | null) {
    super(
      jobId === null
        ? 'one Idempotency-Key came twice in this batch with another task or other params'
        : `this Idempotency-Key was used for job ${jobId} with another task or other params`,
    );
  }
}

/** What the unique index holds: the key scoped to its owner, hashed to a fixed width. */
export function idempotencyDigest(createdBy: string | null, key: string): string {
  return crypto
    .createHash('sha256')
    .update(JSON.stringify([createdBy, key]))
    .digest('hex');
}

/** What an enqueue needs of a database handle (a host program's own Sequelize will do). */
export type EnqueueTarget = Pick<Database, 'sequelize' | 'driver'>;

const steps = new WeakMap<object, number>();

/** The step between auto-increment ids (1, or the node count on Galera), read once per handle. */
async function autoIncrementStep(db: EnqueueTarget, sql: Sql): Promise<number> {
  const known = steps.get(db.sequelize);
  if (known !== undefined) return known;
  const query = db.driver.autoIncrementStep;
  const step = query ? Number((await sql.select<{ step: number }>(query))[0]?.step ?? 1) : 1;
  steps.set(db.sequelize, step);
  return step;
}

/**
 * Whether `jobs` go in with their INSERT alone, autocommitted: no idempotency key to look up, no
 * group or owner cap to lock first, no NOTIFY to send with them. The library's plain enqueue is one
 * statement and one round trip, as the peers' are.
 */
export function insertsAlone(db: EnqueueTarget, jobs: NewJob[], limits: { maxPending?: number } = {}): boolean {
  if (db.driver.dueNotice && jobs.some(isDueNow)) return false;
  const capped = (limits.maxPending ?? 0) > 0;
  return jobs.every((job) => !job.idempotencyKey && !job.group && !(capped && job.createdBy !== null));
}

/** Inserts `jobs` for which insertsAlone holds: their INSERT, autocommitted. */
export function insertAlone(db: EnqueueTarget, jobs: NewJob[]): Promise<Enqueued[]> {
  return insertOnce(db, sqlIn(db.sequelize), jobs, false, 0);
}

/**
 * Inserts `jobs` in `transaction` (one multi-row INSERT); a job whose idempotency key was used
 * before is not inserted again: its earlier job is returned with `replayed`. Throws
 * IdempotencyConflictError when such a key came with another task or params.
 */
export async function insertJobs(
  db: EnqueueTarget,
  jobs: NewJob[],
  transaction: Transaction,
  limits: { maxPending?: number } = {},
): Promise<Enqueued[]> {
  const sql = sqlIn(db.sequelize, transaction);
  // A key's racing insert fails here, and we go on: where that failure spoils the transaction, the
  // attempt runs under a savepoint (only when a key can collide: the savepoint costs two statements).
  const underSavepoint =
    db.driver.capabilities.errorAbortsTransaction && jobs.some((job) => Boolean(job.idempotencyKey));
  for (let attempt = 1; ; attempt++) {
    try {
      const latest = attempt > 1;
      const maxPending = limits.maxPending ?? 0;
      if (!underSavepoint) return await insertOnce(db, sql, jobs, latest, maxPending);
      return await db.sequelize.transaction({ transaction }, (savepoint) =>
        insertOnce(db, sqlIn(db.sequelize, savepoint), jobs, latest, maxPending),
      );
    } catch (err) {
      // A racing request inserted the same key first (we waited for its commit): read it now.
      if (attempt >= 3 || !db.driver.isUniqueViolation(err)) throw err;
    }
  }
}

async function insertOnce(
  db: EnqueueTarget,
  sql: Sql,
  jobs: NewJob[],
  latest: boolean,
  maxPending: number,
): Promise<Enqueued[]> {
  const s = db.driver.statements;
  const digests = jobs.map((j) => (j.idempotencyKey ? idempotencyDigest(j.createdBy, j.idempotencyKey) : null));
  const results: (Enqueued | null)[] = jobs.map(() => null);
  const firstOfDigest = new Map<string, number>();
  for (const [i, digest] of digests.entries()) {
    if (digest === null) continue;
    const [earlier] = await sql.select<{ id: number; task: string; params: unknown; status: JobStatusName }>(
      // A first plain read takes no gap lock (two of them would deadlock the inserts that follow).
      latest ? s.jobByIdempotencyKeyLatest : s.jobByIdempotencyKey,
      { key: digest },
    );
    const twin = firstOfDigest.get(digest);
    if (earlier) {
      if (!sameRequest(jobs[i], earlier.task, parseJsonColumn(earlier.params))) {
        throw new IdempotencyConflictError(Number(earlier.id));
      }
      results[i] = { id: Number(earlier.id), status: earlier.status, replayed: true };
    } else if (twin !== undefined) {
      if (!sameRequest(jobs[i], jobs[twin].task, jobs[twin].params)) throw new IdempotencyConflictError(null);
    } else {
      firstOfDigest.set(digest, i);
    }
  }
  const fresh = jobs
    .map((job, i) => ({ job, i, digest: digests[i] }))
    .filter(({ i, digest }) => results[i] === null && (digest === null || firstOfDigest.get(digest) === i));
  // Groups first, in key order (the lock order every enqueue keeps), then the rows.
  const groupKeys = [...new Set(fresh.flatMap(({ job }) => (job.group ? [job.group.key] : [])))].sort();
  const free: string[] = [];
  for (const key of groupKeys) {
    const block = fresh.some(({ job }) => job.group?.key === key && job.group.blockOnFailure);
    const group = await lockGroupForEnqueue(sql, s, key, block);
    if (group.headJobId === null && group.blockedByJobId === null) free.push(key);
  }
  // Pending quotas after the groups (every transaction locks groups, then owners; owners in name order), only for jobs this call really makes (a replay is free).
  if (maxPending > 0) {
    const perOwner = new Map<string, number>();
    for (const { job } of fresh)
      if (job.createdBy !== null) perOwner.set(job.createdBy, (perOwner.get(job.createdBy) ?? 0) + 1);
    const counts = await countOwnersJobs(sql, s, [...perOwner.keys()], 'pending', maxPending);
    for (const [owner, adding] of perOwner) {
      if (counts.get(owner)! + adding > maxPending) throw new QuotaExceededError(owner, maxPending);
    }
  }
  if (fresh.length > 0) {
    const runAts: string[] = [];
    const values: unknown[] = [];
    for (const { job, digest } of fresh) {
      const due = job.runAt && job.runAt.getTime() > Date.now() ? job.runAt : null;
      runAts.push(due ? '?' : job.delayMs ? db.driver.later(job.delayMs) : db.driver.now);
      values.push(job.task, JSON.stringify(job.params), job.command, job.createdBy, job.priority ?? 0);
      if (due) values.push(sqlTime(due));
      values.push(job.group?.key ?? null, Boolean(job.group), digest, job.maxAttempts ?? 1, job.rerunOf ?? null);
    }
    const returned = await sql.insert(s.insertJobs(runAts), values);
    const ids = db.driver.insertedIds(returned, fresh.length, await autoIncrementStep(db, sql));
    fresh.forEach(({ i }, k) => (results[i] = { id: ids[k], status: 'pending', replayed: false }));
    // Sent at commit: runners LISTENing wake as the job becomes visible (a rollback sends nothing).
    const notice = db.driver.dueNotice;
    if (notice && fresh.some(({ job }) => isDueNow(job))) await sql.select(notice.notify);
  }
  for (const key of free) await admitNext(sql, s, key);
  // A job repeated within the batch under one key is its first copy.
  return results.map((r, i) => r ?? { ...results[firstOfDigest.get(digests[i]!)!]!, replayed: true });
}

/** Due at once: no delay, no runAt ahead. */
export function isDueNow(job: NewJob): boolean {
  if (job.delayMs !== undefined && job.delayMs !== null && job.delayMs > 0) return false;
  return job.runAt === undefined || job.runAt === null || job.runAt.getTime() <= Date.now();
}

function sameRequest(job: NewJob, task: string, params: unknown): boolean {
  return job.task === task && isDeepStrictEqual(normalize(job.params), normalize(params));
}

/** Params as stored (JSON round trip): key order and undefined members do not count. */
function normalize(params: unknown): unknown {
  return JSON.parse(JSON.stringify(params ?? {}));
}
