import type { QueryInterface } from 'sequelize';
import { DataTypes } from 'sequelize';
import { tableOptions } from '../models/migration-helpers';

// Per-user quotas (README, "Fair shares between users").
// - JobOwners: one row an owner (Jobs.createdBy), locked by a claim before it counts that owner's
//   running jobs and by an enqueue before it counts their pending ones, so two runners (or two
//   requests) never both take the last place under JOB_USER_MAX_RUNNING (JOB_USER_MAX_PENDING).
// - jobs_owner_status: what those counts read.
export async function up(queryInterface: QueryInterface): Promise<void> {
  await queryInterface.createTable(
    'JobOwners',
    { owner: { type: DataTypes.STRING(255), primaryKey: true, allowNull: false } },
    tableOptions(queryInterface),
  );
  await queryInterface.addIndex('Jobs', ['createdBy', 'status'], { name: 'jobs_owner_status' });
}

export async function down(queryInterface: QueryInterface): Promise<void> {
  await queryInterface.removeIndex('Jobs', 'jobs_owner_status');
  await queryInterface.dropTable('JobOwners');
}
