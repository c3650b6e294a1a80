// The systemd units in systemd/: the directives the runner's semantics depend on (README, "How the runner
// works" and "What the units do"), the sandbox jobs can live with, the credentials, and systemd-analyze's
// verdict when it is installed.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EX_CONFIG, loadConfig } from '../config';
import { parseDuration } from '../models/prune';
import { KILL_GRACE_MS } from '../runner/job-process';
import { UnitFile, timespanMs } from './helpers/unit-file';

const ROOT = path.resolve(__dirname, '..');
const DIR = path.join(ROOT, 'systemd');
const RUNNER = 'container-jobs-runner.service';
const API = 'container-jobs-api.service';
const PRUNE_TIMER = 'container-jobs-prune.timer';
const MIGRATE = 'container-jobs-migrate.service';
const ENV_EXAMPLE = 'container-creator.env.example';
const SYSUSERS = 'container-jobs.sysusers.conf';
const MAX_RUNNER_EXPOSURE = 2.5;

/** The README configuration table: the variables an operator sets. */
const CONFIG_VARIABLES = [
  'MYSQL_HOST',
  'MYSQL_PORT',
  'MYSQL_USER',
  'MYSQL_PASSWORD',
  'MYSQL_DATABASE',
  'POSTGRES_HOST',
  'POSTGRES_PORT',
  'POSTGRES_USER',
  'POSTGRES_PASSWORD',
  'POSTGRES_DATABASE',
  'JOBS_SQLITE_PATH',
  'JOB_TASKS_FILE',
  'JOB_RUNNER_POLL_MS',
  'JOB_RUNNER_CONCURRENCY',
  'JOB_RUNNER_CWD',
  'JOB_RUNNER_ID',
  // SPEC §13.
  'JOB_RUNNER_JOB_USER',
  'JOB_RUNNER_HEARTBEAT_MS',
  'JOB_RUNNER_LEASE_MS',
  // Wake-up nudges (issue 14; not in SPEC §2): README, "How the runner works".
  'JOB_RUNNER_NUDGE_ADDRESS',
  // Leftover processes of dead runners outside systemd (issue 17): README, "How the runner works".
  'JOB_RUNNER_STATE_DIR',
  // Claims ahead of free slots while jobs are short (issue 14; not in SPEC §2): README, "How the runner works".
  'JOB_RUNNER_CLAIM_AHEAD',
  'JOB_OUTPUT_MAX_BYTES',
  'JOB_SHUTDOWN_GRACE_MS',
  'PORT',
  'HOST',
  'SESSION_SECRET',
  'COOKIE_SECURE',
  'TRUST_PROXY',
  'METRICS_TOKEN',
  // SPEC §11.
  'JOB_USER_MAX_RUNNING',
  'JOB_USER_MAX_PENDING',
  'JOB_STREAMS_PER_USER',
  // Not in SPEC §2: an addition (README, "Configuration").
  'LOG_LEVEL',
].sort();
/** Read by config.ts but not the operator's: set by systemd, or test-only. */
const NOT_OPERATOR_VARIABLES = [
  'CREDENTIALS_DIRECTORY',
  'NOTIFY_SOCKET',
  'WATCHDOG_USEC',
  'WATCHDOG_PID',
  'JOB_RUNNER_TEST_CRASH',
  // Test only: schedules with a seconds field (the chaos tests); never in a unit.
  'JOB_TEST_CRON_SECONDS',
];

const unit = (name: string) => UnitFile.read(path.join(DIR, name));
const runner = unit(RUNNER);
const api = unit(API);
const daemons: [string, UnitFile, string][] = [
  [RUNNER, runner, 'job-runner'],
  [API, api, 'server'],
];

describe.each(daemons)('%s', (_name, u, entry) => {
  it(`runs dist/${entry}.js with /usr/bin/node from /opt/container-jobs`, () => {
    expect(u.get('Service', 'ExecStart')).toBe(`/usr/bin/node /opt/container-jobs/dist/${entry}.js`);
    expect(fs.existsSync(path.join(ROOT, `${entry}.ts`))).toBe(true);
  });

  it('is Type=notify with NotifyAccess=all (systemd-notify is a child) and a watchdog', () => {
    expect(u.get('Service', 'Type')).toBe('notify');
    expect(u.get('Service', 'NotifyAccess')).toBe('all');
    expect(timespanMs(u.get('Service', 'WatchdogSec') ?? '0')).toBeGreaterThan(0);
  });

  it('restarts on failure, never on exit 78 (EX_CONFIG), within a start limit an outage cannot exhaust', () => {
    expect(u.get('Service', 'Restart')).toBe('on-failure');
    expect(u.words('Service', 'RestartPreventExitStatus')).toContain(String(EX_CONFIG));
    const interval = timespanMs(u.get('Unit', 'StartLimitIntervalSec') ?? '');
    const burst = Number(u.get('Unit', 'StartLimitBurst'));
    const startTimeout = timespanMs(u.get('Service', 'TimeoutStartSec') ?? '');
    const restartSec = timespanMs(u.get('Service', 'RestartSec') ?? '');
    expect(interval).toBeGreaterThan(0);
    expect(burst).toBeGreaterThan(0);
    // Waiting for the database: each start lasts TimeoutStartSec, then RestartSec. Never limited.
    expect(Math.floor(interval / (startTimeout + restartSec)) + 1).toBeLessThanOrEqual(burst);
    // A crash at once (allow 1 s per start): burst + 1 starts fit in the interval, so it is limited.
    expect(burst * (restartSec + 1000)).toBeLessThan(interval);
  });

  it('runs as a dedicated user from the sysusers.d file', () => {
    const user = u.get('Service', 'User');
    expect(user).toBe('container-jobs');
    expect(u.get('Service', 'Group')).toBe('container-jobs');
    const sysusers = fs.readFileSync(path.join(DIR, SYSUSERS), 'utf8');
    expect(sysusers).toMatch(new RegExp(`^u ${user} - `, 'm'));
  });

  it('reads /etc/default/container-creator if it exists', () => {
    expect(u.all('Service', 'EnvironmentFile')).toContain('-/etc/default/container-creator');
  });

  it('loads the MySQL and PostgreSQL passwords as credentials, with a fallback so a missing file is not fatal', () => {
    expect(u.all('Service', 'LoadCredential')).toContain('mysql-password:/etc/container-jobs/mysql-password');
    expect(u.all('Service', 'LoadCredential')).toContain('postgres-password:/etc/container-jobs/postgres-password');
    // systemd 252: a missing LoadCredential= file fails the start (243/CREDENTIALS) unless
    // SetCredential= of the same id is there; a lone newline reads as "not set".
    const fallbacks = u.all('Service', 'SetCredential');
    for (const load of u.all('Service', 'LoadCredential')) {
      expect(fallbacks).toContain(`${load.slice(0, load.indexOf(':'))}:\\n`);
    }
  });

  it('keeps the sandbox directives that matter', () => {
    expect(u.get('Service', 'NoNewPrivileges')).toBe('yes');
    expect(u.get('Service', 'ProtectSystem')).toBe('strict');
    expect(u.all('Service', 'StateDirectory')).toContain('container-jobs');
    expect(u.get('Service', 'WorkingDirectory')).toBe('/var/lib/container-jobs');
    expect(['yes', 'read-only', 'tmpfs']).toContain(u.get('Service', 'ProtectHome'));
    expect(u.get('Service', 'PrivateTmp')).toBe('yes');
    expect(u.words('Service', 'RestrictAddressFamilies').sort()).toEqual(['AF_INET', 'AF_INET6', 'AF_UNIX']);
    expect(u.words('Service', 'SystemCallFilter')).toContain('@system-service');
    expect(u.get('Service', 'SystemCallArchitectures')).toBe('native');
  });

  it('does not deny writable executable memory (V8 JIT) or the network', () => {
    expect(u.get('Service', 'MemoryDenyWriteExecute') ?? 'no').toBe('no');
    expect(u.get('Service', 'PrivateNetwork') ?? 'no').toBe('no');
  });

  it('is wanted by multi-user.target', () => {
    expect(u.all('Install', 'WantedBy')).toContain('multi-user.target');
  });
});

describe(RUNNER, () => {
  const defaults = loadConfig({}).runner;

  it('holds exactly CAP_SETUID CAP_SETGID CAP_KILL, as ambient capabilities (jobs run as another user)', () => {
    const caps = ['CAP_KILL', 'CAP_SETGID', 'CAP_SETUID'];
    expect(runner.words('Service', 'CapabilityBoundingSet').sort()).toEqual(caps);
    expect(runner.words('Service', 'AmbientCapabilities').sort()).toEqual(caps);
    expect(runner.get('Service', 'NoNewPrivileges')).toBe('yes');
  });

  it('runs jobs as a user of their own from the sysusers.d file, never as the runner', () => {
    const env = runner.all('Service', 'Environment');
    const jobUser = env.find((e) => e.startsWith('JOB_RUNNER_JOB_USER='))?.split('=')[1];
    expect(jobUser).toBeDefined();
    expect(jobUser).not.toBe(runner.get('Service', 'User'));
    expect(fs.readFileSync(path.join(DIR, SYSUSERS), 'utf8')).toMatch(new RegExp(`^u ${jobUser} - `, 'm'));
  });

  it('stops the runner first and the rest of the cgroup after (KillMode=mixed)', () => {
    expect(runner.get('Service', 'KillMode')).toBe('mixed');
  });

  it('waits longer on stop than the default drain grace plus the kill grace of a job', () => {
    const stop = timespanMs(runner.get('Service', 'TimeoutStopSec') ?? '');
    expect(stop).toBeGreaterThan(defaults.shutdownGraceMs + KILL_GRACE_MS);
  });

  it('keeps running when one job is OOM-killed (OOMPolicy=continue)', () => {
    expect(runner.get('Service', 'OOMPolicy')).toBe('continue');
  });

  it('lets jobs spawn processes and set their own limits (prlimit, setrlimit)', () => {
    const filters = runner.words('Service', 'SystemCallFilter');
    expect(filters.filter((f) => f.startsWith('~'))).toEqual([]);
    expect(runner.get('Service', 'RestrictNamespaces')).toBe('yes');
    expect(runner.get('Service', 'ProcSubset')).toBeUndefined();
  });
});

describe(API, () => {
  it('holds no capabilities at all', () => {
    expect(api.assignments('Service', 'CapabilityBoundingSet')).toEqual(['']);
    expect(api.words('Service', 'AmbientCapabilities')).toEqual([]);
  });

  it('loads the session secret and the metrics token as credentials too', () => {
    const loads = api.all('Service', 'LoadCredential');
    expect(loads).toContain('session-secret:/etc/container-jobs/session-secret');
    expect(loads).toContain('metrics-token:/etc/container-jobs/metrics-token');
  });

  it('is stricter than the runner where it spawns nothing but systemd-notify', () => {
    expect(api.get('Service', 'PrivateUsers')).toBe('yes');
    expect(api.get('Service', 'ProcSubset')).toBe('pid');
    expect(api.all('Service', 'SystemCallFilter')).toEqual(['@system-service', '~@privileged @resources']);
  });
});

describe('prune timer and migrate unit', () => {
  it(`${PRUNE_TIMER} starts a oneshot service that runs prune --older-than`, () => {
    const timer = unit(PRUNE_TIMER);
    expect(timer.get('Timer', 'OnCalendar')).toBeDefined();
    expect(timer.get('Timer', 'Persistent')).toBe('true');
    expect(timer.all('Install', 'WantedBy')).toContain('timers.target');
    const service = unit(timer.get('Timer', 'Unit') ?? PRUNE_TIMER.replace(/\.timer$/, '.service'));
    expect(service.get('Service', 'Type')).toBe('oneshot');
    expect(service.get('Service', 'User')).toBe('container-jobs');
    expect(service.all('Service', 'EnvironmentFile')).toContain('-/etc/default/container-creator');
    const exec = /^\/usr\/bin\/node \/opt\/container-jobs\/dist\/cli\.js prune --older-than (\S+)$/.exec(
      service.get('Service', 'ExecStart') ?? '',
    );
    expect(exec).not.toBeNull();
    expect(parseDuration(exec![1])).toBeGreaterThan(0);
  });

  it(`${MIGRATE} runs container-jobs migrate with the same environment and credential`, () => {
    const migrate = unit(MIGRATE);
    expect(migrate.get('Service', 'Type')).toBe('oneshot');
    expect(migrate.get('Service', 'ExecStart')).toBe('/usr/bin/node /opt/container-jobs/dist/cli.js migrate');
    for (const key of ['User', 'WorkingDirectory']) {
      expect(migrate.get('Service', key)).toBe(runner.get('Service', key));
    }
    for (const key of ['Environment', 'EnvironmentFile', 'LoadCredential', 'SetCredential']) {
      expect(migrate.all('Service', key)).toEqual(
        expect.arrayContaining(runner.all('Service', key).filter((v) => !v.startsWith('JOB_RUNNER_'))),
      );
    }
  });
});

describe(`${ENV_EXAMPLE} (EnvironmentFile example)`, () => {
  it('names exactly the variables of the README configuration table', () => {
    const text = fs.readFileSync(path.join(DIR, ENV_EXAMPLE), 'utf8');
    // A setting is NAME=value, or #NAME=value (no space) when it shows the default.
    const names = [...text.matchAll(/^#?([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]);
    expect(new Set(names).size).toBe(names.length);
    expect([...names].sort()).toEqual(CONFIG_VARIABLES);
  });

  it('and config.ts reads exactly those (besides what systemd sets)', () => {
    const source = fs.readFileSync(path.join(ROOT, 'config.ts'), 'utf8');
    const read = new Set([...source.matchAll(/\benv[A-Za-z]*\(env, '([A-Z][A-Z0-9_]*)'/g)].map((m) => m[1]));
    const operator = [...read].filter((name) => !NOT_OPERATOR_VARIABLES.includes(name)).sort();
    expect(operator).toEqual(CONFIG_VARIABLES);
  });
});

// systemd-analyze (systemd 252+) checks the files as systemd would; skipped where it is missing.
const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
const haveAnalyze = !analyze.error && analyze.status === 0;
const withAnalyze = haveAnalyze ? it : it.skip;
if (!haveAnalyze) {
  console.warn('systemd-analyze is not on PATH: skipping `systemd-analyze verify` and `security --offline=true`');
}

describe('systemd-analyze', () => {
  let tmp: string | undefined;
  afterAll(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** The unit files as installed; where /usr/bin/node is missing, copies that start this node. */
  function unitPaths(): string[] {
    const names = fs.readdirSync(DIR).filter((f) => /\.(service|timer)$/.test(f));
    if (fs.existsSync('/usr/bin/node')) return names.map((f) => path.join(DIR, f));
    tmp ??= fs.mkdtempSync(path.join(os.tmpdir(), 'cj-units-'));
    return names.map((f) => {
      const copy = path.join(tmp!, f);
      const text = fs.readFileSync(path.join(DIR, f), 'utf8');
      fs.writeFileSync(copy, text.replaceAll('/usr/bin/node ', `${process.execPath} `));
      return copy;
    });
  }

  withAnalyze('verify finds nothing to say about any unit', () => {
    const files = unitPaths();
    expect(files.length).toBeGreaterThanOrEqual(5);
    const result = spawnSync('systemd-analyze', ['verify', ...files], { encoding: 'utf8' });
    expect(result.stderr.trim()).toBe('');
    expect(result.stdout.trim()).toBe('');
    expect(result.status).toBe(0);
  });

  withAnalyze(`security --offline=true rates the runner ${MAX_RUNNER_EXPOSURE} or less, the API lower`, () => {
    const exposure = (name: string): number => {
      const result = spawnSync('systemd-analyze', ['security', '--offline=true', path.join(DIR, name)], {
        encoding: 'utf8',
      });
      expect(result.status).toBe(0);
      const match = /Overall exposure level for \S+: (\d+(?:\.\d+)?)/.exec(result.stdout);
      if (!match) throw new Error(`no exposure level in:\n${result.stdout}${result.stderr}`);
      return Number(match[1]);
    };
    const runnerExposure = exposure(RUNNER);
    expect(runnerExposure).toBeLessThanOrEqual(MAX_RUNNER_EXPOSURE);
    expect(exposure(API)).toBeLessThanOrEqual(runnerExposure);
  });
});
