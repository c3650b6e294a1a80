// Runs the same migration files sequelize-cli runs, recording the same names in SequelizeMeta.
import fs from 'node:fs';
import path from 'node:path';
import type { QueryInterface } from 'sequelize';
import { SequelizeStorage, Umzug } from 'umzug';
import type { Database } from './database';

interface MigrationModule {
  up(queryInterface: QueryInterface): Promise<void>;
  down(queryInterface: QueryInterface): Promise<void>;
  /** 'login': the standalone login's tables (Users, ApiTokens, Sessions, LoginFailures), which a host has its own of. */
  scope?: 'login';
}

/**
 * How the schema is installed. 'full': the queue and the standalone login's tables, history in
 * SequelizeMeta (what sequelize-cli writes too). 'queue-only': the queue's tables alone, inside a
 * host's database, history in ContainerJobsMeta, so the host's own SequelizeMeta (and its
 * sequelize-cli's undo) never meets our names. Once made, a database keeps its layout.
 */
export type SchemaLayout = 'full' | 'queue-only';

export const HISTORY_TABLE: Record<SchemaLayout, string> = { full: 'SequelizeMeta', 'queue-only': 'ContainerJobsMeta' };

/** The tables of the standalone login (migrations with scope 'login'); a queue-only install never touches them. */
export const LOGIN_TABLES = ['Users', 'ApiTokens', 'Sessions', 'LoginFailures'];

/** The queue's first migration: its name in a history says container-jobs made this schema. */
export const FIRST_MIGRATION = '20261123000001-create-jobs.js';

/** `migrate` will not go on as things stand (tables of another program, a layout that cannot change). */
export class MigrationRefusedError extends Error {
  override name = 'MigrationRefusedError';
}

const MIGRATIONS_DIR = path.join(__dirname, '..', 'migrations');

/** The migrations beside this module: `.js` once compiled, `.ts` under ts-jest; recorded as `.js` either way. */
function listMigrations(): { name: string; file: string }[] {
  return fs
    .readdirSync(MIGRATIONS_DIR)
    .filter((f) => /^\d{14}-.+\.(js|ts)$/.test(f) && !f.endsWith('.d.ts'))
    .sort()
    .map((f) => ({ name: f.replace(/\.ts$/, '.js'), file: path.join(MIGRATIONS_DIR, f) }));
}

function loadMigration(file: string): MigrationModule {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(file) as MigrationModule;
}

export function createMigrator(
  db: Database,
  log: (line: string) => void = () => {},
  layout: SchemaLayout = 'full',
): Umzug<QueryInterface> {
  const queryInterface = db.sequelize.getQueryInterface();
  const listed = listMigrations().filter(({ file }) => layout === 'full' || loadMigration(file).scope !== 'login');
  return new Umzug<QueryInterface>({
    migrations: listed.map(({ name, file }) => ({
      name,
      up: () => loadMigration(file).up(queryInterface),
      down: () => loadMigration(file).down(queryInterface),
    })),
    context: queryInterface,
    storage: historyStorage(db, HISTORY_TABLE[layout]),
    logger: {
      info: (event: Record<string, unknown>) => {
        if (event.event === 'migrated') log(`migrated ${String(event.name)}`);
      },
      warn: () => {},
      error: () => {},
      debug: () => {},
    },
  });
}

/**
 * A history table's storage. Its model is named after the table: umzug reuses a model of the same
 * name, so two histories under its default name would both write to whichever table came first.
 */
export function historyStorage(db: Database, table: string): SequelizeStorage {
  return new SequelizeStorage({ sequelize: db.sequelize, tableName: table, modelName: table });
}

/** The database's tables by name. */
export async function tableNames(db: Database): Promise<Set<string>> {
  const tables = (await db.sequelize.getQueryInterface().showAllTables()) as unknown[];
  return new Set(tables.map((t) => (typeof t === 'string' ? t : String((t as { tableName: unknown }).tableName))));
}

const ownUsers = new WeakMap<object, boolean>();

/**
 * Whether `Users` is ours (the full layout), read once per handle: in a host's queue-only install it
 * is the host's own table, with its own columns, and nothing of ours may query it.
 */
export async function hasOwnUsers(db: Database): Promise<boolean> {
  const known = ownUsers.get(db.sequelize);
  if (known !== undefined) return known;
  const tables = await tableNames(db);
  const layout = await installedLayout(db, tables);
  // Not installed yet (a test's handle before migrating): ask again next time.
  if (layout === null) return tables.has('Users');
  ownUsers.set(db.sequelize, layout === 'full');
  return layout === 'full';
}

/** The names a history table holds (none when it does not exist; it is not created by looking). */
export async function recordedMigrations(db: Database, table: string, tables?: Set<string>): Promise<string[]> {
  if (!(tables ?? (await tableNames(db))).has(table)) return [];
  return historyStorage(db, table).executed();
}

/** How container-jobs is installed in this database; null when it is not yet. */
export async function installedLayout(db: Database, tables?: Set<string>): Promise<SchemaLayout | null> {
  const names = tables ?? (await tableNames(db));
  if (names.has(HISTORY_TABLE['queue-only'])) return 'queue-only';
  return (await recordedMigrations(db, HISTORY_TABLE.full, names)).includes(FIRST_MIGRATION) ? 'full' : null;
}

/** A first install must not write into another program's tables of the same names: say what to do instead. */
function refuseForeignTables(tables: Set<string>, layout: SchemaLayout): void {
  const jobs = ['Jobs', 'JobStatuses'].filter((t) => tables.has(t));
  if (jobs.length > 0) {
    throw new MigrationRefusedError(
      `this database has ${jobs.join(' and ')} table(s) that container-jobs did not make (the container-creator's?): ` +
        'convert them with `npx container-jobs migrate --adopt`, or use another database',
    );
  }
  const login = LOGIN_TABLES.filter((t) => tables.has(t));
  if (layout === 'full' && login.length > 0) {
    throw new MigrationRefusedError(
      `this database has ${login.join(', ')} table(s) of another program: install the queue's tables alone ` +
        'with `npx container-jobs migrate --queue-only`',
    );
  }
}

export interface MigrateOptions {
  /** A new install gets the queue's tables alone (no Users, ApiTokens, Sessions, LoginFailures). */
  queueOnly?: boolean;
}

/**
 * Applies every pending migration of the database's layout (a new install: `queueOnly`'s); returns the
 * names it applied. A new install refuses tables of the same names made by another program.
 */
export async function migrate(
  db: Database,
  log?: (line: string) => void,
  options: MigrateOptions = {},
): Promise<string[]> {
  const tables = await tableNames(db);
  const installed = await installedLayout(db, tables);
  if (installed === 'full' && options.queueOnly) {
    throw new MigrationRefusedError(
      'container-jobs is installed here with its own login tables (history in SequelizeMeta); ' +
        '--queue-only applies to a new install only: run `npx container-jobs migrate`',
    );
  }
  const layout = installed ?? (options.queueOnly ? 'queue-only' : 'full');
  if (installed === null) refuseForeignTables(tables, layout);
  for (const statement of db.driver.beforeMigrate) await db.sequelize.query(statement);
  const applied = await createMigrator(db, log, layout).up();
  return applied.map((m) => m.name);
}

/** The names of migrations not yet applied in the database's layout (empty when the schema is current). */
export async function pendingMigrations(db: Database): Promise<string[]> {
  const layout = (await installedLayout(db)) ?? 'full';
  return (await createMigrator(db, undefined, layout).pending()).map((m) => m.name);
}
