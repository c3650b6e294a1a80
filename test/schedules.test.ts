// Schedules (SPEC §10.3), what needs no database: fire times across DST changes, the task file's
// rules for schedules, and the commands that refuse a broken one. Several runners firing them on one
// database (a faked clock) and GET /schedules: test/schedules-fleet.test.ts; real runner processes
// on the real clock: test/chaos/schedules.test.ts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TaskFileError, parseTaskDocument, type TaskFileOptions } from '../tasks/catalog';
import { fireTimes } from '../tasks/schedules';
import { runScript, show } from './helpers/cli';
import { ROOT } from './helpers/database';

const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'schedules');
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cj-schedules-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// Fire times across DST changes (croner and tasks/schedules.ts)

/** The wall clock `at` shows in `zone`: its local date and its hour and minute. */
function local(zone: string, at: Date): { date: string; time: string } {
  const format = new Intl.DateTimeFormat('en-US', {
    timeZone: zone,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
  });
  const p = Object.fromEntries(format.formatToParts(at).map((part) => [part.type, part.value]));
  return { date: `${p.year}-${p.month}-${p.day}`, time: `${p.hour}:${p.minute}` };
}

/** Every fire time of `cron` in `zone` in (from, to]. */
function firesIn(cron: string, zone: string, from: Date, to: Date, options: TaskFileOptions = {}): Date[] {
  const times = fireTimes(cron, zone, { seconds: options.cronSeconds });
  const fires: Date[] = [];
  for (let at = times.nextAfter(from); at && at <= to; at = times.nextAfter(at)) fires.push(at);
  return fires;
}

/** The fire times of `cron` whose local date in `zone` is `date`. */
function firesOnLocalDay(cron: string, zone: string, date: string): Date[] {
  const noon = new Date(`${date}T12:00:00Z`);
  const around = firesIn(cron, zone, new Date(noon.getTime() - 2 * DAY), new Date(noon.getTime() + 2 * DAY));
  return around.filter((at) => local(zone, at).date === date);
}

const shiftDay = (date: string, days: number) =>
  new Date(new Date(`${date}T12:00:00Z`).getTime() + days * DAY).toISOString().slice(0, 10);

interface ZoneChanges {
  zone: string;
  /** The local day whose 02:00–03:00 does not exist, and the instant the clocks jump (local 03:00). */
  spring: { day: string; at: string };
  /** The local day whose `repeatedHour` happens twice, and the instant the clocks go back. */
  fall: { day: string; at: string; repeatedHour: string };
}

const ZONES: ZoneChanges[] = [
  {
    zone: 'Europe/Berlin',
    spring: { day: '2026-03-29', at: '2026-03-29T01:00:00.000Z' },
    fall: { day: '2026-10-25', at: '2026-10-25T01:00:00.000Z', repeatedHour: '02' },
  },
  {
    zone: 'America/New_York',
    spring: { day: '2026-03-08', at: '2026-03-08T07:00:00.000Z' },
    fall: { day: '2026-11-01', at: '2026-11-01T06:00:00.000Z', repeatedHour: '01' },
  },
];

describe('fire times across DST changes', () => {
  it('knows where the clocks change (the table below is right)', () => {
    for (const { zone, spring, fall } of ZONES) {
      const jump = new Date(spring.at);
      expect(local(zone, new Date(jump.getTime() - 1000)).time).toBe('01:59');
      expect(local(zone, jump).time).toBe('03:00');
      const back = new Date(fall.at);
      const hour = fall.repeatedHour;
      expect(local(zone, new Date(back.getTime() - 1000)).time).toBe(`${hour}:59`);
      expect(local(zone, back).time).toBe(`${hour}:00`);
      expect(local(zone, new Date(back.getTime() - HOUR)).time).toBe(`${hour}:00`);
    }
  });

  it.each(ZONES)(
    '$zone: a daily line at a skipped local time fires once that day, at the first valid time after it',
    ({ zone, spring }) => {
      const fires = firesOnLocalDay('30 2 * * *', zone, spring.day);
      expect(fires.map((at) => at.toISOString())).toEqual([spring.at]);
      for (const day of [shiftDay(spring.day, -1), shiftDay(spring.day, 1)]) {
        const [only, ...more] = firesOnLocalDay('30 2 * * *', zone, day);
        expect(more).toEqual([]);
        expect(local(zone, only)).toEqual({ date: day, time: '02:30' });
      }
    },
  );

  it.each(ZONES)(
    '$zone: a daily line at a repeated local time fires once that day, at its first occurrence',
    ({ zone, fall }) => {
      const cron = `30 ${Number(fall.repeatedHour)} * * *`;
      const fires = firesOnLocalDay(cron, zone, fall.day);
      // The first of the two hh:30s is half an hour before the clocks go back.
      expect(fires.map((at) => at.toISOString())).toEqual([
        new Date(new Date(fall.at).getTime() - 30 * MINUTE).toISOString(),
      ]);
      expect(local(zone, fires[0]).time).toBe(`${fall.repeatedHour}:30`);
      for (const day of [shiftDay(fall.day, -1), shiftDay(fall.day, 1)]) {
        expect(firesOnLocalDay(cron, zone, day).map((at) => local(zone, at).time)).toEqual([`${fall.repeatedHour}:30`]);
      }
    },
  );

  describe.each(ZONES)('$zone', ({ zone, spring, fall }) => {
    it.each([
      ['0 * * * *', 60],
      ['*/30 * * * *', 30],
    ])('%s never fires twice for one wall-clock time of the repeated hour', (cron, step) => {
      const fires = firesOnLocalDay(cron, zone, fall.day);
      const walls = fires.map((at) => local(zone, at).time);
      expect(new Set(walls).size).toBe(walls.length);
      // The 25-hour day fires as often as any 24-hour day: each local time once, at its first occurrence.
      expect(fires).toHaveLength((24 * 60) / step);
      const repeated = fires.filter((at) => local(zone, at).time.startsWith(`${fall.repeatedHour}:`));
      expect(repeated).toHaveLength(60 / step);
      for (const at of repeated) expect(at.getTime()).toBeLessThan(new Date(fall.at).getTime());
    });

    it.each([
      ['0 * * * *', 60],
      ['*/30 * * * *', 30],
    ])('%s fires once at the end of the skipped hour, and leaves no hour without a fire', (cron, step) => {
      const fires = firesOnLocalDay(cron, zone, spring.day);
      const walls = fires.map((at) => local(zone, at).time);
      expect(new Set(walls).size).toBe(walls.length);
      expect(walls.filter((t) => t.startsWith('02:'))).toEqual([]);
      // The skipped local times fold into the jump's instant (local 03:00), which fires exactly once.
      expect(fires.filter((at) => at.toISOString() === spring.at)).toHaveLength(1);
      expect(fires).toHaveLength((23 * 60) / step);
      for (let i = 1; i < fires.length; i++) {
        expect(fires[i].getTime() - fires[i - 1].getTime()).toBe(step * MINUTE);
      }
    });

    it.each(['30 2 * * *', '30 1 * * *', '0 * * * *', '*/30 * * * *', '*/20 1-3 * * *', '0 0 * * *'])(
      'latestAtOrBefore agrees with nextAfter around both changes (%s)',
      (cron) => {
        const times = fireTimes(cron, zone);
        for (const change of [spring.at, fall.at]) {
          const at = new Date(change).getTime();
          const fires = firesIn(cron, zone, new Date(at - 2 * DAY), new Date(at + 2 * DAY));
          expect(fires.length).toBeGreaterThan(2);
          for (let i = 1; i < fires.length; i++) {
            const [before, fire] = [fires[i - 1], fires[i]];
            expect(times.nextAfter(before)).toEqual(fire);
            expect(times.latestAtOrBefore(fire)).toEqual(fire);
            expect(times.latestAtOrBefore(new Date(fire.getTime() - 1))).toEqual(before);
            expect(times.latestAtOrBefore(new Date((before.getTime() + fire.getTime()) / 2))).toEqual(before);
          }
          // And anywhere in the six hours around the change: the latest is at or before, the next after it is later.
          for (let t = at - 3 * HOUR; t <= at + 3 * HOUR; t += 7 * MINUTE + 13_000) {
            const latest = times.latestAtOrBefore(new Date(t))!;
            expect(latest.getTime()).toBeLessThanOrEqual(t);
            expect(times.nextAfter(latest)!.getTime()).toBeGreaterThan(t);
          }
        }
      },
    );
  });

  it('reads a line in UTC by default, and a leading seconds field only in test mode', () => {
    expect(firesIn('30 3 * * *', 'UTC', new Date('2027-01-01T00:00:00Z'), new Date('2027-01-02T12:00:00Z'))).toEqual([
      new Date('2027-01-01T03:30:00Z'),
      new Date('2027-01-02T03:30:00Z'),
    ]);
    const from = new Date('2027-01-01T00:00:01.500Z');
    expect(firesIn('*/3 * * * * *', 'UTC', from, new Date(from.getTime() + 10_000), { cronSeconds: true })).toEqual([
      new Date('2027-01-01T00:00:03Z'),
      new Date('2027-01-01T00:00:06Z'),
      new Date('2027-01-01T00:00:09Z'),
    ]);
    // Five fields in test mode are still minutes.
    expect(firesIn('* * * * *', 'UTC', from, new Date(from.getTime() + 2 * MINUTE), { cronSeconds: true })).toEqual([
      new Date('2027-01-01T00:01:00Z'),
      new Date('2027-01-01T00:02:00Z'),
    ]);
    expect(() => fireTimes('*/3 * * * * *', 'UTC')).toThrow(/five fields .*not 6/);
  });
});

// ---------------------------------------------------------------------------------------------
// The task file's rules for schedules

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

function parseSchedules(schedules: unknown, options: TaskFileOptions = {}) {
  return parseTaskDocument(JSON.stringify({ tasks: TASKS, schedules }), 'sched.json', options).schedules;
}

function refusal(schedules: unknown, options: TaskFileOptions = {}): TaskFileError {
  try {
    parseSchedules(schedules, options);
  } catch (err) {
    expect(err).toBeInstanceOf(TaskFileError);
    return err as TaskFileError;
  }
  throw new Error(`accepted ${JSON.stringify(schedules)}`);
}

describe("the task file's schedules", () => {
  it('accept the README example, with defaults for what is left out', () => {
    const schedules = parseSchedules({
      'reconcile-nightly': {
        task: 'reconcile',
        params: {},
        cron: '30 3 * * *',
        timezone: 'Europe/Berlin',
        missed: 'skip',
        createdBy: 'scheduler',
      },
      'greet-often': {
        task: 'greet',
        params: { name: 'world' },
        cron: '*/5 * * * *',
        missed: 'latest',
        overlap: 'allow',
      },
      bare: { task: 'reconcile', cron: '0 4 * * 1-5' },
    });
    expect([...schedules.keys()]).toEqual(['reconcile-nightly', 'greet-often', 'bare']);
    expect(schedules.get('bare')).toMatchObject({
      name: 'bare',
      task: 'reconcile',
      params: {},
      cron: '0 4 * * 1-5',
      timezone: 'UTC',
      missed: 'skip',
      overlap: 'skip',
      createdBy: 'scheduler',
    });
    expect(schedules.get('greet-often')).toMatchObject({
      params: { name: 'world' },
      missed: 'latest',
      overlap: 'allow',
    });
    expect(schedules.get('reconcile-nightly')).toMatchObject({ timezone: 'Europe/Berlin' });
    expect(parseTaskDocument(JSON.stringify({ tasks: TASKS })).schedules.size).toBe(0);
  });

  it.each<[string, unknown, RegExp]>([
    ['an unknown task', { task: 'tidy', cron: '0 4 * * *' }, /unknown task "tidy"/],
    ['no task', { cron: '0 4 * * *' }, /"task" must name a task/],
    ['four fields', { task: 'reconcile', cron: '0 4 * *' }, /cron must have five fields \(.*\), not 4/],
    ['six fields outside test mode', { task: 'reconcile', cron: '0 0 4 * * *' }, /five fields .*not 6/],
    ['a nickname', { task: 'reconcile', cron: '@daily' }, /five fields .*not 1/],
    ['a minute out of range', { task: 'reconcile', cron: '60 4 * * *' }, /cron "60 4 \* \* \*": .*minute: 60/],
    ['an hour out of range', { task: 'reconcile', cron: '0 24 * * *' }, /cron "0 24 \* \* \*": .*hour/],
    ['a day out of range', { task: 'reconcile', cron: '0 4 32 * *' }, /cron "0 4 32 \* \*": .*day/],
    ['a month out of range', { task: 'reconcile', cron: '0 4 * 13 *' }, /cron "0 4 \* 13 \*": .*month/],
    ['a weekday out of range', { task: 'reconcile', cron: '0 4 * * 8' }, /cron "0 4 \* \* 8": .*dayOfWeek/],
    ['a step of zero', { task: 'reconcile', cron: '*/0 * * * *' }, /cron "\*\/0 \* \* \* \*": .*stepping/],
    ['words', { task: 'reconcile', cron: 'at four on every day' }, /cron "at four on every day": .*illegal characters/],
    ['a date that never comes', { task: 'reconcile', cron: '0 4 30 2 *' }, /cron "0 4 30 2 \*" never fires/],
    ['a cron that is not a string', { task: 'reconcile', cron: 5 }, /"cron" must be a cron line/],
    [
      'an unknown time zone',
      { task: 'reconcile', cron: '0 4 * * *', timezone: 'Mars/Olympus_Mons' },
      /timezone "Mars\/Olympus_Mons" is not an IANA time zone/,
    ],
    [
      'a time zone that is not a string',
      { task: 'reconcile', cron: '0 4 * * *', timezone: 2 },
      /"timezone" must be an IANA time zone/,
    ],
    ['a bad missed', { task: 'reconcile', cron: '0 4 * * *', missed: 'all' }, /"missed" must be "skip" or "latest"/],
    [
      'a bad overlap',
      { task: 'reconcile', cron: '0 4 * * *', overlap: 'queue' },
      /"overlap" must be "skip" or "allow"/,
    ],
    [
      'a createdBy with a space',
      { task: 'reconcile', cron: '0 4 * * *', createdBy: 'cron bot' },
      /"createdBy" must be a user name/,
    ],
    ['an empty createdBy', { task: 'reconcile', cron: '0 4 * * *', createdBy: '' }, /"createdBy" must be a user name/],
    [
      'a createdBy that is not a string',
      { task: 'reconcile', cron: '0 4 * * *', createdBy: 7 },
      /"createdBy" must be a user name/,
    ],
    [
      'params missing a required one',
      { task: 'greet', cron: '0 4 * * *' },
      /params do not validate against task "greet": .*name/,
    ],
    [
      'params of the wrong type',
      { task: 'greet', params: { name: 5 }, cron: '0 4 * * *' },
      /params do not validate against task "greet"/,
    ],
    [
      'params out of pattern',
      { task: 'greet', params: { name: 'Bob!' }, cron: '0 4 * * *' },
      /params do not validate against task "greet"/,
    ],
    [
      'an unknown param',
      { task: 'greet', params: { name: 'bob', loud: true }, cron: '0 4 * * *' },
      /params do not validate against task "greet"/,
    ],
    [
      'params for a task without any',
      { task: 'reconcile', params: { x: 1 }, cron: '0 4 * * *' },
      /params do not validate against task "reconcile"/,
    ],
    [
      'params that are not an object',
      { task: 'greet', params: ['bob'], cron: '0 4 * * *' },
      /params do not validate against task "greet"/,
    ],
    ['an unknown key', { task: 'reconcile', cron: '0 4 * * *', timeZone: 'UTC' }, /unknown key "timeZone"/],
    ['a string for a schedule', '0 4 * * *', /must be an object/],
  ])('refuse %s, naming the schedule and the rule', (_what, schedule, rule) => {
    const err = refusal({ nightly: schedule });
    expect(err.message).toMatch(/^sched\.json: schedule "nightly": /);
    expect(err.message).toMatch(rule);
  });

  it('refuse a bad name, and schedules that are not an object of named schedules', () => {
    expect(refusal({ 'bad name': { task: 'reconcile', cron: '0 4 * * *' } }).message).toMatch(
      /^sched\.json: schedule "bad name": name must be/,
    );
    expect(refusal([{ task: 'reconcile', cron: '0 4 * * *' }]).message).toMatch(
      /^sched\.json: "schedules" must be an object/,
    );
  });

  it('take a leading seconds field only in test mode (JOB_TEST_CRON_SECONDS), and never a seventh', () => {
    const line = { task: 'reconcile', cron: '*/3 * * * * *' };
    expect(refusal({ fast: line }).message).toMatch(/schedule "fast": cron must have five fields/);
    expect(parseSchedules({ fast: line }, { cronSeconds: true }).get('fast')).toMatchObject({ cron: '*/3 * * * * *' });
    expect(refusal({ fast: { task: 'reconcile', cron: '0 0 4 * * * 2030' } }, { cronSeconds: true }).message).toMatch(
      /schedule "fast": .*not 7/,
    );
    expect(refusal({ fast: { task: 'reconcile', cron: '61 * * * * *' } }, { cronSeconds: true }).message).toMatch(
      /schedule "fast": cron .*second: 61/,
    );
  });
});

describe('commands refuse a task file with a broken schedule', () => {
  /** Only what a service would get: a PATH, a database nobody will open, the task file under test. */
  function env(tasksFile: string, extra: Record<string, string> = {}): Record<string, string> {
    return {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      LANG: 'C.UTF-8',
      HOME: '/',
      JOBS_SQLITE_PATH: path.join(tmp, 'never-opened.sqlite'),
      JOB_TASKS_FILE: tasksFile,
      ...extra,
    };
  }
  const badTask = path.join(FIXTURES, 'bad-unknown-task.json');
  const seconds = path.join(FIXTURES, 'bad-seconds.json');

  const goodFile = path.join(FIXTURES, 'tasks.json');
  const check = (file: string, extra: Record<string, string> = {}) =>
    runScript(path.join('dist', 'cli.js'), ['tasks', 'check', file], env(goodFile, extra));

  it("container-jobs tasks check lists a good file's schedules and names a broken one (exit 65)", () => {
    const good = check(goodFile);
    expect(good.status).toBe(0);
    expect(good.stdout).toMatch(/2 task\(s\), 2 schedule\(s\), all valid/);
    expect(good.stdout).toContain('schedule reconcile-nightly: reconcile at "30 3 * * *" (Europe/Berlin)');
    expect(good.stdout).toContain('schedule greet-quarter-hourly: greet at "*/15 * * * *" (UTC)');

    const bad = check(badTask);
    expect(bad.status).toBe(65);
    expect(bad.stderr).toContain('bad-unknown-task.json');
    expect(bad.stderr).toMatch(/schedule "tidy-nightly": unknown task "tidy"/);
    expect(bad.stdout).not.toMatch(/all valid/);

    const fast = check(seconds);
    expect(fast.status).toBe(65);
    expect(fast.stderr).toMatch(/schedule "every-three-seconds": cron must have five fields/);
    const testMode = check(seconds, { JOB_TEST_CRON_SECONDS: '1' });
    expect(testMode.status).toBe(0);
    expect(testMode.stdout).toMatch(/1 task\(s\), 1 schedule\(s\), all valid/);
  });

  it.each([
    ['an unknown task', badTask, /schedule "tidy-nightly": unknown task "tidy"/],
    ['a seconds field outside test mode', seconds, /schedule "every-three-seconds": cron must have five fields/],
  ])('job-runner with %s exits 78 (EX_CONFIG) with one line, before opening the database', (_what, file, rule) => {
    const result = runScript(path.join('dist', 'job-runner.js'), [], env(file));
    expect(result.signal).toBeNull();
    expect(result.status).toBe(78);
    const lines = result.stderr.split('\n').filter((l) => l.trim() !== '');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(rule);
    expect(lines[0]).toContain(path.basename(file));
    expect(show(result)).not.toMatch(/at .*\.js:\d+/);
    expect(fs.existsSync(path.join(tmp, 'never-opened.sqlite'))).toBe(false);
  });
});
