// Runs the same migration files sequelize-cli runs, recording the same names in SequelizeMeta.
import fs from 'node:fs';
import path from 'node:path';
import type { QueryInterface } from 'sequelize';
import { SequelizeStorage, Umzug } from 'umzug';
import type { Database } from './database';

interface MigrationModule {
  up(queryInterface: QueryInterface): Promise<void>;
  down(queryInterface: QueryInterface): Promise<void>;
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

export function createMigrator(db: Database, log: (line: string) => void = () => {}): Umzug<QueryInterface> {
  const queryInterface = db.sequelize.getQueryInterface();
  return new Umzug<QueryInterface>({
    migrations: listMigrations().map(({ name, file }) => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const load = () => require(file) as MigrationModule;
      return { name, up: () => load().up(queryInterface), down: () => load().down(queryInterface) };
    }),
    context: queryInterface,
    storage: new SequelizeStorage({ sequelize: db.sequelize, tableName: 'SequelizeMeta' }),
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

/** Applies every pending migration; returns the names it applied. */
export async function migrate(db: Database, log?: (line: string) => void): Promise<string[]> {
  for (const statement of db.driver.beforeMigrate) await db.sequelize.query(statement);
  const applied = await createMigrator(db, log).up();
  return applied.map((m) => m.name);
}

/** The names of migrations not yet applied (empty when the schema is current). */
export async function pendingMigrations(db: Database): Promise<string[]> {
  return (await createMigrator(db).pending()).map((m) => m.name);
}
