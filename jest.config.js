// The whole suite runs on the embedded SQLite database, and again on MySQL/MariaDB when MYSQL_HOST is set.
const base = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { diagnostics: false }] },
};

const projects = [{ ...base, displayName: 'sqlite', setupFiles: ['<rootDir>/test/helpers/dialect-sqlite.js'] }];
if (process.env.MYSQL_HOST) {
  projects.push({ ...base, displayName: 'mysql', setupFiles: ['<rootDir>/test/helpers/dialect-mysql.js'] });
} else {
  console.warn('MYSQL_HOST is not set: running the SQLite suite only');
}

module.exports = { projects, maxWorkers: 2, testTimeout: 120000 };
