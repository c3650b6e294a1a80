// Raw statements inside one transaction (or none): the replacements and result shapes the engine uses.
import { QueryTypes, type Sequelize, type Transaction } from 'sequelize';

export interface Sql {
  select<T extends object>(sql: string, replacements?: Record<string, unknown> | unknown[]): Promise<T[]>;
  /** Rows changed. */
  update(sql: string, replacements?: Record<string, unknown> | unknown[]): Promise<number>;
  /**
   * What the driver reports for an INSERT (MySQL: the first row's id; SQLite: the last row's;
   * PostgreSQL: the rows of a RETURNING clause): Driver.insertedIds reads it.
   */
  insert(sql: string, replacements?: Record<string, unknown> | unknown[]): Promise<unknown>;
}

export function sqlIn(sequelize: Sequelize, transaction?: Transaction): Sql {
  return {
    select: <T extends object>(sql: string, replacements?: Record<string, unknown> | unknown[]) =>
      sequelize.query<T>(sql, { type: QueryTypes.SELECT, replacements, transaction }),
    update: async (sql, replacements) =>
      (await sequelize.query(sql, { type: QueryTypes.BULKUPDATE, replacements, transaction })) as unknown as number,
    insert: async (sql, replacements) => {
      const [returned] = (await sequelize.query(sql, {
        type: QueryTypes.INSERT,
        replacements,
        transaction,
      })) as unknown as [unknown, unknown];
      return returned;
    },
  };
}

/** A UTC time as both databases store DATETIME(3): 'YYYY-MM-DD HH:MM:SS.mmm'. */
export function sqlTime(date: Date): string {
  return date.toISOString().replace('T', ' ').replace('Z', '');
}

/**
 * A DATETIME(3) column as read back: MySQL and PostgreSQL hand over a Date, SQLite its UTC text —
 * without a zone as the engine writes it, or with one ('… +00:00') as Sequelize's models write it.
 */
export function readTime(value: unknown): Date | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return value;
  const text = String(value).trim().replace(' ', 'T');
  const zoned = /(?:[zZ]|[+-]\d\d:?\d\d)$/.test(text);
  const date = new Date(zoned ? text.replace(' ', '') : `${text}Z`);
  if (Number.isNaN(date.getTime())) throw new Error(`not a time: ${JSON.stringify(value)}`);
  return date;
}

/**
 * SQL written as the seed's (unquoted camelCase names, MySQL's backticks), in `dialect`: on
 * PostgreSQL, which folds unquoted names to lower case, every camelCase or capitalised name outside
 * string literals (and not a :replacement) is quoted; keywords must be written in capitals. For
 * tests and benchmarks; the engine's own SQL lives in the drivers.
 */
export function seedSqlFor(dialect: string, text: string): string {
  if (dialect !== 'postgres') return text;
  return text
    .split(/('(?:[^']|'')*')/)
    .map((part, i) =>
      i % 2 === 1
        ? part
        : part
            .replace(/`(\w+)`/g, '"$1"')
            .replace(
              /(^|[^:\w"$])([a-z]+[A-Z]\w*|[A-Z][a-z]\w*)\b/g,
              (_, before: string, name: string) => `${before}"${name}"`,
            ),
    )
    .join('');
}
