// Task templates and the runner end to end (README, "Task templates", "How the runner works"): a real Runner
// in-process, real child processes, the real database.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { QueryTypes } from 'sequelize';
import type { Database } from '../models/database';
import { Queue } from '../models/queue';
import { findPrlimit } from '../runner/job-process';
import { MAX_LINE_BYTES } from '../runner/line-splitter';
import { freshDatabase, truncateAll, sqlOf } from './helpers/database';
import {
  RUNNER_ID,
  baseRunnerEnv,
  expectSeqsInOrder,
  insertJob,
  jobRow,
  killQuietly,
  lines,
  makeRunner,
  runOnce,
  statusRows,
  survivors,
  waitFor,
  type StatusRow,
} from './helpers/runner';

let db: Database;
let queue: Queue;
let tmp: string;
/** Every pid a fixture printed, killed after all tests in case an assertion failed first. */
const seenPids: number[] = [];

beforeAll(async () => {
  ({ db } = await freshDatabase(`cj_test_runner_w${process.env.JEST_WORKER_ID ?? '0'}`));
  queue = new Queue(db);
});

afterAll(async () => {
  killQuietly(seenPids);
  await db.close();
});

beforeEach(async () => {
  await truncateAll(db);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cj-runner-'));
});

afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** The `{"pid":…,"grandchildren":[…]}` line a fixture printed: every pid of its tree. */
function printedPids(rows: StatusRow[]): number[] {
  const line = lines(rows, 'stdout').find((l) => l.startsWith('{"pid"'));
  if (!line) throw new Error(`no pid line in ${JSON.stringify(rows)}`);
  const { pid, grandchildren } = JSON.parse(line) as { pid: number; grandchildren: number[] };
  const pids = [pid, ...grandchildren];
  seenPids.push(...pids);
  return pids;
}

/** The job row and output of a finished job, with the output's order checked. */
async function finished(id: number) {
  const job = await jobRow(db, id);
  const rows = await statusRows(db, id);
  expectSeqsInOrder(rows);
  return { job, rows, last: rows.at(-1)! };
}

describe('plain SQL jobs and validation', () => {
  test('a job inserted with plain SQL runs like any other and gets its command filled in', async () => {
    const id = await insertJob(db, 'hello', { times: 3 });
    expect((await jobRow(db, id)).command).toBeNull();

    const logs = await runOnce(db);

    const { job, rows, last } = await finished(id);
    expect(job).toMatchObject({
      status: 'success',
      exitCode: 0,
      signal: null,
      error: null,
      runnerId: RUNNER_ID,
      command: 'node test/fixtures/runner/hello.js --times=3',
    });
    expect(job.startedAt).not.toBeNull();
    expect(job.finishedAt).not.toBeNull();
    expect(lines(rows, 'stdout')).toEqual(['hello 1', 'hello 2', 'hello 3']);
    expect(lines(rows, 'stderr')).toEqual(['a line on stderr']);
    expect(last.stream).toBe('system');
    expect(last.output).toMatch(/succeeded in \d+\.\d+ s \(exit code 0\)/);
    expect(lines(rows, 'system')).toHaveLength(1);
    expect(logs.join('\n')).not.toMatch(/runner error|no longer owned/);
  });

  test.each([
    ['wrong type', { n: '1' }, /param "n" must be integer/],
    ['unknown param', { n: 1, extra: 2 }, /param "extra" is not accepted/],
    ['missing required param', { label: 'abc' }, /param "n" is required/],
    ['pattern mismatch', { n: 1, label: 'ABC; rm -rf /' }, /param "label" must match pattern/],
    ['params not an object', [1, 2], /params must be an object/],
  ])('params that do not validate (%s): failure/invalid_template, never run', async (_name, params, reason) => {
    const bad = await insertJob(db, 'marker', params);
    const good = await insertJob(db, 'marker', { n: 7, label: 'ok' });

    await runOnce(db, { runnerEnv: baseRunnerEnv({ MARKER_DIR: tmp }) });

    const { job, rows, last } = await finished(bad);
    expect(job).toMatchObject({ status: 'failure', exitCode: null, signal: null, error: 'invalid_template' });
    expect(rows).toHaveLength(1);
    expect(last.stream).toBe('system');
    expect(last.output).toMatch(reason);
    expect(last.output).toMatch(/job not run/);
    expect(fs.existsSync(path.join(tmp, `ran-${bad}`))).toBe(false);
    // The same task with good params did run: the marker is real evidence.
    expect((await jobRow(db, good)).status).toBe('success');
    expect(JSON.parse(fs.readFileSync(path.join(tmp, `ran-${good}`), 'utf8'))).toEqual(['7', '--label=ok']);
  });

  test('a job naming an unknown task: failure/invalid_template, nothing run', async () => {
    const id = await insertJob(db, 'no-such-task', {});

    await runOnce(db, { runnerEnv: baseRunnerEnv({ MARKER_DIR: tmp }) });

    const { job, rows, last } = await finished(id);
    expect(job).toMatchObject({ status: 'failure', exitCode: null, signal: null, error: 'invalid_template' });
    expect(rows).toHaveLength(1);
    expect(last).toMatchObject({ stream: 'system' });
    expect(last.output).toMatch(/task "no-such-task" is not in the task file/);
    expect(fs.readdirSync(tmp)).toEqual([]);
  });
});

describe('what a job gets', () => {
  test('a shell-looking param reaches the program as exactly one literal argv element', async () => {
    const marker = path.join(tmp, 'x');
    // HOME points into the temp dir too: even a broken runner could only hurt that.
    const home = fs.mkdtempSync(path.join(tmp, 'home-'));
    const value = `$(touch ${marker}); rm -rf ~`;
    const id = await insertJob(db, 'args', { value });

    await runOnce(db, { runnerEnv: baseRunnerEnv({ HOME: home }) });

    const { job, rows } = await finished(id);
    expect(job).toMatchObject({ status: 'success', exitCode: 0, signal: null, error: null });
    expect(lines(rows, 'stdout').map((l) => JSON.parse(l))).toEqual([[value]]);
    expect(fs.existsSync(marker)).toBe(false);
    expect(fs.existsSync(home)).toBe(true);
    // The display command quotes it for people; it is never executed.
    expect(job.command).toBe(`node test/fixtures/runner/print-args.js '${value}'`);
  });

  test('the environment is built, not inherited: no runner secrets', async () => {
    const runnerEnv = baseRunnerEnv({
      HOME: '/home/runner',
      MYSQL_PASSWORD: 'secret',
      SESSION_SECRET: 's',
      SOME_RUNNER_VAR: 'x',
      PASSED_VAR: 'y',
    });
    const withUser = await insertJob(db, 'env', {}, { createdBy: 'bob' });
    const withoutUser = await insertJob(db, 'env', {}, { createdBy: null });

    await runOnce(db, { runnerEnv });

    for (const [id, createdBy] of [
      [withUser, 'bob'],
      [withoutUser, ''],
    ] as const) {
      const { job, rows } = await finished(id);
      expect(job).toMatchObject({ status: 'success', exitCode: 0, error: null });
      const stdout = lines(rows, 'stdout');
      expect(stdout).toHaveLength(1);
      const env = JSON.parse(stdout[0]) as Record<string, string>;
      for (const secret of ['MYSQL_PASSWORD', 'SESSION_SECRET', 'SOME_RUNNER_VAR'])
        expect(env).not.toHaveProperty(secret);
      expect(env).toEqual({
        PATH: runnerEnv.PATH,
        LANG: 'C.UTF-8',
        HOME: '/home/runner',
        FOO: 'bar',
        PASSED_VAR: 'y',
        JOB_ID: String(id),
        JOB_TASK: 'env',
        JOB_CREATED_BY: createdBy,
      });
    }
  });

  test('stdin is closed: the program reads end-of-file at once', async () => {
    const id = await insertJob(db, 'stdin', {});

    await runOnce(db);

    const { job, rows } = await finished(id);
    expect(job).toMatchObject({ status: 'success', exitCode: 0, error: null });
    expect(lines(rows, 'stdout').map((l) => JSON.parse(l))).toEqual([{ eof: true, bytes: 0 }]);
  });
});

describe('stopping a job and its whole process group', () => {
  test('timeout: failure/timeout, and no grandchild survives', async () => {
    const id = await insertJob(db, 'timeout-tree', {});

    await runOnce(db);

    const { job, rows, last } = await finished(id);
    const pids = printedPids(rows);
    expect(pids).toHaveLength(3);
    expect(job).toMatchObject({ status: 'failure', exitCode: null, signal: 'SIGTERM', error: 'timeout' });
    expect(last.stream).toBe('system');
    expect(last.output).toMatch(/timed out \(limit 1 s\) and was stopped after [\d.]+ s/);
    expect(await survivors(pids)).toEqual([]);
  });

  test('timeout of a job that ignores SIGTERM: SIGKILL after the grace period, still timeout', async () => {
    const id = await insertJob(db, 'timeout-ignore-term', {});

    await runOnce(db, { killGraceMs: 1000 });

    const { job, rows, last } = await finished(id);
    const pids = printedPids(rows);
    expect(lines(rows, 'stdout')).toContain('got SIGTERM, ignoring it');
    expect(job).toMatchObject({ status: 'failure', exitCode: null, signal: 'SIGKILL', error: 'timeout' });
    expect(last.output).toMatch(/timed out \(limit 1 s\) and was stopped after [\d.]+ s \(killed by SIGKILL\)/);
    expect(await survivors(pids)).toEqual([]);
  });

  test('a main process that exits 0 leaving a grandchild behind: success, and the grandchild is gone', async () => {
    const id = await insertJob(db, 'leave-grandchild', {});

    await runOnce(db);

    const { job, rows, last } = await finished(id);
    const pids = printedPids(rows);
    expect(job).toMatchObject({ status: 'success', exitCode: 0, signal: null, error: null });
    expect(last.output).toMatch(/succeeded/);
    expect(await survivors(pids)).toEqual([]);
  });
});

describe('limits', () => {
  const prlimit = findPrlimit();
  const withPrlimit = prlimit ? test : test.skip;
  if (!prlimit) {
    console.warn('prlimit (util-linux) is not installed: skipping the memory and CPU limit tests');
  }

  withPrlimit('memory limit: failure/memory_limit, and the runner carries on with the next job', async () => {
    const hog = await insertJob(db, 'memory-hog', {});
    const next = await insertJob(db, 'hello', {});

    await runOnce(db, { config: { concurrency: 1 } });

    const { job, rows, last } = await finished(hog);
    expect(job).toMatchObject({ status: 'failure', error: 'memory_limit' });
    expect(lines(rows, 'stdout')).not.toContain('allocated 300 MB');
    expect(last.stream).toBe('system');
    expect(last.output).toMatch(/ran out of memory under its limit of 64 MB/);
    const after = await finished(next);
    expect(after.job).toMatchObject({ status: 'success', exitCode: 0, error: null });
    expect(lines(after.rows, 'stdout')).toEqual(['hello 1']);
  });

  withPrlimit('CPU limit: failure/cpu_limit', async () => {
    const id = await insertJob(db, 'cpu-hog', {});

    await runOnce(db);

    const { job, last } = await finished(id);
    expect(job).toMatchObject({ status: 'failure', exitCode: null, signal: 'SIGXCPU', error: 'cpu_limit' });
    expect(last.output).toMatch(/CPU limit of 1 s/);
  });
});

describe('outcomes', () => {
  test('non-zero exit: failure/exit_code with the code', async () => {
    const id = await insertJob(db, 'exit-code', { code: 3 });

    await runOnce(db);

    const { job, rows, last } = await finished(id);
    expect(job).toMatchObject({ status: 'failure', exitCode: 3, signal: null, error: 'exit_code' });
    expect(lines(rows, 'stdout')).toEqual(['exiting with 3']);
    expect(last).toMatchObject({ stream: 'system' });
    expect(last.output).toMatch(/failed after \d+\.\d+ s \(exit code 3\)/);
  });

  test('killed by a signal: failure with the signal name', async () => {
    const id = await insertJob(db, 'self-kill', {});

    await runOnce(db);

    const { job, last } = await finished(id);
    expect(job).toMatchObject({ status: 'failure', exitCode: null, signal: 'SIGKILL', error: 'signal' });
    expect(last.output).toMatch(/killed by SIGKILL/);
  });

  test.each([
    ['an absolute path that does not exist', 'missing-program', '/nonexistent/prog'],
    ['a name on no PATH', 'missing-on-path', 'cj-test-no-such-program'],
  ])('a missing program (%s): failure/spawn_failed with the reason', async (_name, task, program) => {
    const id = await insertJob(db, task, {});

    await runOnce(db);

    const { job, rows, last } = await finished(id);
    expect(job).toMatchObject({ status: 'failure', exitCode: null, signal: null, error: 'spawn_failed' });
    expect(rows).toHaveLength(1);
    expect(last.stream).toBe('system');
    expect(last.output).toContain(program);
    expect(last.output).toMatch(/could not start/);
  });
});

describe('output', () => {
  test('UTF-8 across chunk boundaries, CRLF, streams, a 40 KiB line split at 16 KiB, no final newline', async () => {
    const id = await insertJob(db, 'output', {});

    await runOnce(db);

    const { job, rows } = await finished(id);
    expect(job).toMatchObject({ status: 'success', exitCode: 0, error: null });
    const stdout = lines(rows, 'stdout');
    expect(stdout[0]).toBe('héllo wörld — 日本語 😀 ✓');
    expect(stdout[1]).toBe('crlf line');
    const pieces = stdout.slice(2);
    let long = '';
    while (Buffer.byteLength(long) < 40 * 1024) long += 'ab€😀ü';
    expect(pieces.length).toBeGreaterThanOrEqual(3);
    for (const piece of pieces) {
      expect(Buffer.byteLength(piece)).toBeLessThanOrEqual(MAX_LINE_BYTES);
      expect(piece).not.toContain('\uFFFD');
    }
    expect(pieces.join('')).toBe(long);
    expect(lines(rows, 'stderr')).toEqual(['to stderr', 'stderr without newline']);
    expect(rows.every((r) => !r.output.includes('\r') && !r.output.includes('\n'))).toBe(true);
    expect(rows.at(-1)!.stream).toBe('system');
  });

  test('the output cap: at most outputMaxBytes stored, one system row says how much was dropped', async () => {
    const LINES = 50_000; // 99 bytes each: ~5 MB
    const MAX = 100_000;
    const id = await insertJob(db, 'flood', { lines: LINES });

    await runOnce(db, { config: { outputMaxBytes: MAX } });

    const { job, rows, last } = await finished(id);
    expect(job).toMatchObject({ status: 'success', exitCode: 0, error: null });
    const stored = rows.filter((r) => r.stream !== 'system');
    const storedBytes = stored.reduce((n, r) => n + Buffer.byteLength(r.output), 0);
    expect(storedBytes).toBeLessThanOrEqual(MAX);
    expect(storedBytes).toBeGreaterThan(MAX - 99);
    // What was stored is the beginning of the output, in order.
    expect(stored.map((r) => r.output)).toEqual(
      Array.from({ length: stored.length }, (_, i) => `line ${String(i).padStart(8, '0')} `.padEnd(99, 'x')),
    );
    const dropRows = lines(rows, 'system').filter((l) => /not stored/.test(l));
    expect(dropRows).toHaveLength(1);
    const dropped = Number(/: (\d+) bytes/.exec(dropRows[0])?.[1]);
    expect(dropped).toBe(LINES * 99 - storedBytes);
    expect(dropRows[0]).toContain(`${LINES - stored.length} lines`);
    expect(last.output).toMatch(/succeeded/);
    expect(lines(rows, 'system')).toHaveLength(2);
  });
});

describe('output cap with lines of different sizes', () => {
  test('what is stored is the beginning of the output: no short line after the first dropped one', async () => {
    const PAIRS = 100; // 1000-byte and 10-byte lines, alternating: 101,000 bytes
    const MAX = 5000;
    const id = await insertJob(db, 'varied', { pairs: PAIRS });

    await runOnce(db, { config: { outputMaxBytes: MAX } });

    const { job, rows } = await finished(id);
    expect(job).toMatchObject({ status: 'success', exitCode: 0, error: null });
    const printed: string[] = [];
    for (let i = 0; i < PAIRS; i++) {
      printed.push(
        `long ${String(i).padStart(4, '0')} `.padEnd(1000, 'L'),
        `s ${String(i).padStart(4, '0')}`.padEnd(10, 's'),
      );
    }
    const stored = lines(rows, 'stdout');
    const storedBytes = stored.reduce((n, l) => n + Buffer.byteLength(l), 0);
    expect(storedBytes).toBeLessThanOrEqual(MAX);
    expect(stored).toEqual(printed.slice(0, stored.length));
    const dropRow = lines(rows, 'system').find((l) => /not stored/.test(l))!;
    expect(dropRow).toContain(`${PAIRS * 1010 - storedBytes} bytes (${printed.length - stored.length} lines)`);
  });
});

describe('claim order', () => {
  test('with one slot, higher priority runs first, ties by id', async () => {
    const file = path.join(tmp, 'order.txt');
    const a = await insertJob(db, 'record', { file }, { priority: 0 });
    const b = await insertJob(db, 'record', { file }, { priority: 5 });
    const c = await insertJob(db, 'record', { file }, { priority: 5 });
    const d = await insertJob(db, 'record', { file }, { priority: -1 });
    const e = await insertJob(db, 'record', { file }, { priority: 10 });
    const f = await insertJob(db, 'record', { file }, { priority: 0 });

    await runOnce(db, { config: { concurrency: 1 } });

    expect(fs.readFileSync(file, 'utf8').trim().split('\n').map(Number)).toEqual([e, b, c, a, f, d]);
    for (const id of [a, b, c, d, e, f]) expect((await finished(id)).job.status).toBe('success');
  });
});

describe('cancel', () => {
  test('a running job is stopped within a heartbeat: cancelled, its process group gone', async () => {
    const id = await insertJob(db, 'ticker', {});
    const { runner, logs } = makeRunner(db);
    const running = runner.run();

    await waitFor(async () => lines(await statusRows(db, id), 'stdout').length >= 2);
    const pids = printedPids(await statusRows(db, id));
    expect(await queue.cancelJob(id, 'alice')).toEqual({ result: 'requested', status: 'running' });
    await running;

    const { job, last } = await finished(id);
    expect(job).toMatchObject({ status: 'cancelled', error: 'cancelled', cancelledBy: 'alice', signal: 'SIGTERM' });
    expect(job.cancelRequestedAt).not.toBeNull();
    expect(last.stream).toBe('system');
    expect(last.output).toMatch(/cancelled on request/);
    expect(await survivors(pids)).toEqual([]);
    expect(logs.join('\n')).not.toMatch(/runner error|no longer owned/);
  });

  test('a pending job is cancelled at once with a system row, and the runner never runs it', async () => {
    const { id } = await queue.enqueue({
      task: 'marker',
      params: { n: 1 },
      command: 'node marker.js 1',
      createdBy: 'bob',
    });

    expect(await queue.cancelJob(id, 'alice')).toEqual({ result: 'cancelled', status: 'cancelled' });
    const before = await finished(id);
    expect(before.job).toMatchObject({ status: 'cancelled', error: 'cancelled', cancelledBy: 'alice', runnerId: null });
    expect(before.rows).toEqual([
      expect.objectContaining({ seq: 1, stream: 'system', output: 'cancelled by alice before it started' }),
    ]);

    await runOnce(db, { runnerEnv: baseRunnerEnv({ MARKER_DIR: tmp }) });

    const after = await finished(id);
    expect(after.job).toMatchObject({ status: 'cancelled', error: 'cancelled', runnerId: null, startedAt: null });
    expect(after.rows).toEqual(before.rows);
    expect(fs.readdirSync(tmp)).toEqual([]);
    expect(await queue.cancelJob(id, 'alice')).toEqual({ result: 'finished', status: 'cancelled' });
  });
});

describe('a lost lease', () => {
  test.each([
    [
      'taken by another runner',
      "runnerId = 'someone-else', heartbeatAt = '2999-01-01 00:00:00.000'",
      { status: 'running', runnerId: 'someone-else', error: null },
    ],
    [
      'marked failed by hand',
      "status = 'failure', error = 'by_hand'",
      { status: 'failure', runnerId: RUNNER_ID, error: 'by_hand' },
    ],
  ])('a job %s is stopped and nothing more is written for it', async (_name, change, expected) => {
    const id = await insertJob(db, 'ticker', {});
    const { runner, logs } = makeRunner(db);
    const running = runner.run();

    await waitFor(async () => lines(await statusRows(db, id), 'stdout').length >= 2);
    const pids = printedPids(await statusRows(db, id));
    await sqlOf(db).query(`UPDATE Jobs SET ${change} WHERE id = ?`, {
      type: QueryTypes.UPDATE,
      replacements: [id],
    });
    // Every later write is fenced, so what is stored now is all there will ever be.
    const rowsAtChange = await statusRows(db, id);
    await running;

    expect(await survivors(pids)).toEqual([]);
    const { job, rows } = await finished(id);
    expect(job).toMatchObject({ ...expected, exitCode: null, signal: null });
    expect(rows).toEqual(rowsAtChange);
    expect(rows.every((r) => r.stream === 'stdout')).toBe(true);
    expect(logs.join('\n')).toMatch(new RegExp(`job ${id}: its lease was taken`));
    expect(logs.join('\n')).not.toMatch(/runner error/);
  });
});
