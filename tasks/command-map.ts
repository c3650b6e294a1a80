// Which task template an old shell command stands for (`migrate --adopt`): the inverse of rendering,
// from a mapping file of argv patterns. Nothing here ever runs a command; it only reads its words.
import fs from 'node:fs';
import type { TaskCatalog, TaskTemplate } from './catalog';
import { checkJobRequest, JobRequestError } from './job-request';
import { ParamsError, paramsFromStrings, type Params } from './render';

export class CommandMapError extends Error {
  override name = 'CommandMapError';
}

/** One argv element of a pattern: a literal word, or a word with one `{param}` in it. */
interface PatternElement {
  prefix: string;
  param: string | null;
  suffix: string;
  /** It names a param the template does not require: the old command may leave it out. */
  optional: boolean;
}

interface CommandPattern {
  task: string;
  elements: PatternElement[];
}

export interface CommandMap {
  file: string;
  patterns: CommandPattern[];
}

/** What an old command is as a job of ours, or why it is none. */
export type MappedCommand =
  { task: string; params: Params; command: string; maxAttempts: number } | { task: null; reason: string };

/**
 * A command maps only when it is plain words separated by spaces, each of these characters: quotes,
 * `$`, `;`, `|`, `&`, `<`, `>`, `*`, `?`, backslashes, … would need a shell to mean what they mean,
 * and such a command is never taken for a template's.
 */
const PLAIN_WORD = /^[A-Za-z0-9_./=:,@%+-]+$/;
const ONE_PLACEHOLDER = /^([^{}]*)\{([A-Za-z_][A-Za-z0-9_]*)\}([^{}]*)$/;

function fail(file: string, where: string, rule: string): never {
  throw new CommandMapError(`${file}: ${where}: ${rule}`);
}

function parseElement(file: string, where: string, template: TaskTemplate, raw: unknown): PatternElement {
  if (typeof raw !== 'string' || raw === '') fail(file, where, 'every argv element must be a non-empty string');
  if (!raw.includes('{') && !raw.includes('}')) {
    if (!PLAIN_WORD.test(raw)) fail(file, where, `"${raw}" is not a plain word (letters, digits, _ . / = : , @ % + -)`);
    return { prefix: raw, param: null, suffix: '', optional: false };
  }
  const match = ONE_PLACEHOLDER.exec(raw);
  if (!match) fail(file, where, `"${raw}" must hold exactly one {param}`);
  const [, prefix, param, suffix] = match;
  if (!Object.hasOwn(template.params.properties, param)) {
    fail(file, where, `{${param}} is not a param of task "${template.name}"`);
  }
  return { prefix, param, suffix, optional: !(template.params.required ?? []).includes(param) };
}

/**
 * Reads a mapping file:
 * `{"commands": [{"task": "create-container", "argv": ["node", "bin/create-container.js", "--container-id={containerId}"]}, …]}`.
 * Every task must be in `catalog`; every `{param}` one of its params, at most one a word, once a pattern.
 */
export function loadCommandMap(file: string, catalog: TaskCatalog): CommandMap {
  let doc: unknown;
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new CommandMapError(`${file}: cannot read it as JSON: ${(err as Error).message}`);
  }
  const commands = (doc as { commands?: unknown } | null)?.commands;
  if (!Array.isArray(commands)) fail(file, 'top level', 'must be an object with a "commands" array');
  const patterns = commands.map((entry: unknown, i): CommandPattern => {
    const where = `commands[${i}]`;
    const { task, argv, ...rest } = (entry ?? {}) as { task?: unknown; argv?: unknown };
    const extra = Object.keys(rest);
    if (extra.length > 0) fail(file, where, `unexpected field "${extra[0]}"`);
    if (typeof task !== 'string') fail(file, where, '"task" must name a task');
    const template = catalog.get(task);
    if (!template) fail(file, where, `task "${task}" is not in ${catalog.file}`);
    if (!Array.isArray(argv) || argv.length === 0) fail(file, where, '"argv" must be a non-empty array');
    const elements = argv.map((raw, j) => parseElement(file, `${where}.argv[${j}]`, template, raw));
    const named = elements.flatMap((e) => (e.param ? [e.param] : []));
    const twice = named.find((p, k) => named.indexOf(p) !== k);
    if (twice) fail(file, where, `{${twice}} appears more than once`);
    if (elements[0].param !== null) fail(file, where, 'argv[0] must be a fixed word (the program)');
    return { task, elements };
  });
  return { file, patterns };
}

/** The words of `pattern` against `words`: params as name=value strings, or null. Optional elements may be absent. */
function matchWords(elements: PatternElement[], words: string[]): string[] | null {
  const found: string[] = [];
  const walk = (i: number, j: number): boolean => {
    if (j === elements.length) return i === words.length;
    const e = elements[j];
    const word = words[i];
    if (word !== undefined && e.param === null) {
      if (word === e.prefix && walk(i + 1, j + 1)) return true;
    } else if (
      word !== undefined &&
      e.param !== null &&
      word.length > e.prefix.length + e.suffix.length &&
      word.startsWith(e.prefix) &&
      word.endsWith(e.suffix)
    ) {
      found.push(`${e.param}=${word.slice(e.prefix.length, word.length - e.suffix.length)}`);
      if (walk(i + 1, j + 1)) return true;
      found.pop();
    }
    return e.optional && walk(i, j + 1);
  };
  return walk(0, 0) ? found : null;
}

/**
 * The job an old command stands for: the first pattern it matches whose params validate against the
 * template (checked as `POST /jobs` checks them; the rendered command is ours). Else why it maps to none.
 */
export function mapCommand(map: CommandMap, catalog: TaskCatalog, command: string): MappedCommand {
  const words = command.trim().split(/ +/);
  if (command.trim() === '' || !words.every((w) => PLAIN_WORD.test(w))) {
    return { task: null, reason: 'it is not plain words (it would need a shell)' };
  }
  let why = `it matches no command of ${map.file}`;
  for (const pattern of map.patterns) {
    const pairs = matchWords(pattern.elements, words);
    if (!pairs) continue;
    const template = catalog.get(pattern.task);
    if (!template) continue;
    try {
      const params = paramsFromStrings(template, pairs);
      const job = checkJobRequest(catalog, { username: null, isAdmin: true }, { task: template.name, params });
      return { task: job.task, params: job.params, command: job.command, maxAttempts: job.maxAttempts };
    } catch (err) {
      if (!(err instanceof ParamsError) && !(err instanceof JobRequestError)) throw err;
      why = `its params do not validate for task "${pattern.task}": ${err.message}`;
    }
  }
  return { task: null, reason: why };
}
