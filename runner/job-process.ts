// One job's process group: spawned without a shell, limited, timed, and stopped as a whole.
import fs from 'node:fs';
import path from 'node:path';
import type { TaskLimits } from '../tasks/catalog';
import { inProcess, type ChildHandle, type Launcher } from './launcher';

export const KILL_GRACE_MS = 10_000;
const PIPE_CLOSE_WAIT_MS = 5_000;

export type StopReason = 'timeout' | 'cancelled' | 'shutdown' | 'runner_lost' | 'output_failed';

export interface JobProcessOptions {
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  timeoutMs: number;
  limits: TaskLimits;
  /** util-linux prlimit, when limits are set. */
  prlimitPath?: string;
  /** util-linux setpriv: sets the parent-death signal, and drops inherited capabilities under `user`. */
  setprivPath?: string;
  /** The job's main process dies with the runner (setpriv --pdeathsig KILL), when `launcher` cannot see to it. */
  pdeathsig?: boolean;
  /** Forks the job, and kills its process group if the runner dies (launcher.ts); else it forks here. */
  launcher?: Launcher | null;
  /** Another user to run as (uid and primary group, no supplementary groups, no capabilities). */
  user?: { uid: number; gid: number };
  killGraceMs?: number;
  /** Its process group started: `pgid` is its main process (the runner's ledger records it). */
  onSpawn?: (pgid: number) => void;
  onStdout: (chunk: Buffer) => void;
  onStderr: (chunk: Buffer) => void;
}

export interface JobExit {
  exitCode: number | null;
  signal: string | null;
  /** Set when the job never ran: the reason, e.g. the program is missing. */
  spawnError: string | null;
  /** Set when the runner stopped the job, and why. */
  stopReason: StopReason | null;
}

const RESOLVE_TTL_MS = 2000;
const resolved = new Map<string, { at: number; result: { path: string } | { error: string } }>();

/**
 * The program as `spawn` would find it (PATH of the job's env, relative to cwd), or an error.
 * Remembered for a moment: a busy runner starts the same few programs many times a second.
 */
export function resolveProgram(program: string, cwd: string, envPath: string): { path: string } | { error: string } {
  const key = `${program}\0${cwd}\0${envPath}`;
  const hit = resolved.get(key);
  if (hit && Date.now() - hit.at < RESOLVE_TTL_MS) return hit.result;
  const result = lookupProgram(program, cwd, envPath);
  if (resolved.size > 1000) resolved.clear();
  resolved.set(key, { at: Date.now(), result });
  return result;
}

function lookupProgram(program: string, cwd: string, envPath: string): { path: string } | { error: string } {
  const candidates = program.includes('/')
    ? [path.resolve(cwd, program)]
    : envPath
        .split(':')
        .filter(Boolean)
        .map((dir) => path.join(path.resolve(cwd, dir), program));
  for (const candidate of candidates) {
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return { path: candidate };
    } catch {
      // not this one
    }
  }
  return { error: `program not found or not executable: ${program}` };
}

/** prlimit arguments for a task's limits; empty when it has none. */
export function limitArgs(limits: TaskLimits): string[] {
  const args: string[] = [];
  // RLIMIT_DATA, not RLIMIT_AS: V8 reserves address space it never touches and dies under a tight AS limit.
  if (limits.memoryMB) args.push(`--data=${limits.memoryMB * 1024 * 1024}`);
  if (limits.processes) args.push(`--nproc=${limits.processes}`);
  if (limits.openFiles) args.push(`--nofile=${limits.openFiles}`);
  // Soft limit sends SIGXCPU (recorded as cpu_limit); the hard one, a little later, SIGKILL.
  if (limits.cpuSeconds) args.push(`--cpu=${limits.cpuSeconds}:${limits.cpuSeconds + 5}`);
  return args;
}

function findTool(name: string): string | undefined {
  return [`/usr/bin/${name}`, `/bin/${name}`, `/usr/local/bin/${name}`].find((candidate) => fs.existsSync(candidate));
}

export function findPrlimit(): string | undefined {
  return findTool('prlimit');
}

export function findSetpriv(): string | undefined {
  return findTool('setpriv');
}

/**
 * The util-linux helpers a runner uses on this host. Under systemd (INVOCATION_ID is set) the
 * unit's cgroup stops every job process with the runner; elsewhere the job launcher does, and
 * `setpriv --pdeathsig KILL` (the kernel kills a job's main process if the runner dies) when the
 * launcher is gone.
 */
export function hostTools(runnerEnv: Readonly<Record<string, string | undefined>>): {
  prlimitPath?: string;
  setprivPath?: string;
  pdeathsig: boolean;
} {
  const setprivPath = findSetpriv();
  return { prlimitPath: findPrlimit(), setprivPath, pdeathsig: !runnerEnv.INVOCATION_ID && setprivPath !== undefined };
}

/**
 * The setpriv prefix that runs after the switch to the job's user (spawn's uid/gid: libuv drops the
 * supplementary groups, then sets the group and the user). A runner that is not root holds its
 * capabilities as ambient ones (the unit's AmbientCapabilities=), and those survive both setuid()
 * and execve(): without clearing them a job could switch back to the runner's user.
 */
function setprivArgs(options: JobProcessOptions): string[] {
  const args: string[] = [];
  if (options.user) args.push('--inh-caps=-all', '--ambient-caps=-all');
  // After the switch: a change of user clears the parent-death signal.
  if (options.pdeathsig && !options.launcher?.alive) args.push('--pdeathsig', 'KILL');
  return args;
}

/** new → running (spawned) → exited (main process gone, pipes draining) → settled (`done` resolved). */
type ProcessPhase = 'new' | 'running' | 'exited' | 'settled';

/** Every field is written by start(), the child's events, stop()/kill() and settle(), on one event loop. */
export class JobProcess {
  private phase: ProcessPhase = 'new';
  private handle: ChildHandle | null = null;
  /** The job's process group (its main process's pid), once forked. */
  private pgid: number | null = null;
  /** A signal sent before the launcher said the job was forked: delivered when it does. */
  private pendingSignal: NodeJS.Signals | null = null;
  private stopReason: StopReason | null = null;
  private timeoutTimer: NodeJS.Timeout | null = null;
  private killTimer: NodeJS.Timeout | null = null;
  private closeTimer: NodeJS.Timeout | null = null;
  readonly done: Promise<JobExit>;
  private resolveDone!: (exit: JobExit) => void;

  constructor(private readonly options: JobProcessOptions) {
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  start(): void {
    const program = resolveProgram(this.options.argv[0], this.options.cwd, this.options.env.PATH ?? '');
    if ('error' in program) return this.settle({ exitCode: null, signal: null, spawnError: program.error });
    const limitFlags = limitArgs(this.options.limits);
    if (limitFlags.length > 0 && !this.options.prlimitPath) {
      return this.settle({
        exitCode: null,
        signal: null,
        spawnError: 'task has limits but prlimit (util-linux) is not installed',
      });
    }
    const privFlags = setprivArgs(this.options);
    if (privFlags.length > 0 && !this.options.setprivPath) {
      return this.settle({
        exitCode: null,
        signal: null,
        spawnError: 'running a job as another user needs setpriv (util-linux), which is not installed',
      });
    }
    let command = [program.path, ...this.options.argv.slice(1)];
    if (limitFlags.length > 0) command = [this.options.prlimitPath!, ...limitFlags, '--', ...command];
    if (privFlags.length > 0) command = [this.options.setprivPath!, ...privFlags, '--', ...command];
    const [file, ...args] = command;
    const user = this.options.user;
    const spawner = this.options.launcher?.alive ? this.options.launcher : inProcess;
    this.phase = 'running';
    this.handle = spawner.spawn(
      {
        file,
        args,
        cwd: this.options.cwd,
        env: this.options.env,
        argv0: file === program.path ? this.options.argv[0] : undefined,
        ...(user && { uid: user.uid, gid: user.gid }),
      },
      {
        onSpawn: (pid) => {
          this.pgid = pid;
          this.options.onSpawn?.(pid);
          if (this.pendingSignal) this.killGroup(this.pendingSignal);
        },
        onError: (message) => this.settle({ exitCode: null, signal: null, spawnError: message }),
        onStdout: this.options.onStdout,
        onStderr: this.options.onStderr,
        onExit: (code, signal) => {
          if (this.phase === 'running') this.phase = 'exited';
          // The job is its main process: whatever it left behind in its group goes with it.
          this.killGroup('SIGKILL');
          // A descendant that left the group may hold the pipes open: stop waiting for them after a while.
          this.closeTimer = setTimeout(() => {
            this.handle?.release();
            this.settle({ exitCode: code, signal: signal ?? null, spawnError: null });
          }, PIPE_CLOSE_WAIT_MS);
        },
        // 'close' waits for the pipes, so every byte of output has been read before the outcome.
        onClose: (code, signal) => this.settle({ exitCode: code, signal: signal ?? null, spawnError: null }),
      },
    );
    if (this.phase === 'running' && this.options.timeoutMs > 0) {
      this.timeoutTimer = setTimeout(() => this.stop('timeout'), this.options.timeoutMs);
    }
  }

  /** Pauses or resumes reading the job's output (backpressure: the job blocks on a full pipe). */
  setPaused(paused: boolean): void {
    this.handle?.setPaused(paused);
  }

  /** SIGTERM to the process group, SIGKILL after the grace period. The first reason sticks. */
  stop(reason: StopReason): void {
    // A stop that comes after the job ended on its own changes nothing: its own exit stands.
    if (this.phase !== 'running') return;
    if (this.stopReason === null) this.stopReason = reason;
    this.killGroup('SIGTERM');
    if (!this.killTimer) {
      this.killTimer = setTimeout(() => this.killGroup('SIGKILL'), this.options.killGraceMs ?? KILL_GRACE_MS);
    }
  }

  /** Stops at once (second signal, lost lease): SIGKILL to the group. */
  kill(reason: StopReason): void {
    if (this.phase !== 'running') return;
    if (this.stopReason === null) this.stopReason = reason;
    this.killGroup('SIGKILL');
  }

  private killGroup(signal: NodeJS.Signals): void {
    const pid = this.pgid;
    if (pid === null) {
      // Not forked yet (the launcher has the request): SIGKILL outranks SIGTERM.
      if (this.pendingSignal !== 'SIGKILL') this.pendingSignal = signal;
      return;
    }
    if (pid <= 1) return;
    // After every job's exit the group is usually gone already: that error needs no stack trace
    // (capturing one was 2% of a busy runner's time).
    const depth = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      process.kill(-pid, signal);
    } catch {
      // group already gone
    } finally {
      Error.stackTraceLimit = depth;
    }
  }

  private settle(exit: Omit<JobExit, 'stopReason'>): void {
    if (this.phase === 'settled') return;
    this.phase = 'settled';
    for (const timer of [this.timeoutTimer, this.killTimer, this.closeTimer]) if (timer) clearTimeout(timer);
    this.resolveDone({ ...exit, stopReason: this.stopReason });
  }
}
