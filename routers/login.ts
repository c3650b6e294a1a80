// The standalone login layer: POST /login, POST /logout, GET /me.
import { Router, type Request, type RequestHandler } from 'express';
import type { Database } from '../models/database';
import { verifyCredentials } from '../models/users';
import { authenticate, bodyFields, jsonBody, principalOf, sessionUser, writeGuard } from './auth';
import { HttpError } from './errors';
import { AttemptLimiter, type LimitRule } from './rate-limit';
import { SESSION_COOKIE } from './sessions';

export interface LoginLimits {
  /** Failed logins per username (the contract: 10 per 15 minutes). */
  perUsername: LimitRule;
  /** Failed logins per client address, whatever the username. */
  perIp: LimitRule;
}

const DEFAULT_LOGIN_LIMITS: LoginLimits = {
  perUsername: { max: 10, windowMs: 15 * 60 * 1000 },
  perIp: { max: 100, windowMs: 15 * 60 * 1000 },
};

function regenerate(req: Request): Promise<void> {
  return new Promise((resolve, reject) => req.session.regenerate((err) => (err ? reject(err) : resolve())));
}

function save(req: Request): Promise<void> {
  return new Promise((resolve, reject) => req.session.save((err) => (err ? reject(err) : resolve())));
}

function destroy(req: Request): Promise<void> {
  return new Promise((resolve, reject) => req.session.destroy((err) => (err ? reject(err) : resolve())));
}

export function createLoginRouter(deps: { db: Database; loginLimits?: Partial<LoginLimits> }): Router {
  const limits = { ...DEFAULT_LOGIN_LIMITS, ...deps.loginLimits };
  const byUsername = new AttemptLimiter(limits.perUsername);
  const byIp = new AttemptLimiter(limits.perIp);
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
    const userKey = username.toLowerCase();
    const ipKey = req.ip ?? 'unknown';
    const wait = Math.max(byUsername.retryAfter(userKey), byIp.retryAfter(ipKey));
    if (wait > 0) {
      throw new HttpError(429, 'rate_limited', `too many failed logins; try again in ${wait} s`, {
        headers: { 'Retry-After': String(wait) },
      });
    }
    byUsername.hit(userKey);
    byIp.hit(ipKey);
    const user = await verifyCredentials(deps.db, username, password);
    if (!user) throw new HttpError(401, 'invalid_credentials', 'wrong username or password');
    byUsername.reset(userKey);
    byIp.forgive(ipKey);
    // A new session id at login: a session id planted before login is worth nothing after it.
    await regenerate(req);
    req.session.user = user.username;
    req.session.isAdmin = user.isAdmin;
    await save(req);
    res.json({ username: user.username, isAdmin: user.isAdmin });
  });

  const requireSession: RequestHandler = (req, _res, next) => {
    if (!sessionUser(req)) throw new HttpError(401, 'unauthenticated', 'not logged in');
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
