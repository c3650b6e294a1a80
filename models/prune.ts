// Deleting old finished jobs in small committed batches, so a busy table is never locked for long.
import { QueryTypes } from 'sequelize';
import type { Database } from './database';

export interface PruneResult {
  jobs: number;
  outputRows: number;
  /** Serial groups with nothing left in them (JobGroups rows). */
  groups: number;
  /** Records of schedules' fire times (JobScheduleFires rows), each schedule's last one kept. */
  fires: number;
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** "30d", "12h", "90m", "3600s", "2w" → seconds; undefined when it is not such a duration. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+)([smhdw])$/.exec(text.trim());
  return match ? Number(match[1]) * UNITS[match[2]] : undefined;
}

/**
 * Deletes jobs that finished more than `olderThanSec` ago (database clock) and their output.
 * Output goes first, `rowBatch` rows a statement, then the jobs, `jobBatch` a statement; each
 * statement commits on its own. Pending and running jobs are never touched.
 */
export async function pruneFinishedJobs(
  db: Database,
  olderThanSec: number,
  { jobBatch = 500, rowBatch = 10000 }: { jobBatch?: number; rowBatch?: number } = {},
): Promise<PruneResult> {
  const sql = db.driver.statements;
  const query = <T extends object>(text: string, replacements?: Record<string, unknown>) =>
    db.sequelize.query<T>(text, { type: QueryTypes.SELECT, replacements });
  const remove = async (text: string, replacements: Record<string, unknown>) =>
    (await db.sequelize.query(text, { type: QueryTypes.BULKDELETE, replacements })) as unknown as number;
  const result: PruneResult = { jobs: 0, outputRows: 0, groups: 0, fires: 0 };
  for (;;) {
    const olderThanMs = Math.floor(olderThanSec) * 1000;
    const ids = (await query<{ id: number }>(sql.pruneSelectJobs(olderThanMs, jobBatch))).map((r) => Number(r.id));
    if (ids.length === 0) {
      result.groups = await remove(sql.pruneIdleGroups(olderThanMs), {});
      result.fires = await remove(sql.pruneScheduleFires(olderThanMs), {});
      return result;
    }
    for (;;) {
      const rowIds = (await query<{ id: number }>(sql.pruneSelectOutput(rowBatch), { ids })).map((r) => Number(r.id));
      if (rowIds.length > 0) result.outputRows += await remove(sql.pruneDeleteOutput, { rowIds });
      if (rowIds.length < rowBatch) break;
    }
    result.jobs += await remove(sql.pruneDeleteJobs, { ids });
  }
}

/** No batch limit: every row the batch query would find over all its batches. */
const ALL_ROWS = Number.MAX_SAFE_INTEGER;

/**
 * What pruneFinishedJobs would delete now, counted with the very conditions of its statements;
 * deletes nothing (`prune --dry-run`). Plain reads: no locks on MySQL, SQLite writers go on beside.
 */
export async function countPrunable(db: Database, olderThanSec: number): Promise<PruneResult> {
  const sql = db.driver.statements;
  const olderThanMs = Math.floor(olderThanSec) * 1000;
  // A derived table: MySQL takes no LIMIT in an IN subquery itself.
  const jobs = `SELECT id FROM (${sql.pruneSelectJobs(olderThanMs, ALL_ROWS)}) prunable`;
  return {
    jobs: await count(db, `SELECT COUNT(*) AS n FROM (${jobs}) j`),
    outputRows: await count(db, sql.countOutputOf(jobs)),
    groups: await count(db, countingInstead(sql.pruneIdleGroups(olderThanMs))),
    fires: await count(db, countingInstead(sql.pruneScheduleFires(olderThanMs))),
  };
}

/** What pruneRunnerRows (models/metrics.ts) would delete: reports of runners gone for longer than that. */
export function countStaleRunnerRows(db: Database, olderThanSec: number): Promise<number> {
  return count(db, countingInstead(db.driver.statements.pruneRunnerReports(Math.floor(olderThanSec) * 1000)));
}

async function count(db: Database, text: string): Promise<number> {
  const [row] = await db.sequelize.query<{ n: number | string }>(text, { type: QueryTypes.SELECT });
  return Number(row?.n ?? 0);
}

/** `DELETE FROM T WHERE …` → `SELECT COUNT(*) AS n FROM T WHERE …`: the rows it would delete. */
function countingInstead(statement: string): string {
  const counting = statement.replace(/^\s*DELETE\s+FROM\s+/i, 'SELECT COUNT(*) AS n FROM ');
  if (counting === statement) throw new Error(`prune --dry-run cannot count the rows of: ${statement}`);
  return counting;
}
