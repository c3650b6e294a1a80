// The one place that reads process.env: parsed once, typed, failing fast (exit 78).
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { LOG_LEVELS, type LogLevel } from './log';

/** A database server: MySQL/MariaDB or PostgreSQL. */
export interface ServerDatabaseConfig {
  dialect: 'mysql' | 'postgres';
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

export type DatabaseConfig =
  | (ServerDatabaseConfig & { dialect: 'mysql' })
  | (ServerDatabaseConfig & { dialect: 'postgres' })
  | { dialect: 'sqlite'; storage: string };

export interface RunnerConfig {
  pollMs: number;
  concurrency: number;
  /**
   * JOB_RUNNER_CLAIM_AHEAD: jobs a runner may claim beyond its free slots while its jobs are short
   * (they wait for the next slot that frees); 0 = none. Default: the concurrency.
   */
  claimAhead?: number;
  cwd: string;
  id: string;
  heartbeatMs: number;
  leaseMs: number;
  outputMaxBytes: number;
  shutdownGraceMs: number;
  /** JOB_RUNNER_JOB_USER (a user name, or `uid:gid`): every job runs as this user; unset, as the runner's. */
  jobUser?: string;
  /** JOB_RUNNER_NUDGE_ADDRESS: the IP address the runner hears wake-up nudges on; null = off. */
  nudgeAddress: string | null;
  /**
   * JOB_RUNNER_STATE_DIR: where a runner outside systemd keeps the ledger of its jobs' process groups
   * (runner/leftovers.ts); null (`off`) = none.
   */
  stateDir: string | null;
  /** Test-only fault injection (JOB_RUNNER_TEST_CRASH): the runner SIGKILLs itself at this point. */
  testCrash?: TestCrashPoint;
}

/** Where JOB_RUNNER_TEST_CRASH makes the runner kill itself (the chaos tests). */
export const TEST_CRASH_POINTS = ['after-claim', 'before-finish'] as const;
export type TestCrashPoint = (typeof TEST_CRASH_POINTS)[number];

export interface HttpConfig {
  port: number;
  host: string;
  sessionSecret: string | undefined;
  cookieSecure: boolean;
  trustProxy: string | undefined;
  metricsToken: string | undefined;
  /** JOB_STREAMS_PER_USER: open GET /jobs/:id/stream per user in this API process. */
  streamsPerUser: number;
}

/** The systemd service-manager interface (sd_notify(3)); empty outside a Type=notify unit. */
export interface ServiceConfig {
  /** NOTIFY_SOCKET: where READY=1, WATCHDOG=1, STATUS= and STOPPING=1 go. */
  notifySocket: string | undefined;
  /** WatchdogSec= in ms (WATCHDOG_USEC), when the watchdog is meant for this process (WATCHDOG_PID). */
  watchdogMs: number | undefined;
}

export interface Config {
  database: DatabaseConfig;
  tasksFile: string;
  runner: RunnerConfig;
  http: HttpConfig;
  service: ServiceConfig;
  /** The runner's own environment: the source of PATH/LANG/HOME and `passEnv` for jobs. */
  runnerEnv: Readonly<Record<string, string | undefined>>;
  /** Limits between users (JOB_USER_MAX_RUNNING, JOB_USER_MAX_PENDING); 0: none. */
  quotas: { userMaxRunning: number; userMaxPending: number };
  /** Test only (JOB_TEST_CRON_SECONDS=1): schedules may have a leading seconds field. */
  testCronSeconds: boolean;
  /** LOG_LEVEL: lines below it are not logged. */
  logLevel: LogLevel;
}

/** A bad configuration value; entries print `message` alone and exit with EX_CONFIG. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

export const EX_CONFIG = 78;

/** A user a job may run as: a login name, or `uid:gid` (numbers); root (0) never. */
export const USER_SPEC = /^(?:[A-Za-z_][A-Za-z0-9._-]{0,31}|\d{1,10}:\d{1,10})$/;

/** Why `spec` cannot name the user a job runs as, or null when it can (resolving it is the runner's). */
export function userSpecProblem(spec: string): string | null {
  if (!USER_SPEC.test(spec)) return 'must be a user name or uid:gid';
  if (spec === 'root' || spec.split(':')[0] === '0' || spec.split(':')[1] === '0')
    return 'may not be root (uid or gid 0)';
  return null;
}

type Env = Readonly<Record<string, string | undefined>>;

function envString(env: Env, name: string): string | undefined {
  const raw = env[name];
  return raw === undefined || raw === '' ? undefined : raw;
}

const emptyToUndefined = (value: string | undefined) => (value === '' ? undefined : value);

function envInt(env: Env, name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = envString(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw.trim())) {
    throw new ConfigError(`${name}=${JSON.stringify(raw)} is not a whole number`);
  }
  const value = Number(raw.trim());
  if (value < min || value > max) {
    throw new ConfigError(`${name}=${raw} is out of range (${min}..${max})`);
  }
  return value;
}

/** One of `choices` (case aside). */
function envChoice<T extends string>(env: Env, name: string, choices: readonly T[], fallback: T): T {
  const raw = envString(env, name);
  if (raw === undefined) return fallback;
  const value = choices.find((c) => c === raw.trim().toLowerCase());
  if (value === undefined) throw new ConfigError(`${name}=${JSON.stringify(raw)} is not one of ${choices.join(', ')}`);
  return value;
}

function envBool(env: Env, name: string, fallback: boolean): boolean {
  const raw = envString(env, name);
  if (raw === undefined) return fallback;
  const lower = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(lower)) return true;
  if (['0', 'false', 'no', 'off'].includes(lower)) return false;
  throw new ConfigError(`${name}=${JSON.stringify(raw)} is not a boolean (true/false)`);
}

/** JOB_RUNNER_STATE_DIR: a directory (default: one of this user's under the system's temporary directory), or `off`. */
function envStateDir(env: Env): string | null {
  const raw = envString(env, 'JOB_RUNNER_STATE_DIR')?.trim();
  if (raw === undefined || raw === '') return path.join(os.tmpdir(), `container-jobs-${process.getuid?.() ?? 'user'}`);
  if (raw.toLowerCase() === 'off') return null;
  if (!path.isAbsolute(raw)) {
    throw new ConfigError(`JOB_RUNNER_STATE_DIR=${JSON.stringify(raw)} must be an absolute path (or "off")`);
  }
  return path.normalize(raw);
}

/** JOB_RUNNER_NUDGE_ADDRESS: an IP address of this host (default loopback), or `off`. */
function envNudgeAddress(env: Env): string | null {
  const raw = envString(env, 'JOB_RUNNER_NUDGE_ADDRESS')?.trim() ?? '127.0.0.1';
  if (raw.toLowerCase() === 'off') return null;
  if (net.isIP(raw) === 0 || raw === '0.0.0.0' || raw === '::') {
    throw new ConfigError(
      `JOB_RUNNER_NUDGE_ADDRESS=${JSON.stringify(raw)} is not an IP address of this host (or "off"); enqueuers send to it`,
    );
  }
  return raw;
}

/**
 * A secret: the variable when it is set, else the systemd credential of that name
 * (LoadCredential= puts it in $CREDENTIALS_DIRECTORY), without its trailing newline.
 */
function envSecret(env: Env, name: string, credential: string): string | undefined {
  if (env[name] !== undefined) return env[name];
  const dir = envString(env, 'CREDENTIALS_DIRECTORY');
  if (dir === undefined) return undefined;
  const file = path.join(dir, credential);
  try {
    return fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ConfigError(`${name}: cannot read the credential ${file}: ${(err as Error).message}`);
  }
}

function parseService(env: Env): ServiceConfig {
  const notifySocket = envString(env, 'NOTIFY_SOCKET');
  const watchdogUsec = envString(env, 'WATCHDOG_USEC');
  const watchdogPid = envString(env, 'WATCHDOG_PID');
  // sd_watchdog_enabled(3): the watchdog is for this process unless WATCHDOG_PID names another.
  const forUs = watchdogPid === undefined || watchdogPid.trim() === String(process.pid);
  if (watchdogUsec === undefined || !forUs) return { notifySocket, watchdogMs: undefined };
  if (!/^\d+$/.test(watchdogUsec.trim()) || Number(watchdogUsec) === 0) {
    throw new ConfigError(`WATCHDOG_USEC=${JSON.stringify(watchdogUsec)} is not a positive number of microseconds`);
  }
  return { notifySocket, watchdogMs: Math.max(1, Math.floor(Number(watchdogUsec) / 1000)) };
}

function envTestCrash(env: Env): TestCrashPoint | undefined {
  const raw = envString(env, 'JOB_RUNNER_TEST_CRASH');
  if (raw === undefined) return undefined;
  const point = TEST_CRASH_POINTS.find((p) => p === raw.trim());
  if (!point) {
    throw new ConfigError(
      `JOB_RUNNER_TEST_CRASH=${JSON.stringify(raw)} is not one of ${TEST_CRASH_POINTS.join(', ')} (test-only; leave it unset)`,
    );
  }
  return point;
}

/** The variables of each database server, as the container-creator names them. */
const SERVERS = {
  mysql: { prefix: 'MYSQL', name: 'MySQL', port: 3306, credential: 'mysql-password' },
  postgres: { prefix: 'POSTGRES', name: 'PostgreSQL', port: 5432, credential: 'postgres-password' },
} as const;

/** The server's variables, each named in full (test/systemd-units.test.ts reads them off this file). */
function readServer(env: Env, dialect: ServerDatabaseConfig['dialect']) {
  return dialect === 'mysql'
    ? {
        host: envString(env, 'MYSQL_HOST'),
        user: envString(env, 'MYSQL_USER'),
        database: envString(env, 'MYSQL_DATABASE'),
        port: () => envInt(env, 'MYSQL_PORT', SERVERS.mysql.port, 1, 65535),
        password: () => envSecret(env, 'MYSQL_PASSWORD', SERVERS.mysql.credential),
      }
    : {
        host: envString(env, 'POSTGRES_HOST'),
        user: envString(env, 'POSTGRES_USER'),
        database: envString(env, 'POSTGRES_DATABASE'),
        port: () => envInt(env, 'POSTGRES_PORT', SERVERS.postgres.port, 1, 65535),
        password: () => envSecret(env, 'POSTGRES_PASSWORD', SERVERS.postgres.credential),
      };
}

function parseServer(env: Env, dialect: ServerDatabaseConfig['dialect']): ServerDatabaseConfig {
  const { prefix } = SERVERS[dialect];
  const read = readServer(env, dialect);
  if (read.user === undefined) throw new ConfigError(`${prefix}_USER is required when ${prefix}_HOST is set`);
  if (read.database === undefined) throw new ConfigError(`${prefix}_DATABASE is required when ${prefix}_HOST is set`);
  return {
    dialect,
    host: read.host!,
    port: read.port(),
    user: read.user,
    password: read.password() ?? '',
    database: read.database,
  };
}

function parseDatabase(env: Env): DatabaseConfig {
  const mysql = readServer(env, 'mysql').host !== undefined;
  const postgres = readServer(env, 'postgres').host !== undefined;
  if (mysql && postgres) {
    throw new ConfigError('MYSQL_HOST and POSTGRES_HOST are both set; set the one of the database to use');
  }
  if (mysql) return parseServer(env, 'mysql') as DatabaseConfig;
  if (postgres) return parseServer(env, 'postgres') as DatabaseConfig;
  for (const dialect of ['mysql', 'postgres'] as const) {
    const { prefix, name } = SERVERS[dialect];
    const read = readServer(env, dialect);
    for (const [variable, value] of [
      [`${prefix}_USER`, read.user],
      [`${prefix}_DATABASE`, read.database],
    ]) {
      if (value !== undefined) {
        throw new ConfigError(`${variable} is set but ${prefix}_HOST is not; set ${prefix}_HOST to use ${name}`);
      }
    }
  }
  return { dialect: 'sqlite', storage: path.resolve(envString(env, 'JOBS_SQLITE_PATH') ?? './data/jobs.sqlite') };
}

export function loadConfig(env: Env = process.env): Config {
  const runner: RunnerConfig = {
    pollMs: envInt(env, 'JOB_RUNNER_POLL_MS', 2000, 10, 3_600_000),
    concurrency: envInt(env, 'JOB_RUNNER_CONCURRENCY', 2, 1, 1000),
    cwd: path.resolve(envString(env, 'JOB_RUNNER_CWD') ?? process.cwd()),
    id: envString(env, 'JOB_RUNNER_ID') ?? `${os.hostname()}:${process.pid}`,
    heartbeatMs: envInt(env, 'JOB_RUNNER_HEARTBEAT_MS', 5000, 50, 3_600_000),
    leaseMs: envInt(env, 'JOB_RUNNER_LEASE_MS', 60000, 100, 86_400_000),
    outputMaxBytes: envInt(env, 'JOB_OUTPUT_MAX_BYTES', 16 * 1024 * 1024, 0, 2 ** 40),
    shutdownGraceMs: envInt(env, 'JOB_SHUTDOWN_GRACE_MS', 30000, 0, 86_400_000),
    nudgeAddress: envNudgeAddress(env),
    stateDir: envStateDir(env),
  };
  runner.claimAhead = envInt(env, 'JOB_RUNNER_CLAIM_AHEAD', runner.concurrency, 0, 1000);
  const jobUser = envString(env, 'JOB_RUNNER_JOB_USER')?.trim();
  if (jobUser !== undefined) {
    const problem = userSpecProblem(jobUser);
    if (problem) throw new ConfigError(`JOB_RUNNER_JOB_USER=${JSON.stringify(jobUser)} ${problem}`);
    runner.jobUser = jobUser;
  }
  const testCrash = envTestCrash(env);
  if (testCrash) runner.testCrash = testCrash;
  if (runner.id.length > 255) throw new ConfigError('JOB_RUNNER_ID is longer than 255 characters');
  if (runner.leaseMs <= runner.heartbeatMs * 2) {
    throw new ConfigError(
      `JOB_RUNNER_LEASE_MS=${runner.leaseMs} must be more than twice JOB_RUNNER_HEARTBEAT_MS=${runner.heartbeatMs}`,
    );
  }
  return {
    database: parseDatabase(env),
    tasksFile: path.resolve(envString(env, 'JOB_TASKS_FILE') ?? './tasks.json'),
    runner,
    http: {
      port: envInt(env, 'PORT', 3000, 0, 65535),
      host: envString(env, 'HOST') ?? '127.0.0.1',
      sessionSecret: emptyToUndefined(envSecret(env, 'SESSION_SECRET', 'session-secret')),
      cookieSecure: envBool(env, 'COOKIE_SECURE', false),
      trustProxy: envString(env, 'TRUST_PROXY'),
      metricsToken: emptyToUndefined(envSecret(env, 'METRICS_TOKEN', 'metrics-token')),
      streamsPerUser: envInt(env, 'JOB_STREAMS_PER_USER', 8, 1, 100_000),
    },
    service: parseService(env),
    runnerEnv: { ...env },
    testCronSeconds: envBool(env, 'JOB_TEST_CRON_SECONDS', false),
    quotas: {
      userMaxRunning: envInt(env, 'JOB_USER_MAX_RUNNING', 0, 0, 1_000_000),
      userMaxPending: envInt(env, 'JOB_USER_MAX_PENDING', 1000, 0, 100_000_000),
    },
    logLevel: envChoice(env, 'LOG_LEVEL', LOG_LEVELS, 'info'),
  };
}

/**
 * The variables that give another process this database (what loadConfig reads back), and only it:
 * the other databases' variables are blanked, so inherited MYSQL_* or POSTGRES_* do not count (an
 * empty variable is unset).
 */
export function databaseEnv(config: DatabaseConfig): Record<string, string> {
  const blank: Record<string, string> = {};
  for (const { prefix } of Object.values(SERVERS)) {
    for (const part of ['HOST', 'PORT', 'USER', 'PASSWORD', 'DATABASE']) blank[`${prefix}_${part}`] = '';
  }
  if (config.dialect === 'sqlite') return { ...blank, JOBS_SQLITE_PATH: config.storage };
  const { prefix } = SERVERS[config.dialect];
  return {
    ...blank,
    [`${prefix}_HOST`]: config.host,
    [`${prefix}_PORT`]: String(config.port),
    [`${prefix}_USER`]: config.user,
    [`${prefix}_PASSWORD`]: config.password,
    [`${prefix}_DATABASE`]: config.database,
  };
}

/** One line for the first log line of each process: which database it uses. */
export function describeDatabase(db: DatabaseConfig): string {
  if (db.dialect === 'sqlite') {
    return `database: embedded SQLite at ${db.storage} (set MYSQL_HOST or POSTGRES_HOST to use a database server)`;
  }
  return `database: ${SERVERS[db.dialect].name} ${db.user}@${db.host}:${db.port}/${db.database}`;
}
