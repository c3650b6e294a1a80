// The one place that reads process.env: parsed once, typed, failing fast (exit 78).
import os from 'node:os';
import path from 'node:path';

export type DatabaseConfig =
  | {
      dialect: 'mysql';
      host: string;
      port: number;
      user: string;
      password: string;
      database: string;
    }
  | { dialect: 'sqlite'; storage: string };

export interface RunnerConfig {
  pollMs: number;
  concurrency: number;
  cwd: string;
  id: string;
  heartbeatMs: number;
  leaseMs: number;
  outputMaxBytes: number;
  shutdownGraceMs: number;
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
}

export interface Config {
  database: DatabaseConfig;
  tasksFile: string;
  runner: RunnerConfig;
  http: HttpConfig;
  /** The runner's own environment: the source of PATH/LANG/HOME and `passEnv` for jobs. */
  runnerEnv: Readonly<Record<string, string | undefined>>;
}

/** A bad configuration value; entries print `message` alone and exit with EX_CONFIG. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

export const EX_CONFIG = 78;

type Env = Readonly<Record<string, string | undefined>>;

function envString(env: Env, name: string): string | undefined {
  const raw = env[name];
  return raw === undefined || raw === '' ? undefined : raw;
}

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

function envBool(env: Env, name: string, fallback: boolean): boolean {
  const raw = envString(env, name);
  if (raw === undefined) return fallback;
  const lower = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(lower)) return true;
  if (['0', 'false', 'no', 'off'].includes(lower)) return false;
  throw new ConfigError(`${name}=${JSON.stringify(raw)} is not a boolean (true/false)`);
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

function parseDatabase(env: Env): DatabaseConfig {
  const host = envString(env, 'MYSQL_HOST');
  if (host === undefined) {
    for (const name of ['MYSQL_USER', 'MYSQL_DATABASE']) {
      if (envString(env, name) !== undefined) {
        throw new ConfigError(`${name} is set but MYSQL_HOST is not; set MYSQL_HOST to use MySQL`);
      }
    }
    return { dialect: 'sqlite', storage: path.resolve(envString(env, 'JOBS_SQLITE_PATH') ?? './data/jobs.sqlite') };
  }
  const user = envString(env, 'MYSQL_USER');
  const database = envString(env, 'MYSQL_DATABASE');
  if (user === undefined) throw new ConfigError('MYSQL_USER is required when MYSQL_HOST is set');
  if (database === undefined) throw new ConfigError('MYSQL_DATABASE is required when MYSQL_HOST is set');
  return {
    dialect: 'mysql',
    host,
    port: envInt(env, 'MYSQL_PORT', 3306, 1, 65535),
    user,
    password: env.MYSQL_PASSWORD ?? '',
    database,
  };
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
  };
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
      sessionSecret: envString(env, 'SESSION_SECRET'),
      cookieSecure: envBool(env, 'COOKIE_SECURE', false),
      trustProxy: envString(env, 'TRUST_PROXY'),
      metricsToken: envString(env, 'METRICS_TOKEN'),
    },
    runnerEnv: { ...env },
  };
}

/** One line for the first log line of each process: which database it uses. */
export function describeDatabase(db: DatabaseConfig): string {
  return db.dialect === 'mysql'
    ? `database: MySQL ${db.user}@${db.host}:${db.port}/${db.database}`
    : `database: embedded SQLite at ${db.storage} (set MYSQL_HOST to use MySQL)`;
}
