// bench/api: the HTTP API under load, measured in one run against the real server.
//   MYSQL_HOST=127.0.0.1 MYSQL_USER=root node dist/bench/api.js     (uses/recreates database cj_bench_api)
// Prints: POST /jobs requests/s and latency p50/p99 at 32 connections, by session cookie and by bearer
// token (non-2xx must be 0; the Jobs table must grow by the 2xx count); GET /jobs/:id/status latency on a
// job with 1,000,000 output rows (stored after another job's 250,000) at offset=0, offset=999000 and afterId
// near the end. The API is dist/server.js in a child process, so the load generator (autocannon, here)
// never shares its event loop; on a small machine both still share the CPUs with MariaDB: CPU is printed.
// BENCH_MAX_PENDING: the server's JOB_USER_MAX_PENDING (default 100000000: the cap's count runs and walks every
// pending job of the bench's one user; 0 turns the cap off). BENCH_SERVER_NODE_ARGS: node options for the server.
// Then the same with BENCH_USERS (32) users, one per connection, against a server with the product's default
// JOB_USER_MAX_PENDING (1000): each user's count walks its own backlog (the warm-up's jobs are settled first, and
// the run is sized to stay under the cap). BENCH_USERS=0 skips it.
import type { ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import type { EventEmitter } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { QueryTypes } from 'sequelize';
import type { DatabaseConfig } from '../config';
import type { Database } from '../models/database';
import { createApiToken, createUser } from '../models/users';
import { ROOT, benchDatabase, freshDatabase, loginCookie, ms, startServer, stopServer } from './common';

const TASKS_FILE = path.join(ROOT, 'bench', 'api-tasks.json');
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 200);
const EARLIER_ROWS = Number(process.env.BENCH_EARLIER_ROWS ?? 250_000);
const ROWS_PER_INSERT = 5000;
const PAGE = 1000;
const USER = 'bench';
const PASSWORD = crypto.randomBytes(18).toString('base64url');
const JOB_BODY = JSON.stringify({ task: 'echo', params: { message: 'hello from bench/api' } });
const USERS = Number(process.env.BENCH_USERS ?? 32);
/** The product's JOB_USER_MAX_PENDING default (config.ts). */
const DEFAULT_MAX_PENDING = 1000;

// The part of autocannon's API used here (it ships no types).
type Headers = Record<string, string>;
type LoadOptions = {
  url: string;
  connections: number;
  duration?: number;
  amount?: number;
  headers?: Headers;
  /** Called with each connection: its own headers (client.setHeaders). */
  setupClient?: (client: { setHeaders(headers: Headers): void }) => void;
};
type PostOptions = LoadOptions & { method?: string; body?: string };
type LoadRun = EventEmitter & PromiseLike<{ '2xx': number; non2xx: number; errors: number; timeouts: number }>;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const autocannon = require('autocannon') as (options: PostOptions) => LoadRun;

interface Measured {
  ok: number;
  non2xx: number;
  errors: number;
  seconds: number;
  latencies: number[];
  /** When each response arrived, in ms from the start. */
  doneAt: number[];
  /** Share of all CPUs busy during the run, and of one core used by the server and by this process. */
  cpu: { machine: number; server: number; client: number };
}
/** CPU seconds a process has used, from /proc (Linux); 0 elsewhere. */
function processCpuSeconds(pid: number): number {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in USER_HZ (100 on Linux)
  } catch {
    return 0;
  }
}

/** Idle and total CPU milliseconds of the whole machine so far. */
function machineTimes(): { idle: number; total: number } {
  const all = os.cpus().map(({ times: t }) => ({ idle: t.idle, total: t.user + t.nice + t.sys + t.idle + t.irq }));
  return all.reduce((a, b) => ({ idle: a.idle + b.idle, total: a.total + b.total }));
}

async function load(server: ChildProcess, options: PostOptions): Promise<Measured> {
  const latencies: number[] = [];
  const machine = machineTimes();
  const serverCpu = processCpuSeconds(server.pid!);
  const clientCpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  const run = autocannon(options);
  const doneAt: number[] = [];
  run.on('response', (_client: unknown, _status: number, _bytes: number, ms: number) => {
    latencies.push(ms);
    doneAt.push(Number(process.hrtime.bigint() - started) / 1e6);
  });
  const result = await run;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const client = process.cpuUsage(clientCpu);
  const after = machineTimes();
  return {
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    seconds,
    latencies: latencies.sort((a, b) => a - b),
    doneAt,
    cpu: {
      machine: 1 - (after.idle - machine.idle) / (after.total - machine.total),
      server: (processCpuSeconds(server.pid!) - serverCpu) / seconds,
      client: (client.user + client.system) / 1e6 / seconds,
    },
  };
}

const pct = (share: number) => `${(share * 100).toFixed(0)}%`;

async function countJobs(db: Database): Promise<number> {
  const [row] = await db.sequelize.query<{ n: number }>('SELECT COUNT(*) AS n FROM Jobs', { type: QueryTypes.SELECT });
  return Number(row.n);
}

/**
 * POST /jobs at CONNECTIONS for ~SECONDS. A fixed request count, not a duration, so no request is cut off
 * uncounted at the end: the rate in the last 3 s of a 6 s warm-up sizes it.
 */
async function postJobs(
  db: Database,
  server: ChildProcess,
  url: string,
  label: string,
  auth: Headers | Headers[],
  pendingCap?: number,
) {
  const type = { 'Content-Type': 'application/json' };
  const perClient = Array.isArray(auth) ? auth.map((h) => ({ ...type, ...h })) : null;
  let next = 0;
  const options: PostOptions = {
    url: `${url}/jobs`,
    connections: CONNECTIONS,
    method: 'POST',
    headers: perClient ? perClient[0] : { ...type, ...auth },
    body: JOB_BODY,
    ...(perClient && { setupClient: (client) => client.setHeaders(perClient[next++ % perClient.length]) }),
  };
  const warm = await load(server, { ...options, duration: 6 });
  const rate = (warm.doneAt.filter((t) => t >= 3000).length / ((warm.doneAt.at(-1) ?? 0) - 3000)) * 1000;
  await new Promise((resolve) => setTimeout(resolve, 500)); // requests cut off by the warm-up's end land
  // Under a pending cap the warm-up's jobs are settled (as runners would), and the run stays under the cap.
  if (pendingCap) await db.sequelize.query("UPDATE Jobs SET status = 'success' WHERE status = 'pending'");
  const before = await countJobs(db);
  const under = pendingCap && perClient ? perClient.length * Math.floor(pendingCap * 0.9) : Infinity;
  const amount = Math.min(under, Math.max(CONNECTIONS * 10, Math.round(rate * SECONDS) || 0));
  const m = await load(server, { ...options, amount });
  const grew = (await countJobs(db)) - before;
  console.log(
    `POST /jobs ${label.padEnd(7)} ${CONNECTIONS} conns: ${(m.ok / m.seconds).toFixed(0)} req/s (${m.ok} in ${m.seconds.toFixed(2)} s), p50 ${ms(m.latencies, 0.5, 2)}, p99 ${ms(m.latencies, 0.99, 2)}; non-2xx ${m.non2xx}, errors ${m.errors}; Jobs rows +${grew} ${grew === m.ok ? '= 2xx' : `!= 2xx ${m.ok} (MISMATCH)`}; CPU machine ${pct(m.cpu.machine)}, server ${pct(m.cpu.server)} of a core, autocannon ${pct(m.cpu.client)}`,
  );
  if (m.non2xx !== 0 || m.errors !== 0 || grew !== m.ok) process.exitCode = 1;
}

/** A finished job with `rows` output rows, by multi-row INSERTs of ROWS_PER_INSERT; returns its id. */
async function jobWithOutput(db: Database, rows: number): Promise<number> {
  await db.sequelize.query(
    `INSERT INTO Jobs (task, params, createdBy, status) VALUES ('echo', '{"message":"big"}', '${USER}', 'success')`,
  );
  const [{ id }] = await db.sequelize.query<{ id: number }>('SELECT MAX(id) AS id FROM Jobs', {
    type: QueryTypes.SELECT,
  });
  for (let seq = 1; seq <= rows; seq += ROWS_PER_INSERT) {
    const tuples: string[] = [];
    for (let k = seq; k < seq + ROWS_PER_INSERT && k <= rows; k++) {
      tuples.push(
        `(${id}, ${k}, '${k % 5 ? 'stdout' : 'stderr'}', 'line ${k}: the quick brown fox jumps over the dog')`,
      );
    }
    await db.sequelize.query(`INSERT INTO JobStatuses (jobId, seq, stream, output) VALUES ${tuples.join(', ')}`);
  }
  return Number(id);
}

/** The big job's rows come after an earlier job's, as in any table that has seen more than one job. */
async function bigJob(db: Database): Promise<number> {
  const started = process.hrtime.bigint();
  const earlier = await jobWithOutput(db, EARLIER_ROWS);
  const id = await jobWithOutput(db, ROWS);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(
    `insert     ${EARLIER_ROWS} output rows for job ${earlier}, then ${ROWS} for job ${id}, ${ROWS_PER_INSERT} a statement: ${((EARLIER_ROWS + ROWS) / seconds).toFixed(0)} rows/s (${seconds.toFixed(2)} s)`,
  );
  return id;
}

async function readPages(db: Database, server: ChildProcess, url: string, token: string, jobId: number) {
  const [{ id: afterId }] = await db.sequelize.query<{ id: number }>(
    `SELECT id FROM JobStatuses WHERE jobId = ? ORDER BY id DESC LIMIT 1 OFFSET ${PAGE}`,
    { replacements: [jobId], type: QueryTypes.SELECT },
  );
  const headers = { Authorization: `Bearer ${token}` };
  const cases = [`offset=0`, `offset=${ROWS - PAGE}`, `afterId=${afterId}`];
  for (const query of cases) {
    const target = `${url}/jobs/${jobId}/status?${query}&limit=${PAGE}`;
    const check = await fetch(target, { headers });
    const rows = (await check.json()) as unknown[];
    const m = await load(server, { url: target, connections: 1, amount: SAMPLES, headers });
    console.log(
      `GET status ${query.padEnd(16)} limit=${PAGE}: p50 ${ms(m.latencies, 0.5, 2)}, p99 ${ms(m.latencies, 0.99, 2)} (${SAMPLES} sequential; ${rows.length} rows a page; non-2xx ${m.non2xx})`,
    );
    if (check.status !== 200 || rows.length !== PAGE || m.non2xx !== 0 || m.errors !== 0) process.exitCode = 1;
  }
  console.log(
    'paging     offset=N walks past N rows (index entries) before its page, so its cost grows with the offset; afterId=K seeks the (jobId, id) index straight to K, so a page costs the same at any depth.',
  );
}

async function main(): Promise<void> {
  // MySQL/MariaDB only: the figures are about the deployed database (SQLite serialises every write).
  const config = benchDatabase('cj_bench_api', { mysqlOnly: true });
  if (config.dialect !== 'mysql') throw new Error('unreachable: benchDatabase gave SQLite');
  const db = await freshDatabase(config);
  await createUser(db, USER, PASSWORD);
  const { token } = await createApiToken(db, USER, 'bench');
  const { child, url } = await startServer(config, {
    JOB_TASKS_FILE: TASKS_FILE,
    // One user posts every job: a pending cap far above what the run makes (its check still runs).
    JOB_USER_MAX_PENDING: process.env.BENCH_MAX_PENDING ?? '100000000',
  });
  console.log(
    `bench/api on MySQL ${config.host}:${config.port}/${config.database}, node ${process.version}, ${os.cpus().length} CPUs (load avg ${os.loadavg()[0].toFixed(2)}); server: dist/server.js in a child process at ${url} (default pool of 10 connections), load: autocannon in this process`,
  );
  try {
    const cookie = await loginCookie(url, USER, PASSWORD);
    // 1. Creating jobs: cookie (with the same-origin Origin the CSRF check wants) and bearer token.
    await postJobs(db, child, url, 'cookie', { Cookie: cookie, Origin: url });
    await postJobs(db, child, url, 'bearer', { Authorization: `Bearer ${token}` });
    // 2. Paging the output of a job with 1,000,000 rows.
    await readPages(db, child, url, token, await bigJob(db));
  } finally {
    await stopServer(child);
  }
  try {
    if (USERS > 0) await manyUsers(db, config);
  } finally {
    await db.close();
  }
}

/** POST /jobs by USERS users, one per connection, against a server with the product's pending cap. */
async function manyUsers(db: Database, config: DatabaseConfig): Promise<void> {
  const { child, url } = await startServer(config, { JOB_TASKS_FILE: TASKS_FILE });
  try {
    const cookies: Headers[] = [];
    const tokens: Headers[] = [];
    for (let i = 0; i < USERS; i++) {
      const name = `bench${i}`;
      await createUser(db, name, PASSWORD);
      tokens.push({ Authorization: `Bearer ${(await createApiToken(db, name, 'bench')).token}` });
      cookies.push({ Cookie: await loginCookie(url, name, PASSWORD), Origin: url });
    }
    const label = `${USERS} users, default cap ${DEFAULT_MAX_PENDING}`;
    await postJobs(db, child, url, `cookie, ${label}`, cookies, DEFAULT_MAX_PENDING);
    await postJobs(db, child, url, `bearer, ${label}`, tokens, DEFAULT_MAX_PENDING);
  } finally {
    await stopServer(child);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
