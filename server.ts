#!/usr/bin/env node
// Entry: config -> database -> createApp() -> listen -> signals (the first closes gracefully, a second exits).
import { describeDatabase, loadConfig } from './config';
import { Queue } from './models/queue';
import { countUsers } from './models/users';
import { ServiceNotifier, openDatabaseForService } from './notify';
import { createApp } from './routers/app';
import { closeServer, listen, serverUrl } from './routers/listen';
import { resolveSessionSecret } from './routers/sessions';
import { runService, type Service } from './service';
import { TaskCatalog } from './tasks/catalog';

async function main(service: Service): Promise<number> {
  const config = loadConfig();
  const log = service.useLogger({ level: config.logLevel });
  log.notice(describeDatabase(config.database));
  const sessionSecret = resolveSessionSecret(config);
  const catalog = new TaskCatalog(
    config.tasksFile,
    (err) => log.warn(`task file not reloaded, keeping the last good one: ${err.message}`),
    { cronSeconds: config.testCronSeconds, recheckMs: 1000 },
  );
  const notifier = new ServiceNotifier(config.service, { log });
  service.atExit(() => notifier.close());
  const db = await openDatabaseForService(config.database, notifier, log, service.stopping);
  if (!db) return 0;
  service.atExit(() => db.close());
  if ((await countUsers(db)) === 0) {
    log.notice(
      'no users yet: create one with `npx container-jobs user add NAME --admin` (or use `npx container-jobs start`)',
    );
  }
  const shutdown = new AbortController();
  const app = createApp({
    db,
    queue: new Queue(db, config.quotas),
    catalog,
    config,
    sessionSecret,
    log,
    shutdown: shutdown.signal,
  });
  const server = await listen(app, config.http);
  log.notice(`listening on ${serverUrl(server)} with ${catalog.current().size} task(s) from ${config.tasksFile}`);
  notifier.status(`listening on ${serverUrl(server)}`);
  notifier.ready();
  await new Promise<void>((closed) =>
    service.onStop({
      drain: (signal) => {
        log.notice(`${signal}: closing (a second signal exits at once)`);
        notifier.stopping('closing');
        shutdown.abort();
        void closeServer(server).then(closed);
      },
      stopNow: (signal) => {
        log.notice(`${signal} again: exiting now`);
        server.closeAllConnections();
      },
    }),
  );
  log.notice('stopped');
  return 0;
}

// libuv reads this once, at the first thread-pool task (fs, crypto, dns, node-sqlite3), which main() makes:
// more threads than password hashing may take (models/users.ts), so queries never wait behind a login flood.
process.env.UV_THREADPOOL_SIZE ??= '8';
runService({ name: 'server', daemon: true }, main);
