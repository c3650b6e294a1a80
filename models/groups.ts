// Serial groups: at most one job of a group is claimable or running (its head), the rest wait in
// id order with groupQueued set, which keeps them out of the claim's index range altogether. Who
// holds a group lives in its JobGroups row; every change takes that row's lock first, inside the
// transaction that enqueues, settles or releases, so a group is never left held.
import type { QueueStatements } from './drivers';
import type { Sql } from './sql';

interface GroupRow {
  headJobId: number | null;
  blockedByJobId: number | null;
  blockOnFailure: number | boolean;
}

/** Creates the group's row if needed (its policy from the newest enqueue) and locks it. */
export async function lockGroupForEnqueue(
  sql: Sql,
  s: QueueStatements,
  key: string,
  block: boolean,
): Promise<GroupRow> {
  await sql.update(s.groupUpsert, { key, block });
  const [row] = await sql.select<GroupRow>(s.groupLock, { key });
  return row;
}

/** The group's row, locked (undefined when the group never existed). */
export async function lockGroup(sql: Sql, s: QueueStatements, key: string): Promise<GroupRow | undefined> {
  const [row] = await sql.select<GroupRow>(s.groupLock, { key });
  return row;
}

/** Makes the group's first waiting job its head; the group must be locked, free and not blocked. */
export async function admitNext(sql: Sql, s: QueueStatements, key: string): Promise<number | null> {
  const [next] = await sql.select<{ id: number }>(s.groupNextQueued, { key });
  const head = next ? Number(next.id) : null;
  if (head !== null) await sql.update(s.groupPromote, { id: head });
  await sql.update(s.groupSetHolders, { key, head, blockedBy: null });
  return head;
}

/**
 * A job settled (finished, reaped, cancelled). If it holds its group — and only then: a stale
 * settle never frees a group someone else holds — the group passes to its next job, or, after a
 * failure under `groupOnFailure: block`, stays blocked by it.
 */
export async function releaseGroup(
  sql: Sql,
  s: QueueStatements,
  key: string,
  jobId: number,
  failed: boolean,
): Promise<void> {
  const group = await lockGroup(sql, s, key);
  if (!group || Number(group.headJobId) !== jobId) return;
  if (failed && Boolean(Number(group.blockOnFailure))) {
    await sql.update(s.groupSetHolders, { key, head: null, blockedBy: jobId });
    return;
  }
  await admitNext(sql, s, key);
}

/** An admin lifts a block: the group's next job may run. False when the group is not blocked. */
export async function unblockGroup(sql: Sql, s: QueueStatements, key: string): Promise<boolean | null> {
  const group = await lockGroup(sql, s, key);
  if (!group) return null;
  if (group.blockedByJobId === null || group.headJobId !== null) return false;
  await admitNext(sql, s, key);
  return true;
}
