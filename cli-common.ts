// What the `container-jobs` commands share: argument parsing, their errors and exit statuses, and
// the database handle of a one-shot command. No side effects: cli.ts is the entry.
import os from 'node:os';
import type { Config } from './config';
import type { Logger } from './log';
import type { Database } from './models/database';
import { openDatabase } from './models/open';

export const EX_USAGE = 64;
export const EX_DATAERR = 65;

/** The command line is wrong: the message, then the usage text (EX_USAGE). */
export class UsageError extends Error {}

/** The command is well formed but its data is not (EX_DATAERR): an unknown task, params that do not validate. */
export class InputError extends Error {}

/**
 * The queue refuses the command as things stand: no such job, or one in the wrong state (exit 1,
 * the API's 404 and 409).
 */
export class RefusedError extends Error {}

export interface Parsed {
  positional: string[];
  options: Map<string, string[]>;
}

/** `--name value` and `--name=value`; a flag in `booleans` takes no value. */
export function parseArgs(args: string[], booleans: string[] = []): Parsed {
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

export function only(parsed: Parsed, allowed: string[]): void {
  for (const name of parsed.options.keys()) {
    if (!allowed.includes(name)) throw new UsageError(`unknown option --${name}`);
  }
}

/** The last value given for `--name` (a repeated option: the last one wins). */
export function lastOption(parsed: Parsed, name: string): string | undefined {
  return parsed.options.get(name)?.at(-1);
}

export async function withDatabase<T>(config: Config, log: Logger, work: (db: Database) => Promise<T>): Promise<T> {
  const db = await openDatabase(config.database, { log: (line) => log.info(line) });
  try {
    return await work(db);
  } finally {
    await db.close();
  }
}

/** A name for `--as`: printable ASCII, no spaces (what a schedule's createdBy may be). */
export const OWNER_NAME = /^[\x21-\x7e]{1,100}$/;
/** The owner of a job enqueued from the command line when the OS user has no usable name. */
export const FALLBACK_OWNER = 'cli';

/**
 * Who owns a job enqueued from the command line without `--as`: the OS user running the command
 * (`root`, `deploy`, …), so `job list` and the web page say who made it; `cli` when the OS has no
 * name for this uid (a container without a passwd entry) or the name is not one `--as` would take.
 */
export function defaultOwner(userInfo: () => { username: string } = os.userInfo): string {
  try {
    const { username } = userInfo();
    return OWNER_NAME.test(username) ? username : FALLBACK_OWNER;
  } catch {
    return FALLBACK_OWNER;
  }
}

export function formatDate(date: Date | null): string {
  return date ? date.toISOString().replace(/\.\d{3}Z$/, 'Z') : '-';
}
