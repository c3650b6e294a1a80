// bench/logins: does a flood of failing logins stall everyone else? (SPEC §12: GET /jobs p50 < 100 ms)
//   node dist/bench/logins.js                                   (SQLite, a temporary file)
//   MYSQL_HOST=127.0.0.1 MYSQL_USER=root node dist/bench/logins.js   (SQLite, then MariaDB: cj_bench_logins)
// The API is dist/server.js in a child process, as users run it (TRUST_PROXY=loopback, so each flood
// request can come from its own X-Forwarded-For address and is checked, not throttled away). While
// 300 failing logins are in flight at once, a logged-in user calls GET /jobs back to back; printed:
// its latency p50/p95 idle and during the flood, and how the flood was answered (401, 429).
import crypto from 'node:crypto';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, type DatabaseConfig } from '../config';
import { Queue } from '../models/queue';
import { createUser } from '../models/users';
import { ROOT, freshDatabase, ms, removeDatabaseFile, startServer, stopServer } from './common';

const TASKS_FILE = path.join(ROOT, 'bench', 'api-tasks.json');
const FLOOD = Number(process.env.BENCH_FLOOD ?? 300);
const IDLE_SAMPLES = Number(process.env.BENCH_IDLE_SAMPLES ?? 50);
const JOBS = 50;
const USER = 'bench';
const PASSWORD = crypto.randomBytes(18).toString('base64url');

interface Reply {
  status: number;
  ms: number;
  headers: http.IncomingHttpHeaders;
}

function call(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string },
): Promise<Reply> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: options.method ?? 'GET', headers: options.headers, agent: false },
      (res) => {
        res.resume();
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            ms: Number(process.hrtime.bigint() - started) / 1e6,
            headers: res.headers,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

function login(url: string, username: string, password: string, address: string): Promise<Reply> {
  return call(`${url}/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Origin: url, 'X-Forwarded-For': address },
    body: JSON.stringify({ username, password }),
  });
}

async function prepare(config: DatabaseConfig): Promise<void> {
  const db = await freshDatabase(config);
  try {
    await createUser(db, USER, PASSWORD, false);
    const queue = new Queue(db);
    for (let i = 0; i < JOBS; i++) {
      await queue.enqueue({ task: 'echo', params: { message: `job ${i}` }, command: 'echo', createdBy: USER });
    }
  } finally {
    await db.close();
  }
}

async function measure(name: string, config: DatabaseConfig): Promise<void> {
  await prepare(config);
  const { child, url } = await startServer(config, { JOB_TASKS_FILE: TASKS_FILE, TRUST_PROXY: 'loopback' });
  try {
    const ok = await login(url, USER, PASSWORD, '192.168.0.1');
    if (ok.status !== 200) throw new Error(`login as ${USER} answered ${ok.status}`);
    const cookie = String(ok.headers['set-cookie']?.find((c) => c.startsWith('cj.sid='))).split(';')[0];
    const getJobs = () => call(`${url}/jobs`, { headers: { Cookie: cookie } });
    const idle: number[] = [];
    for (let i = 0; i < IDLE_SAMPLES; i++) {
      const reply = await getJobs();
      if (reply.status !== 200) throw new Error(`GET /jobs answered ${reply.status}`);
      idle.push(reply.ms);
    }
    // Each flood request from its own address, at the real user and at names that do not exist.
    const statuses = new Map<number, number>();
    let inFlight = FLOOD;
    const started = process.hrtime.bigint();
    const flood = Array.from({ length: FLOOD }, (_, i) =>
      login(
        url,
        i % 2 === 0 ? USER : `nobody${i}`,
        'wrong-password',
        `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
      )
        .then((reply) => statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1))
        .finally(() => inFlight--),
    );
    const during: number[] = [];
    while (inFlight > 0) {
      const reply = await getJobs();
      if (reply.status !== 200) throw new Error(`GET /jobs answered ${reply.status} during the flood`);
      during.push(reply.ms);
    }
    await Promise.all(flood);
    const floodSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    idle.sort((a, b) => a - b);
    during.sort((a, b) => a - b);
    const answered = [...statuses].map(([status, n]) => `${n}×${status}`).join(', ');
    console.log(`${name}:`);
    console.log(`  GET /jobs idle:         p50 ${ms(idle, 0.5)}, p95 ${ms(idle, 0.95)} (${idle.length} calls)`);
    console.log(`  GET /jobs during flood: p50 ${ms(during, 0.5)}, p95 ${ms(during, 0.95)} (${during.length} calls)`);
    console.log(`  flood: ${FLOOD} concurrent failing logins answered in ${floodSeconds.toFixed(1)} s: ${answered}`);
  } finally {
    await stopServer(child);
  }
}

async function main(): Promise<void> {
  console.log(
    `${os.cpus().length} CPUs, load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  const sqlite: DatabaseConfig = {
    dialect: 'sqlite',
    storage: path.join(os.tmpdir(), `cj-bench-logins-${process.pid}.sqlite`),
  };
  try {
    await measure('SQLite', sqlite);
  } finally {
    removeDatabaseFile(sqlite);
  }
  if (process.env.MYSQL_HOST) {
    const base = loadConfig({ ...process.env, MYSQL_DATABASE: 'cj_bench_logins' }).database;
    if (base.dialect === 'mysql') await measure('MariaDB/MySQL', { ...base, database: 'cj_bench_logins' });
  } else {
    console.log('MariaDB/MySQL: skipped (set MYSQL_HOST and MYSQL_USER)');
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
