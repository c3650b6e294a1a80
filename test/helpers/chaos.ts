// Chaos tests: real runner processes (dist/job-runner.js) against the test database, killed,
// signalled and cut off from it; and a TCP proxy that can cut the database away and bring it back.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { QueryTypes } from 'sequelize';
import type { DatabaseConfig } from '../../config';
import type { Database } from '../../models/database';
import { ROOT, databaseEnv, freshDatabase, truncateAll, sqlOf } from './database';
import { jobRow, killQuietly, lines, waitFor, type JobRow, type StatusRow } from './runner';

const CHAOS_TASKS_FILE = path.join(ROOT, 'test', 'fixtures', 'chaos', 'tasks.json');
export const worker = process.env.JEST_WORKER_ID ?? '0';

export interface RunnerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface RunnerProcess {
  id: string;
  pid: number;
  child: ChildProcess;
  /** Everything it printed so far (stdout and stderr). */
  log(): string;
  /** How it ended, once it has. */
  exit: RunnerExit | null;
  exited: Promise<RunnerExit>;
}

export interface StartRunnerOptions {
  id: string;
  /** Variables added to (or, when undefined, removed from) the defaults below. */
  env?: Record<string, string | undefined>;
  once?: boolean;
}

const started: RunnerProcess[] = [];

let ledgers: string | null = null;
/**
 * The JOB_RUNNER_STATE_DIR of this test file's runners: their own, so that what a test's dead runner
 * leaves is ended by that test's runners only (a test proves its own runners clean up).
 */
export function chaosStateDir(): string {
  ledgers ??= fs.mkdtempSync(path.join(os.tmpdir(), `cj-ledgers-w${worker}-`));
  return ledgers;
}

/**
 * Starts `node dist/job-runner.js` with an environment built from scratch: the database, the chaos
 * task file, short heartbeat and lease. INVOCATION_ID is never passed, so the runner wraps each job
 * in `setpriv --pdeathsig KILL` (as outside systemd) and a runner's death takes its job's main process.
 */
export function startRunner(config: DatabaseConfig, options: StartRunnerOptions): RunnerProcess {
  const env: Record<string, string | undefined> = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    LANG: 'C.UTF-8',
    HOME: '/',
    ...databaseEnv(config),
    JOB_TASKS_FILE: CHAOS_TASKS_FILE,
    JOB_RUNNER_ID: options.id,
    JOB_RUNNER_POLL_MS: '100',
    JOB_RUNNER_CONCURRENCY: '2',
    JOB_RUNNER_HEARTBEAT_MS: '200',
    JOB_RUNNER_LEASE_MS: '2000',
    JOB_SHUTDOWN_GRACE_MS: '30000',
    JOB_RUNNER_STATE_DIR: chaosStateDir(),
    ...options.env,
  };
  delete env.INVOCATION_ID;
  for (const [name, value] of Object.entries(env)) if (value === undefined) delete env[name];
  const child = spawn(
    process.execPath,
    [path.join(ROOT, 'dist', 'job-runner.js'), ...(options.once ? ['--once'] : [])],
    { cwd: ROOT, env: env as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  const runner: RunnerProcess = {
    id: options.id,
    pid: child.pid!,
    child,
    log: () => log,
    exit: null,
    exited: new Promise((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code, signal) => {
        runner.exit = { code, signal };
        resolve(runner.exit);
      });
    }),
  };
  started.push(runner);
  return runner;
}

/** SIGKILLs every runner a test started that is still running (after a failed assertion). */
export function killRunners(): void {
  for (const runner of started.splice(0)) if (runner.exit === null) killQuietly([runner.pid]);
}

/** How often `pattern` occurs in a runner's log. */
export function countInLog(runner: RunnerProcess, pattern: RegExp): number {
  return runner.log().match(new RegExp(pattern.source, 'g'))?.length ?? 0;
}

/** Waits (generously) for a runner to print something matching `pattern`. */
export async function waitForLog(runner: RunnerProcess, pattern: RegExp, timeoutMs = 30_000): Promise<void> {
  await waitFor(() => pattern.test(runner.log()) || runner.exit !== null, timeoutMs);
}

/** Waits (generously) for a runner to exit; null if it is still running after `timeoutMs`. */
export async function waitForExit(runner: RunnerProcess, timeoutMs = 60_000): Promise<RunnerExit | null> {
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([
    runner.exited,
    new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), timeoutMs))),
  ]);
  clearTimeout(timer);
  return result;
}

/**
 * Waits for runners to exit for as long as they keep making progress: fails (null) only when
 * `progress()` has not grown for `stallMs`, so a slow, busy machine is never mistaken for a hang.
 */
export async function waitForExitWhileProgressing(
  runners: RunnerProcess[],
  progress: () => Promise<number>,
  stallMs = 60_000,
): Promise<(RunnerExit | null)[]> {
  let last = -1;
  let lastMovedAt = Date.now();
  while (runners.some((r) => r.exit === null) && Date.now() - lastMovedAt < stallMs) {
    const now = await progress();
    if (now > last) [last, lastMovedAt] = [now, Date.now()];
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  return runners.map((r) => r.exit);
}

/** Waits (generously) for a job to leave pending/running and returns its row as it is then. */
export async function waitForFinal(db: Database, id: number, timeoutMs = 60_000): Promise<JobRow> {
  await waitFor(async () => !['pending', 'running'].includes((await jobRow(db, id)).status), timeoutMs, 100);
  return jobRow(db, id);
}

/** The `{"pid":…,"grandchildren":[…]}` line a chaos fixture printed: every pid of its tree. */
export function printedPids(rows: StatusRow[]): number[] {
  const line = lines(rows, 'stdout').find((l) => l.startsWith('{"pid"'));
  if (!line) throw new Error(`no pid line in ${JSON.stringify(rows)}`);
  const { pid, grandchildren } = JSON.parse(line) as { pid: number; grandchildren: number[] };
  return [pid, ...grandchildren];
}

/** Ids of a runner's jobs still marked running. */
export async function runningJobsOf(db: Database, runnerId: string): Promise<number[]> {
  const rows = await sqlOf(db).query<{ id: number }>("SELECT id FROM Jobs WHERE runnerId = ? AND status = 'running'", {
    type: QueryTypes.SELECT,
    replacements: [runnerId],
  });
  return rows.map((r) => Number(r.id));
}

/**
 * A TCP proxy in front of the database. `cut()` destroys every connection through it and stops
 * listening (new connections are refused) until `resume()` listens on the same port again.
 */
export class TcpProxy {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  port = 0;
  /** Connections accepted so far (proof that the runner really talks through the proxy). */
  accepted = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  private track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
  }

  /** While silent, bytes are held, not forwarded (a partition: nothing is reset, nothing gets through). */
  private silent = false;
  private held: [net.Socket, Buffer][] = [];

  private forward(from: net.Socket, to: net.Socket): void {
    from.on('data', (chunk: Buffer) => {
      if (this.silent) this.held.push([to, chunk]);
      else to.write(chunk);
    });
  }

  private onConnection = (client: net.Socket): void => {
    this.accepted++;
    const upstream = net.connect(this.targetPort, this.targetHost);
    this.track(client);
    this.track(upstream);
    const bothDown = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', bothDown).on('close', bothDown);
    upstream.on('error', bothDown).on('close', bothDown);
    this.forward(client, upstream);
    this.forward(upstream, client);
  };

  /** A partition: connections stay open (and new ones are accepted) but nothing gets through until `heal()`. */
  partition(): void {
    this.silent = true;
  }

  /** The partition heals: what was held is delivered, in order. */
  heal(): void {
    this.silent = false;
    for (const [to, chunk] of this.held.splice(0)) if (!to.destroyed) to.write(chunk);
  }

  async listen(): Promise<number> {
    const server = net.createServer(this.onConnection);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as net.AddressInfo).port;
    return this.port;
  }

  /** The database goes away: open connections are reset, new ones refused. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = null;
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  /** The database is back, on the same port. */
  resume(): Promise<number> {
    return this.listen();
  }

  async close(): Promise<void> {
    await this.cut();
  }
}

export interface ChaosDatabase {
  db: Database;
  config: DatabaseConfig;
  /** A fresh directory per test for the fixtures' start markers (MARKER_DIR), with `markers: true`. */
  markers: string;
  /** Job pids a test saw: killed after the file, whatever happened. */
  seenPids: number[];
}

/**
 * The hooks every chaos file needs: its own migrated database (`cj_test_chaos_<name>_w<worker>`),
 * emptied before each test; runners and seen job pids killed after each test and the file.
 */
export function useChaosDatabase(name: string, options: { markers?: boolean } = {}): ChaosDatabase {
  const chaos = { markers: '', seenPids: [] as number[] } as ChaosDatabase;
  beforeAll(async () => {
    Object.assign(chaos, await freshDatabase(`cj_test_chaos_${name}_w${worker}`));
  });
  afterAll(async () => {
    killRunners();
    killQuietly(chaos.seenPids);
    await chaos.db.close();
  });
  beforeEach(async () => {
    await truncateAll(chaos.db);
    if (options.markers) chaos.markers = fs.mkdtempSync(path.join(os.tmpdir(), `cj-chaos-${name}-`));
  });
  afterEach(() => {
    killRunners();
    if (chaos.markers) fs.rmSync(chaos.markers, { recursive: true, force: true });
  });
  return chaos;
}
