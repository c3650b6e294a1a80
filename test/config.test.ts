// Configuration (README, "Configuration"): the environment is parsed once into a typed object; a bad value is
// one line and exit 78.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, EX_CONFIG, databaseEnv, describeDatabase, loadConfig } from '../config';

const ROOT = path.resolve(__dirname, '..');

/** True when `message` names `variable` as a whole word (PORT must not be found inside MYSQL_PORT). */
function namesVariable(message: string, variable: string): boolean {
  return new RegExp(`(^|[^A-Z0-9_])${variable}([^A-Z0-9_]|$)`).test(message);
}

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`loadConfig(${JSON.stringify(env)}) did not throw`);
}

describe('loadConfig defaults (the README configuration table)', () => {
  const config = loadConfig({});

  it('uses the embedded SQLite database at ./data/jobs.sqlite when MYSQL_HOST is unset', () => {
    expect(config.database).toEqual({ dialect: 'sqlite', storage: path.resolve('./data/jobs.sqlite') });
  });

  it('reads task templates from ./tasks.json', () => {
    expect(config.tasksFile).toBe(path.resolve('./tasks.json'));
  });

  it('has the runner defaults', () => {
    expect(config.runner).toEqual({
      pollMs: 2000,
      concurrency: 2,
      claimAhead: 2,
      cwd: process.cwd(),
      id: `${os.hostname()}:${process.pid}`,
      heartbeatMs: 5000,
      leaseMs: 60000,
      outputMaxBytes: 16777216,
      shutdownGraceMs: 30000,
      nudgeAddress: '127.0.0.1',
      stateDir: path.join(os.tmpdir(), `container-jobs-${process.getuid!()}`),
    });
  });

  it('JOB_RUNNER_STATE_DIR takes an absolute directory or off; anything else is a config error', () => {
    expect(loadConfig({ JOB_RUNNER_STATE_DIR: '/var/lib/cj/' }).runner.stateDir).toBe('/var/lib/cj/');
    expect(loadConfig({ JOB_RUNNER_STATE_DIR: 'off' }).runner.stateDir).toBeNull();
    expect(() => loadConfig({ JOB_RUNNER_STATE_DIR: 'state' })).toThrow(
      new ConfigError('JOB_RUNNER_STATE_DIR="state" must be an absolute path (or "off")'),
    );
  });

  it('hears nudges on loopback by default; JOB_RUNNER_NUDGE_ADDRESS takes an address of this host, or off', () => {
    expect(loadConfig({ JOB_RUNNER_NUDGE_ADDRESS: 'off' }).runner.nudgeAddress).toBeNull();
    expect(loadConfig({ JOB_RUNNER_NUDGE_ADDRESS: 'OFF' }).runner.nudgeAddress).toBeNull();
    expect(loadConfig({ JOB_RUNNER_NUDGE_ADDRESS: ' 10.0.0.5 ' }).runner.nudgeAddress).toBe('10.0.0.5');
    expect(loadConfig({ JOB_RUNNER_NUDGE_ADDRESS: '::1' }).runner.nudgeAddress).toBe('::1');
  });

  it('has no running cap and a pending cap of 1000 per user', () => {
    expect(config.quotas).toEqual({ userMaxRunning: 0, userMaxPending: 1000 });
    expect(loadConfig({ JOB_USER_MAX_RUNNING: '3', JOB_USER_MAX_PENDING: '0' }).quotas).toEqual({
      userMaxRunning: 3,
      userMaxPending: 0,
    });
  });

  it('has the HTTP defaults', () => {
    expect(config.http).toEqual({
      port: 3000,
      host: '127.0.0.1',
      sessionSecret: undefined,
      cookieSecure: false,
      trustProxy: undefined,
      metricsToken: undefined,
      streamsPerUser: 8,
    });
  });

  it('treats an empty variable as unset', () => {
    const blank = loadConfig({ JOB_RUNNER_POLL_MS: '', MYSQL_HOST: '', PORT: '', COOKIE_SECURE: '' });
    expect(blank.runner.pollMs).toBe(2000);
    expect(blank.database.dialect).toBe('sqlite');
    expect(blank.http.port).toBe(3000);
    expect(blank.http.cookieSecure).toBe(false);
  });

  it('keeps the runner environment for PATH/LANG/HOME and passEnv', () => {
    const env = { PATH: '/usr/bin', PROXMOX_API_TOKEN: 'tok' };
    expect(loadConfig(env).runnerEnv).toEqual(env);
  });
});

describe('loadConfig with values set', () => {
  it('switches to MySQL when MYSQL_HOST is set, with port 3306 by default', () => {
    const config = loadConfig({
      MYSQL_HOST: 'db.example',
      MYSQL_USER: 'jobs',
      MYSQL_PASSWORD: 'pw',
      MYSQL_DATABASE: 'cj',
    });
    expect(config.database).toEqual({
      dialect: 'mysql',
      host: 'db.example',
      port: 3306,
      user: 'jobs',
      password: 'pw',
      database: 'cj',
    });
  });

  it('reads MYSQL_PORT and an absent MYSQL_PASSWORD is empty', () => {
    const config = loadConfig({ MYSQL_HOST: 'h', MYSQL_PORT: '3307', MYSQL_USER: 'u', MYSQL_DATABASE: 'd' });
    expect(config.database).toMatchObject({ dialect: 'mysql', port: 3307, password: '' });
  });

  it('switches to PostgreSQL when POSTGRES_HOST is set, with port 5432 by default', () => {
    const config = loadConfig({
      POSTGRES_HOST: 'pg.example',
      POSTGRES_USER: 'jobs',
      POSTGRES_PASSWORD: 'pw',
      POSTGRES_DATABASE: 'cj',
    });
    expect(config.database).toEqual({
      dialect: 'postgres',
      host: 'pg.example',
      port: 5432,
      user: 'jobs',
      password: 'pw',
      database: 'cj',
    });
    expect(describeDatabase(config.database)).toBe('database: PostgreSQL jobs@pg.example:5432/cj');
    const other = loadConfig({ POSTGRES_HOST: 'h', POSTGRES_PORT: '5433', POSTGRES_USER: 'u', POSTGRES_DATABASE: 'd' });
    expect(other.database).toMatchObject({ dialect: 'postgres', port: 5433, password: '' });
  });

  it('MYSQL_HOST and POSTGRES_HOST together are a configuration error; so is a POSTGRES_* part without its host', () => {
    const both = {
      MYSQL_HOST: 'db',
      MYSQL_USER: 'u',
      MYSQL_DATABASE: 'd',
      POSTGRES_HOST: 'pg',
      POSTGRES_USER: 'u',
      POSTGRES_DATABASE: 'd',
    };
    expect(() => loadConfig(both)).toThrow(ConfigError);
    expect(() => loadConfig(both)).toThrow(/MYSQL_HOST and POSTGRES_HOST are both set/);
    expect(() => loadConfig({ POSTGRES_HOST: 'pg', POSTGRES_DATABASE: 'd' })).toThrow(/POSTGRES_USER is required/);
    expect(() => loadConfig({ POSTGRES_HOST: 'pg', POSTGRES_USER: 'u' })).toThrow(/POSTGRES_DATABASE is required/);
    expect(() => loadConfig({ POSTGRES_USER: 'u' })).toThrow(/POSTGRES_USER is set but POSTGRES_HOST is not/);
    expect(() =>
      loadConfig({ POSTGRES_HOST: 'pg', POSTGRES_USER: 'u', POSTGRES_DATABASE: 'd', POSTGRES_PORT: 'x' }),
    ).toThrow(/POSTGRES_PORT/);
  });

  it('databaseEnv gives a child only the chosen database: the other host is blanked, and it reads back the same', () => {
    const postgres = loadConfig({
      POSTGRES_HOST: 'pg',
      POSTGRES_USER: 'u',
      POSTGRES_PASSWORD: 'p',
      POSTGRES_DATABASE: 'd',
    });
    const env = databaseEnv(postgres.database);
    expect(env).toMatchObject({ MYSQL_HOST: '', POSTGRES_HOST: 'pg', POSTGRES_PORT: '5432', POSTGRES_PASSWORD: 'p' });
    // What CI's environment has (both databases) under what the child is given: the chosen one wins.
    const inherited = { MYSQL_HOST: 'db', MYSQL_USER: 'u', MYSQL_DATABASE: 'd' };
    expect(loadConfig({ ...inherited, ...env }).database).toEqual(postgres.database);
    const mysql = loadConfig({ ...inherited, POSTGRES_HOST: '' }).database;
    expect(loadConfig({ POSTGRES_HOST: 'pg', POSTGRES_USER: 'u', ...databaseEnv(mysql) }).database).toEqual(mysql);
    const sqlite = loadConfig({}).database;
    expect(loadConfig({ ...inherited, POSTGRES_HOST: 'pg', ...databaseEnv(sqlite) }).database).toEqual(sqlite);
  });

  it('reads every other variable', () => {
    const config = loadConfig({
      JOBS_SQLITE_PATH: '/var/lib/cj/jobs.sqlite',
      JOB_TASKS_FILE: '/etc/cj/tasks.json',
      JOB_RUNNER_POLL_MS: '500',
      JOB_RUNNER_CONCURRENCY: '8',
      JOB_RUNNER_CLAIM_AHEAD: '3',
      JOB_RUNNER_CWD: '/srv',
      JOB_RUNNER_ID: 'runner-a',
      JOB_RUNNER_HEARTBEAT_MS: '1000',
      JOB_RUNNER_LEASE_MS: '2001',
      JOB_OUTPUT_MAX_BYTES: '0',
      JOB_SHUTDOWN_GRACE_MS: '0',
      JOB_RUNNER_NUDGE_ADDRESS: '192.168.1.20',
      JOB_RUNNER_STATE_DIR: '/run/container-jobs',
      PORT: '8080',
      HOST: '0.0.0.0',
      SESSION_SECRET: 'secret',
      COOKIE_SECURE: 'true',
      TRUST_PROXY: 'loopback',
      METRICS_TOKEN: 'metrics',
      JOB_STREAMS_PER_USER: '3',
    });
    expect(config.database).toEqual({ dialect: 'sqlite', storage: '/var/lib/cj/jobs.sqlite' });
    expect(config.tasksFile).toBe('/etc/cj/tasks.json');
    expect(config.runner).toEqual({
      pollMs: 500,
      concurrency: 8,
      claimAhead: 3,
      cwd: '/srv',
      id: 'runner-a',
      heartbeatMs: 1000,
      leaseMs: 2001,
      outputMaxBytes: 0,
      shutdownGraceMs: 0,
      nudgeAddress: '192.168.1.20',
      stateDir: '/run/container-jobs',
    });
    expect(config.http).toEqual({
      port: 8080,
      host: '0.0.0.0',
      sessionSecret: 'secret',
      cookieSecure: true,
      trustProxy: 'loopback',
      metricsToken: 'metrics',
      streamsPerUser: 3,
    });
  });

  it('claims ahead as many jobs as the concurrency unless JOB_RUNNER_CLAIM_AHEAD says otherwise', () => {
    expect(loadConfig({}).runner.claimAhead).toBe(2);
    expect(loadConfig({ JOB_RUNNER_CONCURRENCY: '6' }).runner.claimAhead).toBe(6);
    expect(loadConfig({ JOB_RUNNER_CONCURRENCY: '6', JOB_RUNNER_CLAIM_AHEAD: '0' }).runner.claimAhead).toBe(0);
  });

  it.each([
    ['true', true],
    ['1', true],
    ['yes', true],
    ['false', false],
    ['0', false],
    ['no', false],
  ])('COOKIE_SECURE=%s is %s', (raw, expected) => {
    expect(loadConfig({ COOKIE_SECURE: raw }).http.cookieSecure).toBe(expected);
  });
});

describe('LOG_LEVEL', () => {
  it('is info by default, and any of error, warn, notice, info, debug (case aside)', () => {
    expect(loadConfig({}).logLevel).toBe('info');
    for (const level of ['error', 'warn', 'notice', 'info', 'debug']) {
      expect(loadConfig({ LOG_LEVEL: level }).logLevel).toBe(level);
    }
    expect(loadConfig({ LOG_LEVEL: ' Debug ' }).logLevel).toBe('debug');
  });

  it('refuses anything else, naming it', () => {
    for (const raw of ['verbose', 'warning', '3']) {
      expect(namesVariable(configError({ LOG_LEVEL: raw }).message, 'LOG_LEVEL')).toBe(true);
    }
  });
});

describe('loadConfig refuses invalid values with a ConfigError naming the variable', () => {
  it.each<[string, Record<string, string>]>([
    ['JOB_RUNNER_CLAIM_AHEAD', { JOB_RUNNER_CLAIM_AHEAD: '-1' }],
    ['JOB_RUNNER_CLAIM_AHEAD', { JOB_RUNNER_CLAIM_AHEAD: 'many' }],
    ['JOB_RUNNER_POLL_MS', { JOB_RUNNER_POLL_MS: 'abc' }],
    ['JOB_RUNNER_POLL_MS', { JOB_RUNNER_POLL_MS: '1.5' }],
    ['JOB_RUNNER_POLL_MS', { JOB_RUNNER_POLL_MS: '2s' }],
    ['JOB_RUNNER_POLL_MS', { JOB_RUNNER_POLL_MS: '-100' }],
    ['JOB_RUNNER_CONCURRENCY', { JOB_RUNNER_CONCURRENCY: '0' }],
    ['JOB_RUNNER_CONCURRENCY', { JOB_RUNNER_CONCURRENCY: '-1' }],
    ['JOB_RUNNER_CONCURRENCY', { JOB_RUNNER_CONCURRENCY: 'abc' }],
    ['JOB_RUNNER_HEARTBEAT_MS', { JOB_RUNNER_HEARTBEAT_MS: 'often' }],
    ['JOB_RUNNER_LEASE_MS', { JOB_RUNNER_LEASE_MS: '1e5' }],
    ['JOB_OUTPUT_MAX_BYTES', { JOB_OUTPUT_MAX_BYTES: '16M' }],
    ['JOB_SHUTDOWN_GRACE_MS', { JOB_SHUTDOWN_GRACE_MS: '-1' }],
    ['JOB_USER_MAX_RUNNING', { JOB_USER_MAX_RUNNING: '-1' }],
    ['JOB_USER_MAX_RUNNING', { JOB_USER_MAX_RUNNING: 'two' }],
    ['JOB_USER_MAX_PENDING', { JOB_USER_MAX_PENDING: '1.5' }],
    ['JOB_RUNNER_NUDGE_ADDRESS', { JOB_RUNNER_NUDGE_ADDRESS: 'localhost' }],
    ['JOB_RUNNER_NUDGE_ADDRESS', { JOB_RUNNER_NUDGE_ADDRESS: '0.0.0.0' }],
    ['JOB_RUNNER_NUDGE_ADDRESS', { JOB_RUNNER_NUDGE_ADDRESS: '10.0.0.5:4000' }],
    ['JOB_RUNNER_STATE_DIR', { JOB_RUNNER_STATE_DIR: 'relative/dir' }],
    ['COOKIE_SECURE', { COOKIE_SECURE: 'maybe' }],
    ['COOKIE_SECURE', { COOKIE_SECURE: 'ture' }],
    ['MYSQL_USER', { MYSQL_HOST: 'db.example', MYSQL_DATABASE: 'cj' }],
    ['MYSQL_DATABASE', { MYSQL_HOST: 'db.example', MYSQL_USER: 'jobs' }],
    ['MYSQL_HOST', { MYSQL_USER: 'jobs' }],
    ['MYSQL_PORT', { MYSQL_HOST: 'h', MYSQL_USER: 'u', MYSQL_DATABASE: 'd', MYSQL_PORT: '0' }],
    ['MYSQL_PORT', { MYSQL_HOST: 'h', MYSQL_USER: 'u', MYSQL_DATABASE: 'd', MYSQL_PORT: '65536' }],
    ['MYSQL_PORT', { MYSQL_HOST: 'h', MYSQL_USER: 'u', MYSQL_DATABASE: 'd', MYSQL_PORT: 'mysql' }],
    ['PORT', { PORT: '65536' }],
    ['PORT', { PORT: '99999' }],
    ['PORT', { PORT: 'http' }],
    ['JOB_STREAMS_PER_USER', { JOB_STREAMS_PER_USER: '0' }],
    ['JOB_STREAMS_PER_USER', { JOB_STREAMS_PER_USER: 'many' }],
  ])('%s in %j', (variable, env) => {
    const err = configError(env);
    expect(namesVariable(err.message, variable)).toBe(true);
  });

  it('requires the lease to be more than twice the heartbeat', () => {
    const equal = configError({ JOB_RUNNER_HEARTBEAT_MS: '5000', JOB_RUNNER_LEASE_MS: '10000' });
    expect(namesVariable(equal.message, 'JOB_RUNNER_LEASE_MS')).toBe(true);
    const defaultHeartbeat = configError({ JOB_RUNNER_LEASE_MS: '7000' });
    expect(namesVariable(defaultHeartbeat.message, 'JOB_RUNNER_LEASE_MS')).toBe(true);
    const longHeartbeat = configError({ JOB_RUNNER_HEARTBEAT_MS: '40000' });
    expect(namesVariable(longHeartbeat.message, 'JOB_RUNNER_HEARTBEAT_MS')).toBe(true);
    expect(loadConfig({ JOB_RUNNER_HEARTBEAT_MS: '5000', JOB_RUNNER_LEASE_MS: '10001' }).runner.leaseMs).toBe(10001);
  });

  it('refuses a JOB_RUNNER_TEST_CRASH other than after-claim or before-finish', () => {
    for (const raw of ['yes', 'after_claim', 'before-spawn']) {
      expect(namesVariable(configError({ JOB_RUNNER_TEST_CRASH: raw }).message, 'JOB_RUNNER_TEST_CRASH')).toBe(true);
    }
    expect(loadConfig({ JOB_RUNNER_TEST_CRASH: 'after-claim' }).runner.testCrash).toBe('after-claim');
    expect(loadConfig({ JOB_RUNNER_TEST_CRASH: 'before-finish' }).runner.testCrash).toBe('before-finish');
    expect(loadConfig({}).runner.testCrash).toBeUndefined();
  });

  it('refuses a runner id longer than the column', () => {
    const err = configError({ JOB_RUNNER_ID: 'r'.repeat(256) });
    expect(namesVariable(err.message, 'JOB_RUNNER_ID')).toBe(true);
  });

  it('puts the message on one line', () => {
    expect(configError({ JOB_RUNNER_CONCURRENCY: 'abc' }).message).not.toMatch(/\n/);
  });
});

describe('systemd: credentials (LoadCredential=) and the notify/watchdog variables', () => {
  const mysql = { MYSQL_HOST: 'db', MYSQL_USER: 'jobs', MYSQL_DATABASE: 'cj' };
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cj-creds-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reads mysql-password, session-secret and metrics-token from $CREDENTIALS_DIRECTORY, without the newline', () => {
    fs.writeFileSync(path.join(dir, 'mysql-password'), 's3cret pass\n');
    fs.writeFileSync(path.join(dir, 'session-secret'), 'x'.repeat(40));
    fs.writeFileSync(path.join(dir, 'metrics-token'), 'scrape\r\n');
    const config = loadConfig({ ...mysql, CREDENTIALS_DIRECTORY: dir });
    expect(config.database).toMatchObject({ password: 's3cret pass' });
    expect(config.http.sessionSecret).toBe('x'.repeat(40));
    expect(config.http.metricsToken).toBe('scrape');
  });

  it('a variable set in the environment wins over the credential; a missing credential is simply unset', () => {
    fs.writeFileSync(path.join(dir, 'mysql-password'), 'from-file');
    expect(loadConfig({ ...mysql, MYSQL_PASSWORD: 'from-env', CREDENTIALS_DIRECTORY: dir }).database).toMatchObject({
      password: 'from-env',
    });
    const none = loadConfig({ ...mysql, CREDENTIALS_DIRECTORY: dir });
    expect(none.http.metricsToken).toBeUndefined();
    expect(none.http.sessionSecret).toBeUndefined();
  });

  it('an unreadable credential is a configuration error naming the variable', () => {
    fs.mkdirSync(path.join(dir, 'mysql-password')); // a directory: EISDIR
    const err = configError({ ...mysql, CREDENTIALS_DIRECTORY: dir });
    expect(namesVariable(err.message, 'MYSQL_PASSWORD')).toBe(true);
  });

  it('NOTIFY_SOCKET and WATCHDOG_USEC/WATCHDOG_PID as sd_watchdog_enabled(3) reads them', () => {
    expect(loadConfig({}).service).toEqual({ notifySocket: undefined, watchdogMs: undefined });
    expect(loadConfig({ NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '30000000' }).service).toEqual({
      notifySocket: '/run/systemd/notify',
      watchdogMs: 30000,
    });
    expect(loadConfig({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: String(process.pid) }).service.watchdogMs).toBe(30000);
    // The watchdog of another process (our parent's unit, say) is not ours to feed.
    expect(loadConfig({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '1' }).service.watchdogMs).toBeUndefined();
    for (const bad of ['0', 'soon', '-5']) {
      expect(namesVariable(configError({ WATCHDOG_USEC: bad }).message, 'WATCHDOG_USEC')).toBe(true);
    }
  });
});

describe('entry points stop on a bad value with one line and exit 78 (EX_CONFIG)', () => {
  let tmp: string;

  beforeAll(() => {
    expect(EX_CONFIG).toBe(78);
    for (const entry of ['job-runner.js', 'cli.js']) {
      if (!fs.existsSync(path.join(ROOT, 'dist', entry))) {
        throw new Error(`dist/${entry} is missing: run "npm run build" first (npm test does it as pretest)`);
      }
    }
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cj-config-'));
  });

  afterAll(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** Only what a systemd unit would give the process, plus the variables under test. */
  function run(entry: string, args: string[], env: Record<string, string>) {
    const base: Record<string, string> = {};
    for (const name of ['PATH', 'HOME', 'LANG']) {
      const value = process.env[name];
      if (value !== undefined) base[name] = value;
    }
    return spawnSync(process.execPath, [path.join('dist', entry), ...args], {
      cwd: ROOT,
      env: { ...base, JOBS_SQLITE_PATH: path.join(tmp, 'jobs.sqlite'), JOB_TASKS_FILE: 'tasks.json', ...env },
      encoding: 'utf8',
      timeout: 60000,
    });
  }

  function expectConfigExit(result: ReturnType<typeof run>, variable: string): void {
    expect(result.error).toBeUndefined();
    expect(result.signal).toBeNull();
    expect(result.status).toBe(78);
    const lines = result.stderr.split('\n').filter((l) => l.trim() !== '');
    expect(lines).toHaveLength(1);
    expect(namesVariable(lines[0], variable)).toBe(true);
  }

  it.each<[string, Record<string, string>]>([
    ['JOB_RUNNER_CONCURRENCY', { JOB_RUNNER_CONCURRENCY: 'abc' }],
    ['JOB_RUNNER_POLL_MS', { JOB_RUNNER_POLL_MS: '1.5' }],
    ['JOB_RUNNER_LEASE_MS', { JOB_RUNNER_HEARTBEAT_MS: '5000', JOB_RUNNER_LEASE_MS: '10000' }],
    ['COOKIE_SECURE', { COOKIE_SECURE: 'maybe' }],
    ['MYSQL_USER', { MYSQL_HOST: '127.0.0.1', MYSQL_DATABASE: 'cj' }],
    ['LOG_LEVEL', { LOG_LEVEL: 'verbose' }],
  ])('job-runner with a bad %s', (variable, env) => {
    const result = run('job-runner.js', [], env);
    expectConfigExit(result, variable);
    expect(result.stdout).toBe('');
    // It stopped before touching the database.
    expect(fs.existsSync(path.join(tmp, 'jobs.sqlite'))).toBe(false);
  });

  it('job-runner with an unreadable task file', () => {
    const result = run('job-runner.js', [], { JOB_TASKS_FILE: path.join(tmp, 'missing.json') });
    expect(result.status).toBe(78);
    const lines = result.stderr.split('\n').filter((l) => l.trim() !== '');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('missing.json');
  });

  it('container-jobs with a bad JOB_RUNNER_CONCURRENCY', () => {
    const result = run('cli.js', ['migrate'], { JOB_RUNNER_CONCURRENCY: '0' });
    expectConfigExit(result, 'JOB_RUNNER_CONCURRENCY');
    expect(fs.existsSync(path.join(tmp, 'jobs.sqlite'))).toBe(false);
  });

  it.each<[string, string[]]>([
    ['server.js', []],
    ['cli.js', ['start']],
    ['cli.js', ['migrate']],
  ])('%s %j with a bad LOG_LEVEL', (entry, args) => {
    expectConfigExit(run(entry, args, { LOG_LEVEL: 'loud', SESSION_SECRET: 'x'.repeat(40) }), 'LOG_LEVEL');
    expect(fs.existsSync(path.join(tmp, 'jobs.sqlite'))).toBe(false);
  });

  it('LOG_LEVEL=warn leaves out the start and stop lines; the default has them', () => {
    const env = { JOBS_SQLITE_PATH: path.join(tmp, 'levels', 'jobs.sqlite') };
    const quiet = run('job-runner.js', ['--once'], { ...env, LOG_LEVEL: 'warn' });
    expect([quiet.status, quiet.stdout, quiet.stderr]).toEqual([0, '', '']);
    const usual = run('job-runner.js', ['--once'], env);
    expect(usual.status).toBe(0);
    expect(usual.stdout).toMatch(/^job-runner: database: embedded SQLite/);
    expect(usual.stdout).toMatch(/^job-runner: stopped/m);
  });
});
