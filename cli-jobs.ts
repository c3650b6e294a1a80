// `container-jobs job list|show|cancel|retry|rerun` and `schedules list`: the operator's hands on the
// queue (README, "Retries, re-runs and schedules"). The operator speaks for the queue, as an admin;
// the checks and the writes are the API's own (routers/job-reads.ts, models/queue.ts).
import {
  InputError,
  OWNER_NAME,
  RefusedError,
  UsageError,
  formatDate,
  lastOption,
  only,
  parseArgs,
  withDatabase,
  type Parsed,
} from './cli-common';
import type { Config } from './config';
import type { Logger } from './log';
import { FINISHED_STATUSES, JOB_STATUSES, type JobStatusName } from './models/models';
import { Queue } from './models/queue';
import { listSchedules } from './models/schedules';
import { countOutputLines, findVisibleJob, jobJson, listVisibleJobs, readOutput } from './routers/job-reads';
import { TaskCatalog } from './tasks/catalog';
import { checkJobRequest, JobRequestError, type CheckedJob } from './tasks/job-request';

/** What the operator may see: every job, those of no one included. */
const OPERATOR = { username: 'cli', isAdmin: true };
/** Who cancels or retries, unless `--as` says. */
const DEFAULT_ACTOR = 'cli';
const LIST_LIMIT = { fallback: 50, min: 1, max: 10_000 };
const SHOW_LINES = { fallback: 20, min: 0, max: 10_000 };

/** Why a pending job waits, in words (Queue.waitingReason); an unknown reason is shown as it is. */
const WAITING: Record<string, string> = {
  run_at: 'run_at (its run time is ahead)',
  retry: 'retry (its next attempt is due later)',
  group: 'group (behind earlier jobs of its group)',
  group_blocked: 'group_blocked (its group is blocked by a failed job)',
  slot: 'slot (due; waiting for a free runner slot)',
};

export async function cmdJob(config: Config, log: Logger, args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'list':
      return jobList(config, log, rest);
    case 'show':
      return jobShow(config, log, rest);
    case 'cancel':
      return jobCancel(config, log, rest);
    case 'retry':
      return jobRetry(config, log, rest);
    case 'rerun':
      return jobRerun(config, log, rest);
    default:
      throw new UsageError('usage: npx container-jobs job list|show|cancel|retry|rerun');
  }
}

export async function cmdSchedules(config: Config, log: Logger, args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'list') throw new UsageError('usage: npx container-jobs schedules list [--json]');
  const parsed = parseArgs(rest, ['json']);
  only(parsed, ['json']);
  if (parsed.positional.length > 0) throw new UsageError('schedules list takes no arguments');
  const catalog = loadCatalog(config);
  const schedules = await withDatabase(config, log, (db) => listSchedules(new Queue(db), catalog.schedules().values()));
  if (parsed.options.has('json')) return printJson(schedules);
  for (const s of schedules) {
    say(
      s.name,
      s.task,
      `"${s.cron}" (${s.timezone})`,
      `next ${formatDate(s.nextRunAt)}`,
      `last ${formatDate(s.lastRunAt)}`,
      s.lastJobId === null ? 'last job -' : `last job ${s.lastJobId} (${s.lastStatus ?? 'pruned'})`,
    );
  }
  if (schedules.length === 0) log.notice(`no schedules in ${catalog.file}`);
  return 0;
}

async function jobList(config: Config, log: Logger, args: string[]): Promise<number> {
  const parsed = parseArgs(args, ['json']);
  only(parsed, ['status', 'user', 'limit', 'json']);
  if (parsed.positional.length > 0) throw new UsageError('job list takes no arguments');
  const status = lastOption(parsed, 'status');
  if (status !== undefined && !JOB_STATUSES.includes(status as JobStatusName)) {
    throw new UsageError(`--status must be one of ${JOB_STATUSES.join(', ')}`);
  }
  const limit = wholeOption(parsed, 'limit', LIST_LIMIT);
  const jobs = await withDatabase(config, log, (db) =>
    listVisibleJobs(db, OPERATOR, {
      status: status as JobStatusName | undefined,
      createdBy: lastOption(parsed, 'user'),
      limit,
      offset: 0,
    }),
  );
  const views = jobs.map(jobJson);
  if (parsed.options.has('json')) return printJson(views);
  for (const job of views) {
    say(
      String(job.id),
      job.status,
      job.task,
      job.createdBy ?? '-',
      `attempt ${job.attempt}/${job.maxAttempts}`,
      `created ${formatDate(job.createdAt)}`,
      job.error ?? '-',
    );
  }
  if (views.length === 0) log.notice('no jobs');
  return 0;
}

async function jobShow(config: Config, log: Logger, args: string[]): Promise<number> {
  const parsed = parseArgs(args, ['json']);
  only(parsed, ['json', 'lines']);
  const id = jobIdOf(parsed, 'show');
  const lines = wholeOption(parsed, 'lines', SHOW_LINES);
  const found = await withDatabase(config, log, async (db) => {
    const job = await findVisibleJob(db, OPERATOR, id);
    if (!job) return null;
    const waiting = job.status === 'pending' ? await new Queue(db).waitingReason(id) : null;
    const outputLines = await countOutputLines(db, id);
    const output =
      lines === 0 ? [] : await readOutput(db, id, { limit: lines, offset: Math.max(0, outputLines - lines) });
    return { ...jobJson(job), waiting, outputLines, output };
  });
  if (!found) throw new RefusedError(`no job ${id} (see: npx container-jobs job list)`);
  if (parsed.options.has('json')) return printJson(found);
  const fields: [string, string][] = [['status', found.status]];
  if (found.status === 'pending') fields.push(['waiting', WAITING[found.waiting ?? ''] ?? String(found.waiting)]);
  fields.push(
    ['task', found.task],
    ['params', JSON.stringify(found.params)],
    ['command', found.command ?? '-'],
    ['owner', found.createdBy ?? '-'],
    ['priority', String(found.priority)],
    ['attempt', `${found.attempt} of ${found.maxAttempts}`],
    ['error', found.error ?? '-'],
    ['exit code', found.exitCode === null ? '-' : String(found.exitCode)],
    ['signal', found.signal ?? '-'],
    ['last error', found.lastError ?? '-'],
    ['rerun of', found.rerunOf === null ? '-' : `job ${found.rerunOf}`],
    ['group', found.groupKey ?? '-'],
    ['run at', formatDate(found.runAt)],
    ['created', formatDate(found.createdAt)],
    ['started', formatDate(found.startedAt)],
    ['finished', formatDate(found.finishedAt)],
    ['runner', found.runnerId ?? '-'],
    ['cancel asked', formatDate(found.cancelRequestedAt)],
    ['cancelled by', found.cancelledBy ?? '-'],
  );
  say(`job ${found.id}`);
  for (const [label, value] of fields) say(`  ${`${label}:`.padEnd(14)}${value}`);
  const shown = found.output.length;
  say(
    shown === found.outputLines
      ? `output (${shown} line(s)):`
      : `output (last ${shown} of ${found.outputLines} line(s); more with --lines N):`,
  );
  for (const row of found.output) say(`  ${row.stream.padEnd(7)}${row.output}`);
  return 0;
}

async function jobCancel(config: Config, log: Logger, args: string[]): Promise<number> {
  const parsed = parseArgs(args);
  only(parsed, ['as']);
  const id = jobIdOf(parsed, 'cancel');
  const by = actorOf(parsed) ?? DEFAULT_ACTOR;
  const result = await withDatabase(config, log, (db) => new Queue(db).cancelJob(id, by, {}));
  switch (result.result) {
    case 'not_found':
      throw new RefusedError(`no job ${id} (see: npx container-jobs job list)`);
    case 'finished':
      throw new RefusedError(`job ${id} has already finished (${result.status}); nothing to cancel`);
    case 'requested':
      say(`job ${id}: cancel requested; its runner stops it within a heartbeat`);
      return 0;
    case 'cancelled':
      say(`job ${id}: cancelled`);
      return 0;
  }
}

async function jobRetry(config: Config, log: Logger, args: string[]): Promise<number> {
  const parsed = parseArgs(args);
  only(parsed, ['as']);
  const id = jobIdOf(parsed, 'retry');
  const by = actorOf(parsed) ?? DEFAULT_ACTOR;
  const catalog = loadCatalog(config);
  const result = await withDatabase(config, log, async (db) => {
    const queue = new Queue(db);
    const retried = await queue.retryJob(id, by, {}, (job) => {
      // Refused inside the retry's transaction, which then changes nothing.
      const checked = checkedJob(`job ${id} cannot be retried`, () =>
        checkJobRequest(catalog, { username: by, isAdmin: true }, { task: job.task, params: job.params }),
      );
      return { blockOnFailure: checked.group?.blockOnFailure ?? false };
    });
    await queue.nudgesSent();
    return retried;
  });
  switch (result.result) {
    case 'not_found':
      throw new RefusedError(`no job ${id} (see: npx container-jobs job list)`);
    case 'not_retryable':
      throw new RefusedError(`job ${id} is ${result.status}; only a failed or cancelled job can be retried`);
    case 'retried':
      say(`job ${id}: pending again (attempt ${result.attempt})`);
      return 0;
  }
}

async function jobRerun(config: Config, log: Logger, args: string[]): Promise<number> {
  const parsed = parseArgs(args);
  only(parsed, ['as']);
  const id = jobIdOf(parsed, 'rerun');
  const owner = actorOf(parsed);
  const catalog = loadCatalog(config);
  const newId = await withDatabase(config, log, async (db) => {
    const old = await findVisibleJob(db, OPERATOR, id);
    if (!old) throw new RefusedError(`no job ${id} (see: npx container-jobs job list)`);
    if (!FINISHED_STATUSES.includes(old.status)) {
      throw new RefusedError(`job ${id} is ${old.status}; only a finished job can be run again`);
    }
    const job = checkedJob(`job ${id} cannot run again`, () =>
      checkJobRequest(
        catalog,
        { username: owner === undefined ? old.createdBy : owner, isAdmin: true },
        { task: old.task, params: old.params },
      ),
    );
    const queue = new Queue(db);
    const { id: rerun } = await queue.enqueue({ ...job, rerunOf: id });
    await queue.nudgesSent();
    return rerun;
  });
  console.log(newId);
  return 0;
}

/** The one positional argument, a job id. */
function jobIdOf(parsed: Parsed, command: string): number {
  const raw = parsed.positional[0];
  const id = Number(raw);
  if (parsed.positional.length !== 1 || !/^\d+$/.test(raw) || !Number.isSafeInteger(id) || id < 1) {
    throw new UsageError(`job ${command} takes one job ID`);
  }
  return id;
}

/** `--as NAME`, checked; undefined when not given. */
function actorOf(parsed: Parsed): string | undefined {
  const name = lastOption(parsed, 'as');
  if (name !== undefined && !OWNER_NAME.test(name)) {
    throw new UsageError('--as must be a name of 1-100 printable ASCII characters, without spaces');
  }
  return name;
}

function wholeOption(parsed: Parsed, name: string, range: { fallback: number; min: number; max: number }): number {
  const raw = lastOption(parsed, name);
  if (raw === undefined) return range.fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < range.min || value > range.max) {
    throw new UsageError(`--${name} must be a whole number from ${range.min} to ${range.max}`);
  }
  return value;
}

function loadCatalog(config: Config): TaskCatalog {
  return new TaskCatalog(config.tasksFile, undefined, { cronSeconds: config.testCronSeconds });
}

/** A job checked against the task file as it is now; its JobRequestError is the command's bad data. */
function checkedJob(refusal: string, check: () => CheckedJob): CheckedJob {
  try {
    return check();
  } catch (err) {
    if (err instanceof JobRequestError) throw new InputError(`${refusal}: ${err.message}`);
    throw err;
  }
}

function printJson(value: unknown): number {
  console.log(JSON.stringify(value, null, 2));
  return 0;
}

/**
 * One line of tab-separated fields. Jobs' output, params and owners are anyone's text: their
 * control characters are shown escaped, never sent to the operator's terminal (tabs are kept).
 */
function say(...fields: string[]): void {
  console.log(fields.map(printable).join('\t'));
}

function printable(text: string): string {
  // eslint-disable-next-line no-control-regex -- finding control characters is the point
  return text.replace(/[\x00-\x08\x0a-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
