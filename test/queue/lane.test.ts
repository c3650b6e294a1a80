// The lane (models/drivers/mysql-lane.ts): claims and finishes in two round trips where the database
// has one (MySQL/MariaDB). Each case runs on a queue with the lane and on one without, and both must
// leave the same rows: a fence that does not hold, a grouped job, a refill, a failed statement.
import { QueryTypes } from 'sequelize';
import { injectReplacements } from 'sequelize/lib/utils/sql';
import type { NewJob } from '../../models/enqueue';
import { openMysqlLane } from '../../models/drivers/mysql-lane';
import { Queue, type Fence, type Outcome } from '../../models/queue';
import { sqlOf } from '../helpers/database';
import { waitFor } from '../helpers/runner';
import { addJob, dialect, jobRow, makeRunning, outputRows, setJob, storedRows, useQueueDatabase } from './harness';

const t = useQueueDatabase('lane');

const SUCCESS: Outcome = { status: 'success', exitCode: 0, signal: null, error: null };
const FAILED: Outcome = { status: 'failure', exitCode: 2, signal: null, error: 'exit_code' };
const fence = (jobId: number, runnerId = 'r1', attempt = 1): Fence => ({ jobId, runnerId, attempt });
const ids = (jobs: { id: number }[]) => jobs.map((j) => j.id);

function grouped(key: string): NewJob {
  return { task: 'echo', params: { key }, command: 'echo', createdBy: 'alice', group: { key, blockOnFailure: false } };
}

/** The server's connections to this database but the one asking (MySQL): their ids. */
async function otherConnections(): Promise<number[]> {
  const rows = await sqlOf(t.db).query<{ id: number }>(
    'SELECT ID AS id FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> CONNECTION_ID()',
    { type: QueryTypes.SELECT },
  );
  return rows.map((r) => Number(r.id));
}

test(`the database handle has a lane where the driver has one (${dialect}: ${dialect === 'mysql' ? 'yes' : 'no'})`, () => {
  expect(t.db.lane === null).toBe(dialect !== 'mysql');
});

(dialect === 'mysql' ? test : test.skip)(
  "the lane's statements carry their values as Sequelize's replacements would (quotes, backslashes, lists, NULL, a '?' or ':name' inside a value)",
  () => {
    const sql = t.db.driver.statements;
    const cases: [string, Record<string, unknown> | unknown[]][] = [
      [
        sql.finishUngrouped,
        {
          status: 'failure',
          exitCode: null,
          signal: 'SIGKILL',
          error: "it's a \\ ? :x",
          command: null,
          ids: [1, 2, 3],
          runnerId: 'host:1',
          attempt: 2,
        },
      ],
      [sql.claimMark, { runnerId: 'a"b`c', ids: [5] }],
      [sql.insertOutput(2), [1, 1, 'stdout', 'a:b ? c', 2, 2, 'system', 'línea \u{1F600}']],
    ];
    for (const [statement, values] of cases) {
      expect(t.db.lane!.format(statement, values)).toBe(
        injectReplacements(statement, (t.db.sequelize as unknown as { dialect: never }).dialect, values),
      );
    }
    expect(() => t.db.lane!.format(sql.claimMark, { ids: [1] })).toThrow(/:runnerId/);
  },
);

describe.each([
  ['with the lane', true],
  ['statement by statement', false],
])('%s', (_name, lane) => {
  const queue = () => new Queue(t.db, undefined, { lane });

  test('a batch whose fences all hold: outcomes by kind, every row stored, successors claimed in order with their lastSeq', async () => {
    const [a, b, c] = [await addJob(t.db), await addJob(t.db), await addJob(t.db)];
    for (const id of [a, b, c]) await makeRunning(t.db, id, 'r1');
    const next = await addJob(t.db, { priority: 5 });
    const later = await addJob(t.db);
    await sqlOf(t.db).query(
      "INSERT INTO JobStatuses (jobId, seq, stream, output) VALUES (:later, 1, 'system', 'attempt 1 put back')",
      { replacements: { later } },
    );

    const { finished, claimed } = await queue().finishJobs(
      [
        { fence: fence(a), outcome: SUCCESS, rows: outputRows(1, ['a done'], 'system') },
        { fence: fence(b), outcome: FAILED, rows: outputRows(1, ['b out', 'b failed']) },
        { fence: fence(c), outcome: SUCCESS, rows: [] },
      ],
      { runnerId: 'r1', limit: 2 },
    );

    expect(finished).toEqual([true, true, true]);
    expect(claimed.map((j) => [j.id, j.lastSeq, typeof j.params])).toEqual([
      [next, 0, 'object'],
      [later, 1, 'object'],
    ]);
    expect(await jobRow(t.db, a)).toMatchObject({ status: 'success', exitCode: 0 });
    expect(await jobRow(t.db, b)).toMatchObject({
      status: 'failure',
      exitCode: 2,
      error: 'exit_code',
    });
    expect(await jobRow(t.db, c)).toMatchObject({ status: 'success' });
    expect((await storedRows(t.db, b)).map((r) => r.output)).toEqual(['b out', 'b failed']);
    for (const id of [next, later]) expect(await jobRow(t.db, id)).toMatchObject({ status: 'running', runnerId: 'r1' });
  });

  test('a batch where one fence no longer holds (another attempt, another runner, reaped): only the others are written, and no successor is lost', async () => {
    const [mine, retried, taken, reaped] = [
      await addJob(t.db),
      await addJob(t.db),
      await addJob(t.db),
      await addJob(t.db),
    ];
    for (const id of [mine, retried, reaped]) await makeRunning(t.db, id, 'r1');
    await makeRunning(t.db, taken, 'r2');
    await setJob(t.db, retried, { attempt: 2 });
    await setJob(t.db, reaped, { status: 'failure', error: 'runner_lost' });
    const next = await addJob(t.db);

    const { finished, claimed } = await queue().finishJobs(
      [mine, retried, taken, reaped].map((id) => ({
        fence: fence(id),
        outcome: SUCCESS,
        rows: outputRows(1, [`job ${id} ends`], 'system'),
      })),
      { runnerId: 'r1', limit: 1 },
    );

    expect(finished).toEqual([true, false, false, false]);
    expect(ids(claimed)).toEqual([next]);
    expect(await jobRow(t.db, mine)).toMatchObject({ status: 'success' });
    expect(await jobRow(t.db, retried)).toMatchObject({ status: 'running', runnerId: 'r1' });
    expect(await jobRow(t.db, taken)).toMatchObject({ status: 'running', runnerId: 'r2' });
    expect(await jobRow(t.db, reaped)).toMatchObject({ status: 'failure', error: 'runner_lost' });
    for (const id of [retried, taken, reaped]) expect(await storedRows(t.db, id)).toEqual([]);
    expect((await storedRows(t.db, mine)).map((r) => r.output)).toEqual([`job ${mine} ends`]);
  });

  test("a grouped job's finish passes its group on: the next job of the group is the refill's successor", async () => {
    const q = queue();
    const [a1, a2] = ids(await q.enqueueMany([grouped('ct-101'), grouped('ct-101')]));
    const loose = await addJob(t.db);
    expect(ids(await q.claimDueJobs('r1', 1))).toEqual([a1]);

    const { finished, claimed } = await q.finishJobs([{ fence: fence(a1), outcome: SUCCESS, rows: [] }], {
      runnerId: 'r1',
      limit: 2,
    });

    expect(finished).toEqual([true]);
    expect(ids(claimed).sort((x, y) => x - y)).toEqual([a2, loose].sort((x, y) => x - y));
  });

  test('a claim takes due jobs in priority order, marks them running, and finds nothing once none is due', async () => {
    const low = await addJob(t.db, { priority: -1 });
    const high = await addJob(t.db, { priority: 9 });
    const mid = await addJob(t.db);

    expect(ids(await queue().claimDueJobs('r7', 2))).toEqual([high, mid]);
    expect(ids(await queue().claimDueJobs('r7', 5))).toEqual([low]);
    expect(await queue().claimDueJobs('r7', 5)).toEqual([]);
    for (const id of [low, high, mid])
      expect(await jobRow(t.db, id)).toMatchObject({ status: 'running', runnerId: 'r7' });
  });

  // A trigger refuses one output line (INSERT IGNORE would let a bad value through as a warning).
  (dialect === 'mysql' ? test : test.skip)(
    'a statement refused mid-step undoes the whole step: the outcome written before it is rolled back',
    async () => {
      const q = queue();
      const id = await addJob(t.db);
      await makeRunning(t.db, id, 'r1');
      await sqlOf(t.db).query('DROP TRIGGER IF EXISTS refuse_line');
      await sqlOf(t.db).query(
        `CREATE TRIGGER refuse_line BEFORE INSERT ON JobStatuses FOR EACH ROW
         IF NEW.output = 'refuse me' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by the test'; END IF`,
      );
      try {
        await expect(
          q.finishJobs([{ fence: fence(id), outcome: SUCCESS, rows: outputRows(1, ['refuse me'], 'system') }]),
        ).rejects.toThrow(/refused by the test/);
        expect(await jobRow(t.db, id)).toMatchObject({ status: 'running', runnerId: 'r1' });
      } finally {
        await sqlOf(t.db).query('DROP TRIGGER refuse_line');
      }
      // The queue goes on: the same job finishes on the next try.
      expect((await q.finishJobs([{ fence: fence(id), outcome: SUCCESS, rows: [] }])).finished).toEqual([true]);
      expect(await jobRow(t.db, id)).toMatchObject({ status: 'success' });
    },
  );
});

(dialect === 'mysql' ? test : test.skip)(
  'a lane connection the server killed: the next claim fails as a connection error, and the one after works on a new connection',
  async () => {
    const queue = new Queue(t.db);
    const first = await addJob(t.db);
    expect(ids(await queue.claimDueJobs('r1', 1))).toEqual([first]);
    const second = await addJob(t.db);
    // Every other connection to the database: the lane's, and idle ones of the pool (which replaces them).
    for (const id of await otherConnections())
      await sqlOf(t.db)
        .query(`KILL CONNECTION ${id}`)
        .catch(() => undefined);

    let claimed: number[] = [];
    for (let attempt = 0; attempt < 3 && claimed.length === 0; attempt++) {
      try {
        claimed = ids(await queue.claimDueJobs('r1', 1));
      } catch (err) {
        expect(queue.isLockConflict(err)).toBe(false);
      }
    }

    expect(claimed).toEqual([second]);
    expect(await jobRow(t.db, second)).toMatchObject({ status: 'running', runnerId: 'r1' });
  },
);

/** The server's id of the connection a lane session runs on. */
async function sessionConnection(lane: NonNullable<typeof t.db.lane>): Promise<number> {
  const [rows] = await lane.session((send) => send(['SELECT CONNECTION_ID() AS id']));
  return Number((rows as { id: number }[])[0].id);
}

(dialect === 'mysql' ? test : test.skip)(
  'a lane keeps a connection between sessions, and closes one that waited longer than its idle time (as the pool does)',
  async () => {
    const first = await sessionConnection(t.db.lane!);
    expect(await sessionConnection(t.db.lane!)).toBe(first);

    const brief = openMysqlLane(t.db.sequelize, { idleMs: 0 });
    try {
      const before = await sessionConnection(brief);
      const after = await sessionConnection(brief);
      expect(after).not.toBe(before);
      // The server lets go of the closed one once it sees the socket close.
      await waitFor(async () => !(await otherConnections()).includes(before));
    } finally {
      await brief.close();
    }
  },
);
