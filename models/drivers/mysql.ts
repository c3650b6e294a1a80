// MySQL 8.0.1+ and MariaDB 10.6+: row locks with SKIP LOCKED, a server clock with microseconds.
import type { DatabaseConfig } from '../../config';
import { driverError, type Driver } from './driver';
import { openMysqlLane } from './mysql-lane';
import { sharedStatements } from './statements';

const now = 'NOW(3)';
const ago = (ms: number) => `(NOW(3) - INTERVAL ${Math.max(0, Math.floor(ms)) * 1000} MICROSECOND)`;
const later = (ms: number) => `(NOW(3) + INTERVAL ${Math.max(0, Math.floor(ms)) * 1000} MICROSECOND)`;
const secondsSince = (expr: string) => `TIMESTAMPDIFF(MICROSECOND, ${expr}, NOW(3)) / 1000000`;

/** Deadlock (1213), lock-wait timeout (1205): retry the transaction. */
const LOCK_ERRNOS = new Set([1213, 1205]);

/**
 * Refusals of the statement or its data: parse error (1064), incorrect string value (1366), data
 * too long (1406), out of range (1264), NULL into NOT NULL (1048), bad datetime (1292), invalid
 * character string (1300), invalid JSON (3140), CHECK constraint (4025), collation mix (1267).
 */
const PERMANENT_ERRNOS = new Set([1064, 1366, 1406, 1264, 1048, 1292, 1300, 3140, 4025, 1267]);

export const mysqlDriver: Driver = {
  dialect: 'mysql',
  capabilities: {
    skipLocked: true,
    serialWrites: false,
    embedded: false,
    errorAbortsTransaction: false,
    refusableCommit: true,
  },
  now,
  ago,
  later,
  secondsSince,
  statements: sharedStatements({
    now,
    ago,
    later,
    secondsSince,
    byteLength: (expr) => `LENGTH(${expr})`,
    skipLocked: 'FOR UPDATE SKIP LOCKED',
    forUpdate: 'FOR UPDATE',
    forShare: 'LOCK IN SHARE MODE',
    // Without it MariaDB may filesort the claim, locking every pending row it reads (SKIP LOCKED then
    // finds nothing for the other runners).
    claimIndexHint: 'FORCE INDEX (jobs_claim_ready)',
    insertIgnore: 'INSERT IGNORE',
    upsertRunner: 'ON DUPLICATE KEY UPDATE seenAt = VALUES(seenAt), report = VALUES(report)',
    upsertGroup: 'ON DUPLICATE KEY UPDATE blockOnFailure = VALUES(blockOnFailure)',
  }),
  sequelizeOptions(config: DatabaseConfig, options) {
    if (config.dialect !== 'mysql') throw new Error(`mysql driver given a ${config.dialect} configuration`);
    return {
      logging: options.logging,
      dialect: 'mysql',
      host: config.host,
      port: config.port,
      username: config.user,
      password: config.password,
      database: config.database,
      timezone: '+00:00',
      pool: { max: options.poolMax ?? 10, min: 0, acquire: 30000, idle: 10000 },
      dialectOptions: { dateStrings: false, supportBigNumbers: true, bigNumberStrings: false, connectTimeout: 10000 },
    };
  },
  tableOptions: { charset: 'utf8mb4', engine: 'InnoDB' },
  beforeMigrate: [],
  // Each ALTER commits by itself: the conversion's steps are each idempotent, and a re-run resumes.
  adoption: {
    method: 'alter',
    transactionalDdl: false,
    numberOutput:
      'UPDATE JobStatuses s JOIN (SELECT id, ROW_NUMBER() OVER (PARTITION BY jobId ORDER BY id) AS n FROM JobStatuses) x ' +
      'ON x.id = s.id SET s.seq = x.n WHERE s.seq IS NULL',
    widenOutputId: 'ALTER TABLE JobStatuses MODIFY id BIGINT NOT NULL AUTO_INCREMENT',
    session: null,
  },
  isRetryableLockError: (err) => LOCK_ERRNOS.has(driverError(err).errno ?? -1),
  isPermanentError: (err) => PERMANENT_ERRNOS.has(driverError(err).errno ?? -1),
  isUniqueViolation: (err) => driverError(err).errno === 1062,
  // A multi-row INSERT takes its ids at once: the first, then every auto_increment_increment
  // (1, or the node count on Galera).
  insertedIds: (first, rows, step) => Array.from({ length: rows }, (_, i) => Number(first) + i * step),
  autoIncrementStep: 'SELECT @@auto_increment_increment AS step',
  dueNotice: null,
  openLane: openMysqlLane,
  multiPrimary: async (select) => {
    const rows = await select(
      "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('wsrep_on', 'group_replication_single_primary_mode')",
    );
    const value = (name: string) => String(rows.find((r) => r.Variable_name === name)?.Value ?? '').toUpperCase();
    if (value('wsrep_on') === 'ON') return true;
    if (value('group_replication_single_primary_mode') !== 'OFF') return false;
    // The plugin's setting alone says nothing: is this server in a group of more than one?
    try {
      const [row] = await select(
        "SELECT COUNT(*) AS n FROM performance_schema.replication_group_members WHERE MEMBER_STATE = 'ONLINE'",
      );
      return Number(row?.n ?? 0) > 1;
    } catch {
      return false;
    }
  },
};
