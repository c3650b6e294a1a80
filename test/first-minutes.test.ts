// The first fifteen minutes (issue 15), as an operator meets them through the built commands: one way
// to run the CLI (`npx container-jobs`) in the README and in every hint the program prints, `npm start`
// that compiles only what changed, `job-runner --once` saying what it ran, `prune --dry-run`, and the
// owner of a job enqueued from the command line.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { QueryTypes } from 'sequelize';
import { FALLBACK_OWNER, defaultOwner } from '../cli-common';
import { runJobRunnerOnce, runScript, serviceEnv, show } from './helpers/cli';
import { ROOT, databaseEnv, useDatabase, sqlOf } from './helpers/database';

/** Tasks `ok`, `fail`, `wait` (runs until stopped) and `wipe` (admins only). */
const TASKS = path.join(ROOT, 'test', 'fixtures', 'first-minutes', 'tasks.json');
const RUNNER_ID = 'first-minutes-once';

const suite = useDatabase(`cj_test_first_w${process.env.JEST_WORKER_ID ?? '0'}`);

beforeAll(() => {
  if (!fs.existsSync(path.join(ROOT, 'dist', 'cli.js'))) {
    throw new Error('dist/cli.js is missing: run "npm run build" first (npm test does it as pretest)');
  }
});

function env(extra: Record<string, string> = {}): Record<string, string> {
  return serviceEnv({ ...databaseEnv(suite.database), JOB_TASKS_FILE: TASKS, ...extra });
}

function run(args: string[], input = ''): SpawnSyncReturns<string> {
  return runScript(path.join('dist', 'cli.js'), args, env(), input);
}

function ok(args: string[], input = ''): string {
  const result = run(args, input);
  if (result.status !== 0) throw new Error(`container-jobs ${args.join(' ')} failed:\n${show(result)}`);
  return result.stdout;
}

async function select<T extends object>(sql: string, replacements: unknown[] = []): Promise<T[]> {
  return sqlOf(suite.db).query<T>(sql, { type: QueryTypes.SELECT, replacements });
}

async function count(table: string): Promise<number> {
  const [row] = await select<{ n: number | string }>(`SELECT COUNT(*) AS n FROM ${table}`);
  return Number(row.n);
}

/** A UTC time `daysAgo` days back, as both databases store DATETIME(3). */
function daysAgo(days: number): string {
  return new Date(Date.now() - days * 86400_000).toISOString().slice(0, 23).replace('T', ' ');
}

describe('one way to run the CLI: npx container-jobs', () => {
  /** `container-jobs <command>` said without the `npx ` before it (not a unit name, group or file). */
  const BARE = /(?<!npx )\bcontainer-jobs (?:migrate|user|token|tasks|enqueue|prune|job|schedules|start)\b(?![.\w-])/;

  function sources(dir: string): string[] {
    return fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        return ['node_modules', 'dist', 'test', '.git'].includes(entry.name) ? [] : sources(file);
      }
      return /\.(ts|js|html)$/.test(entry.name) && !entry.name.endsWith('.d.ts') ? [file] : [];
    });
  }

  it('is the form of every hint the program prints (comments aside) and of every README mention', () => {
    const bare: string[] = [];
    for (const file of sources('.')) {
      if (file === 'eslint.config.js' || file === 'jest.config.js') continue;
      fs.readFileSync(path.join(ROOT, file), 'utf8')
        .split('\n')
        .forEach((line, i) => {
          const code = line.trim();
          if (code.startsWith('//') || code.startsWith('*') || code.startsWith('/*')) return;
          if (BARE.test(line)) bare.push(`${file}:${i + 1}: ${code}`);
        });
    }
    fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (BARE.test(line) || /node dist\/cli\.js/.test(line)) bare.push(`README.md:${i + 1}: ${line}`);
      });
    expect(bare).toEqual([]);
    // And the hints themselves say it: the first start's, and an unknown task's.
    const cli = fs.readFileSync(path.join(ROOT, 'cli.ts'), 'utf8');
    expect(cli).toContain('change it with: npx container-jobs user passwd admin');
    const unknown = run(['enqueue', 'reboot-cluster']);
    expect(unknown.status).toBe(65);
    expect(unknown.stderr).toContain('(see: npx container-jobs tasks check)');
  });

  it('works in the checkout after npm ci, offline: npm runs the package bin, dist/cli.js', () => {
    const npx = spawnSync('npx', ['container-jobs', '--help'], {
      cwd: ROOT,
      env: { ...serviceEnv(), npm_config_offline: 'true', npm_config_update_notifier: 'false' },
      encoding: 'utf8',
      timeout: 60000,
    });
    expect(npx.error).toBeUndefined();
    if (npx.status !== 0) throw new Error(`npx container-jobs --help failed:\n${show(npx)}`);
    expect(npx.stdout).toMatch(/^usage: npx container-jobs <command>/);
    expect(npx.stdout).toBe(run(['--help']).stdout);
    // npm ci links the dependencies' bins, not the package's own: no `container-jobs` on the PATH.
    expect(fs.existsSync(path.join(ROOT, 'node_modules', '.bin', 'container-jobs'))).toBe(false);
  });
});

describe('npm start compiles only when a source changed', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  };

  it('runs `tsc -b` before start, which skips an up-to-date build and redoes a stale one', () => {
    expect(pkg.scripts.start).toBe('node dist/cli.js start');
    const [tsc, ...args] = pkg.scripts.prestart.split(' ');
    expect([tsc, ...args]).toEqual(['tsc', '-b', 'tsconfig.json']);

    // The same command on a project of one file, so that the checkout's own dist/ is left alone.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cj-first-tsc-'));
    try {
      fs.writeFileSync(
        path.join(dir, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: { outDir: 'dist', rootDir: '.', module: 'commonjs', skipLibCheck: true, types: [] },
          include: ['*.ts'],
        }),
      );
      const source = path.join(dir, 'main.ts');
      const output = path.join(dir, 'dist', 'main.js');
      fs.writeFileSync(source, 'export const answer: number = 42;\n');
      const build = () => {
        const result = spawnSync(
          process.execPath,
          [path.join(ROOT, 'node_modules', 'typescript', 'bin', tsc), ...args, '--verbose'],
          { cwd: dir, encoding: 'utf8', timeout: 110_000 },
        );
        if (result.status !== 0) throw new Error(`${pkg.scripts.prestart} failed:\n${show(result)}`);
        return result.stdout;
      };

      expect(build()).toMatch(/Building project/);
      const built = fs.statSync(output).mtimeMs;
      expect(build()).toMatch(/is up to date/);
      expect(fs.statSync(output).mtimeMs).toBe(built); // not written again

      fs.writeFileSync(source, 'export const answer: number = 43;\n');
      expect(build()).toMatch(/Building project/);
      expect(fs.readFileSync(output, 'utf8')).toContain('43');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 360_000); // three compiles, on a busy 2-core machine
});

describe('job-runner --once says what it ran', () => {
  interface OnceRun {
    code: number | null;
    log: string;
  }

  function runOnce(): Promise<OnceRun> {
    return runJobRunnerOnce(
      env({
        JOB_RUNNER_ID: RUNNER_ID,
        JOB_RUNNER_CONCURRENCY: '4',
        JOB_RUNNER_HEARTBEAT_MS: '200',
        JOB_RUNNER_LEASE_MS: '2000',
      }),
    );
  }

  it('ends with "once: ran N job(s): S succeeded, F failed, C cancelled", counting only its own', async () => {
    // Finished long ago under the same runner id: not this process's work.
    await sqlOf(suite.db).query(
      `INSERT INTO Jobs (task, params, createdBy, status, runnerId, startedAt, finishedAt)
       VALUES ('ok', '{}', 'old', 'success', ?, ?, ?)`,
      { replacements: [RUNNER_ID, daysAgo(2), daysAgo(2)] },
    );
    const ids = ['ok', 'ok', 'fail', 'wait'].map((task) => Number(ok(['enqueue', task]).trim()));
    const waitId = ids[3];
    let ended: OnceRun | null = null;
    const running = runOnce().then((result) => (ended = result));
    // Cancel the waiting job once it has said it is ready (its runner stops it within a heartbeat).
    for (;;) {
      const ready = await select('SELECT 1 AS x FROM JobStatuses WHERE jobId = ? AND output = ?', [waitId, 'ready']);
      if (ready.length > 0) break;
      if (ended) throw new Error(`the runner ended before job ${waitId} was ready:\n${(ended as OnceRun).log}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    ok(['job', 'cancel', String(waitId)]);
    const { code, log } = await running;
    expect(code).toBe(0);
    expect(log).toMatch(/once: ran 4 job\(s\): 2 succeeded, 1 failed, 1 cancelled\n/);

    // An empty queue: it says so too.
    const idle = await runOnce();
    expect(idle.code).toBe(0);
    expect(idle.log).toMatch(/once: ran 0 job\(s\): 0 succeeded, 0 failed, 0 cancelled\n/);
  });
});

describe('prune --dry-run', () => {
  async function finishedJob(days: number, lines: number, status = 'success'): Promise<void> {
    await sqlOf(suite.db).query(
      'INSERT INTO Jobs (task, params, createdBy, status, finishedAt) VALUES (?, ?, ?, ?, ?)',
      { replacements: ['ok', '{}', 'alice', status, status === 'pending' ? null : daysAgo(days)] },
    );
    const [{ id }] = await select<{ id: number }>('SELECT MAX(id) AS id FROM Jobs');
    for (let seq = 1; seq <= lines; seq++) {
      await sqlOf(suite.db).query("INSERT INTO JobStatuses (jobId, seq, stream, output) VALUES (?, ?, 'stdout', 'x')", {
        replacements: [id, seq],
      });
    }
  }

  it('prints what prune would delete, deletes nothing, and prune then deletes exactly that', async () => {
    await finishedJob(40, 3);
    await finishedJob(31, 2, 'failure');
    await finishedJob(5, 4); // too recent
    await finishedJob(0, 1, 'pending'); // never pruned
    await sqlOf(suite.db).query("INSERT INTO JobRunners (id, seenAt, report) VALUES ('gone:1', ?, '{}')", {
      replacements: [daysAgo(40)],
    });
    const before = [await count('Jobs'), await count('JobStatuses'), await count('JobRunners')];

    const dry = ok(['prune', '--older-than', '30d', '--dry-run']);
    expect(dry).toBe(
      'would prune 2 finished job(s) and 5 output row(s) older than 30d, 0 empty group(s), ' +
        '0 schedule fire record(s) and 1 stale runner report(s)\ndry run: nothing deleted\n',
    );
    expect([await count('Jobs'), await count('JobStatuses'), await count('JobRunners')]).toEqual(before);

    expect(ok(['prune', '--older-than', '30d'])).toBe(
      'pruned 2 finished job(s) and 5 output row(s) older than 30d, and 1 stale runner report(s)\n',
    );
    expect([await count('Jobs'), await count('JobStatuses'), await count('JobRunners')]).toEqual([2, 5, 0]);
    expect(ok(['prune', '--older-than', '30d', '--dry-run'])).toMatch(/^would prune 0 finished job\(s\) and 0 output/);
  });

  it('takes --dry-run only as a flag beside --older-than', () => {
    const result = run(['prune', '--dry-run']);
    expect(result.status).toBe(64);
    expect(result.stderr).toMatch(/prune needs --older-than/);
  });
});

describe('the owner of a job enqueued from the command line', () => {
  const me = os.userInfo().username;

  it('is the OS user without --as, and shows in job list and job show', async () => {
    const id = Number(ok(['enqueue', 'ok']).trim());
    const [row] = await select<{ createdBy: string | null }>('SELECT createdBy FROM Jobs WHERE id = ?', [id]);
    expect(row.createdBy).toBe(me);
    expect(ok(['job', 'list']).split('\n')[0].split('\t').slice(0, 4)).toEqual([String(id), 'pending', 'ok', me]);
    expect(ok(['job', 'show', String(id)])).toMatch(new RegExp(`^ {2}owner: +${me}$`, 'm'));
  });

  it('is --as NAME when given, which must be a name', async () => {
    const id = Number(ok(['enqueue', 'ok', '--as', 'bob']).trim());
    const [row] = await select<{ createdBy: string | null }>('SELECT createdBy FROM Jobs WHERE id = ?', [id]);
    expect(row.createdBy).toBe('bob');
    const bad = run(['enqueue', 'ok', '--as', 'two words']);
    expect(bad.status).toBe(64);
    expect(await count('Jobs')).toBe(1);
  });

  it('must be an admin user for an adminOnly task, which would not run otherwise', async () => {
    const refused = run(['enqueue', 'wipe']);
    expect(refused.status).toBe(65);
    expect(refused.stderr).toContain(`task "wipe" is for admins and "${me}" is not an admin user`);
    expect(refused.stderr).toContain('--as');
    expect(await count('Jobs')).toBe(0);
    ok(['user', 'add', 'boss', '--admin'], 'boss-password-1\n');
    const id = Number(ok(['enqueue', 'wipe', '--as', 'boss']).trim());
    const [row] = await select<{ createdBy: string | null }>('SELECT createdBy FROM Jobs WHERE id = ?', [id]);
    expect(row.createdBy).toBe('boss');
  });

  it('is "cli" when the OS has no usable name for the user', () => {
    expect(defaultOwner()).toBe(me);
    const noEntry = () => {
      throw Object.assign(new Error('ENOENT: no such file or directory, uv_os_get_passwd'), { code: 'ENOENT' });
    };
    expect(defaultOwner(noEntry)).toBe(FALLBACK_OWNER);
    expect(defaultOwner(() => ({ username: 'has space' }))).toBe(FALLBACK_OWNER);
    expect(FALLBACK_OWNER).toBe('cli');
  });
});
