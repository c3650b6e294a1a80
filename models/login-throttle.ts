// Failed logins counted in the database (LoginFailures), so every API process shares them and a
// restart forgets nothing. Each scope is limited over a sliding window, counted in buckets of a
// fifteenth of it: the buckets that overlap the last window's length, the oldest one whole, so a
// burst that straddles a bucket's edge is counted in full (an estimate from two fixed windows let
// the 11th attempt through when ten failures straddled the edge).
import { Op, UniqueConstraintError, literal } from 'sequelize';
import type { Database } from './database';
import { storageOf } from './queue';
import { writeGateFor, type WriteGate } from './write-gate';

export interface LimitRule {
  max: number;
  windowMs: number;
}

export interface LoginLimits {
  /** Failures per (username, address): the contract's 10 per 15 minutes. */
  perPair: LimitRule;
  /** Failures per address, whatever the username. */
  perAddress: LimitRule;
  /**
   * Failures per username from all addresses together. High, so that others' failures never lock a
   * user out of their own address below it, yet a botnet's guesses at one account stay bounded.
   */
  perUsername: LimitRule;
}

const FIFTEEN_MINUTES = 15 * 60 * 1000;
export const DEFAULT_LOGIN_LIMITS: LoginLimits = {
  perPair: { max: 10, windowMs: FIFTEEN_MINUTES },
  perAddress: { max: 100, windowMs: FIFTEEN_MINUTES },
  perUsername: { max: 1000, windowMs: FIFTEEN_MINUTES },
};

const PRUNE_EVERY_MS = 60_000;

interface Scope {
  key: string;
  rule: LimitRule;
}

/** A login attempt counted before its password is checked (so concurrent guesses count too). */
export interface LoginAttempt {
  scopes: Scope[];
  at: number;
}

export type Reservation = { attempt: LoginAttempt; retryAfter: 0 } | { attempt: null; retryAfter: number };

export class LoginThrottle {
  private readonly limits: LoginLimits;
  private readonly gate: WriteGate | null;
  /** Set by reserve() (any request); old windows are deleted at most once a minute per process. */
  private lastPruneAt = 0;

  constructor(
    private readonly db: Database,
    limits: Partial<LoginLimits> = {},
    private readonly now: () => number = Date.now,
  ) {
    this.limits = { ...DEFAULT_LOGIN_LIMITS, ...limits };
    this.gate = db.driver.capabilities.serialWrites ? writeGateFor(storageOf(db)) : null;
  }

  private scopes(username: string, address: string): Scope[] {
    const user = username.toLowerCase();
    return [
      { key: `pair:${user}|${address}`, rule: this.limits.perPair },
      { key: `addr:${address}`, rule: this.limits.perAddress },
      { key: `user:${user}`, rule: this.limits.perUsername },
    ];
  }

  /**
   * Counts an attempt at (username, address) unless a limit is reached: then nothing is counted and
   * retryAfter says in how many seconds to try again. Call failed() or succeeded() after the check.
   */
  async reserve(username: string, address: string): Promise<Reservation> {
    const at = this.now();
    const scopes = this.scopes(username, address);
    await this.pruneNowAndThen(at);
    let wait = await this.retryAfter(scopes, at);
    if (wait > 0) return { attempt: null, retryAfter: wait };
    for (const scope of scopes) await this.add(scope, at, 1);
    // Attempts that raced this one were counted too: over the limit now, this one gives its count back.
    wait = await this.retryAfter(scopes, at, 1);
    if (wait > 0) {
      for (const scope of scopes) await this.add(scope, at, -1);
      return { attempt: null, retryAfter: wait };
    }
    return { attempt: { scopes, at }, retryAfter: 0 };
  }

  /** The right password: the attempt is not a failure, and its (username, address) starts afresh. */
  async succeeded(attempt: LoginAttempt): Promise<void> {
    const [pair, ...others] = attempt.scopes;
    for (const scope of others) await this.add(scope, attempt.at, -1);
    await this.write(() => this.db.models.LoginFailure.destroy({ where: { scope: pair.key } }));
  }

  /**
   * Seconds until every scope is under its limit (0: now); `own` attempts already counted may reach
   * it. A scope counts the buckets that overlap the last window's length, the oldest one whole: a
   * failure is remembered for at least the window and at most one bucket longer, never less.
   */
  private async retryAfter(scopes: Scope[], at: number, own = 0): Promise<number> {
    const rows = await this.db.models.LoginFailure.findAll({
      where: {
        scope: scopes.map((s) => s.key),
        windowStart: { [Op.gt]: new Date(Math.min(...scopes.map((s) => at - s.rule.windowMs - bucketMs(s.rule)))) },
      },
    });
    let wait = 0;
    for (const { key, rule } of scopes) {
      const size = bucketMs(rule);
      const buckets = rows
        .filter((r) => r.scope === key && r.windowStart.getTime() + size > at - rule.windowMs)
        .sort((a, b) => a.windowStart.getTime() - b.windowStart.getTime());
      // Over the limit when this attempt would be the (max+1)th within one window's length.
      let counted = buckets.reduce((n, r) => n + r.count, 0) - own;
      if (counted < rule.max) continue;
      // Free again once enough of the oldest buckets have left the window.
      let until = at;
      for (const bucket of buckets) {
        counted -= bucket.count;
        until = bucket.windowStart.getTime() + size + rule.windowMs;
        if (counted < rule.max) break;
      }
      wait = Math.max(wait, Math.max(1, Math.ceil((until - at) / 1000)));
    }
    return wait;
  }

  private async add(scope: Scope, at: number, delta: 1 | -1): Promise<void> {
    const { LoginFailure } = this.db.models;
    const where = { scope: scope.key, windowStart: new Date(bucketStart(scope.rule, at)) };
    const count = this.db.sequelize.getQueryInterface().quoteIdentifier('count');
    await this.write(async () => {
      if (delta < 0) {
        await LoginFailure.update({ count: literal(`${count} - 1`) }, { where: { ...where, count: { [Op.gt]: 0 } } });
        return;
      }
      const [changed] = await LoginFailure.update({ count: literal(`${count} + 1`) }, { where });
      if (changed > 0) return;
      try {
        await LoginFailure.create({ ...where, count: 1 });
      } catch (err) {
        // Another process made the row first.
        if (!(err instanceof UniqueConstraintError)) throw err;
        await LoginFailure.update({ count: literal(`${count} + 1`) }, { where });
      }
    });
  }

  private async pruneNowAndThen(at: number): Promise<void> {
    if (at - this.lastPruneAt < PRUNE_EVERY_MS) return;
    this.lastPruneAt = at;
    const longest = Math.max(...Object.values(this.limits).map((r: LimitRule) => r.windowMs));
    await this.write(() =>
      this.db.models.LoginFailure.destroy({ where: { windowStart: { [Op.lt]: new Date(at - 2 * longest) } } }),
    );
  }

  private write<T>(work: () => Promise<T>): Promise<T> {
    return this.gate ? this.gate.run(work) : work();
  }
}

/** Failures are counted in buckets of a fifteenth of the window (a minute of the 15-minute one). */
const BUCKETS_PER_WINDOW = 15;

function bucketMs(rule: LimitRule): number {
  return Math.max(1, Math.floor(rule.windowMs / BUCKETS_PER_WINDOW));
}

function bucketStart(rule: LimitRule, at: number): number {
  const size = bucketMs(rule);
  return Math.floor(at / size) * size;
}
