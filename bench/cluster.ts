// bench/cluster: the queue on a 3-node MariaDB Galera cluster (bench/galera-nodes.ts), one runner
// daemon per node as users run them (`dist/job-runner.js`), a node crashing mid-drain and rejoining.
//   node dist/bench/galera-nodes.js start && npm run bench:cluster
// Migrates database cj_bench_cluster, inserts BENCH_JOBS (3000) one-line jobs spread over the
// nodes, starts a runner per node (concurrency BENCH_CONCURRENCY, 8), inserts BENCH_MORE (300) more
// on every node while they drain, kills node 2 (kill -9) once a third is done, restarts it
// (BENCH_KILL=0 skips this), and waits for every job to end. Prints jobs/s (first start to last end
// on the database clock), each runner's claims, per node the certification failures and
// brute-force aborts (wsrep_local_cert_failures, wsrep_local_bf_aborts deltas), per runner its
// "database unavailable" lines and Sequelize's "Committing transaction ... failed" warnings (and the
// jobs of claims whose COMMIT got no answer, given back), and
// the exactly-once check: every job ended in success with exactly one output line (a second run
// would have written a second one) at attempt 1.
import os from 'node:os';
import path from 'node:path';
import { QueryTypes } from 'sequelize';
import type { DatabaseConfig } from '../config';
import { createDatabase, type Database } from '../models/database';
import { ROOT, dbTimeMs, freshDatabase, runnerEnv, sleep, startRunner, type RunnerProcess } from './common';
import { NODES, galera, sqlPort } from './galera-nodes';

const JOBS = Number(process.env.BENCH_JOBS ?? 3000);
const MORE = Number(process.env.BENCH_MORE ?? 300);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const KILL = process.env.BENCH_KILL !== '0';
const KILLED_NODE = 2;
const DATABASE = process.env.BENCH_DATABASE ?? 'cj_bench_cluster';
const TASKS_FILE = path.join(ROOT, 'bench', 'tasks.json');

const nodeConfig = (n: number): DatabaseConfig => ({
  dialect: 'mysql',
  host: '127.0.0.1',
  port: sqlPort(n),
  user: 'root',
  password: '',
  database: DATABASE,
});

/** `count` pending one-line jobs in multi-row INSERTs of up to 500, through `db`. */
async function insertJobs(db: Database, count: number): Promise<void> {
  const tuple = "('lines', '{\"n\":1}', 'bench')";
  for (let i = 0; i < count; i += 500) {
    const n = Math.min(500, count - i);
    await db.sequelize.query(`INSERT INTO Jobs (task, params, createdBy) VALUES ${Array(n).fill(tuple).join(', ')}`);
  }
}

type Counters = { cert: number; bf: number };

async function wsrepCounters(db: Database): Promise<Counters> {
  const rows = await db.sequelize.query<{ Variable_name: string; Value: string }>(
    "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_local_cert_failures', 'wsrep_local_bf_aborts')",
    { type: QueryTypes.SELECT },
  );
  const value = (name: string) => Number(rows.find((r) => r.Variable_name === name)?.Value ?? NaN);
  return { cert: value('wsrep_local_cert_failures'), bf: value('wsrep_local_bf_aborts') };
}

/** A node's counters, or null while it is down. */
async function tryCounters(n: number): Promise<Counters | null> {
  const db = createDatabase(nodeConfig(n), { poolMax: 1 });
  try {
    return await wsrepCounters(db);
  } catch {
    return null;
  } finally {
    await db.close();
  }
}

async function ended(db: Database): Promise<{ ended: number; total: number }> {
  const [row] = await db.sequelize.query<{ ended: number; total: number }>(
    "SELECT SUM(CASE WHEN status IN ('success', 'failure', 'cancelled') THEN 1 ELSE 0 END) AS ended, COUNT(*) AS total FROM Jobs",
    { type: QueryTypes.SELECT },
  );
  return { ended: Number(row.ended ?? 0), total: Number(row.total) };
}

async function main(): Promise<void> {
  console.log(
    `bench/cluster: node ${process.version}, ${os.cpus().length} CPUs, load average ${os
      .loadavg()
      .map((n) => n.toFixed(2))
      .join(' ')}; ${JOBS} + ${NODES.length} x ${MORE} jobs, ${NODES.length} runners of concurrency ${CONCURRENCY}` +
      `${KILL ? `, node ${KILLED_NODE} killed and rejoined` : ''}`,
  );
  const first = await freshDatabase(nodeConfig(1), { poolMax: 2 });
  const dbs = new Map<number, Database>([[1, first]]);
  for (const n of NODES) if (n !== 1) dbs.set(n, createDatabase(nodeConfig(n), { poolMax: 2 }));
  // Galera applies the migration everywhere; wait until every node sees the table.
  for (const n of NODES) {
    for (let tries = 0; ; tries++) {
      try {
        await dbs.get(n)!.sequelize.query('SELECT COUNT(*) FROM Jobs');
        break;
      } catch (err) {
        if (tries > 100) throw err;
        await sleep(100);
      }
    }
  }
  for (const [i, n] of NODES.entries()) {
    await insertJobs(dbs.get(n)!, Math.floor(JOBS / NODES.length) + (i < JOBS % NODES.length ? 1 : 0));
  }
  const before = new Map<number, Counters | null>();
  for (const n of NODES) before.set(n, await tryCounters(n));

  const runners = new Map<number, RunnerProcess>();
  for (const n of NODES) {
    const env = runnerEnv(nodeConfig(n), {
      JOB_TASKS_FILE: TASKS_FILE,
      JOB_RUNNER_CONCURRENCY: String(CONCURRENCY),
      JOB_RUNNER_ID: `node${n}-runner`,
      JOB_RUNNER_POLL_MS: '200',
      LOG_LEVEL: 'notice',
    });
    runners.set(n, startRunner(env));
  }
  // Every line each runner prints, kept whole (RunnerProcess.tail keeps only the last ones).
  const lines = new Map<number, string[]>();
  for (const [n, runner] of runners) {
    const all: string[] = [];
    lines.set(n, all);
    const pump = (chunk: Buffer) => all.push(...chunk.toString().split('\n').filter(Boolean));
    runner.child.stdout!.on('data', pump);
    runner.child.stderr!.on('data', pump);
  }
  const started = Date.now();
  // More jobs on every node while the runners drain.
  const inserting = Promise.all(
    NODES.map(async (n) => {
      for (let i = 0; i < MORE; i += 10) {
        await sleep(100);
        for (;;) {
          try {
            await insertJobs(dbs.get(n)!, Math.min(10, MORE - i));
            break;
          } catch {
            await sleep(500); // its node is down (the killed one): insert once it is back
          }
        }
      }
    }),
  );
  const total = JOBS + NODES.length * MORE;
  let killed = false;
  let rejoined: Promise<void> | null = null;
  for (;;) {
    const { ended: done } = await ended(first);
    if (done >= total) break;
    if (KILL && !killed && done >= JOBS / 3) {
      killed = true;
      console.log(
        `kill     node ${KILLED_NODE} (kill -9) at ${done} jobs ended, ${((Date.now() - started) / 1000).toFixed(1)} s`,
      );
      await galera('kill', String(KILLED_NODE));
      rejoined = (async () => {
        await sleep(5000);
        const at = Date.now();
        await galera('rejoin', String(KILLED_NODE));
        console.log(`rejoin  node ${KILLED_NODE} Synced again after ${((Date.now() - at) / 1000).toFixed(1)} s`);
      })();
    }
    if (Date.now() - started > 15 * 60_000) throw new Error(`only ${done} of ${total} jobs ended after 15 minutes`);
    await sleep(250);
  }
  await inserting;
  await rejoined;

  const [span] = await first.sequelize.query<{ first: Date; last: Date }>(
    'SELECT MIN(startedAt) AS first, MAX(finishedAt) AS last FROM Jobs',
    { type: QueryTypes.SELECT },
  );
  const seconds = (dbTimeMs(span.last) - dbTimeMs(span.first)) / 1000;
  const claims = await first.sequelize.query<{ runnerId: string; n: number }>(
    'SELECT runnerId, COUNT(*) AS n FROM Jobs GROUP BY runnerId ORDER BY runnerId',
    { type: QueryTypes.SELECT },
  );
  const [check] = await first.sequelize.query<{ jobs: number; success: number; once: number; firstAttempt: number }>(
    `SELECT COUNT(*) AS jobs, SUM(CASE WHEN j.status = 'success' THEN 1 ELSE 0 END) AS success,
       SUM(CASE WHEN o.n = 1 THEN 1 ELSE 0 END) AS once, SUM(CASE WHEN j.attempt = 1 THEN 1 ELSE 0 END) AS firstAttempt
     FROM Jobs j LEFT JOIN (SELECT jobId, COUNT(*) AS n FROM JobStatuses WHERE stream = 'stdout' GROUP BY jobId) o
       ON o.jobId = j.id`,
    { type: QueryTypes.SELECT },
  );

  for (const runner of runners.values()) runner.child.kill('SIGTERM');
  for (const runner of runners.values()) await runner.exited;
  const after = new Map<number, Counters | null>();
  for (const n of NODES) after.set(n, await tryCounters(n));

  console.log(
    `jobs/s   ${(total / seconds).toFixed(1)} (${total} jobs, first start to last end ${seconds.toFixed(1)} s on the database clock)`,
  );
  console.log(`claims   ${claims.map((c) => `${c.runnerId ?? 'none'} ${c.n}`).join(', ')}`);
  let certSum = 0;
  let bfSum = 0;
  for (const n of NODES) {
    const a = before.get(n);
    const b = after.get(n);
    // A node restarted meanwhile counts from zero again.
    const restarted = KILL && n === KILLED_NODE;
    const cert = a && b ? b.cert - (restarted ? 0 : a.cert) : NaN;
    const bf = a && b ? b.bf - (restarted ? 0 : a.bf) : NaN;
    certSum += cert;
    bfSum += bf;
    console.log(
      `node ${n}   certification failures ${cert}, brute-force aborts ${bf}${restarted ? ' (since its restart)' : ''}`,
    );
  }
  console.log(`cluster  certification failures ${certSum}, brute-force aborts ${bfSum}`);
  for (const n of NODES) {
    const all = lines.get(n)!;
    const unavailableLines = all.filter((l) => l.includes('database unavailable'));
    const unavailable = unavailableLines.length;
    const conflicts = unavailableLines.filter((l) => /Deadlock found|Lock wait timeout/.test(l)).length;
    const committing = all.filter((l) => l.includes('Committing transaction')).length;
    console.log(
      `runner ${n} "database unavailable" lines ${unavailable} (${conflicts} for a lock conflict), "Committing transaction" warnings ${committing}`,
    );
    for (const l of all.filter((l) => l.includes('database unavailable')).slice(0, 3))
      console.log(`  | ${l.slice(0, 200)}`);
    for (const l of all.filter((l) => l.includes('claimed as the database went away')))
      console.log(`  | ${l.slice(0, 200)}`);
  }
  const ok = Number(check.jobs) === total && Number(check.success) === total && Number(check.once) === total;
  console.log(
    `exactly-once ${ok ? 'OK' : 'FAILED'}: ${check.success}/${check.jobs} succeeded, ${check.once}/${check.jobs} with exactly one output line, ${check.firstAttempt} at attempt 1 (expected ${total})`,
  );
  if (!ok) process.exitCode = 1;
  for (const db of dbs.values()) await db.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
