// Is the principal of a long-lived response still valid? Re-read from the database (and the session store).
import type { Request } from 'express';
import type { SessionData } from 'express-session';
import type { Database } from '../models/database';
import { hasOwnUsers } from '../models/migrate';
import { authenticateApiToken } from '../models/users';
import { bearerToken, type Principal } from './auth';
import type { Viewer } from './job-reads';

/** The viewer's rights as they stand now, or null when the session or token no longer stands. */
export type AccessCheck = () => Promise<Viewer | null>;

function storedSession(req: Request): Promise<SessionData | null> | null {
  const store = req.sessionStore;
  const sid = req.sessionID;
  if (!store || typeof sid !== 'string') return null;
  return new Promise((resolve, reject) =>
    store.get(sid, (err: unknown, data?: SessionData | null) => (err ? reject(err) : resolve(data ?? null))),
  );
}

async function userRow(db: Database, username: string): Promise<{ isAdmin: boolean } | null> {
  const row = await db.models.User.findOne({ attributes: ['isAdmin'], where: { username } });
  return row ? { isAdmin: Boolean(row.isAdmin) } : null;
}

/**
 * How to re-check `principal` later (an open stream does so every 15 s):
 * - a bearer token: its row, joined with its user's, must still be there and not expired;
 * - a session: the session store must still hold that session id for that user (logout and
 *   `user sessions --revoke` delete it; expiry counts), and the user's `Users` row must still exist.
 *   A user that has no row at the start (the container-creator's own login, when the router is
 *   mounted there) is checked by the session alone.
 * Admin rights come from the row when there is one, so losing them narrows what the stream may show.
 */
export async function accessCheck(db: Database, req: Request, principal: Principal): Promise<AccessCheck> {
  const { username } = principal;
  if (principal.via === 'token') {
    const token = bearerToken(req);
    return async () => {
      const user = token === null ? null : await authenticateApiToken(db, token);
      return user && user.username === username ? { username, isAdmin: user.isAdmin } : null;
    };
  }
  // Our login keeps the user's id in the session; the host's login (mounted router) its username.
  const userId = (req.session as { userId?: unknown } | undefined)?.userId;
  const sameUser = (data: SessionData): boolean =>
    typeof userId === 'number' ? (data as { userId?: unknown }).userId === userId : data.user === username;
  // A host's queue-only install has no Users of ours: its sessions are checked by the store alone.
  const hadRow = (await hasOwnUsers(db)) && (await userRow(db, username)) !== null;
  return async () => {
    const pending = storedSession(req);
    if (pending !== null) {
      const data = await pending;
      if (!data || !sameUser(data)) return null;
    }
    if (!hadRow) return { username, isAdmin: principal.isAdmin };
    const row = await userRow(db, username);
    return row ? { username, isAdmin: row.isAdmin } : null;
  };
}
