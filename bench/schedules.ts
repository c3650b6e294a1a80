// bench/schedules: the schedules contract (SPEC §10.3) on the real clock, as installed: an
// every-minute cron (five fields, no test mode) fired by three `node dist/job-runner.js` on one
// database. One runner is kill -9'ed and started again mid-way; later all three stop across two
// minute boundaries and start again. Two schedules: `missed: latest` and `missed: skip`. Prints what
// happens as it happens, then each minute boundary's jobs against what the contract says, and a
// verdict line (exit status 0 when it holds). Takes 5-6 minutes.
//   MYSQL_HOST=127.0.0.1 MYSQL_USER=root node dist/bench/schedules.js   (recreates cj_bench_schedules)
//   node dist/bench/schedules.js                                         (a fresh SQLite file in /tmp)
// Options: BENCH_DATABASE (MySQL database, default cj_bench_schedules).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { QueryTypes } from 'sequelize';
import { databaseEnv, describeDatabase, type DatabaseConfig } from '../config';
import type { Database } from '../models/database';
import { readTime } from '../models/sql';
import { fireTimes } from '../tasks/schedules';
import { ROOT, benchDatabase, freshDatabase, removeDatabaseFile, sleep } from './common';

const ENTRY = path.join(ROOT, 'dist', 'job-runner.js');
const SCHEDULES = {
  'minutely-latest': { task: 'reconcile', cron: '* * * * *', missed: 'latest', overlap: 'allow' },
  'minutely-skip': { task: 'reconcile', cron: '* * * * *', missed: 'skip', overlap: 'allow' },
} as const;
type ScheduleName = keyof typeof SCHEDULES;
const NAMES = Object.keys(SCHEDULES) as ScheduleName[];
const minutes = fireTimes('* * * * *', 'UTC');

const clock = (at: number) => new Date(at).toISOString().slice(11, 23);
const say = (line: string) => console.log(`${clock(Date.now())}  ${line}`);

// ---------------------------------------------------------------------------------------------
// The runners

const SHOWN = /started:|stopped|schedule \S+: |database unavailable|error/;
const MADE = /schedule (\S+): (missed )?fire time (\S+) made job (\d+)/;

class Daemon {
  readonly child: ChildProcess;
  /** Its log lines, each with the time it arrived. */
  readonly lines: { at: number; text: string }[] = [];
  /** When it said it had started, and when it was stopped or killed (null while up). */
  upAt: number | null = null;
  downAt: number | null = null;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(
    readonly name: string,
    config: DatabaseConfig,
    tasksFile: string,
  ) {
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      LANG: 'C.UTF-8',
      HOME: os.tmpdir(),
      ...databaseEnv(config),
      JOB_TASKS_FILE: tasksFile,
      JOB_RUNNER_ID: `bench-schedules-${name}`,
      JOB_RUNNER_CWD: ROOT,
      LOG_LEVEL: 'info',
    };
    this.child = spawn(process.execPath, [ENTRY], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let partial = '';
    const take = (chunk: Buffer) => {
      const text = partial + chunk.toString('utf8');
      const complete = text.split('\n');
      partial = complete.pop() ?? '';
      for (const line of complete) {
        const at = Date.now();
        this.lines.push({ at, text: line });
        if (/ started:/.test(line) && this.upAt === null) this.upAt = at;
        if (SHOWN.test(line)) say(`${this.name.padEnd(3)} ${line.replace(/^job-runner: /, '')}`);
      }
    };
    this.child.stdout!.on('data', take);
    this.child.stderr!.on('data', take);
    this.exited = new Promise((resolve) => this.child.on('close', (code, signal) => resolve({ code, signal })));
  }

  async started(): Promise<void> {
    const deadline = Date.now() + 60_000;
    while (this.upAt === null) {
      if (this.child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`runner ${this.name} did not start:\n${this.lines.map((l) => l.text).join('\n')}`);
      }
      await sleep(50);
    }
  }

  kill9(): void {
    this.downAt = Date.now();
    this.child.kill('SIGKILL');
  }

  async stop(): Promise<void> {
    this.downAt = Date.now();
    this.child.kill('SIGTERM');
    const result = await Promise.race([this.exited, sleep(60_000).then(() => null)]);
    if (result === null) {
      this.child.kill('SIGKILL');
      throw new Error(`runner ${this.name} did not stop within 60 s of SIGTERM`);
    }
    if (result.code !== 0) throw new Error(`runner ${this.name} exited ${JSON.stringify(result)}`);
  }

  /** "made job 12" lines: schedule, fire time, job, and whether it was a start-up catch-up. */
  made(): { schedule: string; fireAt: string; jobId: number; missed: boolean }[] {
    return this.lines.flatMap(({ text }) => {
      const m = MADE.exec(text);
      return m ? [{ schedule: m[1], fireAt: m[3], jobId: Number(m[4]), missed: m[2] !== undefined }] : [];
    });
  }
}

async function startFleet(names: string[], config: DatabaseConfig, tasksFile: string): Promise<Daemon[]> {
  say(`start ${names.join(', ')} (node dist/job-runner.js)`);
  const fleet = names.map((name) => new Daemon(name, config, tasksFile));
  for (const d of fleet) await d.started();
  return fleet;
}

/** Until `at` on the wall clock (the demonstration's timeline; nothing here waits for a result). */
async function until(at: number, why: string): Promise<void> {
  say(`wait until ${clock(at)}: ${why}`);
  await sleep(at - Date.now());
}

// ---------------------------------------------------------------------------------------------
// The report

interface FireRow {
  scheduleName: ScheduleName;
  fireAt: Date;
  jobId: number | null;
  skipped: string | null;
  createdAt: Date;
}

async function fireRows(db: Database): Promise<FireRow[]> {
  const rows = await db.sequelize.query<Record<string, unknown>>(
    'SELECT scheduleName, fireAt, jobId, skipped, createdAt FROM JobScheduleFires ORDER BY fireAt, scheduleName',
    { type: QueryTypes.SELECT },
  );
  return rows.map((r) => ({
    scheduleName: r.scheduleName as ScheduleName,
    fireAt: readTime(r.fireAt)!,
    jobId: r.jobId === null ? null : Number(r.jobId),
    skipped: (r.skipped as string | null) ?? null,
    createdAt: readTime(r.createdAt)!,
  }));
}

/**
 * What the contract says a minute boundary makes: one job while any runner is up; during an outage
 * nothing, but for `latest` the outage's last boundary, once, when the fleet is back.
 */
function expectedAt(at: number, runners: Daemon[]): { up: string[]; expect: Record<ScheduleName, number> } {
  const up = runners.filter((d) => d.upAt !== null && d.upAt < at && (d.downAt === null || d.downAt > at));
  if (up.length > 0) return { up: up.map((d) => d.name), expect: { 'minutely-latest': 1, 'minutely-skip': 1 } };
  const backAt = Math.min(...runners.map((d) => d.upAt ?? Infinity).filter((t) => t > at));
  const lastOfOutage = Number.isFinite(backAt) && minutes.nextAfter(new Date(at))!.getTime() > backAt;
  return { up: [], expect: { 'minutely-latest': lastOfOutage ? 1 : 0, 'minutely-skip': 0 } };
}

function pad(cells: string[], widths: number[]): string {
  return cells.map((c, i) => c.padEnd(widths[i])).join('  ');
}

async function report(db: Database, runners: Daemon[], from: number, to: number): Promise<boolean> {
  const fires = await fireRows(db);
  const made = runners.flatMap((d) => d.made().map((m) => ({ ...m, runner: d.name })));
  const boundaries: number[] = [];
  for (let at = minutes.nextAfter(new Date(from)); at && at.getTime() <= to; at = minutes.nextAfter(at)) {
    boundaries.push(at.getTime());
  }
  const problems: string[] = [];
  const widths = [12, 24, 38, 38, 8];
  console.log(`\n=== Jobs made at each minute boundary (expected: one while any runner is up; during an outage`);
  console.log(`    none, but \`latest\` runs the outage's last boundary once when the fleet is back)`);
  console.log(pad(['boundary', 'runners up', ...NAMES, 'expected'], widths));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const at of boundaries) {
    const { up, expect } = expectedAt(at, runners);
    const cells = NAMES.map((name) => {
      const here = fires.filter((f) => f.scheduleName === name && f.fireAt.getTime() === at);
      const jobs = here.filter((f) => f.jobId !== null);
      if (jobs.length !== expect[name])
        problems.push(`${clock(at)} ${name}: ${jobs.length} job(s), expected ${expect[name]}`);
      if (here.length === 0) return '0';
      return here
        .map((f) => {
          if (f.jobId === null) return `skipped (${f.skipped})`;
          const by = made.find((m) => m.jobId === f.jobId);
          const late = ((f.createdAt.getTime() - at) / 1000).toFixed(2);
          return `1: job ${f.jobId} by ${by?.runner ?? '?'}${by?.missed ? ' (catch-up)' : ''} +${late}s`;
        })
        .join('; ');
    });
    const outage = up.length === 0 ? 'none (all stopped)' : up.join(' ');
    console.log(
      pad(
        [clock(at).slice(0, 8), outage, ...cells, `${expect['minutely-latest']} / ${expect['minutely-skip']}`],
        widths,
      ),
    );
  }

  // Nothing outside the boundaries above, no job made twice, and no job that no fire made.
  const strays = fires.filter((f) => !boundaries.includes(f.fireAt.getTime()));
  for (const f of strays)
    problems.push(`a fire record outside the window: ${f.scheduleName} at ${f.fireAt.toISOString()}`);
  const jobIds = fires.flatMap((f) => (f.jobId === null ? [] : [f.jobId]));
  if (new Set(jobIds).size !== jobIds.length) problems.push('a job recorded for two fire times');
  const jobs = await db.sequelize.query<{ status: string; n: number }>(
    'SELECT status, COUNT(*) AS n FROM Jobs GROUP BY status ORDER BY status',
    { type: QueryTypes.SELECT },
  );
  const jobCount = jobs.reduce((n, r) => n + Number(r.n), 0);
  if (jobCount !== jobIds.length) problems.push(`${jobCount} jobs in the table for ${jobIds.length} fire records`);
  const madeTwice = made.filter((m, i) => made.findIndex((o) => o.jobId === m.jobId) !== i);
  if (madeTwice.length > 0) problems.push(`job(s) ${madeTwice.map((m) => m.jobId).join(', ')} logged as made twice`);

  console.log(
    `\njobs: ${jobCount} (${jobs.map((r) => `${r.status} ${r.n}`).join(', ')}); fire records: ${fires.length}; ` +
      `made-job log lines: ${made.length} (${made.filter((m) => m.missed).length} start-up catch-up)`,
  );
  if (problems.length === 0) {
    console.log(
      `VERDICT: PASS - ${boundaries.length} minute boundaries, each made exactly the jobs the contract says ` +
        `(one per boundary while any runner was up, none during the outage but one \`latest\` catch-up), no duplicate`,
    );
    return true;
  }
  console.log(`VERDICT: FAIL - ${problems.join('; ')}`);
  return false;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  if (!fs.existsSync(ENTRY)) throw new Error(`${ENTRY} is missing: npm run build`);
  const config = benchDatabase('cj_bench_schedules');
  const db = await freshDatabase(config);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cj-bench-schedules-'));
  const tasksFile = path.join(dir, 'tasks.json');
  fs.writeFileSync(
    tasksFile,
    JSON.stringify(
      { tasks: { reconcile: { description: 'Does nothing', argv: ['true'] } }, schedules: SCHEDULES },
      null,
      2,
    ),
  );
  const all: Daemon[] = [];
  const abort = () => {
    for (const d of all) d.child.kill('SIGKILL');
    process.exit(130);
  };
  process.on('SIGINT', abort).on('SIGTERM', abort);
  try {
    console.log(`bench/schedules: ${describeDatabase(config)}; node ${process.version}; ${os.cpus().length} CPU(s)`);
    console.log(
      `schedules (UTC): ${NAMES.map((n) => `${n} "${SCHEDULES[n].cron}" missed=${SCHEDULES[n].missed}`).join(', ')}`,
    );
    // Start well clear of a minute boundary: three runners take a moment to come up.
    const clear = minutes.nextAfter(new Date())!.getTime();
    if (clear - Date.now() < 15_000) await until(clear + 1_000, 'past the next minute boundary before starting');
    const [a, b, c] = await startFleet(['a', 'b', 'c'], config, tasksFile);
    all.push(a, b, c);
    const from = Math.min(a.upAt!, b.upAt!, c.upAt!);

    const m1 = minutes.nextAfter(new Date())!.getTime();
    await until(m1 + 25_000, 'one boundary with all three, then kill -9 b');
    say('kill -9 b');
    b.kill9();
    await b.exited;

    const m2 = minutes.nextAfter(new Date())!.getTime();
    await until(m2 + 25_000, 'one boundary with a and c, then start b again');
    const [b2] = await startFleet(["b'"], config, tasksFile);
    all.push(b2);

    const m3 = minutes.nextAfter(new Date())!.getTime();
    await until(m3 + 20_000, 'one boundary with all three, then stop them all');
    say("SIGTERM a, b', c");
    await Promise.all([a, b2, c].map((d) => d.stop()));
    say('all stopped');

    const m5 = minutes.nextAfter(minutes.nextAfter(new Date())!)!.getTime();
    await until(m5 + 15_000, 'two boundaries with no runner, then start three again');
    const restarted = await startFleet(['d', 'e', 'f'], config, tasksFile);
    all.push(...restarted);

    const m6 = minutes.nextAfter(new Date())!.getTime();
    await until(m6 + 20_000, 'one boundary with the restarted fleet, then stop');
    say('SIGTERM d, e, f');
    await Promise.all(restarted.map((d) => d.stop()));
    return (await report(db, all, from, m6)) ? 0 : 1;
  } finally {
    for (const d of all) if (d.child.exitCode === null && d.child.signalCode === null) d.child.kill('SIGKILL');
    await db.close();
    fs.rmSync(dir, { recursive: true, force: true });
    removeDatabaseFile(config);
  }
}

main().then(
  (status) => process.exit(status),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
