// Running the built entries as an operator would: `node dist/cli.js …` with a chosen environment.
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import path from 'node:path';
import { ROOT } from './database';

/** Runs a script of the checkout (dist/cli.js, node_modules/.bin/sequelize-cli) to its end. */
export function runScript(
  script: string,
  args: string[],
  env: Record<string, string | undefined>,
  input = '',
): SpawnSyncReturns<string> {
  const result = spawnSync(process.execPath, [path.join(ROOT, script), ...args], {
    cwd: ROOT,
    env: env as NodeJS.ProcessEnv,
    input,
    encoding: 'utf8',
    timeout: 60000,
  });
  if (result.error) throw result.error;
  return result;
}

/** A run's exit status and output, for assertion messages. */
export function show(result: SpawnSyncReturns<string>): string {
  return `exit ${result.status}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`;
}

/** Only what a service would get (PATH, HOME, LANG), then `extra`: nothing else of the jest process leaks in. */
export function serviceEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of ['PATH', 'HOME', 'LANG']) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return { ...env, ...extra };
}

/** `node dist/job-runner.js --once` with exactly `env`, to its end: its exit code and everything it printed. */
export function runJobRunnerOnce(env: Record<string, string>): Promise<{ code: number | null; log: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'dist', 'job-runner.js'), '--once'], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    child.stdout.on('data', (d) => (log += d));
    child.stderr.on('data', (d) => (log += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, log }));
  });
}
