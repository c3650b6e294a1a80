// PostgreSQL 13+: row locks with SKIP LOCKED, RETURNING, ON CONFLICT, a server clock with
// microseconds (kept to milliseconds, like the other databases). Its SQL is its own: the tables and
// camelCase columns are quoted ("Jobs"."createdBy"), booleans are booleans, and a statement that
// fails spoils its transaction.
import pg from 'pg';
import type { DatabaseConfig } from '../../config';
import { driverError, type Driver, type QueueStatements } from './driver';
import { claimRange } from './statements';

// The statement's start, like MySQL's NOW(3); cut to milliseconds, so a time written by one statement
// is never ahead of the "now" a later one reads (rounding could put it half a millisecond ahead).
const now = "date_trunc('milliseconds', statement_timestamp())";
const ms = (n: number) => Math.max(0, Math.floor(n));
const ago = (n: number) => `(${now} - interval '${ms(n)} milliseconds')`;
const later = (n: number) => `(${now} + interval '${ms(n)} milliseconds')`;
const secondsSince = (expr: string) => `EXTRACT(EPOCH FROM (${now} - ${expr}))::float8`;

/** Deadlock (40P01), serialization failure (40001), lock not available (55P03): retry the transaction. */
const LOCK_CODES = new Set(['40P01', '40001', '55P03']);

/**
 * Refusals of the statement or its data: every data exception (class 22: too long, out of range,
 * invalid text, bad encoding, bad datetime…), NULL into NOT NULL (23502), CHECK (23514), foreign key
 * (23503), syntax (42601), type mismatch (42804). Connection errors (class 08, 57P01 admin shutdown,
 * ECONNREFUSED) are the database being away, never permanent.
 */
const PERMANENT_CODES = new Set(['23502', '23514', '23503', '42601', '42804']);

const FINISHED = "status IN ('success', 'failure', 'cancelled')";
/** How many jobs of the row's owner run now (jobs_owner_status answers it). */
const OWNER_RUNNING = `SELECT COUNT(*) FROM "Jobs" r WHERE r."createdBy" = "Jobs"."createdBy" AND r.status = 'running'`;
const CLAIMABLE = `status = 'pending' AND "groupQueued" = FALSE AND "runAt" <= ${now}`;

/** The LISTEN/NOTIFY channel of jobs due now (models/due-notices.ts). */
const DUE_CHANNEL = 'container_jobs_due';

const owner = (scoped: boolean) => (scoped ? 'AND "createdBy" = :owner' : '');

const FINISH = `UPDATE "Jobs" SET status = :status, "exitCode" = :exitCode, "signal" = :signal, error = :error,
       "lastError" = CASE WHEN :status = 'failure' THEN :error ELSE "lastError" END,
       command = COALESCE(command, :command), "finishedAt" = ${now}, "updatedAt" = ${now}
     WHERE id IN (:ids) AND "runnerId" = :runnerId AND status = 'running'`;

const statements: QueueStatements = {
  // No index hint: PostgreSQL reads jobs_claim_ready in order (EXPLAIN in test/queue/claim.test.ts), and
  // its LockRows takes only the rows it returns, sorted or not.
  claimSelect: (limit, quota = false, range = 'head') =>
    `SELECT id, task, params, command, "createdBy", "groupKey", attempt, "maxAttempts",
       (SELECT COALESCE(MAX(s.seq), 0) FROM "JobStatuses" s WHERE s."jobId" = "Jobs".id) AS "lastSeq"
     FROM "Jobs"
     WHERE ${CLAIMABLE} ${claimRange(range)}
       ${quota ? `AND ("createdBy" IS NULL OR (${OWNER_RUNNING}) < :cap)` : ''}
     ORDER BY priority DESC, id ASC LIMIT ${Math.floor(limit)} FOR UPDATE SKIP LOCKED`,
  claimWindow: (size) =>
    `SELECT id, priority FROM "Jobs" WHERE ${CLAIMABLE} ORDER BY priority DESC, id ASC LIMIT ${Math.floor(size)}`,
  idleProbe: (leaseMs) =>
    `(SELECT 'due' AS what FROM "Jobs" WHERE ${CLAIMABLE} LIMIT 1)
     UNION ALL
     (SELECT 'expired' FROM "Jobs" WHERE status = 'running' AND "heartbeatAt" < ${ago(leaseMs)} LIMIT 1)`,
  groupsOfJobs: `SELECT id, "groupKey" FROM "Jobs" WHERE id IN (:ids) AND "groupKey" IS NOT NULL AND "groupQueued" = FALSE`,
  claimMark: `UPDATE "Jobs" SET status = 'running', "runnerId" = :runnerId, "startedAt" = ${now},
       "heartbeatAt" = ${now}, "updatedAt" = ${now}
     WHERE id IN (:ids) AND status = 'pending'`,
  insertOutput: (rows) =>
    `INSERT INTO "JobStatuses" ("jobId", seq, stream, output)
     VALUES ${new Array(rows).fill('(?, ?, ?, ?)').join(', ')} ON CONFLICT DO NOTHING`,
  fenceHeld: `SELECT id FROM "Jobs"
     WHERE id = :jobId AND "runnerId" = :runnerId AND attempt = :attempt AND status = 'running' FOR SHARE`,
  fencesHeldForFinish: `SELECT id, "groupKey", attempt, "cancelRequestedAt" AS cancel FROM "Jobs"
     WHERE id IN (:ids) AND "runnerId" = :runnerId AND status = 'running' FOR UPDATE`,
  finish: FINISH,
  finishUngrouped: `${FINISH} AND attempt = :attempt AND "groupKey" IS NULL`,
  retryLater: (delayMs) =>
    `UPDATE "Jobs" SET status = 'pending', attempt = attempt + 1, "lastError" = :error, "runAt" = ${later(delayMs)},
       "runnerId" = NULL, "heartbeatAt" = NULL, "startedAt" = NULL, command = COALESCE(command, :command),
       "updatedAt" = ${now}
     WHERE id = :id AND "runnerId" = :runnerId AND attempt = :attempt AND status = 'running'`,
  renewLeases: `UPDATE "Jobs" SET "heartbeatAt" = ${now}
     WHERE id IN (:jobIds) AND "runnerId" = :runnerId AND status = 'running' AND "cancelRequestedAt" IS NULL`,
  leaseStates: `SELECT id, "runnerId", status, "cancelRequestedAt" AS cancel FROM "Jobs" WHERE id IN (:jobIds)`,
  endedStates: `SELECT id, "runnerId", attempt, status, "exitCode", signal, error FROM "Jobs" WHERE id IN (:ids)`,
  renewCancelling: `UPDATE "Jobs" SET "heartbeatAt" = ${now}
     WHERE id IN (:ids) AND "runnerId" = :runnerId AND status = 'running'`,
  lastSeq: 'SELECT MAX(seq) AS "lastSeq" FROM "JobStatuses" WHERE "jobId" = :jobId',
  outputBytes: `SELECT COALESCE(SUM(octet_length(output)), 0)::bigint AS bytes FROM "JobStatuses"
     WHERE "jobId" = :jobId AND stream <> 'system'`,
  reapSelect: (leaseMs, batch) =>
    `SELECT id, "runnerId", "groupKey", task, attempt, "maxAttempts", "cancelRequestedAt" AS cancel FROM "Jobs"
     WHERE status = 'running' AND "heartbeatAt" < ${ago(leaseMs)}
     ORDER BY "heartbeatAt" LIMIT ${Math.floor(batch)} FOR UPDATE SKIP LOCKED`,
  reapMark: (leaseMs) =>
    `UPDATE "Jobs" SET status = 'failure', error = 'runner_lost', "lastError" = 'runner_lost', "finishedAt" = ${now},
       "updatedAt" = ${now}
     WHERE id = :id AND status = 'running' AND "heartbeatAt" < ${ago(leaseMs)}`,
  reapRetry: (leaseMs, delayMs) =>
    `UPDATE "Jobs" SET status = 'pending', attempt = attempt + 1, "lastError" = 'runner_lost', "runAt" = ${later(delayMs)},
       "runnerId" = NULL, "heartbeatAt" = NULL, "startedAt" = NULL, "updatedAt" = ${now}
     WHERE id = :id AND status = 'running' AND "heartbeatAt" < ${ago(leaseMs)}`,
  jobForRetry: (scoped) =>
    `SELECT id, task, params, status, attempt, "maxAttempts", "groupKey", error, "lastError" FROM "Jobs"
     WHERE id = :jobId ${owner(scoped)} FOR UPDATE`,
  retryNow: `UPDATE "Jobs" SET status = 'pending', attempt = :attempt, "maxAttempts" = :maxAttempts,
       "lastError" = :lastError, "runAt" = ${now}, "groupQueued" = :groupQueued, "runnerId" = NULL,
       "heartbeatAt" = NULL, "startedAt" = NULL, "finishedAt" = NULL, "cancelRequestedAt" = NULL,
       "cancelledBy" = NULL, "exitCode" = NULL, "signal" = NULL, error = NULL, "updatedAt" = ${now}
     WHERE id = :jobId AND status IN ('failure', 'cancelled')`,
  cancelPending: (scoped) =>
    `UPDATE "Jobs" SET status = 'cancelled', error = 'cancelled', "cancelledBy" = :by, "cancelRequestedAt" = ${now},
       "finishedAt" = ${now}, "updatedAt" = ${now}
     WHERE id = :jobId AND status = 'pending' ${owner(scoped)}`,
  cancelRunning: (scoped) =>
    `UPDATE "Jobs" SET "cancelRequestedAt" = COALESCE("cancelRequestedAt", ${now}),
       "cancelledBy" = COALESCE("cancelledBy", :by), "updatedAt" = ${now}
     WHERE id = :jobId AND status = 'running' ${owner(scoped)}`,
  jobStatus: (scoped) => `SELECT status FROM "Jobs" WHERE id = :jobId ${owner(scoped)}`,
  // RETURNING gives the ids in the order of the VALUES rows (each row takes its id as it is inserted).
  insertJobs: (runAts) =>
    `INSERT INTO "Jobs" (task, params, command, "createdBy", priority, "runAt", "groupKey", "groupQueued",
       "idempotencyKey", "maxAttempts", "rerunOf")
     VALUES ${runAts.map((runAt) => `(?, ?, ?, ?, ?, ${runAt}, ?, ?, ?, ?, ?)`).join(', ')}
     RETURNING id`,
  jobByIdempotencyKey: 'SELECT id, task, params, status FROM "Jobs" WHERE "idempotencyKey" = :key',
  // Each statement reads the newest committed rows (READ COMMITTED): the racing insert's job is seen.
  jobByIdempotencyKeyLatest: 'SELECT id, task, params, status FROM "Jobs" WHERE "idempotencyKey" = :key FOR SHARE',
  releaseClaim: `UPDATE "Jobs" SET status = 'pending', "runnerId" = NULL, "startedAt" = NULL, "heartbeatAt" = NULL,
       "updatedAt" = ${now}
     WHERE id IN (:ids) AND "runnerId" = :runnerId AND attempt = :attempt AND status = 'running'
       AND "cancelRequestedAt" IS NULL`,
  joinGroup: `UPDATE "Jobs" SET status = 'pending', "runnerId" = NULL, "startedAt" = NULL, "heartbeatAt" = NULL,
       "groupKey" = :key, "groupQueued" = TRUE, "updatedAt" = ${now}
     WHERE id = :jobId AND "runnerId" = :runnerId AND attempt = :attempt AND status = 'running'`,
  groupUpsert: `INSERT INTO "JobGroups" ("key", "blockOnFailure", "updatedAt") VALUES (:key, :block, ${now})
     ON CONFLICT ("key") DO UPDATE SET "blockOnFailure" = EXCLUDED."blockOnFailure"`,
  groupLock: `SELECT "headJobId", "blockedByJobId", "blockOnFailure" FROM "JobGroups" WHERE "key" = :key FOR UPDATE`,
  groupNextQueued: `SELECT id FROM "Jobs" WHERE "groupKey" = :key AND status = 'pending' AND "groupQueued" = TRUE
     ORDER BY id LIMIT 1 FOR UPDATE`,
  groupQueue: `UPDATE "Jobs" SET "groupQueued" = TRUE, "updatedAt" = ${now} WHERE id = :id AND status = 'pending'`,
  groupPromote: `UPDATE "Jobs" SET "groupQueued" = FALSE, "updatedAt" = ${now} WHERE id = :id AND status = 'pending'`,
  groupSetHolders: `UPDATE "JobGroups" SET "headJobId" = :head, "blockedByJobId" = :blockedBy, "updatedAt" = ${now}
     WHERE "key" = :key`,
  waitingOf: `SELECT CASE WHEN "runAt" > ${now} THEN 1 ELSE 0 END AS later, attempt, "groupQueued",
       CASE WHEN "createdBy" IS NULL THEN 0 ELSE (${OWNER_RUNNING}) END AS "ownerRunning",
       (SELECT g."blockedByJobId" FROM "JobGroups" g WHERE g."key" = "Jobs"."groupKey") AS "blockedBy"
     FROM "Jobs" WHERE id = :id AND status = 'pending'`,
  groups: (state) =>
    `SELECT g."key" AS "key", g."headJobId", g."blockedByJobId",
       (SELECT j.status FROM "Jobs" j WHERE j.id = g."headJobId") AS "headStatus",
       (SELECT COUNT(*) FROM "Jobs" j WHERE j."groupKey" = g."key" AND j.status = 'pending') AS "pendingJobs"
     FROM "JobGroups" g
     WHERE ${state === 'active' ? 'g."headJobId" IS NOT NULL' : state === 'blocked' ? 'g."blockedByJobId" IS NOT NULL' : '(g."headJobId" IS NOT NULL OR g."blockedByJobId" IS NOT NULL)'}
     ORDER BY g."key"`,
  scheduleRegister: `INSERT INTO "JobSchedules" (name, "firstSeenAt", "updatedAt") VALUES (:name, :seenAt, ${now})
     ON CONFLICT DO NOTHING`,
  schedulesState: `SELECT s.name, s."firstSeenAt", s."lastFireAt", s."lastRunAt", s."lastJobId", j.status AS "lastStatus"
     FROM "JobSchedules" s LEFT JOIN "Jobs" j ON j.id = s."lastJobId"`,
  scheduleLock: `SELECT name, "firstSeenAt", "lastJobId",
       (SELECT j.status FROM "Jobs" j WHERE j.id = "JobSchedules"."lastJobId") AS "lastStatus"
     FROM "JobSchedules" WHERE name = :name FOR UPDATE`,
  fireClaim: `INSERT INTO "JobScheduleFires" ("scheduleName", "fireAt", "createdAt") VALUES (:name, :fireAt, ${now})
     ON CONFLICT DO NOTHING`,
  fireRecord:
    'UPDATE "JobScheduleFires" SET "jobId" = :jobId, skipped = :skipped WHERE "scheduleName" = :name AND "fireAt" = :fireAt',
  scheduleFired: `UPDATE "JobSchedules" SET "lastFireAt" = :fireAt, "updatedAt" = ${now}
     WHERE name = :name AND ("lastFireAt" IS NULL OR "lastFireAt" < :fireAt)`,
  scheduleAdvance: `UPDATE "JobSchedules" SET "lastRunAt" = :fireAt, "lastJobId" = :jobId, "updatedAt" = ${now}
     WHERE name = :name AND ("lastRunAt" IS NULL OR "lastRunAt" < :fireAt)`,
  ownersLock: 'SELECT owner FROM "JobOwners" WHERE owner IN (:owners) ORDER BY owner FOR UPDATE',
  ownerInsert: 'INSERT INTO "JobOwners" (owner) VALUES (:owner) ON CONFLICT DO NOTHING',
  // No locking read with COUNT here; none is needed: under READ COMMITTED each statement reads the
  // newest committed rows, and the owner's row lock taken before it orders the counters.
  ownersJobs: (count) =>
    Array.from(
      { length: count },
      (_, i) => `SELECT ${i} AS i, COUNT(*) AS n FROM (SELECT id FROM "Jobs" WHERE "createdBy" = :owner${i}
         AND status = :status LIMIT :upTo) counted${i}`,
    ).join(' UNION ALL '),
  reportRunner: `INSERT INTO "JobRunners" (id, "startedAt", "seenAt", report) VALUES (:id, ${now}, ${now}, :report)
     ON CONFLICT (id) DO UPDATE SET "seenAt" = EXCLUDED."seenAt", report = EXCLUDED.report`,
  jobCountsByStatus: 'SELECT status, COUNT(*) AS n FROM "Jobs" GROUP BY status',
  dueJobs: `SELECT COUNT(*) AS n, ${secondsSince('MIN("runAt")')} AS age FROM "Jobs"
     WHERE status = 'pending' AND "runAt" <= ${now}`,
  runnerJobCounts: `SELECT status, COUNT(*) AS n FROM "Jobs"
     WHERE "runnerId" = :runnerId AND "startedAt" >= :since AND status IN (:statuses)
     GROUP BY status`,
  scheduleOfJob: 'SELECT "scheduleName" FROM "JobScheduleFires" WHERE "jobId" = :jobId',
  tokensWithUser: `SELECT t."tokenHash", t.id, t."expiresAt", t."lastUsedAt", u.username, u."isAdmin"
     FROM "ApiTokens" t JOIN "Users" u ON u.id = t."userId" WHERE t."tokenHash" IN (:hashes)`,
  sessionsWithUser: `SELECT s.sid, s.data, s.expires, s."lastSeenAt", u.id AS uid, u.username, u."isAdmin"
     FROM "Sessions" s LEFT JOIN "Users" u ON u.id = s."userId" WHERE s.sid IN (:sids)`,
  runnerReports: (windowMs) =>
    `SELECT id, "startedAt", "seenAt", report, ${secondsSince('"seenAt"')} AS age FROM "JobRunners" WHERE "seenAt" >= ${ago(windowMs)} ORDER BY id`,
  runnersNotSeen: (windowMs) => `SELECT COUNT(*) AS n FROM "JobRunners" WHERE "seenAt" < ${ago(windowMs)}`,
  runningJobsOf: `SELECT id, "runnerId", task, "createdBy", "startedAt", attempt FROM "Jobs"
     WHERE status = 'running' AND "runnerId" IN (:ids) ORDER BY id`,
  runnerNudgeTargets: (windowMs) => `SELECT report FROM "JobRunners" WHERE "seenAt" >= ${ago(windowMs)}`,
  pruneRunnerReports: (olderThanMs) => `DELETE FROM "JobRunners" WHERE "seenAt" < ${ago(olderThanMs)}`,
  countOutputOf: (jobIds) => `SELECT COUNT(*) AS n FROM "JobStatuses" WHERE "jobId" IN (${jobIds})`,
  pruneSelectJobs: (olderThanMs, limit) =>
    `SELECT id FROM "Jobs" WHERE ${FINISHED} AND "finishedAt" < ${ago(olderThanMs)} ORDER BY id LIMIT ${Math.floor(limit)}`,
  pruneSelectOutput: (limit) => `SELECT id FROM "JobStatuses" WHERE "jobId" IN (:ids) LIMIT ${Math.floor(limit)}`,
  pruneDeleteOutput: 'DELETE FROM "JobStatuses" WHERE id IN (:rowIds)',
  pruneDeleteJobs: `DELETE FROM "Jobs" WHERE id IN (:ids) AND ${FINISHED}`,
  pruneScheduleFires: (olderThanMs) =>
    `DELETE FROM "JobScheduleFires" WHERE "fireAt" < ${ago(olderThanMs)}
       AND "fireAt" < COALESCE((SELECT s."lastFireAt" FROM "JobSchedules" s
         WHERE s.name = "JobScheduleFires"."scheduleName"), "fireAt")`,
  pruneIdleGroups: (olderThanMs) =>
    `DELETE FROM "JobGroups" WHERE "headJobId" IS NULL AND "blockedByJobId" IS NULL AND "updatedAt" < ${ago(olderThanMs)}
       AND NOT EXISTS (SELECT 1 FROM "Jobs" j WHERE j."groupKey" = "JobGroups"."key" AND j.status = 'pending')`,
};

/**
 * pg with BIGINT (COUNT(*), the output rows' ids) read as a number, as on the other databases, for
 * this handle's connections only (pg's own parsers, which a host program may share, stay as they are).
 */
function pgWithNumericBigint(): object {
  const getTypeParser = ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8 && format !== 'binary'
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser;
  return { ...pg, types: { ...pg.types, getTypeParser } };
}

export const postgresDriver: Driver = {
  dialect: 'postgres',
  capabilities: {
    skipLocked: true,
    serialWrites: false,
    embedded: false,
    errorAbortsTransaction: true,
    refusableCommit: false,
  },
  now,
  ago,
  later,
  secondsSince,
  statements,
  // Not yet run against a container-creator database on PostgreSQL (the adoption test runs on SQLite and MySQL).
  adoption: {
    method: 'alter',
    transactionalDdl: true,
    numberOutput:
      'UPDATE "JobStatuses" s SET seq = x.n FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY "jobId" ORDER BY id) AS n ' +
      'FROM "JobStatuses") x WHERE x.id = s.id AND s.seq IS NULL',
    widenOutputId:
      'ALTER TABLE "JobStatuses" ALTER COLUMN id TYPE BIGINT; ALTER SEQUENCE "JobStatuses_id_seq" AS BIGINT',
    session: null,
  },
  sequelizeOptions(config: DatabaseConfig, options) {
    if (config.dialect !== 'postgres') throw new Error(`postgres driver given a ${config.dialect} configuration`);
    return {
      logging: options.logging,
      dialect: 'postgres',
      host: config.host,
      port: config.port,
      username: config.user,
      password: config.password,
      database: config.database,
      timezone: '+00:00',
      pool: { max: options.poolMax ?? 10, min: 0, acquire: 30000, idle: 10000 },
      dialectModule: pgWithNumericBigint(),
      dialectOptions: { application_name: 'container-jobs', connectionTimeoutMillis: 10000 },
    };
  },
  tableOptions: {},
  beforeMigrate: [],
  isRetryableLockError: (err) => LOCK_CODES.has(driverError(err).code ?? ''),
  isPermanentError: (err) => {
    const code = driverError(err).code ?? '';
    return /^22[0-9A-Z]{3}$/.test(code) || PERMANENT_CODES.has(code);
  },
  isUniqueViolation: (err) => driverError(err).code === '23505',
  insertedIds: (returned) => (returned as { id: number | string }[]).map((row) => Number(row.id)),
  autoIncrementStep: null,
  dueNotice: { channel: DUE_CHANNEL, notify: `SELECT pg_notify('${DUE_CHANNEL}', '')` },
  multiPrimary: null,
  openLane: null,
};
