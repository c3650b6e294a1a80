// Failed logins counted in the database (LoginFailures), so every API process shares them and a
// restart forgets nothing. Each scope is limited over a sliding window, estimated from two fixed
// windows (the current one, plus the previous one weighted by how much of it still overlaps).
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

  /** Seconds until every scope is under its limit (0: now); `own` attempts already counted may reach it. */
  private async retryAfter(scopes: Scope[], at: number, own = 0): Promise<number> {
    const rows = await this.db.models.LoginFailure.findAll({
      where: {
        scope: scopes.map((s) => s.key),
        windowStart: { [Op.gte]: new Date(Math.min(...scopes.map((s) => windowStart(s.rule, at) - s.rule.windowMs))) },
      },
    });
    let wait = 0;
    for (const { key, rule } of scopes) {
      const start = windowStart(rule, at);
      const counted = (from: number) =>
        rows.filter((r) => r.scope === key && r.windowStart.getTime() === from).reduce((n, r) => n + r.count, 0);
      const current = counted(start);
      const previous = counted(start - rule.windowMs);
      const elapsed = (at - start) / rule.windowMs;
      // Over the limit when this attempt would be the (max+1)th within one window's length.
      const estimate = current - own + previous * (1 - elapsed);
      if (estimate < rule.max) continue;
      let until: number;
      if (current - own >= rule.max) {
        // The current window alone is full: it must become the previous one and fade below the limit.
        until = start + rule.windowMs + rule.windowMs * Math.max(0, 1 - rule.max / Math.max(1, current));
      } else {
        until = start + rule.windowMs * (1 - (rule.max - (current - own)) / Math.max(1, previous));
      }
      wait = Math.max(wait, Math.max(1, Math.ceil((until - at) / 1000)));
    }
    return wait;
  }

  private async add(scope: Scope, at: number, delta: 1 | -1): Promise<void> {
    const { LoginFailure } = this.db.models;
    const where = { scope: scope.key, windowStart: new Date(windowStart(scope.rule, at)) };
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

function windowStart(rule: LimitRule, at: number): number {
  return Math.floor(at / rule.windowMs) * rule.windowMs;
}
