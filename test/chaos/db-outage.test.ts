// Chaos: the database goes away for 20 s in the middle of a job (a TCP proxy between the runner and
// MariaDB or PostgreSQL cuts every connection, LISTEN's too, and refuses new ones), then comes back.
// Database servers only: SQLite is a file.
import type { DatabaseConfig } from '../../config';
import type { Database } from '../../models/database';
import { dialect, freshDatabase } from '../helpers/database';
import {
  TcpProxy,
  countInLog,
  killRunners,
  printedPids,
  runningJobsOf,
  startRunner,
  waitForExit,
  waitForFinal,
  waitForLog,
  worker,
} from '../helpers/chaos';
import {
  expectSeqsInOrder,
  insertJob,
  isAlive,
  jobRow,
  killQuietly,
  lines,
  statusRows,
  waitFor,
} from '../helpers/runner';

const LINES = 300; // one every 100 ms: about 30 s
const OUTAGE_MS = 20_000;
const PARTITION_LEASE_MS = 6000;
/** Upper bound on the partition: it heals as soon as the runner has stopped its job and the job was reaped. */
const PARTITION_MS = 30_000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** How long a runner may take to start and run a job's first line on a loaded machine (not a timed assertion). */
const STARTED_WITHIN_MS = 120_000;
// Each test starts runners and jobs before its outage: generous, for a machine under load.
jest.setTimeout(6 * 60_000);

/** The runner's database health changes, in order: 'down' (unavailable) and 'up' (reachable again). */
function healthChanges(log: string): string[] {
  return [...log.matchAll(/database (unavailable|reachable again)/g)].map((m) =>
    m[1] === 'unavailable' ? 'down' : 'up',
  );
}

const describeServer = dialect === 'sqlite' ? describe.skip : describe;
if (dialect === 'sqlite') {
  test.skip('database outage: database servers only (the proxy cuts TCP connections; SQLite has none)', () => {});
}

describeServer(`database outage (${dialect}, through a TCP proxy)`, () => {
  let db: Database;
  let config: Extract<DatabaseConfig, { dialect: 'mysql' | 'postgres' }>;
  let proxy: TcpProxy;
  const seenPids: number[] = [];

  beforeAll(async () => {
    const fresh = await freshDatabase(`cj_test_chaos_outage_w${worker}`);
    db = fresh.db;
    config = fresh.config as typeof config;
    proxy = new TcpProxy(config.host, config.port);
    await proxy.listen();
  });

  afterAll(async () => {
    killRunners();
    killQuietly(seenPids);
    await proxy.close();
    await db.close();
  });

  test('a 20 s outage mid-job: the job keeps running, every line is stored once and in order, the runner logs each change once', async () => {
    const id = await insertJob(db, 'tick', { count: LINES, everyMs: 100, tailMs: 0 });
    const runner = startRunner(
      { ...config, host: '127.0.0.1', port: proxy.port },
      // A lease longer than the outage: the job stays this runner's throughout.
      { id: `chaos-outage-w${worker}`, env: { JOB_RUNNER_HEARTBEAT_MS: '200', JOB_RUNNER_LEASE_MS: '60000' } },
    );
    // The test's own connection bypasses the proxy: it watches the database while the runner cannot.
    await waitFor(async () => lines(await statusRows(db, id), 'stdout').length > 30, STARTED_WITHIN_MS);
    const [jobPid] = printedPids(await statusRows(db, id));
    seenPids.push(jobPid);
    expect(proxy.accepted).toBeGreaterThan(0);

    await proxy.cut();
    // A commit already under way when the connections went may still land; after a second nothing can.
    await sleep(1000);
    const storedEarly = (await statusRows(db, id)).length;
    await sleep(OUTAGE_MS - 1000);
    // The job and the runner lived through it; nothing was written meanwhile.
    expect(isAlive(jobPid)).toBe(true);
    expect(runner.exit).toBeNull();
    expect((await statusRows(db, id)).length).toBe(storedEarly);
    expect(countInLog(runner, /database unavailable/)).toBe(1);
    await proxy.resume();

    const job = await waitForFinal(db, id, 90_000);
    expect(job).toMatchObject({ status: 'success', exitCode: 0, error: null, runnerId: runner.id });
    const rows = await statusRows(db, id);
    expectSeqsInOrder(rows);
    expect(lines(rows, 'stdout')).toEqual([
      JSON.stringify({ pid: jobPid, grandchildren: [] }),
      ...Array.from({ length: LINES }, (_, i) => `line ${i + 1}`),
    ]);
    expect(rows.at(-1)).toMatchObject({ stream: 'system', output: expect.stringMatching(/^succeeded in/) });

    // Still alive after all that; a SIGTERM ends it cleanly.
    expect(runner.exit).toBeNull();
    runner.child.kill('SIGTERM');
    expect(await waitForExit(runner)).toEqual({ code: 0, signal: null });
    expect(await runningJobsOf(db, runner.id)).toEqual([]);
    const log = runner.log();
    expect(countInLog(runner, /database unavailable/)).toBe(1);
    expect(countInLog(runner, /database reachable again/)).toBe(1);
    expect(healthChanges(log)).toEqual(['down', 'up']);
    expect(log).not.toMatch(/runner error|unhandled|no longer owned|lease was taken/);
  });

  test('a partition longer than the lease (nothing reset, nothing gets through): the runner stops its job; another runner reaps it', async () => {
    const id = await insertJob(db, 'sleep', { seconds: 300, mode: 'tree' });
    const cutOff = startRunner(
      { ...config, host: '127.0.0.1', port: proxy.port },
      {
        id: `chaos-partition-w${worker}`,
        env: { JOB_RUNNER_HEARTBEAT_MS: '200', JOB_RUNNER_LEASE_MS: `${PARTITION_LEASE_MS}` },
      },
    );
    await waitFor(async () => lines(await statusRows(db, id), 'stdout').length > 0, STARTED_WITHIN_MS);
    const pids = printedPids(await statusRows(db, id));
    seenPids.push(...pids);
    // A second runner with a direct line to the database: it will reap the job once the lease runs out.
    const reaper = startRunner(config, {
      id: `chaos-partition-reaper-w${worker}`,
      env: { JOB_RUNNER_HEARTBEAT_MS: '200', JOB_RUNNER_LEASE_MS: `${PARTITION_LEASE_MS}` },
    });

    proxy.partition();
    try {
      // Its statements hang rather than fail; still, past the lease it must stop the job it can no longer renew.
      await waitFor(() => pids.every((pid) => !isAlive(pid)), PARTITION_MS - 1000);
      expect(pids.filter(isAlive)).toEqual([]);
      expect(cutOff.exit).toBeNull();
      const job = await waitForFinal(db, id, PARTITION_MS);
      expect(job).toMatchObject({ status: 'failure', error: 'runner_lost', runnerId: cutOff.id });
    } finally {
      proxy.heal();
    }

    // Back in touch: it says so, learns the job is gone (its fenced finish finds it reaped), writes nothing for it.
    await waitForLog(cutOff, new RegExp(`job ${id}: its lease was taken`));
    cutOff.child.kill('SIGTERM');
    reaper.child.kill('SIGTERM');
    expect(await waitForExit(cutOff)).toEqual({ code: 0, signal: null });
    expect(await waitForExit(reaper)).toEqual({ code: 0, signal: null });
    const rows = await statusRows(db, id);
    expectSeqsInOrder(rows);
    expect(rows.at(-1)).toMatchObject({
      stream: 'system',
      output: expect.stringMatching(new RegExp(`^runner ${cutOff.id} stopped renewing its lease`)),
    });
    expect(await jobRow(db, id)).toMatchObject({ status: 'failure', error: 'runner_lost', runnerId: cutOff.id });
    const log = cutOff.log();
    expect(log).toMatch(
      new RegExp(`job ${id}: lease not renewed for \\d+ s \\(over JOB_RUNNER_LEASE_MS\\); stopping it`),
    );
    expect(log).toMatch(new RegExp(`job ${id}: its lease was taken`));
    // Silence is trouble too: logged when it began and when it ended (once per change: the two alternate;
    // a renewal slowed by a loaded machine may add a pair of its own, so they are not counted here).
    expect(log).toMatch(/database unavailable \(no answer to the lease renewal for \d+ s\)/);
    expect(healthChanges(log).join(' ')).toMatch(/^(down up ?)+$/);
    expect(log).not.toMatch(/runner error|unhandled/);
  });
});
