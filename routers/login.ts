// The standalone login layer: POST /login, POST /logout, GET /me.
import { Router, type Request, type RequestHandler } from 'express';
import type { Database } from '../models/database';
import { LoginThrottle, type LoginLimits } from '../models/login-throttle';
import { SemaphoreFullError } from '../models/semaphore';
import { verifyLogin } from '../models/users';
import { authenticate, bodyFields, hasSessionUser, jsonBody, principalOf, writeGuard } from './auth';
import { HttpError } from './errors';
import { SESSION_COOKIE } from './sessions';

export type { LoginLimits } from '../models/login-throttle';

/** When the password-hashing line is full (a flood of logins): come back in a second. */
const BUSY_RETRY_AFTER_SEC = 1;

function regenerate(req: Request): Promise<void> {
  return new Promise((resolve, reject) => req.session.regenerate((err) => (err ? reject(err) : resolve())));
}

function save(req: Request): Promise<void> {
  return new Promise((resolve, reject) => req.session.save((err) => (err ? reject(err) : resolve())));
}

function destroy(req: Request): Promise<void> {
  return new Promise((resolve, reject) => req.session.destroy((err) => (err ? reject(err) : resolve())));
}

function rateLimited(seconds: number, message: string): HttpError {
  return new HttpError(429, 'rate_limited', message, { headers: { 'Retry-After': String(seconds) } });
}

export function createLoginRouter(deps: { db: Database; loginLimits?: Partial<LoginLimits> }): Router {
  const throttle = new LoginThrottle(deps.db, deps.loginLimits);
  const router = Router();

  router.post('/login', writeGuard({ bodyRequired: true }), jsonBody, async (req, res) => {
    const body = bodyFields(req.body, ['username', 'password']);
    const { username, password } = body;
    if (typeof username !== 'string' || username === '' || username.length > 100) {
      throw new HttpError(400, 'invalid_field', '"username" must be a non-empty string', { field: 'username' });
    }
    if (typeof password !== 'string' || password === '') {
      throw new HttpError(400, 'invalid_field', '"password" must be a non-empty string', { field: 'password' });
    }
    const { attempt, retryAfter } = await throttle.reserve(username, req.ip ?? 'unknown');
    if (!attempt) throw rateLimited(retryAfter, `too many failed logins; try again in ${retryAfter} s`);
    let user;
    try {
      user = await verifyLogin(deps.db, username, password);
    } catch (err) {
      if (!(err instanceof SemaphoreFullError)) throw err;
      // Not this user's failure: too many logins are being checked at once.
      await throttle.succeeded(attempt);
      throw rateLimited(BUSY_RETRY_AFTER_SEC, 'too many logins at once; try again in a second');
    }
    if (!user) throw new HttpError(401, 'invalid_credentials', 'wrong username or password');
    await throttle.succeeded(attempt);
    // A new session id at login: a session id planted before login is worth nothing after it.
    await regenerate(req);
    // Only who it is: the rights are read from Users on every request.
    req.session.userId = user.id;
    req.session.user = user.username;
    await save(req);
    res.json({ username: user.username, isAdmin: user.isAdmin });
  });

  const requireSession: RequestHandler = (req, _res, next) => {
    if (!hasSessionUser(req)) throw new HttpError(401, 'unauthenticated', 'not logged in');
    next();
  };

  router.post('/logout', requireSession, writeGuard({ bodyRequired: false }), jsonBody, async (req, res) => {
    await destroy(req);
    res.clearCookie(SESSION_COOKIE, { path: '/', httpOnly: true, sameSite: 'lax' });
    res.status(204).end();
  });

  router.get('/me', authenticate(deps.db), (req, res) => {
    const { username, isAdmin } = principalOf(req);
    res.json({ username, isAdmin });
  });

  return router;
}
