#!/usr/bin/env node
// Entry: the `container-jobs` command.
import {
  EX_DATAERR,
  EX_USAGE,
  InputError,
  OWNER_NAME,
  lastOption,
  RefusedError,
  UsageError,
  defaultOwner,
  formatDate,
  only,
  parseArgs,
  withDatabase,
  type Parsed,
} from './cli-common';
import { cmdAdopt, refusedAsCli } from './cli-adopt';
import { cmdJob, cmdSchedules } from './cli-jobs';
import { ConfigError, describeDatabase, loadConfig, type Config } from './config';
import type { Logger, LogLevel } from './log';
import { createDatabase, type Database } from './models/database';
import { migrate } from './models/migrate';
import { pruneRunnerRows } from './models/metrics';
import { ServiceNotifier, openDatabaseForService } from './notify';
import { IdempotencyConflictError } from './models/enqueue';
import { Queue } from './models/queue';
import { countPrunable, countStaleRunnerRows, parseDuration, pruneFinishedJobs } from './models/prune';
import {
  UserError,
  createApiToken,
  createUser,
  ensureInitialAdmin,
  deleteUser,
  generatePassword,
  listApiTokens,
  listSessions,
  listUsers,
  revokeApiToken,
  revokeSessions,
  setAdmin,
  setPassword,
} from './models/users';
import { createApp } from './routers/app';
import { closeServer, listen, serverUrl } from './routers/listen';
import { resolveSessionSecret } from './routers/sessions';
import { createRunner } from './runner/daemon';
import { runService, type Failure, type Service } from './service';
import { TaskCatalog, TaskFileError, loadTaskFile } from './tasks/catalog';
import { checkJobRequest, JobRequestError } from './tasks/job-request';
import { ParamsError, paramsFromStrings } from './tasks/render';

const USAGE = `usage: npx container-jobs <command>
       (in the checkout; elsewhere: node <checkout>/dist/cli.js <command>)

  migrate [--queue-only]                    apply database migrations; --queue-only: a new install gets the
                                            queue's tables alone (no Users, ApiTokens, Sessions, LoginFailures)
  migrate --adopt --map FILE                convert the container-creator's own Jobs and JobStatuses in place;
                                            FILE maps their old commands to task templates
  tasks check [FILE]                        check a task file (default: JOB_TASKS_FILE)
  enqueue TASK [--param k=v]... [--as USER] [--priority N] [--run-at T | --delay S] [--idempotency-key K]
                                            validate and enqueue a job owned by USER (default: your OS user); prints its id
  user add NAME [--admin]                   add a user; password from stdin, or generated and printed
  user passwd NAME                          set a password (from stdin, or generated and printed); ends their sessions
  user list                                 list users
  user delete NAME                          delete a user, their sessions and tokens (their jobs stay)
  user admin NAME on|off                    grant or take back admin rights (from their next request)
  user sessions NAME [--revoke]             list a user's sessions (count, last seen), or end them all
  token create NAME [--name LABEL]          make an API token for a user; printed once, on the last line
  token list [NAME]                         list API tokens (not the tokens themselves)
  token revoke ID                           delete an API token
  job list [--status S] [--user U] [--limit N] [--json]
                                            list jobs, newest first (default: the last 50)
  job show ID [--lines N] [--json]          a job's fields, why it waits, its last output lines (default 20)
  job cancel ID [--as NAME]                 cancel a job (pending: at once; running: its runner stops it)
  job retry ID [--as NAME]                  put a failed or cancelled job back to pending, at its next attempt
  job rerun ID [--as OWNER]                 run a finished job again as a new job (owner: the old job's); prints its id
  schedules list [--json]                   the task file's schedules: next run, last run and its job
  prune --older-than 30d [--dry-run]        delete jobs finished longer ago (s, m, h, d, w) and their output;
                                            --dry-run counts what would go and deletes nothing
  start                                     API and runner in one process (the quick start)
`;

async function cmdMigrate(config: Config, log: Logger, args: string[]): Promise<number> {
  const parsed = parseArgs(args, ['queue-only', 'adopt']);
  only(parsed, ['queue-only', 'adopt', 'map']);
  if (parsed.positional.length > 0) throw new UsageError('migrate takes no arguments');
  const adopting = parsed.options.has('adopt');
  if (adopting !== parsed.options.has('map'))
    throw new UsageError('--adopt needs --map FILE (and --map goes with --adopt)');
  if (adopting && parsed.options.has('queue-only')) throw new UsageError('--adopt installs the queue alone already');
  log.notice(describeDatabase(config.database));
  if (adopting) return cmdAdopt(config, lastOption(parsed, 'map')!);
  const db = createDatabase(config.database);
  try {
    const applied = await refusedAsCli(() =>
      migrate(db, (line) => console.log(line), { queueOnly: parsed.options.has('queue-only') }),
    );
    console.log(
      applied.length === 0 ? 'schema is current; nothing to migrate' : `applied ${applied.length} migration(s)`,
    );
  } finally {
    await db.close();
  }
  return 0;
}

function cmdTasksCheck(config: Config, args: string[]): number {
  const parsed = parseArgs(args);
  only(parsed, []);
  if (parsed.positional.length > 1) throw new UsageError('tasks check takes at most one FILE');
  const file = parsed.positional[0] ?? config.tasksFile;
  const { tasks, schedules } = loadTaskFile(file, { cronSeconds: config.testCronSeconds });
  for (const task of tasks.values()) {
    console.log(`${task.name}${task.adminOnly ? ' (admin only)' : ''}: ${task.argv.join(' ')}`);
  }
  for (const schedule of schedules.values()) {
    console.log(`schedule ${schedule.name}: ${schedule.task} at "${schedule.cron}" (${schedule.timezone})`);
  }
  console.log(`${file}: ${tasks.size} task(s), ${schedules.size} schedule(s), all valid`);
  return 0;
}

async function cmdEnqueue(config: Config, log: Logger, args: string[]): Promise<number> {
  const parsed = parseArgs(args);
  only(parsed, ['param', 'as', 'priority', 'run-at', 'delay', 'idempotency-key']);
  if (parsed.positional.length !== 1) throw new UsageError('enqueue takes exactly one TASK');
  const name = parsed.positional[0];
  const catalog = new TaskCatalog(config.tasksFile, undefined, { cronSeconds: config.testCronSeconds });
  const task = catalog.get(name);
  if (!task) throw new InputError(`unknown task "${name}" (see: npx container-jobs tasks check)`);
  const last = (option: string) => parsed.options.get(option)?.at(-1);
  const whole = (option: string) => {
    const raw = last(option);
    if (raw !== undefined && !/^-?\d+$/.test(raw)) throw new UsageError(`--${option} must be a whole number`);
    return raw === undefined ? undefined : Number(raw);
  };
  const request = {
    task: name,
    params: paramsFromStrings(task, parsed.options.get('param') ?? []),
    priority: whole('priority'),
    runAt: last('run-at'),
    delaySec: whole('delay'),
    idempotencyKey: last('idempotency-key'),
  };
  const owner = last('as') ?? defaultOwner();
  if (!OWNER_NAME.test(owner)) {
    throw new UsageError('--as must be a name of 1-100 printable ASCII characters, without spaces');
  }
  // The operator speaks for the queue: `--as` (or the OS user) only names the owner.
  let job;
  try {
    job = checkJobRequest(catalog, { username: owner, isAdmin: true }, request);
  } catch (err) {
    if (err instanceof JobRequestError) throw new InputError(`${err.field ? `${err.field}: ` : ''}${err.message}`);
    throw err;
  }
  const enqueued = await withDatabase(config, log, async (db) => {
    // The runner runs an adminOnly task only for an admin owner: refuse now what would fail there.
    if (task.adminOnly && !(await isAdminUser(db, owner))) {
      throw new InputError(
        `task "${name}" is for admins and "${owner}" is not an admin user, so its job would not run; ` +
          'name an admin with --as NAME (see: npx container-jobs user list)',
      );
    }
    try {
      const queue = new Queue(db);
      const enqueued = await queue.enqueue(job);
      await queue.nudgesSent();
      return enqueued;
    } catch (err) {
      if (err instanceof IdempotencyConflictError) throw new InputError(err.message);
      throw err;
    }
  });
  if (enqueued.replayed) log.notice(`job ${enqueued.id} already existed for this idempotency key (${enqueued.status})`);
  console.log(enqueued.id);
  return 0;
}

async function isAdminUser(db: Database, username: string): Promise<boolean> {
  const user = await db.models.User.findOne({ where: { username }, attributes: ['isAdmin'] });
  return user?.isAdmin === true;
}

/**
 * A password piped in (`echo … | npx container-jobs user add NAME`): the first line of stdin when stdin
 * is not a terminal and not empty; null means "generate one".
 */
async function passwordFromStdin(): Promise<string | null> {
  if (process.stdin.isTTY) return null;
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const line = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0];
  return line === '' ? null : line;
}

async function newPassword(): Promise<{ password: string; generated: boolean }> {
  const piped = await passwordFromStdin();
  return piped === null ? { password: generatePassword(), generated: true } : { password: piped, generated: false };
}

async function cmdUser(config: Config, log: Logger, args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const parsed = parseArgs(rest, ['admin', 'revoke']);
  switch (sub) {
    case 'add': {
      only(parsed, ['admin']);
      if (parsed.positional.length !== 1) throw new UsageError('user add takes exactly one NAME');
      const isAdmin = parsed.options.has('admin');
      const { password, generated } = await newPassword();
      const user = await withDatabase(config, log, (db) => createUser(db, parsed.positional[0], password, isAdmin));
      console.log(`created user "${user.username}"${user.isAdmin ? ' (admin)' : ''}`);
      if (generated) console.log(`password: ${password}`);
      return 0;
    }
    case 'passwd': {
      only(parsed, []);
      if (parsed.positional.length !== 1) throw new UsageError('user passwd takes exactly one NAME');
      const { password, generated } = await newPassword();
      const ended = await withDatabase(config, log, (db) => setPassword(db, parsed.positional[0], password));
      console.log(`password of "${parsed.positional[0]}" changed; ${ended} session(s) ended`);
      if (generated) console.log(`password: ${password}`);
      return 0;
    }
    case 'list': {
      only(parsed, []);
      if (parsed.positional.length !== 0) throw new UsageError('user list takes no arguments');
      const users = await withDatabase(config, log, (db) => listUsers(db));
      for (const u of users) {
        console.log(
          `${u.username}\t${u.isAdmin ? 'admin' : 'user'}\t${u.tokens} token(s)\tcreated ${formatDate(u.createdAt)}`,
        );
      }
      if (users.length === 0) log.notice('no users (add one: npx container-jobs user add NAME --admin)');
      return 0;
    }
    case 'delete': {
      only(parsed, []);
      if (parsed.positional.length !== 1) throw new UsageError('user delete takes exactly one NAME');
      const name = parsed.positional[0];
      const { sessions, tokens } = await withDatabase(config, log, (db) => deleteUser(db, name));
      console.log(`deleted user "${name}" with ${sessions} session(s) and ${tokens} token(s); their jobs stay`);
      return 0;
    }
    case 'admin': {
      only(parsed, []);
      const [name, state] = parsed.positional;
      if (parsed.positional.length !== 2 || (state !== 'on' && state !== 'off')) {
        throw new UsageError('usage: npx container-jobs user admin NAME on|off');
      }
      await withDatabase(config, log, (db) => setAdmin(db, name, state === 'on'));
      console.log(`"${name}" is ${state === 'on' ? 'an admin' : 'no longer an admin'} (from their next request)`);
      return 0;
    }
    case 'sessions':
      return cmdUserSessions(config, log, parsed);
    default:
      throw new UsageError('usage: npx container-jobs user add|passwd|list|delete|admin|sessions');
  }
}

/** `user sessions NAME [--revoke]`: how many sessions and when each was last used, or end them all. */
async function cmdUserSessions(config: Config, log: Logger, parsed: Parsed): Promise<number> {
  only(parsed, ['revoke']);
  if (parsed.positional.length !== 1) throw new UsageError('user sessions takes exactly one NAME');
  const name = parsed.positional[0];
  if (parsed.options.has('revoke')) {
    const ended = await withDatabase(config, log, (db) => revokeSessions(db, name));
    console.log(`ended ${ended} session(s) of "${name}"`);
    return 0;
  }
  const sessions = await withDatabase(config, log, (db) => listSessions(db, name));
  console.log(`${sessions.length} session(s) of "${name}"`);
  for (const s of sessions) {
    console.log(
      `last seen ${formatDate(s.lastSeenAt)}\tlogged in ${formatDate(s.createdAt)}\texpires ${formatDate(s.expires)}`,
    );
  }
  return 0;
}

async function cmdToken(config: Config, log: Logger, args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const parsed = parseArgs(rest);
  switch (sub) {
    case 'create': {
      only(parsed, ['name']);
      if (parsed.positional.length !== 1) throw new UsageError('token create takes exactly one NAME (a user)');
      const username = parsed.positional[0];
      const label = parsed.options.get('name')?.at(-1) ?? 'cli';
      const { id, token } = await withDatabase(config, log, (db) => createApiToken(db, username, label));
      console.log(
        `token ${id} "${label}" for ${username}; it is shown this once (send it as: Authorization: Bearer …)`,
      );
      console.log(token);
      return 0;
    }
    case 'list': {
      only(parsed, []);
      if (parsed.positional.length > 1) throw new UsageError('token list takes at most one NAME');
      const tokens = await withDatabase(config, log, (db) => listApiTokens(db, parsed.positional[0]));
      for (const t of tokens) {
        console.log(
          `${t.id}\t${t.username}\t${t.name}\tcreated ${formatDate(t.createdAt)}\tlast used ${formatDate(t.lastUsedAt)}\texpires ${formatDate(t.expiresAt)}`,
        );
      }
      return 0;
    }
    case 'revoke': {
      only(parsed, []);
      const raw = parsed.positional[0];
      if (parsed.positional.length !== 1 || !/^\d+$/.test(raw)) throw new UsageError('token revoke takes one token ID');
      const revoked = await withDatabase(config, log, (db) => revokeApiToken(db, Number(raw)));
      if (!revoked) throw new InputError(`no token ${raw} (see: npx container-jobs token list)`);
      console.log(`revoked token ${raw}`);
      return 0;
    }
    default:
      throw new UsageError('usage: npx container-jobs token create|list|revoke');
  }
}

/** The quick start: API and runner in one process, on the embedded database unless MYSQL_HOST is set. */
async function cmdStart(service: Service, config: Config, args: string[]): Promise<number> {
  only(parseArgs(args), []);
  if (args.length > 0) throw new UsageError('start takes no arguments');
  const log = service.useLogger({ level: config.logLevel });
  log.notice(describeDatabase(config.database));
  const sessionSecret = resolveSessionSecret(config);
  let catalog: TaskCatalog;
  try {
    catalog = new TaskCatalog(
      config.tasksFile,
      (err) => log.warn(`task file not reloaded, keeping the last good one: ${err.message}`),
      { cronSeconds: config.testCronSeconds },
    );
  } catch (err) {
    // A broken task file is configuration here (exit 78, no restart loop), not a command's bad input (65).
    if (err instanceof TaskFileError) throw new ConfigError(err.message);
    throw err;
  }
  let status = () => '';
  const notifier = new ServiceNotifier(config.service, { log, status: () => status() });
  service.atExit(() => notifier.close());
  const db = await openDatabaseForService(config.database, notifier, log, service.stopping);
  if (!db) return 0;
  service.atExit(() => db.close());
  const password = await ensureInitialAdmin(db);
  if (password !== null) {
    // warn, not notice: it is shown this once, so a quieter LOG_LEVEL must not swallow it.
    log.warn('first start: created user "admin" (change it with: npx container-jobs user passwd admin)');
    log.warn(`admin password (shown once): ${password}`);
  }
  const queue = new Queue(db, config.quotas);
  const shutdown = new AbortController();
  const app = createApp({ db, queue, catalog, config, sessionSecret, log, shutdown: shutdown.signal });
  const server = await listen(app, config.http);
  const runner = createRunner(config, queue, catalog, log);
  const url = serverUrl(server);
  status = () => `API on ${url}; ${runner.statusLine()}`;
  log.notice(
    `API listening on ${url}; runner ${config.runner.id}: ${config.runner.concurrency} slot(s), ${catalog.current().size} task(s) from ${config.tasksFile}`,
  );
  notifier.ready();
  service.onStop({
    drain: (signal) => {
      log.notice(`${signal}: closing the API, no new claims; draining jobs (a second signal stops at once)`);
      shutdown.abort();
      void closeServer(server);
      void runner.stop();
      notifier.stopping(status());
    },
    stopNow: (signal) => {
      log.notice(`${signal} again: stopping every job now`);
      server.closeAllConnections();
      return runner.stopNow();
    },
  });
  await runner.run();
  await runner.stop();
  await closeServer(server);
  log.notice('stopped');
  return 0;
}

const RUNNER_REPORT_KEEP_SEC = 86400;

async function cmdPrune(config: Config, log: Logger, args: string[]): Promise<number> {
  const parsed = parseArgs(args, ['dry-run']);
  only(parsed, ['older-than', 'dry-run']);
  if (parsed.positional.length > 0) throw new UsageError('prune takes no arguments');
  const raw = parsed.options.get('older-than')?.at(-1);
  if (raw === undefined) throw new UsageError('prune needs --older-than (e.g. 30d)');
  const seconds = parseDuration(raw);
  if (seconds === undefined)
    throw new UsageError(`--older-than ${JSON.stringify(raw)} is not a duration like 30d, 12h, 90m`);
  // Reports of runners gone for a day: GET /metrics stopped showing them long ago.
  const runnersOlderThan = Math.max(seconds, RUNNER_REPORT_KEEP_SEC);
  if (parsed.options.has('dry-run')) {
    const { result, runners } = await withDatabase(config, log, async (db) => ({
      result: await countPrunable(db, seconds),
      runners: await countStaleRunnerRows(db, runnersOlderThan),
    }));
    console.log(
      `would prune ${result.jobs} finished job(s) and ${result.outputRows} output row(s) older than ${raw}, ` +
        `${result.groups} empty group(s), ${result.fires} schedule fire record(s) and ${runners} stale runner report(s)`,
    );
    console.log('dry run: nothing deleted');
    return 0;
  }
  const { result, runners } = await withDatabase(config, log, async (db) => ({
    result: await pruneFinishedJobs(db, seconds),
    runners: await pruneRunnerRows(db, runnersOlderThan),
  }));
  console.log(
    `pruned ${result.jobs} finished job(s) and ${result.outputRows} output row(s) older than ${raw}` +
      (result.groups > 0 ? `, ${result.groups} empty group(s)` : '') +
      (result.fires > 0 ? `, ${result.fires} schedule fire record(s)` : '') +
      (runners > 0 ? `, and ${runners} stale runner report(s)` : ''),
  );
  return 0;
}

/** Diagnostics of the one-shot commands go to stderr, so that stdout is only their output. */
function commandLogger(service: Service, level: LogLevel): Logger {
  return service.useLogger({ level, write: (_level, line) => process.stderr.write(`${line}\n`) });
}

async function main(service: Service, args: string[]): Promise<number> {
  const [command, ...rest] = args;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return command === undefined ? EX_USAGE : 0;
  }
  const config = loadConfig();
  if (command === 'start') return cmdStart(service, config, rest);
  const log = commandLogger(service, config.logLevel);
  switch (command) {
    case 'migrate':
      return cmdMigrate(config, log, rest);
    case 'tasks':
      if (rest[0] !== 'check') throw new UsageError('usage: npx container-jobs tasks check [FILE]');
      return cmdTasksCheck(config, rest.slice(1));
    case 'enqueue':
      return cmdEnqueue(config, log, rest);
    case 'user':
      return cmdUser(config, log, rest);
    case 'token':
      return cmdToken(config, log, rest);
    case 'job':
      return cmdJob(config, log, rest);
    case 'schedules':
      return cmdSchedules(config, log, rest);
    case 'prune':
      return cmdPrune(config, log, rest);
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

/** The CLI's own statuses; configuration (78) and anything else (1) are service.ts's. */
function cliFailure(err: unknown): Failure | undefined {
  if (err instanceof UsageError) return { status: EX_USAGE, message: `${err.message}\n\n${USAGE}` };
  if (
    err instanceof TaskFileError ||
    err instanceof ParamsError ||
    err instanceof InputError ||
    err instanceof UserError
  ) {
    return { status: EX_DATAERR, message: err.message };
  }
  if (err instanceof RefusedError) return { status: 1, message: err.message };
  return undefined;
}

// libuv reads this once, at the first thread-pool task (fs, crypto, dns, node-sqlite3), which main() makes:
// more threads than password hashing may take (models/users.ts), so queries never wait behind a login flood.
process.env.UV_THREADPOOL_SIZE ??= '8';
const args = process.argv.slice(2);
runService({ name: 'container-jobs', daemon: args[0] === 'start', failure: cliFailure }, (service) =>
  main(service, args),
);
