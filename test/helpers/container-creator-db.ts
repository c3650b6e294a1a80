// A database laid out as the container-creator's own (its migrations' tables, made here by hand):
// Jobs and JobStatuses of its job-runner, its Users and Sessions, a Containers table pointing at
// Jobs, and its SequelizeMeta. Used by the queue-only and adoption tests.
import { DataTypes, QueryTypes } from 'sequelize';
import type { Database } from '../../models/database';
import { seedSqlFor } from '../../models/sql';

/** A few of the host's own migration names, as its SequelizeMeta holds them. */
export const HOST_MIGRATIONS = [
  '20251105155228-create-sessions-table.js',
  '20251117120000-create-jobs.js',
  '20251117120001-create-jobstatuses.js',
  '20251117120002-add-job-createdby.js',
  '20251121000000-create-users.js',
];

/** Its Users and Sessions (and SequelizeMeta), with a row each: what `migrate --queue-only` must leave alone. */
export async function layOutHostLogin(db: Database): Promise<void> {
  const qi = db.sequelize.getQueryInterface();
  const { INTEGER, STRING, DATE, TEXT } = DataTypes;
  await qi.createTable('SequelizeMeta', { name: { type: STRING(255), primaryKey: true, allowNull: false } });
  await qi.bulkInsert(
    'SequelizeMeta',
    HOST_MIGRATIONS.map((name) => ({ name })),
  );
  await qi.createTable('Users', {
    uidNumber: { type: INTEGER, primaryKey: true, allowNull: false },
    uid: { type: STRING(255), allowNull: false, unique: true },
    cn: { type: STRING(255), allowNull: false },
    mail: { type: STRING(255), allowNull: false, unique: true },
    userPassword: { type: STRING(255), allowNull: false },
    status: { type: STRING(50), allowNull: false, defaultValue: 'pending' },
    createdAt: { type: DATE, allowNull: false },
    updatedAt: { type: DATE, allowNull: false },
  });
  await qi.createTable('Sessions', {
    session_id: { type: STRING(32), primaryKey: true, allowNull: false },
    expires: { type: DATE, allowNull: true },
    data: { type: TEXT, allowNull: true },
    createdAt: { type: DATE, allowNull: false },
    updatedAt: { type: DATE, allowNull: false },
  });
  const at = new Date('2026-06-01T12:00:00Z');
  await qi.bulkInsert('Users', [
    {
      uidNumber: 2001,
      uid: 'alice',
      cn: 'Alice A',
      mail: 'alice@example.org',
      userPassword: 'x',
      status: 'active',
      createdAt: at,
      updatedAt: at,
    },
  ]);
  await qi.bulkInsert('Sessions', [
    {
      session_id: 'abcdefabcdefabcdefabcdefabcdef12',
      expires: at,
      data: '{"user":"alice"}',
      createdAt: at,
      updatedAt: at,
    },
  ]);
}

/** Its Jobs (with createdBy and its index), JobStatuses, and a Containers table whose creationJobId points at Jobs. */
export async function layOutHostJobs(db: Database): Promise<void> {
  const qi = db.sequelize.getQueryInterface();
  const { INTEGER, STRING, DATE, TEXT, ENUM } = DataTypes;
  await qi.createTable('Jobs', {
    id: { type: INTEGER, primaryKey: true, autoIncrement: true, allowNull: false },
    command: { type: STRING(2000), allowNull: false },
    status: {
      type: ENUM('pending', 'running', 'success', 'failure', 'cancelled'),
      allowNull: false,
      defaultValue: 'pending',
    },
    createdAt: { type: DATE, allowNull: false },
    updatedAt: { type: DATE, allowNull: false },
  });
  await qi.createTable('JobStatuses', {
    id: { type: INTEGER, primaryKey: true, autoIncrement: true, allowNull: false },
    jobId: { type: INTEGER, allowNull: false, references: { model: 'Jobs', key: 'id' }, onDelete: 'CASCADE' },
    output: { type: TEXT, allowNull: true },
    createdAt: { type: DATE, allowNull: false },
    updatedAt: { type: DATE, allowNull: false },
  });
  await qi.addColumn('Jobs', 'createdBy', { type: STRING, allowNull: true });
  await qi.addIndex('Jobs', ['createdBy']);
  await qi.createTable('Containers', {
    id: { type: INTEGER, primaryKey: true, autoIncrement: true, allowNull: false },
    hostname: { type: STRING(255), allowNull: false },
    creationJobId: {
      type: INTEGER,
      allowNull: true,
      references: { model: 'Jobs', key: 'id' },
      onUpdate: 'CASCADE',
      onDelete: 'SET NULL',
    },
    createdAt: { type: DATE, allowNull: false },
    updatedAt: { type: DATE, allowNull: false },
  });
}

export interface OldJob {
  command: string;
  status: 'pending' | 'running' | 'success' | 'failure' | 'cancelled';
  createdBy: string | null;
  /** Output rows as its job-runner wrote them: chunks of text, often with their newline. */
  output?: (string | null)[];
}

/** Inserts old jobs and their output as the host's job-runner did; returns their ids in order. */
export async function insertOldJobs(db: Database, jobs: OldJob[]): Promise<number[]> {
  const qi = db.sequelize.getQueryInterface();
  const ids: number[] = [];
  let minute = 0;
  for (const job of jobs) {
    const at = new Date(Date.UTC(2026, 6, 1, 9, minute++));
    await qi.bulkInsert('Jobs', [
      { command: job.command, status: job.status, createdBy: job.createdBy, createdAt: at, updatedAt: at },
    ]);
    const sql = seedSqlFor(db.sequelize.getDialect(), 'SELECT MAX(id) AS id FROM Jobs');
    const [row] = await db.sequelize.query<{ id: number | string }>(sql, { type: QueryTypes.SELECT });
    const id = Number(row.id);
    ids.push(id);
    for (const output of job.output ?? []) {
      await qi.bulkInsert('JobStatuses', [{ jobId: id, output, createdAt: at, updatedAt: at }]);
    }
  }
  return ids;
}

/** A table's rows in key order, every column, as plain values (to compare before and after). */
export async function tableRows(db: Database, table: string, key: string): Promise<unknown[]> {
  const qi = db.sequelize.getQueryInterface();
  const sql = `SELECT * FROM ${qi.quoteIdentifier(table)} ORDER BY ${qi.quoteIdentifier(key)}`;
  const rows = await db.sequelize.query<Record<string, unknown>>(sql, { type: QueryTypes.SELECT });
  return rows.map((row) => JSON.parse(JSON.stringify(row)));
}
