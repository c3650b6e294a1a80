// The job launcher's own process (started by launcher.ts, one per runner). It starts the runner's
// jobs and hands their output and exits back over the IPC channel, so the runner's event loop never
// blocks in fork/exec (about half a busy runner's time went there) and the forks are of a small
// process. It is also the orphan guard: when its channel closes (the runner exited, or was killed
// with `kill -9`) it SIGKILLs every job's process group it still has, then every process that carries
// one of those jobs' marks (runner/leftovers.ts: a background child that left the job's group with
// setsid), and exits. Signals meant for the runner's terminal or service do not stop it; its runner
// ends it by closing the channel.
import type { ChildProcess } from 'node:child_process';
import { forkJob, type LauncherReply, type LauncherRequest } from './launcher';
import { endLeftovers, MARK_VARIABLE, procStat, type LedgerJob } from './leftovers';

/** Output not yet taken by the runner, in bytes: above HIGH every job's pipes pause until LOW. */
const HIGH_BYTES = 8 * 1024 * 1024;
const LOW_BYTES = 1024 * 1024;

const children = new Map<number, ChildProcess>();
/** The jobs whose environment carries a mark (a runner outside systemd keeping a ledger): what proves a process theirs. */
const marked = new Map<number, LedgerJob>();
/** Jobs their runner asked to pause (its own backpressure: the output writer is behind). */
const pausedByRunner = new Set<number>();
let unsentBytes = 0;
let throttled = false;

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => {});

function applyPause(id: number): void {
  const child = children.get(id);
  const paused = throttled || pausedByRunner.has(id);
  for (const stream of [child?.stdout, child?.stderr]) {
    if (!stream) continue;
    if (paused) stream.pause();
    else stream.resume();
  }
}

/** Replies of this turn of the event loop, sent together at its end (one message, one write). */
let outbox: LauncherReply[] = [];
let outboxBytes = 0;

function reply(message: LauncherReply, bytes = 0): void {
  if (!process.connected) return;
  unsentBytes += bytes;
  outboxBytes += bytes;
  if (outbox.push(message) === 1) setImmediate(flush);
  if (!throttled && unsentBytes > HIGH_BYTES) {
    throttled = true;
    for (const id of children.keys()) applyPause(id);
  }
}

function flush(): void {
  const batch = outbox;
  const bytes = outboxBytes;
  outbox = [];
  outboxBytes = 0;
  if (!process.connected) return;
  process.send!(batch, (err: Error | null) => {
    unsentBytes -= bytes;
    if (err || !throttled || unsentBytes > LOW_BYTES) return;
    throttled = false;
    for (const id of children.keys()) applyPause(id);
  });
}

function start(request: Extract<LauncherRequest, { t: 'spawn' }>): void {
  const { id } = request;
  let child: ChildProcess;
  try {
    child = forkJob(request);
  } catch (err) {
    return reply({ t: 'error', id, message: (err as Error).message });
  }
  const pid = child.pid;
  if (pid === undefined) {
    child.once('error', (err) => reply({ t: 'error', id, message: err.message }));
    return;
  }
  // A later error (a failed kill, say) is followed by 'close'; it must not end the launcher.
  child.on('error', () => {});
  children.set(id, child);
  const mark = request.env[MARK_VARIABLE];
  const leader = mark ? procStat(pid) : null;
  if (mark && leader !== null) marked.set(id, { jobId: id, pgid: pid, start: leader.start, mark });
  reply({ t: 'spawned', id, pid });
  child.stdout!.on('data', (data: Buffer) => reply({ t: 'out', id, fd: 1, data }, data.length));
  child.stderr!.on('data', (data: Buffer) => reply({ t: 'out', id, fd: 2, data }, data.length));
  if (throttled) applyPause(id);
  child.once('exit', (code, signal) => reply({ t: 'exit', id, code, signal }));
  child.once('close', (code, signal) => {
    if (children.get(id) !== child) return; // released already
    forget(id);
    reply({ t: 'close', id, code, signal });
  });
}

function forget(id: number): void {
  const child = children.get(id);
  children.delete(id);
  marked.delete(id);
  pausedByRunner.delete(id);
  child?.stdout?.destroy();
  child?.stderr?.destroy();
}

process.on('message', (requests: LauncherRequest[]) => {
  for (const request of requests) handle(request);
});

function handle(request: LauncherRequest): void {
  if (request.t === 'spawn') start(request);
  else if (request.t === 'pause') {
    if (request.paused) pausedByRunner.add(request.id);
    else pausedByRunner.delete(request.id);
    applyPause(request.id);
  } else if (request.t === 'release') forget(request.id);
}

process.on('disconnect', () => {
  for (const child of children.values()) {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // that group is gone already
    }
  }
  endLeftovers([...marked.values()]);
  process.exit(0);
});
