// The job launcher (runner/launcher.ts): jobs fork in a small process of the runner's, and come back
// exactly as if they had forked in the runner — every byte in order, exit codes, stops, backpressure —
// and a launcher that dies takes its jobs with it, after which jobs fork in the runner again.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '../log';
import { JobProcess, type JobExit, type JobProcessOptions } from '../runner/job-process';
import type { Launcher } from '../runner/launcher';
import { startLauncher } from './helpers/runner';

const logs: string[] = [];
const log = createLogger({ write: (_level, line) => logs.push(line), journald: false, level: 'debug' });
let launcher: Launcher;
let tmp: string;

beforeEach(() => {
  logs.length = 0;
  launcher = startLauncher(log);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cj-launcher-'));
});

afterEach(() => {
  launcher.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 20));
}

/** A job through `via` (the launcher unless null), with its output collected. */
function job(argv: string[], via: Launcher | null = launcher, extra: Partial<JobProcessOptions> = {}) {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const proc = new JobProcess({
    argv,
    cwd: tmp,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    timeoutMs: 0,
    limits: {},
    killGraceMs: 60_000,
    launcher: via,
    onStdout: (chunk) => out.push(chunk),
    onStderr: (chunk) => err.push(chunk),
    ...extra,
  });
  return {
    proc,
    stdout: () => Buffer.concat(out).toString(),
    stderr: () => Buffer.concat(err).toString(),
    bytes: () => out.reduce((sum, chunk) => sum + chunk.length, 0),
  };
}

const node = process.execPath;

test('every byte of a large output arrives, in order, before the exit is told', async () => {
  // Written synchronously: process.exit() drops what an asynchronous pipe write still holds.
  const script =
    'const fs = require("fs"); for (let i = 0; i < 200000; i++) fs.writeSync(1, `line ${i}\\n`); fs.writeSync(2, "done\\n"); process.exit(3)';
  const j = job([node, '-e', script]);
  j.proc.start();
  const exit = await j.proc.done;
  expect(exit).toEqual<JobExit>({ exitCode: 3, signal: null, spawnError: null, stopReason: null });
  const lines = j.stdout().split('\n');
  expect(lines).toHaveLength(200001);
  expect(lines.every((line, i) => i === 200000 || line === `line ${i}`)).toBe(true);
  expect(j.stderr()).toBe('done\n');
});

test('many jobs at once through one launcher each get their own output and exit code', async () => {
  const jobs = Array.from({ length: 40 }, (_, i) =>
    job([node, '-e', `console.log("job ${i}"); process.exit(${i % 7})`]),
  );
  for (const j of jobs) j.proc.start();
  const exits = await Promise.all(jobs.map((j) => j.proc.done));
  exits.forEach((exit, i) => expect(exit).toMatchObject({ exitCode: i % 7, signal: null }));
  jobs.forEach((j, i) => expect(j.stdout()).toBe(`job ${i}\n`));
});

test('a job that cannot be forked is a spawn error, not a crash', async () => {
  const j = job(['true'], launcher, { cwd: path.join(tmp, 'missing') });
  j.proc.start();
  const exit = await j.proc.done;
  expect(exit.exitCode).toBeNull();
  expect(exit.spawnError).toMatch(/ENOENT/);
  // The launcher is still there for the next one.
  const next = job(['true']);
  next.proc.start();
  expect(await next.proc.done).toMatchObject({ exitCode: 0, spawnError: null });
});

test('a stop asked before the launcher says the job forked still reaches the job', async () => {
  const j = job(['sleep', '600']);
  j.proc.start();
  j.proc.stop('cancelled');
  expect(await j.proc.done).toEqual<JobExit>({
    exitCode: null,
    signal: 'SIGTERM',
    spawnError: null,
    stopReason: 'cancelled',
  });
});

test('a paused job blocks on its full pipe, and gives everything once resumed', async () => {
  const marker = path.join(tmp, 'wrote-all');
  const script = `const fs = require('fs'); const chunk = 'x'.repeat(65535) + '\\n';
for (let i = 0; i < 160; i++) fs.writeSync(1, chunk); fs.writeFileSync(${JSON.stringify(marker)}, '')`;
  let received = 0;
  const proc: JobProcess = new JobProcess({
    argv: [node, '-e', script],
    cwd: tmp,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    timeoutMs: 0,
    limits: {},
    launcher,
    onStdout: (chunk) => {
      // Paused at the first chunk, as the output writer does when the database falls behind.
      if (received === 0) proc.setPaused(true);
      received += chunk.length;
    },
    onStderr: () => {},
  });
  proc.start();
  await until(() => received > 0);
  // 10 MiB cannot fit in the pipe and the launcher's bounded buffer: the job is held mid-write.
  await new Promise((resolve) => setTimeout(resolve, 500));
  expect(fs.existsSync(marker)).toBe(false);
  expect(received).toBeLessThan(160 * 65536);
  proc.setPaused(false);
  expect(await proc.done).toMatchObject({ exitCode: 0, signal: null });
  expect(received).toBe(160 * 65536);
  expect(fs.existsSync(marker)).toBe(true);
});

test('a launcher that dies takes its jobs with it; the next job forks in the runner', async () => {
  const pidFile = path.join(tmp, 'pids');
  // The main process and a background child in its group, both sleeping.
  const script = `const { spawn } = require('child_process'); const c = spawn('sleep', ['600'], { stdio: 'ignore' });
require('fs').writeFileSync(${JSON.stringify(pidFile)}, process.pid + ' ' + c.pid); setInterval(() => {}, 1000)`;
  const j = job([node, '-e', script]);
  j.proc.start();
  await until(() => fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').includes(' '));
  const pids = fs.readFileSync(pidFile, 'utf8').split(' ').map(Number);
  expect(pids.every(alive)).toBe(true);

  process.kill(launcher.pid!, 'SIGKILL');
  expect(await j.proc.done).toMatchObject({ exitCode: null, signal: 'SIGKILL', spawnError: null });
  await until(() => !pids.some(alive));
  expect(launcher.alive).toBe(false);
  expect(logs.join('\n')).toMatch(/the job launcher exited \(SIGKILL\); 1 job\(s\) it had are killed/);

  const next = job([node, '-e', 'console.log(process.ppid)']);
  next.proc.start();
  expect(await next.proc.done).toMatchObject({ exitCode: 0 });
  expect(Number(next.stdout())).toBe(process.pid);
});

test('without a launcher (in the runner), the same job gives the same result', async () => {
  const script = 'console.log("out"); console.error("err"); process.exit(4)';
  const viaLauncher = job([node, '-e', script]);
  const inRunner = job([node, '-e', script], null);
  viaLauncher.proc.start();
  inRunner.proc.start();
  const [a, b] = await Promise.all([viaLauncher.proc.done, inRunner.proc.done]);
  expect(a).toEqual(b);
  expect([viaLauncher.stdout(), viaLauncher.stderr()]).toEqual([inRunner.stdout(), inRunner.stderr()]);
});
