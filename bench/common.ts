// What the bench scripts share: their database (MySQL when MYSQL_HOST is set, else a SQLite file),
// built fresh by the real migrations, and dist/server.js started as users start it.
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { databaseEnv, loadConfig, type DatabaseConfig } from '../config';
import { createDatabase, recreateMysqlDatabase, type Database } from '../models/database';
import { migrate } from '../models/migrate';

export const ROOT = path.resolve(__dirname, '..', '..');

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));

/**
 * The bench's database: with MYSQL_HOST, the MySQL database BENCH_DATABASE (default `name`), which
 * the bench drops and recreates; otherwise a SQLite file in the temporary directory. `mysqlOnly`
 * benches stop here without MySQL.
 */
export function benchDatabase(name: string, options: { mysqlOnly?: boolean } = {}): DatabaseConfig {
  const database = process.env.BENCH_DATABASE ?? name;
  // Without MYSQL_HOST the embedded database (a MYSQL_DATABASE alone is a configuration error).
  const env = process.env.MYSQL_HOST ? { ...process.env, MYSQL_DATABASE: database } : process.env;
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
  if (config.dialect === 'mysql') {
    await recreateMysqlDatabase(config);
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
  const child = spawn(process.execPath, [path.join(ROOT, 'dist', 'server.js')], {
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
