// `migrate --queue-only` (SPEC §14): the queue's tables in a host's database, whose own Users,
// Sessions and SequelizeMeta stay exactly as they were; and the refusals that keep a first install
// from writing into another program's tables. Run as an operator runs it: the compiled CLI.
import { databaseEnv, type DatabaseConfig } from '../config';
import type { Database } from '../models/database';
import { pendingMigrations, recordedMigrations, tableNames } from '../models/migrate';
import { runScript, serviceEnv, show } from './helpers/cli';
import { HOST_MIGRATIONS, layOutHostJobs, layOutHostLogin, tableRows } from './helpers/container-creator-db';
import { emptyDatabase } from './helpers/database';

function cli(config: DatabaseConfig, ...args: string[]) {
  const env = { ...databaseEnv(config), JOB_TASKS_FILE: 'examples/container-creator/tasks.json' };
  return runScript('dist/cli.js', args, serviceEnv(env));
}

/** A run that must succeed, its output in the failure message. */
function succeeded(run: ReturnType<typeof cli>): string {
  if (run.status !== 0) throw new Error(show(run));
  return run.stdout;
}

async function withEmptyDatabase(work: (db: Database, config: DatabaseConfig) => Promise<void>): Promise<void> {
  const { db, config } = await emptyDatabase();
  try {
    await work(db, config);
  } finally {
    await db.close();
  }
}

/** Columns and rows of the host's own tables. */
async function hostTables(db: Database) {
  const qi = db.sequelize.getQueryInterface();
  return {
    users: [await qi.describeTable('Users'), await tableRows(db, 'Users', 'uidNumber')],
    sessions: [await qi.describeTable('Sessions'), await tableRows(db, 'Sessions', 'session_id')],
    meta: await tableRows(db, 'SequelizeMeta', 'name'),
  };
}

test("--queue-only installs the queue's tables beside the host's Users and Sessions, which stay as they were", async () => {
  await withEmptyDatabase(async (db, config) => {
    await layOutHostLogin(db);
    const before = await hostTables(db);
    const applied = /applied (\d+) migration\(s\)/.exec(succeeded(cli(config, 'migrate', '--queue-only')));
    expect(await hostTables(db)).toEqual(before);
    const tables = await tableNames(db);
    for (const table of [
      'Jobs',
      'JobStatuses',
      'JobRunners',
      'JobGroups',
      'JobSchedules',
      'JobScheduleFires',
      'JobOwners',
    ]) {
      expect(tables).toContain(table);
    }
    expect(tables).not.toContain('ApiTokens');
    expect(tables).not.toContain('LoginFailures');
    // The history is ours alone; the host's SequelizeMeta still lists only the host's migrations.
    expect(await recordedMigrations(db, 'SequelizeMeta')).toEqual(HOST_MIGRATIONS);
    const ours = await recordedMigrations(db, 'ContainerJobsMeta');
    expect(ours).toHaveLength(Number(applied?.[1]));
    expect(ours.some((name) => /users|accounts/.test(name))).toBe(false);
    // The daemons' check: the schema is current in its layout.
    expect(await pendingMigrations(db)).toEqual([]);

    // A plain migrate later keeps the layout: nothing to do, still no login tables.
    expect(succeeded(cli(config, 'migrate'))).toMatch(/schema is current/);
    expect(await hostTables(db)).toEqual(before);
    expect(await tableNames(db)).not.toContain('ApiTokens');
  });
});

test('a first install refuses tables of the same names made by another program, and changes nothing', async () => {
  await withEmptyDatabase(async (db, config) => {
    await layOutHostLogin(db);
    const before = await hostTables(db);
    const full = cli(config, 'migrate');
    expect(full.status).toBe(1);
    expect(full.stderr).toMatch(/Users, Sessions table\(s\) of another program.*--queue-only.*nothing was changed/);
    await layOutHostJobs(db);
    const tables = await tableNames(db);
    const queueOnly = cli(config, 'migrate', '--queue-only');
    expect(queueOnly.status).toBe(1);
    expect(queueOnly.stderr).toMatch(/Jobs and JobStatuses table\(s\) that container-jobs did not make.*--adopt/);
    expect(await tableNames(db)).toEqual(tables);
    expect(await hostTables(db)).toEqual(before);
  });
});

test('--queue-only on a full install, and --adopt where there is nothing of the host, are refused', async () => {
  await withEmptyDatabase(async (db, config) => {
    const empty = cli(config, 'migrate', '--adopt', '--map', 'examples/container-creator/adopt-commands.json');
    expect(empty.status).toBe(1);
    expect(empty.stderr).toMatch(/no Jobs and JobStatuses tables here: nothing to adopt/);
    expect(await tableNames(db)).toEqual(new Set());
    succeeded(cli(config, 'migrate'));
    const queueOnly = cli(config, 'migrate', '--queue-only');
    expect(queueOnly.status).toBe(1);
    expect(queueOnly.stderr).toMatch(/installed here with its own login tables/);
    const adopt = cli(config, 'migrate', '--adopt', '--map', 'examples/container-creator/adopt-commands.json');
    expect(adopt.status).toBe(1);
    expect(adopt.stderr).toMatch(/nothing to adopt/);
    expect(cli(config, 'migrate', '--adopt').stderr).toMatch(/--adopt needs --map FILE/);
  });
});
