// Users and API tokens: password hashing, login checks and bearer tokens, shared by the API and the CLI.
import crypto from 'node:crypto';
import os from 'node:os';
import { promisify } from 'node:util';
import { Op, QueryTypes, UniqueConstraintError } from 'sequelize';
import { keyedReads, type Coalescer } from './coalescer';
import type { Database } from './database';
import type { User as UserRow } from './models';
import { Semaphore } from './semaphore';
import { readTime } from './sql';

/** Who a request acts as, once its password, session or token has been checked. */
export interface AuthenticatedUser {
  username: string;
  isAdmin: boolean;
}

/** A user as a session refers to it: by id, so a renamed or re-created name is not the same user. */
export interface UserRecord extends AuthenticatedUser {
  id: number;
}

/** A refused user or token operation (bad name, unknown user, short password …); the CLI prints it. */
export class UserError extends Error {
  override name = 'UserError';
}

export const USERNAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$/;
export const PASSWORD_MIN_LENGTH = 8;
/** Longer inputs are refused before hashing, so a huge password cannot buy CPU time. */
export const PASSWORD_MAX_LENGTH = 1024;
const TOKEN_PREFIX = 'cjt_';
/** lastUsedAt is written at most this often per token, so bearer traffic does not write on every request. */
const LAST_USED_RESOLUTION_MS = 60_000;

// scrypt is memory-hard: N=2^15, r=8 needs 32 MiB per hash (~100 ms), which rules out cheap GPU guessing.
const SCRYPT = { N: 32768, r: 8, p: 1, keyLength: 32, saltLength: 16 };
const scryptAsync = promisify(crypto.scrypt) as (
  password: crypto.BinaryLike,
  salt: crypto.BinaryLike,
  keylen: number,
  options: crypto.ScryptOptions,
) => Promise<Buffer>;

/**
 * scrypt runs on libuv's thread pool, which node-sqlite3 (and fs, dns) share: a flood of logins
 * hashing on every thread stalls every query behind it. At most half the CPUs hash at once (and
 * never all four default threads); a few dozen more wait, and beyond that a login is refused at
 * once (SemaphoreFullError, the API's 429) rather than queued for seconds.
 */
export const passwordHashing = new Semaphore(Math.min(2, Math.max(1, Math.floor(os.availableParallelism() / 2))), 32);

function scryptOptions(N: number, r: number, p: number): crypto.ScryptOptions {
  return { N, r, p, maxmem: 256 * N * r * p + 1024 * 1024 };
}

/** A self-describing hash: `scrypt$N$r$p$salt$hash` (base64url), so the cost can rise without a migration. */
export async function hashPassword(password: string): Promise<string> {
  const { N, r, p, keyLength, saltLength } = SCRYPT;
  const salt = crypto.randomBytes(saltLength);
  const hash = await passwordHashing.run(() =>
    scryptAsync(password.normalize('NFC'), salt, keyLength, scryptOptions(N, r, p)),
  );
  return ['scrypt', N, r, p, salt.toString('base64url'), hash.toString('base64url')].join('$');
}

/** True when `password` matches `stored`; false for a wrong password or a malformed hash. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [N, r, p] = parts.slice(1, 4).map(Number);
  // Bounds keep a tampered row from asking for gigabytes of memory.
  const sane = Number.isInteger(Math.log2(N)) && N >= 1024 && N <= 2 ** 20 && r >= 1 && r <= 32 && p >= 1 && p <= 16;
  if (!sane) return false;
  const salt = Buffer.from(parts[4], 'base64url');
  const expected = Buffer.from(parts[5], 'base64url');
  if (expected.length < 16) return false;
  const actual = await passwordHashing.run(() =>
    scryptAsync(password.normalize('NFC'), salt, expected.length, scryptOptions(N, r, p)),
  );
  return crypto.timingSafeEqual(actual, expected);
}

let dummyHash: Promise<string> | null = null;

/** Checks a login; an unknown user costs the same hash as a known one, so timing does not reveal names. */
export async function verifyCredentials(
  db: Database,
  username: string,
  password: string,
): Promise<AuthenticatedUser | null> {
  const user = await verifyLogin(db, username, password);
  return user && { username: user.username, isAdmin: user.isAdmin };
}

/** verifyCredentials, with the user's id (what a session keeps). */
export async function verifyLogin(db: Database, username: string, password: string): Promise<UserRecord | null> {
  if (password.length > PASSWORD_MAX_LENGTH) return null;
  const user = USERNAME.test(username) ? await db.models.User.findOne({ where: { username } }) : null;
  if (!user) {
    dummyHash ??= hashPassword(crypto.randomBytes(16).toString('hex'));
    await verifyPassword(password, await dummyHash);
    return null;
  }
  if (!(await verifyPassword(password, user.passwordHash))) return null;
  return { id: user.id, username: user.username, isAdmin: Boolean(user.isAdmin) };
}

/** The user as the Users table has it now; null once deleted. */
export async function userById(db: Database, id: number): Promise<UserRecord | null> {
  const user = await db.models.User.findByPk(id, { attributes: ['id', 'username', 'isAdmin'] });
  return user && { id: user.id, username: user.username, isAdmin: Boolean(user.isAdmin) };
}

/** A random password for people to copy: 24 characters, 144 bits. */
export function generatePassword(): string {
  return crypto.randomBytes(18).toString('base64url');
}

function checkUsername(username: string): void {
  if (!USERNAME.test(username)) {
    throw new UserError(
      `invalid user name ${JSON.stringify(username)}: 1-100 letters, digits, ".", "_", "@" or "-", starting with a letter or digit`,
    );
  }
}

function checkPassword(password: string): void {
  if (password.length < PASSWORD_MIN_LENGTH) {
    throw new UserError(`password is too short (at least ${PASSWORD_MIN_LENGTH} characters)`);
  }
  if (password.length > PASSWORD_MAX_LENGTH) {
    throw new UserError(`password is too long (at most ${PASSWORD_MAX_LENGTH} characters)`);
  }
}

export async function createUser(
  db: Database,
  username: string,
  password: string,
  isAdmin = false,
): Promise<AuthenticatedUser> {
  checkUsername(username);
  checkPassword(password);
  try {
    const user = await db.models.User.create({ username, passwordHash: await hashPassword(password), isAdmin });
    return { username: user.username, isAdmin: Boolean(user.isAdmin) };
  } catch (err) {
    if (err instanceof UniqueConstraintError) throw new UserError(`user "${username}" already exists`);
    throw err;
  }
}

async function existingUser(db: Database, username: string): Promise<UserRow> {
  const user = await db.models.User.findOne({ where: { username } });
  if (!user) throw new UserError(`no user "${username}"`);
  return user;
}

/** Sets a password and ends every session of the user (a stolen cookie dies with the old password); returns how many. */
export async function setPassword(db: Database, username: string, password: string): Promise<number> {
  checkPassword(password);
  const passwordHash = await hashPassword(password);
  const user = await existingUser(db, username);
  return db.sequelize.transaction(async (transaction) => {
    await db.models.User.update({ passwordHash }, { where: { id: user.id }, transaction });
    return db.models.Session.destroy({ where: { userId: user.id }, transaction });
  });
}

/** Grants or takes back admin rights; they apply from the user's next request, in every session. */
export async function setAdmin(db: Database, username: string, isAdmin: boolean): Promise<void> {
  const user = await existingUser(db, username);
  await db.models.User.update({ isAdmin }, { where: { id: user.id } });
}

/** Deletes a user with their sessions and tokens; their jobs stay (admins still see them). */
export async function deleteUser(db: Database, username: string): Promise<{ sessions: number; tokens: number }> {
  const user = await existingUser(db, username);
  return db.sequelize.transaction(async (transaction) => {
    const sessions = await db.models.Session.destroy({ where: { userId: user.id }, transaction });
    const tokens = await db.models.ApiToken.destroy({ where: { userId: user.id }, transaction });
    await db.models.User.destroy({ where: { id: user.id }, transaction });
    return { sessions, tokens };
  });
}

export interface SessionSummary {
  createdAt: Date;
  lastSeenAt: Date | null;
  expires: Date | null;
}

/** A user's live sessions, most recently seen first. */
export async function listSessions(db: Database, username: string): Promise<SessionSummary[]> {
  const user = await existingUser(db, username);
  const rows = await db.models.Session.findAll({
    where: { userId: user.id, expires: { [Op.gt]: new Date() } },
    order: [['lastSeenAt', 'DESC']],
  });
  return rows.map((s) => ({ createdAt: s.createdAt, lastSeenAt: s.lastSeenAt ?? null, expires: s.expires }));
}

/** Ends every session of a user; returns how many. */
export async function revokeSessions(db: Database, username: string): Promise<number> {
  const user = await existingUser(db, username);
  return db.models.Session.destroy({ where: { userId: user.id } });
}

export interface UserSummary extends AuthenticatedUser {
  createdAt: Date;
  tokens: number;
}

export async function listUsers(db: Database): Promise<UserSummary[]> {
  const { User, ApiToken } = db.models;
  const users = await User.findAll({ order: [['username', 'ASC']] });
  const counts = (await ApiToken.count({ group: ['userId'] })) as unknown as { userId: number; count: number }[];
  const byUser = new Map(counts.map((c) => [Number(c.userId), Number(c.count)]));
  return users.map((u) => ({
    username: u.username,
    isAdmin: Boolean(u.isAdmin),
    createdAt: u.createdAt,
    tokens: byUser.get(u.id) ?? 0,
  }));
}

export function countUsers(db: Database): Promise<number> {
  return db.models.User.count();
}

/**
 * The quick start's first user: when the Users table is empty, creates `admin` with a generated
 * password and returns it (shown once). Null when users exist (or another process just made one).
 */
export async function ensureInitialAdmin(db: Database, username = 'admin'): Promise<string | null> {
  if ((await countUsers(db)) > 0) return null;
  const password = generatePassword();
  try {
    await createUser(db, username, password, true);
  } catch (err) {
    if (err instanceof UserError) return null;
    throw err;
  }
  return password;
}

function hashToken(token: string): string {
  return crypto.createHash('sha256').update(token, 'utf8').digest('hex');
}

export interface TokenSummary {
  id: number;
  username: string;
  name: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  expiresAt: Date | null;
}

/** Makes a bearer token for a user; only its SHA-256 is stored, so the token is shown this once. */
export async function createApiToken(
  db: Database,
  username: string,
  name: string,
  expiresAt: Date | null = null,
): Promise<{ id: number; token: string }> {
  if (name.length < 1 || name.length > 100) throw new UserError('token name must be 1-100 characters');
  const user = await db.models.User.findOne({ where: { username } });
  if (!user) throw new UserError(`no user "${username}"`);
  const token = TOKEN_PREFIX + crypto.randomBytes(32).toString('base64url');
  const row = await db.models.ApiToken.create({ userId: user.id, name, tokenHash: hashToken(token), expiresAt });
  return { id: Number(row.id), token };
}

/** Deletes a token; false when there was no such token. */
export async function revokeApiToken(db: Database, id: number): Promise<boolean> {
  return (await db.models.ApiToken.destroy({ where: { id } })) > 0;
}

export async function listApiTokens(db: Database, username?: string): Promise<TokenSummary[]> {
  const { User, ApiToken } = db.models;
  const users = await User.findAll(username === undefined ? {} : { where: { username } });
  const names = new Map(users.map((u) => [u.id, u.username]));
  if (names.size === 0) return [];
  const tokens = await ApiToken.findAll({ where: { userId: [...names.keys()] }, order: [['id', 'ASC']] });
  return tokens.map((t) => ({
    id: Number(t.id),
    username: names.get(t.userId) ?? '?',
    name: t.name,
    createdAt: t.createdAt,
    lastUsedAt: t.lastUsedAt ?? null,
    expiresAt: t.expiresAt ?? null,
  }));
}

interface TokenUserRow {
  tokenHash: string;
  id: number | string;
  expiresAt: Date | string | null;
  lastUsedAt: Date | string | null;
  username: string;
  isAdmin: number | boolean;
}

/** Per database: the token reads of concurrent requests, one query for those asked while the last ran. */
const tokenReads = new WeakMap<Database, Coalescer<string, TokenUserRow | undefined>>();

function readToken(db: Database, hash: string): Promise<TokenUserRow | undefined> {
  let reads = tokenReads.get(db);
  if (!reads) {
    reads = keyedReads(
      (hashes) =>
        db.sequelize.query<TokenUserRow>(db.driver.statements.tokensWithUser, {
          replacements: { hashes },
          type: QueryTypes.SELECT,
        }),
      (row) => String(row.tokenHash),
    );
    tokenReads.set(db, reads);
  }
  return reads.call(hash);
}

/** The user a bearer token acts as; null for an unknown, revoked or expired token. */
export async function authenticateApiToken(db: Database, token: string): Promise<AuthenticatedUser | null> {
  if (!token.startsWith(TOKEN_PREFIX) || token.length > 200) return null;
  // One query: the token and its user as Users has it now, joined (a raw statement: this runs on
  // every bearer request, and Sequelize's include costs more CPU than the query); coalesced with the
  // reads of concurrent requests.
  const row = await readToken(db, hashToken(token));
  if (!row) return null;
  const now = Date.now();
  const expiresAt = readTime(row.expiresAt);
  if (expiresAt && expiresAt.getTime() <= now) return null;
  const lastUsed = readTime(row.lastUsedAt)?.getTime() ?? null;
  if (lastUsed === null || now - lastUsed >= LAST_USED_RESOLUTION_MS) {
    // Guarded, so concurrent requests write it once.
    const stale = new Date(now - LAST_USED_RESOLUTION_MS);
    await db.models.ApiToken.update(
      { lastUsedAt: new Date(now) },
      { where: { id: Number(row.id), [Op.or]: [{ lastUsedAt: null }, { lastUsedAt: { [Op.lte]: stale } }] } },
    );
  }
  return { username: String(row.username), isAdmin: Boolean(Number(row.isAdmin)) };
}
