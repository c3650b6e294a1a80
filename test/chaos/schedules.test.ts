// Chaos: schedules fired by real runner processes (dist/job-runner.js) on the real clock, in seconds
// test mode (JOB_TEST_CRON_SECONDS=1: a fire time every 3 s). Three runners fire two schedules
// (`missed: latest` and `missed: skip`); one is `kill -9`ed and started again; later the whole fleet
// stops across two fire times and starts again. Counted by JobScheduleFires.fireAt: a fire time
// handled late is fine, one handled twice or not at all is not.
import path from 'node:path';
import { QueryTypes } from 'sequelize';
import { readTime } from '../../models/sql';
import { fireTimes } from '../../tasks/schedules';
import { startRunner, useChaosDatabase, waitForExit, waitForLog, worker, type RunnerProcess } from '../helpers/chaos';
import { ROOT, sqlOf } from '../helpers/database';

const chaos = useChaosDatabase('schedules');
const TASKS_FILE = path.join(ROOT, 'test', 'fixtures', 'schedules', 'chaos-tasks.json');
// The fixture's two schedules, both every 3 s; and their fire times.
const SCHEDULES = ['tick-latest', 'tick-skip'] as const;
const times = fireTimes('*/3 * * * * *', 'UTC', { seconds: true });

function runner(name: string): RunnerProcess {
  return startRunner(chaos.config, {
    id: `sched-${name}-w${worker}`,
    env: { JOB_TASKS_FILE: TASKS_FILE, JOB_TEST_CRON_SECONDS: '1', LOG_LEVEL: 'debug' },
  });
}

/** Waits (generously) for `check`; throws naming `what` if it never holds. */
async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

interface Fire {
  fireAt: Date;
  jobId: number | null;
  skipped: string | null;
}

async function fires(schedule: string): Promise<Fire[]> {
  const rows = await sqlOf(chaos.db).query<{ fireAt: unknown; jobId: unknown; skipped: string | null }>(
    'SELECT fireAt, jobId, skipped FROM JobScheduleFires WHERE scheduleName = ? ORDER BY fireAt',
    { type: QueryTypes.SELECT, replacements: [schedule] },
  );
  return rows.map((r) => ({
    fireAt: readTime(r.fireAt)!,
    jobId: r.jobId === null ? null : Number(r.jobId),
    skipped: r.skipped,
  }));
}

/** Every fire time from `first` to `last`, both included. */
function chain(first: Date, last: Date): string[] {
  const out: string[] = [];
  for (let at: Date | null = first; at && at <= last; at = times.nextAfter(at)) out.push(at.toISOString());
  return out;
}

/** Each fire made its own job, and the Jobs table holds those jobs and no other. */
async function expectOneJobEach(all: Fire[]): Promise<void> {
  for (const fire of all) expect(fire).toMatchObject({ jobId: expect.any(Number), skipped: null });
  const ids = all.map((f) => f.jobId!).sort((a, b) => a - b);
  expect(new Set(ids).size).toBe(ids.length);
  const jobs = await sqlOf(chaos.db).query<{ id: number }>('SELECT id FROM Jobs ORDER BY id', {
    type: QueryTypes.SELECT,
  });
  expect(jobs.map((j) => Number(j.id))).toEqual(ids);
}

async function stopAll(fleet: RunnerProcess[]): Promise<void> {
  for (const r of fleet) if (r.exit === null) r.child.kill('SIGTERM');
  for (const r of fleet) expect(await waitForExit(r)).toEqual({ code: 0, signal: null });
}

const isoOf = (list: Fire[]) => list.map((f) => f.fireAt.toISOString());

test('three runners, one kill -9ed and restarted: every fire time from the first to the last makes exactly one job', async () => {
  const startedAt = Date.now();
  const [a, b, c] = ['a', 'b', 'c'].map(runner);
  for (const r of [a, b, c]) await waitForLog(r, /started:/);
  await until('two fire times', async () => (await fires('tick-skip')).length >= 2);

  // b dies at a fire time, as its timer goes off (5 ms after it): perhaps inside its fire transaction.
  const dieAt = times.nextAfter(new Date())!.getTime() + 5;
  await until('the next fire time', () => Date.now() >= dieAt);
  process.kill(b.pid, 'SIGKILL');
  expect(await waitForExit(b)).toEqual({ code: null, signal: 'SIGKILL' });
  const atKill = (await fires('tick-skip')).length;
  await until('two fire times without b', async () => (await fires('tick-skip')).length >= atKill + 2);

  const again = runner('b');
  await waitForLog(again, /started:/);
  const atRestart = (await fires('tick-skip')).length;
  await until(
    'eight fire times in all, two of them with b back',
    async () => (await fires('tick-skip')).length >= Math.max(8, atRestart + 2),
  );
  await stopAll([a, c, again]);

  for (const schedule of SCHEDULES) {
    const made = await fires(schedule);
    expect(made.length).toBeGreaterThanOrEqual(8);
    // No gap and no duplicate between the first and the last fire time anyone handled...
    expect(isoOf(made)).toEqual(chain(made[0].fireAt, made.at(-1)!.fireAt));
    // ...and nothing from before the first runner started (brand new, `latest` or not: nothing was missed).
    expect(made[0].fireAt.getTime()).toBeGreaterThan(startedAt);
  }
  await expectOneJobEach([...(await fires('tick-latest')), ...(await fires('tick-skip'))]);
  // The restarted runner took part: it made jobs or found fire times taken by the others.
  expect(again.log()).toMatch(
    /schedule tick-(latest|skip): fire time \S+ (made job \d+|was handled by another runner)/,
  );
  for (const r of [a, c, again]) expect(r.log()).not.toMatch(/runner error|unhandled|makes no job/);
});

test('the whole fleet stopped across two fire times: `latest` runs the most recent one once at start-up, `skip` none', async () => {
  const fleet = ['a', 'b', 'c'].map(runner);
  for (const r of fleet) await waitForLog(r, /started:/);
  await until('two fire times', async () => (await fires('tick-skip')).length >= 2);
  await stopAll(fleet);
  const stoppedAt = Date.now();
  const before = Object.fromEntries(await Promise.all(SCHEDULES.map(async (s) => [s, await fires(s)] as const)));

  // Two fire times pass with no runner up; then the fleet starts again. Its start-up takes from a
  // few hundred ms to many seconds on a loaded machine, so what follows holds however long it takes.
  const secondMissed = times.nextAfter(times.nextAfter(new Date(stoppedAt))!)!;
  await until('two fire times with no runner', () => Date.now() >= secondMissed.getTime() + 100);
  const restartAt = Date.now();
  const restarted = ['d', 'e', 'f'].map(runner);
  for (const r of restarted) await waitForLog(r, /started:/);
  await until('three fire times after the restart', async () => {
    const latest = (await fires('tick-skip')).at(-1)?.fireAt.getTime() ?? 0;
    return latest >= restartAt + 3 * 3_000;
  });
  await stopAll(restarted);

  const lastBefore = (s: (typeof SCHEDULES)[number]) => before[s].at(-1)!.fireAt;
  const after = async (s: (typeof SCHEDULES)[number]) => (await fires(s)).filter((f) => f.fireAt > lastBefore(s));

  // `latest`: the first job after the outage is a start-up catch-up of the most recent fire time
  // that had passed (the second missed one, or a later one if the start-up outlasted it); the
  // missed ones before it make nothing (never a burst); then every fire time as usual.
  const latest = await after('tick-latest');
  const caughtUp = latest[0].fireAt;
  expect(caughtUp.getTime()).toBeGreaterThanOrEqual(secondMissed.getTime());
  expect(times.nextAfter(lastBefore('tick-latest'))!.getTime()).toBeLessThan(caughtUp.getTime());
  expect(isoOf(latest)).toEqual(chain(caughtUp, latest.at(-1)!.fireAt));
  // The catch-up is logged as such; a runner starting later may take a fire time that was due
  // anyway as "missed" too, but never one before the catch-up.
  const catchUps = restarted
    .flatMap((r) => [...r.log().matchAll(/schedule tick-latest: missed fire time (\S+) made job \d+/g)])
    .map((m) => m[1])
    .sort();
  expect(catchUps[0]).toBe(caughtUp.toISOString());
  expect(new Set(catchUps).size).toBe(catchUps.length);

  // `skip`: nothing for the fire times that passed while no runner ran; from the restart on, all.
  const skip = await after('tick-skip');
  expect(skip[0].fireAt.getTime()).toBeGreaterThan(restartAt);
  expect(skip[0].fireAt.getTime()).toBeGreaterThanOrEqual(caughtUp.getTime());
  expect(isoOf(skip)).toEqual(chain(skip[0].fireAt, skip.at(-1)!.fireAt));
  for (const r of restarted) expect(r.log()).not.toMatch(/schedule tick-skip: missed fire time/);

  // Before the stop, as in the first test: no gap, no duplicate; and one job a fire, everywhere.
  for (const s of SCHEDULES) expect(isoOf(before[s])).toEqual(chain(before[s][0].fireAt, lastBefore(s)));
  await expectOneJobEach([...(await fires('tick-latest')), ...(await fires('tick-skip'))]);
});
