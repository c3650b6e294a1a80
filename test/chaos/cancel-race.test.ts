// Chaos: cancel requests racing with jobs' normal exits. Whoever wins, each job ends in exactly one
// consistent final state, never stuck running, and its last system row says the same as its status.
import { QueryTypes } from 'sequelize';
import { Queue, type CancelResult } from '../../models/queue';

import { runningJobsOf, startRunner, waitForExit, worker, useChaosDatabase } from '../helpers/chaos';
import { expectSeqsInOrder, insertJob, jobRow, statusRows, waitFor } from '../helpers/runner';
import { sqlOf } from '../helpers/database';

const JOBS = 50;

const chaos = useChaosDatabase('cancel');

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

test(`${JOBS} short jobs cancelled at random moments around their exit: one consistent final state each`, async () => {
  const queue = new Queue(chaos.db);
  const napMs = new Map<number, number>();
  for (let i = 0; i < JOBS; i++) {
    const ms = 100 + Math.floor(Math.random() * 300);
    napMs.set(await insertJob(chaos.db, 'nap', { seconds: (ms / 1000).toFixed(3) }), ms);
  }
  const ids = [...napMs.keys()];
  const runner = startRunner(chaos.config, {
    id: `chaos-cancel-w${worker}`,
    env: { JOB_RUNNER_CONCURRENCY: '8', JOB_RUNNER_HEARTBEAT_MS: '100', JOB_RUNNER_POLL_MS: '50' },
  });

  // A few are cancelled while (probably) still pending; the rest at a random moment from a little
  // before their expected exit to a little after it (the runner notices a request within a heartbeat).
  const results = new Map<number, Promise<CancelResult>>();
  const cancelAfter = (id: number, ms: number) =>
    results.set(
      id,
      sleep(ms).then(() => queue.cancelJob(id, 'chaos')),
    );
  for (const id of ids.slice(-5)) cancelAfter(id, Math.random() * 200);
  await waitFor(
    async () => {
      const rows = await sqlOf(chaos.db).query<{ id: number; status: string }>('SELECT id, status FROM Jobs', {
        type: QueryTypes.SELECT,
      });
      for (const row of rows) {
        const id = Number(row.id);
        if (row.status === 'pending' || results.has(id)) continue;
        cancelAfter(id, Math.max(0, napMs.get(id)! - 150 + Math.random() * 250));
      }
      return results.size === JOBS;
    },
    60_000,
    10,
  );
  expect(results.size).toBe(JOBS);
  const outcomes = new Map<number, CancelResult>();
  for (const [id, result] of results) outcomes.set(id, await result);

  await waitFor(async () => {
    const [row] = await sqlOf(chaos.db).query<{ n: number }>(
      "SELECT COUNT(*) AS n FROM Jobs WHERE status IN ('pending', 'running')",
      { type: QueryTypes.SELECT },
    );
    return Number(row.n) === 0;
  }, 60_000);

  const seen = { cancelledPending: 0, cancelledRunning: 0, successRequested: 0, successPlain: 0 };
  for (const id of ids) {
    const job = await jobRow(chaos.db, id);
    const rows = await statusRows(chaos.db, id);
    const result = outcomes.get(id)!;
    expectSeqsInOrder(rows);
    // Exactly one system row, the last one, and it agrees with the status.
    const system = rows.filter((r) => r.stream === 'system');
    expect(system).toHaveLength(1);
    expect(rows.at(-1)).toBe(system[0]);
    expect(job.finishedAt).not.toBeNull();
    if (job.status === 'cancelled') {
      expect(job).toMatchObject({ error: 'cancelled', cancelledBy: 'chaos' });
      expect(job.cancelRequestedAt).not.toBeNull();
      if (result.result === 'cancelled') {
        seen.cancelledPending++;
        expect(job).toMatchObject({ runnerId: null, startedAt: null });
        expect(system[0].output).toBe('cancelled by chaos before it started');
      } else {
        seen.cancelledRunning++;
        expect(result).toEqual({ result: 'requested', status: 'running' });
        expect(job.runnerId).toBe(runner.id);
        // A job claimed ahead (running, on this runner) may be cancelled while it waits for a slot.
        expect(system[0].output).toMatch(/^cancelled on request (after |before it started$)/);
      }
    } else {
      expect(job).toMatchObject({ status: 'success', exitCode: 0, signal: null, error: null, runnerId: runner.id });
      expect(system[0].output).toMatch(/^succeeded in /);
      if (result.result === 'requested') {
        seen.successRequested++;
        expect(job.cancelRequestedAt).not.toBeNull();
        expect(job.cancelledBy).toBe('chaos');
      } else {
        seen.successPlain++;
        expect(result).toEqual({ result: 'finished', status: 'success' });
        expect(job).toMatchObject({ cancelRequestedAt: null, cancelledBy: null });
      }
    }
  }
  expect(Object.values(seen).reduce((a, b) => a + b)).toBe(JOBS);

  expect(await runningJobsOf(chaos.db, runner.id)).toEqual([]);
  runner.child.kill('SIGTERM');
  expect(await waitForExit(runner)).toEqual({ code: 0, signal: null });
  expect(runner.log()).not.toMatch(/runner error|unhandled|no longer owned|lease was taken/);
  // The mix varies from run to run (typically 5 / 15 / 10 / 20); some requests must have met a running job.
  expect(seen.cancelledRunning + seen.successRequested).toBeGreaterThan(0);
});
