// Claims in doubt (models/claims-in-doubt.ts): a claim whose COMMIT got no answer may have taken its
// jobs. Before the same queue claims again, jobs still this runner's go back to pending (a cancelled
// one ends cancelled, never started); jobs the claim did not take, or that another runner took since,
// are left alone. Seen on Galera when a node died under a committing claim: the jobs sat `running`
// under a runner that never started them until the reaper failed them a lease later. And a finish
// whose COMMIT took effect without an answer counts as done when the runner asks again.
import { ConnectionError } from 'sequelize';
import type { LaneSend, StatementLane } from '../../models/drivers/mysql-lane';
import { NO_QUOTAS, Queue, type Outcome } from '../../models/queue';
import { waitFor } from '../helpers/runner';
import { addJob, dialect, jobRow, storedRows, useQueueDatabase } from './harness';

const t = useQueueDatabase('doubt');

afterEach(() => {
  jest.restoreAllMocks();
});

const SUCCESS: Outcome = { status: 'success', exitCode: 0, signal: null, error: null };
const ids = (jobs: { id: number }[]) => jobs.map((j) => j.id);
const lost = () => new ConnectionError(new Error('Connection lost: The server closed the connection.'));

/**
 * Arms a failure of the next COMMIT a queue sends: `after` it took effect (the answer lost), or
 * `before` it was sent (the transaction rolled back).
 */
interface CommitFailure {
  arm(when: 'after' | 'before'): void;
  /** Whether the armed failure happened. */
  readonly fired: boolean;
}

/** A queue on the fixture's database whose COMMITs can be made to fail, statement by statement or on the lane. */
function failingQueue(path: 'statements' | 'lane'): { queue: Queue; failure: CommitFailure } {
  let armed: 'after' | 'before' | null = null;
  let fired = false;
  const failure = {
    arm(when: 'after' | 'before') {
      armed = when;
      fired = false;
    },
    get fired() {
      return fired;
    },
  };
  /** Runs `commit` (a COMMIT going out) with the armed failure, if any. */
  const committing = async <T>(commit: () => Promise<T>): Promise<T> => {
    const when = armed;
    if (when === null) return commit();
    armed = null;
    fired = true;
    if (when === 'before') throw lost();
    await commit();
    throw lost();
  };
  if (path === 'statements') {
    // Every COMMIT of the handle goes through its query() (Sequelize's own commit too); only the
    // queue under test commits while a failure is armed. Sequelize warns of each failed commit.
    jest.spyOn(console, 'warn').mockImplementation(() => {});
    const query = t.db.sequelize.query.bind(t.db.sequelize);
    jest.spyOn(t.db.sequelize, 'query').mockImplementation(((sql: string, options?: object) => {
      const run = () => query(sql, options);
      return typeof sql === 'string' && /^\s*COMMIT\b/i.test(sql) ? committing(run) : run();
    }) as never);
    return { queue: new Queue(t.db, NO_QUOTAS, { lane: false }), failure };
  }
  const lane = t.db.lane!;
  const failingLane: StatementLane = {
    format: (sql, replacements) => lane.format(sql, replacements),
    close: () => lane.close(),
    session: (work) =>
      lane.session(
        (send) =>
          work((statements: string[]) =>
            statements.at(-1) === 'COMMIT' ? committing(() => send(statements)) : send(statements),
          ) as ReturnType<LaneSend> as never,
      ),
  };
  return { queue: new Queue(Object.assign(Object.create(t.db), { lane: failingLane })), failure };
}

const paths: ('statements' | 'lane')[] = dialect === 'mysql' ? ['statements', 'lane'] : ['statements'];

describe.each(paths)('%s', (path) => {
  test('jobs a claim took without hearing so go back to pending before its next claim, in their order', async () => {
    const { queue, failure } = failingQueue(path);
    const settled: unknown[] = [];
    queue.observeDoubts((s) => settled.push(s));
    const [a, b, c] = [await addJob(t.db), await addJob(t.db), await addJob(t.db)];
    failure.arm('after');
    await expect(queue.claimDueJobs('r1', 2)).rejects.toThrow('Connection lost');
    expect(failure.fired).toBe(true);
    // The COMMIT took effect: both are running under r1, which never started them.
    for (const id of [a, b]) expect(await jobRow(t.db, id)).toMatchObject({ status: 'running', runnerId: 'r1' });
    // The next claim gives them back first, then claims from the head as ever.
    expect(ids(await queue.claimDueJobs('r1', 1))).toEqual([a]);
    expect(settled).toEqual([{ released: 2, cancelled: 0 }]);
    expect(await jobRow(t.db, b)).toMatchObject({ status: 'pending', runnerId: null, startedAt: null });
    expect(await jobRow(t.db, c)).toMatchObject({ status: 'pending', runnerId: null });
    expect(ids(await queue.claimDueJobs('r1', 5))).toEqual([b, c]);
    for (const id of [a, b, c]) expect(await storedRows(t.db, id)).toEqual([]);
  });

  test('a job whose cancel was asked for meanwhile ends cancelled, never started', async () => {
    const { queue, failure } = failingQueue(path);
    const settled: unknown[] = [];
    queue.observeDoubts((s) => settled.push(s));
    const a = await addJob(t.db);
    const b = await addJob(t.db);
    failure.arm('after');
    await expect(queue.claimDueJobs('r1', 2)).rejects.toThrow('Connection lost');
    expect(await t.queue.cancelJob(a, 'alice')).toMatchObject({ result: 'requested' });
    expect(await queue.claimDueJobs('r1', 5)).toEqual([expect.objectContaining({ id: b })]);
    expect(settled).toEqual([{ released: 1, cancelled: 1 }]);
    expect(await jobRow(t.db, a)).toMatchObject({ status: 'cancelled', runnerId: 'r1', error: 'cancelled' });
    expect((await storedRows(t.db, a)).map((r) => [r.seq, r.stream, r.output])).toEqual([
      [1, 'system', 'cancelled on request before it started'],
    ]);
  });

  // On SQLite a COMMIT has no connection to lose: the database is a file of this process.
  (dialect === 'sqlite' ? test.skip : test)(
    'a claim that did not commit leaves its jobs to whoever claims them next',
    async () => {
      const { queue, failure } = failingQueue(path);
      const a = await addJob(t.db);
      const b = await addJob(t.db);
      failure.arm('before');
      await expect(queue.claimDueJobs('r1', 2)).rejects.toThrow('Connection lost');
      // Rolled back (once the server sees the connection go): another runner takes them.
      const other = new Queue(t.db);
      const taken: number[] = [];
      await waitFor(async () => {
        taken.push(...ids(await other.claimDueJobs('r2', 2)));
        return taken.length === 2;
      });
      expect(taken.sort((x, y) => x - y)).toEqual([a, b]);
      const settled: unknown[] = [];
      queue.observeDoubts((s) => settled.push(s));
      const c = await addJob(t.db);
      expect(ids(await queue.claimDueJobs('r1', 5))).toEqual([c]);
      expect(settled).toEqual([]);
      for (const id of [a, b]) expect(await jobRow(t.db, id)).toMatchObject({ status: 'running', runnerId: 'r2' });
    },
  );

  test("a finish's successors claimed without hearing so go back to pending; the finish stands", async () => {
    const { queue, failure } = failingQueue(path);
    const done = await addJob(t.db);
    const next = await addJob(t.db);
    expect(ids(await queue.claimDueJobs('r1', 1))).toEqual([done]);
    failure.arm('after');
    await expect(
      queue.finishJobs([{ fence: { jobId: done, runnerId: 'r1', attempt: 1 }, outcome: SUCCESS, rows: [] }], {
        runnerId: 'r1',
        limit: 1,
      }),
    ).rejects.toThrow('Connection lost');
    expect(await jobRow(t.db, done)).toMatchObject({ status: 'success' });
    expect(await jobRow(t.db, next)).toMatchObject({ status: 'running', runnerId: 'r1' });
    // Given back before the next claim, which takes it again.
    expect(ids(await queue.claimDueJobs('r2', 1))).toEqual([next]);
    expect(await jobRow(t.db, next)).toMatchObject({ status: 'running', runnerId: 'r2' });
  });

  test('a finish whose COMMIT took effect without an answer counts as done when asked again, and only as it was', async () => {
    const { queue, failure } = failingQueue(path);
    const id = await addJob(t.db);
    expect(ids(await queue.claimDueJobs('r1', 1))).toEqual([id]);
    const fence = { jobId: id, runnerId: 'r1', attempt: 1 };
    const rows = [{ seq: 1, stream: 'stdout' as const, output: 'done' }];
    failure.arm('after');
    await expect(queue.finishJobs([{ fence, outcome: SUCCESS, rows }])).rejects.toThrow('Connection lost');
    expect(await queue.finishJobs([{ fence, outcome: SUCCESS, rows }])).toEqual({ finished: [true], claimed: [] });
    // Another outcome, or another runner's fence, is not this finish: not done.
    const failed: Outcome = { status: 'failure', exitCode: 1, signal: null, error: 'exit_code' };
    expect((await queue.finishJobs([{ fence, outcome: failed, rows }])).finished).toEqual([false]);
    expect(
      (await queue.finishJobs([{ fence: { ...fence, runnerId: 'r2' }, outcome: SUCCESS, rows }])).finished,
    ).toEqual([false]);
    expect(await jobRow(t.db, id)).toMatchObject({ status: 'success', exitCode: 0, runnerId: 'r1' });
    expect((await storedRows(t.db, id)).map((r) => r.output)).toEqual(['done']);
  });
});
