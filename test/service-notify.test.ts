// Type=notify, from the outside: the real entries (dist/job-runner.js, dist/server.js) under a real
// notify socket send READY=1 only once the database answers and the schema is current, WATCHDOG=1
// pings while they run, STATUS= lines, and STOPPING=1 on SIGTERM; a job never sees NOTIFY_SOCKET.
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { DatabaseConfig } from '../config';
import { createLogger, type Logger } from '../log';
import type { Database } from '../models/database';
import { migrate } from '../models/migrate';
import {
  TcpProxy,
  killRunners,
  startRunner,
  waitForExit,
  waitForFinal,
  waitForLog,
  worker,
  type RunnerProcess,
} from './helpers/chaos';
import { ROOT, databaseEnv, dialect, freshDatabase, sqlOf } from './helpers/database';
import { NotifyListener } from './helpers/notify-listener';
import { ServiceNotifier } from '../notify';
import { RUNNER_TASKS_FILE, insertJob, lines, statusRows, waitFor } from './helpers/runner';

let db: Database;
let config: DatabaseConfig;
const listeners: NotifyListener[] = [];

async function listener(): Promise<NotifyListener> {
  const l = await NotifyListener.start();
  listeners.push(l);
  return l;
}

/** The runner exits 0 after its SIGTERM; if not, its log says why. */
async function expectCleanExit(runner: RunnerProcess): Promise<void> {
  const exit = await waitForExit(runner);
  if (exit?.code !== 0) console.log(`runner ${runner.id} ended ${JSON.stringify(exit)}:\n${runner.log()}`);
  expect(exit).toEqual({ code: 0, signal: null });
}

/** A logger that keeps every line in `lines`. */
const collecting = (lines: string[]): Logger =>
  createLogger({ level: 'debug', journald: false, write: (_level, line) => lines.push(line) });

/** The variables systemd gives a Type=notify service with WatchdogSec=0.6s (pings every 300 ms). */
const notifyEnv = (l: NotifyListener) => ({ NOTIFY_SOCKET: l.socketPath, WATCHDOG_USEC: '600000' });

beforeAll(async () => {
  ({ db, config } = await freshDatabase(`cj_test_notify_w${worker}`));
});

/** Runners of this file: after a failed test they are killed, and awaited, so the jest worker can exit. */
const runners: RunnerProcess[] = [];
function tracked(...args: Parameters<typeof startRunner>): RunnerProcess {
  const runner = startRunner(...args);
  runners.push(runner);
  return runner;
}

afterAll(async () => {
  killRunners();
  await Promise.all(runners.map((runner) => runner.exited));
  await Promise.all(listeners.map((l) => l.close()));
  await db.close();
});

test('runner: READY=1 after the database answers, WATCHDOG=1 pings, STATUS= slots, STOPPING=1 on SIGTERM, exit 0', async () => {
  const notify = await listener();
  const runner = tracked(config, {
    id: `notify-runner-w${worker}`,
    env: { ...notifyEnv(notify), JOB_TASKS_FILE: RUNNER_TASKS_FILE, JOB_RUNNER_CONCURRENCY: '3' },
  });
  await notify.waitFor('READY=1');
  await waitForLog(runner, /started: 3 slot/);
  const ready = notify.indexesOf('READY=1')[0];
  // Pings keep coming after readiness, from the event loop's timer.
  await waitFor(() => notify.indexesOf('WATCHDOG=1').filter((i) => i > ready).length >= 3);
  expect(notify.indexesOf('WATCHDOG=1').filter((i) => i > ready).length).toBeGreaterThanOrEqual(3);
  expect(notify.statuses().some((s) => /^0\/3 slots busy, no claim yet$/.test(s))).toBe(true);

  // A job run under the notify socket: its environment carries none of the service manager's variables.
  const id = await insertJob(db, 'env', {});
  expect((await waitForFinal(db, id)).status).toBe('success');
  const env = JSON.parse(lines(await statusRows(db, id), 'stdout')[0]) as Record<string, string>;
  for (const name of ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID', 'CREDENTIALS_DIRECTORY']) {
    expect(env).not.toHaveProperty(name);
  }
  // A tick may have caught the job still running ("1/3 slots busy"); the one after it ended says 0/3.
  await waitFor(() => notify.statuses().some((s) => /^0\/3 slots busy, last claim \d+s ago$/.test(s)));
  expect(notify.statuses().some((s) => /^0\/3 slots busy, last claim \d+s ago$/.test(s))).toBe(true);

  runner.child.kill('SIGTERM');
  await expectCleanExit(runner);
  const stopping = notify.indexesOf('STOPPING=1');
  expect(stopping).toHaveLength(1);
  expect(stopping[0]).toBeGreaterThan(ready);
  expect(notify.messages[stopping[0]]).toMatch(/STATUS=.*draining/);
  expect(notify.indexesOf('READY=1')).toHaveLength(1);
});

test('runner: a SIGTERM while a job runs sends STOPPING=1 at once, then drains', async () => {
  const notify = await listener();
  const runner = tracked(config, {
    id: `notify-drain-w${worker}`,
    env: { ...notifyEnv(notify), JOB_SHUTDOWN_GRACE_MS: '60000' },
  });
  await notify.waitFor('READY=1');
  const id = await insertJob(db, 'tick', { count: 20, everyMs: 100, tailMs: 0 });
  await waitFor(async () => lines(await statusRows(db, id), 'stdout').length > 0);
  runner.child.kill('SIGTERM');
  await notify.waitFor('STOPPING=1');
  expect(notify.messages[notify.indexesOf('STOPPING=1')[0]]).toMatch(/STATUS=1\/2 slots busy, .*draining/);
  await expectCleanExit(runner);
  expect((await waitForFinal(db, id)).status).toBe('success');
});

test('API server: READY=1 once it listens on the database, STOPPING=1 on SIGTERM, exit 0', async () => {
  const notify = await listener();
  const child = spawn(process.execPath, [path.join(ROOT, 'dist', 'server.js')], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      ...databaseEnv(config),
      ...notifyEnv(notify),
      PORT: '0',
      SESSION_SECRET: 'notify-test-secret-0123456789abcdef',
      JOB_TASKS_FILE: path.join(ROOT, 'tasks.json'),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  try {
    await notify.waitFor('READY=1');
    const url = /listening on (http:\/\/\S+)/.exec(log)?.[1];
    expect(url).toBeDefined();
    // Ready means ready: the health check answers from the database.
    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(200);
    expect(notify.statuses()).toContain(`listening on ${url}`);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(notify.indexesOf('STOPPING=1')).toHaveLength(1);
    expect(notify.indexesOf('STOPPING=1')[0]).toBeGreaterThan(notify.indexesOf('READY=1')[0]);
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
});

/** Database servers only (MySQL, PostgreSQL): SQLite is a file beside the program. */
const serverOnly = dialect === 'sqlite' ? test.skip : test;

serverOnly(
  'runner (database server): while the database does not answer, STATUS= says so and no READY=1 is sent',
  async () => {
    const mysql = config as Extract<DatabaseConfig, { dialect: 'mysql' | 'postgres' }>;
    const proxy = new TcpProxy(mysql.host, mysql.port);
    await proxy.listen();
    await proxy.cut(); // the port now refuses connections
    const notify = await listener();
    try {
      const runner = tracked(
        { ...mysql, host: '127.0.0.1', port: proxy.port },
        { id: `notify-wait-w${worker}`, env: notifyEnv(notify) },
      );
      await waitFor(() => notify.statuses().some((s) => s.startsWith('waiting: database unavailable')));
      // Waiting is not hanging: the watchdog is fed meanwhile, and the process is still there.
      await notify.waitFor('WATCHDOG=1', 3);
      expect(notify.indexesOf('READY=1')).toEqual([]);
      expect(runner.exit).toBeNull();
      expect(proxy.accepted).toBe(0);
      const beforeResume = notify.messages.length;
      await proxy.resume();
      await notify.waitFor('READY=1');
      expect(notify.indexesOf('READY=1')[0]).toBeGreaterThanOrEqual(beforeResume);
      expect(proxy.accepted).toBeGreaterThan(0);
      expect(runner.log()).toMatch(/database ready/);
      runner.child.kill('SIGTERM');
      await expectCleanExit(runner);
    } finally {
      await proxy.close();
    }
  },
);

serverOnly(
  'runner (database server): a SIGTERM while a connection attempt hangs ends the start-up, even if the attempt then succeeds',
  async () => {
    const mysql = config as Extract<DatabaseConfig, { dialect: 'mysql' | 'postgres' }>;
    const proxy = new TcpProxy(mysql.host, mysql.port);
    await proxy.listen();
    proxy.partition(); // connections are accepted, but the handshake hangs
    const notify = await listener();
    try {
      const runner = tracked(
        { ...mysql, host: '127.0.0.1', port: proxy.port },
        { id: `notify-opening-w${worker}`, env: notifyEnv(notify) },
      );
      await waitFor(() => proxy.accepted > 0 || runner.exit !== null);
      expect(proxy.accepted).toBeGreaterThan(0);
      runner.child.kill('SIGTERM');
      await waitForLog(runner, /SIGTERM/);
      proxy.heal(); // the attempt under way now succeeds: the runner must not start for all that
      await expectCleanExit(runner);
      expect(notify.indexesOf('READY=1')).toEqual([]);
      expect(notify.indexesOf('STOPPING=1')).toHaveLength(1);
      expect(runner.log()).not.toMatch(/started:/);
    } finally {
      await proxy.close();
    }
  },
);

serverOnly(
  'runner (database server): while a migration is pending, STATUS= asks for `migrate`; READY=1 follows it',
  async () => {
    const notify = await listener();
    // The schema one release behind: the last migration not applied.
    await sqlOf(db).query('DROP TABLE JobRunners');
    await sqlOf(db).query("DELETE FROM SequelizeMeta WHERE name LIKE '%create-jobrunners%'");
    const runner = tracked(config, { id: `notify-schema-w${worker}`, env: notifyEnv(notify) });
    await waitFor(() => notify.statuses().some((s) => /schema is not current.*container-jobs migrate/.test(s)));
    expect(notify.indexesOf('READY=1')).toEqual([]);
    const beforeMigrate = notify.messages.length;
    await migrate(db);
    await notify.waitFor('READY=1');
    expect(notify.indexesOf('READY=1')[0]).toBeGreaterThanOrEqual(beforeMigrate);
    runner.child.kill('SIGTERM');
    await expectCleanExit(runner);
  },
);

serverOnly(
  'runner (database server): wrong credentials are configuration: one line and exit 78, no READY=1',
  async () => {
    const notify = await listener();
    const runner = tracked(
      {
        ...(config as Extract<DatabaseConfig, { dialect: 'mysql' | 'postgres' }>),
        user: 'no_such_user_cj',
        password: 'nope',
      },
      { id: `notify-denied-w${worker}`, env: notifyEnv(notify) },
    );
    expect(await waitForExit(runner)).toEqual({ code: 78, signal: null });
    expect(runner.log()).toMatch(/the database refused us/);
    expect(notify.indexesOf('READY=1')).toEqual([]);
  },
);

test('ServiceNotifier: one STATUS= line whatever the text; inert without NOTIFY_SOCKET', async () => {
  const notify = await listener();
  const logs: string[] = [];
  const notifier = new ServiceNotifier(
    { notifySocket: notify.socketPath, watchdogMs: undefined },
    { log: collecting(logs) },
  );
  expect(notifier.enabled).toBe(true);
  notifier.status('waiting: database unavailable: connect ECONNREFUSED\n  at line two');
  await waitFor(() => notify.messages.length === 1);
  notifier.ready();
  await notify.waitFor('READY=1');
  // Queued while a helper runs, STOPPING=1 and a newer STATUS= go together; the older STATUS= is dropped.
  notifier.status('draining');
  notifier.stopping('stopping');
  await notifier.close();
  await notify.waitFor('STOPPING=1');
  expect(notify.messages[0]).toBe('STATUS=waiting: database unavailable: connect ECONNREFUSED at line two');
  expect(notify.messages[1]).toBe('READY=1\nSTATUS=waiting: database unavailable: connect ECONNREFUSED at line two');
  expect(notify.messages.slice(2).join('\n').split('\n')).toEqual(
    expect.arrayContaining(['STOPPING=1', 'STATUS=stopping']),
  );
  expect(notify.messages.slice(2).join('\n')).toMatch(/STOPPING=1(.|\n)*STATUS=stopping$/);
  expect(logs).toEqual([]);

  const inert = new ServiceNotifier({ notifySocket: undefined, watchdogMs: 1000 }, { log: collecting(logs) });
  expect(inert.enabled).toBe(false);
  inert.ready();
  await inert.close();
  expect(logs).toEqual([]);
});
