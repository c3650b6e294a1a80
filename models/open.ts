// Opening the database the way every entry needs it: reachable, and on the current schema.
import { ConfigError, type DatabaseConfig } from '../config';
import type { Logger } from '../log';
import { createDatabase, type Database, type DatabaseOptions } from './database';
import { driverFor } from './drivers';
import { migrate, pendingMigrations } from './migrate';

export class SchemaNotCurrentError extends Error {
  override name = 'SchemaNotCurrentError';
}

/**
 * Connects and checks the schema. The embedded SQLite database migrates itself (the quick start);
 * MySQL is migrated by the operator (`container-jobs migrate`), so a stale schema is an error.
 */
export async function openDatabase(
  config: DatabaseConfig,
  options: DatabaseOptions & { log?: (line: string) => void } = {},
): Promise<Database> {
  const db = createDatabase(config, options);
  try {
    await db.sequelize.authenticate();
    if (db.driver.capabilities.embedded) {
      await migrate(db, options.log);
    } else {
      const pending = await pendingMigrations(db);
      if (pending.length > 0) {
        throw new SchemaNotCurrentError(
          `database schema is not current (${pending.length} migration(s) pending, e.g. ${pending[0]}); run: npx container-jobs migrate`,
        );
      }
    }
    return db;
  } catch (err) {
    await db.close().catch(() => {});
    throw err;
  }
}

/**
 * Errors no retry can fix: the credentials or the database name are wrong (configuration). MySQL's
 * codes, and PostgreSQL's SQLSTATEs: 28000 (no such role, or pg_hba refuses), 28P01 (password), 3D000
 * (no such database).
 */
const PERMANENT_CONNECT_ERRORS = new Set([
  'ER_ACCESS_DENIED_ERROR',
  'ER_DBACCESS_DENIED_ERROR',
  'ER_BAD_DB_ERROR',
  '28000',
  '28P01',
  '3D000',
]);

/** Wrong credentials or database name: configuration (EX_CONFIG), not an outage to wait out. */
export class DatabaseRefusedError extends ConfigError {
  override name = 'DatabaseRefusedError';
}

function errorCode(err: unknown): string | undefined {
  const e = err as { original?: { code?: string }; parent?: { code?: string }; code?: string };
  return e?.original?.code ?? e?.parent?.code ?? e?.code;
}

/**
 * openDatabase for a daemon: while MySQL does not answer, or its schema waits for `migrate`, it
 * says why (once per reason, and through `waiting` each time) and tries again with backoff, until
 * `signal` aborts (then it throws). Wrong credentials are not waited out: DatabaseRefusedError.
 * SQLite is local: its errors are final.
 */
export async function openDatabaseWhenReady(
  config: DatabaseConfig,
  options: DatabaseOptions & { log: Logger; waiting?: (reason: string) => void; signal?: AbortSignal },
): Promise<Database> {
  const { log } = options;
  let delay = 500;
  let lastReason = '';
  for (;;) {
    try {
      const db = await openDatabase(config, { ...options, log: (line) => log.info(line) });
      if (lastReason) log.notice('database ready');
      return db;
    } catch (err) {
      if (driverFor(config.dialect).capabilities.embedded) throw err;
      if (PERMANENT_CONNECT_ERRORS.has(errorCode(err) ?? '')) {
        throw new DatabaseRefusedError(`the database refused us: ${(err as Error).message}`, { cause: err });
      }
      const reason =
        err instanceof SchemaNotCurrentError ? err.message : `database unavailable: ${(err as Error).message}`;
      if (reason !== lastReason) log.warn(`${reason}; waiting for it (retrying with backoff)`);
      lastReason = reason;
      options.waiting?.(reason);
    }
    await new Promise<void>((resolve, reject) => {
      if (options.signal?.aborted) return reject(new Error('stopped while waiting for the database'));
      const timer = setTimeout(done, delay);
      function done() {
        options.signal?.removeEventListener('abort', aborted);
        resolve();
      }
      function aborted() {
        clearTimeout(timer);
        reject(new Error('stopped while waiting for the database'));
      }
      options.signal?.addEventListener('abort', aborted, { once: true });
    });
    delay = Math.min(15_000, delay * 2);
  }
}
