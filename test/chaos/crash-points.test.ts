// Chaos: a runner that dies (SIGKILL, via JOB_RUNNER_TEST_CRASH) between claim and spawn, and between
// its job's exit and the final write. Another runner reaps the job as runner_lost and never runs it.
import fs from 'node:fs';
import path from 'node:path';

import { startRunner, waitForExit, waitForFinal, waitForLog, worker, useChaosDatabase } from '../helpers/chaos';
import { expectSeqsInOrder, insertJob, jobRow, lines, statusRows } from '../helpers/runner';

const chaos = useChaosDatabase('crash', { markers: true });

/** Runs a crashing runner on the due jobs until it kills itself; the job is then left 'running' as its. */
async function crashAt(point: 'after-claim' | 'before-finish', id: number) {
  const crashing = startRunner(chaos.config, {
    id: `chaos-crash-${point}-w${worker}`,
    env: { MARKER_DIR: chaos.markers, JOB_RUNNER_TEST_CRASH: point },
  });
  expect(await waitForExit(crashing)).toEqual({ code: null, signal: 'SIGKILL' });
  expect(crashing.log()).toMatch(new RegExp(`JOB_RUNNER_TEST_CRASH=${point}`));
  expect(await jobRow(chaos.db, id)).toMatchObject({ status: 'running', runnerId: crashing.id });
  return crashing;
}

/** A healthy runner reaps the job after the lease; the job's row and the reaper's system row are returned. */
async function reapWithAnotherRunner(id: number) {
  const reaper = startRunner(chaos.config, { id: `chaos-reaper-w${worker}`, env: { MARKER_DIR: chaos.markers } });
  const job = await waitForFinal(chaos.db, id);
  await waitForLog(reaper, new RegExp(`reaped 1 job\\(s\\) whose runner stopped renewing: ${id}\\b`));
  reaper.child.kill('SIGTERM');
  expect(await waitForExit(reaper)).toEqual({ code: 0, signal: null });
  expect(reaper.log()).toMatch(new RegExp(`reaped 1 job\\(s\\) whose runner stopped renewing: ${id}\\b`));
  expect(reaper.log()).not.toMatch(/runner error|unhandled|no longer owned/);
  return job;
}

test('killed after the claim committed, before the spawn: reaped as runner_lost, never run', async () => {
  const id = await insertJob(chaos.db, 'sleep', { seconds: 0, mode: 'alone' });
  const crashing = await crashAt('after-claim', id);

  const job = await reapWithAnotherRunner(id);
  expect(job).toMatchObject({ status: 'failure', error: 'runner_lost', runnerId: crashing.id, exitCode: null });
  expect(job.startedAt).not.toBeNull();
  // Never started, by either runner: no marker, and the reaper's row is the only output.
  expect(fs.readdirSync(chaos.markers)).toEqual([]);
  expect(await statusRows(chaos.db, id)).toEqual([
    expect.objectContaining({
      seq: 1,
      stream: 'system',
      output: expect.stringMatching(new RegExp(`^runner ${crashing.id} stopped renewing its lease .*runner_lost`)),
    }),
  ]);
});

test('killed after the job exited, before the final write: reaped as runner_lost, flushed output kept once', async () => {
  // Ten lines, then a second of quiet: every line is flushed (250 ms) before the job exits.
  const id = await insertJob(chaos.db, 'tick', { count: 10, everyMs: 20, tailMs: 1000 });
  const crashing = await crashAt('before-finish', id);
  const rowsAtCrash = await statusRows(chaos.db, id);
  const [pidLine, ...ticks] = lines(rowsAtCrash, 'stdout');
  const { pid } = JSON.parse(pidLine) as { pid: number };
  chaos.seenPids.push(pid);
  expect(ticks).toEqual(Array.from({ length: 10 }, (_, i) => `line ${i + 1}`));
  expect(rowsAtCrash.every((r) => r.stream === 'stdout')).toBe(true);

  const job = await reapWithAnotherRunner(id);
  expect(job).toMatchObject({ status: 'failure', error: 'runner_lost', runnerId: crashing.id, exitCode: null });

  // What was flushed stays, once, in order; then only the reaper's row. One start: not run again.
  const rows = await statusRows(chaos.db, id);
  expectSeqsInOrder(rows);
  expect(rows.slice(0, rowsAtCrash.length)).toEqual(rowsAtCrash);
  expect(rows.slice(rowsAtCrash.length)).toEqual([
    expect.objectContaining({
      seq: rowsAtCrash.length + 1,
      stream: 'system',
      output: expect.stringMatching(new RegExp(`^runner ${crashing.id} stopped renewing its lease .*runner_lost`)),
    }),
  ]);
  expect(fs.readFileSync(path.join(chaos.markers, `starts-${id}`), 'utf8')).toBe(`${pid}\n`);
});
