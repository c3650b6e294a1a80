// What the entries that run a runner share: building it from the configuration (the signals are service.ts's).
import type { Config } from '../config';
import type { Logger } from '../log';
import type { Queue } from '../models/queue';
import type { TaskCatalog } from '../tasks/catalog';
import { hostTools } from './job-process';
import { checkJobUsers } from './job-user';
import { Launcher } from './launcher';
import { ProcessLedger } from './leftovers';
import { Runner } from './runner';

/** Throws ConfigError (exit 78) when jobs could not run as the users configured for them. */
export function checkRunnerSetup(config: Config, catalog: TaskCatalog): void {
  checkJobUsers(config.runner.jobUser, catalog, hostTools(config.runnerEnv).setprivPath);
}

export function createRunner(config: Config, queue: Queue, catalog: TaskCatalog, log: Logger, once = false): Runner {
  checkRunnerSetup(config, catalog);
  const tools = hostTools(config.runnerEnv);
  return new Runner({
    queue,
    catalog,
    config: config.runner,
    runnerEnv: config.runnerEnv,
    ...tools,
    // Jobs fork in a small process of the runner's, which also ends them if the runner dies (the Runner closes it).
    launcher: Launcher.start(log),
    // Outside systemd (whose cgroup ends every process of the unit), a ledger of the jobs' process
    // groups, so that the next runner on this host ends what this one leaves if it and its launcher die.
    ledger:
      config.runnerEnv.INVOCATION_ID || config.runner.stateDir === null
        ? null
        : ProcessLedger.open(config.runner.stateDir, config.runner.id, log),
    log,
    once,
  });
}
