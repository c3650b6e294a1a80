// Dialect details the migrations need; kept tiny and stable because written migrations depend on it.
import { Sequelize, type QueryInterface } from 'sequelize';
import { driverFor, type Dialect } from './drivers';

/** Column default "now, with milliseconds", in the database's own clock. */
export function nowDefault(queryInterface: QueryInterface): ReturnType<typeof Sequelize.literal> {
  const dialect = queryInterface.sequelize.getDialect();
  if (dialect === 'sqlite') return Sequelize.literal("(strftime('%Y-%m-%d %H:%M:%f', 'now'))");
  // The statement's time (CURRENT_TIMESTAMP is the transaction's), cut, not rounded (CURRENT_TIMESTAMP(3)
  // rounds): the queue's own clock (models/drivers/postgres.ts), never ahead of it.
  if (dialect === 'postgres') return Sequelize.literal("date_trunc('milliseconds', statement_timestamp())");
  return Sequelize.literal('CURRENT_TIMESTAMP(3)');
}

/** Table options: utf8mb4 on MySQL so any output line fits; nothing to say on SQLite and PostgreSQL. */
export function tableOptions(queryInterface: QueryInterface): Record<string, string> {
  return driverFor(queryInterface.sequelize.getDialect() as Dialect).tableOptions;
}
