// The queue on a real multi-primary cluster: the 3-node Galera cluster of bench/galera-nodes.ts
// (node dist/bench/galera-nodes.js start). Skipped unless CJ_TEST_GALERA=1; runs in the mysql project.
//   CJ_TEST_GALERA=1 npx jest --selectProjects mysql --runTestsByPath test/cluster/commit.test.ts
import { QueryTypes, type Transaction } from 'sequelize';
import type { DatabaseConfig } from '../../config';
import { createDatabase, recreateServerDatabase, type Database } from '../../models/database';
import { migrate } from '../../models/migrate';
import { NO_QUOTAS, Queue, type ClaimedJob } from '../../models/queue';
import { dialect } from '../helpers/database';

const onGalera = process.env.CJ_TEST_GALERA === '1' && dialect === 'mysql';
const describeGalera = onGalera ? describe : describe.skip;

const database = `cj_test_cluster_${process.env.CJ_TEST_DB_SUFFIX ?? ''}w${process.env.JEST_WORKER_ID ?? '0'}`;
const nodeConfig = (n: number): Extract<DatabaseConfig, { dialect: 'mysql' }> => ({
  dialect: 'mysql',
  host: '127.0.0.1',
  port: 3310 + n,
  user: 'root',
  password: '',
  database,
});

const opened: Database[] = [];
function open(n: number, poolMax = 4): Database {
  const db = createDatabase(nodeConfig(n), { poolMax });
  opened.push(db);
  return db;
}

async function connectionId(db: Database, transaction?: Transaction): Promise<number> {
  const [row] = await db.sequelize.query<{ id: number }>('SELECT CONNECTION_ID() AS id', {
    type: QueryTypes.SELECT,
    transaction,
  });
  return Number(row.id);
}

async function addJobs(db: Database, n: number): Promise<void> {
  const rows = Array(n).fill("('echo', '{}', 'alice')").join(', ');
  await db.sequelize.query(`INSERT INTO Jobs (task, params, createdBy) VALUES ${rows}`);
}

describeGalera('on a 3-node Galera cluster', () => {
  beforeAll(async () => {
    await recreateServerDatabase(nodeConfig(1));
    const db = open(1);
    await migrate(db);
  });
  afterAll(async () => {
    await Promise.all(opened.map((db) => db.close()));
  });
  beforeEach(async () => {
    await opened[0].sequelize.query('DELETE FROM JobStatuses');
    await opened[0].sequelize.query('DELETE FROM Jobs');
  });

  test('the MySQL driver sees a multi-primary cluster', async () => {
    const db = opened[0];
    const select = (sql: string) => db.sequelize.query<Record<string, unknown>>(sql, { type: QueryTypes.SELECT });
    expect(await db.driver.multiPrimary!(select)).toBe(true);
  });

  test('a transaction refused at COMMIT (another node wrote its row first) runs again on the same connection, quietly', async () => {
    const node1 = open(1, 1);
    const node2 = open(2, 1);
    await addJobs(node1, 1);
    // The cluster applies writes everywhere: the row is on node 2 once its read waits for that.
    await node2.sequelize.query('SET SESSION wsrep_sync_wait = 1');
    const [{ id }] = await node2.sequelize.query<{ id: number }>('SELECT MIN(id) AS id FROM Jobs', {
      type: QueryTypes.SELECT,
    });
    const queue = new Queue(node1);
    const before = await connectionId(node1);
    const warn = jest.spyOn(console, 'warn');
    let attempts = 0;
    const result = await queue.transaction(async (transaction) => {
      attempts++;
      await node1.sequelize.query('UPDATE Jobs SET command = :c WHERE id = :id', {
        replacements: { c: `node1 attempt ${attempts}`, id },
        transaction,
      });
      // Node 1's row lock is its own: node 2 writes the same row and commits first.
      if (attempts === 1) {
        await node2.sequelize.query("UPDATE Jobs SET command = 'node2' WHERE id = :id", { replacements: { id } });
      }
      return connectionId(node1, transaction);
    });
    expect(attempts).toBe(2);
    expect(result).toBe(before);
    expect(await connectionId(node1)).toBe(before);
    expect(warn.mock.calls.filter((call) => String(call[0]).includes('Committing transaction'))).toEqual([]);
    warn.mockRestore();
    await node2.sequelize.query('SET SESSION wsrep_sync_wait = 1');
    const [row] = await node2.sequelize.query<{ command: string }>('SELECT command FROM Jobs WHERE id = :id', {
      type: QueryTypes.SELECT,
      replacements: { id },
    });
    expect(row.command).toBe('node1 attempt 2');
  });

  test('claimers on the three nodes (spread, as detected) never take the same job', async () => {
    // One connection each, whose reads wait for what the cluster committed before them.
    const nodes = [open(1, 1), open(2, 1), open(3, 1)];
    for (const db of nodes) await db.sequelize.query('SET SESSION wsrep_sync_wait = 1');
    for (const db of nodes) await addJobs(db, 100);
    await nodes[0].sequelize.query('SET SESSION wsrep_sync_wait = 1');
    const [{ n }] = await nodes[0].sequelize.query<{ n: number }>('SELECT COUNT(*) AS n FROM Jobs', {
      type: QueryTypes.SELECT,
    });
    expect(Number(n)).toBe(300);
    const taken: number[] = [];
    await Promise.all(
      nodes.map(async (db, i) => {
        const queue = new Queue(db, NO_QUOTAS);
        const runnerId = `node${i + 1}`;
        for (let idle = 0; idle < 3;) {
          let jobs: ClaimedJob[];
          try {
            jobs = await queue.claimDueJobs(runnerId, 4);
          } catch (err) {
            if (queue.isLockConflict(err)) continue;
            throw err;
          }
          if (jobs.length === 0) {
            idle++;
            continue;
          }
          idle = 0;
          taken.push(...jobs.map((j) => j.id));
        }
      }),
    );
    await nodes[0].sequelize.query('SET SESSION wsrep_sync_wait = 1');
    const [left] = await nodes[0].sequelize.query<{ n: number }>(
      "SELECT COUNT(*) AS n FROM Jobs WHERE status = 'pending'",
      { type: QueryTypes.SELECT },
    );
    expect(Number(left.n)).toBe(0);
    expect(taken).toHaveLength(300);
    expect(new Set(taken).size).toBe(300);
  });
});
