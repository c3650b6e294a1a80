// bench/drain: the runner daemon as users run it (`dist/job-runner.js` in its own process, its
// environment built from scratch), next to the bare cost of what it wraps, measured in one sitting.
//   npm run bench:drain                                          (SQLite in the temporary directory)
//   MYSQL_HOST=127.0.0.1 MYSQL_USER=root npm run bench:drain     (uses/recreates database cj_bench_drain)
//   POSTGRES_HOST=127.0.0.1 POSTGRES_USER=root npm run bench:drain  (the same on PostgreSQL)
// Prints, one figure a line with its unit:
//   bare    2,000 spawns of /bin/true, 8 in flight, in this process: jobs/s without pipes, with both
//           pipes read to their end, and with pipes through `setpriv --pdeathsig KILL` (how the
//           daemon started every job outside systemd before its job launcher, and still does without it);
//   drain   `job-runner --once` draining as many `true` jobs inserted beforehand, without INVOCATION_ID
//           (as `npm start` runs it) and with it (as under systemd): jobs/s (the jobs fork in the
//           runner's launcher process either way)
//           from the first start to the last end on the database clock, the wall time from spawn to
//           exit, and the ratios to the bare rates (the aim: >= 0.8 of the bare rate with pipes);
//   cpu     where each drain's CPU went, per job: the daemon, its job launcher, the jobs themselves
//           and the local database server (read from /proc), and the rate those would allow on
//           this machine's cores if nothing waited;
//   pickup  an idle daemon at its default poll: enqueue -> running (startedAt - createdAt, database
//           clock) p50/p95/max of 20 jobs each, enqueued through the API, through the library
//           (createJobClient) in this process, and by plain SQL.
//   enqueue the one-by-one enqueue rate (awaited, one job a call) of the library, and of
//           Queue.enqueue with the pending quota counted (what POST /jobs runs).
// BENCH_JOBS (2000), BENCH_CONCURRENCY (8), BENCH_ONLY=bare,drain,pickup,enqueue (default all);
// BENCH_PROFILE=DIR runs the draining daemons with --cpu-prof into DIR and prints their top functions;
// BENCH_NODE_ARGS gives them node options (e.g. "--perf-basic-prof" under `perf record`).
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { QueryTypes } from 'sequelize';
import type { DatabaseConfig } from '../config';
import { createJobClient } from '../client';
import type { Database } from '../models/database';
import { Queue } from '../models/queue';
import { seedSqlFor } from '../models/sql';
import { createApiToken, createUser } from '../models/users';
import {
  ROOT,
  benchDatabase,
  dbTimeMs,
  freshDatabase,
  CpuMeter,
  ms,
  removeDatabaseFile,
  runnerEnv,
  sleep,
  startRunner,
  startServer,
  stopServer,
  summariseCpuProfile,
  type RunnerProcess,
} from './common';

const TASKS_FILE = path.join(ROOT, 'bench', 'tasks.json');
const JOBS = Number(process.env.BENCH_JOBS ?? 2000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const PROFILE_DIR = process.env.BENCH_PROFILE;
/** BENCH_NODE_ARGS: node options for the draining daemons, e.g. "--perf-basic-prof" for `perf record`. */
const NODE_ARGS = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
const PICKUP_JOBS = 20;
const PICKUP_SPACING_MS = 300;
const PICKUP_POLL_MS = 2;
const PICKUP_GIVE_UP_MS = 10_000;
const USER = 'bench';

/** BENCH_ONLY=bare,drain,pickup runs only those sections (default: all). */
const only = process.env.BENCH_ONLY?.split(',');
const want = (section: string) => !only || only.includes(section);

/** The bare rates of this sitting, the yardsticks of the drain's ratios (absent when not measured). */
interface BareRates {
  noPipes?: number;
  pipes?: number;
  setpriv?: number;
}

/** util-linux's setpriv, where the daemon looks for it too. */
function findSetpriv(): string | undefined {
  return ['/usr/bin/setpriv', '/bin/setpriv'].find((file) => fs.existsSync(file));
}

/**
 * `count` children from `start`, `concurrency` in flight; jobs/s. A child counts as done at 'close':
 * it has exited and any pipes it had are read to their end, which is when the runner settles a job.
 */
async function spawnLoop(count: number, concurrency: number, start: () => ChildProcess): Promise<number> {
  const started = process.hrtime.bigint();
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      await new Promise<void>((resolve, reject) => {
        const child = start();
        // Read and drop what comes, as a reader that keeps up does (/bin/true prints nothing anyway).
        child.stdout?.resume();
        child.stderr?.resume();
        child.on('error', reject);
        child.on('close', () => resolve());
      });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return count / (Number(process.hrtime.bigint() - started) / 1e9);
}

async function bare(): Promise<BareRates> {
  const label = `${JOBS} x /bin/true, ${CONCURRENCY} in flight`;
  const pipes: ['ignore', 'pipe', 'pipe'] = ['ignore', 'pipe', 'pipe'];
  const noPipes = await spawnLoop(JOBS, CONCURRENCY, () => spawn('/bin/true', [], { stdio: 'ignore' }));
  console.log(`bare     ${label}, stdio ignored:          ${noPipes.toFixed(0)} jobs/s`);
  const withPipes = await spawnLoop(JOBS, CONCURRENCY, () => spawn('/bin/true', [], { stdio: pipes }));
  console.log(`bare     ${label}, stdout+stderr piped:    ${withPipes.toFixed(0)} jobs/s`);
  const setpriv = findSetpriv();
  if (!setpriv) {
    console.log(
      `bare     setpriv: skipped (no /usr/bin/setpriv or /bin/setpriv; the daemon then runs jobs without it)`,
    );
    return { noPipes, pipes: withPipes };
  }
  const args = ['--pdeathsig', 'KILL', '/bin/true'];
  const through = await spawnLoop(JOBS, CONCURRENCY, () => spawn(setpriv, args, { stdio: pipes }));
  console.log(`bare     ${label}, piped, via setpriv:     ${through.toFixed(0)} jobs/s`);
  return { noPipes, pipes: withPipes, setpriv: through };
}

async function clearJobs(db: Database): Promise<void> {
  await db.sequelize.query(seedSqlFor(db.dialect, 'DELETE FROM JobStatuses'));
  await db.sequelize.query(seedSqlFor(db.dialect, 'DELETE FROM Jobs'));
}

/** `count` pending `true` jobs by multi-row INSERTs, so the daemon finds them all at its first claim. */
async function insertJobs(db: Database, count: number): Promise<void> {
  const tuple = "('true', '{}', 'bench')";
  for (let i = 0; i < count; i += 1000) {
    const n = Math.min(1000, count - i);
    await db.sequelize.query(
      seedSqlFor(db.dialect, `INSERT INTO Jobs (task, params, createdBy) VALUES ${Array(n).fill(tuple).join(', ')}`),
    );
  }
}

/** First start to last end on the database clock, and how the jobs ended. */
async function drained(db: Database): Promise<{ seconds: number; jobs: number; succeeded: number }> {
  const [row] = await db.sequelize.query<{ first: string | Date; last: string | Date; n: number; ok: number }>(
    seedSqlFor(
      db.dialect,
      "SELECT MIN(startedAt) AS first, MAX(finishedAt) AS last, COUNT(*) AS n, SUM(CASE WHEN status = 'success' THEN 1 ELSE 0 END) AS ok FROM Jobs",
    ),
    { type: QueryTypes.SELECT },
  );
  return { seconds: (dbTimeMs(row.last) - dbTimeMs(row.first)) / 1000, jobs: Number(row.n), succeeded: Number(row.ok) };
}

const ratio = (rate: number, yardstick: number | undefined) =>
  yardstick === undefined ? 'n/a (bare not run)' : (rate / yardstick).toFixed(2);

/** The newest profiles in DIR that were not there before. */
function newProfiles(dir: string, before: Set<string>): string[] {
  return fs
    .readdirSync(dir)
    .filter((file) => file.endsWith('.cpuprofile') && !before.has(file))
    .map((file) => path.join(dir, file));
}

function printProfile(label: string, file: string): void {
  const { totalMs, busyMs, self, total } = summariseCpuProfile(file);
  const line = (e: { name: string; ms: number; share: number }) =>
    `${e.ms.toFixed(1).padStart(9)} ms ${(e.share * 100).toFixed(1).padStart(5)}%  ${e.name}`;
  console.log(`profile  ${label}: ${file}: ${totalMs.toFixed(0)} ms sampled, ${busyMs.toFixed(0)} ms not idle`);
  console.log(`profile  top 25 by self time:`);
  for (const entry of self.slice(0, 25)) console.log(`  self  ${line(entry)}`);
  console.log(`profile  top 15 by total (inclusive) time:`);
  for (const entry of total.slice(0, 15)) console.log(`  total ${line(entry)}`);
}

/** One `job-runner --once` over JOBS freshly inserted jobs: its figures and ratios. */
async function drainOnce(
  db: Database,
  config: DatabaseConfig,
  label: string,
  extra: Record<string, string>,
  rates: BareRates,
) {
  await clearJobs(db);
  await insertJobs(db, JOBS);
  const env = runnerEnv(config, {
    JOB_TASKS_FILE: TASKS_FILE,
    JOB_RUNNER_CONCURRENCY: String(CONCURRENCY),
    LOG_LEVEL: 'warn',
    ...extra,
  });
  const profiled = PROFILE_DIR ? new Set(fs.readdirSync(PROFILE_DIR)) : null;
  const nodeArgs = [...NODE_ARGS, ...(PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : [])];
  const runner = startRunner(env, ['--once'], nodeArgs);
  const meter = new CpuMeter(runner.child.pid!);
  const { code, signal, seconds: wall } = await runner.exited;
  const cpu = meter.stop();
  if (code !== 0) {
    console.log(`drain    ${label}: job-runner exited with ${code ?? signal}; its last lines:`);
    for (const line of runner.tail.slice(-20)) console.log(`  | ${line}`);
    process.exitCode = 1;
  }
  const { seconds, jobs, succeeded } = await drained(db);
  const rate = succeeded / seconds;
  console.log(
    `drain    ${label}: ${rate.toFixed(0)} jobs/s (${succeeded}/${jobs} succeeded, first start to last end ${seconds.toFixed(2)} s on the database clock; spawn to exit ${wall.toFixed(2)} s wall, ${(jobs / wall).toFixed(0)} jobs/s)`,
  );
  const viaSetpriv =
    extra.INVOCATION_ID === undefined
      ? `; / bare via setpriv = ${ratio(rate, rates.setpriv)} (what it paid per job before the job launcher)`
      : '';
  console.log(
    `ratio    ${label}: / bare with pipes = ${ratio(rate, rates.pipes)} (target >= 0.8); / bare without pipes = ${ratio(rate, rates.noPipes)}${viaSetpriv}`,
  );
  const perJob = (msTotal: number) => `${(msTotal / jobs).toFixed(2)} ms`;
  const all = cpu.daemon + cpu.launcher + cpu.jobs + cpu.database;
  console.log(
    `cpu      ${label}: per job: daemon ${perJob(cpu.daemon)}, its launcher ${perJob(cpu.launcher)}, the jobs ${perJob(cpu.jobs)}, database server ${perJob(cpu.database)}; ${perJob(all)} in all (${os.cpus().length} CPUs: at most ${((os.cpus().length * 1000 * jobs) / all).toFixed(0)} jobs/s)`,
  );
  if (succeeded !== JOBS) process.exitCode = 1;
  if (profiled) {
    const files = newProfiles(PROFILE_DIR!, profiled);
    if (files.length === 0) console.log(`profile  ${label}: no .cpuprofile written to ${PROFILE_DIR}`);
    for (const file of files) printProfile(label, file);
  }
}

/** Waits until the daemon is ready: its start line (notice), then its first report row in JobRunners. */
async function daemonReady(db: Database, runner: RunnerProcess): Promise<void> {
  await runner.waitForLine(/runner \S+ started:/, 30_000);
  const id = `${os.hostname()}:${runner.child.pid}`;
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; await sleep(20)) {
    const rows = await db.sequelize.query(seedSqlFor(db.dialect, 'SELECT id FROM JobRunners WHERE id = ?'), {
      replacements: [id],
      type: QueryTypes.SELECT,
    });
    if (rows.length > 0) return;
  }
  throw new Error(`runner ${id} never reported to JobRunners`);
}

/**
 * PICKUP_JOBS jobs from `enqueue`, one call at a time on a fixed schedule PICKUP_SPACING_MS apart, so
 * they land at different points of the daemon's poll cycle (waiting for each start before the next
 * enqueue would always land at the same point). One poller reads every outstanding row each
 * PICKUP_POLL_MS until its startedAt is set (or PICKUP_GIVE_UP_MS passed). Prints the latencies.
 */
async function pickup(db: Database, label: string, enqueue: () => Promise<number>): Promise<void> {
  const waiting = new Map<number, number>(); // job id -> when its enqueue returned (ms, this clock)
  const latencies: number[] = [];
  const calls: number[] = [];
  let missed = 0;
  let enqueuing = true;
  const poller = (async () => {
    while (enqueuing || waiting.size > 0) {
      await sleep(PICKUP_POLL_MS);
      if (waiting.size === 0) continue;
      const rows = await db.sequelize.query<{ id: number; createdAt: string | Date; startedAt: string | Date | null }>(
        seedSqlFor(
          db.dialect,
          `SELECT id, createdAt, startedAt FROM Jobs WHERE id IN (${[...waiting.keys()].join(', ')})`,
        ),
        { type: QueryTypes.SELECT },
      );
      for (const row of rows) {
        const id = Number(row.id);
        if (row.startedAt !== null) {
          latencies.push(dbTimeMs(row.startedAt) - dbTimeMs(row.createdAt));
          waiting.delete(id);
        } else if (performance.now() - waiting.get(id)! > PICKUP_GIVE_UP_MS) {
          missed++;
          waiting.delete(id);
        }
      }
    }
  })();
  const start = performance.now();
  for (let i = 0; i < PICKUP_JOBS; i++) {
    await sleep(start + i * PICKUP_SPACING_MS - performance.now());
    const sent = performance.now();
    const id = await enqueue();
    calls.push(performance.now() - sent);
    waiting.set(id, performance.now());
  }
  enqueuing = false;
  await poller;
  latencies.sort((a, b) => a - b);
  calls.sort((a, b) => a - b);
  console.log(
    `pickup   ${label.padEnd(22)} ${latencies.length} jobs: p50 ${ms(latencies, 0.5, 0)}, p95 ${ms(latencies, 0.95, 0)}, max ${ms(latencies, 1, 0)} (enqueue call p50 ${ms(calls, 0.5)}${missed ? `; ${missed} not started within ${PICKUP_GIVE_UP_MS / 1000} s` : ''})`,
  );
  if (missed > 0) process.exitCode = 1;
}

async function pickupSection(db: Database, config: DatabaseConfig): Promise<void> {
  await clearJobs(db);
  await createUser(db, USER, crypto.randomBytes(18).toString('base64url'));
  const { token } = await createApiToken(db, USER, 'bench');
  const server = await startServer(config, { JOB_TASKS_FILE: TASKS_FILE });
  // notice, so it prints the line that says it is ready; no JOB_RUNNER_POLL_MS: the default poll.
  const env = runnerEnv(config, {
    JOB_TASKS_FILE: TASKS_FILE,
    JOB_RUNNER_CONCURRENCY: String(CONCURRENCY),
    LOG_LEVEL: 'notice',
  });
  const runner = startRunner(env);
  try {
    await daemonReady(db, runner);
    console.log(
      `pickup   idle daemon at the default poll interval, ${PICKUP_JOBS} jobs ${PICKUP_SPACING_MS} ms apart each way`,
    );
    await pickup(db, 'API POST /jobs', async () => {
      const res = await fetch(`${server.url}/jobs`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
        body: JSON.stringify({ task: 'true', params: {} }),
      });
      if (res.status !== 201) throw new Error(`POST /jobs answered ${res.status}: ${await res.text()}`);
      return ((await res.json()) as { id: number }).id;
    });
    const client = createJobClient({ sequelize: db.sequelize, tasksFile: TASKS_FILE });
    await pickup(db, 'library enqueue', async () => {
      const { id } = await client.enqueue({ task: 'true', params: {}, createdBy: USER });
      return id;
    });
    await pickup(db, 'plain SQL INSERT', async () => {
      await db.sequelize.query(
        seedSqlFor(db.dialect, "INSERT INTO Jobs (task, params, createdBy) VALUES ('true', '{}', 'bench')"),
      );
      // This process is the only one inserting, so the newest row is the one just made.
      const [{ id }] = await db.sequelize.query<{ id: number }>(
        seedSqlFor(db.dialect, 'SELECT MAX(id) AS id FROM Jobs'),
        {
          type: QueryTypes.SELECT,
        },
      );
      return Number(id);
    });
  } finally {
    await stopServer(runner.child);
    await stopServer(server.child);
  }
  const { code, signal } = await runner.exited;
  if (code !== 0) {
    console.log(`pickup   job-runner exited with ${code ?? signal} after SIGTERM; its last lines:`);
    for (const line of runner.tail.slice(-20)) console.log(`  | ${line}`);
    process.exitCode = 1;
  }
}

/**
 * The library's enqueue as a host program calls it (createJobClient: its own transaction, one
 * INSERT), JOBS sequential awaited calls, jobs/s — the peers' "enqueue one-by-one"; then the same
 * through Queue.enqueue with the pending quota counted (the owner's lock and a count: the API's path).
 */
async function enqueueSection(db: Database): Promise<void> {
  const client = createJobClient({ sequelize: db.sequelize, tasksFile: TASKS_FILE });
  const queue = new Queue(db, { userMaxRunning: 0, userMaxPending: JOBS + 1 });
  const ways: [string, () => Promise<unknown>][] = [
    [
      'the library (createJobClient().enqueue)',
      () => client.enqueue({ task: 'true', params: {}, createdBy: USER, delaySec: 3600 }),
    ],
    [
      "Queue.enqueue with the pending quota on (the API's path)",
      () => queue.enqueue({ task: 'true', params: {}, command: null, createdBy: USER, delayMs: 3_600_000 }),
    ],
  ];
  for (const [label, enqueue] of ways) {
    await clearJobs(db);
    const started = process.hrtime.bigint();
    for (let i = 0; i < JOBS; i++) await enqueue();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    console.log(
      `enqueue  ${JOBS} one by one, ${label}: ${(JOBS / seconds).toFixed(0)} jobs/s (${seconds.toFixed(2)} s)`,
    );
  }
  await clearJobs(db);
}

async function main(): Promise<void> {
  const config = benchDatabase('cj_bench_drain');
  const database =
    config.dialect === 'sqlite'
      ? `SQLite ${config.storage}`
      : `${config.dialect === 'mysql' ? 'MySQL' : 'PostgreSQL'} ${config.host}:${config.port}/${config.database}`;
  console.log(
    `bench/drain: node ${process.version}, ${os.cpus().length} CPUs, load average ${os
      .loadavg()
      .map((n) => n.toFixed(2))
      .join(' ')}, database ${database}`,
  );
  const db = await freshDatabase(config, { poolMax: 4 });
  try {
    const rates = want('bare') ? await bare() : {};
    if (want('drain')) {
      if (PROFILE_DIR) fs.mkdirSync(PROFILE_DIR, { recursive: true });
      const jobs = `${JOBS} jobs of /bin/true, concurrency ${CONCURRENCY}`;
      await drainOnce(db, config, `${jobs}, no INVOCATION_ID`, {}, rates);
      await drainOnce(db, config, `${jobs}, INVOCATION_ID (systemd)`, { INVOCATION_ID: 'bench' }, rates);
    }
    if (want('pickup')) await pickupSection(db, config);
    if (want('enqueue')) await enqueueSection(db);
  } finally {
    await db.close();
    removeDatabaseFile(config);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
