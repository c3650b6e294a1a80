// A template's retry policy: which failures run again, how many times, and how long to wait first
// (README, "Retries"). The runner asks it when an attempt fails; so does any runner's reaper.

/** The `error` reasons a policy may list; `cancelled`, `invalid_template` and `not_allowed` never retry. */
export const RETRYABLE_REASONS = [
  'exit_code',
  'signal',
  'timeout',
  'spawn_failed',
  'memory_limit',
  'cpu_limit',
  'runner_lost',
  'shutdown',
] as const;
export type RetryableReason = (typeof RETRYABLE_REASONS)[number];

export interface RetryPolicy {
  /** Attempts in all, the first one included (1-100). */
  maxAttempts: number;
  on: RetryableReason[];
  /** Narrows `exit_code` to these codes (null: any non-zero). */
  exitCodes: number[] | null;
  backoff: { initialSec: number; factor: number; maxSec: number; jitter: number };
}

/** What `on` means when a policy leaves it out: failures a second try may fix, never a lost runner. */
export const DEFAULT_RETRY_ON: RetryableReason[] = ['exit_code', 'timeout', 'spawn_failed'];
export const DEFAULT_BACKOFF = { initialSec: 10, factor: 2, maxSec: 900, jitter: 0.25 };

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Checks a template's `retry`; `fail` throws with the rule broken. */
export function checkRetryPolicy(raw: unknown, fail: (rule: string) => never): RetryPolicy {
  if (!isPlainObject(raw)) fail('retry must be an object');
  const r = raw as Record<string, unknown>;
  for (const key of Object.keys(r)) {
    if (!['maxAttempts', 'on', 'exitCodes', 'backoff'].includes(key)) fail(`retry: unknown key "${key}"`);
  }
  const maxAttempts = r.maxAttempts;
  if (!Number.isSafeInteger(maxAttempts) || (maxAttempts as number) < 1 || (maxAttempts as number) > 100) {
    fail('retry.maxAttempts must be a whole number from 1 to 100');
  }
  const on = r.on ?? DEFAULT_RETRY_ON;
  if (!Array.isArray(on) || !on.every((reason) => RETRYABLE_REASONS.includes(reason as RetryableReason))) {
    fail(`retry.on must list reasons among ${RETRYABLE_REASONS.join(', ')}`);
  }
  let exitCodes: number[] | null = null;
  if (r.exitCodes !== undefined) {
    const codes = r.exitCodes;
    if (!Array.isArray(codes) || codes.length === 0 || !codes.every((c) => Number.isInteger(c) && c >= 1 && c <= 255)) {
      fail('retry.exitCodes must be a non-empty list of exit codes from 1 to 255');
    }
    if (!(on as string[]).includes('exit_code')) fail('retry.exitCodes needs "exit_code" in retry.on');
    exitCodes = codes as number[];
  }
  const backoffRaw = r.backoff ?? {};
  if (!isPlainObject(backoffRaw)) fail('retry.backoff must be an object');
  const b = backoffRaw as Record<string, unknown>;
  for (const key of Object.keys(b)) {
    if (!Object.hasOwn(DEFAULT_BACKOFF, key)) fail(`retry.backoff: unknown key "${key}"`);
  }
  const number = (key: keyof typeof DEFAULT_BACKOFF, min: number, max: number): number => {
    const value = b[key] ?? DEFAULT_BACKOFF[key];
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
      fail(`retry.backoff.${key} must be a number from ${min} to ${max}`);
    }
    return value as number;
  };
  const backoff = {
    initialSec: number('initialSec', 0, 86_400),
    factor: number('factor', 1, 10),
    maxSec: number('maxSec', 0, 86_400),
    jitter: number('jitter', 0, 1),
  };
  if (backoff.maxSec < backoff.initialSec) fail('retry.backoff.maxSec must be at least initialSec');
  return { maxAttempts: maxAttempts as number, on: on as RetryableReason[], exitCodes, backoff };
}

/** How an attempt ended, as far as retrying goes. */
export interface AttemptEnd {
  status: string;
  error: string | null;
  exitCode: number | null;
}

/**
 * The wait before the next attempt, in ms, or null when this failure is final: no policy, not a
 * listed reason, an exit code outside `exitCodes`, or no attempt left. The nominal wait is
 * min(maxSec, initialSec × factor^(attempt−1)), varied by ±jitter (`random` in [0, 1)).
 */
export function retryDelayMs(
  policy: RetryPolicy | undefined,
  end: AttemptEnd,
  attempt: number,
  maxAttempts: number,
  random: () => number = Math.random,
): number | null {
  if (!policy || end.status !== 'failure' || attempt >= maxAttempts || end.error === null) return null;
  if (!policy.on.includes(end.error as RetryableReason)) return null;
  if (end.error === 'exit_code' && policy.exitCodes && !policy.exitCodes.includes(end.exitCode ?? -1)) return null;
  const { initialSec, factor, maxSec, jitter } = policy.backoff;
  const nominalMs = Math.min(maxSec, initialSec * factor ** (attempt - 1)) * 1000;
  return Math.max(0, Math.round(nominalMs * (1 + jitter * (2 * random() - 1))));
}

/** "exit code 75", "killed by SIGKILL", "timeout": how an attempt failed, for its system row. */
export function describeFailure(end: AttemptEnd & { signal?: string | null }): string {
  if (end.error === 'exit_code') return `exit code ${end.exitCode}`;
  if (end.error === 'signal') return `killed by ${end.signal ?? 'a signal'}`;
  return (end.error ?? 'failure').replaceAll('_', ' ');
}

/** The system row a retried attempt ends with: `attempt 2 of 5 failed (exit code 1); next attempt in 20 s`. */
export function retryNote(attempt: number, maxAttempts: number, end: AttemptEnd, delayMs: number): string {
  const wait = delayMs < 10_000 ? (delayMs / 1000).toFixed(1).replace(/\.0$/, '') : String(Math.round(delayMs / 1000));
  return `attempt ${attempt} of ${maxAttempts} failed (${describeFailure(end)}); next attempt in ${wait} s`;
}

/** The next attempt a failed one earns: its wait and its note (the runner's and the reaper's decision), or null. */
export function planRetry(
  policy: RetryPolicy | undefined,
  end: AttemptEnd,
  attempt: number,
  maxAttempts: number,
): { delayMs: number; note: string } | null {
  const delayMs = retryDelayMs(policy, end, attempt, maxAttempts);
  return delayMs === null ? null : { delayMs, note: retryNote(attempt, maxAttempts, end, delayMs) };
}
