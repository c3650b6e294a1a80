// Queue.enqueue, Queue.reportRunner and Queue.transaction: the queue's other writes.
import { QueryTypes } from 'sequelize';
import { dbNow, jobRow, toMs, useQueueDatabase } from './harness';
import { RUNNER_REPORT_VERSION, type RunnerReport } from '../../models/metrics';
import { sqlOf } from '../helpers/database';

const t = useQueueDatabase('enqueue');

describe('enqueue', () => {
  test('inserts a pending job, due now on the database clock, and returns its id', async () => {
    const before = await dbNow(t.db);

    const { id } = await t.queue.enqueue({
      task: 'greet',
      params: { name: 'Zoë', count: 2, loud: false },
      command: "greet --name 'Zoë'",
      createdBy: 'alice',
      priority: 7,
    });

    const after = await dbNow(t.db);
    const row = await jobRow(t.db, id);
    expect(row).toMatchObject({
      id,
      status: 'pending',
      command: "greet --name 'Zoë'",
      createdBy: 'alice',
      priority: 7,
      runnerId: null,
      startedAt: null,
      heartbeatAt: null,
      finishedAt: null,
    });
    expect(row.runAt).toBeGreaterThanOrEqual(before);
    expect(row.runAt).toBeLessThanOrEqual(after);
    // What a runner gets back is what was enqueued.
    expect(await t.queue.claimDueJobs('r1', 1)).toEqual([
      {
        id,
        task: 'greet',
        params: { name: 'Zoë', count: 2, loud: false },
        command: "greet --name 'Zoë'",
        createdBy: 'alice',
        groupKey: null,
        attempt: 1,
        maxAttempts: 1,
        lastSeq: 0,
      },
    ]);
  });

  test('priority defaults to 0; createdBy may be null; ids increase', async () => {
    const { id: first } = await t.queue.enqueue({ task: 'echo', params: {}, command: 'echo', createdBy: null });
    const { id: second } = await t.queue.enqueue({ task: 'echo', params: {}, command: 'echo', createdBy: 'bob' });

    expect(second).toBeGreaterThan(first);
    expect(await jobRow(t.db, first)).toMatchObject({ priority: 0, createdBy: null, status: 'pending' });
  });
});

describe('reportRunner', () => {
  interface RunnerRow {
    startedAt: number | null;
    seenAt: number | null;
    report: unknown;
  }

  async function runners(): Promise<Record<string, RunnerRow>> {
    const rows = await sqlOf(t.db).query<{ id: string; startedAt: unknown; seenAt: unknown; report: string }>(
      'SELECT id, startedAt, seenAt, report FROM JobRunners ORDER BY id',
      { type: QueryTypes.SELECT },
    );
    return Object.fromEntries(
      rows.map((r) => [r.id, { startedAt: toMs(r.startedAt), seenAt: toMs(r.seenAt), report: JSON.parse(r.report) }]),
    );
  }

  /** A report of `busy` in one gauge (the shape RunnerMetrics writes). */
  const report = (busy: number): RunnerReport => ({
    version: RUNNER_REPORT_VERSION,
    metrics: [
      { name: 'container_jobs_runner_busy_slots', help: 'busy', type: 'gauge', values: [{ labels: {}, value: busy }] },
    ],
  });

  test('inserts a runner’s report, then replaces it and its seenAt, keeping startedAt', async () => {
    const before = await dbNow(t.db);
    await t.queue.reportRunner('r1', report(1));
    await t.queue.reportRunner('r2', report(0));
    const first = await runners();
    expect(first.r1).toMatchObject({ report: report(1) });
    expect(first.r1.startedAt).toBeGreaterThanOrEqual(before);
    expect(first.r1.seenAt).toBeGreaterThanOrEqual(before);

    const between = await dbNow(t.db);
    await t.queue.reportRunner('r1', report(3));

    const second = await runners();
    expect(Object.keys(second)).toEqual(['r1', 'r2']);
    expect(second.r1.report).toEqual(report(3));
    expect(second.r1.startedAt).toBe(first.r1.startedAt);
    expect(second.r1.seenAt).toBeGreaterThanOrEqual(between);
    expect(second.r2).toEqual(first.r2);
  });
});

describe('transaction', () => {
  const count = async () => {
    const [row] = await sqlOf(t.db).query<{ n: number | string }>('SELECT COUNT(*) AS n FROM Jobs', {
      type: QueryTypes.SELECT,
    });
    return Number(row.n);
  };
  const insert = (transaction: unknown) =>
    sqlOf(t.db).query("INSERT INTO Jobs (task, params) VALUES ('echo', '{}')", {
      transaction: transaction as never,
    });

  test('commits the work and returns its result', async () => {
    expect(
      await t.queue.transaction(async (transaction) => {
        await insert(transaction);
        return 'done';
      }),
    ).toBe('done');
    expect(await count()).toBe(1);
  });

  test('rolls the work back when it throws, and rethrows', async () => {
    await expect(
      t.queue.transaction(async (transaction) => {
        await insert(transaction);
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    expect(await count()).toBe(0);
  });
});
