import type { QueryInterface } from 'sequelize';
import { DataTypes } from 'sequelize';
import { nowDefault, tableOptions } from '../models/migration-helpers';

export async function up(queryInterface: QueryInterface): Promise<void> {
  const { INTEGER, BIGINT, ENUM, TEXT, DATE } = DataTypes;
  const now = nowDefault(queryInterface);
  const sqlite = queryInterface.sequelize.getDialect() === 'sqlite';
  await queryInterface.createTable(
    'JobStatuses',
    {
      // SQLite only auto-increments an INTEGER PRIMARY KEY (which is 64-bit there).
      id: { type: sqlite ? INTEGER : BIGINT, primaryKey: true, autoIncrement: true, allowNull: false },
      jobId: {
        type: INTEGER,
        allowNull: false,
        references: { model: 'Jobs', key: 'id' },
        onDelete: 'CASCADE',
        onUpdate: 'CASCADE',
      },
      // The line's number within its job: a batch retried after a commit in doubt is never stored twice.
      seq: { type: INTEGER, allowNull: false },
      stream: { type: ENUM('stdout', 'stderr', 'system'), allowNull: false },
      output: { type: TEXT, allowNull: false },
      createdAt: { type: DATE(3), allowNull: false, defaultValue: now },
      updatedAt: { type: DATE(3), allowNull: false, defaultValue: now },
    },
    tableOptions(queryInterface),
  );
  await queryInterface.addIndex('JobStatuses', ['jobId', 'id'], { name: 'jobstatuses_jobid_id' });
  await queryInterface.addIndex('JobStatuses', ['jobId', 'seq'], { name: 'jobstatuses_jobid_seq', unique: true });
}

export async function down(queryInterface: QueryInterface): Promise<void> {
  await queryInterface.dropTable('JobStatuses');
}
