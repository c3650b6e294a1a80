// Running the built entries as an operator would: `node dist/cli.js …` with a chosen environment.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
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
