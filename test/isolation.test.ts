// SPEC §13, README "Job isolation": jobs run as JOB_RUNNER_JOB_USER (or a template's `user`), the
// SQLite file and session secret are 0600, adminOnly is checked again at spawn, values that would
// be taken for options are refused, and so are strings that are not well-formed Unicode.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig } from '../config';
import sqlite3 from 'sqlite3';
import { findSetpriv } from '../runner/job-process';
import { resolveJobUser, missingCapabilities } from '../runner/job-user';
import { resolveSessionSecret } from '../routers/sessions';
import { parseTaskDocument, TaskFileError } from '../tasks/catalog';
import { ParamsError, prepareJob } from '../tasks/render';
import { count, useApi, type Agent } from './helpers/api';
import { ROOT, sqlOf } from './helpers/database';
import { baseRunnerEnv, insertJob, jobRow, lines, runOnce, statusRows } from './helpers/runner';

const TASKS = path.join(ROOT, 'test', 'fixtures', 'isolation', 'tasks.json');

/**
 * A SQLite database made as every process makes one, by `container-jobs migrate` (dist/), in a child:
 * a second handle in this process would re-bind the shared model classes to itself.
 */
function makeSqliteFile(storage: string): void {
  const result = spawnSync(process.execPath, [path.join(ROOT, 'dist', 'cli.js'), 'migrate'], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, JOBS_SQLITE_PATH: storage },
  });
  if (result.status !== 0) throw new Error(`migrate failed: ${result.stderr}`);
}
const ctx = useApi({ users: { admin: true, formeradmin: true, plain: false }, tasksFile: TASKS });
const catalog = parseTaskDocument(fs.readFileSync(TASKS, 'utf8'), TASKS).tasks;

function post(agent: Agent, body: object) {
  return agent.post('/jobs').set('Origin', ctx.api.origin).send(body);
}

const run = (extra: Parameters<typeof runOnce>[1] = {}) => runOnce(ctx.db, { tasksFile: TASKS, ...extra });

async function outcome(id: number) {
  const job = await jobRow(ctx.db, id);
  const rows = await statusRows(ctx.db, id);
  return { job, stdout: lines(rows, 'stdout'), system: lines(rows, 'system') };
}

describe('JOB_RUNNER_JOB_USER', () => {
  const asRoot = process.getuid?.() === 0;
  const rootTest = asRoot ? test : test.skip;
  if (!asRoot) console.warn('not root: skipping the tests that run jobs as another user (CI runs them as root)');

  const JOB_USER = 'cj-test-job';
  let jobUser: { uid: number; gid: number };
  let tmp: string;
  let sqliteFile: string;

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cj-isolation-'));
    fs.chmodSync(tmp, 0o755);
    // The runner's database file when it is SQLite; on MySQL one made the same way, to read.
    if (ctx.database.dialect === 'sqlite') {
      sqliteFile = ctx.database.storage;
    } else {
      sqliteFile = path.join(tmp, 'jobs.sqlite');
      makeSqliteFile(sqliteFile);
    }
    if (!asRoot) return;
    // A user with a supplementary group of its own: the job must not get it. Two jest projects may race here.
    if (spawnSync('getent', ['passwd', JOB_USER]).status !== 0) {
      const groups = spawnSync('getent', ['group', 'users']).status === 0 ? ['--groups', 'users'] : [];
      spawnSync('useradd', [
        '--system',
        '--user-group',
        '--no-create-home',
        '--home-dir',
        '/',
        '--shell',
        '/usr/sbin/nologin',
        ...groups,
        JOB_USER,
      ]);
    }
    jobUser = resolveJobUser(JOB_USER, 'test');
  });

  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  const env = () => baseRunnerEnv({ RUNNER_PID: String(process.pid), DB_FILE: sqliteFile });

  rootTest(
    "a job runs as that user, in its primary group only, without capabilities, and cannot read the runner's secrets",
    async () => {
      const id = await insertJob(ctx.db, 'whoami', {});
      await run({ runnerEnv: env(), config: { jobUser: JOB_USER } });
      const { job, stdout } = await outcome(id);
      expect(job).toMatchObject({ status: 'success', error: null });
      expect(stdout[0]).toBe(String(jobUser.uid));
      expect(stdout[1]).toBe(String(jobUser.gid));
      expect(stdout[2]).toMatch(/^CapEff:\s+0+$/);
      expect(stdout[3]).toMatch(/^CapAmb:\s+0+$/);
      expect(stdout[4]).toMatch(new RegExp(`/proc/${process.pid}/environ: Permission denied`));
      expect(stdout[5]).toMatch(new RegExp(`${sqliteFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: Permission denied`));
      expect(stdout[6]).toBe('done');
    },
  );

  const haveCapsh = spawnSync('capsh', ['--help']).status === 0;
  const capshTest = asRoot && haveCapsh ? test : test.skip;
  if (asRoot && !haveCapsh)
    console.warn('capsh (libcap2-bin) is not installed: skipping the ambient-capabilities test');

  capshTest("from a runner that is not root but holds the unit's ambient capabilities, as under systemd", async () => {
    // The unit's model: a runner user with CAP_SETUID CAP_SETGID CAP_KILL as ambient capabilities.
    const script = path.join(tmp, 'runner.js');
    fs.writeFileSync(
      script,
      `const { JobProcess } = require(${JSON.stringify(path.join(ROOT, 'dist', 'runner', 'job-process.js'))});
const common = { cwd: '/', env: { PATH: '/usr/bin:/bin' }, timeoutMs: 0, limits: {}, killGraceMs: 60000,
  setprivPath: ${JSON.stringify(findSetpriv())}, user: { uid: 4245, gid: 4246 }, onStderr: (c) => process.stderr.write(c) };
(async () => {
  const info = new JobProcess({ ...common, onStdout: (c) => process.stdout.write(c),
    argv: ['/bin/sh', '-c', 'id -u; id -G; grep -E "^Cap(Eff|Amb):" /proc/self/status; cat /proc/$PPID/environ 2>&1 >/dev/null; true'] });
  info.start();
  console.log(JSON.stringify(await info.done));
  const sleeper = new JobProcess({ ...common, onStdout: () => {}, argv: ['sleep', '600'] });
  sleeper.start();
  sleeper.stop('cancelled');
  console.log(JSON.stringify(await sleeper.done));
})();
`,
    );
    const result = spawnSync(
      'capsh',
      [
        '--caps=cap_setuid,cap_setgid,cap_kill+eip cap_setpcap+ep',
        '--keep=1',
        '--groups=4244',
        '--gid=4243',
        '--uid=4243',
        '--addamb=cap_setuid,cap_setgid,cap_kill',
        '--',
        '-c',
        `grep -E "^(Uid|CapAmb):" /proc/self/status; exec ${process.execPath} ${script}`,
      ],
      { encoding: 'utf8', cwd: '/', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/' } },
    );
    expect(result.stderr).toBe('');
    const out = result.stdout.trim().split('\n');
    // The runner itself: uid 4243, with the three capabilities as ambient ones.
    expect(out[0]).toMatch(/^Uid:\s+4243\s/);
    expect(out[1]).toMatch(/^CapAmb:\s+0+e0$/);
    // The job: its own user and group, no other group, no capabilities, no access to the runner's environ.
    expect(out.slice(2, 5)).toEqual(['4245', '4246', expect.stringMatching(/^CapEff:\s+0+$/)]);
    expect(out[5]).toMatch(/^CapAmb:\s+0+$/);
    expect(out[6]).toMatch(/environ: Permission denied/);
    expect(JSON.parse(out[7])).toMatchObject({ exitCode: 0, spawnError: null });
    // CAP_KILL: the runner stops the job's process group although it belongs to another user.
    expect(JSON.parse(out[8])).toMatchObject({ signal: 'SIGTERM', stopReason: 'cancelled' });
  });

  rootTest('unset: the job runs as the runner, as before (so the test above proves the switch)', async () => {
    const id = await insertJob(ctx.db, 'whoami', {});
    await run({ runnerEnv: env() });
    const { job, stdout } = await outcome(id);
    expect(job.status).toBe('success');
    expect(stdout[0]).toBe(String(process.getuid!()));
    expect(stdout.join('\n')).not.toMatch(/Permission denied/);
  });

  rootTest('a template\'s "user" wins over JOB_RUNNER_JOB_USER (uid:gid need not exist)', async () => {
    const id = await insertJob(ctx.db, 'whoami-as', {});
    await run({ runnerEnv: env(), config: { jobUser: JOB_USER } });
    const { job, stdout } = await outcome(id);
    expect(job.status).toBe('success');
    expect(stdout).toEqual(['12345', '12346', 'done']);
  });

  rootTest("the runner's own user, root or an unknown name: the job is not run (invalid_template)", async () => {
    const unknown = await insertJob(ctx.db, 'whoami', {});
    await run({ runnerEnv: env(), config: { jobUser: 'cj-no-such-user' } });
    const { job, system } = await outcome(unknown);
    expect(job).toMatchObject({ status: 'failure', error: 'invalid_template' });
    expect(system.at(-1)).toMatch(/JOB_RUNNER_JOB_USER="cj-no-such-user": no such user on this host; job not run/);
  });
});

describe('JOB_RUNNER_JOB_USER as configuration', () => {
  test('parsed by loadConfig; bad syntax or root is exit 78 (ConfigError)', () => {
    expect(loadConfig({ JOB_RUNNER_JOB_USER: 'nobody' }).runner.jobUser).toBe('nobody');
    expect(loadConfig({ JOB_RUNNER_JOB_USER: '1000:1000' }).runner.jobUser).toBe('1000:1000');
    expect(loadConfig({}).runner.jobUser).toBeUndefined();
    for (const bad of ['root', '0:100', '100:0', 'a b', '1000:', ':1000', 'x;y']) {
      expect(() => loadConfig({ JOB_RUNNER_JOB_USER: bad })).toThrow(ConfigError);
    }
  });

  test("the runner's own user, an unknown name, root: ConfigError naming the setting", () => {
    expect(() => resolveJobUser('nobody', 'JOB_RUNNER_JOB_USER', 65534)).toThrow(
      /JOB_RUNNER_JOB_USER="nobody" is the runner's own user/,
    );
    expect(() => resolveJobUser('4242:4242', 'JOB_RUNNER_JOB_USER', 4242)).toThrow(/runner's own user/);
    expect(() => resolveJobUser('cj-no-such-user', 'JOB_RUNNER_JOB_USER', 1)).toThrow(/no such user/);
    expect(() => resolveJobUser('root', 'X', 1)).toThrow(ConfigError);
    expect(resolveJobUser('4242:4243', 'X', 1)).toEqual({ spec: '4242:4243', uid: 4242, gid: 4243 });
  });

  test('which capabilities a runner that is not root lacks', () => {
    expect(missingCapabilities('Uid:\t999\t999\t999\t999\nCapEff:\t0000000000000000\n')).toEqual([
      'CAP_KILL',
      'CAP_SETGID',
      'CAP_SETUID',
    ]);
    expect(missingCapabilities('Uid:\t999\t999\t999\t999\nCapEff:\t00000000000000e0\n')).toEqual([]);
    expect(missingCapabilities('Uid:\t999\t999\t999\t999\nCapEff:\t00000000000000c0\n')).toEqual(['CAP_KILL']);
  });

  test('a template "user" is checked with the task file', () => {
    const doc = (user: unknown) => JSON.stringify({ tasks: { t: { argv: ['true'], user } } });
    expect(parseTaskDocument(doc('nobody')).tasks.get('t')!.user).toBe('nobody');
    expect(parseTaskDocument(doc('65534:65534')).tasks.get('t')!.user).toBe('65534:65534');
    expect(() => parseTaskDocument(doc('root'))).toThrow(/task "t": user may not be root/);
    expect(() => parseTaskDocument(doc(5))).toThrow(TaskFileError);
    expect(() => parseTaskDocument(doc('not a user'))).toThrow(/user must be a user name or uid:gid/);
  });

  test('the job runner exits 78 with one line for an unknown user (dist/)', () => {
    const result = spawnSync(process.execPath, [path.join(ROOT, 'dist', 'job-runner.js'), '--once'], {
      encoding: 'utf8',
      env: {
        PATH: process.env.PATH,
        JOBS_SQLITE_PATH: path.join(os.tmpdir(), `cj-isolation-78-${process.pid}.sqlite`),
        JOB_TASKS_FILE: TASKS,
        JOB_RUNNER_JOB_USER: 'cj-no-such-user',
      },
    });
    expect(result.status).toBe(78);
    const errors = result.stderr.split('\n').filter((l) => /no such user/.test(l));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/JOB_RUNNER_JOB_USER="cj-no-such-user": no such user on this host/);
  });
});

describe('file modes', () => {
  let tmp: string;
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cj-modes-'));
  });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  const mode = (file: string) => fs.statSync(file).mode & 0o777;

  test('the SQLite file and its -wal and -shm are created 0600, whatever the umask allows', async () => {
    const storage = path.join(tmp, 'sub', 'jobs.sqlite');
    const old = process.umask(0o022);
    try {
      makeSqliteFile(storage);
      expect(mode(storage)).toBe(0o600);
      // While a connection writes, SQLite keeps -wal and -shm beside it, with the database's mode.
      const raw = new sqlite3.Database(storage);
      const exec = (sql: string) =>
        new Promise<void>((resolve, reject) => raw.exec(sql, (e) => (e ? reject(e) : resolve())));
      try {
        await exec("PRAGMA journal_mode = WAL; INSERT INTO Jobs (task, params) VALUES ('x', '{}')");
        for (const suffix of ['', '-wal', '-shm']) expect([suffix, mode(storage + suffix)]).toEqual([suffix, 0o600]);
      } finally {
        await new Promise((resolve) => raw.close(resolve));
      }
    } finally {
      process.umask(old);
    }
  });

  test('the generated session secret beside it is 0600', () => {
    const storage = path.join(tmp, 'jobs.sqlite');
    const config = { ...loadConfig({}), database: { dialect: 'sqlite' as const, storage } };
    resolveSessionSecret(config);
    expect(mode(`${storage}.session-secret`)).toBe(0o600);
  });
});

describe('adminOnly, checked again at spawn', () => {
  test('a creator no longer admin, or no longer a user: failure/not_allowed with the reason; admins, schedules and no creator run', async () => {
    const demoted = (await post(ctx.as.formeradmin, { task: 'admin-echo' }).expect(201)).body.id as number;
    const byAdmin = (await post(ctx.as.admin, { task: 'admin-echo' }).expect(201)).body.id as number;
    const noCreator = await insertJob(ctx.db, 'admin-echo', {}, { createdBy: null });
    const ghost = await insertJob(ctx.db, 'admin-echo', {}, { createdBy: 'ghost' });
    const plainUser = await insertJob(ctx.db, 'admin-echo', {}, { createdBy: 'plain' });
    const scheduled = await insertJob(ctx.db, 'admin-echo', {}, { createdBy: 'scheduler' });
    await sqlOf(ctx.db).query('INSERT INTO JobScheduleFires (scheduleName, fireAt, jobId) VALUES (?, ?, ?)', {
      replacements: ['nightly', new Date(), scheduled],
    });
    await sqlOf(ctx.db).query('UPDATE Users SET isAdmin = ? WHERE username = ?', {
      replacements: [false, 'formeradmin'],
    });

    await run();

    for (const id of [byAdmin, noCreator, scheduled]) {
      const { job, stdout } = await outcome(id);
      expect([id, job.status, stdout]).toEqual([id, 'success', ['ran']]);
    }
    for (const [id, why] of [
      [demoted, /its creator formeradmin is no longer an admin/],
      [ghost, /its creator ghost is no longer a user/],
      [plainUser, /its creator plain is no longer an admin/],
    ] as const) {
      const { job, stdout, system } = await outcome(id);
      expect(job).toMatchObject({ status: 'failure', exitCode: null, signal: null, error: 'not_allowed' });
      expect(stdout).toEqual([]);
      expect(system).toHaveLength(1);
      expect(system[0]).toMatch(why);
      expect(system[0]).toMatch(/task "admin-echo" is for admins and .*; job not run/);
    }
  });
});

describe('values that would be taken for options', () => {
  test.each([
    ['echo-arg', { value: '--help' }, 'value'],
    ['echo-arg', { value: '-' }, 'value'],
    ['echo-number', { n: -5 }, 'n'],
    ['echo-inside', { value: 'x', a: '', b: '-rf' }, 'b'],
    ['echo-inside', { value: 'x', a: '-rf', b: 'x' }, 'a'],
  ])('%s %j: 400 invalid_params naming the field, nothing written', async (task, params, field) => {
    const res = await post(ctx.as.plain, { task, params }).expect(400);
    expect(res.body.error).toMatchObject({ code: 'invalid_params', field });
    expect(res.body.error.message).toMatch(new RegExp(`param "${field}" may not start with "-"`));
    expect(await count(ctx.db, 'Jobs')).toBe(0);
  });

  test('after an element "--", inside an element, or not leading: accepted and passed as is', async () => {
    const ids = [];
    for (const body of [
      { task: 'echo-after-dashes', params: { value: '--help' } },
      { task: 'echo-inside', params: { value: '--help', a: 'a', b: '-rf' } },
      { task: 'echo-arg', params: { value: 'x--help' } },
      { task: 'echo-number', params: { n: 5 } },
    ]) {
      ids.push((await post(ctx.as.plain, body).expect(201)).body.id as number);
    }
    await run();
    const out = await Promise.all(ids.map(async (id) => (await outcome(id)).stdout));
    expect(out).toEqual([['["--","--help"]'], ['--name=--help a-rf'], ['x--help'], ['5']]);
  });

  test('the runner checks again: a job inserted by plain SQL with such a value is not run (invalid_template)', async () => {
    const id = await insertJob(ctx.db, 'echo-arg', { value: '--help' });
    await run();
    const { job, stdout, system } = await outcome(id);
    expect(job).toMatchObject({ status: 'failure', error: 'invalid_template' });
    expect(stdout).toEqual([]);
    expect(system[0]).toMatch(/param "value" may not start with "-"/);
  });

  test('prepareJob (shared by the API, the CLI, the runner and schedules) throws ParamsError with the field', () => {
    expect(() => prepareJob(catalog.get('echo-arg')!, { value: '--help' })).toThrow(ParamsError);
    try {
      prepareJob(catalog.get('echo-arg')!, { value: '-x' });
    } catch (err) {
      expect((err as ParamsError).field).toBe('value');
    }
  });
});

describe('strings that are not well-formed Unicode', () => {
  test('a lone surrogate is 400 invalid_params, never a 500, and nothing is written', async () => {
    for (const raw of ['"a\\ud800b"', '"\\udc00"', '"x\\ud83d"']) {
      const res = await ctx.as.plain
        .post('/jobs')
        .set('Origin', ctx.api.origin)
        .set('Content-Type', 'application/json')
        .send(`{"task": "echo-arg", "params": {"value": ${raw}}}`)
        .expect(400);
      expect(res.body.error).toMatchObject({ code: 'invalid_params', field: 'value' });
      expect(res.body.error.message).toMatch(/not well-formed Unicode/);
    }
    expect(await count(ctx.db, 'Jobs')).toBe(0);
  });

  test('a surrogate pair (an emoji) is fine, stored and printed as is', async () => {
    const res = await ctx.as.plain
      .post('/jobs')
      .set('Origin', ctx.api.origin)
      .set('Content-Type', 'application/json')
      .send('{"task": "echo-arg", "params": {"value": "ok \\ud83d\\ude00"}}')
      .expect(201);
    await run();
    expect((await outcome(res.body.id)).stdout).toEqual(['ok 😀']);
  });
});
