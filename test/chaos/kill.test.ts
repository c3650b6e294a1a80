// Chaos: `kill -9` of a runner mid-job, and of a job's process. Real runner processes, real database.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import {
  printedPids,
  runningJobsOf,
  startRunner,
  waitForExit,
  waitForFinal,
  waitForLog,
  worker,
  useChaosDatabase,
} from '../helpers/chaos';
import { expectSeqsInOrder, insertJob, jobRow, lines, statusRows, survivors, waitFor } from '../helpers/runner';

const chaos = useChaosDatabase('kill', { markers: true });

/** The pids a job printed, once it has printed them. */
async function pidsOf(id: number): Promise<number[]> {
  await waitFor(async () => lines(await statusRows(chaos.db, id), 'stdout').length > 0);
  const pids = printedPids(await statusRows(chaos.db, id));
  chaos.seenPids.push(...pids);
  return pids;
}

test('kill -9 of a runner mid-job: another runner reaps the job as runner_lost, the job dies with its runner, nobody reruns it', async () => {
  const id = await insertJob(chaos.db, 'sleep', { seconds: 300, mode: 'alone' });
  const doomed = startRunner(chaos.config, { id: `chaos-doomed-w${worker}`, env: { MARKER_DIR: chaos.markers } });
  const [jobPid] = await pidsOf(id);
  expect((await jobRow(chaos.db, id)).status).toBe('running');

  // A second runner is up (it finds nothing pending) before the first one dies.
  const survivor = startRunner(chaos.config, { id: `chaos-survivor-w${worker}`, env: { MARKER_DIR: chaos.markers } });
  await waitForLog(survivor, /started:/);
  process.kill(doomed.pid, 'SIGKILL');
  expect(await waitForExit(doomed)).toEqual({ code: null, signal: 'SIGKILL' });
  const rowsAtDeath = await statusRows(chaos.db, id);

  // The job launcher: the job's main process does not outlive its runner.
  expect(await survivors([jobPid])).toEqual([]);

  // After the lease (2 s) and a reaper period, the surviving runner marks it runner_lost.
  const job = await waitForFinal(chaos.db, id);
  expect(job).toMatchObject({ status: 'failure', error: 'runner_lost', runnerId: doomed.id });
  await waitForLog(survivor, new RegExp(`reaped 1 job\\(s\\) whose runner stopped renewing: ${id}\\b`));
  expect(survivor.log()).toMatch(new RegExp(`reaped 1 job\\(s\\) whose runner stopped renewing: ${id}\\b`));

  // Nobody ran it again: one start, the dead runner's output and then only the reaper's row.
  const rows = await statusRows(chaos.db, id);
  expectSeqsInOrder(rows);
  expect(rows.slice(0, rowsAtDeath.length)).toEqual(rowsAtDeath);
  expect(rows.slice(rowsAtDeath.length)).toEqual([
    expect.objectContaining({
      stream: 'system',
      output: expect.stringMatching(new RegExp(`^runner ${doomed.id} stopped renewing its lease .*runner_lost`)),
    }),
  ]);
  expect(lines(rows, 'stdout')).toEqual([JSON.stringify({ pid: jobPid, grandchildren: [] })]);
  expect(fs.readFileSync(path.join(chaos.markers, `starts-${id}`), 'utf8')).toBe(`${jobPid}\n`);

  survivor.child.kill('SIGTERM');
  expect(await waitForExit(survivor)).toEqual({ code: 0, signal: null });
  expect(await jobRow(chaos.db, id)).toMatchObject({ status: 'failure', error: 'runner_lost', runnerId: doomed.id });
  expect(survivor.log()).not.toMatch(/runner error|unhandled|no longer owned/);
});

test('kill -9 of a runner outside systemd: its job launcher takes each job’s whole tree, a child that left the job’s group too, and is one process, not one per job', async () => {
  const ids = [
    await insertJob(chaos.db, 'sleep', { seconds: 300, mode: 'tree' }),
    // Its grandchild is in a session of its own (setsid): only the job's mark tells it is the job's.
    await insertJob(chaos.db, 'sleep', { seconds: 300, mode: 'escape' }),
  ];
  const runner = startRunner(chaos.config, { id: `chaos-guarded-w${worker}`, env: { MARKER_DIR: chaos.markers } });
  const trees = [await pidsOf(ids[0]), await pidsOf(ids[1])];
  for (const tree of trees) expect(tree.length).toBeGreaterThan(1); // the main process and its background children
  const escaped = trees[1][1];
  expect(fs.readFileSync(`/proc/${escaped}/stat`, 'utf8').split(') ')[1].split(' ')[2]).toBe(String(escaped));
  // No job was started through setpriv: its main process is the program itself, a child of the
  // runner's one launcher process.
  const parentOf = (pid: number) => Number(fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[1]);
  const launcher = parentOf(trees[0][0]);
  expect(fs.readFileSync(`/proc/${launcher}/cmdline`, 'utf8')).toMatch(/launcher-main\.js/);
  expect(parentOf(launcher)).toBe(runner.pid);
  for (const [main] of trees) {
    expect(fs.readFileSync(`/proc/${main}/cmdline`, 'utf8').split('\0')).toContain('test/fixtures/chaos/sleeper.js');
    expect(parentOf(main)).toBe(launcher);
  }

  process.kill(runner.pid, 'SIGKILL');
  expect(await waitForExit(runner)).toEqual({ code: null, signal: 'SIGKILL' });
  expect(await survivors([...trees.flat(), launcher])).toEqual([]);
});

test('kill -9 of a runner and of its launcher outside systemd: the next runner on the host ends the job’s whole tree, and no process that is not the job’s', async () => {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cj-leftovers-'));
  const env = { MARKER_DIR: chaos.markers, JOB_RUNNER_STATE_DIR: stateDir };
  const id = await insertJob(chaos.db, 'sleep', { seconds: 300, mode: 'tree' });
  const doomed = startRunner(chaos.config, { id: `chaos-leaving-w${worker}`, env });
  const tree = await pidsOf(id);
  expect(tree.length).toBeGreaterThan(1);
  // Its ledger names the job's group before anything else happens.
  const ledgers = () => fs.readdirSync(stateDir).map((name) => fs.readFileSync(path.join(stateDir, name), 'utf8'));
  await waitFor(() => ledgers().some((text) => text.includes(`"jobId":${id},"pgid":${tree[0]}`)));
  const mark = (
    fs
      .readFileSync(`/proc/${tree[0]}/environ`, 'latin1')
      .split('\0')
      .find((v) => v.startsWith('CONTAINER_JOBS_RUN=')) ?? ''
  ).split('=')[1];
  expect(mark).toMatch(/^[0-9a-f]{24}$/);

  // Not the job's: a process with the job's id but another mark, and one with no mark at all, both
  // started after the job — the sweep must leave them alone.
  const strangers = [
    spawn('sleep', ['300'], {
      detached: true,
      stdio: 'ignore',
      env: { ...process.env, JOB_ID: String(id), CONTAINER_JOBS_RUN: 'f'.repeat(24) },
    }),
    spawn('sleep', ['300'], { detached: true, stdio: 'ignore', env: { ...process.env, JOB_ID: String(id) } }),
  ];
  chaos.seenPids.push(...strangers.map((s) => s.pid!));

  // Both die at once: the launcher is stopped first, so it cannot end the jobs when the runner goes.
  const parentOf = (pid: number) => Number(fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[1]);
  const launcher = parentOf(tree[0]);
  expect(fs.readFileSync(`/proc/${launcher}/cmdline`, 'utf8')).toMatch(/launcher-main\.js/);
  process.kill(launcher, 'SIGSTOP');
  process.kill(doomed.pid, 'SIGKILL');
  process.kill(launcher, 'SIGKILL');
  expect(await waitForExit(doomed)).toEqual({ code: null, signal: 'SIGKILL' });
  await waitFor(
    () => !fs.existsSync(`/proc/${launcher}`) || /\) Z /.test(fs.readFileSync(`/proc/${launcher}/stat`, 'utf8')),
  );
  // Nothing of ours is left to end the job: its tree lives on.
  for (const pid of tree) expect(fs.existsSync(`/proc/${pid}`)).toBe(true);

  const next = startRunner(chaos.config, { id: `chaos-next-w${worker}`, env });
  expect(await survivors(tree)).toEqual([]);
  await waitForLog(
    next,
    new RegExp(
      `ended ${tree.length} process\\(es\\) that dead runner chaos-leaving-w${worker} .*of job\\(s\\) ${id}\\b`,
    ),
  );
  for (const stranger of strangers) expect(fs.existsSync(`/proc/${stranger.pid}`)).toBe(true);
  // The dead runner's ledger is gone once swept; the job's row goes to the reaper as before.
  await waitFor(() => ledgers().every((text) => !text.includes(`"runnerId":"chaos-leaving-w${worker}"`)));
  expect(await waitForFinal(chaos.db, id)).toMatchObject({ status: 'failure', error: 'runner_lost' });

  for (const stranger of strangers) stranger.kill('SIGKILL');
  next.child.kill('SIGTERM');
  expect(await waitForExit(next)).toEqual({ code: 0, signal: null });
});

test('kill -9 of a job: failure with signal SIGKILL, and the runner carries on with the next job', async () => {
  const victim = await insertJob(chaos.db, 'sleep', { seconds: 300, mode: 'alone' });
  const next = await insertJob(chaos.db, 'tick', { count: 3, everyMs: 10, tailMs: 0 });
  const runner = startRunner(chaos.config, {
    id: `chaos-carry-on-w${worker}`,
    env: { MARKER_DIR: chaos.markers, JOB_RUNNER_CONCURRENCY: '1' },
  });
  const [victimPid] = await pidsOf(victim);
  expect((await jobRow(chaos.db, next)).status).toBe('pending');

  process.kill(victimPid, 'SIGKILL');

  const killed = await waitForFinal(chaos.db, victim);
  expect(killed).toMatchObject({ status: 'failure', error: 'signal', signal: 'SIGKILL', exitCode: null });
  const killedRows = await statusRows(chaos.db, victim);
  expectSeqsInOrder(killedRows);
  expect(killedRows.at(-1)).toMatchObject({ stream: 'system', output: expect.stringMatching(/killed by SIGKILL/) });

  const after = await waitForFinal(chaos.db, next);
  expect(after).toMatchObject({ status: 'success', exitCode: 0, runnerId: runner.id });
  expect(lines(await statusRows(chaos.db, next), 'stdout').slice(1)).toEqual(['line 1', 'line 2', 'line 3']);

  expect(runner.exit).toBeNull();
  runner.child.kill('SIGTERM');
  expect(await waitForExit(runner)).toEqual({ code: 0, signal: null });
  expect(await runningJobsOf(chaos.db, runner.id)).toEqual([]);
  expect(runner.log()).not.toMatch(/runner error|unhandled|no longer owned|lease was taken/);
});
