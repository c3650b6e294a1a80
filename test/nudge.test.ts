// Wake-up nudges (README, "How an idle runner learns of a job"): whoever enqueues a job due now tells
// the runners registered in JobRunners, over UDP, with each runner's key; polling stays the fallback.
// On PostgreSQL the database tells them instead (NOTIFY in the enqueue's transaction, runners LISTEN):
// the same tests, with a fake runner that LISTENs.
import dgram from 'node:dgram';
import pg from 'pg';
import { QueryTypes } from 'sequelize';
import { createDatabase } from '../models/database';
import { NudgeListener, type NudgeTarget } from '../models/nudge';
import { Queue } from '../models/queue';
import { useDatabase, sqlOf } from './helpers/database';
import { createJobClient } from '../index';
import { insertJob, jobRow, makeRunner, RUNNER_TASKS_FILE, waitFor } from './helpers/runner';

const suite = useDatabase();

const job = (extra: object = {}) => ({
  task: 'hello',
  params: { times: 1 },
  command: null,
  createdBy: 'alice',
  ...extra,
});

/** A listener that counts the nudges it heard, registered as a runner's report says. */
async function fakeRunner(id = 'fake-runner'): Promise<{ heard: () => number; target: NudgeTarget; close(): void }> {
  let heard = 0;
  const notice = suite.db.driver.dueNotice;
  if (notice) {
    const { host, port, username, password, database } = suite.db.sequelize.config;
    const client = new pg.Client({
      host,
      port: Number(port),
      user: username,
      password: password ?? undefined,
      database,
    });
    client.on('notification', (message) => {
      if (message.channel === notice.channel) heard++;
    });
    await client.connect();
    await client.query(`LISTEN ${notice.channel}`);
    const target = { address: '127.0.0.1', port: 9, key: '0'.repeat(64) };
    return { heard: () => heard, target, close: () => void client.end() };
  }
  const listener = await NudgeListener.open('127.0.0.1', () => heard++);
  await sqlOf(suite.db).query(
    'INSERT INTO JobRunners (id, startedAt, seenAt, report) VALUES (?, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, ?)',
    { replacements: [id, JSON.stringify({ version: 2, metrics: [], nudge: listener.target })] },
  );
  return { heard: () => heard, target: listener.target, close: () => listener.close() };
}

/** Waits until `count()` reaches `n` (each nudge is a loopback datagram: it arrives, in order). */
async function until(count: () => number, n: number): Promise<void> {
  await waitFor(() => count() >= n, 10_000, 5);
  expect(count()).toBe(n);
}

describe('the enqueue side', () => {
  test('a job due now nudges each registered runner once; a delayed or replayed one does not', async () => {
    const a = await fakeRunner('a');
    const b = await fakeRunner('b');
    try {
      const queue = new Queue(suite.db);
      await queue.enqueue(job({ idempotencyKey: 'k1' }));
      await until(a.heard, 1);
      await until(b.heard, 1);
      await queue.enqueue(job({ delayMs: 60_000 }));
      await queue.enqueue(job({ runAt: new Date(Date.now() + 3_600_000) }));
      await queue.enqueue(job({ idempotencyKey: 'k1' })); // the same job again: nothing new
      await queue.enqueue(job()); // the marker: had any of the three above nudged, a would hear 3
      await until(a.heard, 2);
      await until(b.heard, 2);
    } finally {
      a.close();
      b.close();
    }
  });

  test('inside the caller’s transaction: only once it commits, never after a rollback', async () => {
    const runner = await fakeRunner();
    try {
      const queue = new Queue(suite.db);
      await suite.db.sequelize
        .transaction(async (t) => {
          await queue.enqueue(job(), t);
          throw new Error('the host changes its mind');
        })
        .catch(() => {});
      let heardBeforeCommit = -1;
      await suite.db.sequelize.transaction(async (t) => {
        await queue.enqueue(job(), t);
        // Give a datagram sent too early the time to arrive.
        await new Promise((resolve) => setTimeout(resolve, 200));
        heardBeforeCommit = runner.heard();
      });
      expect(heardBeforeCommit).toBe(0);
      await until(runner.heard, 1);
    } finally {
      runner.close();
    }
  });

  test('the library client (createJobClient) nudges after its own transaction, and after the host’s commits only', async () => {
    const runner = await fakeRunner();
    try {
      const client = createJobClient({ sequelize: suite.db.sequelize, tasksFile: RUNNER_TASKS_FILE });
      const request = { task: 'hello', params: { times: 1 }, createdBy: 'alice' };
      await client.enqueue(request);
      await until(runner.heard, 1);
      await suite.db.sequelize
        .transaction(async (transaction) => {
          await client.enqueue(request, { transaction });
          throw new Error('the host changes its mind');
        })
        .catch(() => {});
      await client.enqueue({ ...request, delaySec: 60 });
      let heardBeforeCommit = -1;
      await suite.db.sequelize.transaction(async (transaction) => {
        await client.enqueue(request, { transaction });
        // Give a datagram sent too early the time to arrive.
        await new Promise((resolve) => setTimeout(resolve, 200));
        heardBeforeCommit = runner.heard();
      });
      expect(heardBeforeCommit).toBe(1);
      // The committed one, and neither the rolled-back nor the delayed one.
      await until(runner.heard, 2);
    } finally {
      runner.close();
    }
  });

  test('a retry by hand nudges; runners not seen for a minute and malformed reports are left out', async () => {
    const runner = await fakeRunner('live');
    await sqlOf(suite.db).query(
      `INSERT INTO JobRunners (id, startedAt, seenAt, report) VALUES
        ('old', '2020-01-01 00:00:00', '2020-01-01 00:00:00', ?), ('bad', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, ?)`,
      {
        replacements: [
          JSON.stringify({ version: 2, metrics: [], nudge: runner.target }),
          JSON.stringify({ version: 2, metrics: [], nudge: { ...runner.target, address: 'example.org' } }),
        ],
      },
    );
    try {
      const queue = new Queue(suite.db);
      const id = await insertJob(suite.db, 'hello', { times: 1 });
      await sqlOf(suite.db).query("UPDATE Jobs SET status = 'failure', error = 'exit_code' WHERE id = ?", {
        replacements: [id],
      });
      const result = await queue.retryJob(id, 'admin', {}, () => ({ blockOnFailure: false }));
      expect(result.result).toBe('retried');
      await until(runner.heard, 1);
    } finally {
      runner.close();
    }
  });
});

describe('the runner side', () => {
  test('only its own key wakes it: another datagram is ignored', async () => {
    let heard = 0;
    const listener = await NudgeListener.open('127.0.0.1', () => heard++);
    const socket = dgram.createSocket('udp4');
    const send = (payload: string) =>
      new Promise<void>((resolve) => socket.send(payload, listener.target.port, '127.0.0.1', () => resolve()));
    try {
      await send('0'.repeat(64));
      await send(listener.target.key.slice(0, 63));
      await send(`${listener.target.key}x`);
      await send(listener.target.key);
      await until(() => heard, 1);
    } finally {
      socket.close();
      listener.close();
    }
  });

  test('an idle daemon runner polling once an hour runs a job enqueued now at once', async () => {
    const { runner, logs } = makeRunner(suite.db, {
      once: false,
      config: { pollMs: 3_600_000, nudgeAddress: '127.0.0.1' },
    });
    const running = runner.run();
    try {
      // Its report (with where to nudge it) is written as it starts.
      await waitFor(async () => {
        const rows = await sqlOf(suite.db).query<{ report: string }>('SELECT report FROM JobRunners', {
          type: QueryTypes.SELECT,
        });
        return rows.some((r) => suite.db.driver.dueNotice !== null || JSON.parse(r.report).nudge !== undefined);
      });
      const { id } = await new Queue(suite.db).enqueue(job());
      // Long before its next poll: only the nudge can have started it.
      await waitFor(async () => (await jobRow(suite.db, id)).status === 'success', 90_000);
      expect((await jobRow(suite.db, id)).status).toBe('success');
      expect(logs.join('\n')).toMatch(
        suite.db.driver.dueNotice
          ? /wake-up notices: LISTEN container_jobs_due/
          : /wake-up nudges on udp 127\.0\.0\.1:\d+/,
      );
    } finally {
      await runner.stop();
      await running;
    }
  });

  test('an idle runner makes one statement per poll interval, its reports included', async () => {
    const pollMs = 200;
    let counting = false;
    const statements: string[] = [];
    let reports = 0;
    let since = 0;
    // Its own handle, so that every statement it sends is seen (and only its own).
    const db = createDatabase(suite.database, {
      logging: (sql) => {
        if (!counting && /SELECT 'due' AS what/.test(sql)) {
          // From its first idle probe on: the start (a claim, a report, a reap) is not idling.
          counting = true;
          since = Date.now();
        }
        if (!counting) return;
        statements.push(sql.replace(/\s+/g, ' ').slice(0, 60));
        if (/JobRunners/.test(sql)) reports++;
      },
    });
    // The default lease and heartbeat (the reaper's own period, 15 s, is skipped while polls look for it).
    const { runner } = makeRunner(db, {
      once: false,
      reportMs: 10 * pollMs,
      config: { pollMs, leaseMs: 60_000, heartbeatMs: 5000, nudgeAddress: null },
    });
    const running = runner.run();
    try {
      await waitFor(() => reports >= 3, 120_000, 20);
      const intervals = Math.floor((Date.now() - since) / pollMs);
      // Each poll sleeps a whole interval after its statement: a slow machine only makes fewer.
      expect({ statements: statements.length, seen: statements }).toEqual({
        statements: Math.min(statements.length, intervals + 1),
        seen: statements,
      });
      expect(reports).toBeGreaterThanOrEqual(3);
    } finally {
      await runner.stop();
      await running;
      await db.close();
    }
  });
});
