// prune: old finished jobs and their output go, in batches; pending, running and recent jobs stay.
import { setTimeout as sleep } from 'node:timers/promises';
import { QueryTypes } from 'sequelize';
import type { DatabaseConfig } from '../config';
import { createDatabase, type Database } from '../models/database';
import { parseDuration, pruneFinishedJobs } from '../models/prune';
import { dialect, freshDatabase, truncateAll, sqlOf } from './helpers/database';

let db: Database;
let config: DatabaseConfig;

beforeAll(async () => {
  ({ db, config } = await freshDatabase(`cj_test_prune_w${process.env.JEST_WORKER_ID ?? '0'}`));
});
beforeEach(() => truncateAll(db));
afterAll(() => db.close());

async function job(status: string, finishedDaysAgo: number | null, outputRows: number): Promise<number> {
  const finishedAt =
    finishedDaysAgo === null
      ? null
      : new Date(Date.now() - finishedDaysAgo * 86400_000).toISOString().slice(0, 23).replace('T', ' ');
  await sqlOf(db).query('INSERT INTO Jobs (task, params, createdBy, status, finishedAt) VALUES (?, ?, ?, ?, ?)', {
    replacements: ['echo', '{}', 'alice', status, finishedAt],
  });
  const [{ id }] = await sqlOf(db).query<{ id: number }>('SELECT MAX(id) AS id FROM Jobs', {
    type: QueryTypes.SELECT,
  });
  for (let seq = 1; seq <= outputRows; seq++) {
    await sqlOf(db).query("INSERT INTO JobStatuses (jobId, seq, stream, output) VALUES (?, ?, 'stdout', 'x')", {
      replacements: [id, seq],
    });
  }
  return Number(id);
}

const ids = async (table: string, column: string) =>
  (
    await sqlOf(db).query<{ v: number }>(`SELECT DISTINCT ${column} AS v FROM ${table} ORDER BY v`, {
      type: QueryTypes.SELECT,
    })
  ).map((r) => Number(r.v));

test('parseDuration reads s, m, h, d, w and refuses anything else', () => {
  expect(parseDuration('30d')).toBe(30 * 86400);
  expect(parseDuration('12h')).toBe(43200);
  expect(parseDuration('90m')).toBe(5400);
  expect(parseDuration('15s')).toBe(15);
  expect(parseDuration('2w')).toBe(1209600);
  for (const bad of ['30', 'd', '-1d', '1.5d', '3x', '']) expect(parseDuration(bad)).toBeUndefined();
});

test('deletes only finished jobs older than the cutoff, with their output, in small batches', async () => {
  const old = [await job('success', 40, 3), await job('failure', 31, 25), await job('cancelled', 90, 0)];
  const keep = [
    await job('success', 5, 2),
    await job('pending', null, 0),
    await job('running', null, 4),
    // A running job with a stale finishedAt (never happens, but prune must not touch running jobs).
    await job('running', 60, 1),
  ];
  const result = await pruneFinishedJobs(db, 30 * 86400, { jobBatch: 2, rowBatch: 7 });
  expect(result).toEqual({ jobs: 3, outputRows: 28, groups: 0, fires: 0 });
  expect(await ids('Jobs', 'id')).toEqual(keep);
  expect(await ids('JobStatuses', 'jobId')).toEqual([keep[0], keep[2], keep[3]]);
  expect(old.every((id) => !keep.includes(id))).toBe(true);
  expect(await pruneFinishedJobs(db, 30 * 86400)).toEqual({ jobs: 0, outputRows: 0, groups: 0, fires: 0 });
});

// ---- At scale: 100,000 finished jobs × 10 output rows, with a writer and (MariaDB) a lock watcher alongside.

const OLD_JOBS = 100_000;
const LINES = 10;
const KEPT_EVERY = 1001; // every 1001st seeded job is one prune must keep: 100 of them, among the old ones
const JOB_BATCH = 500;
const ROW_BATCH = 2000; // below 500 × 10, so each job batch takes several output statements
const CUTOFF = 30 * 86400;

/** A derived table `n` of 1..count, built by the database itself. */
async function numbers(count: number): Promise<string> {
  if (db.dialect === 'mysql') {
    // MariaDB's Sequence engine; a recursive CTE elsewhere (MySQL 8 needs its recursion depth raised).
    const sequence = await sqlOf(db)
      .query('SELECT seq FROM seq_1_to_3', { type: QueryTypes.SELECT })
      .then(
        (rows) => rows.length === 3,
        () => false,
      );
    if (sequence) return `(SELECT seq AS n FROM seq_1_to_${count}) AS n`;
  }
  return `(WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < ${count}) SELECT n FROM c) AS n`;
}

/**
 * Seeds, in two set-based statements, `oldJobs` finished jobs (success/failure/cancelled, 31–330 days
 * ago, createdBy 'old') and, every KEPT_EVERY-th id, a job prune must keep (createdBy 'kept'): pending,
 * running, running with a stale finishedAt and heartbeat, and success/failure/cancelled within the cutoff.
 * Every job gets LINES output rows.
 */
async function seedAtScale(oldJobs = OLD_JOBS): Promise<void> {
  const mysql = db.dialect === 'mysql';
  const postgres = db.dialect === 'postgres';
  const daysAgo = (days: string) =>
    mysql
      ? `NOW(3) - INTERVAL (${days}) DAY`
      : postgres
        ? `${db.driver.now} - (${days}) * interval '1 day'`
        : `strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || (${days}) || ' days')`;
  const now = mysql || postgres ? db.driver.now : "strftime('%Y-%m-%d %H:%M:%f', 'now')";
  // PostgreSQL types a CASE of strings as text: it goes into an ENUM column cast.
  const asEnum = (expr: string, type: string) => (postgres ? `CAST(${expr} AS "${type}")` : expr);
  const kept = `n.n % ${KEPT_EVERY} = 0`;
  // Which kind of kept job: integer division (`/` on SQLite's integers is already integral).
  const keptKind = `(n.n ${mysql ? 'DIV' : '/'} ${KEPT_EVERY}) % 6`;
  await sqlOf(db).query(
    `INSERT INTO Jobs (task, params, createdBy, status, startedAt, heartbeatAt, finishedAt, exitCode)
     SELECT 'echo', ${postgres ? "CAST('{}' AS json)" : "'{}'"},
       CASE WHEN ${kept} THEN 'kept' ELSE 'old' END,
       ${asEnum(
         `CASE WHEN ${kept} THEN
         CASE ${keptKind} WHEN 0 THEN 'pending' WHEN 1 THEN 'running' WHEN 2 THEN 'running'
           WHEN 3 THEN 'success' WHEN 4 THEN 'failure' ELSE 'cancelled' END
       ELSE CASE n.n % 3 WHEN 0 THEN 'success' WHEN 1 THEN 'failure' ELSE 'cancelled' END END`,
         'enum_Jobs_status',
       )},
       CASE WHEN ${kept} AND ${keptKind} = 0 THEN NULL WHEN ${kept} AND ${keptKind} = 1 THEN ${now}
         ELSE ${daysAgo('400')} END,
       CASE WHEN ${kept} AND ${keptKind} = 1 THEN ${now} WHEN ${kept} AND ${keptKind} = 2 THEN ${daysAgo('60')}
         ELSE NULL END,
       CASE WHEN ${kept} THEN
         CASE ${keptKind} WHEN 2 THEN ${daysAgo('60')} WHEN 3 THEN ${daysAgo('5')} WHEN 4 THEN ${daysAgo('29')}
           WHEN 5 THEN ${daysAgo('1')} ELSE NULL END
       ELSE ${daysAgo(`31 + n.n % 300`)} END,
       CASE WHEN NOT (${kept}) AND n.n % 3 = 0 THEN 0 WHEN NOT (${kept}) AND n.n % 3 = 1 THEN 1 ELSE NULL END
     FROM ${await numbers(oldJobs + Math.floor(oldJobs / (KEPT_EVERY - 1)))}
     ORDER BY n.n`,
  );
  const line = mysql ? "CONCAT('job ', j.id, ' line ', s.n)" : "'job ' || j.id || ' line ' || s.n";
  await sqlOf(db).query(
    `INSERT INTO JobStatuses (jobId, seq, stream, output)
     SELECT j.id, s.n, ${asEnum("CASE s.n % 3 WHEN 0 THEN 'stderr' WHEN 1 THEN 'stdout' ELSE 'system' END", 'enum_JobStatuses_stream')}, ${line}
     FROM Jobs j CROSS JOIN ${(await numbers(LINES)).replace(/ AS n$/, ' AS s')}
     WHERE j.createdBy IN ('old', 'kept')
     ORDER BY j.id, s.n`,
  );
}

const count = async (sql: string) =>
  Number((await sqlOf(db).query<{ c: number }>(sql, { type: QueryTypes.SELECT }))[0].c);

/** Every column of the kept jobs and of their output, to compare before and after. */
async function keptRows(): Promise<{ jobs: object[]; output: object[] }> {
  const jobs = await sqlOf(db).query("SELECT * FROM Jobs WHERE createdBy = 'kept' ORDER BY id", {
    type: QueryTypes.SELECT,
  });
  const output = await sqlOf(db).query(
    "SELECT s.* FROM JobStatuses s JOIN Jobs j ON j.id = s.jobId WHERE j.createdBy = 'kept' ORDER BY s.id",
    { type: QueryTypes.SELECT },
  );
  return { jobs, output };
}

interface Statement {
  sql: string;
  rows: number | undefined;
}

/** `target` with every query prune makes recorded (and the rows each changed), counting job batches. */
function recording(target: Database, statements: Statement[], jobBatches: { done: number }): Database {
  const sequelize = target.sequelize;
  const query = sequelize.query.bind(sequelize) as (sql: string, options?: object) => Promise<unknown>;
  const spy = Object.create(sequelize, {
    query: {
      value: async (sql: string, options?: { type?: string; transaction?: unknown }) => {
        expect(options?.transaction).toBeUndefined();
        const result = await query(sql, options);
        const deletes = /^\s*DELETE\b/i.test(sql);
        statements.push({ sql, rows: deletes ? Number(result) : undefined });
        if (/^\s*DELETE FROM [`"]?Jobs\b/i.test(sql)) jobBatches.done++;
        return result;
      },
    },
  }) as Database['sequelize'];
  return { ...target, sequelize: spy };
}

/**
 * The API and a runner, on their own connection, while prune runs: enqueue a job, claim every other
 * one and write a line of its output, and look at the smallest old id still visible, until `stop`.
 */
async function keepWriting(
  writer: Database,
  stop: { now: boolean },
  jobBatches: { done: number },
): Promise<{ jobs: number; writes: number; batchesSeen: Set<number>; oldestSeen: Set<number> }> {
  const now = writer.dialect === 'sqlite' ? "strftime('%Y-%m-%d %H:%M:%f', 'now')" : writer.driver.now;
  const seen = { jobs: 0, writes: 0, batchesSeen: new Set<number>(), oldestSeen: new Set<number>() };
  while (!stop.now) {
    await sqlOf(writer).query("INSERT INTO Jobs (task, params, createdBy) VALUES ('echo', '{}', 'writer')");
    const [{ id }] = await sqlOf(writer).query<{ id: number }>(
      "SELECT MAX(id) AS id FROM Jobs WHERE createdBy = 'writer'",
      { type: QueryTypes.SELECT },
    );
    seen.writes++;
    if (seen.jobs++ % 2 === 1) {
      await sqlOf(writer).query(
        `UPDATE Jobs SET status = 'running', runnerId = 'writer', startedAt = ${now}, heartbeatAt = ${now}
         WHERE id = :id AND status = 'pending'`,
        { replacements: { id } },
      );
      await sqlOf(writer).query(
        "INSERT INTO JobStatuses (jobId, seq, stream, output) VALUES (:id, 1, 'stdout', 'claimed')",
        { replacements: { id } },
      );
      seen.writes += 2;
    }
    seen.batchesSeen.add(jobBatches.done);
    const [{ oldest }] = await sqlOf(writer).query<{ oldest: number | null }>(
      "SELECT MIN(id) AS oldest FROM Jobs WHERE createdBy = 'old'",
      { type: QueryTypes.SELECT },
    );
    seen.oldestSeen.add(Number(oldest));
  }
  return seen;
}

interface TrxWatch {
  samples: number;
  transactions: Set<string>;
  maxRowsModified: number;
  maxRowsLocked: number;
  idle: number; // a transaction of prune's connection seen between statements
}

/**
 * MariaDB: polls INNODB_TRX from another connection for the transactions of prune's connection.
 * InnoDB refreshes that table only when it was not read in the last 100 ms, hence the pause.
 */
async function watchTransactions(connectionId: number, stop: { now: boolean }): Promise<TrxWatch> {
  const watch: TrxWatch = { samples: 0, transactions: new Set(), maxRowsModified: 0, maxRowsLocked: 0, idle: 0 };
  for (; !stop.now; await sleep(150)) {
    const rows = await sqlOf(db).query<{ id: string; modified: number; locked: number; query: string | null }>(
      `SELECT trx_id AS id, trx_rows_modified AS modified, trx_rows_locked AS locked, trx_query AS query
       FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = :connectionId`,
      { type: QueryTypes.SELECT, replacements: { connectionId } },
    );
    watch.samples++;
    for (const trx of rows) {
      watch.transactions.add(String(trx.id));
      watch.maxRowsModified = Math.max(watch.maxRowsModified, Number(trx.modified));
      watch.maxRowsLocked = Math.max(watch.maxRowsLocked, Number(trx.locked));
      if (trx.query === null) watch.idle++;
    }
  }
  return watch;
}

test(`prune on ${OLD_JOBS} finished jobs × ${LINES} output rows keeps pending and running jobs, one batch a transaction`, async () => {
  const started = Date.now();
  await seedAtScale();
  const seeded = Date.now();
  expect(await count("SELECT COUNT(*) AS c FROM Jobs WHERE createdBy = 'old'")).toBe(OLD_JOBS);
  expect(
    await count("SELECT COUNT(*) AS c FROM JobStatuses s JOIN Jobs j ON j.id = s.jobId WHERE j.createdBy = 'old'"),
  ).toBe(OLD_JOBS * LINES);
  const before = await keptRows();
  expect(before.jobs).toHaveLength(OLD_JOBS / (KEPT_EVERY - 1));
  expect(new Set(before.jobs.map((j) => (j as { status: string }).status))).toEqual(
    new Set(['pending', 'running', 'success', 'failure', 'cancelled']),
  );

  // Prune on a handle of its own (one connection), with every SQL text the driver sends logged.
  const sent: string[] = [];
  const pruneDb = createDatabase(config, { poolMax: 1, logging: (sql) => sent.push(sql) });
  const writerDb = createDatabase(config, { poolMax: 1 });
  const statements: Statement[] = [];
  const jobBatches = { done: 0 };
  const stop = { now: false };
  try {
    const mysql = db.dialect === 'mysql';
    const connectionId = async () =>
      Number(
        (await sqlOf(pruneDb).query<{ id: number }>('SELECT CONNECTION_ID() AS id', { type: QueryTypes.SELECT }))[0].id,
      );
    const pruneConnection = mysql ? await connectionId() : 0;
    if (mysql) {
      const [{ autocommit }] = await sqlOf(pruneDb).query<{ autocommit: number }>('SELECT @@autocommit AS autocommit', {
        type: QueryTypes.SELECT,
      });
      expect(Number(autocommit)).toBe(1);
    }
    sent.length = 0;
    const writing = keepWriting(writerDb, stop, jobBatches);
    const watching = mysql ? watchTransactions(pruneConnection, stop) : undefined;
    // Awaited below; until then a failure must not count as unhandled.
    writing.catch(() => {});
    watching?.catch(() => {});
    const pruning = Date.now();
    const result = await pruneFinishedJobs(recording(pruneDb, statements, jobBatches), CUTOFF, {
      jobBatch: JOB_BATCH,
      rowBatch: ROW_BATCH,
    }).finally(() => (stop.now = true));
    const pruned = Date.now();
    const written = await writing;
    const watched = await watching;
    if (mysql) expect(await connectionId()).toBe(pruneConnection); // the watcher watched the right connection

    expect(result).toEqual({ jobs: OLD_JOBS, outputRows: OLD_JOBS * LINES, groups: 0, fires: 0 });

    // What reached the driver: no transaction control at all, so each statement committed on its own...
    expect(sent.length).toBeGreaterThan(0);
    expect(
      sent.filter((line) => /\b(BEGIN|START TRANSACTION|COMMIT|ROLLBACK|SAVEPOINT|autocommit)\b/i.test(line)),
    ).toEqual([]);
    // ...and none of them changed more than one batch.
    const outputDeletes = statements.filter((s) => /^\s*DELETE FROM [`"]?JobStatuses\b/i.test(s.sql));
    const jobDeletes = statements.filter((s) => /^\s*DELETE FROM [`"]?Jobs\b/i.test(s.sql));
    expect(Math.max(...outputDeletes.map((s) => s.rows ?? Infinity))).toBe(ROW_BATCH);
    expect(Math.max(...jobDeletes.map((s) => s.rows ?? Infinity))).toBe(JOB_BATCH);
    expect(jobDeletes).toHaveLength(OLD_JOBS / JOB_BATCH);
    expect(outputDeletes.reduce((sum, s) => sum + (s.rows ?? 0), 0)).toBe(OLD_JOBS * LINES);

    // From another connection: prune's deletions became visible batch by batch, and the writer was
    // never held up for long: it committed writes during most of prune's batches.
    expect(written.oldestSeen.size).toBeGreaterThan(OLD_JOBS / JOB_BATCH / 4);
    expect(written.batchesSeen.size).toBeGreaterThan(OLD_JOBS / JOB_BATCH / 2);
    expect(written.writes).toBeGreaterThan(OLD_JOBS / JOB_BATCH);

    // MariaDB, seen in INNODB_TRX: many separate transactions, none larger than a batch, none left
    // open between statements. A job batch's DELETE also locks, through the foreign key's cascade,
    // the batch's own output rows it has just deleted (not yet purged): LINES + 3 a job before the
    // serial-group migration. Since it (two more indexes on Jobs, one of them on status) MariaDB
    // reports 9,500-13,900 for a 500-job batch, varying run to run, cause not yet found; since the
    // quotas' jobs_owner_status (a third index holding status) up to 20,530 in a CI run. The bound is
    // four batches' worth until the cause is found (README, "Operations" has the open question):
    // what it guards is that a transaction holds one batch's locks, not the table's (1,100,000 rows).
    if (watched) {
      expect(watched.transactions.size).toBeGreaterThanOrEqual(10);
      expect(watched.maxRowsModified).toBeGreaterThan(0);
      expect(watched.maxRowsModified).toBeLessThanOrEqual(Math.max(ROW_BATCH, JOB_BATCH));
      expect(watched.maxRowsLocked).toBeLessThanOrEqual(4 * JOB_BATCH * (LINES + 3));
      expect(watched.idle).toBe(0);
    }

    // Nothing finished and old is left; the kept jobs and their output are exactly as they were.
    expect(await count("SELECT COUNT(*) AS c FROM Jobs WHERE createdBy = 'old'")).toBe(0);
    expect(
      await count(
        `SELECT COUNT(*) AS c FROM Jobs WHERE status IN ('success', 'failure', 'cancelled') AND finishedAt < ${
          mysql || db.dialect === 'postgres'
            ? db.driver.ago(CUTOFF * 1000)
            : `strftime('%Y-%m-%d %H:%M:%f', 'now', '-${CUTOFF} seconds')`
        }`,
      ),
    ).toBe(0);
    expect(
      await count('SELECT COUNT(*) AS c FROM JobStatuses s LEFT JOIN Jobs j ON j.id = s.jobId WHERE j.id IS NULL'),
    ).toBe(0);
    expect(await keptRows()).toEqual(before);
    // So are the writer's pending and running jobs and its output.
    expect(await count("SELECT COUNT(*) AS c FROM Jobs WHERE createdBy = 'writer'")).toBe(written.jobs);
    expect(await count("SELECT COUNT(*) AS c FROM Jobs WHERE createdBy = 'writer' AND status = 'running'")).toBe(
      Math.floor(written.jobs / 2),
    );
    expect(
      await count("SELECT COUNT(*) AS c FROM JobStatuses s JOIN Jobs j ON j.id = s.jobId WHERE j.createdBy = 'writer'"),
    ).toBe(Math.floor(written.jobs / 2));

    console.log(
      `prune at scale (${db.dialect}): seed ${seeded - started} ms, prune ${pruned - pruning} ms, ` +
        `${statements.length} statements (${jobDeletes.length} job batches, ${outputDeletes.length} output batches); ` +
        `writer: ${written.writes} writes, during ${written.batchesSeen.size} batches, ` +
        `${written.oldestSeen.size} distinct oldest ids seen` +
        (watched
          ? `; INNODB_TRX: ${watched.samples} samples, ${watched.transactions.size} transactions, ` +
            `max rows modified ${watched.maxRowsModified}, max rows locked ${watched.maxRowsLocked}, idle ${watched.idle}`
          : ''),
    );
  } finally {
    stop.now = true;
    await pruneDb.close();
    await writerDb.close();
  }
}, 300_000);

(dialect === 'mysql' ? test : test.skip)(
  'on MariaDB prune locks no row of a job it keeps, even when the planner would scan the whole table',
  async () => {
    const RUNNING_LINES = 50_000;
    const QUEUED = 20_000;
    // Statistics frozen while the table held one job's output (as right after a bulk load, before
    // InnoDB recalculates them): the planner then takes `jobId IN (…500 jobs…)` for the whole table.
    // The running job's many lines keep each batch a small part of the table, as in a real one.
    await sqlOf(db).query('ALTER TABLE JobStatuses STATS_AUTO_RECALC = 0');
    const pruneDb = createDatabase(config, { poolMax: 1 });
    const runnerDb = createDatabase(config, { poolMax: 1 });
    try {
      await sqlOf(db).query(
        "INSERT INTO Jobs (task, params, createdBy, status, startedAt) VALUES ('echo', '{}', 'runner', 'running', NOW(3))",
      );
      const [{ running }] = await sqlOf(db).query<{ running: number }>('SELECT MAX(id) AS running FROM Jobs', {
        type: QueryTypes.SELECT,
      });
      await sqlOf(db).query(
        `INSERT INTO JobStatuses (jobId, seq, stream, output) SELECT :running, n.n, 'stdout', 'still running'
         FROM ${await numbers(RUNNING_LINES)}`,
        { replacements: { running } },
      );
      await sqlOf(db).query('ANALYZE TABLE JobStatuses');
      await seedAtScale(2000);
      // A queue, so that a batch of jobs is a small part of Jobs too.
      await sqlOf(db).query(
        `INSERT INTO Jobs (task, params, createdBy) SELECT 'echo', '{}', 'queue' FROM ${await numbers(QUEUED)}`,
      );
      const batch = (
        await sqlOf(db).query<{ id: number }>(
          `SELECT id FROM Jobs WHERE createdBy = 'old' ORDER BY id LIMIT ${JOB_BATCH}`,
          { type: QueryTypes.SELECT },
        )
      ).map((r) => r.id);
      const [plan] = await sqlOf(db).query<{ type: string }>(
        `EXPLAIN DELETE FROM JobStatuses WHERE jobId IN (${batch.join(', ')}) LIMIT ${ROW_BATCH}`,
        { type: QueryTypes.SELECT },
      );
      expect(plan.type).toBe('ALL'); // the premise: a locking statement on this condition would scan everything
      const before = await keptRows();

      // A runner is writing a line of the running job, not yet committed, while prune runs.
      const writing = await runnerDb.sequelize.transaction();
      await sqlOf(runnerDb).query(
        "INSERT INTO JobStatuses (jobId, seq, stream, output) VALUES (:running, :seq, 'stdout', 'mid-write')",
        { replacements: { running, seq: RUNNING_LINES + 1 }, transaction: writing },
      );
      // Waiting for the runner's lock would fail prune after a second instead of hanging the test.
      await sqlOf(pruneDb).query('SET SESSION innodb_lock_wait_timeout = 1');
      const result = await pruneFinishedJobs(pruneDb, CUTOFF, { jobBatch: JOB_BATCH, rowBatch: ROW_BATCH })
        .catch((err: Error) => {
          throw new Error(`prune waited for a lock the runner holds: ${err.message}`, { cause: err });
        })
        .finally(() => writing.commit());

      expect(result).toEqual({ jobs: 2000, outputRows: 2000 * LINES, groups: 0, fires: 0 });
      expect(await count("SELECT COUNT(*) AS c FROM Jobs WHERE createdBy = 'old'")).toBe(0);
      expect(await keptRows()).toEqual(before);
      const [last] = await sqlOf(db).query<{ total: number; seq: number; output: string }>(
        `SELECT (SELECT COUNT(*) FROM JobStatuses WHERE jobId = :running) AS total, seq, output
         FROM JobStatuses WHERE jobId = :running ORDER BY seq DESC LIMIT 1`,
        { type: QueryTypes.SELECT, replacements: { running } },
      );
      expect({ ...last, total: Number(last.total) }).toEqual({
        total: RUNNING_LINES + 1,
        seq: RUNNING_LINES + 1,
        output: 'mid-write',
      });
    } finally {
      await sqlOf(db).query('ALTER TABLE JobStatuses STATS_AUTO_RECALC = DEFAULT');
      await pruneDb.close();
      await runnerDb.close();
    }
  },
);
