// Schedules (SPEC §10.3) fired by several runners on one database: every fire time makes exactly one
// job while runners start, stop, crash, reload and lose the database, woken in any order, on a faked
// clock (the Scheduler's `now`: it never arms a timer, the test wakes it), so no test waits for a
// minute to pass. And GET /schedules. Fire times and the file's rules: test/schedules.test.ts; real
// runner processes on the real clock: test/chaos/schedules.test.ts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { QueryTypes } from 'sequelize';
import type { DatabaseConfig } from '../config';
import { createLogger } from '../log';
import { createDatabase, type Database } from '../models/database';
import { initModels } from '../models/models';
import { Queue } from '../models/queue';
import { readTime } from '../models/sql';
import { DbHealth } from '../runner/db-health';
import { RunnerMetrics } from '../runner/metrics';
import { Scheduler } from '../runner/scheduler';
import { TaskCatalog } from '../tasks/catalog';
import { fireTimes } from '../tasks/schedules';
import { setStatus, useApi } from './helpers/api';
import { ROOT, sqlOf } from './helpers/database';

const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'schedules');
const MINUTE = 60_000;

const suite = useApi({ users: { root: true, alice: false }, tasksFile: path.join(FIXTURES, 'tasks.json') });

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cj-schedules-fleet-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});
// The model classes are bound to the last Sequelize made (each Member makes one): bind them back
// to the suite's handle, which the API and the hooks use, once a test's members have closed theirs.
afterEach(() => {
  initModels(suite.db.sequelize);
});

/** The task file's tasks (its schedules vary by test). */
const TASKS = {
  reconcile: { argv: ['true'] },
  greet: {
    argv: ['echo', '{name}'],
    params: {
      type: 'object',
      additionalProperties: false,
      required: ['name'],
      properties: { name: { type: 'string', pattern: '^[a-z]{1,20}$' } },
    },
  },
};

/** Every fire time of `cron` in `zone` in (from, to]. */
function firesIn(cron: string, zone: string, from: Date, to: Date): Date[] {
  const times = fireTimes(cron, zone);
  const fires: Date[] = [];
  for (let at = times.nextAfter(from); at && at <= to; at = times.nextAfter(at)) fires.push(at);
  return fires;
}

// ---------------------------------------------------------------------------------------------
// Several runners on one database, on a faked clock

interface Clock {
  now: number;
}

/** A faked clock that starts at the real time (so JobSchedules.firstSeenAt, on the database clock, agrees). */
function realTimeClock(): Clock {
  const now = Date.now();
  // Exactly on a minute the schedule's newest fire time would equal its firstSeenAt: keep clear.
  return { now: now % MINUTE === 0 ? now - 1 : now };
}

/** A task file with TASKS and `schedules`, replaced whole (a new inode, as an editor's save). */
function writeTaskFile(file: string, schedules: Record<string, unknown>): string {
  const next = `${file}.${process.pid}.new`;
  fs.writeFileSync(next, JSON.stringify({ tasks: TASKS, schedules }, null, 2));
  fs.renameSync(next, file);
  return file;
}

/**
 * One runner's scheduler as the daemon builds it — its own database handle, queue and task
 * catalog — on the test's clock. Its log is kept (debug and up).
 */
class Member {
  readonly logs: string[] = [];
  readonly db: Database;
  readonly queue: Queue;
  readonly scheduler: Scheduler;
  private running = false;

  constructor(
    readonly name: string,
    database: DatabaseConfig,
    file: string,
    clock: Clock,
  ) {
    this.db = createDatabase(database);
    this.queue = new Queue(this.db);
    const log = createLogger({ journald: false, level: 'debug', write: (_level, line) => this.logs.push(line) });
    this.scheduler = new Scheduler({
      queue: this.queue,
      catalog: new TaskCatalog(file, (err) => log.warn(`reload failed: ${err.message}`)),
      log,
      health: new DbHealth(log, new RunnerMetrics()),
      now: () => clock.now,
    });
  }

  /** The first call starts the scheduler (its start-up pass); later ones are its timer going off. */
  wake(): Promise<void> {
    if (!this.running) {
      this.running = true;
      this.scheduler.start();
    }
    return this.scheduler.wake();
  }

  /** The runner goes away (its scheduler stops, its connections close). */
  async stop(): Promise<void> {
    await this.scheduler.stop();
    await this.db.close();
  }

  /** Log lines saying this member made a job of `schedule` for `fireAt` (a due or a missed fire time). */
  made(schedule: string, fireAt: Date): string[] {
    const fire = new RegExp(`^schedule ${schedule}: (missed )?fire time ${fireAt.toISOString()} made job \\d+$`);
    return this.logs.filter((l) => fire.test(l));
  }
}

interface FireRow {
  scheduleName: string;
  fireAt: Date;
  jobId: number | null;
  skipped: string | null;
}

async function fireRows(db: Database, scheduleName?: string): Promise<FireRow[]> {
  const rows = await sqlOf(db).query<{ scheduleName: string; fireAt: unknown; jobId: unknown; skipped: unknown }>(
    'SELECT scheduleName, fireAt, jobId, skipped FROM JobScheduleFires ORDER BY scheduleName, fireAt',
    { type: QueryTypes.SELECT },
  );
  return rows
    .map((r) => ({
      scheduleName: r.scheduleName,
      fireAt: readTime(r.fireAt)!,
      jobId: r.jobId === null ? null : Number(r.jobId),
      skipped: (r.skipped as string | null) ?? null,
    }))
    .filter((r) => scheduleName === undefined || r.scheduleName === scheduleName);
}

interface JobSummary {
  id: number;
  task: string;
  params: unknown;
  createdBy: string;
  status: string;
}

async function jobRows(db: Database): Promise<JobSummary[]> {
  const rows = await sqlOf(db).query<JobSummary>('SELECT id, task, params, createdBy, status FROM Jobs ORDER BY id', {
    type: QueryTypes.SELECT,
  });
  return rows.map((r) => ({
    ...r,
    id: Number(r.id),
    params: typeof r.params === 'string' ? JSON.parse(r.params) : r.params,
  }));
}

const iso = (dates: Date[]) => dates.map((d) => d.toISOString());

/**
 * The heart of it: `expected` fire times of each schedule, each with exactly one fire row that made a
 * job, and no job in the table that no fire made (nor one made twice).
 */
async function expectOneJobPerFireTime(db: Database, expected: Record<string, Date[]>): Promise<JobSummary[]> {
  const fires = await fireRows(db);
  for (const [name, times] of Object.entries(expected)) {
    const mine = fires.filter((f) => f.scheduleName === name);
    expect(iso(mine.map((f) => f.fireAt))).toEqual(iso(times));
    for (const fire of mine) expect(fire).toMatchObject({ jobId: expect.any(Number), skipped: null });
  }
  const jobIds = fires.flatMap((f) => (f.jobId === null ? [] : [f.jobId])).sort((a, b) => a - b);
  expect(new Set(jobIds).size).toBe(jobIds.length);
  const jobs = await jobRows(db);
  expect(jobs.map((j) => j.id)).toEqual(jobIds);
  return jobs;
}

/** A small deterministic generator, so a failing interleaving can be replayed. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

function shuffle<T>(items: T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** Wakes `members` at one fire time in one of several orders: all at once, one after another, mixed. */
async function wakeAll(members: Member[], mode: number, random: () => number): Promise<void> {
  const order = shuffle(members, random);
  switch (mode % 4) {
    case 0:
      await Promise.all(order.map((m) => m.wake()));
      break;
    case 1:
      for (const m of order) await m.wake();
      break;
    case 2: {
      // The first one's pass is under way (its transaction open) when the others start theirs.
      const [first, ...rest] = order;
      const passing = first.wake();
      await new Promise((resolve) => setImmediate(resolve));
      await Promise.all([passing, ...rest.map((m) => m.wake())]);
      break;
    }
    default: {
      const [first, ...rest] = order;
      await first.wake();
      await Promise.all(rest.map((m) => m.wake()));
    }
  }
}

describe('several runners on one database (faked clock)', () => {
  const members: Member[] = [];
  let clock: Clock;
  let file: string;

  function member(name: string): Member {
    const m = new Member(name, suite.database, file, clock);
    members.push(m);
    return m;
  }

  beforeEach(() => {
    clock = realTimeClock();
    file = path.join(tmp, `tasks-${expect.getState().currentTestName?.replace(/\W+/g, '-').slice(0, 60)}.json`);
  });

  afterEach(async () => {
    for (const m of members.splice(0)) await m.stop().catch(() => {});
  });

  const allLogs = () => members.flatMap((m) => m.logs);

  it('make exactly one job a fire time, woken in any order, one runner gone and another come mid-way', async () => {
    writeTaskFile(file, {
      minutely: { task: 'reconcile', cron: '* * * * *', missed: 'latest', overlap: 'allow' },
      'berlin-even': {
        task: 'greet',
        params: { name: 'fleet' },
        cron: '*/2 * * * *',
        timezone: 'Europe/Berlin',
        overlap: 'allow',
        createdBy: 'cron-bot',
      },
    });
    const start = clock.now;
    const [a, b, c] = ['a', 'b', 'c'].map(member);
    await Promise.all([a, b, c].map((m) => m.wake()));
    // Brand new, `latest` or not: nothing was missed before anyone saw them.
    expect(await jobRows(suite.db)).toEqual([]);

    const random = seeded(20261202);
    const minutely = fireTimes('* * * * *', 'UTC');
    const expected: Date[] = [];
    let live = [a, b, c];
    for (let step = 1; step <= 24; step++) {
      if (step === 8) {
        live = live.filter((m) => m !== b); // b dies between two fire times
        await b.stop();
      }
      if (step === 14) live.push(member('d')); // d starts at a fire time, among the others
      const fire = minutely.nextAfter(new Date(clock.now))!;
      expected.push(fire);
      clock.now = fire.getTime() + [0, 1, 5_000, 31_000, 59_999][Math.floor(random() * 5)];
      if (step === 5 || step === 18) {
        // One runner alone sees this fire time (the others are held up until the next one).
        await live[Math.floor(random() * live.length)].wake();
      } else {
        await wakeAll(live, step, random);
      }
      if (step % 6 === 0 && clock.now < fire.getTime() + 50_000) {
        // Woken again within the same minute (a reload check, say): nothing new is due.
        clock.now += 9_000;
        await wakeAll(live, step + 1, random);
      }
    }
    const berlin = firesIn('*/2 * * * *', 'Europe/Berlin', new Date(start), new Date(clock.now));
    expect(berlin.length).toBeGreaterThanOrEqual(11);
    const jobs = await expectOneJobPerFireTime(suite.db, { minutely: expected, 'berlin-even': berlin });
    expect(jobs).toHaveLength(expected.length + berlin.length);
    expect(jobs.filter((j) => j.task === 'greet').every((j) => j.createdBy === 'cron-bot')).toBe(true);
    expect(jobs.filter((j) => j.task === 'greet').map((j) => j.params)).toEqual(berlin.map(() => ({ name: 'fleet' })));
    expect(jobs.filter((j) => j.task === 'reconcile').every((j) => j.createdBy === 'scheduler')).toBe(true);
    expect(jobs.every((j) => j.status === 'pending')).toBe(true);

    // Each fire time was made by one runner, and the others were told it was taken.
    for (const fire of expected) expect(members.flatMap((m) => m.made('minutely', fire))).toHaveLength(1);
    for (const fire of berlin) expect(members.flatMap((m) => m.made('berlin-even', fire))).toHaveLength(1);
    expect(allLogs().filter((l) => l.includes('was handled by another runner')).length).toBeGreaterThan(20);
    // d came up at a fire time the others also handled, and the lone wakers at 5 and 18 left no gap.
    expect(allLogs().some((l) => l.includes('was held up past fire times'))).toBe(true);
    expect(allLogs().filter((l) => /database unavailable|reload failed|makes no job/.test(l))).toEqual([]);
  });

  it('all runners down across two fire times: `latest` runs the most recent one once, `skip` none', async () => {
    writeTaskFile(file, {
      'catch-up': { task: 'reconcile', cron: '* * * * *', missed: 'latest', overlap: 'allow' },
      dropped: { task: 'greet', params: { name: 'dropped' }, cron: '* * * * *', missed: 'skip', overlap: 'allow' },
    });
    const times = fireTimes('* * * * *', 'UTC');
    const first = [member('a'), member('b'), member('c')];
    await Promise.all(first.map((m) => m.wake()));
    expect(await jobRows(suite.db)).toEqual([]);
    const before: Date[] = [];
    for (let step = 0; step < 3; step++) {
      const fire = times.nextAfter(new Date(clock.now))!;
      before.push(fire);
      clock.now = fire.getTime() + 2_000;
      await wakeAll(first, step, seeded(step));
    }
    await expectOneJobPerFireTime(suite.db, { 'catch-up': before, dropped: before });

    // Everyone stops; two fire times pass; three runners start at once (a fleet restart).
    for (const m of first) await m.stop();
    const missedFirst = times.nextAfter(before[2])!;
    const missedLatest = times.nextAfter(missedFirst)!;
    clock.now = missedLatest.getTime() + 25_000;
    const second = [member('d'), member('e'), member('f')];
    await Promise.all(second.map((m) => m.wake()));
    await expectOneJobPerFireTime(suite.db, { 'catch-up': [...before, missedLatest], dropped: before });
    const catchUps = second.flatMap((m) => m.logs.filter((l) => l.includes('missed fire time')));
    expect(catchUps).toEqual([
      expect.stringContaining(`schedule catch-up: missed fire time ${missedLatest.toISOString()}`),
    ]);

    // Woken again in the same minute: still one. Then the next fire time runs for both, as usual.
    clock.now += 10_000;
    await wakeAll(second, 0, seeded(7));
    const next = times.nextAfter(missedLatest)!;
    clock.now = next.getTime() + 1;
    await wakeAll(second, 3, seeded(8));
    await expectOneJobPerFireTime(suite.db, {
      'catch-up': [...before, missedLatest, next],
      dropped: [...before, next],
    });
  });

  it('one runner restarting while the others run makes no extra job, with `latest` or `skip`', async () => {
    writeTaskFile(file, {
      'catch-up': { task: 'reconcile', cron: '* * * * *', missed: 'latest', overlap: 'allow' },
      dropped: { task: 'reconcile', cron: '* * * * *', missed: 'skip', overlap: 'allow' },
    });
    const times = fireTimes('* * * * *', 'UTC');
    const [a, b] = [member('a'), member('b')];
    await Promise.all([a.wake(), b.wake()]);
    const fires: Date[] = [];
    let live = [a, b];
    for (let step = 0; step < 5; step++) {
      const fire = times.nextAfter(new Date(clock.now))!;
      fires.push(fire);
      clock.now = fire.getTime() + 3_000;
      if (step === 1) {
        live = [a]; // b goes down; a carries on alone
        await b.stop();
      }
      await wakeAll(live, step, seeded(step));
      if (step === 2) {
        // b comes back after a handled this fire time: its start-up catch-up finds it taken.
        const back = member('b-again');
        await back.wake();
        live.push(back);
      }
    }
    await expectOneJobPerFireTime(suite.db, { 'catch-up': fires, dropped: fires });
  });

  it('overlap: while the previous job is pending or running a fire time makes nothing; `allow` makes one', async () => {
    writeTaskFile(file, {
      serial: { task: 'reconcile', cron: '* * * * *' },
      parallel: { task: 'greet', params: { name: 'parallel' }, cron: '* * * * *', overlap: 'allow' },
    });
    const times = fireTimes('* * * * *', 'UTC');
    const fleet = [member('a'), member('b')];
    await Promise.all(fleet.map((m) => m.wake()));
    const at = async (step: number): Promise<Date> => {
      const fire = times.nextAfter(new Date(clock.now))!;
      clock.now = fire.getTime() + 500;
      await wakeAll(fleet, step, seeded(step));
      return fire;
    };
    const serialJob = async (fire: Date) => (await fireRows(suite.db, 'serial')).find((f) => +f.fireAt === +fire)!;

    const f1 = await at(0);
    const first = (await serialJob(f1)).jobId!;
    expect(first).toEqual(expect.any(Number));
    const f2 = await at(1); // first is still pending
    expect(await serialJob(f2)).toEqual({ scheduleName: 'serial', fireAt: f2, jobId: null, skipped: 'overlap' });
    await setStatus(suite.db, first, 'running');
    const f3 = await at(2); // and now running
    expect(await serialJob(f3)).toMatchObject({ jobId: null, skipped: 'overlap' });
    await setStatus(suite.db, first, 'success', { exitCode: 0 });
    const f4 = await at(3);
    const second = (await serialJob(f4)).jobId!;
    expect(second).toEqual(expect.any(Number));
    await setStatus(suite.db, second, 'failure', { exitCode: 1, error: 'exit_code' });
    const f5 = await at(0); // a failed job is finished too
    expect(await serialJob(f5)).toMatchObject({ jobId: expect.any(Number), skipped: null });

    const jobs = await jobRows(suite.db);
    expect(jobs.filter((j) => j.task === 'reconcile')).toHaveLength(3);
    // `allow`: one job a fire time, while its earlier ones are all still pending.
    expect(iso((await fireRows(suite.db, 'parallel')).map((f) => f.fireAt))).toEqual(iso([f1, f2, f3, f4, f5]));
    expect(jobs.filter((j) => j.task === 'greet' && j.status === 'pending')).toHaveLength(5);
    // One log line a skipped fire time, from the runner that took it.
    const skipped = allLogs().filter((l) =>
      /schedule serial: fire time .* skipped: its job \d+ is still pending or running/.test(l),
    );
    expect(skipped).toHaveLength(2);
    // The members' logs are read one member after the other: either may have taken either fire time.
    for (const fire of [f2, f3]) {
      expect(
        skipped.filter((l) => l.includes(`fire time ${fire.toISOString()} skipped: its job ${first} is still`)),
      ).toHaveLength(1);
    }
  });

  it('a reload adds, changes and removes schedules on the next wake', async () => {
    writeTaskFile(file, {
      alpha: { task: 'reconcile', cron: '* * * * *', overlap: 'allow' },
      beta: { task: 'greet', params: { name: 'before' }, cron: '* * * * *', overlap: 'allow' },
    });
    const times = fireTimes('* * * * *', 'UTC');
    const fleet = [member('a'), member('b')];
    await Promise.all(fleet.map((m) => m.wake()));
    const f1 = times.nextAfter(new Date(clock.now))!;
    clock.now = f1.getTime() + 1_000;
    await wakeAll(fleet, 0, seeded(1));

    // Mid-minute edit, seen at a wake in the same minute: alpha goes, beta changes, gamma comes.
    clock.now += 20_000;
    writeTaskFile(file, {
      beta: { task: 'greet', params: { name: 'after' }, cron: '*/2 * * * *', overlap: 'allow' },
      gamma: { task: 'reconcile', cron: '* * * * *', overlap: 'allow', createdBy: 'gamma-bot' },
    });
    await wakeAll(fleet, 1, seeded(2));
    expect(await fireRows(suite.db)).toHaveLength(2); // nothing more in f1's minute

    const later: Date[] = [];
    for (let step = 0; step < 4; step++) {
      const fire = times.nextAfter(new Date(clock.now))!;
      later.push(fire);
      clock.now = fire.getTime() + 1_000;
      await wakeAll(fleet, step, seeded(step + 10));
    }
    const even = later.filter((d) => d.getUTCMinutes() % 2 === 0);
    expect(even).toHaveLength(2);
    const jobs = await expectOneJobPerFireTime(suite.db, { alpha: [f1], beta: [f1, ...even], gamma: later });
    expect(jobs.filter((j) => j.task === 'greet').map((j) => j.params)).toEqual([
      { name: 'before' },
      { name: 'after' },
      { name: 'after' },
    ]);
    expect(jobs.filter((j) => j.createdBy === 'gamma-bot')).toHaveLength(4);

    // A broken edit keeps the last good schedules.
    fs.writeFileSync(file, '{"tasks": {}, "schedules": {"x": {"task": "nope", "cron": "* * * * *"}}}');
    const next = times.nextAfter(new Date(clock.now))!;
    clock.now = next.getTime() + 1_000;
    await wakeAll(fleet, 0, seeded(3));
    expect(iso((await fireRows(suite.db, 'gamma')).map((f) => f.fireAt))).toEqual(iso([...later, next]));
    expect(allLogs().filter((l) => l.includes('reload failed'))).toHaveLength(2);
  });

  it('an edit seen at the fire time itself still fires that fire time, under the new definition', async () => {
    writeTaskFile(file, {
      nightly: { task: 'greet', params: { name: 'old' }, cron: '* * * * *', overlap: 'allow' },
    });
    const times = fireTimes('* * * * *', 'UTC');
    const fleet = [member('a'), member('b')];
    await Promise.all(fleet.map((m) => m.wake()));
    const f1 = times.nextAfter(new Date(clock.now))!;
    clock.now = f1.getTime() + 5;
    await wakeAll(fleet, 0, seeded(1));

    // The operator edits the file 20 s before the next fire time; the runners' timers were armed
    // for that fire time, so the first look at the new file is when it is due.
    const f2 = times.nextAfter(f1)!;
    clock.now = f2.getTime() - 20_000;
    writeTaskFile(file, {
      nightly: { task: 'greet', params: { name: 'new' }, cron: '* * * * *', overlap: 'allow' },
      added: { task: 'reconcile', cron: '* * * * *', overlap: 'allow' },
    });
    clock.now = f2.getTime() + 5;
    await wakeAll(fleet, 0, seeded(2));
    const jobs = await expectOneJobPerFireTime(suite.db, { nightly: [f1, f2], added: [f2] });
    expect(jobs.filter((j) => j.task === 'greet').map((j) => j.params)).toEqual([{ name: 'old' }, { name: 'new' }]);

    // A schedule added after a fire time does not run that one late.
    clock.now = f2.getTime() + 30_000;
    writeTaskFile(file, {
      nightly: { task: 'greet', params: { name: 'new' }, cron: '* * * * *', overlap: 'allow' },
      added: { task: 'reconcile', cron: '* * * * *', overlap: 'allow' },
      late: { task: 'reconcile', cron: '* * * * *', overlap: 'allow' },
    });
    await wakeAll(fleet, 1, seeded(3));
    expect(await fireRows(suite.db, 'late')).toEqual([]);
  });

  it('a database outage across fire times: when it is back the most recent one runs once, with either `missed`', async () => {
    writeTaskFile(file, {
      'catch-up': { task: 'reconcile', cron: '* * * * *', missed: 'latest', overlap: 'allow' },
      dropped: { task: 'reconcile', cron: '* * * * *', missed: 'skip', overlap: 'allow' },
    });
    const times = fireTimes('* * * * *', 'UTC');
    const fleet = [member('a'), member('b')];
    await Promise.all(fleet.map((m) => m.wake()));
    const f1 = times.nextAfter(new Date(clock.now))!;
    clock.now = f1.getTime() + 1_000;
    await wakeAll(fleet, 0, seeded(1));

    // The database goes away: every transaction fails, at two fire times (the runners keep running).
    let down = true;
    for (const m of fleet) {
      const transaction = m.queue.transaction.bind(m.queue);
      m.queue.transaction = (async (work: Parameters<Queue['transaction']>[0]) => {
        if (down) throw new Error('connect ECONNREFUSED 127.0.0.1:3306 (injected)');
        return transaction(work);
      }) as Queue['transaction'];
    }
    const f2 = times.nextAfter(f1)!;
    const f3 = times.nextAfter(f2)!;
    for (const at of [f2, f3]) {
      clock.now = at.getTime() + 1_000;
      await wakeAll(fleet, 1, seeded(2));
    }
    expect(await fireRows(suite.db)).toHaveLength(2);
    // Back 10 s after f3: the runners' next passes (their retry) run f3 once each schedule, not f2.
    down = false;
    clock.now = f3.getTime() + 10_000;
    await wakeAll(fleet, 0, seeded(3));
    await expectOneJobPerFireTime(suite.db, { 'catch-up': [f1, f3], dropped: [f1, f3] });
    for (const m of fleet) {
      expect(m.logs.some((l) => l.startsWith('database unavailable (connect ECONNREFUSED'))).toBe(true);
      for (const name of ['catch-up', 'dropped']) {
        const warning = `schedule ${name}: this runner was held up past fire times from ${f2.toISOString()}; firing only the latest, ${f3.toISOString()}`;
        expect(m.logs).toContain(warning);
      }
    }
  });

  it('a start-up catch-up that fails on the database is tried again at the next pass', async () => {
    writeTaskFile(file, { 'catch-up': { task: 'reconcile', cron: '* * * * *', missed: 'latest', overlap: 'allow' } });
    const times = fireTimes('* * * * *', 'UTC');
    const a = member('a');
    await a.wake();
    const f1 = times.nextAfter(new Date(clock.now))!;
    clock.now = f1.getTime() + 1_000;
    await a.wake();
    await a.stop();

    // The only runner comes back after two fire times; its first fire transaction fails (the
    // database went away for a moment), and its next pass, a few seconds later, runs the catch-up.
    const missed = times.nextAfter(times.nextAfter(f1)!)!;
    clock.now = missed.getTime() + 10_000;
    const again = member('a-again');
    const transaction = again.queue.transaction.bind(again.queue);
    let calls = 0;
    again.queue.transaction = (async (work: Parameters<Queue['transaction']>[0]) => {
      // The 1st transaction registers the schedule, the 2nd is its catch-up fire.
      if (++calls === 2) throw new Error('Connection lost: The server closed the connection. (injected)');
      return transaction(work);
    }) as Queue['transaction'];
    await again.wake();
    expect(again.logs.some((l) => l.includes('database unavailable (Connection lost'))).toBe(true);
    expect(await fireRows(suite.db, 'catch-up')).toHaveLength(1);
    clock.now += 5_000;
    await again.wake();
    await expectOneJobPerFireTime(suite.db, { 'catch-up': [f1, missed] });
    expect(again.made('catch-up', missed)).toEqual([expect.stringContaining('missed fire time')]);
  });
});

// ---------------------------------------------------------------------------------------------
// GET /schedules

describe('GET /schedules', () => {
  const KEYS = [
    'name',
    'task',
    'cron',
    'timezone',
    'missed',
    'overlap',
    'createdBy',
    'nextRunAt',
    'lastRunAt',
    'lastJobId',
    'lastStatus',
  ];

  it('is for admins: 401 without credentials, 403 for a user', async () => {
    await suite.api.agent().get('/schedules').expect(401);
    const res = await suite.as.alice.get('/schedules').expect(403);
    expect(res.body).toMatchObject({ error: { code: 'admin_only' } });
  });

  it("lists the file's schedules with their next fire time and their last job", async () => {
    const nightly = fireTimes('30 3 * * *', 'Europe/Berlin');
    const quarter = fireTimes('*/15 * * * *', 'UTC');
    const before = new Date();
    const res = await suite.as.root.get('/schedules').expect(200);
    const after = new Date();
    expect(res.body.map((s: Record<string, unknown>) => s.name)).toEqual(['greet-quarter-hourly', 'reconcile-nightly']);
    for (const s of res.body) expect(Object.keys(s).sort()).toEqual([...KEYS].sort());
    const [greet, reconcile] = res.body;
    expect(reconcile).toMatchObject({
      task: 'reconcile',
      cron: '30 3 * * *',
      timezone: 'Europe/Berlin',
      missed: 'skip',
      overlap: 'skip',
      createdBy: 'scheduler',
      lastRunAt: null,
      lastJobId: null,
      lastStatus: null,
    });
    expect([nightly.nextAfter(before)!.toISOString(), nightly.nextAfter(after)!.toISOString()]).toContain(
      reconcile.nextRunAt,
    );
    const berlin = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Berlin', timeStyle: 'short' });
    expect(berlin.format(new Date(reconcile.nextRunAt))).toBe('03:30');
    expect(greet).toMatchObject({ task: 'greet', cron: '*/15 * * * *', timezone: 'UTC', createdBy: 'cron-bot' });
    expect([quarter.nextAfter(before)!.toISOString(), quarter.nextAfter(after)!.toISOString()]).toContain(
      greet.nextRunAt,
    );

    // A runner fires the quarter-hourly one (on a clock a quarter of an hour ahead).
    const clock = realTimeClock();
    const runner = new Member('api-runner', suite.database, path.join(FIXTURES, 'tasks.json'), clock);
    try {
      await runner.wake();
      const start = new Date(clock.now);
      const fire = quarter.nextAfter(start)!;
      clock.now = fire.getTime() + 1_000;
      await runner.wake();
      // When that quarter hour is 03:30 in Berlin, the nightly one is due at the same time.
      const [nightlyFire] = firesIn('30 3 * * *', 'Europe/Berlin', start, new Date(clock.now));
      const [made] = await fireRows(suite.db, 'greet-quarter-hourly');
      expect(made).toMatchObject({ fireAt: fire, jobId: expect.any(Number) });
      const listed = (await suite.as.root.get('/schedules').expect(200)).body;
      expect(listed[0]).toMatchObject({
        name: 'greet-quarter-hourly',
        lastRunAt: fire.toISOString(),
        lastJobId: made.jobId,
        lastStatus: 'pending',
      });
      expect(listed[1]).toMatchObject(
        nightlyFire
          ? { name: 'reconcile-nightly', lastRunAt: nightlyFire.toISOString(), lastJobId: expect.any(Number) }
          : { name: 'reconcile-nightly', lastRunAt: null, lastJobId: null },
      );
      await setStatus(suite.db, made.jobId!, 'success', { exitCode: 0 });
      const done = (await suite.as.root.get('/schedules').expect(200)).body;
      expect(done[0]).toMatchObject({ lastJobId: made.jobId, lastStatus: 'success' });
    } finally {
      await runner.stop();
    }
  });
});
