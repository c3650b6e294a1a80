// Opening the database the way every entry needs it: reachable, and on the current schema.
import type { DatabaseConfig } from '../config';
import { createDatabase, type Database, type DatabaseOptions } from './database';
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
    if (config.dialect === 'sqlite') {
      await migrate(db, options.log);
    } else {
      const pending = await pendingMigrations(db);
      if (pending.length > 0) {
        throw new SchemaNotCurrentError(
          `database schema is not current (${pending.length} migration(s) pending, e.g. ${pending[0]}); run: container-jobs migrate`,
        );
      }
    }
    return db;
  } catch (err) {
    await db.close().catch(() => {});
    throw err;
  }
}
