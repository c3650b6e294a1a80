import type { QueryInterface } from 'sequelize';
import { DataTypes } from 'sequelize';
import { nowDefault, tableOptions } from '../models/migration-helpers';

// Retries, re-runs and schedules (README, "Retries", "Schedules").
// - Jobs.attempt (from 1) and maxAttempts: one row across a job's attempts; every write of a
//   claimed job is fenced by its runner and its attempt. lastError: the last failed attempt's reason.
// - Jobs.rerunOf: the job a "Run again" copied.
// - JobSchedules: one row a schedule name, made by the first runner that saw it (firstSeenAt: fire
//   times before it were never missed) and moved on by each fire time handled (lastFireAt) and each
//   one that made a job (lastRunAt, lastJobId).
// - JobScheduleFires: one row a (schedule, fire time), its primary key the database's guarantee that
//   a fire time makes at most one job however many runners try; jobId NULL when it made none (skipped).
export async function up(queryInterface: QueryInterface): Promise<void> {
  const { STRING, INTEGER, DATE } = DataTypes;
  await queryInterface.addColumn('Jobs', 'attempt', { type: INTEGER, allowNull: false, defaultValue: 1 });
  await queryInterface.addColumn('Jobs', 'maxAttempts', { type: INTEGER, allowNull: false, defaultValue: 1 });
  await queryInterface.addColumn('Jobs', 'lastError', { type: STRING(32), allowNull: true });
  await queryInterface.addColumn('Jobs', 'rerunOf', { type: INTEGER, allowNull: true });
  await queryInterface.createTable(
    'JobSchedules',
    {
      name: { type: STRING(100), primaryKey: true, allowNull: false },
      firstSeenAt: { type: DATE(3), allowNull: false, defaultValue: nowDefault(queryInterface) },
      lastFireAt: { type: DATE(3), allowNull: true },
      lastRunAt: { type: DATE(3), allowNull: true },
      lastJobId: { type: INTEGER, allowNull: true },
      updatedAt: { type: DATE(3), allowNull: false, defaultValue: nowDefault(queryInterface) },
    },
    tableOptions(queryInterface),
  );
  await queryInterface.createTable(
    'JobScheduleFires',
    {
      scheduleName: { type: STRING(100), primaryKey: true, allowNull: false },
      fireAt: { type: DATE(3), primaryKey: true, allowNull: false },
      jobId: { type: INTEGER, allowNull: true },
      skipped: { type: STRING(32), allowNull: true },
      createdAt: { type: DATE(3), allowNull: false, defaultValue: nowDefault(queryInterface) },
    },
    tableOptions(queryInterface),
  );
}

export async function down(queryInterface: QueryInterface): Promise<void> {
  await queryInterface.dropTable('JobScheduleFires');
  await queryInterface.dropTable('JobSchedules');
  await queryInterface.removeColumn('Jobs', 'rerunOf');
  await queryInterface.removeColumn('Jobs', 'lastError');
  await queryInterface.removeColumn('Jobs', 'maxAttempts');
  await queryInterface.removeColumn('Jobs', 'attempt');
}
