// Whether a claimed job of an adminOnly task may still run: its creator's rights as they are at spawn,
// not as they were at enqueue (an admin demoted or deleted meanwhile loses the jobs waiting for them).
import { QueryTypes } from 'sequelize';
import type { Database } from './database';
import { hasOwnUsers } from './migrate';

export interface CreatorRights {
  allowed: boolean;
  /** One line for the job's system row and the log. */
  why: string;
}

/**
 * - no creator (createdBy NULL): allowed. Only a program with write access to the database makes such
 *   a job (plain SQL, or the host's own code enqueueing without a user), and that access already
 *   outranks an admin's: it could write any createdBy it liked.
 * - a job a schedule made: allowed. The schedule is in the task file, written by the operator.
 * - otherwise the creator must be a user, and an admin, in Users now.
 */
export async function adminTaskAllowed(
  db: Database,
  job: { id: number; createdBy: string | null },
): Promise<CreatorRights> {
  if (job.createdBy === null) return { allowed: true, why: 'no creator (inserted by SQL or a host program)' };
  // In a host's queue-only install Users is the host's table: nobody is known to be our admin.
  const user = (await hasOwnUsers(db))
    ? await db.models.User.findOne({ where: { username: job.createdBy }, attributes: ['isAdmin'] })
    : null;
  if (user?.isAdmin) return { allowed: true, why: `${job.createdBy} is an admin` };
  const [fire] = await db.sequelize.query<{ scheduleName: string }>(db.driver.statements.scheduleOfJob, {
    type: QueryTypes.SELECT,
    replacements: { jobId: job.id },
  });
  if (fire) return { allowed: true, why: `made by schedule ${fire.scheduleName}` };
  return {
    allowed: false,
    why: user
      ? `its creator ${job.createdBy} is no longer an admin`
      : (await hasOwnUsers(db))
        ? `its creator ${job.createdBy} is no longer a user`
        : `a queue-only install has no users of its own to find ${job.createdBy} an admin in (adminOnly tasks run only for jobs without a creator or made by a schedule)`,
  };
}
