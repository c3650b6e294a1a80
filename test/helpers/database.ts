// Each jest worker owns a database built by the real migrations; tests truncate it, never mock it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DatabaseConfig } from '../../config';
import { createDatabase, recreateMysqlDatabase, type Database } from '../../models/database';
import { migrate } from '../../models/migrate';

export const dialect = (process.env.CJ_TEST_DIALECT ?? 'sqlite') as 'sqlite' | 'mysql';
const worker = process.env.JEST_WORKER_ID ?? '0';
export const ROOT = path.resolve(__dirname, '..', '..');

// CJ_TEST_DB_SUFFIX keeps two jest runs against one MySQL server apart (say, two checkouts at once).
const runSuffix = (process.env.CJ_TEST_DB_SUFFIX ?? '').replace(/[^A-Za-z0-9_]/g, '');

export function testDatabaseConfig(name = `cj_test_w${worker}`): DatabaseConfig {
  if (dialect === 'mysql') {
    return {
      dialect: 'mysql',
      host: process.env.MYSQL_HOST ?? '127.0.0.1',
      port: Number(process.env.MYSQL_PORT ?? 3306),
      user: process.env.MYSQL_USER ?? 'root',
      password: process.env.MYSQL_PASSWORD ?? '',
      database: runSuffix ? `${name}_${runSuffix}` : name,
    };
  }
  return {
    dialect: 'sqlite',
    storage: path.join(os.tmpdir(), 'container-jobs-tests', `${name}-${process.pid}.sqlite`),
  };
}

/** The variables a child process (runner, CLI) needs to reach the same test database. */
export { databaseEnv } from '../../config';

async function recreateTestDatabase(config: Extract<DatabaseConfig, { dialect: 'mysql' }>): Promise<void> {
  try {
    await recreateMysqlDatabase(config);
  } catch (err) {
    throw new Error(
      `MySQL at ${config.host}:${config.port} is not usable as ${config.user} (${(err as Error).message}).\n` +
        'Start it (start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd) or unset MYSQL_HOST.',
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
  // .ci/run compares the two lists: every file that used a database on SQLite must have on MySQL too.
  fs.mkdirSync(path.join(ROOT, 'test', 'artifacts'), { recursive: true });
  fs.appendFileSync(path.join(ROOT, 'test', 'artifacts', `${dialect}-suites.txt`), `${expect.getState().testPath}\n`);
  if (config.dialect === 'mysql') {
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
    await db.sequelize.query(db.dialect === 'mysql' ? `DELETE FROM \`${table}\`` : `DELETE FROM "${table}"`);
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
