// Who is asking (session cookie or bearer token), and the guards every write passes: 415, then CSRF.
import express, { type Request, type RequestHandler, type Response } from 'express';
import type { Database } from '../models/database';
import { authenticateApiToken, userById, type AuthenticatedUser } from '../models/users';
import { HttpError } from './errors';
import { hostPrincipal, type HostAuthenticate } from './host';
import { SESSION_USER, type SessionUserRow } from './sessions';

declare module 'express-session' {
  interface SessionData {
    /** Users.id, set by our login: the user (and their rights) is read from Users on every request. */
    userId?: number;
    /** The username: shown only, with our login; the container-creator's own login sets it (hostSessions). */
    user?: string;
    /** Set by the container-creator's login only (hostSessions); ours never keeps rights in a session. */
    isAdmin?: boolean;
  }
}

export interface AuthOptions {
  /**
   * The host app's login owns the session (the router mounted in the container-creator): take
   * `req.session.user` and `req.session.isAdmin` as it set them. Without it, only our login's
   * sessions count, and the user is re-read from Users on every request.
   */
  hostSessions?: boolean;
  /**
   * Authentication left to the host app entirely: the principal it resolved (from its session or
   * its own API keys). Our tokens and sessions are then not consulted at all.
   */
  hostAuthenticate?: HostAuthenticate;
}

export interface Principal extends AuthenticatedUser {
  via: 'session' | 'token';
}

/** Kept beside the request rather than on it, so a host app's own `req.user` is never touched. */
const principals = new WeakMap<Request, Principal>();

const BODY_LIMIT = '64kb';

/** JSON bodies up to 64 KiB; mounted per route, after the guards, so the order of checks holds. */
export const jsonBody = express.json({ limit: BODY_LIMIT, strict: true });

export function bearerToken(req: Request): string | null {
  const header = req.headers.authorization;
  if (header === undefined) return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match ? match[1] : null;
}

/** Whether the request carries a logged-in session (ours, or the host's), before the user is checked. */
export function hasSessionUser(req: Request, options: AuthOptions = {}): boolean {
  const session = req.session;
  if (!session) return false;
  if (typeof session.userId === 'number') return true;
  return options.hostSessions === true && typeof session.user === 'string' && session.user !== '';
}

function destroySession(req: Request): Promise<void> {
  return new Promise((resolve, reject) => req.session.destroy((err) => (err ? reject(err) : resolve())));
}

/** The session's user as Users has it now (a deleted user's session is ended), or the host's user. */
async function sessionPrincipal(db: Database, req: Request, options: AuthOptions): Promise<AuthenticatedUser | null> {
  const session = req.session;
  if (!session) return null;
  if (typeof session.userId === 'number') {
    // Read with the session (routers/sessions.ts) when the store is ours; else read now.
    const joined = (session as { [SESSION_USER]?: SessionUserRow | null })[SESSION_USER];
    const user =
      joined !== undefined && (joined === null || joined.id === session.userId)
        ? joined
        : await userById(db, session.userId);
    if (user) return { username: user.username, isAdmin: user.isAdmin };
    await destroySession(req);
    return null;
  }
  if (options.hostSessions === true && typeof session.user === 'string' && session.user !== '') {
    return { username: session.user, isAdmin: session.isAdmin === true };
  }
  return null;
}

/** Resolves the principal from a bearer token or the session; 401 when there is none. */
export function authenticate(db: Database, options: AuthOptions = {}): RequestHandler {
  return async (req, _res, next) => {
    if (options.hostAuthenticate) {
      const principal = await hostPrincipal(options.hostAuthenticate, req);
      if (!principal) throw new HttpError(401, 'unauthenticated', 'authentication required');
      principals.set(req, principal);
      return next();
    }
    const token = bearerToken(req);
    if (token !== null) {
      const user = await authenticateApiToken(db, token);
      if (!user) throw new HttpError(401, 'invalid_token', 'the bearer token is unknown, revoked or expired');
      principals.set(req, { ...user, via: 'token' });
      return next();
    }
    const user = await sessionPrincipal(db, req, options);
    if (!user) throw new HttpError(401, 'unauthenticated', 'log in first (POST /login) or send a bearer token');
    principals.set(req, { ...user, via: 'session' });
    next();
  };
}

export function principalOf(req: Request): Principal {
  const principal = principals.get(req);
  if (!principal) throw new HttpError(401, 'unauthenticated', 'log in first');
  return principal;
}

function isJson(req: Request): boolean {
  const type = req.headers['content-type'];
  return type !== undefined && type.split(';')[0].trim().toLowerCase() === 'application/json';
}

function hasBody(req: Request): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * Same-origin check for cookie-authenticated writes: the browser's `Sec-Fetch-Site` when it sent
 * one, else `Origin` against the request's host (X-Forwarded-Host only under trust proxy).
 * A request with neither is refused: every browser that sends cookies sends one of them.
 */
function isSameOrigin(req: Request): boolean {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined) return site === 'same-origin';
  const origin = req.headers.origin;
  if (origin === undefined || origin === 'null' || req.host === undefined) return false;
  try {
    const from = new URL(origin);
    // The request's host as a URL of the Origin's scheme, so a default port written out still matches.
    const to = new URL(`${from.protocol}//${req.host}`);
    return from.host === to.host;
  } catch {
    return false;
  }
}

/**
 * The guards of a write, in the contract's order after authentication: content type (415),
 * then CSRF origin (403). Bearer requests are exempt from the origin check; they need the JSON
 * content type only when a body is required or sent.
 */
export function writeGuard(options: { bodyRequired: boolean }): RequestHandler {
  return (req, _res, next) => {
    const viaToken = principals.get(req)?.via === 'token';
    const needsJson = !viaToken || options.bodyRequired || hasBody(req);
    if (needsJson && !isJson(req)) {
      throw new HttpError(415, 'unsupported_media_type', 'Content-Type must be application/json');
    }
    if (!viaToken && !isSameOrigin(req)) {
      throw new HttpError(403, 'forbidden_origin', 'cross-origin request refused (Origin or Sec-Fetch-Site)');
    }
    next();
  };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The parsed body as an object with only `allowed` keys (400 invalid_body / unexpected_field). */
export function bodyFields(body: unknown, allowed: string[], optional = false): Record<string, unknown> {
  if (body === undefined && optional) return {};
  if (!isPlainObject(body)) throw new HttpError(400, 'invalid_body', 'the request body must be a JSON object');
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key)) {
      throw new HttpError(400, 'unexpected_field', `unexpected field ${JSON.stringify(key)}`, { field: key });
    }
  }
  return body;
}

/** Middleware: admins only, others 403 `admin_only` with `message`. */
export function adminsOnly(message: string) {
  return (req: Request, _res: Response, next: (err?: unknown) => void): void => {
    if (!principalOf(req).isAdmin) return next(new HttpError(403, 'admin_only', message));
    next();
  };
}
