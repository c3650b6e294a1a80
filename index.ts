// The package's entry for other programs: the jobs router to mount in an Express app, and the
// client that enqueues from code, inside the host's own transaction.
export * from './routers/index';
export { createJobClient, EnqueueError, type ClientJobRequest, type JobClient, type JobClientOptions } from './client';
export type { Enqueued } from './models/enqueue';
