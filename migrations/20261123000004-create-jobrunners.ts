import type { QueryInterface } from 'sequelize';
import { DataTypes } from 'sequelize';
import { nowDefault, tableOptions } from '../models/migration-helpers';

// Each runner's latest report (slots, counters, latency histograms as JSON), so the API's
// GET /metrics can show the whole fleet; seenAt is the database clock of the last report.
export async function up(queryInterface: QueryInterface): Promise<void> {
  const { STRING, DATE, TEXT } = DataTypes;
  const now = nowDefault(queryInterface);
  await queryInterface.createTable(
    'JobRunners',
    {
      id: { type: STRING(255), primaryKey: true, allowNull: false },
      startedAt: { type: DATE(3), allowNull: false, defaultValue: now },
      seenAt: { type: DATE(3), allowNull: false, defaultValue: now },
      report: { type: TEXT, allowNull: false },
    },
    tableOptions(queryInterface),
  );
  await queryInterface.addIndex('JobRunners', ['seenAt'], { name: 'jobrunners_seen_at' });
}

export async function down(queryInterface: QueryInterface): Promise<void> {
  await queryInterface.dropTable('JobRunners');
}
