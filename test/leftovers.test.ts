// The job ledger outside systemd (runner/leftovers.ts): what a sweep ends of a dead runner's jobs,
// and what it leaves alone. Ledgers written by hand, as a runner that died would have left them.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { silentLogger } from '../log';
import { MARK_VARIABLE, ProcessLedger, procStat } from '../runner/leftovers';
import { isAlive, waitFor } from './helpers/runner';

/** Marks of this run: the file runs at once in every database's project, and a sweep looks at every process of the host. */
const MARKS = Object.fromEntries([...'abcdef'].map((letter) => [letter, ProcessLedger.newMark()]));
const BOOT = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
const children: ChildProcess[] = [];
let dir: string;

/** A process in a group of its own, as a job's main process is, with `mark` in its environment (or none). */
function job(mark: string | null): ChildProcess {
  const env: NodeJS.ProcessEnv = { ...process.env, JOB_ID: '7' };
  if (mark !== null) env[MARK_VARIABLE] = mark;
  const child = spawn('sleep', ['300'], { detached: true, stdio: 'ignore', env });
  children.push(child);
  return child;
}

/** A pid no process has now (one that ran and ended). */
function deadPid(): number {
  return spawnSync('true').pid!;
}

function writeLedger(name: string, header: object, lines: string[]): string {
  const file = path.join(dir, `${name}.ledger.json`);
  fs.writeFileSync(file, [JSON.stringify(header), ...lines].join('\n'), { mode: 0o600 });
  return file;
}

const started = (child: ChildProcess, mark: string) =>
  JSON.stringify({ start: { jobId: 7, pgid: child.pid, start: procStat(child.pid!)!.start, mark } });

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cj-ledger-'));
});

afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
});

test("a dead runner's running job is ended; its ended jobs, strangers and live runners' jobs are not", async () => {
  const running = job(MARKS.a);
  const ended = job(MARKS.b);
  const unmarked = job(null);
  const otherMark = job(MARKS.c);
  const file = writeLedger('dead', { bootId: BOOT, runnerId: 'gone:1', pid: deadPid(), pidStart: 1 }, [
    started(running, MARKS.a),
    started(ended, MARKS.b),
    JSON.stringify({ end: 7 }), // job 7 ended...
    started(running, MARKS.a), // ...and its next attempt started
    '{"start":{"jobId":9,"pg', // the runner died writing this line
  ]);
  // A live runner (this process) with the last one's mark: not touched while it lives.
  const live = writeLedger(
    'live',
    { bootId: BOOT, runnerId: 'here', pid: process.pid, pidStart: procStat(process.pid)!.start },
    [started(otherMark, MARKS.c)],
  );

  const ledger = ProcessLedger.open(dir, 'sweeper', silentLogger)!;
  expect(ledger.sweep()).toBe(1);
  await waitFor(() => !isAlive(running.pid!));
  for (const child of [ended, unmarked, otherMark]) expect(isAlive(child.pid!)).toBe(true);
  expect(fs.existsSync(file)).toBe(false);
  expect(fs.existsSync(live)).toBe(true);
});

test('a ledger of an earlier boot is removed unread; a process that started before the job is not its', async () => {
  const older = job(MARKS.d);
  const laterJob = job(MARKS.e);
  const earlierBoot = writeLedger('old', { bootId: 'another-boot', runnerId: 'old', pid: deadPid(), pidStart: 1 }, [
    started(older, MARKS.d),
  ]);
  // The job's leader started after `older`: a process with the mark that is older than its job is not the job's.
  const leader = procStat(laterJob.pid!)!;
  writeLedger('dead', { bootId: BOOT, runnerId: 'gone:2', pid: deadPid(), pidStart: 1 }, [
    JSON.stringify({ start: { jobId: 8, pgid: laterJob.pid, start: leader.start + 1_000_000, mark: MARKS.d } }),
  ]);
  const ledger = ProcessLedger.open(dir, 'sweeper', silentLogger)!;
  expect(ledger.sweep()).toBe(0);
  expect(fs.existsSync(earlierBoot)).toBe(false);
  for (const child of [older, laterJob]) expect(isAlive(child.pid!)).toBe(true);
});

test('a runner writes its jobs as they start and end, and removes its ledger when it stops with none left', async () => {
  const ledger = ProcessLedger.open(dir, 'writer', silentLogger)!;
  const child = job(MARKS.f);
  ledger.add(41, child.pid!, MARKS.f);
  const contents = () => fs.readdirSync(dir).map((name) => fs.readFileSync(path.join(dir, name), 'utf8'));
  await waitFor(() => contents().some((text) => text.includes('"jobId":41')));
  ledger.remove(41);
  await waitFor(() => contents().some((text) => text.includes('{"end":41}')));
  await ledger.close();
  expect(fs.readdirSync(dir)).toEqual([]);
});

test('a directory other users may write is refused (no ledger is kept)', () => {
  fs.chmodSync(dir, 0o777);
  const warnings: string[] = [];
  const log = { ...silentLogger, warn: (line: string) => warnings.push(line) };
  expect(ProcessLedger.open(dir, 'r', log)).toBeNull();
  expect(warnings.join('\n')).toMatch(/may be written by other users \(mode 777\)/);
});
