// A template's retry policy (README, "Retries"), as the task file is loaded: which failures retry,
// after how long, and the system row a retried attempt ends with. Pure functions, no database.
import { parseTaskFile } from '../tasks/catalog';
import { DEFAULT_BACKOFF, DEFAULT_RETRY_ON, retryDelayMs, retryNote, type RetryPolicy } from '../tasks/retry';

/** The policy of a one-task file whose template has this `retry` (throws as loading would). */
function policyOf(retry: unknown): RetryPolicy {
  const text = JSON.stringify({ tasks: { t: { argv: ['true'], retry } } });
  return parseTaskFile(text).get('t')!.retry!;
}

const failed = (error: string | null, exitCode: number | null = null) => ({ status: 'failure', error, exitCode });

describe('loading', () => {
  test('defaults: on exit_code, timeout, spawn_failed (never runner_lost); backoff 10 s × 2 up to 900 s, ±25 %', () => {
    expect(policyOf({ maxAttempts: 3 })).toEqual({
      maxAttempts: 3,
      on: ['exit_code', 'timeout', 'spawn_failed'],
      exitCodes: null,
      backoff: { initialSec: 10, factor: 2, maxSec: 900, jitter: 0.25 },
    });
    expect(DEFAULT_RETRY_ON).not.toContain('runner_lost');
    expect(policyOf({ maxAttempts: 2, backoff: { initialSec: 1 } }).backoff).toEqual({
      ...DEFAULT_BACKOFF,
      initialSec: 1,
    });
  });

  test('a task without retry has no policy', () => {
    expect(parseTaskFile(JSON.stringify({ tasks: { t: { argv: ['true'] } } })).get('t')!.retry).toBeUndefined();
  });

  test.each<[string, unknown, RegExp]>([
    ['not an object', 3, /retry must be an object/],
    ['an unknown key', { maxAttempts: 2, delay: 5 }, /retry: unknown key "delay"/],
    ['no maxAttempts', {}, /maxAttempts must be a whole number from 1 to 100/],
    ['maxAttempts 101', { maxAttempts: 101 }, /maxAttempts/],
    ['maxAttempts 2.5', { maxAttempts: 2.5 }, /maxAttempts/],
    ['cancelled in on', { maxAttempts: 2, on: ['cancelled'] }, /retry.on must list reasons among/],
    ['invalid_template in on', { maxAttempts: 2, on: ['invalid_template'] }, /retry.on/],
    ['on not a list', { maxAttempts: 2, on: 'timeout' }, /retry.on/],
    ['exitCodes without exit_code', { maxAttempts: 2, on: ['timeout'], exitCodes: [75] }, /needs "exit_code"/],
    ['exit code 0', { maxAttempts: 2, exitCodes: [0] }, /exitCodes must be a non-empty list of exit codes/],
    ['no exit codes', { maxAttempts: 2, exitCodes: [] }, /exitCodes/],
    ['an unknown backoff key', { maxAttempts: 2, backoff: { base: 1 } }, /backoff: unknown key "base"/],
    ['factor below 1', { maxAttempts: 2, backoff: { factor: 0.5 } }, /backoff.factor must be a number from 1/],
    ['jitter above 1', { maxAttempts: 2, backoff: { jitter: 2 } }, /backoff.jitter/],
    ['maxSec below initialSec', { maxAttempts: 2, backoff: { initialSec: 60, maxSec: 30 } }, /at least initialSec/],
  ])('refused, naming the task and the rule: %s', (_what, retry, rule) => {
    expect(() => policyOf(retry)).toThrow(/task "t": /);
    expect(() => policyOf(retry)).toThrow(rule);
  });
});

describe('retryDelayMs', () => {
  const policy = policyOf({
    maxAttempts: 10,
    on: ['exit_code', 'timeout', 'runner_lost'],
    exitCodes: [75],
    backoff: { initialSec: 10, factor: 2, maxSec: 60, jitter: 0.25 },
  });
  const middle = () => 0.5;

  test('min(maxSec, initialSec × factor^(attempt − 1)), without jitter at the middle of the range', () => {
    const delays = [1, 2, 3, 4, 5].map((attempt) => retryDelayMs(policy, failed('timeout'), attempt, 10, middle));
    expect(delays).toEqual([10_000, 20_000, 40_000, 60_000, 60_000]);
  });

  test('varied by ±jitter: the bounds at the ends of the random range, and every draw within them', () => {
    expect(retryDelayMs(policy, failed('timeout'), 2, 10, () => 0)).toBe(15_000);
    expect(retryDelayMs(policy, failed('timeout'), 2, 10, () => 1)).toBe(25_000);
    for (let i = 0; i < 200; i++) {
      const delay = retryDelayMs(policy, failed('timeout'), 2, 10)!;
      expect(delay).toBeGreaterThanOrEqual(15_000);
      expect(delay).toBeLessThanOrEqual(25_000);
    }
  });

  test('exitCodes narrows exit_code; without it any non-zero code retries', () => {
    expect(retryDelayMs(policy, failed('exit_code', 75), 1, 10, middle)).toBe(10_000);
    expect(retryDelayMs(policy, failed('exit_code', 1), 1, 10, middle)).toBeNull();
    const anyCode = policyOf({ maxAttempts: 3 });
    expect(retryDelayMs(anyCode, failed('exit_code', 1), 1, 3, middle)).toBe(10_000);
  });

  test.each<[string, Parameters<typeof retryDelayMs>]>([
    ['no policy', [undefined, failed('timeout'), 1, 10]],
    ['a success', [policy, { status: 'success', error: null, exitCode: 0 }, 1, 10]],
    ['a cancel', [policy, { status: 'cancelled', error: 'cancelled', exitCode: null }, 1, 10]],
    ['a reason not listed', [policy, failed('signal'), 1, 10]],
    ['invalid_template', [policy, failed('invalid_template'), 1, 10]],
    ['the last attempt', [policy, failed('timeout'), 10, 10]],
    ['past the last attempt', [policy, failed('timeout'), 11, 10]],
    ['runner_lost where the default reasons apply', [policyOf({ maxAttempts: 3 }), failed('runner_lost'), 1, 3]],
  ])('null (final) for %s', (_what, args) => {
    expect(retryDelayMs(...args)).toBeNull();
  });
});

describe('retryNote', () => {
  test.each<[number, string, number | null, string | null, string]>([
    [1000, 'exit_code', 75, null, 'attempt 1 of 3 failed (exit code 75); next attempt in 1 s'],
    [1500, 'timeout', null, null, 'attempt 1 of 3 failed (timeout); next attempt in 1.5 s'],
    [0, 'spawn_failed', null, null, 'attempt 1 of 3 failed (spawn failed); next attempt in 0 s'],
    [20_000, 'runner_lost', null, null, 'attempt 1 of 3 failed (runner lost); next attempt in 20 s'],
    [12_345, 'signal', null, 'SIGKILL', 'attempt 1 of 3 failed (killed by SIGKILL); next attempt in 12 s'],
  ])('%i ms after %s', (delayMs, error, exitCode, signal, note) => {
    // An attempt's outcome carries its signal too (the runner passes the whole outcome).
    const end = { status: 'failure', error, exitCode, signal };
    expect(retryNote(1, 3, end, delayMs)).toBe(note);
  });
});
