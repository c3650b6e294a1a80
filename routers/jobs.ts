// The jobs router (mountable in the container-creator's app) and the task list.
import { setMaxListeners } from 'node:events';
import { Router, type Request } from 'express';
import { createLogger, type Logger } from '../log';
import type { Database } from '../models/database';
import { FINISHED_STATUSES, JOB_STATUSES, type JobStatusName } from '../models/models';
import { IdempotencyConflictError, QuotaExceededError } from '../models/enqueue';
import type { Queue } from '../models/queue';
import type { TaskCatalog, TaskTemplate } from '../tasks/catalog';
import { checkJobRequest, JobRequestError } from '../tasks/job-request';
import { authenticate, bodyFields, jsonBody, principalOf, writeGuard, type Principal } from './auth';
import { errorHandler, HttpError, notFound } from './errors';
import {
  countOutputLines,
  countVisibleJobs,
  findVisibleJob,
  jobJson,
  listVisibleJobs,
  type JobListQuery,
} from './job-reads';
import { sendOutputJson } from './output-response';
import { sendOutputText } from './output-text';
import { pathId, queryInt, queryString, resumeAfter } from './params';
import { envelopeBodies, hostAccessCheck, type HostAuthenticate } from './host';
import { streamJob, type StreamEvents } from './stream';
import { accessCheck } from './stream-access';
import { DEFAULT_STREAMS_PER_USER, StreamSlots } from './stream-slots';

export interface JobsRouterDeps {
  db: Database;
  queue: Queue;
  catalog: TaskCatalog;
  log?: Logger;
  /** How often an open /stream polls the database (default 300 ms). */
  streamPollMs?: number;
  streamKeepAliveMs?: number;
  /** How often an open /stream re-checks its session or token (default 15 s). */
  streamRecheckMs?: number;
  /** Open /streams per user (JOB_STREAMS_PER_USER, default 8); ignored when `streamSlots` is given. */
  streamsPerUser?: number;
  /** The open streams of this process (made from `streamsPerUser` when absent; tests read its counters). */
  streamSlots?: StreamSlots;
  /** Aborted at shutdown to end open streams. */
  shutdown?: AbortSignal;
  /**
   * Trust the host's login: `req.session.user` and `isAdmin` as the container-creator sets them
   * (see AuthOptions). Default true, as mounted in a host; our own app passes false, so only its
   * login's sessions count and the user is re-read from Users on every request.
   */
  hostSessions?: boolean;
  /**
   * Authentication left to the host app (SPEC §14): the principal it resolved for a request, from its
   * session or its own API keys; null is 401. Our tokens and sessions are then not consulted at all.
   */
  authenticate?: HostAuthenticate;
  /** Success bodies as `{data: …}` (the container-creator's /api/v1 convention); errors keep `{error}`. */
  envelope?: boolean;
  /** The SSE events of /:id/stream: 'output' (default) or the container-creator page's 'log' (see StreamEvents). */
  streamEvents?: StreamEvents;
}

const LIST_LIMIT = { fallback: 50, cap: 500 };
const OUTPUT_LIMIT = { fallback: 1000, cap: 1000 };

function notFoundJob(id: number): HttpError {
  return new HttpError(404, 'not_found', `no job ${id}`);
}

/** Longest `task=` (the column's size) and `q=` accepted. */
const MAX_TASK_NAME = 100;
const MAX_SEARCH = 100;

/** A yes/no query parameter: `true`/`1` or `false`/`0`, absent is no; 400 invalid_query otherwise. */
function queryFlag(req: Request, name: string): boolean {
  const raw = queryString(req, name);
  if (raw === undefined || raw === 'false' || raw === '0') return false;
  if (raw === 'true' || raw === '1') return true;
  throw new HttpError(400, 'invalid_query', `"${name}" must be true or false`);
}

/** GET /jobs's filter: status, createdBy, task, q (a search), each checked; 400 invalid_query. */
function listFilter(req: Request): Omit<JobListQuery, 'limit' | 'offset'> {
  const status = queryString(req, 'status');
  if (status !== undefined && !JOB_STATUSES.includes(status as JobStatusName)) {
    throw new HttpError(400, 'invalid_query', `"status" must be one of ${JOB_STATUSES.join(', ')}`);
  }
  const task = queryString(req, 'task');
  if (task !== undefined && (task === '' || task.length > MAX_TASK_NAME)) {
    throw new HttpError(400, 'invalid_query', `"task" must be a task name of 1 to ${MAX_TASK_NAME} characters`);
  }
  const search = queryString(req, 'q')?.trim();
  if (search !== undefined && (search === '' || search.length > MAX_SEARCH)) {
    throw new HttpError(
      400,
      'invalid_query',
      `"q" must be 1 to ${MAX_SEARCH} characters (a job id, or part of a task or owner name)`,
    );
  }
  return { status: status as JobStatusName | undefined, createdBy: queryString(req, 'createdBy'), task, search };
}

function mayRun(principal: Principal, task: TaskTemplate): boolean {
  return principal.isAdmin || !task.adminOnly;
}

/** A request's check, its JobRequestError as the API's error. */
function checked<T>(check: () => T): T {
  try {
    return check();
  } catch (err) {
    if (!(err instanceof JobRequestError)) throw err;
    throw new HttpError(err.status, err.code, err.message, { field: err.field });
  }
}

/**
 * /jobs routes. In the container-creator's app, `req.session.user` and `req.session.isAdmin`
 * come from its own login; a bearer token works too. Errors are this API's JSON either way.
 */
export function createJobsRouter(deps: JobsRouterDeps): Router {
  const { db, queue, catalog } = deps;
  const log = deps.log ?? createLogger();
  const streamSlots = deps.streamSlots ?? new StreamSlots(deps.streamsPerUser ?? DEFAULT_STREAMS_PER_USER);
  // Every open stream listens for shutdown: as many listeners as streams is expected, not a leak.
  if (deps.shutdown) setMaxListeners(0, deps.shutdown);
  const router = Router();
  if (deps.envelope) router.use(envelopeBodies);
  router.use(authenticate(db, { hostSessions: deps.hostSessions ?? true, hostAuthenticate: deps.authenticate }));

  router.post('/', writeGuard({ bodyRequired: true }), jsonBody, async (req, res) => {
    const principal = principalOf(req);
    const body = bodyFields(req.body, ['task', 'params', 'runAt', 'delaySec', 'priority']);
    const job = checked(() =>
      checkJobRequest(catalog, principal, { ...body, task: body.task, idempotencyKey: req.get('Idempotency-Key') }),
    );
    let enqueued;
    try {
      enqueued = await queue.enqueue(job);
    } catch (err) {
      if (err instanceof QuotaExceededError) throw new HttpError(429, 'quota_exceeded', err.message);
      if (!(err instanceof IdempotencyConflictError)) throw err;
      throw new HttpError(409, 'idempotency_conflict', err.message);
    }
    if (enqueued.replayed) res.status(200).set('Idempotent-Replayed', 'true');
    else res.status(201);
    res.location(`${req.baseUrl}/${enqueued.id}`).json({ id: enqueued.id, status: enqueued.status });
  });

  router.get('/', async (req, res) => {
    const principal = principalOf(req);
    const filter = listFilter(req);
    const limit = queryInt(req, 'limit', LIST_LIMIT.fallback, { min: 1, cap: LIST_LIMIT.cap });
    const offset = queryInt(req, 'offset', 0);
    const withCounts = queryFlag(req, 'counts');
    const jobs = await listVisibleJobs(db, principal, { ...filter, limit, offset });
    if (!withCounts) {
      res.json({ jobs: jobs.map(jobJson), limit, offset });
      return;
    }
    // Counts by status of the same filter without its status, so each status says what picking it gives.
    const { status: _status, ...rest } = filter;
    const counts = await countVisibleJobs(db, principal, rest);
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    res.json({ jobs: jobs.map(jobJson), limit, offset, counts, total });
  });

  router.get('/:id', async (req, res) => {
    const id = pathId(req);
    const job = await findVisibleJob(db, principalOf(req), id);
    if (!job) throw notFoundJob(id);
    // Only here, not in the list: the job page sizes its output view from it before reading any row.
    const waiting = job.status === 'pending' ? await queue.waitingReason(id) : null;
    res.json({ ...jobJson(job), waiting, outputLines: await countOutputLines(db, id) });
  });

  router.get('/:id/status', async (req, res) => {
    const id = pathId(req);
    const limit = queryInt(req, 'limit', OUTPUT_LIMIT.fallback, { min: 1, cap: OUTPUT_LIMIT.cap });
    const offset = queryInt(req, 'offset', 0);
    const afterId = queryInt(req, 'afterId', undefined);
    if (!(await findVisibleJob(db, principalOf(req), id))) throw notFoundJob(id);
    await sendOutputJson(db, id, { afterId, limit, offset }, res, log, deps.envelope);
  });

  router.get('/:id/log.txt', async (req, res) => {
    const id = pathId(req);
    const timestamps = queryFlag(req, 'timestamps');
    if (!(await findVisibleJob(db, principalOf(req), id))) throw notFoundJob(id);
    await sendOutputText(db, id, { timestamps }, res, log);
  });

  router.get('/:id/stream', async (req, res) => {
    const id = pathId(req);
    const afterId = resumeAfter(req);
    const principal = principalOf(req);
    if (!(await findVisibleJob(db, principal, id))) throw notFoundJob(id);
    const slot = streamSlots.tryOpen(principal.username, id);
    if (!slot) {
      throw new HttpError(
        429,
        'too_many_streams',
        `${streamSlots.perUser} streams are open for ${principal.username} already; close one first`,
      );
    }
    // Freed the moment the client leaves, not when the loop next notices.
    res.once('close', () => streamSlots.release(slot));
    try {
      await streamJob(db, principal, id, afterId, req, res, {
        pollMs: deps.streamPollMs ?? 300,
        keepAliveMs: deps.streamKeepAliveMs ?? 15_000,
        recheckMs: deps.streamRecheckMs ?? 15_000,
        check: deps.authenticate
          ? hostAccessCheck(deps.authenticate, req, principal)
          : await accessCheck(db, req, principal),
        events: deps.streamEvents,
        stats: slot,
        shutdown: deps.shutdown,
        log,
      });
    } finally {
      streamSlots.release(slot);
    }
  });

  router.post('/:id/cancel', writeGuard({ bodyRequired: false }), jsonBody, async (req, res) => {
    const id = pathId(req);
    bodyFields(req.body, [], true);
    const principal = principalOf(req);
    const result = await queue.cancelJob(
      id,
      principal.username,
      principal.isAdmin ? {} : { owner: principal.username },
    );
    switch (result.result) {
      case 'not_found':
        throw notFoundJob(id);
      case 'finished':
        throw new HttpError(409, 'already_finished', `job ${id} has already finished (${result.status})`);
      default:
        res.json({ id, status: result.status });
    }
  });

  router.post('/:id/retry', writeGuard({ bodyRequired: false }), jsonBody, async (req, res) => {
    const id = pathId(req);
    bodyFields(req.body, [], true);
    const principal = principalOf(req);
    const result = await queue.retryJob(
      id,
      principal.username,
      principal.isAdmin ? {} : { owner: principal.username },
      (job) => {
        // The requester must still be allowed to run it, as it stands in the task file now.
        const { task } = checked(() => checkJobRequest(catalog, principal, { task: job.task, params: job.params }));
        const template = catalog.get(task)!;
        return { blockOnFailure: template.groupOnFailure === 'block' };
      },
    );
    switch (result.result) {
      case 'not_found':
        throw notFoundJob(id);
      case 'not_retryable':
        throw new HttpError(
          409,
          'not_retryable',
          `job ${id} is ${result.status}; only a failed or cancelled job can be retried`,
        );
      default:
        res.json({ id, status: result.status, attempt: result.attempt });
    }
  });

  router.post('/:id/rerun', writeGuard({ bodyRequired: false }), jsonBody, async (req, res) => {
    const id = pathId(req);
    bodyFields(req.body, [], true);
    const principal = principalOf(req);
    const old = await findVisibleJob(db, principal, id);
    if (!old) throw notFoundJob(id);
    if (!FINISHED_STATUSES.includes(old.status)) {
      throw new HttpError(409, 'not_finished', `job ${id} is ${old.status}; only a finished job can be run again`);
    }
    const job = checked(() => checkJobRequest(catalog, principal, { task: old.task, params: old.params }));
    const enqueued = await queue.enqueue({ ...job, rerunOf: id });
    res
      .status(201)
      .location(`${req.baseUrl}/${enqueued.id}`)
      .json({ id: enqueued.id, status: enqueued.status, rerunOf: id });
  });

  router.use(notFound);
  router.use(errorHandler(log));
  return router;
}

/** GET /tasks: the tasks this user may run (admin-only ones for admins alone). */
export function createTasksRouter(deps: { db: Database; catalog: TaskCatalog }): Router {
  const router = Router();
  router.get('/', authenticate(deps.db), (req, res) => {
    const principal = principalOf(req);
    const tasks = [...deps.catalog.current().values()]
      .filter((task) => mayRun(principal, task))
      .map((task) => ({
        name: task.name,
        description: task.description,
        params: task.params,
        adminOnly: task.adminOnly,
      }));
    res.json(tasks);
  });
  return router;
}
