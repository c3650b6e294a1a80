// The queue's statements in the SQL that MySQL/MariaDB and SQLite share; each of those drivers fills
// in its own pieces (clock, locking clauses, insert-or-skip, upsert). A database whose SQL differs
// more (PostgreSQL: quoted identifiers, RETURNING) writes its own QueueStatements instead.
import type { ClaimRange, QueueStatements } from './driver';

export interface SqlPieces {
  now: string;
  ago(ms: number): string;
  later(ms: number): string;
  /** Seconds from the time in `expr` to now. */
  secondsSince(expr: string): string;
  /** The length in bytes (UTF-8) of a text expression. */
  byteLength(expr: string): string;
  /** Appended to the claim and reap SELECTs: skip rows another transaction holds ('' without row locks). */
  skipLocked: string;
  /** Appended to the finish's fence read ('' without row locks). */
  forUpdate: string;
  /** Appended to the output's fence read: a shared lock, so a finish or reap waits for the insert. */
  forShare: string;
  /** After `FROM Jobs` in the claim: the index that answers its ORDER BY in order ('' to trust the planner). */
  claimIndexHint: string;
  /** `INSERT … ` verb that skips a row whose unique key exists. */
  insertIgnore: string;
  /** After the JobRunners insert: update seenAt and report on a duplicate id. */
  upsertRunner: string;
  /** After the JobGroups insert: update blockOnFailure on a duplicate key. */
  upsertGroup: string;
}

/** The claim's range (see ClaimRange), in SQL that MySQL, SQLite and PostgreSQL share. */
export function claimRange(range: ClaimRange): string {
  if (range === 'from') return 'AND priority = :priority AND id >= :fromId';
  if (range === 'except') return 'AND id NOT IN (:taken)';
  return '';
}

const FINISHED = "status IN ('success', 'failure', 'cancelled')";
/** How many jobs of the row's owner run now (jobs_owner_status answers it). */
const OWNER_RUNNING = "SELECT COUNT(*) FROM Jobs r WHERE r.createdBy = Jobs.createdBy AND r.status = 'running'";

export function sharedStatements(p: SqlPieces): QueueStatements {
  const owner = (scoped: boolean) => (scoped ? 'AND createdBy = :owner' : '');
  const finish = `UPDATE Jobs SET status = :status, exitCode = :exitCode, \`signal\` = :signal, error = :error,
         lastError = CASE WHEN :status = 'failure' THEN :error ELSE lastError END,
         command = COALESCE(command, :command), finishedAt = ${p.now}, updatedAt = ${p.now}
       WHERE id IN (:ids) AND runnerId = :runnerId AND status = 'running'`;
  return {
    // lastSeq: a job put back to pending keeps its earlier output; new lines follow it.
    claimSelect: (limit, quota = false, range = 'head') =>
      `SELECT id, task, params, command, createdBy, groupKey, attempt, maxAttempts,
         (SELECT COALESCE(MAX(s.seq), 0) FROM JobStatuses s WHERE s.jobId = Jobs.id) AS lastSeq
       FROM Jobs ${p.claimIndexHint}
       WHERE status = 'pending' AND groupQueued = 0 AND runAt <= ${p.now} ${claimRange(range)}
         ${quota ? `AND (createdBy IS NULL OR (${OWNER_RUNNING}) < :cap)` : ''}
       ORDER BY priority DESC, id ASC LIMIT ${Math.floor(limit)} ${p.skipLocked}`,
    claimWindow: (size) =>
      `SELECT id, priority FROM Jobs ${p.claimIndexHint}
       WHERE status = 'pending' AND groupQueued = 0 AND runAt <= ${p.now}
       ORDER BY priority DESC, id ASC LIMIT ${Math.floor(size)}`,
    idleProbe: (leaseMs) =>
      `SELECT 'due' AS what FROM (SELECT id FROM Jobs ${p.claimIndexHint}
          WHERE status = 'pending' AND groupQueued = 0 AND runAt <= ${p.now} LIMIT 1) d
       UNION ALL
       SELECT 'expired' FROM (SELECT id FROM Jobs
          WHERE status = 'running' AND heartbeatAt < ${p.ago(leaseMs)} LIMIT 1) e`,
    groupsOfJobs: 'SELECT id, groupKey FROM Jobs WHERE id IN (:ids) AND groupKey IS NOT NULL AND groupQueued = 0',
    claimMark: `UPDATE Jobs SET status = 'running', runnerId = :runnerId, startedAt = ${p.now},
         heartbeatAt = ${p.now}, updatedAt = ${p.now}
       WHERE id IN (:ids) AND status = 'pending'`,
    insertOutput: (rows) =>
      `${p.insertIgnore} INTO JobStatuses (jobId, seq, stream, output) VALUES ${new Array(rows).fill('(?, ?, ?, ?)').join(', ')}`,
    fenceHeld: `SELECT id FROM Jobs
       WHERE id = :jobId AND runnerId = :runnerId AND attempt = :attempt AND status = 'running' ${p.forShare}`,
    fencesHeldForFinish: `SELECT id, groupKey, attempt, cancelRequestedAt AS cancel FROM Jobs
       WHERE id IN (:ids) AND runnerId = :runnerId AND status = 'running' ${p.forUpdate}`,
    finish,
    finishUngrouped: `${finish} AND attempt = :attempt AND groupKey IS NULL`,
    retryLater: (delayMs) =>
      `UPDATE Jobs SET status = 'pending', attempt = attempt + 1, lastError = :error, runAt = ${p.later(delayMs)},
         runnerId = NULL, heartbeatAt = NULL, startedAt = NULL, command = COALESCE(command, :command), updatedAt = ${p.now}
       WHERE id = :id AND runnerId = :runnerId AND attempt = :attempt AND status = 'running'`,
    renewLeases: `UPDATE Jobs SET heartbeatAt = ${p.now}
       WHERE id IN (:jobIds) AND runnerId = :runnerId AND status = 'running' AND cancelRequestedAt IS NULL`,
    leaseStates: 'SELECT id, runnerId, status, cancelRequestedAt AS cancel FROM Jobs WHERE id IN (:jobIds)',
    endedStates: 'SELECT id, runnerId, attempt, status, exitCode, `signal`, error FROM Jobs WHERE id IN (:ids)',
    renewCancelling: `UPDATE Jobs SET heartbeatAt = ${p.now} WHERE id IN (:ids) AND runnerId = :runnerId AND status = 'running'`,
    lastSeq: 'SELECT MAX(seq) AS lastSeq FROM JobStatuses WHERE jobId = :jobId',
    outputBytes: `SELECT COALESCE(SUM(${p.byteLength('output')}), 0) AS bytes FROM JobStatuses
       WHERE jobId = :jobId AND stream <> 'system'`,
    reapSelect: (leaseMs, batch) =>
      `SELECT id, runnerId, groupKey, task, attempt, maxAttempts, cancelRequestedAt AS cancel FROM Jobs
       WHERE status = 'running' AND heartbeatAt < ${p.ago(leaseMs)}
       ORDER BY heartbeatAt LIMIT ${Math.floor(batch)} ${p.skipLocked}`,
    reapMark: (leaseMs) =>
      `UPDATE Jobs SET status = 'failure', error = 'runner_lost', lastError = 'runner_lost', finishedAt = ${p.now},
         updatedAt = ${p.now}
       WHERE id = :id AND status = 'running' AND heartbeatAt < ${p.ago(leaseMs)}`,
    reapRetry: (leaseMs, delayMs) =>
      `UPDATE Jobs SET status = 'pending', attempt = attempt + 1, lastError = 'runner_lost', runAt = ${p.later(delayMs)},
         runnerId = NULL, heartbeatAt = NULL, startedAt = NULL, updatedAt = ${p.now}
       WHERE id = :id AND status = 'running' AND heartbeatAt < ${p.ago(leaseMs)}`,
    jobForRetry: (scoped) =>
      `SELECT id, task, params, status, attempt, maxAttempts, groupKey, error, lastError FROM Jobs
       WHERE id = :jobId ${owner(scoped)} ${p.forUpdate}`,
    retryNow: `UPDATE Jobs SET status = 'pending', attempt = :attempt, maxAttempts = :maxAttempts, lastError = :lastError,
         runAt = ${p.now}, groupQueued = :groupQueued, runnerId = NULL, heartbeatAt = NULL, startedAt = NULL,
         finishedAt = NULL, cancelRequestedAt = NULL, cancelledBy = NULL, exitCode = NULL, \`signal\` = NULL,
         error = NULL, updatedAt = ${p.now}
       WHERE id = :jobId AND status IN ('failure', 'cancelled')`,
    cancelPending: (scoped) =>
      `UPDATE Jobs SET status = 'cancelled', error = 'cancelled', cancelledBy = :by, cancelRequestedAt = ${p.now},
         finishedAt = ${p.now}, updatedAt = ${p.now}
       WHERE id = :jobId AND status = 'pending' ${owner(scoped)}`,
    cancelRunning: (scoped) =>
      `UPDATE Jobs SET cancelRequestedAt = COALESCE(cancelRequestedAt, ${p.now}),
         cancelledBy = COALESCE(cancelledBy, :by), updatedAt = ${p.now}
       WHERE id = :jobId AND status = 'running' ${owner(scoped)}`,
    jobStatus: (scoped) => `SELECT status FROM Jobs WHERE id = :jobId ${owner(scoped)}`,
    insertJobs: (runAts) =>
      `INSERT INTO Jobs (task, params, command, createdBy, priority, runAt, groupKey, groupQueued, idempotencyKey,
         maxAttempts, rerunOf)
       VALUES ${runAts.map((runAt) => `(?, ?, ?, ?, ?, ${runAt}, ?, ?, ?, ?, ?)`).join(', ')}`,
    jobByIdempotencyKey: 'SELECT id, task, params, status FROM Jobs WHERE idempotencyKey = :key',
    jobByIdempotencyKeyLatest: `SELECT id, task, params, status FROM Jobs WHERE idempotencyKey = :key ${p.forShare}`,
    joinGroup: `UPDATE Jobs SET status = 'pending', runnerId = NULL, startedAt = NULL, heartbeatAt = NULL,
         groupKey = :key, groupQueued = 1, updatedAt = ${p.now}
       WHERE id = :jobId AND runnerId = :runnerId AND attempt = :attempt AND status = 'running'`,
    releaseClaim: `UPDATE Jobs SET status = 'pending', runnerId = NULL, startedAt = NULL, heartbeatAt = NULL,
         updatedAt = ${p.now}
       WHERE id IN (:ids) AND runnerId = :runnerId AND attempt = :attempt AND status = 'running'
         AND cancelRequestedAt IS NULL`,
    groupUpsert: `INSERT INTO JobGroups (\`key\`, blockOnFailure, updatedAt) VALUES (:key, :block, ${p.now}) ${p.upsertGroup}`,
    groupLock: `SELECT headJobId, blockedByJobId, blockOnFailure FROM JobGroups WHERE \`key\` = :key ${p.forUpdate}`,
    groupNextQueued: `SELECT id FROM Jobs WHERE groupKey = :key AND status = 'pending' AND groupQueued = 1
       ORDER BY id LIMIT 1 ${p.forUpdate}`,
    groupQueue: `UPDATE Jobs SET groupQueued = 1, updatedAt = ${p.now} WHERE id = :id AND status = 'pending'`,
    groupPromote: `UPDATE Jobs SET groupQueued = 0, updatedAt = ${p.now} WHERE id = :id AND status = 'pending'`,
    groupSetHolders: `UPDATE JobGroups SET headJobId = :head, blockedByJobId = :blockedBy, updatedAt = ${p.now}
       WHERE \`key\` = :key`,
    waitingOf: `SELECT CASE WHEN runAt > ${p.now} THEN 1 ELSE 0 END AS later, attempt, groupQueued,
         CASE WHEN createdBy IS NULL THEN 0 ELSE (${OWNER_RUNNING}) END AS ownerRunning,
         (SELECT g.blockedByJobId FROM JobGroups g WHERE g.\`key\` = Jobs.groupKey) AS blockedBy
       FROM Jobs WHERE id = :id AND status = 'pending'`,
    groups: (state) =>
      `SELECT g.\`key\` AS \`key\`, g.headJobId, g.blockedByJobId,
         (SELECT j.status FROM Jobs j WHERE j.id = g.headJobId) AS headStatus,
         (SELECT COUNT(*) FROM Jobs j WHERE j.groupKey = g.\`key\` AND j.status = 'pending') AS pendingJobs
       FROM JobGroups g
       WHERE ${state === 'active' ? 'g.headJobId IS NOT NULL' : state === 'blocked' ? 'g.blockedByJobId IS NOT NULL' : '(g.headJobId IS NOT NULL OR g.blockedByJobId IS NOT NULL)'}
       ORDER BY g.\`key\``,
    scheduleRegister: `${p.insertIgnore} INTO JobSchedules (name, firstSeenAt, updatedAt) VALUES (:name, :seenAt, ${p.now})`,
    schedulesState: `SELECT s.name, s.firstSeenAt, s.lastFireAt, s.lastRunAt, s.lastJobId, j.status AS lastStatus
       FROM JobSchedules s LEFT JOIN Jobs j ON j.id = s.lastJobId`,
    scheduleLock: `SELECT name, firstSeenAt, lastJobId, (SELECT j.status FROM Jobs j WHERE j.id = JobSchedules.lastJobId) AS lastStatus
       FROM JobSchedules WHERE name = :name ${p.forUpdate}`,
    fireClaim: `${p.insertIgnore} INTO JobScheduleFires (scheduleName, fireAt, createdAt) VALUES (:name, :fireAt, ${p.now})`,
    fireRecord:
      'UPDATE JobScheduleFires SET jobId = :jobId, skipped = :skipped WHERE scheduleName = :name AND fireAt = :fireAt',
    scheduleFired: `UPDATE JobSchedules SET lastFireAt = :fireAt, updatedAt = ${p.now}
       WHERE name = :name AND (lastFireAt IS NULL OR lastFireAt < :fireAt)`,
    scheduleAdvance: `UPDATE JobSchedules SET lastRunAt = :fireAt, lastJobId = :jobId, updatedAt = ${p.now}
       WHERE name = :name AND (lastRunAt IS NULL OR lastRunAt < :fireAt)`,
    ownersLock: `SELECT owner FROM JobOwners WHERE owner IN (:owners) ORDER BY owner ${p.forUpdate}`,
    ownerInsert: `${p.insertIgnore} INTO JobOwners (owner) VALUES (:owner)`,
    ownersJobs: (count) =>
      Array.from(
        { length: count },
        (_, i) => `SELECT ${i} AS i, COUNT(*) AS n FROM (SELECT id FROM Jobs WHERE createdBy = :owner${i}
           AND status = :status LIMIT :upTo ${p.forShare}) counted${i}`,
      ).join(' UNION ALL '),
    reportRunner: `INSERT INTO JobRunners (id, startedAt, seenAt, report) VALUES (:id, ${p.now}, ${p.now}, :report) ${p.upsertRunner}`,
    jobCountsByStatus: 'SELECT status, COUNT(*) AS n FROM Jobs GROUP BY status',
    dueJobs: `SELECT COUNT(*) AS n, ${p.secondsSince('MIN(runAt)')} AS age FROM Jobs
       WHERE status = 'pending' AND runAt <= ${p.now}`,
    runnerJobCounts: `SELECT status, COUNT(*) AS n FROM Jobs
       WHERE runnerId = :runnerId AND startedAt >= :since AND status IN (:statuses)
       GROUP BY status`,
    scheduleOfJob: 'SELECT scheduleName FROM JobScheduleFires WHERE jobId = :jobId',
    tokensWithUser: `SELECT t.tokenHash, t.id, t.expiresAt, t.lastUsedAt, u.username, u.isAdmin
       FROM ApiTokens t JOIN Users u ON u.id = t.userId WHERE t.tokenHash IN (:hashes)`,
    sessionsWithUser: `SELECT s.sid, s.data, s.expires, s.lastSeenAt, u.id AS uid, u.username, u.isAdmin
       FROM Sessions s LEFT JOIN Users u ON u.id = s.userId WHERE s.sid IN (:sids)`,
    runnerReports: (windowMs) =>
      `SELECT id, startedAt, seenAt, report, ${p.secondsSince('seenAt')} AS age FROM JobRunners WHERE seenAt >= ${p.ago(windowMs)} ORDER BY id`,
    runnersNotSeen: (windowMs) => `SELECT COUNT(*) AS n FROM JobRunners WHERE seenAt < ${p.ago(windowMs)}`,
    runningJobsOf: `SELECT id, runnerId, task, createdBy, startedAt, attempt FROM Jobs
       WHERE status = 'running' AND runnerId IN (:ids) ORDER BY id`,
    runnerNudgeTargets: (windowMs) => `SELECT report FROM JobRunners WHERE seenAt >= ${p.ago(windowMs)}`,
    pruneRunnerReports: (olderThanMs) => `DELETE FROM JobRunners WHERE seenAt < ${p.ago(olderThanMs)}`,
    countOutputOf: (jobIds) => `SELECT COUNT(*) AS n FROM JobStatuses WHERE jobId IN (${jobIds})`,
    pruneSelectJobs: (olderThanMs, limit) =>
      `SELECT id FROM Jobs WHERE ${FINISHED} AND finishedAt < ${p.ago(olderThanMs)} ORDER BY id LIMIT ${Math.floor(limit)}`,
    // Read first (no locks), then delete by primary key: a `DELETE … WHERE jobId IN … LIMIT` that
    // MySQL plans as a table scan (stale statistics, many lines a job) locks every row.
    pruneSelectOutput: (limit) => `SELECT id FROM JobStatuses WHERE jobId IN (:ids) LIMIT ${Math.floor(limit)}`,
    pruneDeleteOutput: 'DELETE FROM JobStatuses WHERE id IN (:rowIds)',
    pruneDeleteJobs: `DELETE FROM Jobs WHERE id IN (:ids) AND ${FINISHED}`,
    pruneScheduleFires: (olderThanMs) =>
      `DELETE FROM JobScheduleFires WHERE fireAt < ${p.ago(olderThanMs)}
         AND fireAt < COALESCE((SELECT s.lastFireAt FROM JobSchedules s WHERE s.name = JobScheduleFires.scheduleName), fireAt)`,
    pruneIdleGroups: (olderThanMs) =>
      `DELETE FROM JobGroups WHERE headJobId IS NULL AND blockedByJobId IS NULL AND updatedAt < ${p.ago(olderThanMs)}
         AND NOT EXISTS (SELECT 1 FROM Jobs j WHERE j.groupKey = JobGroups.\`key\` AND j.status = 'pending')`,
  };
}
