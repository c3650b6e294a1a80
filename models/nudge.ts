// Wake-up nudges: an idle runner learns of a job due now at once, instead of at its next poll.
// A runner listens on a UDP port (loopback by default) and puts the address, the port and a random
// key in its JobRunners report; whoever enqueues (the API, the CLI, the library) reads those and
// sends each runner its key. Only what can read the database can make runners claim; a lost or
// forged datagram costs nothing (polling stays the fallback, and jobs inserted by plain SQL use it).
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { QueryTypes, type Transaction } from 'sequelize';
import type { Database } from './database';
import { isDueNow, type Enqueued, type NewJob } from './enqueue';

/** Where a runner hears nudges, as it reports it (JobRunners.report's `nudge`). */
export interface NudgeTarget {
  address: string;
  port: number;
  /** 32 random bytes, hex: the whole datagram. */
  key: string;
}

/** Runners whose report is older than this are not nudged (they report every 15 s). */
const TARGET_WINDOW_MS = 60_000;
/** How long the enqueue side trusts its list of runners before it reads JobRunners again. */
const TARGETS_TTL_MS = 5_000;

/** The runner's side: a UDP socket that calls `onNudge` for each datagram carrying its key. */
export class NudgeListener {
  private constructor(
    private readonly socket: dgram.Socket,
    readonly target: NudgeTarget,
  ) {}

  /** Binds an ephemeral port on `address` (an IP address this host has). */
  static open(address: string, onNudge: () => void): Promise<NudgeListener> {
    const key = crypto.randomBytes(32).toString('hex');
    const expected = Buffer.from(key);
    const socket = dgram.createSocket(net.isIPv6(address) ? 'udp6' : 'udp4');
    socket.on('message', (message) => {
      if (message.length === expected.length && crypto.timingSafeEqual(message, expected)) onNudge();
    });
    return new Promise((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, address, () => {
        socket.off('error', reject);
        // A socket error later (none is expected for a bound UDP socket) must not end the runner.
        socket.on('error', () => {});
        socket.unref();
        resolve(new NudgeListener(socket, { address, port: socket.address().port, key }));
      });
    });
  }

  close(): void {
    try {
      this.socket.close();
    } catch {
      // already closed
    }
  }
}

/** A report's `nudge`, when it is well-formed. */
function targetOf(report: string): NudgeTarget | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(report);
  } catch {
    return null;
  }
  const nudge = (parsed as { nudge?: Partial<NudgeTarget> } | null)?.nudge;
  if (!nudge || typeof nudge !== 'object') return null;
  const { address, port, key } = nudge;
  if (typeof address !== 'string' || net.isIP(address) === 0) return null;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) return null;
  if (typeof key !== 'string' || !/^[0-9a-f]{64}$/.test(key)) return null;
  return { address, port, key };
}

/**
 * The enqueue side: `nudge()` after a job due now has committed. Never waits and never fails the
 * caller: the list of runners is read at most every 5 s, in the background.
 */
export class Nudger {
  private targets: NudgeTarget[] = [];
  private readAt = -Infinity;
  private reading: Promise<void> | null = null;
  private socket4: dgram.Socket | null = null;
  private socket6: dgram.Socket | null = null;

  constructor(private readonly db: Pick<Database, 'sequelize' | 'driver'>) {}

  nudge(): void {
    if (Date.now() - this.readAt < TARGETS_TTL_MS) {
      this.send();
      return;
    }
    this.reading ??= this.readTargets()
      .catch(() => {
        // The database is away: nobody is nudged; the runners poll.
      })
      .finally(() => {
        this.reading = null;
        this.send();
      });
  }

  /** Resolves once the nudges asked for so far are sent (a command that exits right after enqueueing). */
  async sent(): Promise<void> {
    await this.reading;
  }

  private async readTargets(): Promise<void> {
    const rows = await this.db.sequelize.query<{ report: string }>(
      this.db.driver.statements.runnerNudgeTargets(TARGET_WINDOW_MS),
      { type: QueryTypes.SELECT },
    );
    this.targets = rows.map((row) => targetOf(row.report)).filter((t) => t !== null);
    this.readAt = Date.now();
  }

  private send(): void {
    for (const target of this.targets) {
      const socket = this.socketFor(target.address);
      // Fire and forget: an unreachable runner is one that is gone.
      socket.send(target.key, target.port, target.address, () => {});
    }
  }

  private socketFor(address: string): dgram.Socket {
    if (net.isIPv6(address)) return (this.socket6 ??= Nudger.unrefSocket('udp6'));
    return (this.socket4 ??= Nudger.unrefSocket('udp4'));
  }

  private static unrefSocket(type: 'udp4' | 'udp6'): dgram.Socket {
    const socket = dgram.createSocket(type);
    socket.on('error', () => {});
    socket.unref();
    return socket;
  }
}

/**
 * Tells the runners of `jobs` once they exist — when `transaction` commits (never after a
 * rollback), else now — if one of them is new and due now.
 */
export function nudgeForJobs(nudger: Nudger, jobs: NewJob[], enqueued: Enqueued[], transaction?: Transaction): void {
  if (!jobs.some(isDueNow) || enqueued.every((e) => e.replayed)) return;
  if (transaction) transaction.afterCommit(() => nudger.nudge());
  else nudger.nudge();
}
