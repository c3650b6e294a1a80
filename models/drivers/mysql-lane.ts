// A transaction in few round trips, for the runner's hottest path (claim, finish): the statements
// of one step travel in one packet on a connection of the lane's own, opened with MySQL's
// multipleStatements. Only the queue's own statements go this way, every value in them escaped by
// Sequelize as everywhere else; the application's pool keeps multipleStatements off.
import mysql, { type Connection, type QueryError } from 'mysql2';
import { ConnectionError, DatabaseError, type Sequelize } from 'sequelize';
import { escape } from 'sequelize/lib/sql-string';

/** One statement's result: its rows (SELECT), or what it changed (UPDATE, INSERT). */
export type LaneResult = Record<string, unknown>[] | { affectedRows: number; insertId: number };

/** Sends one step of a transaction: the statements in order, answered together. */
export type LaneSend = (statements: string[]) => Promise<LaneResult[]>;

export interface StatementLane {
  /** A statement with its replacements (`:name`, or `?` given an array) put in, escaped. */
  format(sql: string, replacements?: Record<string, unknown> | unknown[]): string;
  /**
   * Runs `work` on a connection of its own. `work` ends its transaction itself (COMMIT or ROLLBACK
   * in its last step); if it throws, whatever it left open is rolled back before the error goes on.
   */
  session<T>(work: (send: LaneSend) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/**
 * A statement cut at its replacements (`:name`, or `?`) outside quotes, once per text: the lane
 * formats the same few statements thousands of times a second, and scanning each text anew
 * (Sequelize's injectReplacements) was 5% of a busy runner's time. Values are escaped as it does.
 */
const cut = new Map<string, { pieces: string[]; slots: string[] }>();

function compiled(sql: string): { pieces: string[]; slots: string[] } {
  const known = cut.get(sql);
  if (known) return known;
  const pieces: string[] = [];
  const slots: string[] = [];
  let quote: string | null = null;
  let from = 0;
  for (let i = 0; i < sql.length; i++) {
    const char = sql[i];
    if (quote !== null) {
      if (char === '\\' && quote !== '`') i++;
      else if (char === quote) quote = null;
      continue;
    }
    if (char === "'" || char === '"' || char === '`') quote = char;
    else if (char === '?' || (char === ':' && /[A-Za-z_]/.test(sql[i + 1] ?? '') && sql[i - 1] !== ':')) {
      pieces.push(sql.slice(from, i));
      const name = char === '?' ? '?' : /^[A-Za-z_]\w*/.exec(sql.slice(i + 1))![0];
      slots.push(name);
      i += char === '?' ? 0 : name.length;
      from = i + 1;
    }
  }
  pieces.push(sql.slice(from));
  const result = { pieces, slots };
  if (cut.size >= 1000) cut.clear(); // an output insert's text differs by its row count
  cut.set(sql, result);
  return result;
}

/** An idle connection is closed after this long, as the application's pool closes its own (Sequelize's `pool.idle`). */
const IDLE_MS = 10_000;

function handleClosed(): Error {
  return new ConnectionError(new Error('the database handle is closed'));
}

/** Whether a connection can still carry statements, as Sequelize's pool checks its own before use. */
function usable(connection: Connection): boolean {
  const c = connection as unknown as {
    _fatalError?: unknown;
    _protocolError?: unknown;
    _closing?: boolean;
    stream?: { destroyed?: boolean };
  };
  return !c._fatalError && !c._protocolError && !c._closing && !c.stream?.destroyed;
}

/** Connections at most: the finishes in flight (two) and the claim loop's claim. */
const MAX_CONNECTIONS = 3;

interface SequelizeMysqlInternals {
  config: {
    host?: string;
    port?: number | string;
    username?: string;
    password?: string;
    database?: string;
    dialectOptions?: Record<string, unknown>;
  };
  options: { timezone?: string };
  connectionManager: { constructor: { _typecast: (...args: unknown[]) => unknown } };
}

/** A mysql2 error as Sequelize would hand it on: the driver's error under `.parent`/`.original`. */
function wrapped(err: QueryError): Error {
  return err.fatal || !('errno' in err) ? new ConnectionError(err) : new DatabaseError(err as never);
}

class MysqlLane implements StatementLane {
  /** Connections between sessions (since when), and how many are open in all (written by session() and its helpers). */
  private readonly idle: { connection: Connection; since: number }[] = [];
  private open = 0;
  /** Sessions waiting for a connection while all MAX_CONNECTIONS are busy: handed one, or why there is none. */
  private readonly waiting: ((connection: Connection | Error) => void)[] = [];
  private closed = false;

  constructor(
    private readonly sequelize: Sequelize,
    private readonly idleMs: number,
  ) {}

  format(sql: string, replacements?: Record<string, unknown> | unknown[]): string {
    if (replacements === undefined) return sql;
    const { pieces, slots } = compiled(sql);
    let text = pieces[0];
    let position = 0;
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[i];
      const value =
        slot === '?' ? (replacements as unknown[])[position++] : (replacements as Record<string, unknown>)[slot];
      if (value === undefined)
        throw new Error(`replacement ${slot === '?' ? `#${position}` : `:${slot}`} missing for: ${sql}`);
      text += escape(value as never, undefined, 'mysql', true) + pieces[i + 1];
    }
    return text;
  }

  async session<T>(work: (send: LaneSend) => Promise<T>): Promise<T> {
    const connection = await this.acquire();
    let broken = false;
    const send: LaneSend = (statements) =>
      query(connection, statements).catch((err: QueryError) => {
        if (err.fatal) broken = true;
        throw wrapped(err);
      });
    try {
      const result = await work(send);
      this.release(connection, broken);
      return result;
    } catch (err) {
      // A failed statement leaves its transaction open (a lock-wait timeout), or rolled back (a deadlock).
      if (!broken)
        broken = await query(connection, ['ROLLBACK']).then(
          () => false,
          () => true,
        );
      this.release(connection, broken);
      throw err;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const wake of this.waiting.splice(0)) wake(handleClosed());
    const connections = this.idle.splice(0).map((entry) => entry.connection);
    await Promise.all(connections.map((c) => new Promise<void>((resolve) => c.end(() => resolve()))));
  }

  private async acquire(): Promise<Connection> {
    if (this.closed) throw handleClosed();
    // The newest first; one idle too long (as the pool's are closed) or lost meanwhile is closed instead.
    for (let entry = this.idle.pop(); entry; entry = this.idle.pop()) {
      if (Date.now() - entry.since < this.idleMs && usable(entry.connection)) return entry.connection;
      this.open--;
      entry.connection.destroy();
    }
    if (this.open >= MAX_CONNECTIONS) {
      const handed = await new Promise<Connection | Error>((resolve) => this.waiting.push(resolve));
      if (handed instanceof Error) throw handed;
      return handed;
    }
    this.open++;
    try {
      return await this.connect();
    } catch (err) {
      this.open--;
      throw err;
    }
  }

  private release(connection: Connection, broken: boolean): void {
    if (broken || this.closed) {
      this.open--;
      connection.destroy();
      // Someone waiting gets a new connection of its own.
      const wake = this.waiting.shift();
      if (wake) this.acquire().then(wake, (err: Error) => wake(err));
      return;
    }
    const wake = this.waiting.shift();
    if (wake) wake(connection);
    else this.idle.push({ connection, since: Date.now() });
  }

  /** A connection made as Sequelize makes the pool's (same server, user, types, time zone), plus multipleStatements. */
  private async connect(): Promise<Connection> {
    const { config, options, connectionManager } = this.sequelize as unknown as SequelizeMysqlInternals;
    const connection = mysql.createConnection({
      host: config.host,
      port: config.port === undefined ? undefined : Number(config.port),
      user: config.username,
      password: config.password,
      database: config.database,
      flags: ['-FOUND_ROWS'],
      timezone: options.timezone,
      typeCast: connectionManager.constructor._typecast.bind(connectionManager) as never,
      bigNumberStrings: false,
      supportBigNumbers: true,
      ...config.dialectOptions,
      multipleStatements: true,
    });
    // A connection lost between sessions: the next session's query fails and the connection goes.
    connection.on('error', () => {});
    try {
      await new Promise<void>((resolve, reject) => {
        connection.once('connect', () => resolve());
        connection.once('error', reject);
      });
      await query(connection, [`SET time_zone = ${connection.escape(options.timezone ?? '+00:00')}`]);
    } catch (err) {
      connection.destroy();
      throw wrapped(err as QueryError);
    }
    return connection;
  }
}

/** The statements in one packet; one result per statement. */
function query(connection: Connection, statements: string[]): Promise<LaneResult[]> {
  return new Promise((resolve, reject) => {
    connection.query(statements.join(';\n'), (err, results) => {
      if (err) return reject(err);
      resolve((statements.length === 1 ? [results] : results) as LaneResult[]);
    });
  });
}

/** `idleMs`: how long a connection may wait between sessions before it is closed (tests shorten it). */
export function openMysqlLane(sequelize: Sequelize, options: { idleMs?: number } = {}): StatementLane {
  return new MysqlLane(sequelize, options.idleMs ?? IDLE_MS);
}
