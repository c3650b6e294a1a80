// The task file's `schedules`: cron lines that make jobs (README, "Schedules"). Parsing and time
// zones are croner's (maintained, no dependencies, DST-aware); this file adds the rules of the
// contract: five fields, one fire a local time when a DST change skips or repeats it.
import { Cron } from 'croner';
import type { TaskTemplate } from './catalog';
import { ParamsError, prepareJob } from './render';

export interface Schedule {
  name: string;
  task: string;
  params: Record<string, unknown>;
  /** As written in the task file. */
  cron: string;
  /** IANA time zone the cron line is read in (default UTC). */
  timezone: string;
  /** Fire times passed while no runner ran: `skip` drops them, `latest` runs the most recent once. */
  missed: 'skip' | 'latest';
  /** `skip`: a fire time while the previous job is pending or running makes nothing. */
  overlap: 'skip' | 'allow';
  /** Who owns the jobs it makes. */
  createdBy: string;
  /** The first fire time strictly after `after`, or null when there is none. */
  nextAfter(after: Date): Date | null;
  /** The most recent fire time at or before `at`, or null. */
  latestAtOrBefore(at: Date): Date | null;
}

const SCHEDULE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const USER_NAME = /^[\x21-\x7e]{1,100}$/;
const KEYS = ['task', 'params', 'cron', 'timezone', 'missed', 'overlap', 'createdBy'];
/** How far back `latestAtOrBefore` looks (a yearly line's last fire is at most a year and a day ago). */
const LOOKBACK_MS = 367 * 86_400_000;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The wall-clock time `at` shows in `timezone`, to the second, as text. */
function wallClock(format: Intl.DateTimeFormat, at: number): string {
  return format.format(new Date(at));
}

/** `at`'s offset from UTC in `timezone`, in ms. */
function offsetMs(format: Intl.DateTimeFormat, at: number): number {
  const parts = Object.fromEntries(format.formatToParts(new Date(at)).map((p) => [p.type, p.value]));
  const asUtc = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour % 24, +parts.minute, +parts.second);
  return asUtc - Math.floor(at / 1000) * 1000;
}

/**
 * Fire times of one cron line in one time zone. Croner runs a local time that a DST change skips
 * at the first valid time after it (once); a local time the change repeats it would run twice, so
 * the second run is dropped here: a fire time whose wall clock the zone already showed an offset
 * change ago is a repeat.
 */
export function fireTimes(cron: string, timezone: string, options: { seconds?: boolean } = {}) {
  const fields = cron.trim().split(/\s+/);
  const want = options.seconds ? [5, 6] : [5];
  if (!want.includes(fields.length)) {
    throw new Error(`cron must have five fields (minute hour day month weekday), not ${fields.length}`);
  }
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
  } catch {
    throw new Error(`timezone ${JSON.stringify(timezone)} is not an IANA time zone`);
  }
  let pattern: Cron;
  try {
    pattern = new Cron(fields.join(' '), { timezone, paused: true });
  } catch (err) {
    throw new Error(`cron ${JSON.stringify(cron)}: ${(err as Error).message.replace(/^CronPattern: /, '')}`, {
      cause: err,
    });
  }
  const format = new Intl.DateTimeFormat('en-US', {
    timeZone: timezone,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  });
  const isRepeat = (at: number): boolean => {
    const shift = offsetMs(format, at - 3 * 3_600_000) - offsetMs(format, at);
    return shift > 0 && wallClock(format, at - shift) === wallClock(format, at);
  };
  const nextAfter = (after: Date): Date | null => {
    let from = after;
    for (let guard = 0; guard < 1000; guard++) {
      const next = pattern.nextRun(from);
      if (!next) return null;
      if (!isRepeat(next.getTime())) return next;
      from = next;
    }
    return null;
  };
  const latestAtOrBefore = (at: Date): Date | null => {
    // Look back in growing windows (most lines fire often), then walk forward to the last one.
    for (let window = 60_000; window < 4 * LOOKBACK_MS; window *= 4) {
      let candidate = nextAfter(new Date(at.getTime() - window));
      if (!candidate || candidate > at) continue;
      for (;;) {
        const next = nextAfter(candidate);
        if (!next || next > at) return candidate;
        candidate = next;
      }
    }
    return null;
  };
  return { nextAfter, latestAtOrBefore };
}

/**
 * Checks the task file's `schedules` against its tasks; `fail` throws naming the schedule and the
 * rule. `seconds` (test only) allows a sixth, leading seconds field.
 */
export function checkSchedules(
  raw: unknown,
  tasks: Map<string, TaskTemplate>,
  fail: (rule: string) => never,
  options: { seconds?: boolean } = {},
): Map<string, Schedule> {
  const schedules = new Map<string, Schedule>();
  if (raw === undefined) return schedules;
  if (!isPlainObject(raw)) fail('"schedules" must be an object of named schedules');
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    const broken = (rule: string): never => fail(`schedule "${name}": ${rule}`);
    if (!SCHEDULE_NAME.test(name)) broken('name must be 1-100 letters, digits, ".", "_" or "-"');
    if (!isPlainObject(value)) broken('must be an object');
    const s = value as Record<string, unknown>;
    for (const key of Object.keys(s)) if (!KEYS.includes(key)) broken(`unknown key "${key}"`);
    if (typeof s.task !== 'string') broken('"task" must name a task');
    const template = tasks.get(s.task as string);
    if (!template) broken(`unknown task ${JSON.stringify(s.task)}`);
    const params = s.params ?? {};
    try {
      prepareJob(template!, params);
    } catch (err) {
      if (!(err instanceof ParamsError)) throw err;
      broken(`params do not validate against task "${template!.name}": ${err.message}`);
    }
    if (typeof s.cron !== 'string') broken('"cron" must be a cron line, e.g. "30 3 * * *"');
    const timezone = s.timezone ?? 'UTC';
    if (typeof timezone !== 'string') broken('"timezone" must be an IANA time zone, e.g. "Europe/Berlin"');
    let times: ReturnType<typeof fireTimes>;
    try {
      times = fireTimes(s.cron as string, timezone as string, options);
    } catch (err) {
      return broken((err as Error).message);
    }
    if (!times.nextAfter(new Date())) broken(`cron ${JSON.stringify(s.cron)} never fires`);
    const missed = s.missed ?? 'skip';
    if (missed !== 'skip' && missed !== 'latest') broken('"missed" must be "skip" or "latest"');
    const overlap = s.overlap ?? 'skip';
    if (overlap !== 'skip' && overlap !== 'allow') broken('"overlap" must be "skip" or "allow"');
    const createdBy = s.createdBy ?? 'scheduler';
    if (typeof createdBy !== 'string' || !USER_NAME.test(createdBy)) {
      broken('"createdBy" must be a user name (1-100 printable characters, no spaces)');
    }
    schedules.set(name, {
      name,
      task: template!.name,
      params: params as Record<string, unknown>,
      cron: s.cron as string,
      timezone: timezone as string,
      missed: missed as Schedule['missed'],
      overlap: overlap as Schedule['overlap'],
      createdBy: createdBy as string,
      ...times,
    });
  }
  return schedules;
}
