// Chaos: SIGTERM drains (jobs finish within the grace, the rest are stopped), a second SIGTERM stops at once.

import {
  printedPids,
  runningJobsOf,
  startRunner,
  waitForExit,
  waitForLog,
  worker,
  type RunnerProcess,
  useChaosDatabase,
} from '../helpers/chaos';
import { expectSeqsInOrder, insertJob, jobRow, lines, statusRows, survivors, waitFor } from '../helpers/runner';

const chaos = useChaosDatabase('shutdown');

/** Starts a runner on one job of `seconds` (with a sleeping grandchild) and returns once it runs. */
async function runnerOnJob(seconds: number, name: string, env: Record<string, string> = {}) {
  const id = await insertJob(chaos.db, 'sleep', { seconds, mode: 'tree' });
  const runner = startRunner(chaos.config, { id: `chaos-${name}-w${worker}`, env });
  await waitFor(async () => lines(await statusRows(chaos.db, id), 'stdout').length > 0);
  const pids = printedPids(await statusRows(chaos.db, id));
  chaos.seenPids.push(...pids);
  return { id, runner, pids };
}

/** After the runner exited 0, nothing of it is left running, in the database or on the host. */
/** The job ended failure/shutdown by `signal`, in order, its last system row saying so. */
async function expectShutdownRecorded(id: number, runner: RunnerProcess, signal: 'SIGTERM' | 'SIGKILL') {
  const job = await jobRow(chaos.db, id);
  expect(job).toMatchObject({ status: 'failure', error: 'shutdown', signal, runnerId: runner.id });
  const rows = await statusRows(chaos.db, id);
  expectSeqsInOrder(rows);
  expect(rows.at(-1)).toMatchObject({
    stream: 'system',
    output: expect.stringContaining(`because the runner shut down (killed by ${signal})`),
  });
}

async function expectCleanExit(runner: RunnerProcess, pids: number[]) {
  const exit = await waitForExit(runner);
  if (exit?.code !== 0) console.log(runner.log()); // why, should it not exit 0
  expect(exit).toEqual({ code: 0, signal: null });
  expect(await runningJobsOf(chaos.db, runner.id)).toEqual([]);
  expect(await survivors(pids)).toEqual([]);
  expect(runner.log()).not.toMatch(/runner error|unhandled|no longer owned|outcome\(s\) unrecorded/);
}

test('SIGTERM: a job that ends within the grace finishes with success, no new claims, exit 0', async () => {
  const { id, runner, pids } = await runnerOnJob(5, 'drain');
  runner.child.kill('SIGTERM');
  // Once the runner says it is draining its claim loop has ended: a job enqueued now is not taken.
  await waitForLog(runner, /draining: 1 job\(s\) running/);
  const late = await insertJob(chaos.db, 'sleep', { seconds: 0, mode: 'alone' });

  await expectCleanExit(runner, pids);
  const job = await jobRow(chaos.db, id);
  expect(job).toMatchObject({ status: 'success', exitCode: 0, error: null, runnerId: runner.id });
  const rows = await statusRows(chaos.db, id);
  expectSeqsInOrder(rows);
  expect(rows.at(-1)).toMatchObject({ stream: 'system', output: expect.stringMatching(/^succeeded in/) });
  expect(await jobRow(chaos.db, late)).toMatchObject({ status: 'pending', runnerId: null });
});

test('SIGTERM: a job still running after JOB_SHUTDOWN_GRACE_MS is stopped (failure/shutdown), its group gone, exit 0', async () => {
  const { id, runner, pids } = await runnerOnJob(120, 'grace', { JOB_SHUTDOWN_GRACE_MS: '3000' });
  runner.child.kill('SIGTERM');

  await expectCleanExit(runner, pids);
  await expectShutdownRecorded(id, runner, 'SIGTERM');
});

test('a second SIGTERM stops at once: the job is killed (failure/shutdown), exit 0', async () => {
  // A grace far beyond the test's bounds: only the second signal can end this in time.
  const { id, runner, pids } = await runnerOnJob(120, 'twice', { JOB_SHUTDOWN_GRACE_MS: '3600000' });
  runner.child.kill('SIGTERM');
  await waitForLog(runner, /draining: 1 job\(s\) running/);
  expect((await jobRow(chaos.db, id)).status).toBe('running');
  runner.child.kill('SIGTERM');

  await expectCleanExit(runner, pids);
  expect(runner.log()).toMatch(/SIGTERM again: stopping every job now/);
  await expectShutdownRecorded(id, runner, 'SIGKILL');
});
