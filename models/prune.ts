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
