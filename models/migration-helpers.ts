// Dialect details the migrations need; kept tiny and stable because written migrations depend on it.
import { Sequelize, type QueryInterface } from 'sequelize';
import { driverFor, type Dialect } from './drivers';

/** Column default "now, with milliseconds", in the database's own clock. */
export function nowDefault(queryInterface: QueryInterface): ReturnType<typeof Sequelize.literal> {
  return queryInterface.sequelize.getDialect() === 'sqlite'
    ? Sequelize.literal("(strftime('%Y-%m-%d %H:%M:%f', 'now'))")
    : Sequelize.literal('CURRENT_TIMESTAMP(3)');
}

/** Table options: utf8mb4 on MySQL so any output line fits; nothing to say on SQLite. */
export function tableOptions(queryInterface: QueryInterface): Record<string, string> {
  return driverFor(queryInterface.sequelize.getDialect() as Dialect).tableOptions;
}
