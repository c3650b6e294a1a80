#!/usr/bin/env node
// Entry: the `container-jobs` command.
import { ConfigError, EX_CONFIG, describeDatabase, loadConfig, type Config } from './config';
import { createDatabase, type Database } from './models/database';
import { migrate } from './models/migrate';
import { openDatabase } from './models/open';
import { Queue } from './models/queue';
import { TaskFileError, loadTaskFile } from './tasks/catalog';
import { ParamsError, displayCommand, paramsFromStrings, renderArgv } from './tasks/render';

const EX_USAGE = 64;
const EX_DATAERR = 65;

class UsageError extends Error {}
class InputError extends Error {}

const USAGE = `usage: container-jobs <command>

  migrate                                   apply database migrations
  tasks check [FILE]                        check a task file (default: JOB_TASKS_FILE)
  enqueue TASK [--param k=v]... [--as USER] [--priority N]
                                            validate and enqueue a job; prints its id
`;

interface Parsed {
  positional: string[];
  options: Map<string, string[]>;
}

/** `--name value` and `--name=value`; a flag in `booleans` takes no value. */
function parseArgs(args: string[], booleans: string[] = []): Parsed {
  const positional: string[] = [];
  const options = new Map<string, string[]>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    let value: string;
    if (booleans.includes(name)) value = 'true';
    else if (eq !== -1) value = arg.slice(eq + 1);
    else if (i + 1 < args.length) value = args[++i];
    else throw new UsageError(`--${name} needs a value`);
    options.set(name, [...(options.get(name) ?? []), value]);
  }
  return { positional, options };
}

function only(parsed: Parsed, allowed: string[]): void {
  for (const name of parsed.options.keys()) {
    if (!allowed.includes(name)) throw new UsageError(`unknown option --${name}`);
  }
}

async function withDatabase<T>(config: Config, work: (db: Database) => Promise<T>): Promise<T> {
  const db = await openDatabase(config.database, { log: (l) => console.error(l) });
  try {
    return await work(db);
  } finally {
    await db.close();
  }
}

async function cmdMigrate(config: Config): Promise<number> {
  console.error(describeDatabase(config.database));
  const db = createDatabase(config.database);
  try {
    const applied = await migrate(db, (line) => console.log(line));
    console.log(
      applied.length === 0 ? 'schema is current; nothing to migrate' : `applied ${applied.length} migration(s)`,
    );
  } finally {
    await db.close();
  }
  return 0;
}

function cmdTasksCheck(config: Config, args: string[]): number {
  const parsed = parseArgs(args);
  only(parsed, []);
  if (parsed.positional.length > 1) throw new UsageError('tasks check takes at most one FILE');
  const file = parsed.positional[0] ?? config.tasksFile;
  const tasks = loadTaskFile(file);
  for (const task of tasks.values()) {
    console.log(`${task.name}${task.adminOnly ? ' (admin only)' : ''}: ${task.argv.join(' ')}`);
  }
  console.log(`${file}: ${tasks.size} task(s), all valid`);
  return 0;
}

async function cmdEnqueue(config: Config, args: string[]): Promise<number> {
  const parsed = parseArgs(args);
  only(parsed, ['param', 'as', 'priority']);
  if (parsed.positional.length !== 1) throw new UsageError('enqueue takes exactly one TASK');
  const name = parsed.positional[0];
  const task = loadTaskFile(config.tasksFile).get(name);
  if (!task) throw new InputError(`unknown task "${name}" (see: container-jobs tasks check)`);
  const params = paramsFromStrings(task, parsed.options.get('param') ?? []);
  const priorityRaw = parsed.options.get('priority')?.at(-1) ?? '0';
  if (!/^-?\d+$/.test(priorityRaw)) throw new UsageError('--priority must be a whole number');
  const createdBy = parsed.options.get('as')?.at(-1) ?? null;
  const command = displayCommand(renderArgv(task, params));
  const id = await withDatabase(config, (db) =>
    new Queue(db).enqueue({ task: name, params, command, createdBy, priority: Number(priorityRaw) }),
  );
  console.log(id);
  return 0;
}

async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return command === undefined ? EX_USAGE : 0;
  }
  const config = loadConfig();
  switch (command) {
    case 'migrate':
      return cmdMigrate(config);
    case 'tasks':
      if (rest[0] !== 'check') throw new UsageError('usage: container-jobs tasks check [FILE]');
      return cmdTasksCheck(config, rest.slice(1));
    case 'enqueue':
      return cmdEnqueue(config, rest);
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) {
      console.error(`container-jobs: ${err.message}\n\n${USAGE}`);
      process.exit(EX_USAGE);
    }
    if (err instanceof ConfigError || err instanceof TaskFileError) {
      console.error(`container-jobs: ${err.message}`);
      process.exit(err instanceof ConfigError ? EX_CONFIG : EX_DATAERR);
    }
    if (err instanceof ParamsError || err instanceof InputError) {
      console.error(`container-jobs: ${err.message}`);
      process.exit(EX_DATAERR);
    }
    console.error(`container-jobs: ${(err as Error)?.message ?? String(err)}`);
    process.exit(1);
  },
);
