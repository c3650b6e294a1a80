// Params in, argv and environment out: the only road from a request to a process.
import type { ErrorObject } from 'ajv';
import { PLACEHOLDER, type ScalarType, type TaskTemplate } from './catalog';

export type ParamValue = string | number | boolean;
export type Params = Record<string, ParamValue>;

export class ParamsError extends Error {
  override name = 'ParamsError';
  constructor(
    message: string,
    /** The param at fault, when there is one. */
    readonly field?: string,
  ) {
    super(message);
  }
}

function describeError(e: ErrorObject): ParamsError {
  const field = e.instancePath.replace(/^\//, '');
  switch (e.keyword) {
    case 'required': {
      const missing = (e.params as { missingProperty: string }).missingProperty;
      return new ParamsError(`param "${missing}" is required`, missing);
    }
    case 'additionalProperties': {
      const extra = (e.params as { additionalProperty: string }).additionalProperty;
      return new ParamsError(`param "${extra}" is not accepted by this task`, extra);
    }
    case 'type':
      if (!field) return new ParamsError('params must be an object');
      return new ParamsError(`param "${field}" ${e.message ?? 'has the wrong type'}`, field);
    default:
      return field
        ? new ParamsError(`param "${field}" ${e.message ?? 'is invalid'}`, field)
        : new ParamsError(`params ${e.message ?? 'are invalid'}`);
  }
}

/** A UTF-16 surrogate not in a pair: JavaScript allows it, UTF-8 (and MariaDB's JSON_VALID) does not. */
const LONE_SURROGATE = /\p{Cs}/u;

/** Validates params against the task's JSON Schema; throws ParamsError naming the field. */
export function validateParams(task: TaskTemplate, params: unknown): Params {
  if (typeof params !== 'object' || params === null || Array.isArray(params)) {
    throw new ParamsError('params must be an object');
  }
  if (!task.validate(params)) throw describeError(task.validate.errors![0]);
  for (const [name, value] of Object.entries(params)) {
    if (typeof value === 'string' && LONE_SURROGATE.test(value)) {
      throw new ParamsError(`param "${name}" is not well-formed Unicode (a lone UTF-16 surrogate)`, name);
    }
  }
  return params as Params;
}

/**
 * Turns command-line `k=v` strings into typed params by the schema's declared types,
 * so the CLI validates exactly as the API does.
 */
export function paramsFromStrings(task: TaskTemplate, pairs: string[]): Params {
  const params: Params = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new ParamsError(`--param ${JSON.stringify(pair)} is not of the form name=value`);
    const name = pair.slice(0, eq);
    const raw = pair.slice(eq + 1);
    if (!Object.hasOwn(task.params.properties, name)) {
      throw new ParamsError(`param "${name}" is not accepted by this task`, name);
    }
    const type: ScalarType = task.params.properties[name].type;
    if (type === 'integer' || type === 'number') {
      // Only what a JSON number could say: no hex, no padding.
      params[name] = /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(raw) ? Number(raw) : raw;
    } else if (type === 'boolean') {
      params[name] = raw === 'true' ? true : raw === 'false' ? false : raw;
    } else {
      params[name] = raw;
    }
  }
  return validateParams(task, params);
}

/**
 * argv with `{name}` replaced; an element naming an optional param that was not given is left out.
 * An element that begins with a param's value may not begin with "-" (the program would take it
 * for an option, e.g. `--help`) unless an element "--" (end of options) comes before it.
 */
export function renderArgv(task: TaskTemplate, params: Params): string[] {
  const argv: string[] = [];
  let optionsEnded = false;
  for (const element of task.argv) {
    let missing = false;
    const rendered = element.replace(PLACEHOLDER, (_whole, name: string) => {
      const value = Object.hasOwn(params, name) ? params[name] : undefined;
      if (value === undefined) {
        missing = true;
        return '';
      }
      return String(value);
    });
    if (missing) continue;
    if (!optionsEnded && rendered.startsWith('-')) {
      const first = leadingParam(element, params);
      if (first !== undefined) {
        throw new ParamsError(
          `param "${first}" may not start with "-" here: the program would take it for an option (the task's argv has no "--" before it)`,
          first,
        );
      }
    }
    if (element === '--') optionsEnded = true;
    argv.push(rendered);
  }
  return argv;
}

const PLACEHOLDER_AT_START = /^\{([A-Za-z_][A-Za-z0-9_]*)\}/;

/** The param whose value gives an element its first character, if a param does (not a literal). */
function leadingParam(element: string, params: Params): string | undefined {
  let rest = element;
  for (let m = PLACEHOLDER_AT_START.exec(rest); m; m = PLACEHOLDER_AT_START.exec(rest)) {
    if (String(params[m[1]]) !== '') return m[1];
    rest = rest.slice(m[0].length);
  }
  return undefined;
}

const SHELL_SAFE = /^[A-Za-z0-9_\-+=.,/:@%^]+$/;

/** The argv as one shell-quoted line, for people to read; it is never executed. */
export function displayCommand(argv: string[], max = 2000): string {
  const line = argv.map((a) => (SHELL_SAFE.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
  return line.length <= max ? line : `${line.slice(0, max - 3)}...`;
}

export interface JobIdentity {
  id: number;
  task: string;
  createdBy: string | null;
}

/** The job's environment, built from scratch: nothing of the runner's leaks unless passEnv names it. */
export function renderEnvironment(
  task: TaskTemplate,
  job: JobIdentity,
  runnerEnv: Readonly<Record<string, string | undefined>>,
): Record<string, string> {
  const env: Record<string, string> = {
    PATH: runnerEnv.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    LANG: runnerEnv.LANG ?? 'C.UTF-8',
    HOME: runnerEnv.HOME ?? '/',
    ...task.env,
  };
  for (const name of task.passEnv) {
    const value = Object.hasOwn(runnerEnv, name) ? runnerEnv[name] : undefined;
    if (typeof value === 'string') env[name] = value;
  }
  env.JOB_ID = String(job.id);
  env.JOB_TASK = job.task;
  env.JOB_CREATED_BY = job.createdBy ?? '';
  return env;
}

export interface PreparedJob {
  params: Params;
  argv: string[];
  command: string;
}

/** Validate and render in one step: what the API, the CLI and the runner each do before acting. */
export function prepareJob(task: TaskTemplate, params: unknown): PreparedJob {
  const valid = validateParams(task, params);
  const argv = renderArgv(task, valid);
  return { params: valid, argv, command: displayCommand(argv) };
}

/** The job's serial group: the template's `group` with its params filled in (null without one). */
export function renderGroupKey(task: TaskTemplate, params: Params): string | null {
  if (task.group === undefined) return null;
  return task.group.replace(PLACEHOLDER, (_, name: string) => String(params[name]));
}
