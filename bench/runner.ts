// bench/runner: the runner's output path next to the bare cost of what it wraps, measured in one run.
//   MYSQL_HOST=127.0.0.1 MYSQL_USER=root node dist/bench/runner.js     (uses/recreates database cj_bench)
// Prints: output lines/s persisted for a job printing 1,000,000 lines vs bare batched INSERTs; peak
// RSS of a runner whose job prints 200 MB; statements an idle runner sends. The drain and the pickup
// are bench/drain's: the daemon as users run it, not a Runner in this process.
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { QueryTypes } from 'sequelize';
import { databaseEnv, loadConfig, type DatabaseConfig } from '../config';
import { createDatabase, type Database } from '../models/database';
import { silentLogger } from '../log';
import { Queue } from '../models/queue';
import { Runner } from '../runner/runner';
import { TaskCatalog } from '../tasks/catalog';
import { ROOT, benchDatabase, freshDatabase, removeDatabaseFile } from './common';

const TASKS_FILE = path.join(ROOT, 'bench', 'tasks.json');
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const LINES = Number(process.env.BENCH_LINES ?? 1_000_000);

async function clear(db: Database): Promise<void> {
  await db.sequelize.query('DELETE FROM JobStatuses');
  await db.sequelize.query('DELETE FROM Jobs');
}

function runnerConfig(db: Database, overrides: { pollMs?: number; once?: boolean } = {}) {
  return {
    queue: new Queue(db),
    catalog: new TaskCatalog(TASKS_FILE),
    config: {
      ...loadConfig({}).runner,
      concurrency: CONCURRENCY,
      cwd: ROOT,
      id: `bench:${process.pid}`,
      outputMaxBytes: 1024 * 1024 * 1024,
      ...(overrides.pollMs ? { pollMs: overrides.pollMs } : {}),
    },
    runnerEnv: { PATH: process.env.PATH },
    once: overrides.once ?? true,
    log: silentLogger,
  };
}

/** Seconds from the first job's start to the last one's end, on the database clock. */
async function drainSeconds(db: Database): Promise<number> {
  const [row] = await db.sequelize.query<{ first: string | Date; last: string | Date; n: number }>(
    "SELECT MIN(startedAt) AS first, MAX(finishedAt) AS last, COUNT(*) AS n FROM Jobs WHERE status = 'success'",
    { type: QueryTypes.SELECT },
  );
  const ms = (v: string | Date) => (v instanceof Date ? v.getTime() : Date.parse(`${String(v).replace(' ', 'T')}Z`));
  return (ms(row.last) - ms(row.first)) / 1000;
}

/** The bare cost: the same rows by multi-row INSERTs of the runner's batch size, one connection. */
async function bareInsert(db: Database, lines: number, batch = 2000): Promise<number> {
  await db.sequelize.query("INSERT INTO Jobs (task, params, createdBy) VALUES ('lines', '{}', 'bench')");
  const [{ id }] = await db.sequelize.query<{ id: number }>('SELECT MAX(id) AS id FROM Jobs', {
    type: QueryTypes.SELECT,
  });
  const started = process.hrtime.bigint();
  for (let seq = 1; seq <= lines; seq += batch) {
    const values: unknown[] = [];
    const tuples: string[] = [];
    for (let k = seq; k < seq + batch && k <= lines; k++) {
      values.push(id, k, 'stdout', String(k));
      tuples.push('(?, ?, ?, ?)');
    }
    await db.sequelize.query(`INSERT INTO JobStatuses (jobId, seq, stream, output) VALUES ${tuples.join(', ')}`, {
      replacements: values,
    });
  }
  return Number(process.hrtime.bigint() - started) / 1e9;
}

function runnerPeakRss(config: DatabaseConfig): string {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    JOB_TASKS_FILE: TASKS_FILE,
    JOB_RUNNER_CWD: ROOT,
  };
  Object.assign(env, databaseEnv(config));
  const result = spawnSync(process.execPath, [path.join(ROOT, 'dist', 'job-runner.js'), '--once'], {
    env,
    encoding: 'utf8',
  });
  return /peak RSS (\d+ MB)/.exec(result.stdout)?.[1] ?? `unknown (exit ${result.status}: ${result.stderr.trim()})`;
}

/** BENCH_ONLY=drain,pickup … runs only those sections (default: all). */
const only = process.env.BENCH_ONLY?.split(',');
const want = (section: string) => !only || only.includes(section);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Statements an idle runner (default settings) sends, counted on its own connection pool. */
async function idleQueriesPerSecond(config: DatabaseConfig, seconds: number): Promise<number> {
  let statements = 0;
  const db = createDatabase(config, { logging: () => statements++ });
  const runner = new Runner({ ...runnerConfig(db, { once: false }), queue: new Queue(db) });
  const running = runner.run();
  await sleep(1000); // past the start-up reap
  const before = statements;
  await sleep(seconds * 1000);
  const perSecond = (statements - before) / seconds;
  await runner.stop();
  await running;
  await db.close();
  return perSecond;
}

async function main(): Promise<void> {
  const config = benchDatabase('cj_bench');
  const db = await freshDatabase(config, { poolMax: CONCURRENCY + 4 });
  console.log(
    `bench/runner on ${config.dialect === 'mysql' ? `MySQL ${config.host}:${config.port}/${config.database}` : 'SQLite'}, node ${process.version}, ${os.cpus().length} CPUs`,
  );

  if (want('output')) {
    // 2. Output: one job printing 1,000,000 lines, against bare batched INSERTs of as many rows.
    await clear(db);
    await db.sequelize.query(
      `INSERT INTO Jobs (task, params, createdBy) VALUES ('lines', ${db.sequelize.escape(JSON.stringify({ n: LINES }))}, 'bench')`,
    );
    await new Runner(runnerConfig(db)).run();
    const outSeconds = await drainSeconds(db);
    const [{ stored }] = await db.sequelize.query<{ stored: number }>(
      "SELECT COUNT(*) AS stored FROM JobStatuses WHERE stream = 'stdout'",
      { type: QueryTypes.SELECT },
    );
    await clear(db);
    const bareSeconds = await bareInsert(db, LINES);
    const outRate = Number(stored) / outSeconds;
    const bareInsertRate = LINES / bareSeconds;
    console.log(
      `output     ${Number(stored)} lines persisted from one job: ${outRate.toFixed(0)} lines/s (${outSeconds.toFixed(2)} s)`,
    );
    console.log(
      `bare       batched INSERT of ${LINES} rows (2000 a statement): ${bareInsertRate.toFixed(0)} rows/s (${bareSeconds.toFixed(2)} s)`,
    );
    console.log(`ratio      runner / bare insert = ${(outRate / bareInsertRate).toFixed(2)}   (aim >= 0.5)`);
  }
  if (want('memory')) {
    // 3. Memory: a runner process whose job prints ~200 MB (default 16 MiB output cap).
    await clear(db);
    await db.sequelize.query("INSERT INTO Jobs (task, params, createdBy) VALUES ('flood', '{}', 'bench')");
    const rss = runnerPeakRss(config);
    const [{ bytes }] = await db.sequelize.query<{ bytes: number }>(
      "SELECT COALESCE(SUM(LENGTH(output)), 0) AS bytes FROM JobStatuses WHERE stream <> 'system'",
      { type: QueryTypes.SELECT },
    );
    const [dropped] = await db.sequelize.query<{ output: string }>(
      "SELECT output FROM JobStatuses WHERE stream = 'system' AND output LIKE 'output limit%'",
      { type: QueryTypes.SELECT },
    );
    console.log(
      `memory     runner peak RSS with a job printing 202 MB: ${rss}; stored ${bytes} bytes; ${dropped?.output ?? 'no drop row'}`,
    );
  }
  if (want('idle')) {
    // 5. What an idle runner costs the database.
    const idle = await idleQueriesPerSecond(config, Number(process.env.BENCH_IDLE_SECONDS ?? 20));
    const pollMs = loadConfig({}).runner.pollMs;
    console.log(
      `idle       statements/s from an idle runner at default settings: ${idle.toFixed(2)} (${((idle * pollMs) / 1000).toFixed(2)} per ${pollMs} ms poll interval, its report every 15 s included)`,
    );
  }
  await db.close();
  removeDatabaseFile(config);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
