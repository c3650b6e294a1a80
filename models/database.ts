// The database handle: one Sequelize instance per process, with the dialect's quirks settled here.
import fs from 'node:fs';
import path from 'node:path';
import { Sequelize, Transaction, type Options } from 'sequelize';
import type { DatabaseConfig } from '../config';
import { initModels, type Models } from './models';

export type Dialect = 'mysql' | 'sqlite';

export interface Database {
  sequelize: Sequelize;
  dialect: Dialect;
  models: Models;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  logging?: false | ((sql: string) => void);
  poolMax?: number;
}

/** Options shared by the app's handle and sequelize-cli's config file. */
export function sequelizeOptions(db: DatabaseConfig, options: DatabaseOptions = {}): Options {
  const common: Options = { logging: options.logging ?? false };
  if (db.dialect === 'mysql') {
    return {
      ...common,
      dialect: 'mysql',
      host: db.host,
      port: db.port,
      username: db.user,
      password: db.password,
      database: db.database,
      timezone: '+00:00',
      pool: { max: options.poolMax ?? 10, min: 0, acquire: 30000, idle: 10000 },
      dialectOptions: { dateStrings: false, supportBigNumbers: true, bigNumberStrings: false, connectTimeout: 10000 },
    };
  }
  return {
    ...common,
    dialect: 'sqlite',
    storage: db.storage,
    // IMMEDIATE takes the write lock up front, so two processes never deadlock upgrading a read lock.
    transactionType: Transaction.TYPES.IMMEDIATE,
    dialectModule: sqliteWithBusyTimeout(),
    retry: { max: 10, match: [/SQLITE_BUSY/] },
  };
}

/**
 * sqlite3 with every connection waiting for the file lock instead of failing at once
 * (Sequelize opens one connection per transaction and runs no connect hooks for SQLite).
 */
function sqliteWithBusyTimeout(): object {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const sqlite3 = require('sqlite3') as typeof import('sqlite3');
  class Database extends sqlite3.Database {
    constructor(file: string, mode: number, callback: (err: Error | null) => void) {
      super(file, mode, callback);
      this.configure('busyTimeout', 10000);
      this.exec('PRAGMA synchronous = NORMAL');
    }
  }
  return { ...sqlite3, Database };
}

export function createDatabase(db: DatabaseConfig, options: DatabaseOptions = {}): Database {
  if (db.dialect === 'sqlite') fs.mkdirSync(path.dirname(db.storage), { recursive: true });
  const sequelize = new Sequelize(sequelizeOptions(db, options));
  const models = initModels(sequelize);
  return {
    sequelize,
    dialect: db.dialect,
    models,
    close: () => sequelize.close(),
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
