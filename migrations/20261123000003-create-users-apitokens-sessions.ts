import type { QueryInterface } from 'sequelize';
import { DataTypes } from 'sequelize';
import { nowDefault, tableOptions } from '../models/migration-helpers';

/** The standalone login's tables: left out of `migrate --queue-only` (a host has its own). */
export const scope = 'login';

export async function up(queryInterface: QueryInterface): Promise<void> {
  const { INTEGER, STRING, BOOLEAN, DATE, TEXT } = DataTypes;
  const now = nowDefault(queryInterface);
  const timestamps = {
    createdAt: { type: DATE(3), allowNull: false, defaultValue: now },
    updatedAt: { type: DATE(3), allowNull: false, defaultValue: now },
  };
  const options = tableOptions(queryInterface);
  await queryInterface.createTable(
    'Users',
    {
      id: { type: INTEGER, primaryKey: true, autoIncrement: true, allowNull: false },
      username: { type: STRING(100), allowNull: false, unique: true },
      passwordHash: { type: STRING(255), allowNull: false },
      isAdmin: { type: BOOLEAN, allowNull: false, defaultValue: false },
      ...timestamps,
    },
    options,
  );
  await queryInterface.createTable(
    'ApiTokens',
    {
      id: { type: INTEGER, primaryKey: true, autoIncrement: true, allowNull: false },
      userId: {
        type: INTEGER,
        allowNull: false,
        references: { model: 'Users', key: 'id' },
        onDelete: 'CASCADE',
        onUpdate: 'CASCADE',
      },
      name: { type: STRING(100), allowNull: false },
      tokenHash: { type: STRING(128), allowNull: false, unique: true },
      lastUsedAt: { type: DATE(3), allowNull: true },
      expiresAt: { type: DATE(3), allowNull: true },
      ...timestamps,
    },
    options,
  );
  await queryInterface.addIndex('ApiTokens', ['userId'], { name: 'apitokens_userid' });
  // The session store's table (connect-session-sequelize's default model and name).
  await queryInterface.createTable(
    'Sessions',
    {
      sid: { type: STRING(36), primaryKey: true, allowNull: false },
      expires: { type: DATE, allowNull: true },
      data: { type: TEXT, allowNull: true },
      ...timestamps,
    },
    options,
  );
  await queryInterface.addIndex('Sessions', ['expires'], { name: 'sessions_expires' });
}

export async function down(queryInterface: QueryInterface): Promise<void> {
  await queryInterface.dropTable('Sessions');
  await queryInterface.dropTable('ApiTokens');
  await queryInterface.dropTable('Users');
}
