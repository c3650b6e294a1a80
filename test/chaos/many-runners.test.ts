// Chaos: five runners started together on thousands of due jobs (--once): each job runs exactly once.
import { QueryTypes } from 'sequelize';
import { dialect, sqlOf } from '../helpers/database';
import { startRunner, waitForExitWhileProgressing, worker, useChaosDatabase } from '../helpers/chaos';

const RUNNERS = 5;
// 5,000 on MySQL (SKIP LOCKED claims under contention); SQLite serialises writers, so fewer prove the same there.
const JOBS = dialect === 'mysql' ? 5000 : 500;

const chaos = useChaosDatabase('many');

// No wall-clock bound: see waitForExitWhileProgressing.
jest.setTimeout(30 * 60_000);

test(`${RUNNERS} runners × ${JOBS} jobs at once: every job ran exactly once, all success`, async () => {
  const values = Array.from({ length: JOBS }, () => "('print-id', '{}', 'chaos')");
  for (let i = 0; i < values.length; i += 1000) {
    await sqlOf(chaos.db).query(
      `INSERT INTO Jobs (task, params, createdBy) VALUES ${values.slice(i, i + 1000).join(', ')}`,
    );
  }

  const runners = Array.from({ length: RUNNERS }, (_, i) =>
    startRunner(chaos.config, {
      id: `chaos-many-${i}-w${worker}`,
      once: true,
      // Leases are not what this test is about: ten runner processes on two cores may be slow to renew.
      env: { JOB_RUNNER_CONCURRENCY: '4', JOB_RUNNER_HEARTBEAT_MS: '1000', JOB_RUNNER_LEASE_MS: '30000' },
    }),
  );
  // However long a loaded machine takes: the runners fail only if the finished count stops growing.
  const finished = async () =>
    (
      await sqlOf(chaos.db).query<{ n: number }>("SELECT COUNT(*) AS n FROM Jobs WHERE status = 'success'", {
        type: QueryTypes.SELECT,
      })
    )[0].n;
  const exits = await waitForExitWhileProgressing(runners, async () => Number(await finished()));
  expect(exits).toEqual(runners.map(() => ({ code: 0, signal: null })));
  for (const runner of runners) {
    const trouble = runner
      .log()
      .split('\n')
      .filter((line) =>
        /runner error|unhandled|no longer owned|lease was taken|reaped|database unavailable/.test(line),
      );
    expect(trouble).toEqual([]);
  }

  const jobs = await sqlOf(chaos.db).query<{ id: number; status: string; runnerId: string }>(
    'SELECT id, status, runnerId FROM Jobs ORDER BY id',
    { type: QueryTypes.SELECT },
  );
  expect(jobs).toHaveLength(JOBS);
  expect(jobs.filter((j) => j.status !== 'success')).toEqual([]);
  // The work was shared.
  expect(new Set(jobs.map((j) => j.runnerId)).size).toBeGreaterThan(1);

  // Each job printed its own JOB_ID: every id printed exactly once, by that job, and nothing else printed.
  const printed = await sqlOf(chaos.db).query<{ jobId: number; output: string }>(
    "SELECT jobId, output FROM JobStatuses WHERE stream <> 'system'",
    { type: QueryTypes.SELECT },
  );
  expect(printed.filter((r) => r.output !== String(r.jobId))).toEqual([]);
  const times = new Map<number, number>();
  for (const row of printed) times.set(Number(row.output), (times.get(Number(row.output)) ?? 0) + 1);
  expect(times.size).toBe(JOBS);
  expect([...times.values()].every((n) => n === 1)).toBe(true);
  expect([...times.keys()].sort((a, b) => a - b)).toEqual(jobs.map((j) => Number(j.id)));
});
