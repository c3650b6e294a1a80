// GET /runners (admins): each runner's last report (JobRunners) with its slots, host and nudge
// address, the jobs it runs now from the Jobs table, and a stale mark for one that stopped reporting.
import os from 'node:os';
import { RUNNER_REPORT_VERSION } from '../models/metrics';
import { RUNNER_LIST_WINDOW_SEC, type RunnerView } from '../models/runners';
import { seedSqlFor } from '../models/sql';
import type { Runner } from '../runner/runner';
import { useApi } from './helpers/api';
import { insertJob, jobRow, makeRunner, waitFor } from './helpers/runner';

const ctx = useApi({ users: { alice: false, root: true } });

/** A runner as the JSON carries it: its times as text. */
type RunnerBody = {
  [K in keyof RunnerView]: RunnerView[K] extends Date | null ? string | null : RunnerView[K];
};

interface ListBody {
  runners: RunnerBody[];
  notListed: number;
  staleAfterReports: number;
}

const listRunners = async () => (await ctx.as.root.get('/runners').expect(200)).body as ListBody;

/** A report row as a runner of `reportMs` writes it, last seen `ageMs` ago on the database clock. */
async function insertReport(id: string, ageMs: number, report: object | string): Promise<void> {
  const text = typeof report === 'string' ? report : JSON.stringify(report);
  const { driver } = ctx.db;
  await ctx.db.sequelize.query(
    seedSqlFor(
      driver.dialect,
      `INSERT INTO JobRunners (id, startedAt, seenAt, report) VALUES (?, ${driver.ago(ageMs + 60_000)}, ${driver.ago(ageMs)}, ?)`,
    ),
    { replacements: [id, text] },
  );
}

const slotsReport = (slots: number, extra: object = {}) => ({
  version: RUNNER_REPORT_VERSION,
  metrics: [
    { name: 'container_jobs_runner_slots', help: 'slots', type: 'gauge', values: [{ labels: {}, value: slots }] },
    { name: 'container_jobs_runner_busy_slots', help: 'busy', type: 'gauge', values: [{ labels: {}, value: 0 }] },
  ],
  ...extra,
});

describe('GET /runners', () => {
  let runner: Runner | null = null;
  afterEach(async () => {
    await runner?.stopNow();
    runner = null;
  });

  test('an admin sees a live runner: its slots, host, address, last report and the job it runs', async () => {
    ({ runner } = makeRunner(ctx.db, { once: false, config: { concurrency: 3, nudgeAddress: '127.0.0.1' } }));
    const running = runner.run();
    const jobId = await insertJob(ctx.db, 'ticker', {}, { createdBy: 'alice' });
    await waitFor(async () => (await jobRow(ctx.db, jobId)).status === 'running');
    const { runners, notListed, staleAfterReports } = await listRunners();
    expect(notListed).toBe(0);
    expect(staleAfterReports).toBe(3);
    expect(runners).toHaveLength(1);
    const [seen] = runners;
    expect(seen).toMatchObject({
      id: 'test-runner',
      host: os.hostname(),
      pid: process.pid,
      nodeVersion: process.version,
      reportEverySec: 15,
      stopped: false,
      stale: false,
      slots: 3,
      draining: false,
    });
    // PostgreSQL wakes runners with NOTIFY: they hear no datagrams, so they give no address.
    if (ctx.db.dialect === 'postgres') expect(seen.nudgeAddress).toBeNull();
    else expect(seen.nudgeAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(seen.reportAgeSec).toBeGreaterThanOrEqual(0);
    expect(seen.reportAgeSec).toBeLessThan(45);
    expect(Number.isNaN(Date.parse(seen.lastReportAt!))).toBe(false);
    expect(Date.parse(seen.startedAt!)).toBeLessThanOrEqual(Date.parse(seen.lastReportAt!));
    expect(seen.runningJobs).toEqual([
      { id: jobId, task: 'ticker', createdBy: 'alice', startedAt: expect.any(String), attempt: 1 },
    ]);
    // The nudge key lets anyone who has it wake the runner: it stays in the database.
    const raw = JSON.stringify(
      await ctx.as.root
        .get('/runners')
        .expect(200)
        .then((r) => r.body),
    );
    expect(raw).not.toMatch(/"key"|[0-9a-f]{64}/);

    // Stopped at a signal: its last report says so (it is never stale), and the job is no longer its.
    await runner.stop(0);
    await running;
    runner = null;
    const [stopped] = (await listRunners()).runners;
    expect(stopped).toMatchObject({ id: 'test-runner', stopped: true, stale: false, runningJobs: [] });
  });

  test('a runner silent for more than three report intervals is stale, listed after the live ones', async () => {
    await insertReport('live:1', 1000, slotsReport(2, { reportMs: 15_000, host: 'live' }));
    await insertReport('dead:2', 120_000, slotsReport(4, { reportMs: 15_000, host: 'dead' }));
    // A runner that reports every 5 minutes (a long heartbeat) is not stale after 2.
    await insertReport('slow:3', 120_000, slotsReport(1, { reportMs: 300_000 }));
    // A report without an interval (an older runner) counts 15 s.
    await insertReport('old:4', 50_000, slotsReport(1));
    // One that said it stopped is not expected again: stopped, never stale.
    await insertReport('done:5', 600_000, slotsReport(2, { reportMs: 15_000, stopped: true }));
    const jobId = await insertJob(ctx.db, 'ticker', {}, { createdBy: 'alice' });
    await ctx.db.sequelize.query(
      seedSqlFor(
        ctx.db.dialect,
        `UPDATE Jobs SET status = 'running', runnerId = 'dead:2', startedAt = ${ctx.db.driver.now}, heartbeatAt = ${ctx.db.driver.now} WHERE id = ?`,
      ),
      { replacements: [jobId] },
    );
    const { runners } = await listRunners();
    expect(runners.map((r) => [r.id, r.stale, r.stopped])).toEqual([
      ['live:1', false, false],
      ['slow:3', false, false],
      ['old:4', true, false],
      ['dead:2', true, false],
      ['done:5', false, true],
    ]);
    const dead = runners.find((r) => r.id === 'dead:2')!;
    expect(dead).toMatchObject({ host: 'dead', slots: 4, reportEverySec: 15 });
    expect(dead.reportAgeSec).toBeGreaterThanOrEqual(119);
    // Its job still says it runs there (until a reaper finds its lease expired).
    expect(dead.runningJobs.map((j) => j.id)).toEqual([jobId]);
  });

  test('runners silent for a day are counted, not listed; an unreadable report is listed without figures', async () => {
    await insertReport('gone:1', (RUNNER_LIST_WINDOW_SEC + 60) * 1000, slotsReport(2));
    await insertReport('gone:2', (RUNNER_LIST_WINDOW_SEC + 600) * 1000, slotsReport(2));
    await insertReport('odd:3', 1000, 'not json');
    await insertReport('odd:4', 1000, { version: 99, host: 7, pid: -1, nudge: { address: 'x' } });
    const { runners, notListed } = await listRunners();
    expect(notListed).toBe(2);
    expect(runners.map((r) => r.id)).toEqual(['odd:3', 'odd:4']);
    for (const r of runners) {
      expect(r).toMatchObject({
        host: null,
        pid: null,
        nodeVersion: null,
        nudgeAddress: null,
        slots: null,
        busySlots: null,
        draining: false,
        stopped: false,
        stale: false,
        runningJobs: [],
      });
    }
  });

  test('only admins: another user gets 403, no user 401', async () => {
    await insertReport('live:1', 1000, slotsReport(2));
    const res = await ctx.as.alice.get('/runners').expect(403);
    expect(res.body.error).toEqual({ code: 'admin_only', message: 'runners are for admins' });
    const anonymous = await ctx.api.agent().get('/runners').expect(401);
    expect(anonymous.body.error.code).toBe('unauthenticated');
  });
});
