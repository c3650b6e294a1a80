// README.md's quick start, pasted in order as a new user would on a fresh clone: its shell blocks are
// read from the README and run as written (bash, `set -euo pipefail`) in a temporary copy of the
// checkout, against a fresh database, with the API the first block starts. Then the bearer-token
// example of "HTTP API", which relies on the quick start's user. A block that breaks fails here.
import { spawn, type ChildProcess, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DatabaseConfig } from '../config';
import type { Database } from '../models/database';
import { serviceEnv } from './helpers/cli';
import { ROOT, databaseEnv, dialect, freshDatabase } from './helpers/database';

const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
/** Where the README's commands say the API is; the test's API listens on a free port instead. */
const README_URL = 'http://127.0.0.1:3000';

interface Block {
  lang: string;
  body: string;
}

/** The fenced blocks of the README section whose heading is `title`. */
function sectionBlocks(title: string): Block[] {
  const start = README.indexOf(`\n## ${title}\n`);
  if (start === -1) throw new Error(`README.md has no section "## ${title}"`);
  const end = README.indexOf('\n## ', start + 1);
  const text = README.slice(start, end === -1 ? undefined : end);
  return [...text.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1], body: m[2] }));
}

/** A block's commands without their comments. */
function commands(block: Block): string[] {
  return block.body
    .split('\n')
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter((line) => line !== '');
}

let tmp: string;
let db: Database | undefined;
let config: DatabaseConfig | undefined;
/** Shells still running a block: killed after the file, whatever happened. */
const shells = new Set<ChildProcess>();
let server: { child: ChildProcessWithoutNullStreams; log: () => string; closed: Promise<number | null> } | null = null;

/** What a new user's shell has, plus the database when it is MySQL (SQLite: the default ./data/jobs.sqlite). */
function env(): Record<string, string> {
  const mysql: Record<string, string> =
    config && config.dialect !== 'sqlite'
      ? { ...databaseEnv(config), SESSION_SECRET: 'readme-test-secret-'.repeat(3) }
      : {};
  // npx must find the checkout's own bin, never ask the registry.
  return serviceEnv({ ...mysql, npm_config_offline: 'true', npm_config_update_notifier: 'false' });
}

/** `npm start` as package.json runs it once its prestart build is done; resolves with the API's URL. */
async function startServer(): Promise<string> {
  const child = spawn(process.execPath, [path.join('dist', 'cli.js'), 'start'], {
    cwd: tmp,
    env: { ...env(), PORT: '0' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
  server = { child, log: () => log, closed };
  for (;;) {
    const listening = /API listening on (http:\/\/\S+?);/.exec(log);
    if (listening) return listening[1];
    const exited = await Promise.race([closed.then(() => true), new Promise((r) => setTimeout(() => r(false), 100))]);
    if (exited) throw new Error(`npm start ended before it listened:\n${log}`);
  }
}

/** Ctrl-C in the terminal of `npm start`: it drains and exits 0. */
async function stopServer(): Promise<void> {
  if (!server) return;
  server.child.kill('SIGINT');
  const status = await server.closed;
  const { log } = server;
  server = null;
  if (status !== 0) throw new Error(`npm start exited ${status} on Ctrl-C:\n${log()}`);
}

/**
 * A block pasted into a shell in the copy, with the API where the test's listens; its stdout. Not
 * spawnSync: the API's output must keep flowing meanwhile.
 */
function paste(script: string, url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', `set -euo pipefail\n${script.replaceAll(README_URL, url)}`], {
      cwd: tmp,
      env: env(),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group, killed as a whole if the test gives up
    });
    shells.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => {
      shells.delete(child);
      if (status === 0) resolve(stdout);
      else
        reject(new Error(`this README block failed:\n${script}\nexit ${status}\nstdout: ${stdout}\nstderr: ${stderr}`));
    });
  });
}

beforeAll(async () => {
  if (!fs.existsSync(path.join(ROOT, 'dist', 'cli.js'))) {
    throw new Error('dist/cli.js is missing: run "npm run build" first (npm test does it as pretest)');
  }
  if (dialect !== 'sqlite')
    ({ db, config } = await freshDatabase(`cj_test_readme_w${process.env.JEST_WORKER_ID ?? '0'}`));
  // A fresh clone after `npm ci && npm run build`: the package, the demo tasks, the build, the dependencies.
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cj-readme-'));
  for (const file of ['package.json', 'tasks.json']) fs.copyFileSync(path.join(ROOT, file), path.join(tmp, file));
  for (const dir of ['dist', 'node_modules', 'demo']) fs.symlinkSync(path.join(ROOT, dir), path.join(tmp, dir));
});

afterAll(async () => {
  for (const shell of shells) if (shell.pid) process.kill(-shell.pid, 'SIGKILL');
  if (server) {
    server.child.kill('SIGKILL');
    await server.closed;
  }
  await db?.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('the quick start works when pasted in order, and so does the bearer-token example after it', async () => {
  const quick = sectionBlocks('Quick start');
  const shell = quick.filter((b) => b.lang === 'sh');
  expect(shell).toHaveLength(3);
  const [install, api, withoutApi] = shell;

  // 1. `npm ci && npm start`, `npm test`: what npm start runs is started here (the test run is this one).
  expect(commands(install)).toEqual(['npm ci && npm start', 'npm test']);
  const scripts = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).scripts as Record<
    string,
    string
  >;
  expect(scripts.start).toBe('node dist/cli.js start');
  let url = await startServer();
  // The lines the README shows from the first start.
  const sample = quick.find((b) => b.lang === '')!.body;
  for (const fragment of [
    'first start: created user "admin" (change it with: npx container-jobs user passwd admin)',
    'admin password (shown once): ',
    'API listening on http://127.0.0.1:',
  ]) {
    expect(sample).toContain(fragment);
    expect(server!.log()).toContain(fragment);
  }

  // 2. A user, a login, a job, its live output; HTTP errors fail the block.
  const out = await paste(`curl() { command curl --fail-with-body --max-time 100 "$@"; }\n${api.body}`, url);
  expect(out).toContain('{"id":1,"status":"pending"}');
  expect(out).toMatch(/event: end\ndata: \{"status":"success"\}/);

  // 3. Without the API: Ctrl-C, then enqueue and a runner that runs once.
  await stopServer();
  const once = await paste(withoutApi.body, url);
  expect(once).toMatch(/^2$/m);
  expect(once).toContain('once: ran 1 job(s): 1 succeeded, 0 failed, 0 cancelled');
  expect(once).toMatch(new RegExp(`^2\tsuccess\tcount\t${os.userInfo().username}\t`, 'm'));

  // 4. The bearer-token example, in the terminal of the quick start (B set, the jar holding alice's
  // session) after a second `npm start`, which prints no password this time.
  url = await startServer();
  expect(server!.log()).not.toContain('admin password');
  const bearer = sectionBlocks('HTTP API').find((b) => b.body.includes('Authorization: Bearer $T'));
  expect(bearer?.body).toContain('token create alice');
  // Its curls print bodies without newlines: the token's job is the last one.
  const printed = await paste(`B=${README_URL}\n${bearer!.body}`, url);
  expect(printed.trim()).toMatch(/\{"id":3,"status":"pending"\}$/);
  await stopServer();
}, 600_000); // a dozen processes, npx among them, on a busy 2-core machine
