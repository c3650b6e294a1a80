// Schedules in the database: each fire time of a schedule makes at most one job, however many
// runners on however many hosts try at once. The guarantee is JobScheduleFires' primary key
// (schedule, fire time): the first runner's insert wins, every other insert of that pair is
// skipped. No runner leads; any of them may fire, the database keeps the count.
import { insertJobs, type NewJob } from './enqueue';
import type { JobStatusName } from './models';
import type { Queue } from './queue';
import { readTime, sqlIn, sqlTime } from './sql';

export type FireResult =
  | { result: 'created'; jobId: number }
  /** Another runner handled this fire time (or this one did, before). */
  | { result: 'taken' }
  /** The schedule's previous job is still pending or running: this fire time makes nothing. */
  | { result: 'overlap'; activeJobId: number };

export interface ScheduleRecord {
  name: string;
  /** When a runner first saw the schedule: fire times before it were never missed. */
  firstSeenAt: Date;
  /** The latest fire time handled, whether it made a job or not (prune keeps its record). */
  lastFireAt: Date | null;
  /** The fire time of its last job, that job and the job's status now. */
  lastRunAt: Date | null;
  lastJobId: number | null;
  lastStatus: JobStatusName | null;
}

/**
 * Makes sure each named schedule has its row. `seenAt` is the scheduler's own clock, the one its
 * fire times are compared with (a start-up catch-up runs only fire times at or after it).
 */
export async function registerSchedules(queue: Queue, names: string[], seenAt: Date): Promise<void> {
  const s = queue.db.driver.statements;
  const at = sqlTime(seenAt);
  for (const name of names)
    await queue.transaction((t) => sqlIn(queue.db.sequelize, t).update(s.scheduleRegister, { name, seenAt: at }));
}

/** Every schedule row, by name. */
export async function scheduleRecords(queue: Queue): Promise<Map<string, ScheduleRecord>> {
  const rows = await sqlIn(queue.db.sequelize).select<{
    name: string;
    firstSeenAt: unknown;
    lastFireAt: unknown;
    lastRunAt: unknown;
    lastJobId: number | null;
    lastStatus: JobStatusName | null;
  }>(queue.db.driver.statements.schedulesState);
  return new Map(
    rows.map((r) => [
      r.name,
      {
        name: r.name,
        firstSeenAt: readTime(r.firstSeenAt)!,
        lastFireAt: readTime(r.lastFireAt),
        lastRunAt: readTime(r.lastRunAt),
        lastJobId: r.lastJobId === null ? null : Number(r.lastJobId),
        lastStatus: r.lastStatus ?? null,
      },
    ]),
  );
}

/**
 * Fires `name` for `fireAt`: in one transaction, takes the schedule's row lock, claims the fire
 * time (the unique key), and, unless the previous job is still pending or running and `overlap`
 * is not allowed, enqueues `job` and records it. Call registerSchedules first.
 */
export function fireSchedule(
  queue: Queue,
  name: string,
  fireAt: Date,
  job: NewJob,
  options: { allowOverlap: boolean },
): Promise<FireResult> {
  const s = queue.db.driver.statements;
  return queue.transaction(async (transaction) => {
    const sql = sqlIn(queue.db.sequelize, transaction);
    const at = sqlTime(fireAt);
    // The schedule's row lock first: fires of one schedule take their turns, and never deadlock.
    const [row] = await sql.select<{ lastJobId: number | null; lastStatus: JobStatusName | null }>(s.scheduleLock, {
      name,
    });
    if (!row) throw new Error(`schedule ${name} is not registered`);
    if ((await sql.update(s.fireClaim, { name, fireAt: at })) !== 1) return { result: 'taken' } as const;
    await sql.update(s.scheduleFired, { name, fireAt: at });
    const active = row.lastStatus === 'pending' || row.lastStatus === 'running';
    if (active && !options.allowOverlap) {
      await sql.update(s.fireRecord, { name, fireAt: at, jobId: null, skipped: 'overlap' });
      return { result: 'overlap', activeJobId: Number(row.lastJobId) } as const;
    }
    const [made] = await insertJobs(queue.db, [job], transaction);
    await sql.update(s.fireRecord, { name, fireAt: at, jobId: made.id, skipped: null });
    await sql.update(s.scheduleAdvance, { name, fireAt: at, jobId: made.id });
    return { result: 'created', jobId: made.id } as const;
  });
}

/** What GET /schedules and `schedules list` show of a schedule. */
export interface ScheduleView {
  name: string;
  task: string;
  cron: string;
  timezone: string;
  missed: 'skip' | 'latest';
  overlap: 'skip' | 'allow';
  createdBy: string;
  nextRunAt: Date | null;
  lastRunAt: Date | null;
  lastJobId: number | null;
  lastStatus: JobStatusName | null;
}

/** The task file's schedules, by name, with their next fire time after `now` and their last job. */
export async function listSchedules(
  queue: Queue,
  schedules: Iterable<
    Omit<ScheduleView, 'nextRunAt' | 'lastRunAt' | 'lastJobId' | 'lastStatus'> & {
      nextAfter(after: Date): Date | null;
    }
  >,
  now = new Date(),
): Promise<ScheduleView[]> {
  const records = await scheduleRecords(queue);
  return [...schedules]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((s) => {
      const record = records.get(s.name);
      return {
        name: s.name,
        task: s.task,
        cron: s.cron,
        timezone: s.timezone,
        missed: s.missed,
        overlap: s.overlap,
        createdBy: s.createdBy,
        nextRunAt: s.nextAfter(now),
        lastRunAt: record?.lastRunAt ?? null,
        lastJobId: record?.lastJobId ?? null,
        lastStatus: record?.lastStatus ?? null,
      };
    });
}
