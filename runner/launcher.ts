// Where a runner's jobs are forked: a small process of its own (launcher-main.ts), not the runner.
// spawn() blocks the event loop until the child has exec'd, and a fork costs in proportion to the
// forking process's memory: in the runner that was half of its time at full load, with the claims,
// output and finishes of the other jobs waiting behind it. The launcher forks instead, on the other
// core, from a process a fraction of the runner's size; the runner signals the jobs' process groups
// itself. Being their parent, it also ends them when the runner dies (outside systemd, whose cgroup
// does that). If the launcher itself dies, its jobs are killed and the runner forks in-process again.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log';

/** What the runner asks of its launcher (each IPC message is an array of them: those of one turn of its event loop). */
export type LauncherRequest =
  | {
      t: 'spawn';
      id: number;
      file: string;
      args: string[];
      cwd: string;
      env: Record<string, string>;
      argv0?: string;
      uid?: number;
      gid?: number;
    }
  | { t: 'pause'; id: number; paused: boolean }
  /** The runner stopped waiting for the job's pipes: the launcher closes its ends and forgets it. */
  | { t: 'release'; id: number };

/** What the launcher tells its runner, per job, in this order: spawned or error, out…, exit, close (sent in arrays, as requests are). */
export type LauncherReply =
  | { t: 'spawned'; id: number; pid: number }
  | { t: 'error'; id: number; message: string }
  | { t: 'out'; id: number; fd: 1 | 2; data: Uint8Array }
  | { t: 'exit'; id: number; code: number | null; signal: NodeJS.Signals | null }
  | { t: 'close'; id: number; code: number | null; signal: NodeJS.Signals | null };

export type SpawnRequest = Omit<Extract<LauncherRequest, { t: 'spawn' }>, 't' | 'id'>;

/** A job's process as its JobProcess hears of it, wherever it was forked. */
export interface ChildEvents {
  onSpawn(pid: number): void;
  /** It never ran (no pid). */
  onError(message: string): void;
  onStdout(chunk: Buffer): void;
  onStderr(chunk: Buffer): void;
  /** Its main process ended (its pipes may still be open). */
  onExit(code: number | null, signal: NodeJS.Signals | null): void;
  /** Its pipes closed too: every byte of output has been delivered. */
  onClose(code: number | null, signal: NodeJS.Signals | null): void;
}

export interface ChildHandle {
  setPaused(paused: boolean): void;
  /** Stop reading its pipes (after its main process ended and a descendant holds them). */
  release(): void;
}

export interface Spawner {
  spawn(request: SpawnRequest, events: ChildEvents): ChildHandle;
}

/** Forks a job, wherever that is: no shell, its own process group (so the whole tree can be signalled), output piped. */
export function forkJob(request: SpawnRequest): ChildProcess {
  return spawn(request.file, request.args, {
    cwd: request.cwd,
    env: request.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    shell: false,
    argv0: request.argv0,
    ...(request.uid !== undefined && { uid: request.uid, gid: request.gid }),
  });
}

/** Forks in this process (tests from the sources; a runner whose launcher died). */
export const inProcess: Spawner = {
  spawn(request, events) {
    let child: ChildProcess;
    try {
      child = forkJob(request);
    } catch (err) {
      const message = (err as Error).message;
      queueMicrotask(() => events.onError(message));
      return { setPaused: () => {}, release: () => {} };
    }
    child.once('error', (err) => {
      // Only a failed spawn lands here without a pid; a later error is followed by 'close'.
      if (child.pid === undefined) events.onError(err.message);
    });
    child.stdout!.on('data', events.onStdout);
    child.stderr!.on('data', events.onStderr);
    child.once('exit', (code, signal) => events.onExit(code, signal));
    child.once('close', (code, signal) => events.onClose(code, signal));
    if (child.pid !== undefined) events.onSpawn(child.pid);
    return {
      setPaused(paused) {
        for (const stream of [child.stdout, child.stderr]) {
          if (paused) stream?.pause();
          else stream?.resume();
        }
      },
      release() {
        child.stdout?.destroy();
        child.stderr?.destroy();
      },
    };
  },
};

const MAIN = path.join(__dirname, 'launcher-main.js');

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

export class Launcher implements Spawner {
  /** Cleared when the launcher's process exits (or is closed): from then on jobs fork in-process. */
  private child: ChildProcess | null;
  private readonly jobs = new Map<number, { events: ChildEvents; pid: number | null }>();
  private nextId = 1;
  /** Requests not yet sent (see send). */
  private outbox: LauncherRequest[] = [];

  private constructor(
    child: ChildProcess,
    private readonly log: Logger,
  ) {
    this.child = child;
    child.on('message', (replies: LauncherReply[]) => {
      for (const message of replies) this.receive(message);
    });
    child.once('exit', (code, signal) => this.lost(`exited (${signal ?? `code ${code}`})`));
    child.once('error', (err) => this.lost(`failed: ${err.message}`));
    child.unref();
    child.channel?.unref();
  }

  /** Starts the launcher (null where its program is missing: tests run from the sources). */
  static start(log: Logger, main = MAIN): Launcher | null {
    if (!fs.existsSync(main)) return null;
    // A young generation of 1 MB, not up to 16: every fork copies the launcher's page tables and every
    // exec tears them down, so the less memory it touches the cheaper each job starts.
    const child = spawn(process.execPath, ['--max-semi-space-size=1', main], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      serialization: 'advanced', // output travels as bytes, not JSON
      // Its own session: a Ctrl-C for the runner's terminal never reaches it.
      detached: true,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    });
    return new Launcher(child, log);
  }

  get alive(): boolean {
    const child = this.child;
    return child !== null && child.connected && child.exitCode === null && child.signalCode === null;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  spawn(request: SpawnRequest, events: ChildEvents): ChildHandle {
    const id = this.nextId++;
    this.jobs.set(id, { events, pid: null });
    if (this.jobs.size === 1) this.child?.channel?.ref(); // a job in flight keeps the runner's loop alive
    this.send({ t: 'spawn', id, ...request });
    return {
      setPaused: (paused) => this.send({ t: 'pause', id, paused }),
      release: () => {
        this.send({ t: 'release', id });
        this.done(id);
      },
    };
  }

  /** The runner is done: the launcher exits (killing any job it still has). */
  close(): void {
    const child = this.child;
    this.child = null;
    if (child?.connected) child.disconnect();
  }

  /** Requests of this turn of the event loop go together when it ends (one message, one write). */
  private send(request: LauncherRequest): void {
    if (this.outbox.push(request) === 1) queueMicrotask(() => this.flush());
  }

  private flush(): void {
    const batch = this.outbox;
    this.outbox = [];
    if (this.child?.connected) this.child.send(batch);
  }

  private done(id: number): void {
    if (this.jobs.delete(id) && this.jobs.size === 0) this.child?.channel?.unref();
  }

  private receive(message: LauncherReply): void {
    const job = this.jobs.get(message.id);
    if (!job) return; // released
    const { events } = job;
    switch (message.t) {
      case 'spawned':
        job.pid = message.pid;
        return events.onSpawn(message.pid);
      case 'error':
        this.done(message.id);
        return events.onError(message.message);
      case 'out':
        return message.fd === 1 ? events.onStdout(asBuffer(message.data)) : events.onStderr(asBuffer(message.data));
      case 'exit':
        return events.onExit(message.code, message.signal);
      case 'close':
        this.done(message.id);
        return events.onClose(message.code, message.signal);
    }
  }

  /** The launcher is gone: its jobs lost their parent and their output, so they are ended. */
  private lost(how: string): void {
    if (this.child === null) return; // closed by us
    this.child = null;
    this.log.warn(
      `the job launcher ${how}; ${this.jobs.size} job(s) it had are killed, and jobs now start in the runner`,
    );
    const jobs = [...this.jobs.values()];
    this.jobs.clear();
    for (const { events, pid } of jobs) {
      if (pid === null) {
        events.onError('the job launcher exited before the job started');
        continue;
      }
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // that group is gone already
      }
      events.onExit(null, 'SIGKILL');
      events.onClose(null, 'SIGKILL');
    }
  }
}
