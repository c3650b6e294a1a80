// The database's clock in SQL: due times, leases and ages are judged by the database, never by a
// host's clock (runners on several hosts share one queue).
import type { Dialect } from './database';

/** "Now" with milliseconds. */
export function sqlNow(dialect: Dialect): string {
  return dialect === 'mysql' ? 'NOW(3)' : "strftime('%Y-%m-%d %H:%M:%f', 'now')";
}

/** "Now" minus `ms` milliseconds. */
export function sqlAgo(dialect: Dialect, ms: number): string {
  const n = Math.max(0, Math.floor(ms));
  return dialect === 'mysql'
    ? `(NOW(3) - INTERVAL ${n * 1000} MICROSECOND)`
    : `strftime('%Y-%m-%d %H:%M:%f', 'now', '-${(n / 1000).toFixed(3)} seconds')`;
}

/** Seconds from the time in `column` (any SQL expression) to now. */
export function sqlSecondsSince(dialect: Dialect, column: string): string {
  return dialect === 'mysql'
    ? `TIMESTAMPDIFF(MICROSECOND, ${column}, NOW(3)) / 1000000`
    : `(julianday('now') - julianday(${column})) * 86400`;
}
