// One driver per database; the engine asks for it by the configured dialect, once.
import type { Dialect, Driver } from './driver';
import { mysqlDriver } from './mysql';
import { postgresDriver } from './postgres';
import { sqliteDriver } from './sqlite';

export type { Dialect, Driver, DriverCapabilities, QueueStatements } from './driver';

const DRIVERS: Record<Dialect, Driver> = { mysql: mysqlDriver, postgres: postgresDriver, sqlite: sqliteDriver };

export function driverFor(dialect: Dialect): Driver {
  return DRIVERS[dialect];
}
