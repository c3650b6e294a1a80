// A request for a job, checked the same way wherever it comes from (POST /jobs, the CLI, the library
// entry): the task and who may run it, its params, when it is due, its priority, its idempotency key.
import type { TaskCatalog } from './catalog';
import { ParamsError, prepareJob, renderGroupKey, type Params } from './render';

/** Bad input, with the HTTP status and `code`/`field` the API answers with. */
export class JobRequestError extends Error {
  override name = 'JobRequestError';
  constructor(
    readonly status: 400 | 403,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

export interface JobRequest {
  task: unknown;
  params?: unknown;
  /** RFC 3339 with an offset, at most 366 days ahead; a past time means now. */
  runAt?: unknown;
  /** Seconds from now, 0–31,622,400; not together with runAt. */
  delaySec?: unknown;
  /** −100..100; above 0 for admins only. */
  priority?: unknown;
  /** 1–255 printable ASCII characters, scoped to the requester. */
  idempotencyKey?: unknown;
}

export interface Requester {
  /** null: nobody in particular (a host program); such jobs are visible to admins only. */
  username: string | null;
  isAdmin: boolean;
}

/** What models/enqueue.ts inserts (its NewJob). */
export interface CheckedJob {
  task: string;
  params: Params;
  command: string;
  createdBy: string | null;
  priority: number;
  runAt: Date | null;
  delayMs: number | null;
  group: { key: string; blockOnFailure: boolean } | null;
  idempotencyKey: string | null;
  maxAttempts: number;
}

export const MAX_DELAY_SEC = 31_622_400;
const MAX_AHEAD_MS = 366 * 86_400_000;
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const IDEMPOTENCY_KEY = /^[\x20-\x7e]{1,255}$/;
const MAX_GROUP_KEY = 255;

const invalid = (field: string, message: string) => new JobRequestError(400, 'invalid_field', message, field);

export function checkIdempotencyKey(raw: unknown): string | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== 'string' || !IDEMPOTENCY_KEY.test(raw)) {
    throw new JobRequestError(
      400,
      'invalid_idempotency_key',
      'an idempotency key is 1-255 printable ASCII characters',
      'idempotencyKey',
    );
  }
  return raw;
}

/** A calendar date and a time of day that exist (Date would roll February 30th over to March). */
function realTime(text: string): boolean {
  const [, y, mo, d, h, mi, sec] = /^(\d{4})-(\d{2})-(\d{2}).(\d{2}):(\d{2}):(\d{2})/.exec(text)!.map(Number);
  const daysInMonth = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  return mo >= 1 && mo <= 12 && d >= 1 && d <= daysInMonth && h < 24 && mi < 60 && sec < 60;
}

function checkRunAt(raw: unknown, now: number): Date | null {
  if (raw === undefined || raw === null) return null;
  const at = typeof raw === 'string' && RFC3339.test(raw) && realTime(raw) ? new Date(raw) : null;
  if (!at || Number.isNaN(at.getTime())) {
    throw invalid('runAt', '"runAt" must be an RFC 3339 time with an offset, e.g. 2026-12-24T18:00:00+01:00');
  }
  if (at.getTime() - now > MAX_AHEAD_MS) throw invalid('runAt', '"runAt" may be at most 366 days ahead');
  return at.getTime() > now ? at : null;
}

function checkInteger(raw: unknown, field: string, min: number, max: number): number | null {
  if (raw === undefined || raw === null) return null;
  if (!Number.isSafeInteger(raw) || (raw as number) < min || (raw as number) > max) {
    throw invalid(field, `"${field}" must be a whole number from ${min} to ${max}`);
  }
  return raw as number;
}

/** Checks a request against the catalog and the requester's rights; throws JobRequestError. */
export function checkJobRequest(
  catalog: TaskCatalog,
  requester: Requester,
  request: JobRequest,
  now = Date.now(),
): CheckedJob {
  if (typeof request.task !== 'string' || request.task === '') {
    throw invalid('task', '"task" must be the name of a task');
  }
  const task = catalog.get(request.task);
  if (!task) throw new JobRequestError(400, 'unknown_task', `unknown task ${JSON.stringify(request.task)}`, 'task');
  if (task.adminOnly && !requester.isAdmin) {
    throw new JobRequestError(403, 'admin_only', `task ${JSON.stringify(task.name)} may only be run by admins`);
  }
  let prepared;
  try {
    prepared = prepareJob(task, request.params ?? {});
  } catch (err) {
    if (err instanceof ParamsError)
      throw new JobRequestError(400, 'invalid_params', err.message, err.field ?? 'params');
    throw err;
  }
  if (request.runAt !== undefined && request.delaySec !== undefined) {
    throw invalid('runAt', 'give "runAt" or "delaySec", not both');
  }
  const runAt = checkRunAt(request.runAt, now);
  const delaySec = checkInteger(request.delaySec, 'delaySec', 0, MAX_DELAY_SEC);
  const priority = checkInteger(request.priority, 'priority', -100, 100) ?? 0;
  if (priority > 0 && !requester.isAdmin) {
    throw new JobRequestError(403, 'admin_only', 'a positive priority is for admins', 'priority');
  }
  const groupKey = renderGroupKey(task, prepared.params);
  if (groupKey !== null && groupKey.length > MAX_GROUP_KEY) {
    throw new JobRequestError(400, 'invalid_params', `the group key would be over ${MAX_GROUP_KEY} characters`);
  }
  return {
    task: task.name,
    params: prepared.params,
    command: prepared.command,
    createdBy: requester.username,
    priority,
    runAt,
    delayMs: delaySec === null ? null : delaySec * 1000,
    group: groupKey === null ? null : { key: groupKey, blockOnFailure: task.groupOnFailure === 'block' },
    idempotencyKey: checkIdempotencyKey(request.idempotencyKey),
    maxAttempts: task.retry?.maxAttempts ?? 1,
  };
}
