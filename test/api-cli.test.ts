// The command line (README, "Command line"): `container-jobs user …`, `token …` and `start`, and server.ts,
// run as compiled commands.
import { spawn, type ChildProcessWithoutNullStreams, type SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import request from 'supertest';
import { authenticateApiToken, verifyCredentials } from '../models/users';
import { TASKS_FILE, collectText, parseSse } from './helpers/api';
import { runScript, serviceEnv, show } from './helpers/cli';
import { ROOT, databaseEnv, useDatabase } from './helpers/database';

const worker = process.env.JEST_WORKER_ID ?? '0';
let tmp: string;

beforeAll(() => {
  if (!fs.existsSync(path.join(ROOT, 'dist', 'cli.js'))) {
    throw new Error('dist/cli.js is missing: run "npm run build" first (npm test does it as pretest)');
  }
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cj-api-cli-'));
});

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

const ctx = useDatabase(`cj_test_apicli_w${worker}`);

function envFor(extra: Record<string, string> = {}): Record<string, string> {
  return serviceEnv({
    ...databaseEnv(ctx.database),
    JOB_TASKS_FILE: TASKS_FILE,
    SESSION_SECRET: 'cli-test-secret-0123456789abcdef0123456789',
    ...extra,
  });
}

function cli(args: string[], input = '', extra: Record<string, string> = {}): SpawnSyncReturns<string> {
  return runScript(path.join('dist', 'cli.js'), args, envFor(extra), input);
}

function lastLine(text: string): string {
  const lines = text.trimEnd().split('\n');
  return lines[lines.length - 1];
}

describe('container-jobs user', () => {
  test('user add: the password comes from stdin; nothing is printed of it', async () => {
    const result = cli(['user', 'add', 'alice'], 'a-piped-password\n');
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/created user "alice"/);
    expect(result.stdout).not.toContain('a-piped-password');
    expect(await verifyCredentials(ctx.db, 'alice', 'a-piped-password')).toEqual({ username: 'alice', isAdmin: false });
  });

  test('user add --admin with empty stdin: a generated password, printed once', async () => {
    const result = cli(['user', 'add', 'root', '--admin']);
    expect(result.status).toBe(0);
    const match = /^password: (\S+)$/.exec(lastLine(result.stdout));
    expect(match).not.toBeNull();
    expect(await verifyCredentials(ctx.db, 'root', match![1])).toEqual({ username: 'root', isAdmin: true });
  });

  test('user add refuses a duplicate, a bad name and a short password (exit 65)', () => {
    expect(cli(['user', 'add', 'alice'], 'password-one\n').status).toBe(0);
    const again = cli(['user', 'add', 'alice'], 'password-two\n');
    expect(again.status).toBe(65);
    expect(again.stderr).toMatch(/already exists/);
    expect(cli(['user', 'add', 'bad name'], 'password-one\n').status).toBe(65);
    const short = cli(['user', 'add', 'carol'], 'short\n');
    expect(short.status).toBe(65);
    expect(short.stderr).toMatch(/too short/);
    expect(cli(['user', 'add']).status).toBe(64);
  });

  test('user passwd: sets a new password; unknown users are refused', async () => {
    expect(cli(['user', 'add', 'alice'], 'old-password\n').status).toBe(0);
    const result = cli(['user', 'passwd', 'alice'], 'new-password\n');
    expect(result.status).toBe(0);
    expect(await verifyCredentials(ctx.db, 'alice', 'new-password')).not.toBeNull();
    expect(await verifyCredentials(ctx.db, 'alice', 'old-password')).toBeNull();
    const generated = cli(['user', 'passwd', 'alice']);
    expect(generated.status).toBe(0);
    const password = /^password: (\S+)$/.exec(lastLine(generated.stdout))![1];
    expect(await verifyCredentials(ctx.db, 'alice', password)).not.toBeNull();
    expect(cli(['user', 'passwd', 'nobody'], 'new-password\n').status).toBe(65);
  });

  test('user list', () => {
    cli(['user', 'add', 'alice'], 'password-one\n');
    cli(['user', 'add', 'root', '--admin'], 'password-two\n');
    const result = cli(['user', 'list']);
    expect(result.status).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^alice\tuser\t0 token\(s\)/);
    expect(lines[1]).toMatch(/^root\tadmin\t/);
  });
});

describe('container-jobs token', () => {
  test('token create prints the token alone on the last line; it works until revoked', async () => {
    cli(['user', 'add', 'alice'], 'password-one\n');
    const created = cli(['token', 'create', 'alice', '--name', 'laptop']);
    expect(created.status).toBe(0);
    const token = lastLine(created.stdout);
    expect(token).toMatch(/^cjt_[A-Za-z0-9_-]{43}$/);
    expect(await authenticateApiToken(ctx.db, token)).toEqual({ username: 'alice', isAdmin: false });
    const list = cli(['token', 'list']);
    expect(list.status).toBe(0);
    expect(list.stdout).not.toContain(token);
    const [id, user, name] = list.stdout.trim().split('\t');
    expect([user, name]).toEqual(['alice', 'laptop']);
    const revoked = cli(['token', 'revoke', id]);
    expect(revoked.status).toBe(0);
    expect(await authenticateApiToken(ctx.db, token)).toBeNull();
    expect(cli(['token', 'revoke', id]).status).toBe(65);
  });

  test('token create for an unknown user is refused; bad ids are usage errors', () => {
    expect(cli(['token', 'create', 'nobody']).status).toBe(65);
    expect(cli(['token', 'revoke', 'abc']).status).toBe(64);
    expect(cli(['token', 'frobnicate']).status).toBe(64);
  });
});

/** A long-running command whose stdout is read line by line as it comes. */
class Daemon {
  readonly child: ChildProcessWithoutNullStreams;
  readonly lines: string[] = [];
  readonly exited: Promise<number | null>;
  private waiters: { pattern: RegExp; resolve: (m: RegExpExecArray) => void }[] = [];

  constructor(script: string, args: string[], env: Record<string, string>) {
    this.child = spawn(process.execPath, [path.join('dist', script), ...args], { cwd: ROOT, env });
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
    for (const stream of [this.child.stdout, this.child.stderr]) {
      readline.createInterface({ input: stream }).on('line', (line) => {
        this.lines.push(line);
        this.waiters = this.waiters.filter((w) => {
          const match = w.pattern.exec(line);
          if (match) w.resolve(match);
          return !match;
        });
      });
    }
  }

  waitFor(pattern: RegExp): Promise<RegExpExecArray> {
    for (const line of this.lines) {
      const match = pattern.exec(line);
      if (match) return Promise.resolve(match);
    }
    return new Promise((resolve) => this.waiters.push({ pattern, resolve }));
  }
}

describe('container-jobs start', () => {
  test('first start creates admin once; the API and the runner run a job end to end; SIGTERM exits 0', async () => {
    const env = envFor({ PORT: '0', HOST: '127.0.0.1', JOB_RUNNER_POLL_MS: '50', JOB_RUNNER_CWD: tmp });
    const daemon = new Daemon('cli.js', ['start'], env);
    try {
      const [, password] = await daemon.waitFor(/admin password \(shown once\): (\S+)/);
      const [, url] = await daemon.waitFor(/API listening on (http:\/\/\S+);/);
      expect(daemon.lines[0]).toMatch(
        { mysql: /MySQL/, postgres: /PostgreSQL/, sqlite: /SQLite/ }[ctx.database.dialect],
      );
      const agent = request.agent(url);
      await agent.get('/health').expect(200);
      await agent.post('/login').set('Origin', url).send({ username: 'admin', password }).expect(200);
      const created = await agent
        .post('/jobs')
        .set('Origin', url)
        .send({ task: 'greet', params: { name: 'Ann' } })
        .expect(201);
      const res = await agent.get(`/jobs/${created.body.id}/stream`).buffer(true).parse(collectText).expect(200);
      const events = parseSse(res.body as string);
      const output = events.filter((e) => e.event === 'output').map((e) => JSON.parse(e.data));
      expect(output.filter((r) => r.stream === 'stdout').map((r) => r.output)).toEqual(['hello Ann']);
      expect(JSON.parse(events[events.length - 1].data)).toEqual({ status: 'success' });
    } finally {
      daemon.child.kill('SIGTERM');
    }
    expect(await daemon.exited).toBe(0);

    // The second start finds a user and prints no password.
    const again = new Daemon('cli.js', ['start'], env);
    await again.waitFor(/API listening on/);
    again.child.kill('SIGTERM');
    expect(await again.exited).toBe(0);
    expect(again.lines.join('\n')).not.toMatch(/password/);
    expect(await ctx.db.models.User.count()).toBe(1);
  });

  test('a configuration error exits 78: SESSION_SECRET missing with MySQL or PostgreSQL, a broken task file', () => {
    const mysql = cli(['start'], '', {
      MYSQL_HOST: '127.0.0.1',
      MYSQL_USER: 'nobody',
      MYSQL_DATABASE: 'nothing',
      POSTGRES_HOST: '',
      SESSION_SECRET: '',
    });
    expect(mysql.status).toBe(78);
    expect(mysql.stderr).toMatch(/SESSION_SECRET is required with MySQL/);
    const postgres = cli(['start'], '', {
      MYSQL_HOST: '',
      POSTGRES_HOST: '127.0.0.1',
      POSTGRES_USER: 'nobody',
      POSTGRES_DATABASE: 'nothing',
      SESSION_SECRET: '',
    });
    expect(postgres.status).toBe(78);
    expect(postgres.stderr).toMatch(/SESSION_SECRET is required with PostgreSQL/);
    const broken = path.join(tmp, 'broken-tasks.json');
    fs.writeFileSync(broken, '{"tasks": {"x": {"argv": []}}}');
    const tasks = cli(['start'], '', { JOB_TASKS_FILE: broken });
    expect(tasks.status).toBe(78);
    expect(tasks.stderr).toMatch(/argv/);
  });
});

describe('server.ts', () => {
  test('says which database first, serves the API, and exits 0 on SIGTERM', async () => {
    const daemon = new Daemon('server.js', [], envFor({ PORT: '0', HOST: '127.0.0.1' }));
    try {
      const [, url] = await daemon.waitFor(/listening on (http:\/\/\S+)/);
      expect(daemon.lines[0]).toMatch(
        {
          mysql: /^server: database: MySQL/,
          postgres: /^server: database: PostgreSQL/,
          sqlite: /^server: database: embedded SQLite/,
        }[ctx.database.dialect],
      );
      await request(url).get('/health').expect(200);
      await request(url).get('/jobs').expect(401);
    } finally {
      daemon.child.kill('SIGTERM');
    }
    expect(await daemon.exited).toBe(0);
  });

  test('exits 78 on a configuration error', () => {
    const result = runScript(
      path.join('dist', 'server.js'),
      [],
      envFor({ JOB_TASKS_FILE: path.join(tmp, 'missing.json') }),
    );
    expect(result.status).toBe(78);
    expect(result.stderr).toMatch(/missing\.json/);
    expect(show(result)).not.toMatch(/at .*\.js:\d+/);
  });
});
