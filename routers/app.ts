// createApp(deps): the standalone API (what supertest imports); server.ts and `start` only listen.
import express, { type Express, type RequestHandler } from 'express';
import helmet from 'helmet';
import { ConfigError, type Config } from '../config';
import { createLogger, type Logger } from '../log';
import type { Database } from '../models/database';
import type { Queue } from '../models/queue';
import type { TaskCatalog } from '../tasks/catalog';
import { errorHandler, notFound } from './errors';
import { createGroupsRouter } from './groups';
import { createRunnersRouter } from './runners';
import { createSchedulesRouter } from './schedules';
import { createJobsRouter, createTasksRouter } from './jobs';
import { createLoginRouter, type LoginLimits } from './login';
import { createMetricsRouter } from './metrics';
import { resolveSessionSecret, sessionMiddleware } from './sessions';
import type { StreamSlots } from './stream-slots';
import { createUiRouter } from './ui';

export interface AppDeps {
  db: Database;
  queue: Queue;
  catalog: TaskCatalog;
  config: Config;
  /** Resolved by the entry (resolveSessionSecret) so a missing secret stops it early; resolved here otherwise. */
  sessionSecret?: string;
  log?: Logger;
  loginLimits?: Partial<LoginLimits>;
  streamPollMs?: number;
  streamKeepAliveMs?: number;
  streamRecheckMs?: number;
  /** Open streams, counted per user (made from JOB_STREAMS_PER_USER when absent). */
  streamSlots?: StreamSlots;
  /** Aborted at shutdown to end open event streams. */
  shutdown?: AbortSignal;
}

const HEALTH_TIMEOUT_MS = 5000;

/** TRUST_PROXY as Express takes it: true/false, a hop count, or addresses/subnets/names (loopback, uniquelocal…). */
function parseTrustProxy(raw: string | undefined): boolean | number | string {
  if (raw === undefined) return false;
  const value = raw.trim();
  if (/^(true|false)$/i.test(value)) return value.toLowerCase() === 'true';
  if (/^\d+$/.test(value)) return Number(value);
  return value;
}

/**
 * Security headers by helmet (its defaults, tightened where this app needs nothing: no frames at all,
 * no inline styles, no referrer), and no caching of API answers. HSTS only when cookies are TLS-only:
 * then the site is served over HTTPS.
 */
function securityHeaders(hsts: boolean): RequestHandler[] {
  return [
    helmet({
      contentSecurityPolicy: {
        useDefaults: false,
        directives: {
          defaultSrc: ["'self'"],
          baseUri: ["'none'"],
          formAction: ["'self'"],
          frameAncestors: ["'none'"],
          objectSrc: ["'none'"],
          scriptSrcAttr: ["'none'"],
        },
      },
      frameguard: { action: 'deny' },
      referrerPolicy: { policy: 'no-referrer' },
      strictTransportSecurity: hsts ? { maxAge: 31_536_000, includeSubDomains: false } : false,
    }),
    (_req, res, next) => {
      res.set('Cache-Control', 'no-store');
      next();
    },
  ];
}

function health(db: Database): RequestHandler {
  return async (_req, res) => {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        db.sequelize.query('SELECT 1'),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('timed out')), HEALTH_TIMEOUT_MS);
        }),
      ]);
      res.json({ status: 'ok' });
    } catch {
      res.status(503).json({ error: { code: 'database_unavailable', message: 'the database does not answer' } });
    } finally {
      clearTimeout(timer);
    }
  };
}

export function createApp(deps: AppDeps): Express {
  const log = deps.log ?? createLogger();
  const { http } = deps.config;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  try {
    app.set('trust proxy', parseTrustProxy(http.trustProxy));
  } catch (err) {
    throw new ConfigError(`TRUST_PROXY=${JSON.stringify(http.trustProxy)} is not valid: ${(err as Error).message}`);
  }
  app.use(...securityHeaders(http.cookieSecure));
  // Before sessions: a health check never reads the session store.
  app.get('/health', health(deps.db));
  app.use(
    sessionMiddleware(deps.db, {
      secret: deps.sessionSecret ?? resolveSessionSecret(deps.config),
      cookieSecure: http.cookieSecure,
    }),
  );
  app.use(createLoginRouter(deps));
  app.use('/tasks', createTasksRouter(deps));
  app.use('/jobs', createJobsRouter({ ...deps, log, streamsPerUser: http.streamsPerUser, hostSessions: false }));
  app.use('/groups', createGroupsRouter(deps));
  app.use('/schedules', createSchedulesRouter(deps));
  app.use('/runners', createRunnersRouter(deps));
  app.use('/metrics', createMetricsRouter({ db: deps.db, metricsToken: http.metricsToken }));
  app.use(createUiRouter());
  app.use(notFound);
  app.use(errorHandler(log));
  return app;
}
