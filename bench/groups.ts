// bench/groups: what jobs waiting behind a busy or blocked serial group cost an idle poll and a
// claim (SPEC §9.1: "O(free slots) rows however many jobs wait"), in-process and as the daemon runs.
//   MYSQL_HOST=127.0.0.1 MYSQL_USER=root node dist/bench/groups.js   (recreates cj_bench_groups)
// Cases, each in a fresh database: A empty; B one job of group "hot" running, 10,000 more queued
// behind it; C the same 10,000 behind a blocked group; D (not groups) 10,000 ungrouped jobs due in a
// day. Rows read come from the server: the measuring connection's SESSION status (Rows_read,
// Handler_read_*), and for the daemon MariaDB's userstat TABLE_STATISTICS of this database only
// (turned on for the run, restored after), so other clients of a shared server do not count.
// Row locks: InnoDB's trx_rows_locked after the claim SELECT, inside its transaction.
// The daemon's statements are counted by a forwarding TCP proxy it connects through.
// Options: BENCH_DATABASE, BENCH_CASES=A,B,C,D, BENCH_QUEUED, BENCH_POLLS, BENCH_CLAIM_JOBS,
// BENCH_DAEMON_SECONDS (0: skip the daemon), BENCH_CLAIM_INDEX (measure the claim with
// FORCE INDEX (<name>) instead of the driver's hint; `none`: no hint).
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { QueryTypes } from 'sequelize';
import { loadConfig, type DatabaseConfig } from '../config';
import { createDatabase, recreateMysqlDatabase, type Database } from '../models/database';
import { driverFor, type Driver } from '../models/drivers';
import { migrate } from '../models/migrate';
import { Queue } from '../models/queue';

type MysqlConfig = Extract<DatabaseConfig, { dialect: 'mysql' }>;
type CaseName = 'A' | 'B' | 'C' | 'D';

const ROOT = path.resolve(__dirname, '..', '..');
const TASKS_FILE = path.join(ROOT, 'bench', 'tasks.json');
const QUEUED = Number(process.env.BENCH_QUEUED ?? 10_000);
const POLLS = Number(process.env.BENCH_POLLS ?? 200);
const CLAIM_JOBS = Number(process.env.BENCH_CLAIM_JOBS ?? 500);
const DAEMON_SECONDS = Number(process.env.BENCH_DAEMON_SECONDS ?? 30);
const SLOTS = 4;
const GROUP = 'hot';
const FAKE_RUNNER = 'bench:fake-runner';
const CASES = (process.env.BENCH_CASES ?? 'A,B,C,D').split(',') as CaseName[];
const CLAIM_INDEX = process.env.BENCH_CLAIM_INDEX;

const CASE_TITLES: Record<CaseName, string> = {
  A: 'A empty',
  B: `B ${QUEUED} behind a running group`,
  C: `C ${QUEUED} behind a blocked group`,
  D: `D ${QUEUED} ungrouped, due in a day`,
};

const COUNTERS = [
  'Rows_read',
  'Handler_read_key',
  'Handler_read_next',
  'Handler_read_prev',
  'Handler_read_first',
  'Handler_read_last',
  'Handler_read_rnd',
  'Handler_read_rnd_next',
] as const;
type Counters = Record<(typeof COUNTERS)[number], number>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function p50p95(ms: number[]): string {
  const sorted = [...ms].sort((a, b) => a - b);
  return `${percentile(sorted, 50).toFixed(1)} / ${percentile(sorted, 95).toFixed(1)}`;
}

function benchConfig(): MysqlConfig {
  const base = loadConfig({ ...process.env, MYSQL_DATABASE: process.env.MYSQL_DATABASE ?? 'cj_bench_groups' }).database;
  if (base.dialect !== 'mysql') throw new Error('bench/groups needs MariaDB/MySQL: set MYSQL_HOST and MYSQL_USER');
  const database = process.env.BENCH_DATABASE ?? 'cj_bench_groups';
  if (database.startsWith('cj_test_')) throw new Error(`BENCH_DATABASE=${database}: cj_test_* belong to the tests`);
  return { ...base, database };
}

/** The claim SELECT with another index hint (BENCH_CLAIM_INDEX), or the driver as it is. */
function withClaimIndex(driver: Driver): Driver {
  if (CLAIM_INDEX === undefined) return driver;
  const hint = CLAIM_INDEX === 'none' ? '' : `FORCE INDEX (${CLAIM_INDEX})`;
  const claimSelect = (limit: number) => driver.statements.claimSelect(limit).replace(/FORCE INDEX \([^)]*\)/, hint);
  return { ...driver, statements: { ...driver.statements, claimSelect } };
}

/** One connection (pool of 1), so SESSION status counts exactly this handle's statements. */
function measuringHandle(config: MysqlConfig): Database {
  const db = createDatabase(config, { poolMax: 1 });
  db.driver = withClaimIndex(db.driver);
  return db;
}

/** A hint naming an index the schema lacks fails every claim: say so before measuring anything. */
async function checkClaimHint(db: Database): Promise<void> {
  const hinted = /FORCE INDEX \(([^)]*)\)/.exec(db.driver.statements.claimSelect(1))?.[1];
  if (!hinted) return;
  const found = await sqlSelect(db, 'SHOW INDEX FROM Jobs WHERE Key_name = :name', { name: hinted });
  if (found.length === 0) {
    throw new Error(
      `the claim SELECT says FORCE INDEX (${hinted}), an index Jobs lacks after all migrations: every claim ` +
        'fails on this server. To measure anyway, set BENCH_CLAIM_INDEX=<an index of Jobs> or BENCH_CLAIM_INDEX=none.',
    );
  }
}

async function readCounters(db: Database): Promise<{ conn: number; counters: Counters }> {
  const rows = await db.sequelize.query<{ name: string; value: string; conn: number }>(
    `SELECT VARIABLE_NAME AS name, VARIABLE_VALUE AS value, CONNECTION_ID() AS conn
     FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME IN (${COUNTERS.map((c) => `'${c.toUpperCase()}'`).join(', ')})`,
    { type: QueryTypes.SELECT },
  );
  const counters = Object.fromEntries(COUNTERS.map((c) => [c, 0])) as Counters;
  for (const row of rows) {
    const name = COUNTERS.find((c) => c.toUpperCase() === row.name.toUpperCase());
    if (name) counters[name] = Number(row.value);
  }
  return { conn: Number(rows[0]?.conn), counters };
}

function minus(a: Counters, b: Counters): Counters {
  return Object.fromEntries(COUNTERS.map((c) => [c, a[c] - b[c]])) as Counters;
}

/**
 * The server's row reads of `work` on the measuring connection, net of the status read itself
 * (calibrated by two reads back to back), with each call's latency.
 */
async function measure(
  db: Database,
  calls: number,
  work: (i: number) => Promise<void>,
): Promise<{ perCall: Counters; ms: number[] }> {
  const c0 = await readCounters(db);
  const c1 = await readCounters(db);
  const overhead = minus(c1.counters, c0.counters);
  const ms: number[] = [];
  for (let i = 0; i < calls; i++) {
    const started = performance.now();
    await work(i);
    ms.push(performance.now() - started);
  }
  const c2 = await readCounters(db);
  if (c0.conn !== c1.conn || c1.conn !== c2.conn) throw new Error('measuring connection changed mid-measurement');
  const net = minus(minus(c2.counters, c1.counters), overhead);
  const perCall = Object.fromEntries(COUNTERS.map((c) => [c, net[c] / calls])) as Counters;
  return { perCall, ms };
}

function describeReads(c: Counters): string {
  const handler = COUNTERS.filter((k) => k !== 'Rows_read' && c[k] !== 0)
    .map((k) => `${k.replace('Handler_read_', '')} ${fmt(c[k])}`)
    .join(', ');
  return `Rows_read ${fmt(c.Rows_read)} (Handler_read_*: ${handler || 'none'})`;
}

function fmt(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(2);
}

async function sqlSelect<T extends object>(db: Database, sql: string, replacements?: Record<string, unknown>) {
  return db.sequelize.query<T>(sql, { type: QueryTypes.SELECT, replacements });
}

function printTable(rows: Record<string, unknown>[]): void {
  if (rows.length === 0) return void console.log('(no rows)');
  const cols = Object.keys(rows[0]);
  const cell = (v: unknown) => (v === null || v === undefined ? 'NULL' : String(v));
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i])).join(' | ');
  console.log(line(cols));
  console.log(widths.map((w) => '-'.repeat(w)).join('-+-'));
  for (const row of rows) console.log(line(cols.map((c) => cell(row[c]))));
}

/** Row locks InnoDB holds after the claim SELECT of an idle poll, read inside its transaction. */
async function rowsLockedByClaimSelect(db: Database): Promise<number> {
  return db.sequelize.transaction(async (transaction) => {
    await db.sequelize.query(db.driver.statements.claimSelect(SLOTS), { type: QueryTypes.SELECT, transaction });
    const [row] = await db.sequelize.query<{ n: number }>(
      'SELECT trx_rows_locked AS n FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = CONNECTION_ID()',
      { type: QueryTypes.SELECT, transaction },
    );
    return Number(row?.n ?? 0);
  });
}

// ---------------------------------------------------------------------------------------------
// Setting up a case

const job = (group: { key: string; blockOnFailure: boolean } | null, delayMs?: number) => ({
  task: 'true',
  params: {},
  command: null,
  createdBy: 'bench',
  group,
  ...(delayMs ? { delayMs } : {}),
});

async function enqueueBatches(queue: Queue, count: number, make: () => ReturnType<typeof job>): Promise<void> {
  for (let i = 0; i < count; i += 1000) {
    await queue.enqueueMany(Array.from({ length: Math.min(1000, count - i) }, make));
  }
}

/** The group's head, claimed by a runner that never finishes it; then QUEUED jobs behind it. */
async function busyGroup(db: Database, queue: Queue, blockOnFailure: boolean): Promise<number> {
  const group = { key: GROUP, blockOnFailure };
  await queue.enqueueMany([job(group)]);
  const [head] = await queue.claimDueJobs(FAKE_RUNNER, 1);
  // A live runner's lease without a timer renewing it: no reaper takes the job during the bench.
  await db.sequelize.query('UPDATE Jobs SET heartbeatAt = NOW(3) + INTERVAL 1 DAY WHERE id = :id', {
    replacements: { id: head.id },
  });
  await enqueueBatches(queue, QUEUED, () => job(group));
  return head.id;
}

async function setUp(name: CaseName, db: Database, queue: Queue): Promise<number | null> {
  if (name === 'A') return null;
  if (name === 'D') {
    await enqueueBatches(queue, QUEUED, () => job(null, 24 * 3600 * 1000));
    return null;
  }
  const head = await busyGroup(db, queue, name === 'C');
  if (name === 'C') {
    const outcome = { status: 'failure' as const, exitCode: 1, signal: null, error: 'exit_code' };
    const { finished } = await queue.finishJobs([
      { fence: { jobId: head, runnerId: FAKE_RUNNER, attempt: 1 }, outcome, rows: [] },
    ]);
    if (!finished[0]) throw new Error('case C: could not fail the head job');
  }
  return head;
}

async function describeState(db: Database): Promise<string> {
  const rows = await sqlSelect<{ status: string; groupQueued: number; n: number }>(
    db,
    'SELECT status, groupQueued, COUNT(*) AS n FROM Jobs GROUP BY status, groupQueued ORDER BY status, groupQueued',
  );
  const groups = await sqlSelect<{ key: string; headJobId: number | null; blockedByJobId: number | null }>(
    db,
    'SELECT `key`, headJobId, blockedByJobId FROM JobGroups',
  );
  const jobs = rows.map((r) => `${r.status}${Number(r.groupQueued) ? '+queued' : ''} ${r.n}`).join(', ') || 'no jobs';
  const held = groups.map((g) => `${g.key}: head ${g.headJobId}, blockedBy ${g.blockedByJobId}`).join('; ');
  return `${jobs}${held ? `; group ${held}` : ''}`;
}

// ---------------------------------------------------------------------------------------------
// The daemon, as installed, through a proxy that counts its statements

interface Proxy {
  port: number;
  /** Statements by their first words (COM_QUERY text), and other commands by number. */
  counts: Map<string, number>;
  close(): Promise<void>;
}

async function countingProxy(target: MysqlConfig): Promise<Proxy> {
  const counts = new Map<string, number>();
  const sockets = new Set<net.Socket>();
  const classify = (body: Buffer) => {
    const kind =
      body[0] === 0x03
        ? body.subarray(1).toString('utf8').replace(/\s+/g, ' ').trim().slice(0, 56)
        : `command 0x${body[0].toString(16)}`;
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
    // Client packets: 3-byte length, sequence number, body; a command starts a sequence (0).
    let buf = Buffer.alloc(0);
    let skip = 0;
    client.on('data', (chunk: Buffer) => {
      if (skip >= chunk.length) return void (skip -= chunk.length);
      buf = Buffer.concat([buf, chunk.subarray(skip)]);
      skip = 0;
      while (buf.length >= 4) {
        const len = buf.readUIntLE(0, 3);
        const head = Math.min(len, 256);
        if (buf.length < 4 + head) break;
        if (buf[3] === 0 && len > 0) classify(buf.subarray(4, 4 + head));
        if (buf.length >= 4 + len) {
          buf = buf.subarray(4 + len);
        } else {
          skip = 4 + len - buf.length;
          buf = Buffer.alloc(0);
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    counts,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

const statementsIn = (counts: Map<string, number>) =>
  [...counts].filter(([k]) => !k.startsWith('command ')).reduce((n, [, v]) => n + v, 0);

/** Rows read from this database's tables and indexes (userstat), whoever read them. */
async function tableReads(db: Database, schema: string): Promise<Map<string, number>> {
  const tables = await sqlSelect<{ name: string; n: number }>(
    db,
    'SELECT TABLE_NAME AS name, ROWS_READ AS n FROM information_schema.TABLE_STATISTICS WHERE TABLE_SCHEMA = :schema',
    { schema },
  );
  const indexes = await sqlSelect<{ name: string; n: number }>(
    db,
    `SELECT CONCAT(TABLE_NAME, '.', INDEX_NAME) AS name, ROWS_READ AS n
     FROM information_schema.INDEX_STATISTICS WHERE TABLE_SCHEMA = :schema`,
    { schema },
  );
  return new Map([...tables, ...indexes].map((r) => [r.name, Number(r.n)]));
}

const sumTables = (reads: Map<string, number>) =>
  [...reads].filter(([k]) => !k.includes('.')).reduce((n, [, v]) => n + v, 0);

interface DaemonIdle {
  statementsPerSec: number;
  rowsReadPerSec: number;
  detail: string[];
}

/** `node dist/job-runner.js` (default poll, 4 slots) idle for `seconds` against the case's database. */
async function daemonIdle(db: Database, config: MysqlConfig, seconds: number): Promise<DaemonIdle> {
  const proxy = await countingProxy(config);
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    MYSQL_HOST: '127.0.0.1',
    MYSQL_PORT: String(proxy.port),
    MYSQL_USER: config.user,
    MYSQL_PASSWORD: config.password,
    MYSQL_DATABASE: config.database,
    JOB_TASKS_FILE: TASKS_FILE,
    JOB_RUNNER_CWD: ROOT,
    JOB_RUNNER_CONCURRENCY: String(SLOTS),
    JOB_RUNNER_ID: `bench-groups-daemon:${process.pid}`,
  };
  const entry = path.join(ROOT, 'dist', 'job-runner.js');
  // BENCH_CLAIM_INDEX reaches the daemon as a change to the driver object before the entry runs.
  const args =
    CLAIM_INDEX === undefined
      ? [entry]
      : [
          '-e',
          `const d = require(${JSON.stringify(path.join(ROOT, 'dist', 'models', 'drivers', 'mysql.js'))}).mysqlDriver;
           const c = d.statements.claimSelect;
           d.statements.claimSelect = (l) => c(l).replace(/FORCE INDEX \\([^)]*\\)/, ${JSON.stringify(CLAIM_INDEX === 'none' ? '' : `FORCE INDEX (${CLAIM_INDEX})`)});
           require(${JSON.stringify(entry)});`,
        ];
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  try {
    const claimKind = 'SELECT id, task, params, command, createdBy, groupKey';
    const deadline = Date.now() + 30_000;
    while (![...proxy.counts.keys()].some((k) => k.startsWith(claimKind))) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`daemon did not poll:\n${output}`);
      await sleep(100);
    }
    await sleep(1000); // past the start-up reap and report
    const countsBefore = new Map(proxy.counts);
    const readsBefore = await tableReads(db, config.database);
    await sleep(seconds * 1000);
    const countsAfter = new Map(proxy.counts);
    const readsAfter = await tableReads(db, config.database);
    if (child.exitCode !== null) throw new Error(`daemon exited during the window:\n${output}`);
    if (/error|warn/i.test(output)) console.log(`daemon said:\n${output.trim()}`);
    const statements = statementsIn(countsAfter) - statementsIn(countsBefore);
    const rowsBy = [...readsAfter].map(([k, v]) => [k, v - (readsBefore.get(k) ?? 0)] as const).filter(([, v]) => v);
    const rows = sumTables(readsAfter) - sumTables(readsBefore);
    const kinds = [...countsAfter]
      .map(([k, v]) => [k, v - (countsBefore.get(k) ?? 0)] as const)
      .filter(([, v]) => v > 0)
      .sort((a, b) => b[1] - a[1]);
    return {
      statementsPerSec: statements / seconds,
      rowsReadPerSec: rows / seconds,
      detail: [
        `  rows read in ${seconds} s by table/index: ${rowsBy.map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}`,
        ...kinds.map(([k, v]) => `  ${(v / seconds).toFixed(2).padStart(6)}/s  ${k}`),
      ],
    };
  } finally {
    child.kill('SIGTERM');
    const code = await Promise.race([exited, sleep(15_000).then(() => 'timeout' as const)]);
    if (code === 'timeout') child.kill('SIGKILL');
    await proxy.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The plans

async function explain(db: Database, title: string, sql: string, replacements: Record<string, unknown> = {}) {
  const shown = Object.entries(replacements).map(([k, v]) => `:${k} = ${JSON.stringify(v)}`);
  console.log(`\n--- ${title}${shown.length ? ` (${shown.join(', ')})` : ''}`);
  console.log(sql.replace(/\s+/g, ' ').trim());
  printTable(await sqlSelect<Record<string, unknown>>(db, `EXPLAIN ${sql}`, replacements));
  const [analyzed] = await sqlSelect<{ ANALYZE: string }>(db, `ANALYZE FORMAT=JSON ${sql}`, replacements);
  console.log(analyzed.ANALYZE);
}

async function explainGroupStatements(db: Database, head: number): Promise<void> {
  const s = db.driver.statements;
  const [{ last }] = await sqlSelect<{ last: number }>(db, 'SELECT MAX(id) AS last FROM Jobs WHERE groupKey = :key', {
    key: GROUP,
  });
  console.log(`\n=== Plans in case B (head job ${head} running, ${QUEUED} queued behind it)`);
  await explain(db, 'claimSelect(4): an idle poll', s.claimSelect(SLOTS));
  await explain(db, 'groupNextQueued: who is next when the head ends', s.groupNextQueued, { key: GROUP });
  await explain(db, 'groupLock', s.groupLock, { key: GROUP });
  await explain(db, 'waitingOf: GET /jobs/:id of the last queued job', s.waitingOf, { id: Number(last) });
  await explain(db, 'groups(null): GET /groups', s.groups(null));
}

// ---------------------------------------------------------------------------------------------

interface CaseResult {
  name: CaseName;
  state: string;
  idle: { perCall: Counters; ms: number[] };
  /** Row locks (InnoDB trx_rows_locked) the idle poll's claim SELECT holds until its commit. */
  locked: number;
  claim: { perCall: Counters; ms: number[]; claims: number };
  daemon: DaemonIdle | null;
  groupOps: [string, Counters][];
  crossCheck: string | null;
}

async function runCase(name: CaseName, config: MysqlConfig): Promise<CaseResult> {
  await recreateMysqlDatabase(config);
  const db = measuringHandle(config);
  try {
    await migrate(db);
    await checkClaimHint(db);
    const queue = new Queue(db);
    const head = await setUp(name, db, queue);
    const state = await describeState(db);
    console.log(`case ${CASE_TITLES[name]}: ${state}`);

    // 1. Idle polls: a runner with 4 free slots that finds nothing.
    for (let i = 0; i < 5; i++) await queue.claimDueJobs('bench:idle', SLOTS); // warm the buffer pool
    const idle = await measure(db, POLLS, async () => {
      const claimed = await queue.claimDueJobs('bench:idle', SLOTS);
      if (claimed.length > 0) throw new Error(`case ${name}: an idle poll claimed job ${claimed[0].id}`);
    });

    const locked = await rowsLockedByClaimSelect(db);
    if (name === 'B' && head !== null) await explainGroupStatements(db, head);

    // 2. The daemon as installed, idle against this database.
    const daemon = DAEMON_SECONDS > 0 ? await daemonIdle(db, config, DAEMON_SECONDS) : null;

    // 3. Claims of other work: ungrouped jobs, claimed 4 at a time as a runner with 4 slots does.
    await enqueueBatches(queue, CLAIM_JOBS, () => job(null));
    let claimedTotal = 0;
    const claims = Math.ceil(CLAIM_JOBS / SLOTS);
    const userstatBefore = DAEMON_SECONDS > 0 ? await tableReads(db, config.database) : null;
    const claim = await measure(db, claims, async () => {
      claimedTotal += (await queue.claimDueJobs('bench:claimer', SLOTS)).length;
    });
    if (claimedTotal !== CLAIM_JOBS) throw new Error(`case ${name}: claimed ${claimedTotal} of ${CLAIM_JOBS} jobs`);
    // The daemon's figure comes from userstat: check it against the session counters on the claims.
    const crossCheck = userstatBefore
      ? `userstat saw ${sumTables(await tableReads(db, config.database)) - sumTables(userstatBefore)} rows read ` +
        `during the ${claims} claims; the session counted ${fmt(claim.perCall.Rows_read * claims)}`
      : null;

    // 4. What group operations cost with the queue behind them (B, C): each once, in this order.
    const groupOps: [string, Counters][] = [];
    if (head !== null) {
      const [{ last }] = await sqlSelect<{ last: number }>(db, 'SELECT MAX(id) AS last FROM Jobs WHERE groupKey = :k', {
        k: GROUP,
      });
      const op = async (title: string, work: () => Promise<unknown>) =>
        groupOps.push([title, (await measure(db, 1, async () => void (await work()))).perCall]);
      await op('enqueue 1 more job into the group', () =>
        queue.enqueueMany([job({ key: GROUP, blockOnFailure: name === 'C' })]),
      );
      await op('waitingReason(last queued job)', () => queue.waitingReason(Number(last)));
      await op('listGroups(null)', () => queue.listGroups(null));
      if (name === 'B') {
        const outcome = { status: 'success' as const, exitCode: 0, signal: null, error: null };
        await op('finish the head (group passes to the next job)', () =>
          queue.finishJobs([{ fence: { jobId: head, runnerId: FAKE_RUNNER, attempt: 1 }, outcome, rows: [] }]),
        );
      } else {
        await op('releaseGroup (admin lifts the block)', () => queue.releaseGroup(GROUP));
      }
      console.log(`  after the group operations: ${await describeState(db)}`);
    }
    return { name, state, idle, locked, claim: { ...claim, claims }, daemon, groupOps, crossCheck };
  } finally {
    await db.close();
  }
}

/** userstat on for the run (TABLE_STATISTICS), back to what it was after. */
async function withUserstat<T>(config: MysqlConfig, work: () => Promise<T>): Promise<T> {
  if (DAEMON_SECONDS <= 0) return work();
  const admin = createDatabase({ ...config, database: 'information_schema' }, { poolMax: 1 });
  const [{ on }] = await sqlSelect<{ on: number }>(admin, 'SELECT @@GLOBAL.userstat AS `on`');
  if (!Number(on)) await admin.sequelize.query('SET GLOBAL userstat = ON');
  try {
    return await work();
  } finally {
    if (!Number(on)) await admin.sequelize.query('SET GLOBAL userstat = OFF');
    await admin.close();
  }
}

async function main(): Promise<void> {
  const config = benchConfig();
  const probe = createDatabase(config, { poolMax: 1 });
  await recreateMysqlDatabase(config);
  const [{ version }] = await sqlSelect<{ version: string }>(probe, 'SELECT VERSION() AS version');
  await probe.close();
  const driverHint = /FORCE INDEX \([^)]*\)/.exec(driverFor('mysql').statements.claimSelect(1))?.[0];
  console.log(
    `bench/groups on ${version} at ${config.host}:${config.port}/${config.database}, node ${process.version}; ` +
      `${POLLS} idle polls of ${SLOTS} slots, ${CLAIM_JOBS} jobs claimed ${SLOTS} at a time, daemon idle ${DAEMON_SECONDS} s`,
  );
  console.log(
    `claim index hint: ${driverHint ?? 'none'} in the driver` +
      (CLAIM_INDEX === undefined
        ? ''
        : `; MEASURED WITH ${CLAIM_INDEX === 'none' ? 'no hint' : `FORCE INDEX (${CLAIM_INDEX})`} (BENCH_CLAIM_INDEX)`),
  );
  const results = await withUserstat(config, async () => {
    const done: CaseResult[] = [];
    for (const name of CASES) done.push(await runCase(name, config));
    return done;
  });

  console.log('\n=== Idle polls and claims (rows read: server counters of the measuring connection, per call)');
  printTable(
    results.map((r) => ({
      case: CASE_TITLES[r.name],
      'rows read per idle poll': fmt(r.idle.perCall.Rows_read),
      'idle poll p50/p95 ms': p50p95(r.idle.ms),
      'row locks per idle poll': r.locked,
      'rows read per claim of 4': fmt(r.claim.perCall.Rows_read),
      'claim p50/p95 ms': p50p95(r.claim.ms),
      'daemon idle statements/s': r.daemon ? r.daemon.statementsPerSec.toFixed(2) : 'n/a',
      'daemon idle rows read/s': r.daemon ? r.daemon.rowsReadPerSec.toFixed(2) : 'n/a',
    })),
  );
  for (const r of results) {
    console.log(`\ncase ${CASE_TITLES[r.name]}: ${r.state}`);
    console.log(`  idle poll: ${describeReads(r.idle.perCall)}`);
    console.log(`  claim of ${SLOTS} (${r.claim.claims} claims): ${describeReads(r.claim.perCall)}`);
    for (const [title, c] of r.groupOps) console.log(`  ${title}: ${describeReads(c)}`);
    if (r.daemon) {
      console.log(`  daemon idle: ${r.daemon.statementsPerSec.toFixed(2)} statements/s`);
      for (const line of r.daemon.detail) console.log(line);
    }
    if (r.crossCheck) console.log(`  ${r.crossCheck}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
