// Task templates (README, "Task templates"): checked at load; params are validated, then rendered into argv
// and env.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../config';
import { DEFAULT_TIMEOUT_SEC, TaskCatalog, TaskFileError, parseTaskFile, type TaskTemplate } from '../tasks/catalog';
import {
  ParamsError,
  displayCommand,
  paramsFromStrings,
  prepareJob,
  renderArgv,
  renderEnvironment,
  validateParams,
} from '../tasks/render';

type Json = Record<string, unknown>;

/** The README's example task, verbatim. */
function readmeTask(): Json {
  return {
    description: 'Apply new resources to a container',
    argv: ['node', 'bin/reconfigure-container.js', '--container-id={containerId}', '--memory={memory}'],
    params: {
      type: 'object',
      additionalProperties: false,
      required: ['containerId'],
      properties: {
        containerId: { type: 'integer', minimum: 1 },
        memory: { type: 'integer', minimum: 64, maximum: 262144 },
      },
    },
    cwd: '/opt/container-creator',
    env: { NODE_ENV: 'production' },
    passEnv: ['PROXMOX_API_TOKEN'],
    timeoutSec: 1800,
    adminOnly: false,
    limits: { memoryMB: 1024, processes: 256, openFiles: 1024, cpuSeconds: 3600 },
  };
}

/** A task with every scalar type, an enum, a pattern, literal text around placeholders. */
function greetTask(): Json {
  return {
    description: 'Print a name',
    argv: ['printf', '%s\\n', '{name}', '--mode=pre-{mode}-post', '{flag}', '--count={count}', '{mode}:{count}'],
    params: {
      type: 'object',
      additionalProperties: false,
      required: ['name'],
      properties: {
        name: { type: 'string', pattern: '^[^\\u0000-\\u001f]{1,200}$' },
        mode: { type: 'string', enum: ['fast', 'slow'] },
        flag: { type: 'boolean' },
        count: { type: 'integer', minimum: 0, maximum: 10 },
        ratio: { type: 'number', minimum: 0, maximum: 1 },
      },
    },
  };
}

function countTask(): Json {
  return {
    argv: ['node', 'demo/count.js', '--to={to}', '--delay-ms={delayMs}'],
    params: {
      type: 'object',
      additionalProperties: false,
      required: ['to'],
      properties: {
        to: { type: 'integer', minimum: 1, maximum: 1000000 },
        delayMs: { type: 'integer', minimum: 0, maximum: 60000 },
      },
    },
  };
}

function fileText(tasks: Record<string, unknown>): string {
  return JSON.stringify({ tasks }, null, 2);
}

function load(): Map<string, TaskTemplate> {
  return parseTaskFile(
    fileText({ 'reconfigure-container': readmeTask(), greet: greetTask(), count: countTask() }),
    'fixture.json',
  );
}

function task(name: string): TaskTemplate {
  const t = load().get(name);
  if (!t) throw new Error(`fixture has no task ${name}`);
  return t;
}

/** parseTaskFile of the README's example task after `edit`; returns the TaskFileError message. */
function refusal(edit: (task: Json & { params: Json & { properties: Record<string, Json> } }) => void): string {
  const t = readmeTask() as Json & { params: Json & { properties: Record<string, Json> } };
  edit(t);
  try {
    parseTaskFile(fileText({ 'reconfigure-container': t }), 'fixture.json');
  } catch (err) {
    expect(err).toBeInstanceOf(TaskFileError);
    return (err as Error).message;
  }
  throw new Error('the task file was accepted');
}

function paramsError(work: () => unknown): ParamsError {
  try {
    work();
  } catch (err) {
    expect(err).toBeInstanceOf(ParamsError);
    return err as ParamsError;
  }
  throw new Error('params were accepted');
}

describe('parseTaskFile', () => {
  it('loads the README example task', () => {
    const tasks = parseTaskFile(fileText({ 'reconfigure-container': readmeTask() }));
    expect([...tasks.keys()]).toEqual(['reconfigure-container']);
    const t = tasks.get('reconfigure-container')!;
    expect(t).toMatchObject({
      name: 'reconfigure-container',
      description: 'Apply new resources to a container',
      argv: ['node', 'bin/reconfigure-container.js', '--container-id={containerId}', '--memory={memory}'],
      cwd: '/opt/container-creator',
      env: { NODE_ENV: 'production' },
      passEnv: ['PROXMOX_API_TOKEN'],
      timeoutSec: 1800,
      adminOnly: false,
      limits: { memoryMB: 1024, processes: 256, openFiles: 1024, cpuSeconds: 3600 },
    });
    expect(t.params.required).toEqual(['containerId']);
    expect(typeof t.validate).toBe('function');
  });

  it('loads the repository tasks.json', () => {
    const tasks = parseTaskFile(fs.readFileSync(path.join(__dirname, '..', 'tasks.json'), 'utf8'));
    expect(tasks.size).toBeGreaterThan(0);
  });

  it('defaults timeoutSec to 3600, and env, passEnv, limits, adminOnly, description to empty', () => {
    const minimal = parseTaskFile(fileText({ noop: { argv: ['true'] } })).get('noop')!;
    expect(DEFAULT_TIMEOUT_SEC).toBe(3600);
    expect(minimal).toMatchObject({
      timeoutSec: 3600,
      env: {},
      passEnv: [],
      limits: {},
      adminOnly: false,
      description: '',
    });
    expect(minimal.cwd).toBeUndefined();
    const t = readmeTask();
    delete t.timeoutSec;
    expect(parseTaskFile(fileText({ t })).get('t')!.timeoutSec).toBe(3600);
  });

  const TASK = 'task "reconfigure-container"';

  it.each<[string, (t: Json & { params: Json & { properties: Record<string, Json> } }) => void, RegExp]>([
    ['additionalProperties true', (t) => (t.params.additionalProperties = true), /additionalProperties must be false/],
    ['additionalProperties missing', (t) => delete t.params.additionalProperties, /additionalProperties must be false/],
    [
      'additionalProperties as a schema',
      (t) => (t.params.additionalProperties = { type: 'string' }),
      /additionalProperties must be false/,
    ],
    [
      'an object property',
      (t) => (t.params.properties.memory = { type: 'object', additionalProperties: false }),
      /param "memory" must have a scalar type/,
    ],
    [
      'an array property',
      (t) => (t.params.properties.memory = { type: 'array', items: { type: 'integer' } }),
      /param "memory" must have a scalar type/,
    ],
    [
      'a property with a list of types',
      (t) => (t.params.properties.memory = { type: ['integer', 'null'] }),
      /param "memory" must have a scalar type/,
    ],
    ['a property without a type', (t) => (t.params.properties.memory = {}), /param "memory" must have a scalar type/],
    [
      'a string param without enum or pattern',
      (t) => (t.params.properties.memory = { type: 'string', maxLength: 10 }),
      /string param "memory" must have "enum" or "pattern"/,
    ],
    [
      'argv naming an unknown param',
      (t) => (t.argv = ['node', 'x.js', '--name={name}']),
      /argv\[2\] names unknown param "name"/,
    ],
    ['argv[0] with a placeholder', (t) => (t.argv = ['{containerId}', 'x']), /argv\[0\]/],
    ['argv[0] partly a placeholder', (t) => (t.argv = ['/usr/bin/{containerId}']), /argv\[0\]/],
    ['empty argv', (t) => (t.argv = []), /argv must be a non-empty array/],
    ['argv not strings', (t) => (t.argv = ['node', 5]), /argv must be a non-empty array of strings/],
    ['a relative cwd', (t) => (t.cwd = 'opt/container-creator'), /cwd must be an absolute path/],
    ['a dot-relative cwd', (t) => (t.cwd = './work'), /cwd must be an absolute path/],
    ['an unknown task key', (t) => (t.command = 'rm -rf /'), /unknown key "command"/],
    ['an unknown limits key', (t) => (t.limits = { memoryGB: 1 }), /limits\.memoryGB/],
    ['a non-integer limit', (t) => (t.limits = { memoryMB: 1.5 }), /limits\.memoryMB must be a positive integer/],
    ['timeoutSec 0', (t) => (t.timeoutSec = 0), /timeoutSec must be a positive integer/],
    ['timeoutSec negative', (t) => (t.timeoutSec = -60), /timeoutSec must be a positive integer/],
    ['timeoutSec fractional', (t) => (t.timeoutSec = 1.5), /timeoutSec must be a positive integer/],
    ['timeoutSec as a string', (t) => (t.timeoutSec = '60'), /timeoutSec must be a positive integer/],
    ['passEnv MYSQL_PASSWORD', (t) => (t.passEnv = ['MYSQL_PASSWORD']), /passEnv may not name MYSQL_PASSWORD/],
    ['passEnv SESSION_SECRET', (t) => (t.passEnv = ['HOME', 'SESSION_SECRET']), /passEnv may not name SESSION_SECRET/],
    ['passEnv MYSQL_USER', (t) => (t.passEnv = ['MYSQL_USER']), /passEnv may not name MYSQL_USER/],
    ['passEnv METRICS_TOKEN', (t) => (t.passEnv = ['METRICS_TOKEN']), /passEnv may not name METRICS_TOKEN/],
    ['passEnv JOB_ID', (t) => (t.passEnv = ['JOB_ID']), /passEnv\.JOB_ID/],
    ['env overriding JOB_ID', (t) => (t.env = { JOB_ID: '1' }), /env\.JOB_ID is set by the runner/],
    ['env overriding JOB_CREATED_BY', (t) => (t.env = { JOB_CREATED_BY: 'root' }), /env\.JOB_CREATED_BY/],
    ['env with a non-string value', (t) => (t.env = { DEBUG: 1 }), /env\.DEBUG/],
    ['adminOnly as a string', (t) => (t.adminOnly = 'yes'), /adminOnly must be true or false/],
    [
      'required naming an unknown param',
      (t) => (t.params.required = ['containerId', 'node']),
      /params\.required names unknown param "node"/,
    ],
    [
      'a param title that is not a string',
      (t) => (t.params.properties.memory.title = 5),
      /param "memory": title must be a string of 1-100 characters on one line/,
    ],
    [
      'an empty param title',
      (t) => (t.params.properties.memory.title = ' '),
      /param "memory": title must be a string of 1-100 characters/,
    ],
    [
      'a param title over 100 characters',
      (t) => (t.params.properties.memory.title = 'm'.repeat(101)),
      /param "memory": title must be a string of 1-100 characters/,
    ],
    [
      'a param description on two lines',
      (t) => (t.params.properties.memory.description = 'MiB of memory.\nRounded up.'),
      /param "memory": description must be a string of 1-1000 characters on one line/,
    ],
    [
      'a param description that is not a string',
      (t) => (t.params.properties.memory.description = ['MiB']),
      /param "memory": description must be a string of 1-1000 characters/,
    ],
    [
      'a schema ajv rejects (minimum is not a number)',
      (t) => (t.params.properties.memory = { type: 'integer', minimum: '64' }),
      /params is not a valid JSON Schema/,
    ],
    [
      'a schema ajv rejects (unknown keyword in strict mode)',
      (t) => (t.params.properties.memory = { type: 'integer', maximun: 100 }),
      /params is not a valid JSON Schema/,
    ],
    [
      'a schema ajv rejects (invalid pattern)',
      (t) => (t.params.properties.memory = { type: 'string', pattern: '([' }),
      /params is not a valid JSON Schema|pattern/,
    ],
  ])('refuses %s, naming the task and the rule', (_what, edit, rule) => {
    const message = refusal(edit);
    expect(message).toContain(TASK);
    expect(message).toMatch(rule);
    expect(message).toContain('fixture.json');
  });

  it('keeps a param’s title and description (the form’s label and help text) in its schema', () => {
    const t = readmeTask() as Json & { params: Json & { properties: Record<string, Json> } };
    t.params.properties.memory.title = 'Memory (MiB)';
    t.params.properties.memory.description = 'RAM for the container, in MiB; “512” is half a GiB.';
    const loaded = parseTaskFile(fileText({ t })).get('t')!;
    expect(loaded.params.properties.memory).toEqual({
      type: 'integer',
      minimum: 64,
      maximum: 262144,
      title: 'Memory (MiB)',
      description: 'RAM for the container, in MiB; “512” is half a GiB.',
    });
    expect(loaded.validate({ containerId: 1, memory: 512 })).toBe(true);
  });

  it('refuses invalid JSON, naming the file', () => {
    expect(() => parseTaskFile('{"tasks": {"a": ', 'broken.json')).toThrow(TaskFileError);
    expect(() => parseTaskFile('{"tasks": {"a": ', 'broken.json')).toThrow(/broken\.json: not valid JSON/);
  });

  it('refuses a file without a tasks object', () => {
    expect(() => parseTaskFile('{"task": {}}', 'x.json')).toThrow(TaskFileError);
    expect(() => parseTaskFile('[]', 'x.json')).toThrow(/x\.json/);
  });

  it('refuses a bad task name', () => {
    expect(() => parseTaskFile(fileText({ 'bad name!': { argv: ['true'] } }))).toThrow(/task "bad name!": name/);
  });

  it('names the broken task among good ones', () => {
    const broken = { ...countTask(), cwd: 'relative' };
    expect(() => parseTaskFile(fileText({ greet: greetTask(), broken }))).toThrow(/task "broken": cwd/);
  });
});

describe('validateParams', () => {
  const reconfigure = task('reconfigure-container');
  const greet = task('greet');

  it('accepts valid params and returns them', () => {
    expect(validateParams(reconfigure, { containerId: 7, memory: 512 })).toEqual({ containerId: 7, memory: 512 });
    expect(validateParams(reconfigure, { containerId: 7 })).toEqual({ containerId: 7 });
    expect(validateParams(greet, { name: 'Ada', mode: 'slow', flag: false, count: 0, ratio: 0.5 })).toEqual({
      name: 'Ada',
      mode: 'slow',
      flag: false,
      count: 0,
      ratio: 0.5,
    });
  });

  it.each<[string, TaskTemplate, unknown, string]>([
    ['missing', reconfigure, { memory: 512 }, 'containerId'],
    ['unknown', reconfigure, { containerId: 1, command: 'rm -rf /' }, 'command'],
    ['wrong type (string for integer)', reconfigure, { containerId: '7' }, 'containerId'],
    ['wrong type (fraction for integer)', reconfigure, { containerId: 1.5 }, 'containerId'],
    ['wrong type (number for string)', greet, { name: 5 }, 'name'],
    ['wrong type (string for boolean)', greet, { name: 'a', flag: 'true' }, 'flag'],
    ['wrong type (null)', greet, { name: 'a', count: null }, 'count'],
    ['below the minimum', reconfigure, { containerId: 0 }, 'containerId'],
    ['above the maximum', reconfigure, { containerId: 1, memory: 262145 }, 'memory'],
    ['below the minimum (optional)', reconfigure, { containerId: 1, memory: 63 }, 'memory'],
    ['not matching the pattern', greet, { name: 'two\nlines' }, 'name'],
    ['empty against the pattern', greet, { name: '' }, 'name'],
    ['not in the enum', greet, { name: 'a', mode: 'medium' }, 'mode'],
  ])('names the field when a param is %s', (_what, t, params, field) => {
    const err = paramsError(() => validateParams(t, params));
    expect(err.field).toBe(field);
    expect(err.message).toContain(`"${field}"`);
  });

  it.each([null, [], 'containerId=1', 7])('refuses %j as params', (params) => {
    const err = paramsError(() => validateParams(reconfigure, params));
    expect(err.message).toMatch(/params/);
  });
});

describe('renderArgv', () => {
  const reconfigure = task('reconfigure-container');
  const greet = task('greet');

  it('replaces placeholders and keeps the literal text around them', () => {
    expect(renderArgv(reconfigure, { containerId: 7, memory: 512 })).toEqual([
      'node',
      'bin/reconfigure-container.js',
      '--container-id=7',
      '--memory=512',
    ]);
    expect(renderArgv(greet, { name: 'Ada', mode: 'fast', flag: true, count: 3 })).toEqual([
      'printf',
      '%s\\n',
      'Ada',
      '--mode=pre-fast-post',
      'true',
      '--count=3',
      'fast:3',
    ]);
  });

  it('leaves out an element naming an optional param that was not given', () => {
    expect(renderArgv(reconfigure, { containerId: 7 })).toEqual([
      'node',
      'bin/reconfigure-container.js',
      '--container-id=7',
    ]);
    // "{mode}:{count}" is dropped when either one is missing.
    expect(renderArgv(greet, { name: 'Ada', mode: 'slow' })).toEqual([
      'printf',
      '%s\\n',
      'Ada',
      '--mode=pre-slow-post',
    ]);
    expect(renderArgv(greet, { name: 'Ada', count: 0, flag: false })).toEqual([
      'printf',
      '%s\\n',
      'Ada',
      'false',
      '--count=0',
    ]);
  });

  it('renders a hostile value as exactly one element, unchanged', () => {
    const value = '$(touch /tmp/x); rm -rf ~';
    const argv = renderArgv(greet, validateParams(greet, { name: value }));
    expect(argv).toEqual(['printf', '%s\\n', value]);
  });

  it('does not expand placeholders inside a value', () => {
    expect(renderArgv(greet, { name: '{mode} {count}', mode: 'fast' })).toEqual([
      'printf',
      '%s\\n',
      '{mode} {count}',
      '--mode=pre-fast-post',
    ]);
  });

  it('prepareJob validates, renders, and describes the command', () => {
    expect(prepareJob(reconfigure, { containerId: 9 })).toEqual({
      params: { containerId: 9 },
      argv: ['node', 'bin/reconfigure-container.js', '--container-id=9'],
      command: 'node bin/reconfigure-container.js --container-id=9',
    });
    expect(() => prepareJob(reconfigure, { containerId: -1 })).toThrow(ParamsError);
  });
});

/**
 * Splits a POSIX shell command line into words, honouring '…', "…" and backslashes, and refusing any
 * unquoted character the shell would interpret (so a successful parse is a list of literal words).
 */
function parsePosixWords(line: string): string[] {
  const words: string[] = [];
  let word: string | null = null;
  let i = 0;
  const add = (s: string) => {
    word = (word ?? '') + s;
  };
  while (i < line.length) {
    const c = line[i];
    if (c === ' ' || c === '\t') {
      if (word !== null) words.push(word);
      word = null;
      i++;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end === -1) throw new Error(`unterminated single quote at ${i}`);
      add(line.slice(i + 1, end));
      i = end + 1;
    } else if (c === '"') {
      let s = '';
      i++;
      for (;;) {
        if (i >= line.length) throw new Error('unterminated double quote');
        const d = line[i];
        if (d === '"') break;
        if (d === '$' || d === '`') throw new Error(`expansion inside double quotes at ${i}`);
        if (d === '\\' && i + 1 < line.length && '$`"\\\n'.includes(line[i + 1])) {
          s += line[i + 1];
          i += 2;
        } else {
          s += d;
          i++;
        }
      }
      add(s);
      i++;
    } else if (c === '\\') {
      if (i + 1 >= line.length) throw new Error('trailing backslash');
      add(line[i + 1]);
      i += 2;
    } else if (/[A-Za-z0-9_\-+=.,/:@%^]/.test(c)) {
      add(c);
      i++;
    } else {
      throw new Error(`unquoted shell character ${JSON.stringify(c)} at ${i} in ${line}`);
    }
  }
  if (word !== null) words.push(word);
  return words;
}

describe('displayCommand', () => {
  const greet = task('greet');

  it('leaves plain words alone and quotes the rest', () => {
    expect(displayCommand(['node', 'demo/count.js', '--to=5'])).toBe('node demo/count.js --to=5');
    expect(displayCommand(['echo', 'hello world', ''])).toBe("echo 'hello world' ''");
    expect(displayCommand(['echo', "it's"])).toBe(`echo 'it'\\''s'`);
  });

  it('quotes a hostile value so that it reads back as the same single word', () => {
    const value = '$(touch /tmp/x); rm -rf ~';
    const argv = renderArgv(greet, { name: value });
    const line = displayCommand(argv);
    expect(line).toBe(`printf '%s\\n' '$(touch /tmp/x); rm -rf ~'`);
    expect(parsePosixWords(line)).toEqual(argv);
  });

  it.each([
    "it's a 'quoted' \"word\"",
    'back`tick` and $HOME and ${PATH} and \\backslash',
    'semi;colon|pipe&amp>redirect<in *glob? [set] #comment ~tilde !bang',
    'tab\there',
    'ünïcödé ☃',
    "'",
    "''",
    '--flag=a b',
  ])('round-trips %j through a POSIX word parser', (value) => {
    const argv = ['printf', '%s\\n', value, `--mode=${value}`];
    expect(parsePosixWords(displayCommand(argv))).toEqual(argv);
  });

  it('round-trips through a real /bin/sh without running anything inside the value', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cj-quote-'));
    try {
      const marker = path.join(tmp, 'pwned');
      const values = [
        `$(touch ${marker})`,
        `\`touch ${marker}\``,
        `x; touch ${marker}`,
        `x' ; touch ${marker}; echo '`,
        `"$(touch ${marker})"`,
        `* ? [a] ~ $HOME`,
      ];
      const argv = ['x', ...values];
      // printf prints each argument after the program word NUL-terminated, exactly as the shell parsed it.
      const script = `set -- ${displayCommand(argv)}; shift; printf '%s\\0' "$@"`;
      const result = spawnSync('/bin/sh', ['-c', script], { cwd: tmp, encoding: 'utf8' });
      expect(result.status).toBe(0);
      expect(result.stdout.split('\0').slice(0, -1)).toEqual(values);
      expect(fs.existsSync(marker)).toBe(false);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('truncates a very long command for display', () => {
    const line = displayCommand(['echo', 'a'.repeat(5000)]);
    expect(line.length).toBe(2000);
    expect(line.endsWith('...')).toBe(true);
  });
});

describe('renderEnvironment', () => {
  const reconfigure = task('reconfigure-container');
  const runnerEnv = loadConfig({
    PATH: '/opt/bin:/usr/bin',
    LANG: 'de_DE.UTF-8',
    HOME: '/var/lib/container-jobs',
    MYSQL_HOST: 'db.example',
    MYSQL_USER: 'jobs',
    MYSQL_PASSWORD: 's3cret-db-password',
    MYSQL_DATABASE: 'cj',
    SESSION_SECRET: 's3cret-session',
    METRICS_TOKEN: 's3cret-metrics',
    JOB_RUNNER_ID: 'runner-a',
    PROXMOX_API_TOKEN: 'pve-token',
    SSH_AUTH_SOCK: '/tmp/agent.sock',
    NODE_OPTIONS: '--require /tmp/evil.js',
  }).runnerEnv;

  it('holds only PATH, LANG, HOME, the template env, passEnv and the job identity', () => {
    const env = renderEnvironment(
      reconfigure,
      { id: 42, task: 'reconfigure-container', createdBy: 'alice' },
      runnerEnv,
    );
    expect(env).toEqual({
      PATH: '/opt/bin:/usr/bin',
      LANG: 'de_DE.UTF-8',
      HOME: '/var/lib/container-jobs',
      NODE_ENV: 'production',
      PROXMOX_API_TOKEN: 'pve-token',
      JOB_ID: '42',
      JOB_TASK: 'reconfigure-container',
      JOB_CREATED_BY: 'alice',
    });
    for (const value of Object.values(env)) expect(value).not.toMatch(/s3cret/);
  });

  it('leaves out a passEnv variable the runner does not have, and a null creator is empty', () => {
    const env = renderEnvironment(
      reconfigure,
      { id: 1, task: 'reconfigure-container', createdBy: null },
      { PATH: '/bin' },
    );
    expect(Object.keys(env).sort()).toEqual([
      'HOME',
      'JOB_CREATED_BY',
      'JOB_ID',
      'JOB_TASK',
      'LANG',
      'NODE_ENV',
      'PATH',
    ]);
    expect(env.JOB_CREATED_BY).toBe('');
    expect(env.PATH).toBe('/bin');
    expect(env).not.toHaveProperty('PROXMOX_API_TOKEN');
  });

  it('gives PATH, LANG and HOME even when the runner has none', () => {
    const env = renderEnvironment(reconfigure, { id: 1, task: 'reconfigure-container', createdBy: 'bob' }, {});
    expect(env.PATH).toEqual(expect.any(String));
    expect(env.PATH.length).toBeGreaterThan(0);
    expect(env.LANG).toEqual(expect.any(String));
    expect(env.HOME).toEqual(expect.any(String));
  });
});

describe('paramsFromStrings', () => {
  const reconfigure = task('reconfigure-container');
  const greet = task('greet');
  const count = task('count');

  it('converts by the declared type of each param', () => {
    const params = paramsFromStrings(reconfigure, ['containerId=7', 'memory=512']);
    expect(params).toEqual({ containerId: 7, memory: 512 });
    expect(typeof params.containerId).toBe('number');
    expect(paramsFromStrings(greet, ['name=123', 'flag=true', 'count=2', 'ratio=0.25'])).toEqual({
      name: '123',
      flag: true,
      count: 2,
      ratio: 0.25,
    });
    expect(paramsFromStrings(greet, ['name=x', 'flag=false'])).toEqual({ name: 'x', flag: false });
  });

  it('keeps everything after the first "=" in the value', () => {
    expect(paramsFromStrings(greet, ['name=a=b c'])).toEqual({ name: 'a=b c' });
  });

  it.each<[string, string[], string]>([
    ['a non-number for an integer', ['to=abc'], 'to'],
    ['a fraction for an integer', ['to=1.5'], 'to'],
    ['an empty integer', ['to='], 'to'],
    ['an integer out of range', ['to=0'], 'to'],
    ['an unknown param', ['to=1', 'from=1'], 'from'],
    ['a missing param', ['delayMs=5'], 'to'],
  ])('rejects %s', (_what, pairs, field) => {
    const err = paramsError(() => paramsFromStrings(count, pairs));
    expect(err.field).toBe(field);
    expect(err.message).toContain(`"${field}"`);
  });

  it('rejects a non-boolean for a boolean', () => {
    expect(paramsError(() => paramsFromStrings(greet, ['name=x', 'flag=yes'])).field).toBe('flag');
  });

  it('rejects a pair without "="', () => {
    expect(paramsError(() => paramsFromStrings(count, ['to'])).message).toMatch(/name=value/);
    expect(() => paramsFromStrings(count, ['=5'])).toThrow(ParamsError);
  });
});

describe('TaskCatalog', () => {
  let dir: string;
  let file: string;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cj-catalog-'));
    file = path.join(dir, 'tasks.json');
  });

  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Every write below has a different length, so the change is seen even within one mtime tick. */
  function write(text: string, atomic = false): void {
    if (!atomic) {
      fs.writeFileSync(file, text);
      return;
    }
    const tmp = `${file}.tmp`;
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, file);
  }

  it('refuses to start on a bad file', () => {
    write('{"tasks": ');
    expect(() => new TaskCatalog(file)).toThrow(TaskFileError);
    expect(() => new TaskCatalog(path.join(dir, 'missing.json'))).toThrow(/missing\.json/);
  });

  it.each([false, true])('reloads when the file changes on disk (atomic replace: %s)', (atomic) => {
    const errors: Error[] = [];
    write(fileText({ count: countTask() }), atomic);
    const catalog = new TaskCatalog(file, (err) => errors.push(err));
    expect([...catalog.current().keys()]).toEqual(['count']);
    expect(catalog.get('greet')).toBeUndefined();

    write(fileText({ count: countTask(), greet: greetTask() }), atomic);
    expect([...catalog.current().keys()].sort()).toEqual(['count', 'greet']);
    expect(catalog.get('greet')!.argv[0]).toBe('printf');

    write(fileText({ greet: greetTask() }), atomic);
    expect(catalog.get('count')).toBeUndefined();
    expect(errors).toEqual([]);
  });

  it('with recheckMs (the API), looks at the file at most that often', () => {
    jest.useFakeTimers();
    try {
      write(fileText({ count: countTask() }));
      const catalog = new TaskCatalog(file, undefined, { recheckMs: 1000 });
      write(fileText({ count: countTask(), greet: greetTask() }));
      expect(catalog.get('greet')).toBeUndefined();
      jest.advanceTimersByTime(999);
      expect(catalog.get('greet')).toBeUndefined();
      jest.advanceTimersByTime(1);
      expect(catalog.get('greet')).toBeDefined();
      // The next look is a full interval later again.
      write(fileText({ greet: greetTask() }));
      jest.advanceTimersByTime(500);
      expect(catalog.get('count')).toBeDefined();
      jest.advanceTimersByTime(500);
      expect(catalog.get('count')).toBeUndefined();
    } finally {
      jest.useRealTimers();
    }
  });

  it('keeps the last good file when the new content is invalid, and says so once', () => {
    const errors: Error[] = [];
    write(fileText({ count: countTask() }));
    const catalog = new TaskCatalog(file, (err) => errors.push(err));
    const good = catalog.current();

    write('{"tasks": {"count": ');
    expect(catalog.current()).toBe(good);
    expect(catalog.get('count')).toBeDefined();
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(TaskFileError);
    expect(errors[0].message).toContain(file);
    expect(errors[0].message).toMatch(/not valid JSON/);

    // Unchanged since: not reported again.
    catalog.current();
    catalog.get('count');
    expect(errors).toHaveLength(1);

    // A rule violation is kept out the same way, naming task and rule.
    write(fileText({ count: { ...countTask(), cwd: 'relative/dir' } }));
    expect(catalog.current()).toBe(good);
    expect(errors).toHaveLength(2);
    expect(errors[1].message).toMatch(/task "count": cwd must be an absolute path/);

    // Fixed: the new file is used.
    write(fileText({ count: countTask(), greet: greetTask() }));
    expect(catalog.get('greet')).toBeDefined();
    expect(errors).toHaveLength(2);
  });

  it('keeps the last good file when the file disappears', () => {
    const errors: Error[] = [];
    write(fileText({ count: countTask() }));
    const catalog = new TaskCatalog(file, (err) => errors.push(err));
    fs.rmSync(file);
    expect(catalog.get('count')).toBeDefined();
    expect(errors).toHaveLength(1);
    expect(errors[0].message).toContain(file);
  });
});
