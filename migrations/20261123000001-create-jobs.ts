import type { QueryInterface } from 'sequelize';
import { DataTypes } from 'sequelize';
import { nowDefault, tableOptions } from '../models/migration-helpers';

const STATUSES = ['pending', 'running', 'success', 'failure', 'cancelled'];

export async function up(queryInterface: QueryInterface): Promise<void> {
  const { INTEGER, STRING, JSON: JSONTYPE, ENUM, DATE } = DataTypes;
  const now = nowDefault(queryInterface);
  // Every column a plain `INSERT INTO Jobs (task, params, createdBy)` leaves out has a default or is nullable.
  await queryInterface.createTable(
    'Jobs',
    {
      id: { type: INTEGER, primaryKey: true, autoIncrement: true, allowNull: false },
      task: { type: STRING(100), allowNull: false },
      params: { type: JSONTYPE, allowNull: false },
      command: { type: STRING(2000), allowNull: true },
      status: { type: ENUM(...STATUSES), allowNull: false, defaultValue: 'pending' },
      createdBy: { type: STRING(255), allowNull: true },
      priority: { type: INTEGER, allowNull: false, defaultValue: 0 },
      runAt: { type: DATE(3), allowNull: false, defaultValue: now },
      runnerId: { type: STRING(255), allowNull: true },
      heartbeatAt: { type: DATE(3), allowNull: true },
      startedAt: { type: DATE(3), allowNull: true },
      finishedAt: { type: DATE(3), allowNull: true },
      cancelRequestedAt: { type: DATE(3), allowNull: true },
      cancelledBy: { type: STRING(255), allowNull: true },
      exitCode: { type: INTEGER, allowNull: true },
      signal: { type: STRING(32), allowNull: true },
      error: { type: STRING(255), allowNull: true },
      createdAt: { type: DATE(3), allowNull: false, defaultValue: now },
      updatedAt: { type: DATE(3), allowNull: false, defaultValue: now },
    },
    tableOptions(queryInterface),
  );
  await queryInterface.addIndex('Jobs', ['status', 'runAt', 'priority', 'id'], {
    name: 'jobs_status_runat_priority_id',
  });
  // The claim's ORDER BY priority DESC, id ASC is read straight off this index: no filesort, so
  // FOR UPDATE SKIP LOCKED locks only the rows it returns.
  await queryInterface.addIndex('Jobs', {
    name: 'jobs_claim_order',
    fields: ['status', { name: 'priority', order: 'DESC' }, 'id'],
  });
  await queryInterface.addIndex('Jobs', ['createdBy', 'id'], { name: 'jobs_createdby_id' });
  await queryInterface.addIndex('Jobs', ['status', 'heartbeatAt'], { name: 'jobs_status_heartbeatat' });
}

export async function down(queryInterface: QueryInterface): Promise<void> {
  await queryInterface.dropTable('Jobs');
}
