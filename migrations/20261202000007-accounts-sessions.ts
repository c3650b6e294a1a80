import type { QueryInterface } from 'sequelize';
import { DataTypes } from 'sequelize';
import { tableOptions } from '../models/migration-helpers';

/** The standalone login's tables: left out of `migrate --queue-only` (a host has its own). */
export const scope = 'login';

// Accounts and sessions (README, "Accounts and sessions").
// - Sessions.userId: whose session it is (written by the store from the session's data), so that
//   `user passwd`, `user delete` and `user sessions --revoke` can end a user's sessions; the user's
//   rights are read from Users on every request, never kept in the session. lastSeenAt: the last
//   request made with it (to the minute), for `user sessions NAME`.
// - LoginFailures: failed logins counted per scope (a username and address pair, an address, a
//   username) and fixed window, shared by every API process and kept over restarts; old windows are
//   pruned by time.
export async function up(queryInterface: QueryInterface): Promise<void> {
  const { STRING, INTEGER, DATE } = DataTypes;
  await queryInterface.addColumn('Sessions', 'userId', { type: INTEGER, allowNull: true });
  await queryInterface.addColumn('Sessions', 'lastSeenAt', { type: DATE(3), allowNull: true });
  await queryInterface.addIndex('Sessions', ['userId'], { name: 'sessions_userid' });
  await queryInterface.createTable(
    'LoginFailures',
    {
      scope: { type: STRING(191), primaryKey: true, allowNull: false },
      windowStart: { type: DATE(3), primaryKey: true, allowNull: false },
      count: { type: INTEGER, allowNull: false, defaultValue: 0 },
    },
    tableOptions(queryInterface),
  );
  await queryInterface.addIndex('LoginFailures', ['windowStart'], { name: 'loginfailures_windowstart' });
}

export async function down(queryInterface: QueryInterface): Promise<void> {
  await queryInterface.dropTable('LoginFailures');
  await queryInterface.removeIndex('Sessions', 'sessions_userid');
  await queryInterface.removeColumn('Sessions', 'lastSeenAt');
  await queryInterface.removeColumn('Sessions', 'userId');
}
