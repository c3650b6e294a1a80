// Deleting old finished jobs in small committed batches, so a busy table is never locked for long.
import { QueryTypes } from 'sequelize';
import { sqlAgo } from './clock';
import type { Database } from './database';

export interface PruneResult {
  jobs: number;
  outputRows: number;
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
  const cutoff = sqlAgo(db.dialect, Math.floor(olderThanSec) * 1000);
  const finished = "status IN ('success', 'failure', 'cancelled')";
  const result: PruneResult = { jobs: 0, outputRows: 0 };
  for (;;) {
    const ids = (
      await db.sequelize.query<{ id: number }>(
        `SELECT id FROM Jobs WHERE ${finished} AND finishedAt < ${cutoff} ORDER BY id LIMIT ${jobBatch}`,
        { type: QueryTypes.SELECT },
      )
    ).map((r) => Number(r.id));
    if (ids.length === 0) return result;
    for (;;) {
      // Read the rows first (no locks), then delete them by primary key: a `DELETE … WHERE jobId IN
      // … LIMIT` that MySQL plans as a table scan (stale statistics, many lines a job) locks every row.
      const rowIds = (
        await db.sequelize.query<{ id: number }>(`SELECT id FROM JobStatuses WHERE jobId IN (:ids) LIMIT ${rowBatch}`, {
          type: QueryTypes.SELECT,
          replacements: { ids },
        })
      ).map((r) => Number(r.id));
      if (rowIds.length > 0) {
        result.outputRows += (await db.sequelize.query('DELETE FROM JobStatuses WHERE id IN (:rowIds)', {
          type: QueryTypes.BULKDELETE,
          replacements: { rowIds },
        })) as unknown as number;
      }
      if (rowIds.length < rowBatch) break;
    }
    result.jobs += (await db.sequelize.query(`DELETE FROM Jobs WHERE id IN (:ids) AND ${finished}`, {
      type: QueryTypes.BULKDELETE,
      replacements: { ids },
    })) as unknown as number;
  }
}
