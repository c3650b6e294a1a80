// Dialect details the migrations need; kept tiny and stable because written migrations depend on it.
import { Sequelize, type QueryInterface } from 'sequelize';
import { driverFor, type Dialect } from './drivers';

/** Column default "now, with milliseconds", in the database's own clock. */
export function nowDefault(queryInterface: QueryInterface): ReturnType<typeof Sequelize.literal> {
  const dialect = queryInterface.sequelize.getDialect();
  if (dialect === 'sqlite') return Sequelize.literal("(strftime('%Y-%m-%d %H:%M:%f', 'now'))");
  // Cut, not rounded (CURRENT_TIMESTAMP(3) rounds): never ahead of the queue's clock (models/drivers/postgres.ts).
  if (dialect === 'postgres') return Sequelize.literal("date_trunc('milliseconds', CURRENT_TIMESTAMP)");
  return Sequelize.literal('CURRENT_TIMESTAMP(3)');
}

/** Table options: utf8mb4 on MySQL so any output line fits; nothing to say on SQLite and PostgreSQL. */
export function tableOptions(queryInterface: QueryInterface): Record<string, string> {
  return driverFor(queryInterface.sequelize.getDialect() as Dialect).tableOptions;
}
