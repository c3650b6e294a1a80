// The API under test: a real app on a real database, listening on an ephemeral port so Origin is stable.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { QueryTypes } from 'sequelize';
import request from 'supertest';
import { loadConfig, type Config, type DatabaseConfig } from '../../config';
import { silentLogger } from '../../log';
import type { Database } from '../../models/database';
import { Queue } from '../../models/queue';
import { createUser } from '../../models/users';
import { createApp, type AppDeps } from '../../routers/app';
import { TaskCatalog } from '../../tasks/catalog';
import { freshDatabase, ROOT, truncateAll, type DatabaseSuite, sqlOf } from './database';

export const TASKS_FILE = path.join(ROOT, 'test', 'fixtures', 'api-tasks.json');
const SESSION_SECRET = 'test-session-secret-0123456789abcdef0123456789';

export type Agent = ReturnType<typeof request.agent>;

export interface Api {
  server: http.Server;
  /** What a browser on this page would send as Origin. */
  origin: string;
  queue: Queue;
  /** A fresh client with its own cookie jar. */
  agent(): Agent;
  close(): Promise<void>;
}

export function testConfig(database: DatabaseConfig, env: Record<string, string> = {}): Config {
  return { ...loadConfig({ JOB_TASKS_FILE: TASKS_FILE, ...env }), database };
}

export async function startApi(
  db: Database,
  database: DatabaseConfig,
  overrides: Partial<AppDeps> & { env?: Record<string, string> } = {},
): Promise<Api> {
  const { env, ...deps } = overrides;
  const config = testConfig(database, env);
  const queue = new Queue(db, config.quotas);
  const app = createApp({
    db,
    queue,
    catalog: new TaskCatalog(config.tasksFile),
    config,
    sessionSecret: SESSION_SECRET,
    log: silentLogger,
    streamPollMs: 25,
    ...deps,
  });
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    server,
    origin: `http://127.0.0.1:${port}`,
    queue,
    agent: () => request.agent(server),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export const password = (username: string) => `password-of-${username}`;

export async function addUser(db: Database, username: string, isAdmin = false): Promise<void> {
  await createUser(db, username, password(username), isAdmin);
}

/** A client logged in as `username` (a user made with addUser); also returns its cookie. */
export async function login(api: Api, username: string): Promise<{ agent: Agent; cookie: string }> {
  const agent = api.agent();
  const res = await agent
    .post('/login')
    .set('Origin', api.origin)
    .send({ username, password: password(username) })
    .expect(200);
  return { agent, cookie: sessionCookie(res) };
}

/** `cj.sid=…` from a response's Set-Cookie. */
export function sessionCookie(res: { headers: Record<string, unknown> }): string {
  const cookies = (res.headers['set-cookie'] as string[] | undefined) ?? [];
  const cookie = cookies.find((c) => c.startsWith('cj.sid='));
  if (!cookie) throw new Error(`no session cookie in ${JSON.stringify(cookies)}`);
  return cookie.split(';')[0];
}

export async function count(db: Database, table: string): Promise<number> {
  const [row] = await sqlOf(db).query<{ n: number | string }>(`SELECT COUNT(*) AS n FROM ${table}`, {
    type: QueryTypes.SELECT,
  });
  return Number(row.n);
}

/** Output rows written straight into JobStatuses, as a runner would (seq continues from `firstSeq`). */
export async function insertOutput(db: Database, jobId: number, lines: string[], firstSeq: number): Promise<void> {
  if (lines.length === 0) return;
  const values: unknown[] = [];
  const tuples = lines.map((line, i) => {
    values.push(jobId, firstSeq + i, i % 5 === 4 ? 'stderr' : 'stdout', line);
    return '(?, ?, ?, ?)';
  });
  await sqlOf(db).query(`INSERT INTO JobStatuses (jobId, seq, stream, output) VALUES ${tuples.join(', ')}`, {
    replacements: values,
  });
}

export async function setStatus(
  db: Database,
  jobId: number,
  status: string,
  extra: { exitCode?: number | null; error?: string | null } = {},
): Promise<void> {
  await sqlOf(db).query('UPDATE Jobs SET status = ?, exitCode = ?, error = ? WHERE id = ?', {
    replacements: [status, extra.exitCode ?? null, extra.error ?? null, jobId],
  });
}

export interface SseEvent {
  id?: string;
  event: string;
  data: string;
}

/** Parses an event-stream text into events (comments and retry lines skipped). */
export function parseSse(text: string): SseEvent[] {
  const events: SseEvent[] = [];
  for (const block of text.split('\n\n')) {
    const event: SseEvent = { event: 'message', data: '' };
    let hasData = false;
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'id') event.id = value;
      else if (field === 'event') event.event = value;
      else if (field === 'data') {
        event.data = hasData ? `${event.data}\n${value}` : value;
        hasData = true;
      }
    }
    if (hasData) events.push(event);
  }
  return events;
}

/** supertest parser that keeps a text/event-stream body as one string (in res.body). */
export function collectText(response: unknown, callback: (err: Error | null, body: string) => void): void {
  // In Node, superagent hands parsers the raw IncomingMessage (its typings say Response).
  const res = response as http.IncomingMessage;
  res.setEncoding('utf8');
  let text = '';
  res.on('data', (chunk: string) => (text += chunk));
  res.on('end', () => callback(null, text));
}

/** An event-stream read as it arrives, so a test can act once an event has been seen. */
export class LiveStream {
  readonly events: SseEvent[] = [];
  readonly finished: Promise<SseEvent[]>;
  status = 0;
  private buffer = '';
  private waiters: { predicate: (e: SseEvent) => boolean; resolve: (e: SseEvent) => void }[] = [];
  private req!: http.ClientRequest;

  constructor(url: string, headers: Record<string, string>) {
    this.finished = new Promise((resolve, reject) => {
      this.req = http.get(url, { headers }, (res) => {
        this.status = res.statusCode ?? 0;
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => this.feed(chunk));
        res.on('end', () => resolve(this.events));
        res.on('error', reject);
      });
      this.req.on('error', reject);
    });
  }

  private feed(chunk: string): void {
    this.buffer += chunk;
    const cut = this.buffer.lastIndexOf('\n\n');
    if (cut === -1) return;
    const complete = this.buffer.slice(0, cut + 2);
    this.buffer = this.buffer.slice(cut + 2);
    for (const event of parseSse(complete)) {
      this.events.push(event);
      this.waiters = this.waiters.filter((w) => {
        if (!w.predicate(event)) return true;
        w.resolve(event);
        return false;
      });
    }
  }

  /** Resolves with the first event (already seen or still to come) that matches. */
  waitFor(predicate: (e: SseEvent) => boolean): Promise<SseEvent> {
    const seen = this.events.find(predicate);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ predicate, resolve }));
  }

  close(): void {
    this.req.destroy();
  }
}

/**
 * Users and sessions as they are now, to put back after truncateAll: a file logs its users in once
 * (scrypt is deliberately slow) and every test still starts from emptied tables.
 */
export async function snapshotLogins(db: Database): Promise<() => Promise<void>> {
  const { User, Session } = db.models;
  const users = (await User.findAll()).map((u) => u.get({ plain: true }));
  const sessions = (await Session.findAll()).map((s) => s.get({ plain: true }));
  return async () => {
    await User.bulkCreate(users);
    await Session.bulkCreate(sessions);
  };
}

export interface ApiSuite<User extends string> extends DatabaseSuite {
  api: Api;
  /** A client logged in as each user of the options. */
  as: Record<User, Agent>;
  /** Each user's `cj.sid=…` session cookie. */
  cookies: Record<User, string>;
}

/**
 * The hooks of an API test file: a fresh database and the API on it (its tasks from `tasksFile`,
 * the API fixtures' by default) before all its tests, `users` (name: isAdmin) added and logged in
 * once, every table emptied before each test with those users and their sessions put back, and all
 * closed after. The handle's fields are filled in beforeAll.
 */
export function useApi<User extends string = never>(
  options: { users?: Record<User, boolean>; tasksFile?: string; env?: Record<string, string> } = {},
): ApiSuite<User> {
  const users = Object.entries(options.users ?? {}) as [User, boolean][];
  const suite = { as: {}, cookies: {} } as ApiSuite<User>;
  let restoreLogins = async () => {};
  beforeAll(async () => {
    ({ db: suite.db, config: suite.database } = await freshDatabase());
    suite.api = await startApi(suite.db, suite.database, {
      ...(options.tasksFile ? { catalog: new TaskCatalog(options.tasksFile) } : {}),
      ...(options.env ? { env: options.env } : {}),
    });
    for (const [username, isAdmin] of users) await addUser(suite.db, username, isAdmin);
    for (const [username] of users) {
      ({ agent: suite.as[username], cookie: suite.cookies[username] } = await login(suite.api, username));
    }
    if (users.length > 0) restoreLogins = await snapshotLogins(suite.db);
  });
  afterAll(async () => {
    await suite.api.close();
    await suite.db.close();
  });
  beforeEach(async () => {
    await truncateAll(suite.db);
    await restoreLogins();
  });
  return suite;
}
