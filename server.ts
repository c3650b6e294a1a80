#!/usr/bin/env node
// Entry: config -> database -> createApp() -> listen -> signals (the first closes gracefully, a second exits).
import { ConfigError, EX_CONFIG, describeDatabase, loadConfig } from './config';
import { DatabaseRefusedError } from './models/open';
import { ServiceNotifier, openDatabaseForService } from './notify';
import { Queue } from './models/queue';
import { countUsers } from './models/users';
import { createApp } from './routers/app';
import { closeServer, listen, serverUrl } from './routers/listen';
import { resolveSessionSecret } from './routers/sessions';
import { TaskCatalog, TaskFileError } from './tasks/catalog';

const log = (line: string) => console.log(`server: ${line}`);

async function main(): Promise<number> {
  const config = loadConfig();
  log(describeDatabase(config.database));
  const sessionSecret = resolveSessionSecret(config);
  const catalog = new TaskCatalog(config.tasksFile, (err) =>
    log(`task file not reloaded, keeping the last good one: ${err.message}`),
  );
  const notifier = new ServiceNotifier(config.service, { log });
  const db = await openDatabaseForService(config.database, notifier, log);
  if (!db) return 0;
  if ((await countUsers(db)) === 0) {
    log('no users yet: create one with `container-jobs user add NAME --admin` (or use `container-jobs start`)');
  }
  const shutdown = new AbortController();
  const app = createApp({ db, queue: new Queue(db), catalog, config, sessionSecret, log, shutdown: shutdown.signal });
  const server = await listen(app, config.http);
  log(`listening on ${serverUrl(server)} with ${catalog.current().size} task(s) from ${config.tasksFile}`);
  notifier.status(`listening on ${serverUrl(server)}`);
  notifier.ready();
  await new Promise<void>((resolve) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      if (++signals > 1) {
        log(`${signal} again: exiting now`);
        process.exit(0);
      }
      log(`${signal}: closing (a second signal exits at once)`);
      notifier.stopping('closing');
      shutdown.abort();
      void closeServer(server).then(resolve);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  await db.close();
  await notifier.close();
  log('stopped');
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ConfigError || err instanceof TaskFileError || err instanceof DatabaseRefusedError) {
      console.error(`server: ${err.message}`);
      process.exit(EX_CONFIG);
    }
    console.error(`server: ${(err as Error)?.message ?? String(err)}`);
    process.exit(1);
  },
);
