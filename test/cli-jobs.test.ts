// The compiled `container-jobs job list|show|cancel|retry|rerun` and `schedules list` against a real
// database (README, "Retries, manual retry and re-run", "Schedules"): what each prints, and that each
// changes exactly what it should — read back by SQL — and nothing at all when it refuses.
import type { SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { QueryTypes } from 'sequelize';
import { parseJsonColumn } from '../models/models';
import { Queue } from '../models/queue';
import { fireSchedule, registerSchedules } from '../models/schedules';
import { TaskCatalog } from '../tasks/catalog';
import { checkJobRequest, type JobRequest } from '../tasks/job-request';
import { runScript, serviceEnv, show } from './helpers/cli';
import { ROOT, databaseEnv, useDatabase, sqlOf } from './helpers/database';
import { runOnce, statusRows } from './helpers/runner';

const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'cli-jobs');
/** Tasks `lines`, `deploy` (a serial group that blocks on failure) and `wipe` (admins only), two schedules. */
const TASKS = path.join(FIXTURES, 'tasks.json');
/** The same file edited since: `lines` takes at most 5 lines, `deploy` and `wipe` are gone. */
const CHANGED_TASKS = path.join(FIXTURES, 'changed.json');
const NO_SCHEDULES = path.join(ROOT, 'test', 'fixtures', 'cli-tasks', 'good.json');

const suite = useDatabase(`cj_test_clijobs_w${process.env.JEST_WORKER_ID ?? '0'}`);
const catalog = new TaskCatalog(TASKS);

beforeAll(() => {
  if (!fs.existsSync(path.join(ROOT, 'dist', 'cli.js'))) {
    throw new Error('dist/cli.js is missing: run "npm run build" first (npm test does it as pretest)');
  }
});

/** Only what a service would get, plus the database and the task file. */
function run(args: string[], extra: Record<string, string> = {}): SpawnSyncReturns<string> {
  return runScript(
    path.join('dist', 'cli.js'),
    args,
    serviceEnv({ ...databaseEnv(suite.database), JOB_TASKS_FILE: TASKS, ...extra }),
  );
}

/** Runs the command and expects it to succeed; its stdout. */
function ok(args: string[], extra: Record<string, string> = {}): string {
  const result = run(args, extra);
  if (result.status !== 0) throw new Error(`container-jobs ${args.join(' ')} failed:\n${show(result)}`);
  return result.stdout;
}

/** Runs the command, expects `status` and a first stderr line matching `message`, and nothing on stdout. */
function refused(args: string[], status: number, message: RegExp, extra: Record<string, string> = {}): void {
  const result = run(args, extra);
  if (result.status !== status) {
    throw new Error(`container-jobs ${args.join(' ')}: expected exit ${status}, got:\n${show(result)}`);
  }
  expect(result.stdout).toBe('');
  expect(result.stderr.split('\n')[0]).toMatch(message);
  expect(result.stderr).not.toMatch(/\n\s+at /); // no stack trace
}

async function enqueue(task: string, params: object, owner: string | null = 'alice', extra: Partial<JobRequest> = {}) {
  const job = checkJobRequest(catalog, { username: owner, isAdmin: true }, { task, params, ...extra });
  return (await new Queue(suite.db).enqueue(job)).id;
}

/** Runs every due job to its end, in-process, with this file's tasks. */
function runJobs(): Promise<string[]> {
  return runOnce(suite.db, { tasksFile: TASKS });
}

function select<T extends object>(sql: string, replacements: unknown[] = []): Promise<T[]> {
  return sqlOf(suite.db).query<T>(sql, { type: QueryTypes.SELECT, replacements });
}

interface JobRow {
  id: number;
  task: string;
  params: unknown;
  command: string | null;
  status: string;
  createdBy: string | null;
  priority: number;
  attempt: number;
  maxAttempts: number;
  error: string | null;
  lastError: string | null;
  exitCode: number | null;
  rerunOf: number | null;
  runnerId: string | null;
  cancelledBy: string | null;
  cancelRequested: boolean;
  started: boolean;
  finished: boolean;
  groupKey: string | null;
  groupQueued: boolean;
}

async function jobRow(id: number): Promise<JobRow> {
  const [row] = await select<Record<string, unknown>>(
    `SELECT id, task, params, command, status, createdBy, priority, attempt, maxAttempts, error, lastError,
       exitCode, rerunOf, runnerId, cancelledBy, cancelRequestedAt, startedAt, finishedAt, groupKey, groupQueued
     FROM Jobs WHERE id = ?`,
    [id],
  );
  if (!row) throw new Error(`no job ${id}`);
  const num = (v: unknown) => (v === null ? null : Number(v));
  return {
    id: Number(row.id),
    task: row.task as string,
    params: parseJsonColumn(row.params),
    command: row.command as string | null,
    status: row.status as string,
    createdBy: row.createdBy as string | null,
    priority: Number(row.priority),
    attempt: Number(row.attempt),
    maxAttempts: Number(row.maxAttempts),
    error: row.error as string | null,
    lastError: row.lastError as string | null,
    exitCode: num(row.exitCode),
    rerunOf: num(row.rerunOf),
    runnerId: row.runnerId as string | null,
    cancelledBy: row.cancelledBy as string | null,
    cancelRequested: row.cancelRequestedAt !== null,
    started: row.startedAt !== null,
    finished: row.finishedAt !== null,
    groupKey: row.groupKey as string | null,
    groupQueued: Boolean(Number(row.groupQueued)),
  };
}

async function jobIds(): Promise<number[]> {
  return (await select<{ id: number }>('SELECT id FROM Jobs ORDER BY id')).map((r) => Number(r.id));
}

/** Everything a command could change: every job, output row and group, as stored. */
async function snapshot(): Promise<unknown> {
  return {
    jobs: await select('SELECT * FROM Jobs ORDER BY id'),
    output: await select('SELECT * FROM JobStatuses ORDER BY id'),
    groups: await select('SELECT * FROM JobGroups ORDER BY `key`'),
  };
}

async function groupRow(key: string): Promise<{ headJobId: number | null; blockedByJobId: number | null }> {
  const [row] = await select<{ headJobId: unknown; blockedByJobId: unknown }>(
    'SELECT headJobId, blockedByJobId FROM JobGroups WHERE `key` = ?',
    [key],
  );
  return {
    headJobId: row.headJobId === null ? null : Number(row.headJobId),
    blockedByJobId: row.blockedByJobId === null ? null : Number(row.blockedByJobId),
  };
}

/** `job show`'s text: its `label: value` fields, its output header and its output lines. */
function parseShow(stdout: string): { title: string; fields: Map<string, string>; header: string; rows: string[] } {
  const lines = stdout.replace(/\n$/, '').split('\n');
  const at = lines.findIndex((l) => l.startsWith('output ('));
  const fields = new Map<string, string>();
  for (const line of lines.slice(1, at)) {
    const match = /^ {2}([a-z ]+): +(.*)$/.exec(line);
    if (!match) throw new Error(`not a field line: ${JSON.stringify(line)}`);
    fields.set(match[1], match[2]);
  }
  return { title: lines[0], fields, header: lines[at], rows: lines.slice(at + 1) };
}

const ISO_SECONDS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

describe('container-jobs job list', () => {
  it('lists jobs newest first, one line each; --status, --user and --limit narrow it; --json is an array', async () => {
    const done = await enqueue('lines', { count: 1 }, 'alice');
    const failed = await enqueue('lines', { count: 1, exit: 3 }, 'bob');
    await runJobs();
    const pending = await enqueue('deploy', { target: 'web', exit: 0 }, null);

    const lines = ok(['job', 'list']).trimEnd().split('\n');
    expect(lines.map((l) => Number(l.split('\t')[0]))).toEqual([pending, failed, done]);
    const fields = lines.map((l) => l.split('\t'));
    expect(fields[0]).toEqual([String(pending), 'pending', 'deploy', '-', 'attempt 1/3', expect.any(String), '-']);
    expect(fields[1]).toEqual([
      String(failed),
      'failure',
      'lines',
      'bob',
      'attempt 1/1',
      expect.any(String),
      'exit_code',
    ]);
    expect(fields[2]).toEqual([String(done), 'success', 'lines', 'alice', 'attempt 1/1', expect.any(String), '-']);
    for (const f of fields) expect(f[5].replace(/^created /, '')).toMatch(ISO_SECONDS);

    const ids = (stdout: string) =>
      stdout
        .trimEnd()
        .split('\n')
        .filter(Boolean)
        .map((l) => Number(l.split('\t')[0]));
    expect(ids(ok(['job', 'list', '--status', 'failure']))).toEqual([failed]);
    expect(ids(ok(['job', 'list', '--user', 'alice']))).toEqual([done]);
    expect(ids(ok(['job', 'list', '--status=success', '--user=alice']))).toEqual([done]);
    expect(ids(ok(['job', 'list', '--limit', '2']))).toEqual([pending, failed]);

    const json = JSON.parse(ok(['job', 'list', '--json']));
    expect(json.map((j: { id: number }) => j.id)).toEqual([pending, failed, done]);
    expect(json[1]).toMatchObject({
      id: failed,
      task: 'lines',
      params: { count: 1, exit: 3 },
      status: 'failure',
      createdBy: 'bob',
      attempt: 1,
      maxAttempts: 1,
      error: 'exit_code',
      exitCode: 3,
      lastError: 'exit_code',
      rerunOf: null,
    });
    expect(json[0]).toMatchObject({ id: pending, createdBy: null, groupKey: 'deploy-web', maxAttempts: 3 });
    expect(JSON.parse(ok(['job', 'list', '--json', '--status', 'running']))).toEqual([]);
  });

  it('prints nothing on stdout when no job matches, and says so on stderr', async () => {
    await enqueue('lines', { count: 1 }, 'alice');
    const result = run(['job', 'list', '--user', 'nobody']);
    expect(result.status).toBe(0);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/no jobs/);
  });

  it.each<[string[], RegExp]>([
    [['--status', 'done'], /--status must be one of pending, running, success, failure, cancelled/],
    [['--limit', '0'], /--limit must be a whole number from 1 to/],
    [['--limit', 'ten'], /--limit must be a whole number/],
    [['--limit', '-5'], /--limit must be a whole number/],
    [['--limit', '100000'], /--limit must be a whole number/],
    [['--bogus', 'x'], /unknown option --bogus/],
    [['--limit'], /--limit needs a value/],
    [['alice'], /job list takes no arguments/],
  ])('refuses %j (exit 64)', (args, message) => {
    refused(['job', 'list', ...args], 64, message);
  });
});

describe('container-jobs job show', () => {
  it("shows a finished job's fields and its last 20 output lines; --lines changes how many", async () => {
    const id = await enqueue('lines', { count: 30, exit: 3 }, 'alice');
    await runJobs();
    const stored = await statusRows(suite.db, id);
    expect(stored.length).toBeGreaterThan(30);
    const formatted = stored.map((r) => `  ${r.stream.padEnd(7)}${r.output}`);

    const shown = parseShow(ok(['job', 'show', String(id)]));
    expect(shown.title).toBe(`job ${id}`);
    expect(Object.fromEntries(shown.fields)).toMatchObject({
      status: 'failure',
      task: 'lines',
      params: '{"count":30,"exit":3}',
      command: 'node test/fixtures/cli-jobs/lines.js --count=30 --exit=3',
      owner: 'alice',
      priority: '0',
      attempt: '1 of 1',
      error: 'exit_code',
      'exit code': '3',
      signal: '-',
      'last error': 'exit_code',
      'rerun of': '-',
      group: '-',
      runner: 'test-runner',
      'cancelled by': '-',
    });
    expect(shown.fields.has('waiting')).toBe(false);
    for (const label of ['run at', 'created', 'started', 'finished'])
      expect(shown.fields.get(label)).toMatch(ISO_SECONDS);
    expect(shown.header).toBe(`output (last 20 of ${stored.length} line(s); more with --lines N):`);
    expect(shown.rows).toEqual(formatted.slice(-20));

    expect(parseShow(ok(['job', 'show', String(id), '--lines', '3'])).rows).toEqual(formatted.slice(-3));
    const all = parseShow(ok(['job', 'show', String(id), '--lines=1000']));
    expect(all.header).toBe(`output (${stored.length} line(s)):`);
    expect(all.rows).toEqual(formatted);
    expect(parseShow(ok(['job', 'show', String(id), '--lines', '0'])).rows).toEqual([]);

    const json = JSON.parse(ok(['job', 'show', String(id), '--json', '--lines', '2']));
    expect(json).toMatchObject({
      id,
      task: 'lines',
      params: { count: 30, exit: 3 },
      status: 'failure',
      createdBy: 'alice',
      attempt: 1,
      maxAttempts: 1,
      lastError: 'exit_code',
      rerunOf: null,
      groupKey: null,
      exitCode: 3,
      waiting: null,
      outputLines: stored.length,
    });
    expect(new Date(json.runAt).getTime()).not.toBeNaN();
    expect(json.output.map((r: { stream: string; output: string }) => [r.stream, r.output])).toEqual(
      stored.slice(-2).map((r) => [r.stream, r.output]),
    );
  });

  it('says why a pending job waits: its run time, its group, a blocked group, or a free slot', async () => {
    const later = await enqueue('lines', { count: 1 }, 'alice', { delaySec: 3600 });
    const blocker = await enqueue('deploy', { target: 'db', exit: 1 }, 'ops');
    await runJobs();
    expect((await jobRow(blocker)).status).toBe('failure');
    const blocked = await enqueue('deploy', { target: 'db', exit: 0 }, 'ops');
    const head = await enqueue('deploy', { target: 'web', exit: 0 }, 'ops');
    const behind = await enqueue('deploy', { target: 'web', exit: 0 }, 'ops');

    const waiting = (id: number) => parseShow(ok(['job', 'show', String(id)])).fields.get('waiting');
    expect(waiting(later)).toMatch(/^run_at /);
    expect(waiting(blocked)).toMatch(/^group_blocked /);
    expect(waiting(head)).toMatch(/^slot /);
    expect(waiting(behind)).toMatch(/^group /);
    const shown = parseShow(ok(['job', 'show', String(behind)]));
    expect(shown.fields.get('group')).toBe('deploy-web');
    expect(shown.fields.get('attempt')).toBe('1 of 3');
    expect(shown.header).toBe('output (0 line(s)):');
    expect(JSON.parse(ok(['job', 'show', String(blocked), '--json'])).waiting).toBe('group_blocked');
  });

  it("shows control characters of a job's output escaped, and as they are in --json", async () => {
    const id = await enqueue('lines', { count: 1 }, 'alice');
    const text = '\x1b[31mred\x1b[0m\rover\ttab\x07';
    await sqlOf(suite.db).query(
      "INSERT INTO JobStatuses (jobId, seq, stream, output, createdAt, updatedAt) VALUES (?, 1, 'stdout', ?, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
      { replacements: [id, text] },
    );
    expect(parseShow(ok(['job', 'show', String(id)])).rows).toEqual([
      '  stdout \\x1b[31mred\\x1b[0m\\x0dover\ttab\\x07',
    ]);
    expect(JSON.parse(ok(['job', 'show', String(id), '--json'])).output[0].output).toBe(text);
  });

  it('exits 1 for a job that does not exist', () => {
    refused(['job', 'show', '999999'], 1, /no job 999999/);
  });

  it.each<[string[], RegExp]>([
    [[], /job show takes one job ID/],
    [['abc'], /job show takes one job ID/],
    [['0'], /job show takes one job ID/],
    [['1', '2'], /job show takes one job ID/],
    [['1.5'], /job show takes one job ID/],
    [['1', '--lines', '-1'], /--lines must be a whole number from 0 to/],
    [['1', '--lines', 'all'], /--lines must be a whole number/],
    [['1', '--follow', 'yes'], /unknown option --follow/],
  ])('refuses %j (exit 64)', (args, message) => {
    refused(['job', 'show', ...args], 64, message);
  });
});

describe('container-jobs job cancel', () => {
  it('cancels a pending job at once, as "cli" or --as NAME, and touches no other job', async () => {
    const first = await enqueue('lines', { count: 1 }, 'alice');
    const second = await enqueue('lines', { count: 2 }, 'bob');
    const third = await enqueue('lines', { count: 3 }, 'bob');
    const before = await jobRow(third);

    expect(ok(['job', 'cancel', String(first)])).toBe(`job ${first}: cancelled\n`);
    expect(await jobRow(first)).toMatchObject({
      status: 'cancelled',
      error: 'cancelled',
      cancelledBy: 'cli',
      cancelRequested: true,
      finished: true,
      started: false,
    });
    expect((await statusRows(suite.db, first)).map((r) => [r.stream, r.output])).toEqual([
      ['system', 'cancelled by cli before it started'],
    ]);

    expect(ok(['job', 'cancel', String(second), '--as', 'ops'])).toBe(`job ${second}: cancelled\n`);
    expect(await jobRow(second)).toMatchObject({ status: 'cancelled', cancelledBy: 'ops' });
    expect(await jobRow(third)).toEqual(before);
    expect(await statusRows(suite.db, third)).toEqual([]);
  });

  it("asks a running job's runner to stop it: the row stays running with the request recorded", async () => {
    const id = await enqueue('lines', { count: 1 }, 'alice');
    const [claimed] = await new Queue(suite.db).claimDueJobs('elsewhere', 1);
    expect(claimed.id).toBe(id);

    expect(ok(['job', 'cancel', String(id), '--as=ops'])).toMatch(
      new RegExp(`^job ${id}: cancel requested; its runner stops it`),
    );
    expect(await jobRow(id)).toMatchObject({
      status: 'running',
      runnerId: 'elsewhere',
      cancelledBy: 'ops',
      cancelRequested: true,
      finished: false,
    });
  });

  it('exits 1 for a finished job or a missing one, and changes nothing', async () => {
    const done = await enqueue('lines', { count: 1 }, 'alice');
    await runJobs();
    await enqueue('lines', { count: 1 }, 'bob');
    const before = await snapshot();
    refused(['job', 'cancel', String(done)], 1, new RegExp(`job ${done} has already finished \\(success\\)`));
    refused(['job', 'cancel', '999999'], 1, /no job 999999/);
    expect(await snapshot()).toEqual(before);
  });

  it.each<[string, (id: number) => string[], RegExp]>([
    ['no ID', () => [], /job cancel takes one job ID/],
    ['an ID that is not a number', (id) => [`${id}x`], /job cancel takes one job ID/],
    ['two IDs', (id) => [String(id), String(id)], /job cancel takes one job ID/],
    ['an empty --as', (id) => [String(id), '--as', ''], /--as must be a name/],
    ['an --as with a space', (id) => [String(id), '--as', 'two words'], /--as must be a name/],
    ['an --as of 101 characters', (id) => [String(id), '--as', 'x'.repeat(101)], /--as must be a name/],
    ['an unknown option', (id) => [String(id), '--force=yes'], /unknown option --force/],
  ])('refuses %s (exit 64), and changes nothing', async (_what, args, message) => {
    const id = await enqueue('lines', { count: 1 }, 'alice');
    const before = await snapshot();
    refused(['job', 'cancel', ...args(id)], 64, message);
    expect(await snapshot()).toEqual(before);
  });
});

describe('container-jobs job retry', () => {
  it('puts a failed job back to pending at its next attempt; the runner runs it again, both outputs kept', async () => {
    const id = await enqueue('lines', { count: 2, exit: 3 }, 'alice');
    const other = await enqueue('lines', { count: 1 }, 'bob');
    await runJobs();
    const failed = await jobRow(id);
    expect(failed).toMatchObject({ status: 'failure', attempt: 1, maxAttempts: 1, error: 'exit_code', exitCode: 3 });
    const otherBefore = await jobRow(other);
    const outputBefore = await statusRows(suite.db, id);

    expect(ok(['job', 'retry', String(id)])).toBe(`job ${id}: pending again (attempt 2)\n`);
    expect(await jobRow(id)).toEqual({
      ...failed,
      status: 'pending',
      attempt: 2,
      maxAttempts: 2,
      lastError: 'exit_code',
      error: null,
      exitCode: null,
      runnerId: null,
      started: false,
      finished: false,
    });
    const outputAfter = await statusRows(suite.db, id);
    expect(outputAfter.slice(0, -1)).toEqual(outputBefore);
    expect(outputAfter.at(-1)).toMatchObject({ stream: 'system', output: 'retried by cli: attempt 2' });
    expect(await jobRow(other)).toEqual(otherBefore);
    expect(parseShow(ok(['job', 'show', String(id)])).fields.get('waiting')).toMatch(/^slot /);

    await runJobs();
    expect(await jobRow(id)).toMatchObject({ status: 'failure', attempt: 2, exitCode: 3, lastError: 'exit_code' });
    const stdout = (await statusRows(suite.db, id)).filter((r) => r.stream === 'stdout').map((r) => r.output);
    expect(stdout).toEqual(['line 1', 'line 2', 'line 1', 'line 2']);
  });

  it('retries a cancelled job, recording who did it (--as)', async () => {
    const id = await enqueue('lines', { count: 1 }, 'alice');
    await new Queue(suite.db).cancelJob(id, 'alice');
    expect(ok(['job', 'retry', String(id), '--as', 'ops'])).toBe(`job ${id}: pending again (attempt 2)\n`);
    expect(await jobRow(id)).toMatchObject({
      status: 'pending',
      attempt: 2,
      // A cancel is not a failed attempt: no failure came before it.
      lastError: null,
      cancelledBy: null,
      cancelRequested: false,
    });
    expect((await statusRows(suite.db, id)).at(-1)?.output).toBe('retried by ops: attempt 2');
  });

  it("puts a failed grouped job back at its group's head and lifts the block it caused", async () => {
    const id = await enqueue('deploy', { target: 'db', exit: 1 }, 'ops');
    await runJobs();
    const next = await enqueue('deploy', { target: 'db', exit: 0 }, 'ops');
    expect(await groupRow('deploy-db')).toEqual({ headJobId: null, blockedByJobId: id });

    expect(ok(['job', 'retry', String(id)])).toBe(`job ${id}: pending again (attempt 2)\n`);
    expect(await groupRow('deploy-db')).toEqual({ headJobId: id, blockedByJobId: null });
    expect(await jobRow(id)).toMatchObject({ status: 'pending', attempt: 2, maxAttempts: 3, groupQueued: false });
    expect(await jobRow(next)).toMatchObject({ status: 'pending', groupQueued: true });
  });

  it('exits 1 for a job that is not failed or cancelled, or does not exist, and changes nothing', async () => {
    const done = await enqueue('lines', { count: 1 }, 'alice');
    await runJobs();
    const pending = await enqueue('lines', { count: 1 }, 'alice');
    const running = await enqueue('lines', { count: 2 }, 'alice', { priority: 5 });
    await new Queue(suite.db).claimDueJobs('elsewhere', 1);
    expect((await jobRow(running)).status).toBe('running');
    const before = await snapshot();
    for (const [id, status] of [
      [done, 'success'],
      [pending, 'pending'],
      [running, 'running'],
    ] as const) {
      refused(
        ['job', 'retry', String(id)],
        1,
        new RegExp(`job ${id} is ${status}; only a failed or cancelled job can be retried`),
      );
    }
    refused(['job', 'retry', '999999'], 1, /no job 999999/);
    expect(await snapshot()).toEqual(before);
  });

  it('refuses (exit 65) a job whose task is gone or whose params no longer validate, and changes nothing', async () => {
    const tooLong = await enqueue('lines', { count: 30, exit: 3 }, 'alice');
    const gone = await enqueue('deploy', { target: 'db', exit: 1 }, 'ops');
    await runJobs();
    const before = await snapshot();
    refused(['job', 'retry', String(tooLong)], 65, new RegExp(`job ${tooLong} cannot be retried: .*"count"`), {
      JOB_TASKS_FILE: CHANGED_TASKS,
    });
    refused(['job', 'retry', String(gone)], 65, new RegExp(`job ${gone} cannot be retried: unknown task "deploy"`), {
      JOB_TASKS_FILE: CHANGED_TASKS,
    });
    expect(await snapshot()).toEqual(before);
  });

  it('refuses a bad ID or option (exit 64), and changes nothing', async () => {
    const id = await enqueue('lines', { count: 1, exit: 3 }, 'alice');
    await runJobs();
    const before = await snapshot();
    refused(['job', 'retry'], 64, /job retry takes one job ID/);
    refused(['job', 'retry', '-1'], 64, /job retry takes one job ID/);
    refused(['job', 'retry', String(id), '--as', 'a b'], 64, /--as must be a name/);
    refused(['job', 'retry', String(id), '--attempt', '1'], 64, /unknown option --attempt/);
    expect(await snapshot()).toEqual(before);
  });
});

describe('container-jobs job rerun', () => {
  it("makes a new job with the same task and params, owned by the old job's owner, rerunOf the old id", async () => {
    const old = await enqueue('deploy', { target: 'web', exit: 1 }, 'alice');
    await runJobs();
    const oldRow = await jobRow(old);
    const stdout = ok(['job', 'rerun', String(old)]);
    expect(stdout).toMatch(/^\d+\n$/);
    const id = Number(stdout.trim());
    expect(await jobIds()).toEqual([old, id]);
    expect(await jobRow(id)).toEqual({
      ...oldRow,
      id,
      status: 'pending',
      attempt: 1,
      error: null,
      lastError: null,
      exitCode: null,
      rerunOf: old,
      runnerId: null,
      started: false,
      finished: false,
      groupQueued: true, // behind the failure that blocks its group
    });
    expect(await jobRow(old)).toEqual(oldRow);
    expect(await statusRows(suite.db, id)).toEqual([]);
    expect(parseShow(ok(['job', 'show', String(id)])).fields.get('rerun of')).toBe(`job ${old}`);
  });

  it('gives the new job to --as OWNER; reruns a job of no one, and an admin-only task', async () => {
    const old = await enqueue('lines', { count: 2 }, 'alice');
    const nobodys = await enqueue('lines', { count: 1 }, null);
    const wipe = await enqueue('wipe', {}, 'root');
    await runJobs();

    const asCarol = Number(ok(['job', 'rerun', String(old), '--as', 'carol']).trim());
    expect(await jobRow(asCarol)).toMatchObject({
      task: 'lines',
      params: { count: 2 },
      createdBy: 'carol',
      rerunOf: old,
      status: 'pending',
    });
    const ofNobody = Number(ok(['job', 'rerun', String(nobodys)]).trim());
    expect(await jobRow(ofNobody)).toMatchObject({ createdBy: null, rerunOf: nobodys });
    const again = Number(ok(['job', 'rerun', String(wipe)]).trim());
    expect(await jobRow(again)).toMatchObject({ task: 'wipe', createdBy: 'root', rerunOf: wipe });
  });

  it('exits 1 for a job that has not finished or does not exist, and changes nothing', async () => {
    const pending = await enqueue('lines', { count: 1 }, 'alice');
    const running = await enqueue('lines', { count: 2 }, 'alice', { priority: 5 });
    await new Queue(suite.db).claimDueJobs('elsewhere', 1);
    const before = await snapshot();
    refused(['job', 'rerun', String(pending)], 1, new RegExp(`job ${pending} is pending; only a finished job`));
    refused(['job', 'rerun', String(running)], 1, new RegExp(`job ${running} is running; only a finished job`));
    refused(['job', 'rerun', '999999'], 1, /no job 999999/);
    expect(await snapshot()).toEqual(before);
  });

  it('refuses (exit 65) a job whose task is gone or whose params no longer validate, and changes nothing', async () => {
    const tooLong = await enqueue('lines', { count: 30 }, 'alice');
    const gone = await enqueue('wipe', {}, 'root');
    await runJobs();
    const before = await snapshot();
    refused(['job', 'rerun', String(tooLong)], 65, new RegExp(`job ${tooLong} cannot run again: .*"count"`), {
      JOB_TASKS_FILE: CHANGED_TASKS,
    });
    refused(['job', 'rerun', String(gone)], 65, /cannot run again: unknown task "wipe"/, {
      JOB_TASKS_FILE: CHANGED_TASKS,
    });
    refused(['job', 'rerun', String(gone), '--as', ''], 64, /--as must be a name/);
    refused(['job', 'rerun', 'last'], 64, /job rerun takes one job ID/);
    expect(await snapshot()).toEqual(before);
  });
});

describe('container-jobs schedules list', () => {
  /** The wall-clock time `at` shows in `timezone`, as HH:MM. */
  const wallClock = (at: Date, timeZone: string) =>
    new Intl.DateTimeFormat('en-GB', { timeZone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(at);

  it("lists the task file's schedules by name: task, cron, zone, next run, last run and its job", async () => {
    const before = Date.now();
    const lines = ok(['schedules', 'list'])
      .trimEnd()
      .split('\n')
      .map((l) => l.split('\t'));
    expect(lines.map((f) => f.slice(0, 3))).toEqual([
      ['hourly-wipe', 'wipe', '"0 * * * *" (UTC)'],
      ['nightly-lines', 'lines', '"30 3 * * *" (Europe/Berlin)'],
    ]);
    for (const f of lines) expect(f.slice(4)).toEqual(['last -', 'last job -']);
    const next = lines.map((f) => new Date(f[3].replace(/^next /, '')));
    for (const at of next) expect(at.getTime()).toBeGreaterThan(before - 1000);
    expect(next[0].getUTCMinutes()).toBe(0);
    expect(wallClock(next[1], 'Europe/Berlin')).toBe('03:30');

    // A fire time that made a job: the list shows when, which job, and its status.
    const queue = new Queue(suite.db);
    await registerSchedules(queue, ['nightly-lines'], new Date());
    const fireAt = new Date('2026-03-01T02:30:00Z');
    const job = checkJobRequest(
      catalog,
      { username: 'scheduler', isAdmin: true },
      { task: 'lines', params: { count: 2 } },
    );
    const fired = await fireSchedule(queue, 'nightly-lines', fireAt, job, { allowOverlap: false });
    if (fired.result !== 'created') throw new Error(`expected a job, got ${fired.result}`);
    const nightly = ok(['schedules', 'list'])
      .split('\n')
      .find((l) => l.startsWith('nightly-lines\t'))!
      .split('\t');
    expect(nightly.slice(4)).toEqual(['last 2026-03-01T02:30:00Z', `last job ${fired.jobId} (pending)`]);

    const json = JSON.parse(ok(['schedules', 'list', '--json']));
    expect(json).toEqual([
      expect.objectContaining({
        name: 'hourly-wipe',
        task: 'wipe',
        cron: '0 * * * *',
        timezone: 'UTC',
        createdBy: 'ops',
        lastRunAt: null,
        lastJobId: null,
        lastStatus: null,
      }),
      expect.objectContaining({
        name: 'nightly-lines',
        task: 'lines',
        cron: '30 3 * * *',
        timezone: 'Europe/Berlin',
        createdBy: 'scheduler',
        lastRunAt: fireAt.toISOString(),
        lastJobId: fired.jobId,
        lastStatus: 'pending',
      }),
    ]);
    expect(wallClock(new Date(json[1].nextRunAt), 'Europe/Berlin')).toBe('03:30');
  });

  it('prints nothing on stdout for a task file without schedules, and says so on stderr', () => {
    const result = run(['schedules', 'list'], { JOB_TASKS_FILE: NO_SCHEDULES });
    expect(result.status).toBe(0);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/no schedules in .*good\.json/);
    expect(JSON.parse(ok(['schedules', 'list', '--json'], { JOB_TASKS_FILE: NO_SCHEDULES }))).toEqual([]);
  });

  it.each<[string[], RegExp]>([
    [['schedules'], /usage: npx container-jobs schedules list/],
    [['schedules', 'show'], /usage: npx container-jobs schedules list/],
    [['schedules', 'list', 'nightly-lines'], /schedules list takes no arguments/],
    [['schedules', 'list', '--all=yes'], /unknown option --all/],
  ])('refuses %j (exit 64)', (args, message) => {
    refused(args, 64, message);
  });

  it('refuses a task file that does not load (exit 65)', () => {
    refused(['schedules', 'list'], 65, /nope\.json/, { JOB_TASKS_FILE: path.join(FIXTURES, 'nope.json') });
  });
});

describe('container-jobs job: usage', () => {
  it('lists the job and schedules commands in --help', () => {
    const help = ok(['--help']);
    for (const line of [
      /^ {2}job list \[--status S\] \[--user U\] \[--limit N\] \[--json\]/m,
      /^ {2}job show ID \[--lines N\] \[--json\]/m,
      /^ {2}job cancel ID \[--as NAME\]/m,
      /^ {2}job retry ID \[--as NAME\]/m,
      /^ {2}job rerun ID \[--as OWNER\]/m,
      /^ {2}schedules list \[--json\]/m,
    ]) {
      expect(help).toMatch(line);
    }
  });

  it.each([[['job']], [['job', 'kill', '1']]])('refuses %j with the subcommands (exit 64)', (args) => {
    refused(args, 64, /usage: npx container-jobs job list\|show\|cancel\|retry\|rerun/);
  });
});
