// sd_notify(3) for a Type=notify unit, without a compiler: Node cannot send unix datagrams, so each
// message goes through systemd-notify(1), which waits until the service manager has read it (the
// sender is then that helper, hence NotifyAccess=all). Outside systemd (no NOTIFY_SOCKET) it is inert.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import type { DatabaseConfig, ServiceConfig } from './config';
import type { Logger } from './log';
import type { Database } from './models/database';
import { openDatabaseWhenReady } from './models/open';

const HELPER_PATHS = ['/usr/bin/systemd-notify', '/bin/systemd-notify'];
/** Without a watchdog, STATUS= is refreshed this often (the "last claim 3s ago" part moves). */
const STATUS_EVERY_MS = 10_000;
/** A helper that hangs (the manager gone) is killed: the next tick sends again. */
const HELPER_TIMEOUT_MS = 30_000;

/** One line: a newline would start another assignment (an error message may carry one). */
function statusAssignment(text: string): string {
  return `STATUS=${text.replace(/\s*\n\s*/g, ' ').slice(0, 500)}`;
}

export interface NotifierOptions {
  log: Logger;
  /** The current STATUS= text, read at every watchdog/status tick. */
  status?: () => string;
  /** For tests: the helper to run instead of systemd-notify. */
  helper?: string;
}

export class ServiceNotifier {
  private readonly helper: string | undefined;
  /** Messages not yet handed to a helper; STATUS= and WATCHDOG= lines coalesce. */
  private queued: string[] = [];
  private sending: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private lastStatus = '';
  private failureLogged = false;

  constructor(
    private readonly config: ServiceConfig,
    private readonly o: NotifierOptions,
  ) {
    this.helper = config.notifySocket ? (o.helper ?? HELPER_PATHS.find((p) => fs.existsSync(p))) : undefined;
    if (config.notifySocket && !this.helper) {
      o.log.warn('NOTIFY_SOCKET is set but systemd-notify is not installed: readiness and watchdog pings are not sent');
    }
  }

  get enabled(): boolean {
    return this.helper !== undefined;
  }

  /** STATUS= now (e.g. while waiting for the database), before READY=1. */
  status(text: string): void {
    this.lastStatus = text;
    this.send([statusAssignment(text)]);
  }

  /** READY=1, then WATCHDOG=1 every WatchdogSec/2 and STATUS= refreshed from the event loop. */
  ready(): void {
    this.send(['READY=1', ...this.statusLine(true)]);
    this.startTicks();
  }

  /** STOPPING=1: the drain has begun; the watchdog keeps being fed until the process exits. */
  stopping(text: string): void {
    this.lastStatus = text;
    this.send(['STOPPING=1', statusAssignment(text)]);
  }

  /** Stops the ticks and waits for what is queued to be sent. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    while (this.sending) await this.sending;
  }

  /** Before READY=1 too: a watchdog is armed from the start, and waiting for the database may be long. */
  startTicks(): void {
    if (!this.enabled || this.timer) return;
    const every = this.config.watchdogMs ? Math.max(1, Math.floor(this.config.watchdogMs / 2)) : STATUS_EVERY_MS;
    this.timer = setInterval(() => this.tick(), every);
    this.timer.unref();
  }

  private tick(): void {
    this.send([...(this.config.watchdogMs ? ['WATCHDOG=1'] : []), ...this.statusLine(false)]);
  }

  /** STATUS= when it changed (the manager keeps the last one), or always. */
  private statusLine(always: boolean): string[] {
    const text = this.o.status?.() || this.lastStatus;
    if (!text || (!always && text === this.lastStatus)) return [];
    this.lastStatus = text;
    return [statusAssignment(text)];
  }

  private send(lines: string[]): void {
    if (!this.enabled || lines.length === 0) return;
    for (const line of lines) {
      // A newer STATUS= or WATCHDOG= replaces one still waiting; READY/STOPPING keep their place.
      const key = line.slice(0, line.indexOf('=') + 1);
      if (key === 'STATUS=' || key === 'WATCHDOG=') this.queued = this.queued.filter((l) => !l.startsWith(key));
      this.queued.push(line);
    }
    this.sending ??= this.flush().finally(() => (this.sending = null));
  }

  private async flush(): Promise<void> {
    while (this.queued.length > 0) {
      const lines = this.queued;
      this.queued = [];
      await this.runHelper(lines);
    }
  }

  private runHelper(lines: string[]): Promise<void> {
    return new Promise((resolve) => {
      // Only NOTIFY_SOCKET: the helper needs nothing else of ours (and no secret).
      const child = spawn(this.helper as string, lines, {
        env: { NOTIFY_SOCKET: this.config.notifySocket },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        if (stderr.length < 1000) stderr += chunk;
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), HELPER_TIMEOUT_MS);
      const done = (problem: string | null) => {
        clearTimeout(timer);
        if (problem && !this.failureLogged) {
          this.failureLogged = true;
          this.o.log.warn(`systemd-notify failed (${problem}); the service manager may not see our state`);
        } else if (!problem && this.failureLogged) {
          this.failureLogged = false;
          this.o.log.notice('systemd-notify works again');
        }
        resolve();
      };
      child.on('error', (err) => done(err.message));
      child.on('close', (code, signal) =>
        done(code === 0 ? null : `${signal ?? `exit ${code}`}${stderr ? `: ${stderr.trim()}` : ''}`),
      );
    });
  }
}

/**
 * Opens the database as a daemon must: while it is away or its schema waits for `migrate`, says so
 * in STATUS= and waits (READY=1 comes later, from the caller). When `stop` aborts (SIGTERM/SIGINT)
 * before the database is open, or while it was opening, the result is null and the caller exits 0.
 */
export async function openDatabaseForService(
  config: DatabaseConfig,
  notifier: ServiceNotifier,
  log: Logger,
  stop: AbortSignal,
): Promise<Database | null> {
  const stopping = () => notifier.stopping('stopping');
  if (stop.aborted) {
    stopping();
    return null;
  }
  notifier.startTicks();
  stop.addEventListener('abort', stopping, { once: true });
  let db: Database;
  try {
    db = await openDatabaseWhenReady(config, {
      log,
      waiting: (reason) => notifier.status(`waiting: ${reason}`),
      signal: stop,
    });
  } catch (err) {
    if (stop.aborted) return null;
    throw err;
  } finally {
    stop.removeEventListener('abort', stopping);
  }
  // A signal while the last attempt was under way: it succeeded, but the daemon is stopping.
  if (stop.aborted) {
    await db.close();
    return null;
  }
  return db;
}
