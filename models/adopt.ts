// `migrate --adopt` (SPEC §14): the container-creator's own Jobs and JobStatuses become the queue's,
// in place. Old jobs keep their ids, owners, statuses and output rows (in order); the rest of the
// queue's schema is installed beside them, queue-only (the host's Users and Sessions are never touched).
// An old command is never run: a pending job runs only as the task template its command maps to.
import { DataTypes, Op, QueryTypes, type QueryInterface, type Transaction } from 'sequelize';
import type { Database } from './database';
import type { JobParams, JobStatus } from './models';
import {
  FIRST_MIGRATION,
  HISTORY_TABLE,
  MigrationRefusedError,
  createMigrator,
  historyStorage,
  installedLayout,
  migrate,
  recordedMigrations,
  tableNames,
} from './migrate';
import { nowDefault } from './migration-helpers';

/** The queue's second migration: with the first, what the conversion stands for. */
export const SECOND_MIGRATION = '20261123000002-create-jobstatuses.js';

/**
 * The task of an old job whose command maps to no template. Never a template's name (those begin
 * with a letter or digit), so it can be neither retried nor run again.
 */
export const LEGACY_TASK = '(legacy)';

/** Who cancelled an old pending job that maps to no template. */
export const ADOPT_ACTOR = 'migrate --adopt';

/** What an old job's command is as a job of ours (a template's), or why it is none. */
export type LegacyMapping = (
  command: string,
) =>
  | { task: string; params: Record<string, unknown>; command: string; maxAttempts: number }
  | { task: null; reason: string };

export interface AdoptCounts {
  jobs: number;
  outputRows: number;
  /** Pending jobs now pending jobs of a template. */
  pendingMapped: number;
  /** Pending jobs that map to no template: cancelled, error `not_adopted`. */
  pendingNotRun: number;
  /** Jobs the old runner left running: failure, error `runner_lost`. */
  runningLost: number;
  /** Finished jobs whose command maps to a template (they can be run again as that task). */
  finishedMapped: number;
}

export interface AdoptReport {
  /** 'converted': the old tables were converted now; 'already': they are the queue's already. */
  outcome: 'converted' | 'already';
  counts: AdoptCounts;
  /** Queue migrations applied after the conversion (queue-only). */
  applied: string[];
}

const OLD_JOBS = ['id', 'command', 'status', 'createdAt', 'updatedAt'];
const OLD_OUTPUT = ['id', 'jobId', 'output', 'createdAt'];
const PAGE = 500;

type Run = <T>(work: (transaction: Transaction | undefined) => Promise<T>) => Promise<T>;

/** Converts a database laid out as the container-creator's; refuses (changing nothing) any other. */
export async function adopt(db: Database, mapping: LegacyMapping, log: (line: string) => void): Promise<AdoptReport> {
  const tables = await tableNames(db);
  const layout = await installedLayout(db, tables);
  if (layout === 'full') {
    throw new MigrationRefusedError(
      'container-jobs is installed here with its own login tables (history in SequelizeMeta): nothing to adopt',
    );
  }
  const history = await recordedMigrations(db, HISTORY_TABLE['queue-only'], tables);
  const transactionally: Run = (work) => db.sequelize.transaction((t) => work(t));
  if (history.includes(SECOND_MIGRATION)) {
    log("Jobs and JobStatuses are the queue's already (history in ContainerJobsMeta): nothing to convert");
    const applied = await migrate(db, log);
    return { outcome: 'already', applied, counts: await planOldJobs(db, mapping, log, transactionally) };
  }
  if (!tables.has('Jobs') || !tables.has('JobStatuses')) {
    throw new MigrationRefusedError(
      'no Jobs and JobStatuses tables here: nothing to adopt (a new install is `npx container-jobs migrate --queue-only`)',
    );
  }
  const qi = db.sequelize.getQueryInterface();
  const jobColumns = Object.keys(await qi.describeTable('Jobs'));
  const outputColumns = Object.keys(await qi.describeTable('JobStatuses'));
  if (!OLD_JOBS.every((c) => jobColumns.includes(c)) || !OLD_OUTPUT.every((c) => outputColumns.includes(c))) {
    throw new MigrationRefusedError(
      `Jobs (${jobColumns.join(', ')}) and JobStatuses (${outputColumns.join(', ')}) are not laid out as the ` +
        `container-creator's (Jobs: ${OLD_JOBS.join(', ')}, createdBy; JobStatuses: ${OLD_OUTPUT.join(', ')}): not adopted`,
    );
  }
  log(await describeOldTables(db));
  const { adoption } = db.driver;
  if (adoption.method === 'rebuild') return rebuild(db, mapping, log, jobColumns.includes('createdBy'));
  const convert = (t: Transaction | undefined) => alterInPlace(db, t);
  if (adoption.transactionalDdl) await transactionally(convert);
  else await convert(undefined);
  const storage = historyStorage(db, HISTORY_TABLE['queue-only']);
  for (const name of [FIRST_MIGRATION, SECOND_MIGRATION]) {
    if (!(await storage.executed()).includes(name)) await storage.logMigration({ name });
  }
  log('converted Jobs and JobStatuses in place');
  const applied = await migrate(db, log);
  return { outcome: 'converted', applied, counts: await planOldJobs(db, mapping, log, transactionally) };
}

function quoter(db: Database): (name: string) => string {
  const qi = db.sequelize.getQueryInterface();
  return (name) => qi.quoteIdentifier(name);
}

async function describeOldTables(db: Database): Promise<string> {
  const q = quoter(db);
  const byStatus = await db.sequelize.query<{ status: string; n: number | string }>(
    `SELECT ${q('status')} AS status, COUNT(*) AS n FROM ${q('Jobs')} GROUP BY ${q('status')}`,
    { type: QueryTypes.SELECT },
  );
  const [rows] = await db.sequelize.query<{ n: number | string }>(`SELECT COUNT(*) AS n FROM ${q('JobStatuses')}`, {
    type: QueryTypes.SELECT,
  });
  const total = byStatus.reduce((sum, r) => sum + Number(r.n), 0);
  const statuses = byStatus.map((r) => `${r.status} ${Number(r.n)}`).join(', ');
  return `found the container-creator's Jobs (${total} job(s)${statuses ? `: ${statuses}` : ''}) and JobStatuses (${Number(rows.n)} row(s))`;
}

/**
 * SQLite: rename the old tables away, make the queue's (its own migrations, then the rest of the
 * queue-only set), copy the rows over with their ids, drop the old tables, settle the old jobs, check
 * the foreign keys, commit — all in one transaction on one connection: a failure changes nothing.
 */
async function rebuild(
  db: Database,
  mapping: LegacyMapping,
  log: (line: string) => void,
  hasCreatedBy: boolean,
): Promise<AdoptReport> {
  const session = db.driver.adoption.session!;
  const qi = db.sequelize.getQueryInterface();
  const q = quoter(db);
  const run = (sql: string) => db.sequelize.query(sql);
  for (const statement of db.driver.beforeMigrate) await run(statement);
  for (const statement of session.before) await run(statement);
  try {
    await run(session.begin);
    try {
      await qi.renameTable('JobStatuses', 'JobStatuses_adopt_old');
      await qi.renameTable('Jobs', 'Jobs_adopt_old');
      const migrator = createMigrator(db, log, 'queue-only');
      await migrator.up({ to: SECOND_MIGRATION });
      await run(
        `INSERT INTO ${q('Jobs')} (${['id', 'task', 'params', 'command', 'status', 'createdBy', 'runAt', 'createdAt', 'updatedAt'].map(q).join(', ')}) ` +
          `SELECT ${q('id')}, '${LEGACY_TASK}', '{}', ${q('command')}, ${q('status')}, ${hasCreatedBy ? q('createdBy') : 'NULL'}, ` +
          `${q('createdAt')}, ${q('createdAt')}, ${q('updatedAt')} FROM ${q('Jobs_adopt_old')}`,
      );
      await run(
        `INSERT INTO ${q('JobStatuses')} (${['id', 'jobId', 'seq', 'stream', 'output', 'createdAt', 'updatedAt'].map(q).join(', ')}) ` +
          `SELECT ${q('id')}, ${q('jobId')}, ROW_NUMBER() OVER (PARTITION BY ${q('jobId')} ORDER BY ${q('id')}), 'stdout', ` +
          `COALESCE(${q('output')}, ''), ${q('createdAt')}, COALESCE(${q('updatedAt')}, ${q('createdAt')}) ` +
          `FROM ${q('JobStatuses_adopt_old')} WHERE ${q('jobId')} IN (SELECT ${q('id')} FROM ${q('Jobs_adopt_old')})`,
      );
      await qi.dropTable('JobStatuses_adopt_old');
      await qi.dropTable('Jobs_adopt_old');
      log('converted Jobs and JobStatuses (made again, rows copied with their ids)');
      const applied = (await migrator.up()).map((m) => m.name);
      const counts = await planOldJobs(db, mapping, log, (work) => work(undefined));
      const [problems] = await db.sequelize.query(session.check);
      if ((problems as unknown[]).length > 0) {
        throw new Error(
          `the foreign key check found ${(problems as unknown[]).length} row(s) pointing nowhere; nothing was changed`,
        );
      }
      await run(session.commit);
      return { outcome: 'converted', applied, counts };
    } catch (err) {
      await run(session.rollback).catch(() => {});
      throw err;
    }
  } finally {
    for (const statement of session.after) await run(statement);
  }
}

/**
 * MySQL (and PostgreSQL): the old tables get the queue's columns, defaults and indexes by ALTER
 * TABLE, so the host's own foreign keys to Jobs (Containers.creationJobId) stay as they are. Each
 * step looks before it changes, so a run stopped half-way is finished by running it again.
 */
async function alterInPlace(db: Database, transaction: Transaction | undefined): Promise<void> {
  const qi = db.sequelize.getQueryInterface();
  const q = quoter(db);
  const options = { transaction };
  const { INTEGER, STRING, JSON: JSONTYPE, ENUM, DATE, TEXT } = DataTypes;
  const now = nowDefault(qi);
  const timestamps = { type: DATE(3), allowNull: false, defaultValue: now };

  const jobs = await qi.describeTable('Jobs', options as never);
  const addJobColumn = async (name: string, spec: Parameters<QueryInterface['addColumn']>[2]) => {
    if (!(name in jobs)) await qi.addColumn('Jobs', name, spec, options);
  };
  await addJobColumn('task', { type: STRING(100), allowNull: true });
  await addJobColumn('params', { type: JSONTYPE, allowNull: true });
  await addJobColumn('createdBy', { type: STRING(255), allowNull: true });
  await addJobColumn('priority', { type: INTEGER, allowNull: false, defaultValue: 0 });
  await addJobColumn('runAt', { type: DATE(3), allowNull: true });
  await addJobColumn('runnerId', { type: STRING(255), allowNull: true });
  for (const name of ['heartbeatAt', 'startedAt', 'finishedAt', 'cancelRequestedAt']) {
    await addJobColumn(name, { type: DATE(3), allowNull: true });
  }
  await addJobColumn('cancelledBy', { type: STRING(255), allowNull: true });
  await addJobColumn('exitCode', { type: INTEGER, allowNull: true });
  await addJobColumn('signal', { type: STRING(32), allowNull: true });
  await addJobColumn('error', { type: STRING(255), allowNull: true });
  await db.sequelize.query(
    `UPDATE ${q('Jobs')} SET ${q('task')} = :task, ${q('params')} = '{}' WHERE ${q('task')} IS NULL`,
    { replacements: { task: LEGACY_TASK }, transaction },
  );
  await db.sequelize.query(`UPDATE ${q('Jobs')} SET ${q('runAt')} = ${q('createdAt')} WHERE ${q('runAt')} IS NULL`, {
    transaction,
  });
  await qi.changeColumn('Jobs', 'task', { type: STRING(100), allowNull: false }, options);
  await qi.changeColumn('Jobs', 'params', { type: JSONTYPE, allowNull: false }, options);
  await qi.changeColumn('Jobs', 'command', { type: STRING(2000), allowNull: true }, options);
  await qi.changeColumn('Jobs', 'runAt', { type: DATE(3), allowNull: false, defaultValue: now }, options);
  await qi.changeColumn('Jobs', 'createdAt', timestamps, options);
  await qi.changeColumn('Jobs', 'updatedAt', timestamps, options);
  await addIndexes(db, 'Jobs', transaction, [
    { name: 'jobs_status_runat_priority_id', fields: ['status', 'runAt', 'priority', 'id'] },
    { name: 'jobs_claim_order', fields: ['status', { name: 'priority', order: 'DESC' }, 'id'] },
    { name: 'jobs_createdby_id', fields: ['createdBy', 'id'] },
    { name: 'jobs_status_heartbeatat', fields: ['status', 'heartbeatAt'] },
  ]);

  const output = await qi.describeTable('JobStatuses', options as never);
  if (!('seq' in output)) await qi.addColumn('JobStatuses', 'seq', { type: INTEGER, allowNull: true }, options);
  const streams = ENUM('stdout', 'stderr', 'system');
  if (!('stream' in output)) await qi.addColumn('JobStatuses', 'stream', { type: streams, allowNull: true }, options);
  await db.sequelize.query(`UPDATE ${q('JobStatuses')} SET ${q('stream')} = 'stdout' WHERE ${q('stream')} IS NULL`, {
    transaction,
  });
  await db.sequelize.query(`UPDATE ${q('JobStatuses')} SET ${q('output')} = '' WHERE ${q('output')} IS NULL`, {
    transaction,
  });
  if (db.driver.adoption.numberOutput) await db.sequelize.query(db.driver.adoption.numberOutput, { transaction });
  await qi.changeColumn('JobStatuses', 'seq', { type: INTEGER, allowNull: false }, options);
  await qi.changeColumn('JobStatuses', 'stream', { type: streams, allowNull: false }, options);
  await qi.changeColumn('JobStatuses', 'output', { type: TEXT, allowNull: false }, options);
  await qi.changeColumn('JobStatuses', 'createdAt', timestamps, options);
  if ('updatedAt' in output) await qi.changeColumn('JobStatuses', 'updatedAt', timestamps, options);
  else await qi.addColumn('JobStatuses', 'updatedAt', timestamps, options);
  if (db.driver.adoption.widenOutputId) await db.sequelize.query(db.driver.adoption.widenOutputId, { transaction });
  await addIndexes(db, 'JobStatuses', transaction, [
    { name: 'jobstatuses_jobid_id', fields: ['jobId', 'id'] },
    { name: 'jobstatuses_jobid_seq', fields: ['jobId', 'seq'], unique: true },
  ]);
}

type IndexSpec = { name: string; fields: (string | { name: string; order: 'DESC' })[]; unique?: boolean };

/** The queue's indexes on `table` that it does not have yet (by name). */
async function addIndexes(db: Database, table: string, transaction: Transaction | undefined, specs: IndexSpec[]) {
  const qi = db.sequelize.getQueryInterface();
  const existing = new Set(
    ((await qi.showIndex(table, { transaction })) as { name: string }[]).map((index) => index.name),
  );
  for (const spec of specs) {
    if (!existing.has(spec.name)) await qi.addIndex(table, { ...spec, transaction });
  }
}

/**
 * Settles each old job (task still LEGACY_TASK) once: a pending one whose command maps becomes a
 * pending job of that template (its params validated), one that does not is cancelled (`not_adopted`,
 * never run); a running one (its runner is gone) ends `failure`/`runner_lost`; a finished one that
 * maps is named after its template. A `system` row says what was done to a job that changed status.
 */
async function planOldJobs(db: Database, mapping: LegacyMapping, log: (line: string) => void, run: Run) {
  const { Job, JobStatus } = db.models;
  const counts: AdoptCounts = {
    jobs: 0,
    outputRows: await JobStatus.count(),
    pendingMapped: 0,
    pendingNotRun: 0,
    runningLost: 0,
    finishedMapped: 0,
  };
  counts.jobs = await Job.count();
  const note = async (jobId: number, line: string, transaction: Transaction | undefined) => {
    const last = await JobStatus.max<number | null, JobStatus>('seq', { where: { jobId }, transaction });
    await JobStatus.create({ jobId, seq: Number(last ?? 0) + 1, stream: 'system', output: line }, { transaction });
  };
  for (let after = 0; ;) {
    const page = await Job.findAll({
      attributes: ['id', 'command', 'status'],
      where: { task: LEGACY_TASK, id: { [Op.gt]: after } },
      order: [['id', 'ASC']],
      limit: PAGE,
    });
    if (page.length === 0) break;
    for (const job of page) {
      after = Number(job.id);
      const id = Number(job.id);
      const mapped = mapping(job.command ?? '');
      const as =
        mapped.task === null
          ? {}
          : { task: mapped.task, params: mapped.params as JobParams, maxAttempts: mapped.maxAttempts };
      await run(async (transaction) => {
        if (job.status === 'pending' && mapped.task !== null) {
          await Job.update({ ...as, command: mapped.command, runAt: new Date() }, { where: { id }, transaction });
          counts.pendingMapped++;
        } else if (job.status === 'pending' && mapped.task === null) {
          await Job.update(
            { status: 'cancelled', error: 'not_adopted', cancelledBy: ADOPT_ACTOR, finishedAt: new Date() },
            { where: { id }, transaction },
          );
          await note(id, `not run: container-jobs took over and ${mapped.reason}`, transaction);
          counts.pendingNotRun++;
        } else if (job.status === 'running') {
          await Job.update(
            { ...as, status: 'failure', error: 'runner_lost', finishedAt: new Date() },
            { where: { id }, transaction },
          );
          await note(id, 'its runner was stopped when container-jobs took over; how it ended is unknown', transaction);
          counts.runningLost++;
        } else if (mapped.task !== null) {
          await Job.update(as, { where: { id }, transaction });
          counts.finishedMapped++;
        }
      });
    }
  }
  log(
    `old jobs: ${counts.pendingMapped} pending mapped to a task, ${counts.pendingNotRun} pending not run (cancelled, not_adopted), ` +
      `${counts.runningLost} running ended (runner_lost), ${counts.finishedMapped} finished named after a task`,
  );
  return counts;
}
