// Lock conflicts are expected traffic, not outages: a transaction that loses a deadlock is run again
// on the same pooled connection without a warning, and the runner's DbHealth logs no "database
// unavailable" for a lock conflict, only for a database that does not answer.
import { QueryTypes, type Transaction } from 'sequelize';
import { createDatabase, type Database } from '../../models/database';
import { Queue } from '../../models/queue';
import { createLogger } from '../../log';
import { DbHealth } from '../../runner/db-health';
import { RunnerMetrics } from '../../runner/metrics';
import { addJob, dialect, holdJobRows, impatientQueue, useQueueDatabase, withRowLocks } from './harness';
import { sqlOf } from '../helpers/database';

const t = useQueueDatabase('lock_conflicts');

async function connectionId(db: Database, transaction?: Transaction): Promise<number> {
  const sql = dialect === 'postgres' ? 'SELECT pg_backend_pid() AS id' : 'SELECT CONNECTION_ID() AS id';
  const [row] = await db.sequelize.query<{ id: number }>(sql, { type: QueryTypes.SELECT, transaction });
  return Number(row.id);
}

function lockJob(db: Database, id: number, transaction: Transaction): Promise<unknown> {
  return sqlOf(db).query('SELECT id FROM Jobs WHERE id = :id FOR UPDATE', {
    type: QueryTypes.SELECT,
    replacements: { id },
    transaction,
  });
}

/**
 * Waits (bounded, not timed) until connection `id` is in its lock of job `jobId`: waiting for it
 * (PostgreSQL shows the wait; MariaDB may not list a wait met while planning a primary-key read, so
 * there the statement still running is the sign).
 */
async function waitsForLock(db: Database, id: number, jobId: number): Promise<void> {
  const sql =
    dialect === 'postgres'
      ? "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE pid = :id AND wait_event_type = 'Lock'"
      : "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID = :id AND COMMAND = 'Query' AND INFO LIKE :statement";
  const statement = `SELECT id FROM Jobs WHERE id = ${jobId} FOR UPDATE`;
  for (let i = 0; i < 1200; i++) {
    const [row] = await db.sequelize.query<{ n: number }>(sql, {
      type: QueryTypes.SELECT,
      replacements: { id, statement },
    });
    if (Number(row.n) > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`connection ${id} never waited for the lock of job ${jobId}`);
}

function collectingHealth(queue: Queue): { health: DbHealth; lines: string[] } {
  const lines: string[] = [];
  const log = createLogger({ level: 'debug', journald: false, write: (level, line) => lines.push(`${level} ${line}`) });
  return { health: new DbHealth(log, new RunnerMetrics(), (err) => queue.isLockConflict(err)), lines };
}

withRowLocks(
  'a transaction that loses a deadlock runs again on the same pooled connection, without a warning',
  async () => {
    const [x, y, ...heavy] = [await addJob(t.db), await addJob(t.db), await addJob(t.db), await addJob(t.db)];
    const queueDb = t.secondHandle({ poolMax: 1 });
    const queue = new Queue(queueDb);
    const before = await connectionId(queueDb);
    const warn = jest.spyOn(console, 'warn');

    // The other transaction has written rows (so InnoDB makes the queue's the victim) and holds y.
    const other = t.secondHandle();
    const b = await other.sequelize.transaction();
    await sqlOf(other).query('UPDATE Jobs SET command = :c WHERE id IN (:ids)', {
      replacements: { c: 'held', ids: heavy },
      transaction: b,
    });
    await lockJob(other, y, b);

    let attempts = 0;
    const done = queue.transaction(async (transaction) => {
      attempts++;
      await lockJob(queueDb, x, transaction);
      await lockJob(queueDb, y, transaction);
      return connectionId(queueDb, transaction);
    });
    // The queue's transaction holds x and waits for y; the other one now asks for x: a deadlock.
    try {
      await waitsForLock(t.db, before, y);
      await lockJob(other, x, b);
    } finally {
      await b.rollback();
    }

    expect(await done).toBe(before);
    expect(attempts).toBe(2);
    expect(await connectionId(queueDb)).toBe(before);
    expect(warn.mock.calls.filter((call) => String(call[0]).includes('transaction'))).toEqual([]);
    warn.mockRestore();
  },
);

withRowLocks(
  'the runner’s health logs no outage for a lock conflict, and one for a database that does not answer',
  async () => {
    const id = await addJob(t.db);
    const impatient = await impatientQueue(t);
    const { health, lines } = collectingHealth(impatient);
    const held = await holdJobRows(t, [id]);
    let conflict: unknown;
    try {
      await impatient.transaction((transaction) => lockJob(impatient.db, id, transaction));
    } catch (err) {
      conflict = err;
    } finally {
      await held.rollback();
    }
    expect(impatient.isLockConflict(conflict)).toBe(true);
    health.error(conflict);
    expect(health.trouble()).toBeNull();
    expect(lines.filter((l) => l.includes('database unavailable'))).toEqual([]);

    // A server that is not there: port 1 on loopback refuses the connection.
    const away = createDatabase({ ...t.config, port: 1 } as typeof t.config);
    let outage: unknown;
    try {
      await away.sequelize.query('SELECT 1');
    } catch (err) {
      outage = err;
    } finally {
      await away.close();
    }
    expect(impatient.isLockConflict(outage)).toBe(false);
    health.error(outage);
    expect(health.trouble()).toMatch(/^database unavailable for \d+s$/);
    expect(lines.filter((l) => l.includes('database unavailable'))).toHaveLength(1);
  },
);
