// Raw statements inside one transaction (or none): the replacements and result shapes the engine uses.
import { QueryTypes, type Sequelize, type Transaction } from 'sequelize';

export interface Sql {
  select<T extends object>(sql: string, replacements?: Record<string, unknown> | unknown[]): Promise<T[]>;
  /** Rows changed. */
  update(sql: string, replacements?: Record<string, unknown> | unknown[]): Promise<number>;
  /** The id the driver reports for an INSERT (MySQL: the first row's; SQLite: the last row's). */
  insert(sql: string, replacements?: Record<string, unknown> | unknown[]): Promise<number>;
}

export function sqlIn(sequelize: Sequelize, transaction?: Transaction): Sql {
  return {
    select: <T extends object>(sql: string, replacements?: Record<string, unknown> | unknown[]) =>
      sequelize.query<T>(sql, { type: QueryTypes.SELECT, replacements, transaction }),
    update: async (sql, replacements) =>
      (await sequelize.query(sql, { type: QueryTypes.BULKUPDATE, replacements, transaction })) as unknown as number,
    insert: async (sql, replacements) => {
      const [id] = (await sequelize.query(sql, { type: QueryTypes.INSERT, replacements, transaction })) as unknown as [
        number,
        number,
      ];
      return Number(id);
    },
  };
}
