// Loads tasks.json and enforces every rule of a task template, naming the task and the rule broken.
import fs from 'node:fs';
import path from 'node:path';
import Ajv, { type ValidateFunction } from 'ajv';
import { ConfigError, userSpecProblem } from '../config';
import { checkRetryPolicy, type RetryPolicy } from './retry';
import { checkSchedules, type Schedule } from './schedules';

export interface TaskLimits {
  memoryMB?: number;
  processes?: number;
  openFiles?: number;
  cpuSeconds?: number;
}

export interface ParamSchema {
  type: 'object';
  additionalProperties: false;
  required?: string[];
  properties: Record<string, Record<string, unknown> & { type: ScalarType }>;
}

export type ScalarType = 'string' | 'integer' | 'number' | 'boolean';

export interface TaskTemplate {
  name: string;
  description: string;
  argv: string[];
  params: ParamSchema;
  cwd?: string;
  env: Record<string, string>;
  passEnv: string[];
  timeoutSec: number;
  adminOnly: boolean;
  limits: TaskLimits;
  /** The user its jobs run as (a name, or `uid:gid`), instead of JOB_RUNNER_JOB_USER. */
  user?: string;
  /** Serial group key with `{param}` placeholders (each a required param): one job of a group runs at a time. */
  group?: string;
  /** After a job of the group ends `failure`: `continue` with the next, or `block` the group until released. */
  groupOnFailure: 'continue' | 'block';
  /** Which failures run again, and when (undefined: one attempt). */
  retry?: RetryPolicy;
  /** Compiled once at load; `validateParams` is the way in. */
  validate: ValidateFunction;
}

/** A task file that cannot be used: configuration for the daemons (EX_CONFIG); `tasks check` says 65. */
export class TaskFileError extends ConfigError {
  override name = 'TaskFileError';
}

export const DEFAULT_TIMEOUT_SEC = 3600;
const TASK_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;
const TASK_KEYS = [
  'description',
  'argv',
  'params',
  'cwd',
  'env',
  'passEnv',
  'timeoutSec',
  'adminOnly',
  'limits',
  'user',
  'group',
  'groupOnFailure',
  'retry',
];
const LIMIT_KEYS: (keyof TaskLimits)[] = ['memoryMB', 'processes', 'openFiles', 'cpuSeconds'];
const SCALAR_TYPES: ScalarType[] = ['string', 'integer', 'number', 'boolean'];
/** The job gets these from the runner; a template may not override them. */
const RESERVED_ENV = ['JOB_ID', 'JOB_TASK', 'JOB_CREATED_BY'];
/** Runner secrets that `passEnv` may never hand to a job. */
const FORBIDDEN_PASS_ENV =
  /^(MYSQL_|POSTGRES_|PG[A-Z]+$|JOBS_SQLITE_|SESSION_SECRET$|METRICS_TOKEN$|NOTIFY_SOCKET$|WATCHDOG_|CREDENTIALS_DIRECTORY$)/;

/** A param's words for the form: its label and the help text under its field (each optional). */
const PARAM_TEXT_MAX = { title: 100, description: 1000 };

/** Not empty, at most `max` characters, no control characters (shown as text, on one line). */
function isOneLine(value: unknown, max: number): boolean {
  if (typeof value !== 'string' || value.trim() === '' || value.length > max) return false;
  // eslint-disable-next-line no-control-regex -- finding control characters is the point
  return !/[\x00-\x1f\x7f]/.test(value);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function positiveInt(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) > 0;
}

function checkParams(fail: (rule: string) => never, raw: unknown): ParamSchema {
  if (!isPlainObject(raw)) fail('params must be a JSON Schema object');
  if (raw.type !== 'object') fail('params.type must be "object"');
  if (raw.additionalProperties !== false) fail('params.additionalProperties must be false');
  const properties = raw.properties ?? {};
  if (!isPlainObject(properties)) fail('params.properties must be an object');
  for (const [name, prop] of Object.entries(properties)) {
    if (!ENV_NAME.test(name)) fail(`param "${name}" must be a plain identifier`);
    if (!isPlainObject(prop)) fail(`param "${name}" must be a schema object`);
    if (!SCALAR_TYPES.includes(prop.type as ScalarType)) {
      fail(`param "${name}" must have a scalar type (${SCALAR_TYPES.join(', ')})`);
    }
    if (prop.type === 'string' && prop.enum === undefined && prop.pattern === undefined) {
      fail(`string param "${name}" must have "enum" or "pattern"`);
    }
    for (const [key, max] of Object.entries(PARAM_TEXT_MAX)) {
      if (prop[key] !== undefined && !isOneLine(prop[key], max)) {
        fail(`param "${name}": ${key} must be a string of 1-${max} characters on one line`);
      }
    }
  }
  if (raw.required !== undefined) {
    if (!Array.isArray(raw.required)) fail('params.required must be an array');
    for (const name of raw.required) {
      if (typeof name !== 'string' || !Object.hasOwn(properties, name))
        fail(`params.required names unknown param ${JSON.stringify(name)}`);
    }
  }
  return { ...raw, properties } as unknown as ParamSchema;
}

function checkTask(ajv: Ajv, name: string, raw: unknown): TaskTemplate {
  const fail = (rule: string): never => {
    throw new TaskFileError(`task "${name}": ${rule}`);
  };
  if (!TASK_NAME.test(name)) fail('name must be 1-100 letters, digits, ".", "_" or "-"');
  if (!isPlainObject(raw)) fail('must be an object');
  const t = raw as Record<string, unknown>;
  for (const key of Object.keys(t)) if (!TASK_KEYS.includes(key)) fail(`unknown key "${key}"`);
  if (t.description !== undefined && typeof t.description !== 'string') fail('description must be a string');
  const params = checkParams(fail, t.params ?? { type: 'object', additionalProperties: false, properties: {} });
  if (!Array.isArray(t.argv) || t.argv.length === 0 || !t.argv.every((a) => typeof a === 'string')) {
    fail('argv must be a non-empty array of strings');
  }
  const argv = t.argv as string[];
  if (argv[0] === '' || argv[0].match(PLACEHOLDER)) fail('argv[0] (the program) must be a fixed, non-empty string');
  argv.forEach((element, i) => {
    for (const [, param] of element.matchAll(PLACEHOLDER)) {
      if (!Object.hasOwn(params.properties, param)) fail(`argv[${i}] names unknown param "${param}"`);
    }
  });
  if (t.cwd !== undefined && (typeof t.cwd !== 'string' || !path.isAbsolute(t.cwd)))
    fail('cwd must be an absolute path');
  const env = t.env ?? {};
  if (!isPlainObject(env)) fail('env must be an object of strings');
  for (const [key, value] of Object.entries(env)) {
    if (!ENV_NAME.test(key) || typeof value !== 'string') fail(`env.${key} must be a string with a valid name`);
    if (RESERVED_ENV.includes(key)) fail(`env.${key} is set by the runner`);
  }
  const passEnv = t.passEnv ?? [];
  if (!Array.isArray(passEnv) || !passEnv.every((v) => typeof v === 'string' && ENV_NAME.test(v))) {
    fail('passEnv must be an array of variable names');
  }
  for (const key of passEnv as string[]) {
    if (FORBIDDEN_PASS_ENV.test(key)) fail(`passEnv may not name ${key} (runner secrets never reach a job)`);
    if (RESERVED_ENV.includes(key)) fail(`passEnv.${key} is set by the runner`);
  }
  if (t.timeoutSec !== undefined && !positiveInt(t.timeoutSec)) fail('timeoutSec must be a positive integer');
  if (t.adminOnly !== undefined && typeof t.adminOnly !== 'boolean') fail('adminOnly must be true or false');
  const limits = t.limits ?? {};
  if (!isPlainObject(limits)) fail('limits must be an object');
  for (const [key, value] of Object.entries(limits)) {
    if (!LIMIT_KEYS.includes(key as keyof TaskLimits)) fail(`limits.${key} is not one of ${LIMIT_KEYS.join(', ')}`);
    if (!positiveInt(value)) fail(`limits.${key} must be a positive integer`);
  }
  if (t.user !== undefined) {
    // Whether the user exists on the runner's host, and is not the runner's own, the runner checks.
    const problem = typeof t.user === 'string' ? userSpecProblem(t.user) : 'must be a string';
    if (problem) fail(`user ${problem}`);
  }
  const group = t.group;
  if (group !== undefined) {
    if (typeof group !== 'string' || group === '' || group.length > 200)
      fail('group must be a string of 1-200 characters');
    for (const [, param] of (group as string).matchAll(PLACEHOLDER)) {
      if (!params.required?.includes(param)) fail(`group names "${param}", which is not a required param`);
    }
  }
  const groupOnFailure = (t.groupOnFailure ?? 'continue') as TaskTemplate['groupOnFailure'];
  if (groupOnFailure !== 'continue' && groupOnFailure !== 'block') fail('groupOnFailure must be "continue" or "block"');
  if (t.groupOnFailure !== undefined && t.group === undefined) fail('groupOnFailure needs a group');
  const retry = t.retry === undefined ? undefined : checkRetryPolicy(t.retry, fail);
  let validate: ValidateFunction;
  try {
    validate = ajv.compile(params);
  } catch (err) {
    return fail(`params is not a valid JSON Schema: ${(err as Error).message}`);
  }
  return {
    name,
    description: (t.description as string | undefined) ?? '',
    argv,
    params,
    cwd: t.cwd as string | undefined,
    env: env as Record<string, string>,
    passEnv: passEnv as string[],
    timeoutSec: (t.timeoutSec as number | undefined) ?? DEFAULT_TIMEOUT_SEC,
    adminOnly: (t.adminOnly as boolean | undefined) ?? false,
    limits: limits as TaskLimits,
    user: t.user as string | undefined,
    group: t.group as string | undefined,
    groupOnFailure,
    retry,
    validate,
  };
}

/** A task file's contents: its templates and its schedules. */
export interface TaskFile {
  tasks: Map<string, TaskTemplate>;
  schedules: Map<string, Schedule>;
}

export interface TaskFileOptions {
  /** Test only (JOB_TEST_CRON_SECONDS): schedules may have a leading seconds field. */
  cronSeconds?: boolean;
}

/** Parses and checks a task file's text; throws TaskFileError naming the task or schedule and the rule. */
export function parseTaskDocument(text: string, source = 'tasks.json', options: TaskFileOptions = {}): TaskFile {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new TaskFileError(`${source}: not valid JSON: ${(err as Error).message}`);
  }
  if (!isPlainObject(doc) || !isPlainObject(doc.tasks)) throw new TaskFileError(`${source}: must be {"tasks": {...}}`);
  for (const key of Object.keys(doc)) {
    if (key !== 'tasks' && key !== 'schedules') throw new TaskFileError(`${source}: unknown top-level key "${key}"`);
  }
  const ajv = new Ajv({ strict: true, allErrors: false, coerceTypes: false, useDefaults: false });
  const tasks = new Map<string, TaskTemplate>();
  for (const [name, raw] of Object.entries(doc.tasks)) {
    try {
      tasks.set(name, checkTask(ajv, name, raw));
    } catch (err) {
      if (err instanceof TaskFileError) throw new TaskFileError(`${source}: ${err.message}`);
      throw err;
    }
  }
  const fail = (rule: string): never => {
    throw new TaskFileError(`${source}: ${rule}`);
  };
  const schedules = checkSchedules(doc.schedules, tasks, fail, { seconds: options.cronSeconds });
  return { tasks, schedules };
}

/** The templates of a task file's text (see parseTaskDocument). */
export function parseTaskFile(text: string, source = 'tasks.json'): Map<string, TaskTemplate> {
  return parseTaskDocument(text, source).tasks;
}

export function loadTaskFile(file: string, options: TaskFileOptions = {}): TaskFile {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new TaskFileError(`${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseTaskDocument(text, file, options);
}

export interface TaskCatalogOptions extends TaskFileOptions {
  /**
   * Look at the file on disk at most this often (ms); 0, the default, looks on every use (the
   * runner, before each job). The API passes a second: a stat per request is a system call per
   * request, and an edit is then seen within a second.
   */
  recheckMs?: number;
}

/**
 * The task file as it is now: re-read when it changes on disk, so the runner validates each
 * job against the current templates. A broken edit keeps the last good file (and says so once).
 */
export class TaskCatalog {
  private loaded: TaskFile;
  private stamp: string;
  private checkedAt: number;

  constructor(
    readonly file: string,
    private readonly onReloadError: (err: Error) => void = () => {},
    private readonly options: TaskCatalogOptions = {},
  ) {
    this.loaded = loadTaskFile(file, options);
    this.stamp = this.statStamp();
    this.checkedAt = performance.now();
  }

  private statStamp(): string {
    try {
      const s = fs.statSync(this.file);
      return `${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch {
      return 'missing';
    }
  }

  private refresh(): TaskFile {
    const recheckMs = this.options.recheckMs ?? 0;
    if (recheckMs > 0) {
      const now = performance.now();
      if (now - this.checkedAt < recheckMs) return this.loaded;
      this.checkedAt = now;
    }
    const stamp = this.statStamp();
    if (stamp !== this.stamp) {
      this.stamp = stamp;
      try {
        this.loaded = loadTaskFile(this.file, this.options);
      } catch (err) {
        this.onReloadError(err as Error);
      }
    }
    return this.loaded;
  }

  current(): Map<string, TaskTemplate> {
    return this.refresh().tasks;
  }

  /** The file's schedules as they are now (re-read like the tasks). */
  schedules(): Map<string, Schedule> {
    return this.refresh().schedules;
  }

  get(name: string): TaskTemplate | undefined {
    return this.current().get(name);
  }
}
