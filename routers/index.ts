// The package's entry for the container-creator: mount createJobsRouter(deps) at /jobs in its app.
export { createApp, type AppDeps } from './app';
export { createJobsRouter, createTasksRouter, type JobsRouterDeps } from './jobs';
export { HttpError } from './errors';
export type { HostAuthenticate, HostPrincipal } from './host';
export type { StreamEvents } from './stream';
export { createLogger, silentLogger, type Logger, type LogLevel } from '../log';
export { resolveSessionSecret } from './sessions';
