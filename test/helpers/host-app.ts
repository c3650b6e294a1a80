// A host app laid out as the container-creator's (SPEC §14): express-session with `user` and
// `isAdmin` in the session, its API under /api/v1 with `{data: …}` bodies, its own API keys as
// `Authorization: Bearer`, and our jobs router mounted at /api/v1/jobs behind its own auth check.
import express, { type NextFunction, type Request, type Response } from 'express';
import session from 'express-session';
import type { Database } from '../../models/database';
import type { Queue } from '../../models/queue';
import { createJobsRouter, createLogger, silentLogger, type HostPrincipal } from '../../routers';
import type { TaskCatalog } from '../../tasks/catalog';

export interface HostApp {
  app: express.Express;
  /** An API key of the host's own (its table, not ours) for `user`. */
  addApiKey(key: string, user: string, isAdmin?: boolean): void;
  /** Deletes one: requests with it are 401, and a stream opened with it ends at its next re-check. */
  revokeApiKey(key: string): void;
}

export interface HostAppDeps {
  db: Database;
  queue: Queue;
  catalog: TaskCatalog;
  streamPollMs?: number;
  streamRecheckMs?: number;
  /**
   * Mounted without `authenticate`: the router trusts `req.session.user`/`isAdmin` as the host's
   * login set them (hostSessions), and the host's API keys do not reach it.
   */
  sessionsOnly?: boolean;
}

export function containerCreatorApp(deps: HostAppDeps): HostApp {
  const apiKeys = new Map<string, HostPrincipal>();
  const app = express();
  const keyOf = (req: Request) => /^Bearer (.+)$/.exec(req.get('Authorization') ?? '')?.[1];
  // The host's sessions (its own store in production; memory here). The keys its login sets.
  app.use(session({ secret: 'host-app-secret', resave: false, saveUninitialized: false }));

  /** Like the host's own check: its session, else one of its API keys; 401 in its error shape. */
  function hostAuth(req: Request, res: Response, next: NextFunction): void {
    if (req.session.user) return next();
    const key = keyOf(req);
    if (key !== undefined && apiKeys.has(key)) return next();
    res.status(401).json({ error: { code: 'unauthorized', message: 'Authentication required' } });
  }

  const api = express.Router();
  // A stand-in for the host's login (which checks a password): it sets the session keys its routers read.
  api.post('/auth/login', express.json(), (req, res) => {
    const { username, isAdmin } = req.body as { username: string; isAdmin?: boolean };
    req.session.user = username;
    req.session.isAdmin = isAdmin === true;
    res.json({ data: { user: username, isAdmin: req.session.isAdmin } });
  });
  api.use(
    '/jobs',
    hostAuth,
    createJobsRouter({
      db: deps.db,
      queue: deps.queue,
      catalog: deps.catalog,
      log: process.env.HOST_APP_LOG ? createLogger() : silentLogger,
      streamPollMs: deps.streamPollMs ?? 50,
      streamRecheckMs: deps.streamRecheckMs,
      envelope: true,
      streamEvents: 'log',
      // Who the host's auth says is asking: its API key (looked up again at each call), else its session.
      authenticate: deps.sessionsOnly
        ? undefined
        : (req) => {
            const key = keyOf(req);
            if (key !== undefined) return apiKeys.get(key) ?? null;
            return req.session?.user ? { username: req.session.user, isAdmin: req.session.isAdmin === true } : null;
          },
    }),
  );
  app.use('/api/v1', api);
  return {
    app,
    addApiKey: (key, user, isAdmin = false) => apiKeys.set(key, { username: user, isAdmin, via: 'token' }),
    revokeApiKey: (key) => apiKeys.delete(key),
  };
}
