#!/usr/bin/env node
// Entry: config -> database -> Runner.run() -> signals (first drains, second stops at once).
import { ConfigError, EX_CONFIG, describeDatabase, loadConfig } from './config';
import { DatabaseRefusedError } from './models/open';
import { ServiceNotifier, openDatabaseForService } from './notify';
import { Queue } from './models/queue';
import { createRunner, onStopSignals } from './runner/daemon';
import { TaskCatalog, TaskFileError } from './tasks/catalog';

const log = (line: string) => console.log(`job-runner: ${line}`);

async function main(argv: string[]): Promise<number> {
  const once = argv.includes('--once');
  const unknown = argv.filter((a) => a !== '--once');
  if (unknown.length > 0) {
    console.error(`job-runner: unknown argument ${unknown[0]} (usage: job-runner [--once])`);
    return 64;
  }
  const config = loadConfig();
  log(describeDatabase(config.database));
  const catalog = new TaskCatalog(config.tasksFile, (err) =>
    log(`task file not reloaded, keeping the last good one: ${err.message}`),
  );
  let status = () => '';
  const notifier = new ServiceNotifier(config.service, { log, status: () => status() });
  const db = await openDatabaseForService(config.database, notifier, log);
  if (!db) return 0;
  const runner = createRunner(config, new Queue(db), catalog, log, once);
  status = () => runner.statusLine();
  // Both the second signal and the end of main() close the database: once (SQLite throws on a second close).
  let closing: Promise<void> | undefined;
  const closeDb = () => (closing ??= db.close());
  onStopSignals({
    drain: (signal) => {
      log(`${signal}: no new claims; draining (a second signal stops at once)`);
      void runner.stop();
      notifier.stopping(runner.statusLine());
    },
    stopNow: (signal) => {
      log(`${signal} again: stopping every job now`);
      void runner.stopNow().then(() => closeDb().finally(() => process.exit(0)));
    },
  });
  log(
    `runner ${config.runner.id} started: ${config.runner.concurrency} slot(s), ${catalog.current().size} task(s) from ${config.tasksFile}${once ? ', draining due jobs once' : ''}`,
  );
  notifier.ready();
  await runner.run();
  await runner.stop();
  await closeDb();
  await notifier.close();
  log(`stopped (peak RSS ${Math.round(process.resourceUsage().maxRSS / 1024)} MB)`);
  return 0;
}

// A stray rejection must never take the runner (and its children's bookkeeping) down.
process.on('unhandledRejection', (reason) =>
  log(`unhandled rejection (ignored): ${String((reason as Error)?.stack ?? reason)}`),
);

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ConfigError || err instanceof TaskFileError || err instanceof DatabaseRefusedError) {
      console.error(`job-runner: ${err.message}`);
      process.exit(EX_CONFIG);
    }
    console.error(`job-runner: ${(err as Error)?.message ?? String(err)}`);
    process.exit(1);
  },
);
