// `container-jobs migrate --adopt --map FILE` (README, "Adopting container-jobs in the container-creator"):
// the task file and the mapping file decide what each old command is; models/adopt.ts converts the tables.
import { InputError, RefusedError } from './cli-common';
import type { Config } from './config';
import { adopt } from './models/adopt';
import { createDatabase } from './models/database';
import { MigrationRefusedError } from './models/migrate';
import { TaskCatalog } from './tasks/catalog';
import { CommandMapError, loadCommandMap, mapCommand } from './tasks/command-map';

/** A refusal of `migrate` as the CLI's (exit 1, its message alone). */
export async function refusedAsCli<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof MigrationRefusedError) throw new RefusedError(`migrate: ${err.message}; nothing was changed`);
    throw err;
  }
}

export async function cmdAdopt(config: Config, mapFile: string): Promise<number> {
  const catalog = new TaskCatalog(config.tasksFile, undefined, { cronSeconds: config.testCronSeconds });
  let map;
  try {
    map = loadCommandMap(mapFile, catalog);
  } catch (err) {
    if (err instanceof CommandMapError) throw new InputError(err.message);
    throw err;
  }
  const db = createDatabase(config.database);
  try {
    const report = await refusedAsCli(() =>
      adopt(
        db,
        (command) => mapCommand(map, catalog, command),
        (line) => console.log(line),
      ),
    );
    const { counts } = report;
    console.log(
      `${report.outcome === 'converted' ? 'adopted' : 'already adopted'}: ${counts.jobs} job(s), ` +
        `${counts.outputRows} output row(s); applied ${report.applied.length} more migration(s) (queue-only, history in ContainerJobsMeta)`,
    );
  } finally {
    await db.close();
  }
  return 0;
}
