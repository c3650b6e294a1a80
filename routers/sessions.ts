// Sessions in the database (connect-session-sequelize on the migrated `Sessions` table), never in memory.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import connectSessionSequelize from 'connect-session-sequelize';
import session, { type SessionData } from 'express-session';
import type { RequestHandler } from 'express';
import { QueryTypes } from 'sequelize';
import { ConfigError, type Config } from '../config';
import type { Database } from '../models/database';
import { keyedReads, type Coalescer } from '../models/coalescer';
import { readTime } from '../models/sql';

export const SESSION_COOKIE = 'cj.sid';
/** Sessions end this long after login (absolute: activity does not extend them). */
const SESSION_MAX_AGE_MS = 24 * 60 * 60 * 1000;
const SECRET_MIN_LENGTH = 32;

const SequelizeStore = connectSessionSequelize(session.Store);

/** Sessions.lastSeenAt is written at most this often per session, so a request rarely writes. */
const LAST_SEEN_RESOLUTION_MS = 60_000;

// `table`: use our declared model instead of letting the store define (and sync) its own.
// `disableTouch` (in 7.x, missing from its typings): sessions end a fixed time after login, so no write per request.
// `extendDefaultFields`: the row says whose session it is, so a user's sessions can be ended together.
const STORE_OPTIONS = {
  table: 'Session',
  disableTouch: true,
  checkExpirationInterval: 15 * 60 * 1000,
  extendDefaultFields: (defaults: { data: string; expires: Date | null }, data: SessionData) => ({
    ...defaults,
    userId: typeof data.userId === 'number' ? data.userId : null,
    lastSeenAt: new Date(),
  }),
};

/**
 * The user a session belongs to as `Users` has it now, read with the session in one joined query:
 * null when the row is gone (deleted user). Set by the store's get() on the data it returns; stripped
 * before any save, so it is never stored (and its presence leaves the session unmodified).
 */
export const SESSION_USER = '__user';

export interface SessionUserRow {
  id: number;
  username: string;
  isAdmin: boolean;
}

interface SessionJoinRow {
  sid: string;
  data: string | null;
  expires: Date | string | null;
  lastSeenAt: Date | string | null;
  uid: number | null;
  username: string | null;
  isAdmin: number | boolean | null;
}

/** A date column as ms (models/sql.ts readTime reads each database's form); NaN when unreadable. */
function timeOf(value: Date | string | null): number | null {
  try {
    return readTime(value)?.getTime() ?? null;
  } catch {
    return Number.NaN;
  }
}

/**
 * connect-session-sequelize on our Sessions model, with get() our own: one query reads the session
 * and its user (what every request needs to know who asks, SPEC §12); an expired session is refused
 * and deleted (the library's get() does not look at `expires`). The reads of concurrent requests are
 * coalesced (models/coalescer.ts): one query for the sessions asked while the last query ran.
 */
class ExpiringSequelizeStore extends SequelizeStore {
  private readonly reads: Coalescer<string, SessionJoinRow | undefined>;

  constructor(private readonly db: Database) {
    super({ db: db.sequelize, ...STORE_OPTIONS });
    this.reads = keyedReads(
      (sids) =>
        db.sequelize.query<SessionJoinRow>(db.driver.statements.sessionsWithUser, {
          replacements: { sids },
          type: QueryTypes.SELECT,
        }),
      (row) => String(row.sid),
    );
  }

  override get(sid: string, callback: (err: unknown, session?: SessionData | null) => void): void {
    this.reads.call(sid).then(
      (row) => {
        if (!row || row.data === null) return callback(null, null);
        const expires = timeOf(row.expires);
        // Unreadable counts as expired: a session is refused rather than kept by mistake.
        if (expires === null || !(expires > Date.now())) {
          this.destroy(sid, () => callback(null, null));
          return;
        }
        let data: SessionData;
        try {
          data = JSON.parse(row.data) as SessionData;
        } catch {
          return callback(null, null);
        }
        const user: SessionUserRow | null =
          row.uid === null
            ? null
            : { id: Number(row.uid), username: String(row.username), isAdmin: Boolean(Number(row.isAdmin)) };
        Object.assign(data, { [SESSION_USER]: user });
        const seen = timeOf(row.lastSeenAt) ?? 0;
        if (Date.now() - seen < LAST_SEEN_RESOLUTION_MS) return callback(null, data);
        this.db.models.Session.update({ lastSeenAt: new Date() }, { where: { sid }, silent: true }).then(
          () => callback(null, data),
          (err: unknown) => callback(err),
        );
      },
      (err: unknown) => callback(err),
    );
  }

  override set(sid: string, data: SessionData, callback?: (err?: unknown) => void): void {
    const { [SESSION_USER]: _user, ...stored } = data as SessionData & { [SESSION_USER]?: unknown };
    super.set(sid, stored as SessionData, callback);
  }
}

export interface SessionOptions {
  secret: string;
  cookieSecure: boolean;
}

export function sessionMiddleware(db: Database, options: SessionOptions): RequestHandler {
  return session({
    name: SESSION_COOKIE,
    secret: options.secret,
    store: new ExpiringSequelizeStore(db),
    resave: false,
    saveUninitialized: false,
    rolling: false,
    unset: 'destroy',
    cookie: {
      httpOnly: true,
      sameSite: 'lax',
      secure: options.cookieSecure,
      maxAge: SESSION_MAX_AGE_MS,
      path: '/',
    },
  });
}

/**
 * SESSION_SECRET, required with MySQL and PostgreSQL (every API process must share it). With the embedded SQLite
 * database a random secret is made once and kept beside the database file, mode 0600.
 */
export function resolveSessionSecret(config: Config): string {
  const configured = config.http.sessionSecret;
  if (configured !== undefined) {
    if (configured.length < SECRET_MIN_LENGTH) {
      throw new ConfigError(
        `SESSION_SECRET is too short (${configured.length} characters; at least ${SECRET_MIN_LENGTH}, e.g. openssl rand -hex 32)`,
      );
    }
    return configured;
  }
  if (config.database.dialect !== 'sqlite') {
    throw new ConfigError(
      `SESSION_SECRET is required with ${config.database.dialect === 'mysql' ? 'MySQL' : 'PostgreSQL'} (at least 32 characters, e.g. openssl rand -hex 32)`,
    );
  }
  const file = `${config.database.storage}.session-secret`;
  const existing = readSecret(file);
  if (existing) return existing;
  const secret = crypto.randomBytes(32).toString('hex');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  try {
    fs.writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: 'wx' });
    return secret;
  } catch (err) {
    // Another process wrote it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      const theirs = readSecret(file);
      if (theirs) return theirs;
    }
    throw new ConfigError(`cannot keep the session secret in ${file}: ${(err as Error).message}`);
  }
}

function readSecret(file: string): string | null {
  try {
    const text = fs.readFileSync(file, 'utf8').trim();
    return text.length >= SECRET_MIN_LENGTH ? text : null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new ConfigError(`cannot read the session secret ${file}: ${(err as Error).message}`);
  }
}
