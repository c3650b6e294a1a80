// The whole suite runs on the embedded SQLite database, and again on MySQL/MariaDB when MYSQL_HOST is set
// and on PostgreSQL when POSTGRES_HOST is set (each project reads its own database's variables).
const base = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { diagnostics: false }] },
};

const projects = [{ ...base, displayName: 'sqlite', setupFiles: ['<rootDir>/test/helpers/dialect-sqlite.js'] }];
if (process.env.MYSQL_HOST) {
  projects.push({ ...base, displayName: 'mysql', setupFiles: ['<rootDir>/test/helpers/dialect-mysql.js'] });
}
if (process.env.POSTGRES_HOST) {
  projects.push({ ...base, displayName: 'postgres', setupFiles: ['<rootDir>/test/helpers/dialect-postgres.js'] });
}
if (projects.length === 1) console.warn('MYSQL_HOST and POSTGRES_HOST are not set: running the SQLite suite only');

module.exports = { projects, maxWorkers: 2, testTimeout: 120000 };
