// What the bench scripts share: their database (MySQL when MYSQL_HOST is set, PostgreSQL when
// POSTGRES_HOST is, else a SQLite file),
// built fresh by the real migrations, and dist/server.js started as users start it.
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { databaseEnv, loadConfig, type DatabaseConfig } from '../config';
import { createDatabase, recreateServerDatabase, type Database } from '../models/database';
import { migrate } from '../models/migrate';

export const ROOT = path.resolve(__dirname, '..', '..');

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));

/**
 * The bench's database: with MYSQL_HOST (POSTGRES_HOST), the MySQL (PostgreSQL) database
 * BENCH_DATABASE (default `name`), which the bench drops and recreates; otherwise a SQLite file in the temporary directory. `mysqlOnly`
 * benches stop here without MySQL.
 */
export function benchDatabase(name: string, options: { mysqlOnly?: boolean } = {}): DatabaseConfig {
  const database = process.env.BENCH_DATABASE ?? name;
  // Without MYSQL_HOST or POSTGRES_HOST the embedded database (a MYSQL_DATABASE alone is a configuration error).
  const env = process.env.MYSQL_HOST
    ? { ...process.env, MYSQL_DATABASE: database }
    : process.env.POSTGRES_HOST
      ? { ...process.env, POSTGRES_DATABASE: database }
      : process.env;
  const base = loadConfig(env).database;
  if (base.dialect === 'sqlite') {
    if (options.mysqlOnly) throw new Error(`this bench needs MySQL/MariaDB: set MYSQL_HOST and MYSQL_USER`);
    return { dialect: 'sqlite', storage: path.join(os.tmpdir(), `${name.replace(/_/g, '-')}-${process.pid}.sqlite`) };
  }
  if (database.startsWith('cj_test_')) throw new Error(`BENCH_DATABASE=${database}: cj_test_* belong to the tests`);
  return { ...base, database };
}

/** Empties (drops and recreates, or deletes the file of) the database and migrates it; a handle on it. */
export async function freshDatabase(config: DatabaseConfig, options: { poolMax?: number } = {}): Promise<Database> {
  if (config.dialect !== 'sqlite') {
    await recreateServerDatabase(config);
  } else {
    for (const suffix of ['', '-wal', '-shm']) fs.rmSync(config.storage + suffix, { force: true });
  }
  const db = createDatabase(config, options);
  await migrate(db);
  return db;
}

/** Deletes a SQLite bench file (and its WAL files); nothing for MySQL, whose database stays for a look. */
export function removeDatabaseFile(config: DatabaseConfig): void {
  if (config.dialect !== 'sqlite') return;
  for (const suffix of ['', '-wal', '-shm']) fs.rmSync(config.storage + suffix, { force: true });
}

/**
 * `node dist/server.js` on this database, as users run it: an ephemeral port on 127.0.0.1, a fresh
 * session secret, `env` added. Resolves with its URL once it says it listens.
 */
export async function startServer(
  config: DatabaseConfig,
  env: Record<string, string>,
): Promise<{ child: ChildProcess; url: string }> {
  // BENCH_SERVER_NODE_ARGS: node options for the server, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
  const nodeArgs = (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, path.join(ROOT, 'dist', 'server.js')], {
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      PORT: '0',
      HOST: '127.0.0.1',
      SESSION_SECRET: crypto.randomBytes(32).toString('hex'),
      ...databaseEnv(config),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`dist/server.js exited with ${code} before listening`)));
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      const match = /listening on (http:\/\/\S+)/.exec(line);
      if (match) resolve(match[1]);
    });
  });
  child.removeAllListeners('exit');
  return { child, url };
}

/** The q-quantile (0..1) of an ascending array, nearest rank. */
export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** A latency quantile for a report line: `12.3 ms`, or `n/a` without samples. */
export function ms(sorted: number[], q: number, digits = 1): string {
  return sorted.length === 0 ? 'n/a' : `${quantile(sorted, q).toFixed(digits)} ms`;
}

/** Resident set size of a process in MB, from /proc (Linux). */
export function rssMb(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : NaN;
}

/** SIGTERM to a server started by startServer, and its exit. */
export async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

/** Logs in to a server started by startServer; its `cj.sid=…` session cookie. */
export async function loginCookie(url: string, username: string, password: string): Promise<string> {
  const res = await fetch(`${url}/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Origin: url },
    body: JSON.stringify({ username, password }),
  });
  const cookie = res.headers.getSetCookie().find((c) => c.startsWith('cj.sid='));
  if (res.status !== 200 || !cookie) throw new Error(`login failed: ${res.status} ${await res.text()}`);
  return cookie.split(';')[0];
}

/**
 * A time column as ms since the epoch: MySQL's DATETIME(3) arrives as a Date, SQLite's as UTC text
 * ('2026-12-02 10:00:00.123'), which Date.parse would read as local time without the `Z`.
 */
export function dbTimeMs(value: string | Date): number {
  return value instanceof Date ? value.getTime() : Date.parse(`${String(value).replace(' ', 'T')}Z`);
}

/**
 * The environment of `dist/job-runner.js` in a bench, built from scratch as a unit file gives it
 * (nothing of the bench's own environment leaks in, INVOCATION_ID included): the database, `env` added.
 */
export function runnerEnv(config: DatabaseConfig, env: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    LANG: 'C.UTF-8',
    HOME: os.tmpdir(),
    ...databaseEnv(config),
    JOB_RUNNER_CWD: ROOT,
    ...env,
  };
}

/** A `dist/job-runner.js` started by startRunner, its output kept for a look. */
export interface RunnerProcess {
  child: ChildProcess;
  /** The last lines it printed, stdout and stderr interleaved as they came (at most 200). */
  tail: string[];
  /** Its exit: status or signal, and seconds from spawn. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; seconds: number }>;
  /** The first line (from now on, or already in `tail`) that matches, or a rejection after `timeoutMs`. */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<string>;
}

const TAIL_LINES = 200;

/**
 * `node [nodeArgs] dist/job-runner.js [args]` with exactly `env` (see runnerEnv), both streams read
 * line by line: a daemon whose pipes nobody reads would block on its own log.
 */
export function startRunner(env: Record<string, string>, args: string[] = [], nodeArgs: string[] = []): RunnerProcess {
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, [...nodeArgs, path.join(ROOT, 'dist', 'job-runner.js'), ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const tail: string[] = [];
  const watchers = new Set<(line: string) => void>();
  const onLine = (line: string) => {
    tail.push(line);
    if (tail.length > TAIL_LINES) tail.shift();
    for (const watch of watchers) watch(line);
  };
  readline.createInterface({ input: child.stdout! }).on('line', onLine);
  readline.createInterface({ input: child.stderr! }).on('line', onLine);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; seconds: number }>((resolve) => {
    // 'close', not 'exit': every line it printed has been read by then.
    child.once('close', (code, signal) =>
      resolve({ code, signal, seconds: Number(process.hrtime.bigint() - started) / 1e9 }),
    );
  });
  const waitForLine = (pattern: RegExp, timeoutMs: number) =>
    new Promise<string>((resolve, reject) => {
      const seen = tail.find((line) => pattern.test(line));
      if (seen !== undefined) return resolve(seen);
      const done = (error: Error | null, line = '') => {
        watchers.delete(watch);
        clearTimeout(timer);
        if (error) reject(error);
        else resolve(line);
      };
      const watch = (line: string) => {
        if (pattern.test(line)) done(null, line);
      };
      const timer = setTimeout(
        () => done(new Error(`job-runner printed no line like ${pattern} in ${timeoutMs} ms`)),
        timeoutMs,
      );
      watchers.add(watch);
      void exited.then(({ code }) => done(new Error(`job-runner exited (${code}) before a line like ${pattern}`)));
    });
  return { child, tail, exited, waitForLine };
}

/** One function's share of a CPU profile. */
export interface ProfileEntry {
  /** `name url:line`, the url relative to the project where it is inside it. */
  name: string;
  ms: number;
  share: number;
}

/** A V8 .cpuprofile (what `node --cpu-prof` writes); only the fields read here. */
interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }[];
  samples: number[];
  timeDeltas: number[];
}

/**
 * Self and total (inclusive) time by function in a `.cpuprofile`, largest first. Sample i is charged
 * the time until the next sample (timeDeltas[i + 1]), as DevTools does. A function that recurses is
 * counted once per stack for its total, so no total exceeds the whole. Shares are of all sampled
 * time, `(idle)` included; `busyMs` leaves it out.
 */
export function summariseCpuProfile(
  file: string,
  root = ROOT,
): { totalMs: number; busyMs: number; self: ProfileEntry[]; total: ProfileEntry[] } {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
  });
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const keyOf = (id: number) => {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const where = url.startsWith('file://') ? url.slice('file://'.length) : url;
    const short = where.startsWith(root + path.sep) ? path.relative(root, where) : where;
    return `${functionName || '(anonymous)'}${short ? ` ${short}:${lineNumber + 1}` : ''}`;
  };
  const selfByKey = new Map<string, number>();
  const totalByKey = new Map<string, number>();
  const add = (map: Map<string, number>, key: string, us: number) => map.set(key, (map.get(key) ?? 0) + us);
  // Depth first from the root, the keys on the current stack counted, so a subtree's time goes to each
  // function once, at its outermost call. Iterative: stacks can be deeper than the JS call stack allows.
  const onStack = new Map<string, number>();
  const subtreeUs = new Map<number, number>();
  const parentIds = new Set(profile.nodes.flatMap((node) => node.children ?? []));
  const roots = profile.nodes.filter((node) => !parentIds.has(node.id)).map((node) => node.id);
  const work: { id: number; leaving: boolean }[] = roots.map((id) => ({ id, leaving: false }));
  while (work.length > 0) {
    const { id, leaving } = work.pop()!;
    const key = keyOf(id);
    const children = byId.get(id)!.children ?? [];
    if (!leaving) {
      onStack.set(key, (onStack.get(key) ?? 0) + 1);
      work.push({ id, leaving: true }, ...children.map((child) => ({ id: child, leaving: false })));
      continue;
    }
    const us = (selfUs.get(id) ?? 0) + children.reduce((sum, child) => sum + (subtreeUs.get(child) ?? 0), 0);
    subtreeUs.set(id, us);
    add(selfByKey, key, selfUs.get(id) ?? 0);
    const depth = onStack.get(key)! - 1;
    if (depth === 0) {
      onStack.delete(key);
      add(totalByKey, key, us);
    } else {
      onStack.set(key, depth);
    }
  }
  const allUs = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const idleUs = [...selfByKey].filter(([key]) => key === '(idle)').reduce((sum, [, us]) => sum + us, 0);
  const ranked = (map: Map<string, number>) =>
    [...map]
      .filter(([key]) => key !== '(root)')
      .sort((a, b) => b[1] - a[1])
      .map(([name, us]) => ({ name, ms: us / 1000, share: allUs > 0 ? us / allUs : 0 }));
  return { totalMs: allUs / 1000, busyMs: (allUs - idleUs) / 1000, self: ranked(selfByKey), total: ranked(totalByKey) };
}

const TICK_MS = 10; // USER_HZ is 100 on Linux

/** A process's CPU from /proc (Linux): its own, and that of its children it has waited for, in ms; null once gone. */
function procCpu(pid: number): { self: number; reaped: number; name: string } | null {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The name may hold spaces and parentheses: the fields start after the last ')'.
  const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime, stime, cutime, cstime are fields 14-17 of stat(5); here 0-based after the name: 11-14.
  const [utime, stime, cutime, cstime] = fields.slice(11, 15).map(Number);
  return { self: (utime + stime) * TICK_MS, reaped: (cutime + cstime) * TICK_MS, name };
}

function childPids(pid: number): number[] {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** The pids of the local database server's processes (MariaDB/MySQL or PostgreSQL), for their CPU. */
function databaseServerPids(): number[] {
  return fs
    .readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .filter((pid) => ['mariadbd', 'mysqld', 'postgres'].includes(procCpu(pid)?.name ?? ''));
}

/**
 * Where a daemon's CPU goes while it works: the daemon itself, its job launcher (a child node
 * process), the jobs (the launcher's reaped children, or the daemon's when it forks them itself),
 * and the local database server. Read from /proc every 50 ms, each process's last reading kept
 * (a process's CPU is lost for the reading after its exit: at most 50 ms of it).
 */
export class CpuMeter {
  private readonly last = new Map<number, { self: number; reaped: number; name: string }>();
  private readonly first = new Map<number, number>();
  private readonly timer: NodeJS.Timeout;
  private readonly database: number[];

  constructor(private readonly pid: number) {
    this.database = databaseServerPids();
    this.sample();
    this.timer = setInterval(() => this.sample(), 50);
  }

  private read(pid: number): void {
    const cpu = procCpu(pid);
    if (cpu === null) return;
    if (!this.first.has(pid)) this.first.set(pid, cpu.self);
    this.last.set(pid, cpu);
  }

  private sample(): void {
    this.read(this.pid);
    for (const child of childPids(this.pid)) this.read(child);
    for (const pid of this.database) this.read(pid);
  }

  /** Stops sampling: ms of CPU per component since the meter started. */
  stop(): { daemon: number; launcher: number; jobs: number; database: number } {
    clearInterval(this.timer);
    const used = (pid: number) => (this.last.get(pid)?.self ?? 0) - (this.first.get(pid) ?? 0);
    const launchers = [...this.last.keys()].filter((pid) => pid !== this.pid && !this.database.includes(pid));
    const daemonReaped = this.last.get(this.pid)?.reaped ?? 0;
    const launcherSelf = launchers.reduce((sum, pid) => sum + used(pid), 0);
    const launcherReaped = launchers.reduce((sum, pid) => sum + (this.last.get(pid)?.reaped ?? 0), 0);
    return {
      daemon: used(this.pid),
      launcher: launcherSelf,
      // Jobs forked by the daemon itself are in its reaped time, less the launcher it reaped too.
      jobs: launcherReaped + Math.max(0, daemonReaped - launcherSelf - launcherReaped),
      database: this.database.reduce((sum, pid) => sum + used(pid), 0),
    };
  }
}
