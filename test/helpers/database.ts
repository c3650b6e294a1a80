// Each jest worker owns a database built by the real migrations; tests truncate it, never mock it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { QueryTypes, type Sequelize } from 'sequelize';
import type { DatabaseConfig } from '../../config';
import { createDatabase, recreateServerDatabase, type Database } from '../../models/database';
import { migrate } from '../../models/migrate';
import { seedSqlFor } from '../../models/sql';

export const dialect = (process.env.CJ_TEST_DIALECT ?? 'sqlite') as DatabaseConfig['dialect'];
const worker = process.env.JEST_WORKER_ID ?? '0';
export const ROOT = path.resolve(__dirname, '..', '..');

// CJ_TEST_DB_SUFFIX keeps two jest runs against one database server apart (say, two checkouts at once).
const runSuffix = (process.env.CJ_TEST_DB_SUFFIX ?? '').replace(/[^A-Za-z0-9_]/g, '');

/**
 * The test database of this project's dialect, from that database's variables only (CI sets both
 * MYSQL_* and POSTGRES_*; each jest project reads its own).
 */
export function testDatabaseConfig(name = `cj_test_w${worker}`): DatabaseConfig {
  const database = runSuffix ? `${name}_${runSuffix}` : name;
  if (dialect === 'mysql') {
    return {
      dialect: 'mysql',
      host: process.env.MYSQL_HOST ?? '127.0.0.1',
      port: Number(process.env.MYSQL_PORT ?? 3306),
      user: process.env.MYSQL_USER ?? 'root',
      password: process.env.MYSQL_PASSWORD ?? '',
      database,
    };
  }
  if (dialect === 'postgres') {
    return {
      dialect: 'postgres',
      host: process.env.POSTGRES_HOST ?? '127.0.0.1',
      port: Number(process.env.POSTGRES_PORT ?? 5432),
      user: process.env.POSTGRES_USER ?? 'root',
      password: process.env.POSTGRES_PASSWORD ?? '',
      database,
    };
  }
  return {
    dialect: 'sqlite',
    storage: path.join(os.tmpdir(), 'container-jobs-tests', `${name}-${process.pid}.sqlite`),
  };
}

/** The variables a child process (runner, CLI) needs to reach the same test database. */
export { databaseEnv } from '../../config';

async function recreateTestDatabase(config: Extract<DatabaseConfig, { dialect: 'mysql' | 'postgres' }>): Promise<void> {
  try {
    await recreateServerDatabase(config);
  } catch (err) {
    const [name, start, variable] =
      config.dialect === 'mysql'
        ? ['MySQL', 'start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd', 'MYSQL_HOST']
        : ['PostgreSQL', 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start', 'POSTGRES_HOST'];
    throw new Error(
      `${name} at ${config.host}:${config.port} is not usable as ${config.user} (${(err as Error).message}).\n` +
        `Start it (${start}) or unset ${variable}.`,
      { cause: err },
    );
  }
}

/** A fresh, migrated database for one test file. */
export async function freshDatabase(name?: string): Promise<{ db: Database; config: DatabaseConfig }> {
  const fresh = await emptyDatabase(name);
  await migrate(fresh.db);
  return fresh;
}

/** A fresh database with no tables at all (for tests that lay out a schema of their own). */
export async function emptyDatabase(name?: string): Promise<{ db: Database; config: DatabaseConfig }> {
  const config = testDatabaseConfig(name);
  // .ci/run compares the lists: every file that used a database on SQLite must have on MySQL and PostgreSQL too.
  fs.mkdirSync(path.join(ROOT, 'test', 'artifacts'), { recursive: true });
  fs.appendFileSync(path.join(ROOT, 'test', 'artifacts', `${dialect}-suites.txt`), `${expect.getState().testPath}\n`);
  if (config.dialect !== 'sqlite') {
    await recreateTestDatabase(config);
  } else {
    fs.mkdirSync(path.dirname(config.storage), { recursive: true });
    for (const suffix of ['', '-wal', '-shm']) fs.rmSync(config.storage + suffix, { force: true });
  }
  return { db: createDatabase(config), config };
}

/** Empties every table between tests (children first). */
export async function truncateAll(db: Database): Promise<void> {
  for (const table of [
    'JobStatuses',
    'Jobs',
    'JobGroups',
    'JobSchedules',
    'JobScheduleFires',
    'JobOwners',
    'ApiTokens',
    'Users',
    'Sessions',
    'LoginFailures',
    'JobRunners',
  ]) {
    await db.sequelize.query(`DELETE FROM ${quoteIdentifier(db, table)}`);
  }
}

export interface DatabaseSuite {
  db: Database;
  database: DatabaseConfig;
}

/**
 * The hooks of a test file that owns a database: fresh before all its tests, emptied before each,
 * closed after all. The handle's fields are filled in beforeAll.
 */
export function useDatabase(name?: string): DatabaseSuite {
  const suite = {} as DatabaseSuite;
  beforeAll(async () => {
    ({ db: suite.db, config: suite.database } = await freshDatabase(name));
  });
  afterAll(async () => {
    await suite.db.close();
  });
  beforeEach(async () => {
    await truncateAll(suite.db);
  });
  return suite;
}

/** A table or column name quoted for the dialect. */
export function quoteIdentifier(db: Pick<Database, 'dialect'>, name: string): string {
  return db.dialect === 'mysql' ? `\`${name}\`` : `"${name}"`;
}

/** A test's SQL, written as the seed's, in the dialect of `db` (models/sql.ts). */
export function sqlFor(db: Pick<Database, 'dialect'>, text: string): string {
  return seedSqlFor(db.dialect, text);
}

/** A handle's `query` taking a test's SQL as sqlFor writes it for the dialect. */
export function sqlOf(db: Pick<Database, 'dialect' | 'sequelize'>): {
  query: Sequelize['query'];
  /** Runs an INSERT of one row: its id (RETURNING id on PostgreSQL, the driver's insert id elsewhere). */
  insert(text: string, replacements?: Record<string, unknown> | unknown[]): Promise<number>;
} {
  return {
    query: ((text: string, ...rest: unknown[]) =>
      (db.sequelize.query as (...args: unknown[]) => unknown)(sqlFor(db, text), ...rest)) as Sequelize['query'],
    async insert(text, replacements) {
      if (db.dialect === 'postgres') {
        const rows = await db.sequelize.query<{ id: number }>(`${sqlFor(db, text)} RETURNING id`, {
          type: QueryTypes.SELECT,
          replacements,
        });
        return Number(rows[0].id);
      }
      const [id] = (await db.sequelize.query(text, { type: QueryTypes.INSERT, replacements })) as unknown as [number];
      return Number(id);
    },
  };
}
