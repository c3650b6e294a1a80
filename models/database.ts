// The database handle: one Sequelize instance per process, with the dialect's quirks settled here.
import fs from 'node:fs';
import path from 'node:path';
import { Sequelize, type Options } from 'sequelize';
import type { DatabaseConfig } from '../config';
import { driverFor, type Dialect, type Driver } from './drivers';
import type { StatementLane } from './drivers/mysql-lane';
import { initModels, type Models } from './models';

export type { Dialect } from './drivers';

export interface Database {
  sequelize: Sequelize;
  dialect: Dialect;
  /** Everything that differs between databases: capabilities, SQL texts, error kinds. */
  driver: Driver;
  models: Models;
  /** Several statements a round trip, on connections of their own (the runner's claims and finishes); null where the driver has none. */
  lane: StatementLane | null;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  logging?: false | ((sql: string) => void);
  poolMax?: number;
}

/** Options shared by the app's handle and sequelize-cli's config file. */
export function sequelizeOptions(db: DatabaseConfig, options: DatabaseOptions = {}): Options {
  return driverFor(db.dialect).sequelizeOptions(db, { logging: options.logging ?? false, poolMax: options.poolMax });
}

/**
 * Creates the SQLite file, empty, mode 0600 before SQLite does (it would make it 0644): it holds
 * password hashes and jobs' params, and SQLite gives its -wal and -shm files the same mode.
 * An existing file keeps its mode.
 */
function createSqliteFile(storage: string): void {
  fs.mkdirSync(path.dirname(storage), { recursive: true });
  try {
    fs.closeSync(fs.openSync(storage, 'wx', 0o600));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

export function createDatabase(db: DatabaseConfig, options: DatabaseOptions = {}): Database {
  if (db.dialect === 'sqlite') createSqliteFile(db.storage);
  const sequelize = new Sequelize(sequelizeOptions(db, options));
  const models = initModels(sequelize);
  const driver = driverFor(db.dialect);
  const lane = driver.openLane?.(sequelize) ?? null;
  return {
    sequelize,
    dialect: db.dialect,
    driver,
    models,
    lane,
    close: async () => {
      await lane?.close();
      await sequelize.close();
    },
  };
}

/**
 * Runs `work` on a MySQL server connection with no database selected: creating and dropping
 * databases (tests, benchmarks, first installs).
 */
export async function withMysqlServer<T>(
  db: Extract<DatabaseConfig, { dialect: 'mysql' }>,
  work: (server: Sequelize) => Promise<T>,
): Promise<T> {
  const { database: _database, ...options } = sequelizeOptions(db);
  void _database;
  const server = new Sequelize({ ...options, pool: { max: 1, min: 0 } });
  try {
    return await work(server);
  } finally {
    await server.close();
  }
}

/** Drops and creates a MySQL database (utf8mb4), empty. */
export function recreateMysqlDatabase(db: Extract<DatabaseConfig, { dialect: 'mysql' }>): Promise<void> {
  return withMysqlServer(db, async (server) => {
    await server.query(`DROP DATABASE IF EXISTS \`${db.database}\``);
    await server.query(`CREATE DATABASE \`${db.database}\` CHARACTER SET utf8mb4`);
  });
}

/**
 * Runs `work` on a PostgreSQL connection to its maintenance database `postgres` (creating and
 * dropping databases: tests, benchmarks).
 */
export async function withPostgresServer<T>(
  db: Extract<DatabaseConfig, { dialect: 'postgres' }>,
  work: (server: Sequelize) => Promise<T>,
): Promise<T> {
  const server = new Sequelize({ ...sequelizeOptions({ ...db, database: 'postgres' }), pool: { max: 1, min: 0 } });
  try {
    return await work(server);
  } finally {
    await server.close();
  }
}

/** Drops (ending its sessions) and creates a PostgreSQL database (UTF-8), empty. */
export function recreatePostgresDatabase(db: Extract<DatabaseConfig, { dialect: 'postgres' }>): Promise<void> {
  return withPostgresServer(db, async (server) => {
    const name = `"${db.database.replaceAll('"', '""')}"`;
    await server.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await server.query(`CREATE DATABASE ${name} ENCODING 'UTF8' TEMPLATE template0`);
  });
}

/** Drops and creates the database of a server configuration, empty. */
export function recreateServerDatabase(db: Extract<DatabaseConfig, { dialect: 'mysql' | 'postgres' }>): Promise<void> {
  return db.dialect === 'mysql' ? recreateMysqlDatabase(db) : recreatePostgresDatabase(db);
}
