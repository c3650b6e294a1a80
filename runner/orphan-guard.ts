// Jobs that cannot outlive their runner, outside systemd, without a second exec per job. Under
// systemd the unit's cgroup ends every job with the runner. Elsewhere a runner used to start each
// job through `setpriv --pdeathsig KILL` (an extra exec, a third of the spawn rate, and only the
// job's main process was covered). Instead, one small process per runner (orphan-guard-main.ts)
// holds the list of the jobs' process groups on a pipe; when the runner dies the pipe closes and
// the guard kills those groups, background children included. If the guard itself is gone, jobs
// fall back to setpriv.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log';

const MAIN = path.join(__dirname, 'orphan-guard-main.js');

export class OrphanGuard {
  /** Cleared when the guard's process exits: from then on jobs fall back to setpriv. */
  private child: ChildProcess | null;

  private constructor(child: ChildProcess, log: Logger) {
    this.child = child;
    child.once('exit', (code, signal) => {
      if (this.child === null) return; // closed by us
      this.child = null;
      log.warn(
        `the orphan guard exited (${signal ?? `code ${code}`}); jobs now start through setpriv --pdeathsig KILL`,
      );
    });
    // A write to a guard that just died must not crash the runner: its exit handler says so.
    child.stdin!.on('error', () => {});
  }

  /** Starts the guard (null where its program is missing, e.g. in tests run from the sources). */
  static start(log: Logger): OrphanGuard | null {
    if (!fs.existsSync(MAIN)) return null;
    const child = spawn(process.execPath, [MAIN], {
      stdio: ['pipe', 'ignore', 'inherit'],
      // Its own session: a Ctrl-C for the runner's terminal never reaches it.
      detached: true,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    });
    child.unref();
    return new OrphanGuard(child, log);
  }

  get alive(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** A job's process group, just spawned. */
  watch(pgid: number): void {
    this.child?.stdin?.write(`+${pgid}\n`);
  }

  /** A job's process group, ended (and killed as a whole): nothing to kill later. */
  unwatch(pgid: number): void {
    this.child?.stdin?.write(`-${pgid}\n`);
  }

  /** The runner is done: the guard exits (killing any group still listed). */
  close(): void {
    const child = this.child;
    this.child = null;
    child?.stdin?.end();
  }
}
