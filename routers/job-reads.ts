// What the API reads about jobs, always scoped to what the caller may see inside the SQL WHERE.
import { col, fn, IndexHints, Op, where as sqlWhere, type WhereOptions } from 'sequelize';
import type { Database } from '../models/database';
import { JOB_STATUSES, type Job, type JobStatus, type JobStatusName } from '../models/models';

export interface Viewer {
  username: string;
  isAdmin: boolean;
}

/** Owner scoping: a user sees jobs they created; an admin sees all, including createdBy NULL. */
function visibleTo(viewer: Viewer, where: Record<string | symbol, unknown> = {}): WhereOptions<Job> {
  return (viewer.isAdmin ? where : { ...where, createdBy: viewer.username }) as WhereOptions<Job>;
}

export function jobJson(job: Job) {
  return {
    id: Number(job.id),
    task: job.task,
    params: job.params,
    command: job.command,
    status: job.status,
    createdBy: job.createdBy,
    priority: Number(job.priority),
    runAt: job.runAt,
    groupKey: job.groupKey ?? null,
    runnerId: job.runnerId,
    heartbeatAt: job.heartbeatAt,
    startedAt: job.startedAt,
    finishedAt: job.finishedAt,
    cancelRequestedAt: job.cancelRequestedAt,
    cancelledBy: job.cancelledBy,
    exitCode: job.exitCode === null ? null : Number(job.exitCode),
    signal: job.signal,
    error: job.error,
    attempt: Number(job.attempt ?? 1),
    maxAttempts: Number(job.maxAttempts ?? 1),
    lastError: job.lastError ?? null,
    rerunOf: job.rerunOf === null || job.rerunOf === undefined ? null : Number(job.rerunOf),
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
  };
}

export interface OutputRowJson {
  id: number;
  jobId: number;
  stream: string;
  output: string;
  createdAt: Date;
}

/** Ids as JSON numbers: MySQL's BIGINT may come back as a string. */
function outputJson(row: JobStatus): OutputRowJson {
  return {
    id: Number(row.id),
    jobId: Number(row.jobId),
    stream: row.stream,
    output: row.output,
    createdAt: row.createdAt,
  };
}

export function findVisibleJob(db: Database, viewer: Viewer, id: number): Promise<Job | null> {
  return db.models.Job.findOne({ where: visibleTo(viewer, { id }) });
}

/**
 * How many output rows the job has: its highest line number (seq), which the unique (jobId, seq)
 * index answers with one lookup, where COUNT(*) would read every row. 0 without output.
 */
export async function countOutputLines(db: Database, jobId: number): Promise<number> {
  const max = await db.models.JobStatus.max<number | null, JobStatus>('seq', { where: { jobId } });
  return Number(max ?? 0);
}

export interface JobListQuery {
  status?: JobStatusName;
  createdBy?: string;
  /** The task's exact name. */
  task?: string;
  /** A job id (digits, "#12" too), or a piece of the task's or owner's name, any case. */
  search?: string;
  limit: number;
  offset: number;
}

/**
 * A substring test that reads the same on every database: no LIKE, so `%` and `_` are plain
 * characters (INSTR on MySQL and SQLite, STRPOS on PostgreSQL, the same arguments).
 */
function contains(db: Database, column: string, text: string): WhereOptions<Job> {
  const position = db.dialect === 'postgres' ? 'STRPOS' : 'INSTR';
  return sqlWhere(fn(position, fn('LOWER', col(column)), text.toLowerCase()), Op.gt, 0) as WhereOptions<Job>;
}

/**
 * The list's WHERE, owner scoping first: a user's own name is always one of the ANDed conditions, so
 * their `createdBy`, `task` or `search` can only narrow it. `status: false` leaves the status out (counts).
 */
function listWhere(db: Database, viewer: Viewer, q: Omit<JobListQuery, 'limit' | 'offset'>): WhereOptions<Job> {
  const all: WhereOptions<Job>[] = [];
  if (!viewer.isAdmin) all.push({ createdBy: viewer.username });
  if (q.createdBy !== undefined) all.push({ createdBy: q.createdBy });
  if (q.status !== undefined) all.push({ status: q.status });
  if (q.task !== undefined) all.push({ task: q.task });
  if (q.search !== undefined) {
    const id = /^#?(\d{1,15})$/.exec(q.search)?.[1];
    const any: WhereOptions<Job>[] = [contains(db, 'task', q.search), contains(db, 'createdBy', q.search)];
    if (id !== undefined) any.unshift({ id: Number(id) });
    all.push({ [Op.or]: any } as WhereOptions<Job>);
  }
  return { [Op.and]: all } as WhereOptions<Job>;
}

/** Newest first, owner-scoped (listWhere). */
export async function listVisibleJobs(db: Database, viewer: Viewer, q: JobListQuery): Promise<Job[]> {
  return db.models.Job.findAll({
    where: listWhere(db, viewer, q),
    order: [['id', 'DESC']],
    limit: q.limit,
    offset: q.offset,
  });
}

export type StatusCounts = Record<JobStatusName, number>;

/** How many jobs of each status match the list's filter without its status, owner-scoped like the list. */
export async function countVisibleJobs(
  db: Database,
  viewer: Viewer,
  q: Omit<JobListQuery, 'limit' | 'offset' | 'status'>,
): Promise<StatusCounts> {
  const rows = (await db.models.Job.findAll({
    attributes: ['status', [fn('COUNT', col('id')), 'n']],
    where: listWhere(db, viewer, q),
    group: ['status'],
    raw: true,
  })) as unknown as { status: JobStatusName; n: number | string }[];
  const counts = Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as StatusCounts;
  for (const row of rows) if (row.status in counts) counts[row.status] = Number(row.n);
  return counts;
}

export interface OutputQuery {
  afterId?: number;
  limit: number;
  offset?: number;
  /**
   * Stop before the page's `output` passes about this many bytes (LENGTH: bytes on MySQL, characters on
   * SQLite), at least one row: a page of 16 KiB lines then never holds more than this in memory.
   */
  maxBytes?: number;
}

export interface OutputPage {
  rows: OutputRowJson[];
  /** There may be rows after these: the page was cut by `limit` or by `maxBytes`. */
  more: boolean;
}

/** The (jobId, id) index: one job's rows, already in output order. */
const OUTPUT_INDEX = 'jobstatuses_jobid_id';

/**
 * A job's output rows in output order (by id); the caller has checked the job is visible.
 * On MySQL the (jobId, id) index is forced: for `ORDER BY id LIMIT n` MariaDB otherwise walks the
 * primary key from the table's first row, expecting this job's rows spread evenly, so the first page
 * of a job stored after another big job's output read every row of that job first (seconds).
 * An offset is skipped in that index alone (it holds the ids), then only the page's rows are read.
 */
export async function readOutput(db: Database, jobId: number, q: OutputQuery): Promise<OutputRowJson[]> {
  return (await readOutputPage(db, jobId, q)).rows;
}

/** readOutput, and whether there may be more; with `maxBytes`, the row sizes are read first to choose the page. */
export async function readOutputPage(db: Database, jobId: number, q: OutputQuery): Promise<OutputPage> {
  const { JobStatus } = db.models;
  const hint = { indexHints: [{ type: IndexHints.FORCE, values: [OUTPUT_INDEX] }] };
  const where: Record<string | symbol, unknown> = { jobId };
  if (q.afterId !== undefined) where.id = { [Op.gt]: q.afterId };
  if (q.offset) {
    const [start] = await JobStatus.findAll({
      ...hint,
      attributes: ['id'],
      where: where as WhereOptions<JobStatus>,
      order: [['id', 'ASC']],
      limit: 1,
      offset: q.offset,
    });
    if (!start) return { rows: [], more: false };
    where.id = { [Op.gte]: start.id };
  }
  let limit = q.limit;
  let cut = false;
  if (q.maxBytes !== undefined) {
    const sizes = (await JobStatus.findAll({
      ...hint,
      attributes: ['id', [fn('LENGTH', col('output')), 'bytes']],
      where: where as WhereOptions<JobStatus>,
      order: [['id', 'ASC']],
      limit: q.limit,
      raw: true,
    })) as unknown as { id: number | string; bytes: number | string | null }[];
    if (sizes.length === 0) return { rows: [], more: false };
    let bytes = Number(sizes[0].bytes ?? 0);
    let n = 1;
    while (n < sizes.length && bytes + Number(sizes[n].bytes ?? 0) <= q.maxBytes)
      bytes += Number(sizes[n++].bytes ?? 0);
    cut = n < sizes.length;
    limit = n;
  }
  const rows = await JobStatus.findAll({
    ...hint,
    attributes: ['id', 'jobId', 'stream', 'output', 'createdAt'],
    where: where as WhereOptions<JobStatus>,
    order: [['id', 'ASC']],
    limit,
  });
  return { rows: rows.map(outputJson), more: cut || rows.length === q.limit };
}

export interface JobState {
  status: JobStatusName;
  exitCode: number | null;
  error: string | null;
}

export async function readJobState(db: Database, viewer: Viewer, id: number): Promise<JobState | null> {
  const job = await db.models.Job.findOne({
    attributes: ['status', 'exitCode', 'error'],
    where: visibleTo(viewer, { id }),
  });
  if (!job) return null;
  return { status: job.status, exitCode: job.exitCode === null ? null : Number(job.exitCode), error: job.error };
}
