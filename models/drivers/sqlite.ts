// The embedded default: one writer at a time per file, no row locks (a transaction takes the file's
// write lock up front, so a claim is exclusive anyway), the clock from strftime.
import { Transaction } from 'sequelize';
import type { DatabaseConfig } from '../../config';
import { driverError, type Driver } from './driver';
import { sharedStatements } from './statements';

const now = "strftime('%Y-%m-%d %H:%M:%f', 'now')";
const shift = (ms: number) => (Math.max(0, Math.floor(ms)) / 1000).toFixed(3);
const ago = (ms: number) => `strftime('%Y-%m-%d %H:%M:%f', 'now', '-${shift(ms)} seconds')`;
const later = (ms: number) => `strftime('%Y-%m-%d %H:%M:%f', 'now', '+${shift(ms)} seconds')`;
const secondsSince = (expr: string) => `(julianday('now') - julianday(${expr})) * 86400`;

/**
 * Refusals of the statement or its data, not of the moment (the file being busy). A constraint is
 * one: the queue's inserts skip duplicate keys themselves (OR IGNORE), so what remains is a refusal.
 */
const PERMANENT_CODES = new Set(['SQLITE_TOOBIG', 'SQLITE_MISMATCH', 'SQLITE_RANGE', 'SQLITE_CONSTRAINT']);
const PERMANENT_MESSAGES = /unrecognized token|syntax error|incomplete input/;

/**
 * sqlite3 with every connection waiting for the file lock instead of failing at once
 * (Sequelize opens one connection per transaction and runs no connect hooks for SQLite).
 */
function sqliteWithBusyTimeout(): object {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const sqlite3 = require('sqlite3') as typeof import('sqlite3');
  class Database extends sqlite3.Database {
    constructor(file: string, mode: number, callback: (err: Error | null) => void) {
      super(file, mode, callback);
      this.configure('busyTimeout', 10000);
      this.exec('PRAGMA synchronous = NORMAL');
    }
  }
  return { ...sqlite3, Database };
}

export const sqliteDriver: Driver = {
  dialect: 'sqlite',
  capabilities: {
    skipLocked: false,
    serialWrites: true,
    embedded: true,
    errorAbortsTransaction: false,
    refusableCommit: false,
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
    byteLength: (expr) => `LENGTH(CAST(${expr} AS BLOB))`,
    skipLocked: '',
    forUpdate: '',
    forShare: '',
    claimIndexHint: '',
    insertIgnore: 'INSERT OR IGNORE',
    upsertRunner: 'ON CONFLICT(id) DO UPDATE SET seenAt = excluded.seenAt, report = excluded.report',
    upsertGroup: 'ON CONFLICT(`key`) DO UPDATE SET blockOnFailure = excluded.blockOnFailure',
  }),
  sequelizeOptions(config: DatabaseConfig, options) {
    if (config.dialect !== 'sqlite') throw new Error(`sqlite driver given a ${config.dialect} configuration`);
    return {
      logging: options.logging,
      dialect: 'sqlite',
      storage: config.storage,
      // IMMEDIATE takes the write lock up front, so two processes never deadlock upgrading a read lock.
      transactionType: Transaction.TYPES.IMMEDIATE,
      dialectModule: sqliteWithBusyTimeout(),
      retry: { max: 10, match: [/SQLITE_BUSY/] },
    };
  },
  tableOptions: {},
  // Readers never wait for the writer; the setting stays with the file.
  beforeMigrate: ['PRAGMA journal_mode = WAL'],
  // No ALTER COLUMN: the tables are made again. Foreign keys off (a DROP would cascade into the host's
  // rows) and legacy renames (a rename would repoint the host's references to the old table); both are
  // settings of the connection, so they are made outside the transaction and undone after it.
  adoption: {
    method: 'rebuild',
    transactionalDdl: true,
    numberOutput: null,
    widenOutputId: null,
    session: {
      before: ['PRAGMA foreign_keys = OFF', 'PRAGMA legacy_alter_table = ON'],
      begin: 'BEGIN IMMEDIATE',
      check: 'PRAGMA foreign_key_check',
      commit: 'COMMIT',
      rollback: 'ROLLBACK',
      after: ['PRAGMA legacy_alter_table = OFF', 'PRAGMA foreign_keys = ON'],
    },
  },
  isRetryableLockError: (err) => driverError(err).code === 'SQLITE_BUSY',
  isUniqueViolation: (err) => {
    const e = driverError(err);
    return e.code === 'SQLITE_CONSTRAINT' && /UNIQUE constraint failed/.test(e.message ?? '');
  },
  // One writer at a time: a multi-row INSERT's ids are the last one's and the ones just below it.
  insertedIds: (last, rows) => Array.from({ length: rows }, (_, i) => Number(last) - rows + 1 + i),
  autoIncrementStep: null,
  dueNotice: null,
  multiPrimary: null,
  openLane: null,
  isPermanentError: (err) => {
    const e = driverError(err);
    return PERMANENT_CODES.has(e.code ?? '') || (e.code === 'SQLITE_ERROR' && PERMANENT_MESSAGES.test(e.message ?? ''));
  },
};
