// bench/streams: what readers that never read cost the API (SPEC §11), measured on dist/server.js as users run it.
//   npm run bench:streams                                          (SQLite in a temporary directory)
//   MYSQL_HOST=127.0.0.1 MYSQL_USER=root npm run bench:streams     (uses/recreates database cj_bench_streams)
// A finished job with BENCH_ROWS lines of 16 KiB (64 MiB by default); BENCH_STREAMS raw sockets open
// GET /jobs/:id/stream on it and never read; the API's RSS (from /proc) before, at its peak over
// BENCH_HOLD_SECONDS, and GET /health latency meanwhile. The same again with GET /jobs/:id/status?limit=1000
// (1000 rows of 16 KiB: a 16 MiB body). The server runs with JOB_STREAMS_PER_USER=BENCH_STREAMS, and one
// stream more must be 429 too_many_streams. Target: RSS growth < 100 MB.
import crypto from 'node:crypto';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { QueryTypes } from 'sequelize';
import type { Database } from '../models/database';
import { createUser } from '../models/users';
import {
  ROOT,
  benchDatabase,
  freshDatabase,
  ms,
  removeDatabaseFile,
  rssMb,
  sleep,
  startServer,
  stopServer,
  loginCookie,
} from './common';

const TASKS_FILE = path.join(ROOT, 'bench', 'api-tasks.json');
const STREAMS = Number(process.env.BENCH_STREAMS ?? 20);
const ROWS = Number(process.env.BENCH_ROWS ?? 4096);
const HOLD_SECONDS = Number(process.env.BENCH_HOLD_SECONDS ?? 10);
const LINE_BYTES = 16 * 1024;
const TARGET_MB = 100;
const USER = 'bench';
const PASSWORD = crypto.randomBytes(18).toString('base64url');

/** A finished job with ROWS lines of LINE_BYTES each; returns its id. */
async function jobWithLongLines(db: Database): Promise<number> {
  await db.sequelize.query(
    `INSERT INTO Jobs (task, params, createdBy, status) VALUES ('echo', '{"message":"big"}', '${USER}', 'success')`,
  );
  const [{ id }] = await db.sequelize.query<{ id: number }>('SELECT MAX(id) AS id FROM Jobs', {
    type: QueryTypes.SELECT,
  });
  for (let seq = 1; seq <= ROWS; seq += 64) {
    const values: unknown[] = [];
    const tuples: string[] = [];
    for (let k = seq; k < seq + 64 && k <= ROWS; k++) {
      values.push(id, k, `line ${k} `.padEnd(LINE_BYTES, 'x'));
      tuples.push("(?, ?, 'stdout', ?)");
    }
    await db.sequelize.query(`INSERT INTO JobStatuses (jobId, seq, stream, output) VALUES ${tuples.join(', ')}`, {
      replacements: values,
    });
  }
  return Number(id);
}

/** A GET on a raw socket that is never read; resolves once the response's first bytes are in. */
function openNonReader(url: string, target: string, cookie: string): Promise<net.Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => {
      socket.write(`GET ${target} HTTP/1.1\r\nHost: ${hostname}\r\nCookie: ${cookie}\r\n\r\n`);
    });
    socket.once('error', reject);
    // Take the first chunk (the status line), then stop reading for good.
    socket.once('data', (chunk: Buffer) => {
      socket.pause();
      const status = /^HTTP\/1\.1 (\d+)/.exec(chunk.toString('latin1'))?.[1];
      if (status !== '200') reject(new Error(`${target}: HTTP ${status}`));
      else resolve(socket);
    });
  });
}

async function statusOf(url: string, target: string, cookie: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`${url}${target}`, { headers: { Cookie: cookie } });
  return { status: res.status, body: await res.text() };
}

async function holdAndMeasure(pid: number, url: string, label: string, before: number): Promise<void> {
  let peak = rssMb(pid);
  const latencies: number[] = [];
  const until = Date.now() + HOLD_SECONDS * 1000;
  while (Date.now() < until) {
    const started = process.hrtime.bigint();
    const res = await fetch(`${url}/health`);
    await res.text();
    latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
    peak = Math.max(peak, rssMb(pid));
    await sleep(200);
  }
  latencies.sort((a, b) => a - b);
  const growth = peak - before;
  console.log(
    `${label}: RSS before ${before.toFixed(0)} MB, peak ${peak.toFixed(0)} MB over ${HOLD_SECONDS} s (growth ${growth.toFixed(0)} MB, ${growth < TARGET_MB ? 'under' : 'OVER'} the ${TARGET_MB} MB target); GET /health p50 ${ms(latencies, 0.5)} meanwhile (${latencies.length} requests)`,
  );
  if (growth >= TARGET_MB) process.exitCode = 1;
}

async function settle(pid: number): Promise<number> {
  await sleep(1000);
  return rssMb(pid);
}

async function main(): Promise<void> {
  const config = benchDatabase('cj_bench_streams');
  const db = await freshDatabase(config);
  await createUser(db, USER, PASSWORD);
  const jobId = await jobWithLongLines(db);
  const { child, url } = await startServer(config, {
    JOB_TASKS_FILE: TASKS_FILE,
    JOB_STREAMS_PER_USER: String(STREAMS),
  });
  const pid = child.pid!;
  const where = config.dialect === 'mysql' ? `MySQL ${config.host}:${config.port}/${config.database}` : 'SQLite';
  console.log(
    `bench/streams on ${where}, node ${process.version}, ${os.cpus().length} CPUs (load avg ${os.loadavg()[0].toFixed(2)}); dist/server.js at ${url}; job ${jobId}: ${ROWS} lines of ${LINE_BYTES / 1024} KiB (${((ROWS * LINE_BYTES) / 2 ** 20).toFixed(0)} MiB); ${STREAMS} readers that never read`,
  );
  const sockets: net.Socket[] = [];
  try {
    const cookie = await loginCookie(url, USER, PASSWORD);
    // Warm up both paths once, so the baseline includes the code and pools they use.
    await statusOf(url, `/jobs/${jobId}/status?limit=100`, cookie);
    const before = await settle(pid);

    for (let i = 0; i < STREAMS; i++) sockets.push(await openNonReader(url, `/jobs/${jobId}/stream`, cookie));
    const extra = await statusOf(url, `/jobs/${jobId}/stream`, cookie);
    const code = extra.status === 429 ? (JSON.parse(extra.body) as { error: { code: string } }).error.code : '';
    console.log(`stream ${STREAMS + 1} of the same user: HTTP ${extra.status} ${code}`);
    if (extra.status !== 429 || code !== 'too_many_streams') process.exitCode = 1;
    await holdAndMeasure(pid, url, `${STREAMS} x GET /stream, never read`, before);
    for (const socket of sockets.splice(0)) socket.destroy();

    const beforeStatus = await settle(pid);
    for (let i = 0; i < STREAMS; i++) {
      sockets.push(await openNonReader(url, `/jobs/${jobId}/status?limit=1000`, cookie));
    }
    await holdAndMeasure(pid, url, `${STREAMS} x GET /status?limit=1000 (16 MiB each), never read`, beforeStatus);
  } finally {
    for (const socket of sockets) socket.destroy();
    await stopServer(child);
    await db.close();
    removeDatabaseFile(config);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
