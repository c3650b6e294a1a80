// Outside systemd nothing ends a job's processes when both its runner and the runner's launcher die
// (kill -9 of the whole service, the OOM killer taking both): the job's process group lives on, and so
// do background children that a job left in it. Each runner therefore keeps a ledger on this host —
// a file of its own in JOB_RUNNER_STATE_DIR naming the boot, its own process and, per job, the group
// (pgid), the start time of the group's leader and a random mark given to the job's environment — and
// every runner on the host sweeps the ledgers of runners that are gone: it kills the processes it can
// prove are theirs (same boot, started no earlier than the job, carrying the job's mark), and nothing
// else. Under systemd the unit's cgroup does this, and no ledger is kept. Linux only (/proc).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log';

/** The environment variable that carries a job's mark (opaque: it only tells its processes apart). */
export const MARK_VARIABLE = 'CONTAINER_JOBS_RUN';

const LEDGER_SUFFIX = '.ledger.json';
/** Passes a sweep makes over /proc for one dead runner (a process may fork while its group is killed). */
const SWEEP_PASSES = 5;

export interface LedgerJob {
  jobId: number;
  pgid: number;
  /** The group leader's start time, in clock ticks after boot (/proc/PID/stat, field 22). */
  start: number;
  mark: string;
}

interface LedgerFile {
  bootId: string;
  runnerId: string;
  pid: number;
  /** This runner process's start time (clock ticks after boot): tells it from a later process with its pid. */
  pidStart: number;
  jobs: LedgerJob[];
}

interface ProcStat {
  pgid: number;
  start: number;
}

/** pgid and start time of a process, or null when it is gone (or /proc cannot tell). */
export function procStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // "pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
  // cutime cstime priority nice threads itrealvalue starttime …": comm may hold spaces and parentheses.
  const fields = text.slice(text.lastIndexOf(') ') + 2).split(' ');
  const pgid = Number(fields[2]);
  const start = Number(fields[19]);
  return Number.isInteger(pgid) && Number.isInteger(start) ? { pgid, start } : null;
}

function bootId(): string | null {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return null;
  }
}

/** The job mark in a process's environment; null without one, or when it cannot be read (not provably ours). */
function markOf(pid: number): string | null {
  let environ: string;
  try {
    environ = fs.readFileSync(`/proc/${pid}/environ`, 'latin1');
  } catch {
    return null;
  }
  const entry = environ.split('\0').find((variable) => variable.startsWith(`${MARK_VARIABLE}=`));
  return entry === undefined ? null : entry.slice(MARK_VARIABLE.length + 1);
}

/**
 * Makes (or checks) the ledger directory: a directory owned by this user that nobody else may write,
 * so that no other user can leave a ledger here for a runner to act on. Throws with the reason.
 */
function privateDirectory(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const stat = fs.lstatSync(dir);
  if (!stat.isDirectory()) throw new Error(`${dir} is not a directory`);
  const uid = process.getuid?.();
  if (uid !== undefined && stat.uid !== uid) throw new Error(`${dir} belongs to uid ${stat.uid}, not to this runner's`);
  if ((stat.mode & 0o022) !== 0)
    throw new Error(`${dir} may be written by other users (mode ${(stat.mode & 0o777).toString(8)})`);
}

/** A ledger as a reader finds it: its first line, then each job's start and end, one JSON line each. */
type LedgerLine = { start: LedgerJob } | { end: number };

/** Rewritten whole (the jobs still running) once this many lines were appended. */
const COMPACT_AFTER_LINES = 1000;

/**
 * Reads a ledger file: its header and the jobs started and not ended. A last line cut short (the
 * runner died writing it) is left out; null when the header cannot be read.
 */
function readLedger(text: string): LedgerFile | null {
  const lines = text.split('\n');
  let header: Omit<LedgerFile, 'jobs'>;
  try {
    header = JSON.parse(lines[0]) as Omit<LedgerFile, 'jobs'>;
  } catch {
    return null;
  }
  const jobs = new Map<number, LedgerJob>();
  for (const line of lines.slice(1)) {
    let entry: LedgerLine;
    try {
      entry = JSON.parse(line) as LedgerLine;
    } catch {
      continue;
    }
    if ('start' in entry) jobs.set(entry.start.jobId, entry.start);
    else jobs.delete(entry.end);
  }
  return { ...header, jobs: [...jobs.values()] };
}

/**
 * This runner's ledger: which of its jobs' process groups live on this host. A journal, appended to
 * (one write per turn of the event loop for whatever started or ended in it), and rewritten whole
 * from time to time so it stays short.
 */
export class ProcessLedger {
  private readonly jobs = new Map<number, LedgerJob>();
  private readonly file: string;
  private readonly header: string;
  private fd: number | null = null;
  private pending: string[] = [];
  private flushQueued = false;
  private appended = 0;
  private closed = false;
  private failed = false;

  private constructor(
    readonly dir: string,
    runnerId: string,
    private readonly bootId: string,
    private readonly log: Logger,
  ) {
    const self = procStat(process.pid);
    this.header = JSON.stringify({ bootId, runnerId, pid: process.pid, pidStart: self?.start ?? 0 });
    const name = crypto.createHash('sha256').update(runnerId).digest('hex').slice(0, 16);
    this.file = path.join(dir, `${process.pid}-${name}${LEDGER_SUFFIX}`);
  }

  /** A ledger in `dir`, or null (with a warning) where this host cannot keep one. */
  static open(dir: string, runnerId: string, log: Logger): ProcessLedger | null {
    const boot = bootId();
    if (boot === null || procStat(process.pid) === null) {
      log.warn('no /proc here: a job left behind by a runner killed outside systemd is not cleaned up by the next one');
      return null;
    }
    try {
      privateDirectory(dir);
    } catch (err) {
      log.warn(`JOB_RUNNER_STATE_DIR: ${(err as Error).message}; leftover jobs of dead runners are not cleaned up`);
      return null;
    }
    return new ProcessLedger(dir, runnerId, boot, log);
  }

  /** A fresh mark for a job's environment. */
  static newMark(): string {
    return crypto.randomBytes(12).toString('hex');
  }

  /** The job's process group started (its leader is `pgid`). */
  add(jobId: number, pgid: number, mark: string): void {
    const leader = procStat(pgid);
    // Already gone: its group was killed when its main process ended.
    if (leader === null || leader.pgid !== pgid) return;
    const job = { jobId, pgid, start: leader.start, mark };
    this.jobs.set(jobId, job);
    this.append({ start: job });
  }

  /** The job's processes have ended (its group was killed when its main process exited). */
  remove(jobId: number): void {
    if (this.jobs.delete(jobId)) this.append({ end: jobId });
  }

  private append(line: LedgerLine): void {
    if (this.closed || this.failed) return;
    this.pending.push(JSON.stringify(line));
    if (this.flushQueued) return;
    this.flushQueued = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushQueued = false;
    if (this.pending.length === 0 || this.failed) return;
    const lines = this.pending;
    this.pending = [];
    try {
      if (this.fd === null || this.appended >= COMPACT_AFTER_LINES) {
        this.rewrite();
      } else {
        fs.writeSync(this.fd, `${lines.join('\n')}\n`);
        this.appended += lines.length;
      }
    } catch (err) {
      // Without a ledger the launcher still ends the jobs if the runner dies; only a death of both is not covered.
      this.failed = true;
      this.log.warn(`cannot write the job ledger ${this.file}: ${(err as Error).message}; it is no longer kept`);
    }
  }

  /** The header and the jobs running now, in a new file that takes the old one's place at once. */
  private rewrite(): void {
    const temporary = `${this.file}.${crypto.randomBytes(4).toString('hex')}.tmp`;
    const text = [this.header, ...[...this.jobs.values()].map((job) => JSON.stringify({ start: job }))].join('\n');
    const fd = fs.openSync(temporary, 'a', 0o600);
    try {
      fs.writeSync(fd, `${text}\n`);
      fs.renameSync(temporary, this.file);
    } catch (err) {
      fs.closeSync(fd);
      fs.rmSync(temporary, { force: true });
      throw err;
    }
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = fd;
    this.appended = 0;
  }

  /** The runner stopped: what it has not written goes now; with every job ended, its ledger goes. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
    if (this.jobs.size === 0) await fs.promises.rm(this.file, { force: true });
  }

  /**
   * Ends what runners that are gone left running on this host, and removes their ledgers; returns the
   * processes killed. Ledgers of an earlier boot are removed unread (their processes are gone).
   */
  sweep(): number {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir).filter((name) => name.endsWith(LEDGER_SUFFIX));
    } catch {
      return 0;
    }
    let killed = 0;
    for (const name of names) {
      const file = path.join(this.dir, name);
      if (file === this.file) continue;
      let ledger: LedgerFile | null;
      try {
        ledger = readLedger(fs.readFileSync(file, 'utf8'));
      } catch {
        continue; // removed meanwhile
      }
      if (ledger === null) continue;
      if (ledger.bootId !== this.bootId) {
        fs.rmSync(file, { force: true });
        continue;
      }
      const owner = procStat(ledger.pid);
      if (owner !== null && owner.start === ledger.pidStart) continue; // that runner is alive
      const ended = endLeftovers(ledger.jobs ?? []);
      killed += ended;
      if (ended > 0) {
        this.log.warn(
          `ended ${ended} process(es) that dead runner ${ledger.runnerId} (pid ${ledger.pid}) left behind, of job(s) ${ledger.jobs.map((j) => j.jobId).join(', ')}`,
        );
      }
      fs.rmSync(file, { force: true });
    }
    return killed;
  }
}

/**
 * Kills every process proven to belong to one of `jobs`: started no earlier than its job's group
 * leader, and carrying the job's mark in its environment (in the job's group or one of its own).
 */
export function endLeftovers(jobs: LedgerJob[]): number {
  if (jobs.length === 0) return 0;
  const byMark = new Map(jobs.map((job) => [job.mark, job]));
  const earliest = Math.min(...jobs.map((job) => job.start));
  // Each process killed, as pid:start. One can still show its environment in the next pass while
  // it dies: it is killed and counted once.
  const killed = new Set<string>();
  for (let pass = 0; pass < SWEEP_PASSES; pass++) {
    const before = killed.size;
    for (const entry of fs.readdirSync('/proc')) {
      const pid = Number(entry);
      if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) continue;
      const stat = procStat(pid);
      if (stat === null || stat.start < earliest) continue;
      const mark = markOf(pid);
      const job = mark === null ? undefined : byMark.get(mark);
      if (job === undefined || stat.start < job.start) continue;
      const key = `${pid}:${stat.start}`;
      if (killed.has(key)) continue;
      try {
        process.kill(pid, 'SIGKILL');
        killed.add(key);
      } catch {
        // gone meanwhile
      }
    }
    if (killed.size === before) break;
  }
  return killed.size;
}
