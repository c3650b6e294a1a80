// The compiled `container-jobs` command (README, "Command line", `migrate` included) against a real database.
import type { SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { QueryTypes } from 'sequelize';
import type { DatabaseConfig } from '../config';
import {
  createDatabase,
  recreateServerDatabase,
  withMysqlServer,
  withPostgresServer,
  type Database,
} from '../models/database';
import { parseJsonColumn } from '../models/models';
import { runScript, serviceEnv, show } from './helpers/cli';
import { ROOT, databaseEnv, dialect, freshDatabase, testDatabaseConfig, sqlOf } from './helpers/database';

const worker = process.env.JEST_WORKER_ID ?? '0';
const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'cli-tasks');
const GOOD_TASKS = path.join(FIXTURES, 'good.json');

/** The migration names both tools must record: the files of migrations/, as compiled `.js`. */
const MIGRATION_NAMES = fs
  .readdirSync(path.join(ROOT, 'migrations'))
  .filter((f) => /^\d{14}-.+\.ts$/.test(f) && !f.endsWith('.d.ts'))
  .map((f) => f.replace(/\.ts$/, '.js'))
  .sort();

let tmp: string;
let config: DatabaseConfig;
let db: Database;
const extraMysqlDatabases: string[] = [];

/** Only what a service would get, plus the database and task file: nothing of the jest process leaks in. */
function envFor(database: DatabaseConfig, extra: Record<string, string> = {}): Record<string, string> {
  return serviceEnv({ ...databaseEnv(database), JOB_TASKS_FILE: GOOD_TASKS, ...extra });
}

function run(
  args: string[],
  database: DatabaseConfig = config,
  extra: Record<string, string> = {},
): SpawnSyncReturns<string> {
  return runScript(path.join('dist', 'cli.js'), args, envFor(database, extra));
}

function sequelizeCli(args: string[], database: DatabaseConfig): SpawnSyncReturns<string> {
  return runScript(path.join('node_modules', '.bin', 'sequelize-cli'), args, envFor(database));
}

/** A database with no tables at all: a temp SQLite file, or a dropped and recreated server database. */
async function emptyDatabase(suffix: string): Promise<DatabaseConfig> {
  if (dialect === 'sqlite') return { dialect: 'sqlite', storage: path.join(tmp, `${suffix}.sqlite`) };
  const target = testDatabaseConfig(`cj_test_cli_w${worker}_${suffix}`);
  if (target.dialect === 'sqlite') throw new Error('expected a server configuration');
  await recreateServerDatabase(target);
  extraMysqlDatabases.push(target.database);
  return target;
}

async function metaNames(database: DatabaseConfig): Promise<string[]> {
  const handle = createDatabase(database);
  try {
    const rows = await sqlOf(handle).query<{ name: string }>('SELECT name FROM SequelizeMeta ORDER BY name', {
      type: QueryTypes.SELECT,
    });
    return rows.map((r) => r.name);
  } finally {
    await handle.close();
  }
}

async function jobCount(): Promise<number> {
  const [row] = await sqlOf(db).query<{ n: number | string }>('SELECT COUNT(*) AS n FROM Jobs', {
    type: QueryTypes.SELECT,
  });
  return Number(row.n);
}

interface JobRow {
  id: number;
  task: string;
  params: unknown;
  command: string | null;
  status: string;
  createdBy: string | null;
  priority: number;
}

async function jobRow(id: number): Promise<JobRow | undefined> {
  const [row] = await sqlOf(db).query<JobRow>(
    'SELECT id, task, params, command, status, createdBy, priority FROM Jobs WHERE id = :id',
    { type: QueryTypes.SELECT, replacements: { id } },
  );
  return row && { ...row, id: Number(row.id), priority: Number(row.priority), params: parseJsonColumn(row.params) };
}

beforeAll(async () => {
  if (!fs.existsSync(path.join(ROOT, 'dist', 'cli.js'))) {
    throw new Error('dist/cli.js is missing: run "npm run build" first (npm test does it as pretest)');
  }
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cj-cli-'));
  if (dialect !== 'sqlite') {
    ({ db, config } = await freshDatabase(`cj_test_cli_w${worker}`));
  } else {
    config = { dialect: 'sqlite', storage: path.join(tmp, 'jobs.sqlite') };
    const migrated = run(['migrate']);
    expect(migrated.status).toBe(0);
    db = createDatabase(config);
  }
});

afterAll(async () => {
  await db?.close();
  if (extraMysqlDatabases.length > 0 && config.dialect === 'mysql') {
    await withMysqlServer(config, async (server) => {
      for (const name of extraMysqlDatabases) await server.query(`DROP DATABASE IF EXISTS \`${name}\``);
    });
  }
  if (extraMysqlDatabases.length > 0 && config.dialect === 'postgres') {
    await withPostgresServer(config, async (server) => {
      for (const name of extraMysqlDatabases) await server.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    });
  }
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('container-jobs migrate', () => {
  it('applies every migration once; the second run has nothing to do', async () => {
    const database = await emptyDatabase('twice');
    const first = run(['migrate'], database);
    expect(first.status).toBe(0);
    expect(first.stdout).toMatch(new RegExp(`applied ${MIGRATION_NAMES.length} migration\\(s\\)`));
    for (const name of MIGRATION_NAMES) expect(first.stdout).toContain(name);

    const second = run(['migrate'], database);
    expect(second.status).toBe(0);
    expect(second.stdout).toMatch(/nothing to migrate/);
    expect(second.stdout).not.toMatch(/applied/);
    // The first log line says which database it uses.
    expect(second.stderr.split('\n')[0]).toMatch({ mysql: /MySQL/, postgres: /PostgreSQL/, sqlite: /SQLite/ }[dialect]);
    expect(await metaNames(database)).toEqual(MIGRATION_NAMES);
  });

  it('agrees with sequelize-cli: container-jobs migrate first, then sequelize-cli db:migrate does nothing', async () => {
    const database = await emptyDatabase('ours_first');
    const ours = run(['migrate'], database);
    expect(ours.status).toBe(0);
    const before = await metaNames(database);
    expect(before).toEqual(MIGRATION_NAMES);

    const theirs = sequelizeCli(['db:migrate'], database);
    expect(theirs.status).toBe(0);
    expect(theirs.stdout).toMatch(/No migrations were executed, database schema was already up to date/);
    expect(theirs.stdout).not.toMatch(/: migrating/);
    expect(await metaNames(database)).toEqual(before);
  });

  it('agrees with sequelize-cli: sequelize-cli db:migrate first, then container-jobs migrate does nothing', async () => {
    const database = await emptyDatabase('cli_first');
    const theirs = sequelizeCli(['db:migrate'], database);
    expect(theirs.status).toBe(0);
    for (const name of MIGRATION_NAMES) expect(theirs.stdout).toContain(name.replace(/\.js$/, ''));
    const before = await metaNames(database);
    expect(before).toEqual(MIGRATION_NAMES);

    const ours = run(['migrate'], database);
    expect(ours.status).toBe(0);
    expect(ours.stdout).toMatch(/nothing to migrate/);
    expect(await metaNames(database)).toEqual(before);

    // And the schema sequelize-cli built is one the CLI can enqueue into.
    const enqueued = run(['enqueue', 'count', '--param', 'to=3'], database);
    expect(enqueued.status).toBe(0);
    expect(enqueued.stdout.trim()).toMatch(/^\d+$/);
  });
});

describe('container-jobs tasks check', () => {
  it('accepts a good file given as FILE', () => {
    const result = run(['tasks', 'check', GOOD_TASKS]);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/3 task\(s\), 0 schedule\(s\), all valid/);
    expect(result.stdout).toMatch(/^count: node demo\/count\.js/m);
    expect(result.stdout).toMatch(/^noop \(admin only\)/m);
  });

  it('checks JOB_TASKS_FILE when no FILE is given', () => {
    const result = run(['tasks', 'check']);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain(GOOD_TASKS);
  });

  it.each([
    ['bad-string-param.json', /task "greet": string param "name" must have "enum" or "pattern"/],
    ['bad-pass-env.json', /task "leak": passEnv may not name MYSQL_PASSWORD/],
  ])('refuses %s, naming the task and the rule', (file, message) => {
    const result = run(['tasks', 'check', path.join(FIXTURES, file)]);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).toContain(file);
    expect(result.stdout).not.toMatch(/all valid/);
  });

  it('refuses a file that is not JSON', () => {
    const file = path.join(tmp, 'not-json.json');
    fs.writeFileSync(file, '{ "tasks": { "echo": { "argv": ["echo"], } } }');
    const result = run(['tasks', 'check', file]);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/not valid JSON/);
  });

  it('refuses a missing file', () => {
    const result = run(['tasks', 'check', path.join(tmp, 'nope.json')]);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain('nope.json');
  });
});

describe('container-jobs enqueue', () => {
  it('validates, enqueues and prints the new id', async () => {
    const result = run(['enqueue', 'count', '--param', 'to=5', '--param', 'delayMs=250', '--as', 'alice']);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^\d+\n$/);
    const id = Number(result.stdout.trim());
    const row = await jobRow(id);
    expect(row).toEqual({
      id,
      task: 'count',
      params: { to: 5, delayMs: 250 },
      command: 'node demo/count.js --to=5 --delay-ms=250',
      status: 'pending',
      createdBy: 'alice',
      priority: 0,
    });
    // Typed as the schema says: numbers, not the strings of the command line.
    expect(typeof (row!.params as Record<string, unknown>).to).toBe('number');
  });

  it('accepts --name=value, leaves out an optional param, and is owned by the OS user without --as', async () => {
    const result = run(['enqueue', 'count', '--param=to=7', '--priority', '3']);
    expect(result.status).toBe(0);
    const row = await jobRow(Number(result.stdout.trim()));
    expect(row).toMatchObject({
      task: 'count',
      params: { to: 7 },
      command: 'node demo/count.js --to=7',
      createdBy: os.userInfo().username,
      priority: 3,
      status: 'pending',
    });
  });

  it('stores strings and booleans by type, and a hostile value as one quoted word', async () => {
    const message = "$(touch /tmp/x); rm -rf ~ it's";
    const result = run(['enqueue', 'echo', '--param', `message=${message}`, '--param', 'loud=true', '--as', 'bob']);
    expect(result.status).toBe(0);
    const row = await jobRow(Number(result.stdout.trim()));
    expect(row).toMatchObject({
      task: 'echo',
      params: { message, loud: true },
      command: `echo '$(touch /tmp/x); rm -rf ~ it'\\''s'`,
      createdBy: 'bob',
    });
  });

  it('gives each job its own id', () => {
    const a = Number(run(['enqueue', 'count', '--param', 'to=1']).stdout.trim());
    const b = Number(run(['enqueue', 'count', '--param', 'to=1']).stdout.trim());
    expect(b).toBeGreaterThan(a);
  });

  it.each<[string, string[], string]>([
    ['an integer param that is not a number', ['--param', 'to=abc'], 'to'],
    ['an integer param out of range', ['--param', 'to=0'], 'to'],
    ['an integer param with a fraction', ['--param', 'to=2.5'], 'to'],
    ['a missing required param', ['--param', 'delayMs=5'], 'to'],
    ['an unknown param', ['--param', 'to=5', '--param', 'from=1'], 'from'],
  ])('refuses %s, naming it, and writes nothing', async (_what, args, param) => {
    const before = await jobCount();
    const result = run(['enqueue', 'count', ...args, '--as', 'alice']);
    expect(result.status).not.toBe(0);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(`"${param}"`);
    expect(await jobCount()).toBe(before);
  });

  it('refuses a boolean param that is not true/false', async () => {
    const before = await jobCount();
    const result = run(['enqueue', 'echo', '--param', 'message=hi', '--param', 'loud=yes']);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain('"loud"');
    expect(await jobCount()).toBe(before);
  });

  it('refuses an unknown task and writes nothing', async () => {
    const before = await jobCount();
    const result = run(['enqueue', 'reboot-cluster', '--param', 'to=5']);
    expect(result.status).not.toBe(0);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('reboot-cluster');
    expect(await jobCount()).toBe(before);
  });

  it.each([[['--bogus', 'x']], [['--command', 'rm -rf /']], [['--admin']]])(
    'refuses the unknown option %j and writes nothing',
    async (option) => {
      const before = await jobCount();
      const result = run(['enqueue', 'count', '--param', 'to=5', ...option]);
      expect(result.status).not.toBe(0);
      expect(result.stdout).not.toMatch(/^\d+$/m);
      expect(result.stderr).toContain(option[0]);
      expect(await jobCount()).toBe(before);
    },
  );

  it('refuses a bad --priority, a param without "=", and a missing TASK, writing nothing', async () => {
    const before = await jobCount();
    for (const args of [
      ['enqueue', 'count', '--param', 'to=5', '--priority', 'high'],
      ['enqueue', 'count', '--param', 'to'],
      ['enqueue', '--param', 'to=5'],
      ['enqueue', 'count', 'echo', '--param', 'to=5'],
    ]) {
      const result = run(args);
      if (result.status === 0) throw new Error(`container-jobs ${args.join(' ')} was accepted:\n${show(result)}`);
    }
    expect(await jobCount()).toBe(before);
  });
});

describe('container-jobs usage', () => {
  it('prints usage and exits 0 for --help, non-zero for nothing or an unknown command', () => {
    const help = run(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/usage: npx container-jobs/);
    expect(run([]).status).not.toBe(0);
    const unknown = run(['frobnicate']);
    expect(unknown.status).not.toBe(0);
    expect(unknown.stderr).toContain('frobnicate');
  });

  it('explains a failed command', () => {
    const result = run(['tasks', 'lint']);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/tasks check/);
  });
});
