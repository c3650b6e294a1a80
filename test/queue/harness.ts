// The queue contract suite's fixtures: a migrated database per file, state set up by plain SQL on the
// database's clock, and rows read back by plain SQL, so each test exercises only the Queue call under test.
import { QueryTypes, type Transaction } from 'sequelize';
import type { DatabaseConfig } from '../../config';
import { createDatabase, type Database } from '../../models/database';
import type { OutputRow } from '../../models/queue';
import { Queue } from '../../models/queue';
import { dialect, freshDatabase, truncateAll, sqlOf } from '../helpers/database';

export { dialect };

/** A test that needs row locks (FOR UPDATE SKIP LOCKED): MySQL/MariaDB and PostgreSQL. */
export const withRowLocks = dialect === 'sqlite' ? test.skip : test;

export interface QueueFixture {
  db: Database;
  config: DatabaseConfig;
  queue: Queue;
  /** Another handle on the same database (its own connection pool), closed after the test. */
  secondHandle(options?: { poolMax?: number }): Database;
}

/** One migrated database for the file, emptied before each test; its fields are set in beforeAll. */
export function useQueueDatabase(file: string): QueueFixture {
  const opened: Database[] = [];
  const fixture = {
    secondHandle(options = {}) {
      const db = createDatabase(fixture.config, options);
      opened.push(db);
      return db;
    },
  } as QueueFixture;
  beforeAll(async () => {
    const { db, config } = await freshDatabase(`cj_test_queue_${file}_w${process.env.JEST_WORKER_ID ?? '0'}`);
    Object.assign(fixture, { db, config, queue: new Queue(db) });
  });
  afterAll(async () => {
    await fixture.db?.close();
  });
  beforeEach(async () => {
    await truncateAll(fixture.db);
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((db) => db.close()));
  });
  return fixture;
}

/**
 * A queue on its own single connection that gives up on a row lock after 1 s (MySQL errno 1205,
 * PostgreSQL 55P03), so an operation that should skip or ignore rows another transaction holds
 * fails, instead of hanging until the test times out, if it waits for them.
 */
export async function impatientQueue(fixture: QueueFixture): Promise<Queue> {
  const db = fixture.secondHandle({ poolMax: 1 });
  await db.sequelize.query(
    db.dialect === 'postgres' ? "SET lock_timeout = '1s'" : 'SET SESSION innodb_lock_wait_timeout = 1',
  );
  return new Queue(db);
}

/**
 * An open transaction on a second handle holding exactly these jobs' rows FOR UPDATE, as another
 * runner mid-transaction would. One row at a time by primary key: an `IN` list on a small table may
 * be answered by an index scan, which under REPEATABLE READ (MySQL) locks every row it reads.
 */
export async function holdJobRows(fixture: QueueFixture, ids: number[]): Promise<Transaction> {
  const holder = fixture.secondHandle();
  const transaction = await holder.sequelize.transaction();
  let held = 0;
  for (const id of ids) {
    const rows = await sqlOf(holder).query('SELECT id FROM Jobs WHERE id = :id FOR UPDATE', {
      type: QueryTypes.SELECT,
      replacements: { id },
      transaction,
    });
    held += rows.length;
  }
  // PostgreSQL locks exactly the rows a FOR UPDATE returns, at once.
  if (holder.dialect === 'postgres') {
    if (held === ids.length) return transaction;
    await transaction.rollback();
    throw new Error(`the holder locked ${held} rows, not ${ids.length}`);
  }
  // InnoDB answers information_schema.innodb_trx from a cache it refreshes at most every 0.1 s, so a
  // transaction that just took its locks may be missing or show an older count: read until it settles.
  let rowsLocked: number | undefined;
  for (let attempt = 0; attempt < 100 && rowsLocked !== ids.length; attempt += 1) {
    if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 150));
    const [locks] = await sqlOf(holder).query<{ rowsLocked: number | string }>(
      'SELECT trx_rows_locked AS rowsLocked FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = CONNECTION_ID()',
      { type: QueryTypes.SELECT, transaction },
    );
    rowsLocked = locks === undefined ? undefined : Number(locks.rowsLocked);
  }
  if (rowsLocked !== ids.length) {
    await transaction.rollback();
    throw new Error(`the holder locked ${rowsLocked ?? 'no'} rows, not ${ids.length}`);
  }
  return transaction;
}

/** An identifier quoted for the dialect (`signal` is a reserved word on MySQL). */
export function quote(db: Database, name: string): string {
  return db.dialect === 'mysql' ? `\`${name}\`` : `"${name}"`;
}

/** "Now" plus `ms` (negative: in the past), as a SQL expression on the database's clock. */
export function sqlNowPlus(db: Database, ms: number): string {
  const n = Math.trunc(ms);
  if (db.dialect === 'mysql') return `(NOW(3) + INTERVAL ${n * 1000} MICROSECOND)`;
  if (db.dialect === 'postgres') return `(${db.driver.now} + interval '${n} milliseconds')`;
  return `strftime('%Y-%m-%d %H:%M:%f', 'now', '${n < 0 ? '-' : '+'}${(Math.abs(n) / 1000).toFixed(3)} seconds')`;
}

/** A datetime column's value in epoch milliseconds: MySQL and PostgreSQL hand back Dates, SQLite 'YYYY-MM-DD HH:MM:SS.sss' (UTC). */
export function toMs(value: unknown): number | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return value.getTime();
  const ms = Date.parse(`${String(value).replace(' ', 'T')}Z`);
  if (Number.isNaN(ms)) throw new Error(`not a datetime: ${JSON.stringify(value)}`);
  return ms;
}

/** The database's clock now, in epoch milliseconds. */
export async function dbNow(db: Database): Promise<number> {
  const [row] = await sqlOf(db).query<{ now: unknown }>(`SELECT ${sqlNowPlus(db, 0)} AS now`, {
    type: QueryTypes.SELECT,
  });
  return toMs(row.now) as number;
}

export interface NewJob {
  task?: string;
  params?: object;
  command?: string | null;
  createdBy?: string | null;
  priority?: number;
}

/** A pending job inserted by plain SQL, as another program would; every column left out takes its default. */
export async function addJob(db: Database, job: NewJob = {}): Promise<number> {
  const values: Record<string, unknown> = {
    task: job.task ?? 'echo',
    params: JSON.stringify(job.params ?? { n: 1 }),
    command: job.command === undefined ? 'echo 1' : job.command,
    createdBy: job.createdBy === undefined ? 'alice' : job.createdBy,
    priority: job.priority ?? 0,
  };
  const names = Object.keys(values);
  return sqlOf(db).insert(
    `INSERT INTO Jobs (${names.map((n) => quote(db, n)).join(', ')}) VALUES (${names.map((n) => `:${n}`).join(', ')})`,
    values,
  );
}

/** Sets columns of a job to plain values. */
export async function setJob(db: Database, id: number, columns: Record<string, unknown>): Promise<void> {
  const sets = Object.keys(columns).map((name) => `${quote(db, name)} = :${name}`);
  await sqlOf(db).query(`UPDATE Jobs SET ${sets.join(', ')} WHERE id = :id`, {
    replacements: { ...columns, id },
  });
}

/** Sets a datetime column of a job to the database's "now" plus `ms` (negative: in the past). */
export async function setJobTime(db: Database, id: number, column: string, ms: number): Promise<void> {
  await sqlOf(db).query(`UPDATE Jobs SET ${quote(db, column)} = ${sqlNowPlus(db, ms)} WHERE id = :id`, {
    replacements: { id },
  });
}

/** Puts a job in the state a claim leaves it in: running, owned by `runnerId`, started and renewed now. */
export async function makeRunning(db: Database, id: number, runnerId: string): Promise<void> {
  const now = sqlNowPlus(db, 0);
  await sqlOf(db).query(
    `UPDATE Jobs SET status = 'running', runnerId = :runnerId, startedAt = ${now}, heartbeatAt = ${now} WHERE id = :id`,
    { replacements: { id, runnerId } },
  );
}

export interface JobRow {
  id: number;
  status: string;
  runnerId: string | null;
  command: string | null;
  createdBy: string | null;
  priority: number;
  exitCode: number | null;
  signal: string | null;
  error: string | null;
  cancelledBy: string | null;
  runAt: number | null;
  startedAt: number | null;
  heartbeatAt: number | null;
  finishedAt: number | null;
  cancelRequestedAt: number | null;
}

const TIME_COLUMNS = ['runAt', 'startedAt', 'heartbeatAt', 'finishedAt', 'cancelRequestedAt'] as const;

/** A job's row as stored, datetimes in epoch milliseconds. */
export async function jobRow(db: Database, id: number): Promise<JobRow> {
  const columns = ['id', 'status', 'runnerId', 'command', 'createdBy', 'priority', 'exitCode', 'signal', 'error'];
  const [row] = await sqlOf(db).query<Record<string, unknown>>(
    `SELECT ${[...columns, 'cancelledBy', ...TIME_COLUMNS].map((c) => quote(db, c)).join(', ')} FROM Jobs WHERE id = :id`,
    { type: QueryTypes.SELECT, replacements: { id } },
  );
  if (!row) throw new Error(`job ${id} not found`);
  const times = Object.fromEntries(TIME_COLUMNS.map((c) => [c, toMs(row[c])]));
  return {
    ...(row as unknown as JobRow),
    ...times,
    id: Number(row.id),
    priority: Number(row.priority),
    exitCode: row.exitCode === null ? null : Number(row.exitCode),
  };
}

export interface StoredRow extends OutputRow {
  id: number;
}

/** A job's output rows as stored, in id order. */
export async function storedRows(db: Database, jobId: number): Promise<StoredRow[]> {
  const rows = await sqlOf(db).query<StoredRow>(
    'SELECT id, seq, stream, output FROM JobStatuses WHERE jobId = :jobId ORDER BY id',
    { type: QueryTypes.SELECT, replacements: { jobId } },
  );
  return rows.map((r) => ({ ...r, id: Number(r.id), seq: Number(r.seq) }));
}

/** Output rows numbered from `firstSeq`, on stdout unless told. */
export function outputRows(firstSeq: number, lines: string[], stream: OutputRow['stream'] = 'stdout'): OutputRow[] {
  return lines.map((output, i) => ({ seq: firstSeq + i, stream, output }));
}

/** `count` lines named after their job and number, so a row out of place names itself. */
export function numberedLines(jobId: number, from: number, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `job ${jobId} line ${from + i}`);
}
