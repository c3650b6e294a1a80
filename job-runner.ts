#!/usr/bin/env node
// Entry: config -> database -> Runner.run() -> signals (first drains, second stops at once).
import { describeDatabase, loadConfig } from './config';
import { Queue } from './models/queue';
import { ServiceNotifier, openDatabaseForService } from './notify';
import { checkRunnerSetup, createRunner } from './runner/daemon';
import { runService, type Service } from './service';
import { TaskCatalog } from './tasks/catalog';

const EX_USAGE = 64;

async function main(service: Service, argv: string[]): Promise<number> {
  const once = argv.includes('--once');
  const unknown = argv.filter((a) => a !== '--once');
  if (unknown.length > 0) {
    service.log.error(`unknown argument ${unknown[0]} (usage: job-runner [--once])`);
    return EX_USAGE;
  }
  const config = loadConfig();
  const log = service.useLogger({ level: config.logLevel });
  log.notice(describeDatabase(config.database));
  const catalog = new TaskCatalog(
    config.tasksFile,
    (err) => log.warn(`task file not reloaded, keeping the last good one: ${err.message}`),
    { cronSeconds: config.testCronSeconds },
  );
  checkRunnerSetup(config, catalog);
  let status = () => '';
  const notifier = new ServiceNotifier(config.service, { log, status: () => status() });
  service.atExit(() => notifier.close());
  const db = await openDatabaseForService(config.database, notifier, log, service.stopping);
  if (!db) return 0;
  service.atExit(() => db.close());
  const runner = createRunner(config, new Queue(db, config.quotas), catalog, log, once);
  status = () => runner.statusLine();
  log.notice(
    `runner ${config.runner.id} started: ${config.runner.concurrency} slot(s), ${catalog.current().size} task(s) from ${config.tasksFile}${once ? ', draining due jobs once' : ''}`,
  );
  notifier.ready();
  service.onStop({
    drain: (signal) => {
      log.notice(`${signal}: no new claims; draining (a second signal stops at once)`);
      void runner.stop();
      notifier.stopping(runner.statusLine());
    },
    stopNow: (signal) => {
      log.notice(`${signal} again: stopping every job now`);
      return runner.stopNow();
    },
  });
  await runner.run();
  await runner.stop();
  log.notice(`stopped (peak RSS ${Math.round(process.resourceUsage().maxRSS / 1024)} MB)`);
  return 0;
}

runService({ name: 'job-runner', daemon: true }, (service) => main(service, process.argv.slice(2)));
