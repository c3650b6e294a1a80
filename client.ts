// Enqueueing from another Node program with its own Sequelize instance, inside its transaction when
// it gives one (README, "Enqueue from your own code"): validated exactly as POST /jobs.
import type { Sequelize, Transaction } from 'sequelize';
import type { Dialect } from './models/database';
import { driverFor } from './models/drivers';
import {
  IdempotencyConflictError,
  insertAlone,
  insertJobs,
  insertsAlone,
  type Enqueued,
  type EnqueueTarget,
} from './models/enqueue';
import { Nudger, nudgeForJobs } from './models/nudge';
import { storageOf } from './models/queue';
import { writeGateFor } from './models/write-gate';
import { TaskCatalog } from './tasks/catalog';
import { checkJobRequest, JobRequestError, type JobRequest } from './tasks/job-request';

export interface JobClientOptions {
  /** The host's own Sequelize instance (MySQL/MariaDB or SQLite), on the database the runners poll. */
  sequelize: Sequelize;
  /** The task file the runners use … */
  tasksFile?: string;
  /** … or a catalog already loaded. */
  catalog?: TaskCatalog;
}

export interface ClientJobRequest extends JobRequest {
  /** The owner (who may read and cancel it through the API); null: admins only. */
  createdBy?: string | null;
  /** Whether the owner may run admin-only tasks and give a positive priority (default false). */
  isAdmin?: boolean;
}

/** Bad input or a conflicting idempotency key: the API's `code`, `field` and HTTP status. */
export class EnqueueError extends Error {
  override name = 'EnqueueError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

export interface JobClient {
  enqueue(request: ClientJobRequest, options?: { transaction?: Transaction }): Promise<Enqueued>;
  /** Many jobs in one multi-row INSERT; all or none are checked before anything is written. */
  enqueueMany(requests: ClientJobRequest[], options?: { transaction?: Transaction }): Promise<Enqueued[]>;
}

export function createJobClient(options: JobClientOptions): JobClient {
  const catalog = options.catalog ?? new TaskCatalog(requireTasksFile(options.tasksFile));
  const target: EnqueueTarget = {
    sequelize: options.sequelize,
    driver: driverFor(options.sequelize.getDialect() as Dialect),
  };
  const gate = target.driver.capabilities.serialWrites ? writeGateFor(storageOf(target)) : null;
  // Idle runners hear of a job due now at once (README, "Waking up"), once it is committed
  // (PostgreSQL: by the enqueue's own NOTIFY).
  const nudger = target.driver.dueNotice ? null : new Nudger(target);
  const enqueueMany = async (requests: ClientJobRequest[], { transaction }: { transaction?: Transaction } = {}) => {
    const jobs = requests.map((request) => {
      try {
        const requester = { username: request.createdBy ?? null, isAdmin: request.isAdmin ?? false };
        return checkJobRequest(catalog, requester, request);
      } catch (err) {
        if (err instanceof JobRequestError) throw new EnqueueError(err.status, err.code, err.message, err.field);
        throw err;
      }
    });
    try {
      const write = () =>
        insertsAlone(target, jobs)
          ? insertAlone(target, jobs)
          : options.sequelize.transaction((t) => insertJobs(target, jobs, t));
      const enqueued = transaction
        ? await insertJobs(target, jobs, transaction)
        : // SQLite takes one writer at a time: queue this process's own writes (models/write-gate.ts).
          await (gate ? gate.run(write) : write());
      if (nudger) nudgeForJobs(nudger, jobs, enqueued, transaction);
      return enqueued;
    } catch (err) {
      if (err instanceof IdempotencyConflictError) throw new EnqueueError(409, 'idempotency_conflict', err.message);
      throw err;
    }
  };
  return {
    enqueueMany,
    enqueue: async (request, opts) => (await enqueueMany([request], opts))[0],
  };
}

function requireTasksFile(file: string | undefined): string {
  if (!file) throw new Error('createJobClient needs tasksFile or catalog');
  return file;
}
