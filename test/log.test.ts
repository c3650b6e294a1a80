// log.ts: LOG_LEVEL filters, `name: ` prefixes, and systemd's `<N>` priorities when (and only when)
// a standard stream is the journal JOURNAL_STREAM names.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLogger, stdioIsJournal, type LogLevel, type LoggerOptions } from '../log';
import { ROOT } from './helpers/database';

/** A logger writing into an array of [level, line]. */
function capture(options: LoggerOptions = {}) {
  const written: [LogLevel, string][] = [];
  const log = createLogger({ journald: false, ...options, write: (level, line) => written.push([level, line]) });
  return { log, written };
}

/** "dev:inode" of an open descriptor, as systemd writes JOURNAL_STREAM. */
function devIno(fd: number): string {
  const st = fs.fstatSync(fd, { bigint: true });
  return `${st.dev}:${st.ino}`;
}

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cj-log-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('levels', () => {
  test('info by default: debug is dropped, the rest kept with its level', () => {
    const { log, written } = capture();
    log.debug('d');
    log.info('i');
    log.notice('n');
    log.warn('w');
    log.error('e');
    expect(written).toEqual([
      ['info', 'i'],
      ['notice', 'n'],
      ['warn', 'w'],
      ['error', 'e'],
    ]);
  });

  test.each<[LogLevel, string[]]>([
    ['error', ['e']],
    ['warn', ['w', 'e']],
    ['notice', ['n', 'w', 'e']],
    ['debug', ['d', 'i', 'n', 'w', 'e']],
  ])('level %s keeps %j', (level, kept) => {
    const { log, written } = capture({ level });
    log.debug('d');
    log.info('i');
    log.notice('n');
    log.warn('w');
    log.error('e');
    expect(written.map(([, line]) => line)).toEqual(kept);
  });
});

describe('prefixes', () => {
  test('name, then each child, on every line; a child keeps the level', () => {
    const { log, written } = capture({ name: 'job-runner', level: 'notice' });
    const db = log.child('db');
    db.child('pool').notice('gone');
    db.info('dropped');
    log.warn('slow');
    expect(written).toEqual([
      ['notice', 'job-runner: db: pool: gone'],
      ['warn', 'job-runner: slow'],
    ]);
  });

  test('under journald every physical line carries the priority, and a trailing newline adds none', () => {
    const { log, written } = capture({ name: 'server', journald: true, level: 'debug' });
    log.error('boom\n    at one\n    at two\n');
    log.notice('up');
    log.debug('detail');
    expect(written).toEqual([
      ['error', '<3>server: boom\n<3>    at one\n<3>    at two'],
      ['notice', '<5>server: up'],
      ['debug', '<7>server: detail'],
    ]);
  });

  test('without journald a line is written as it is', () => {
    const { log, written } = capture({ name: 'server' });
    log.error('boom\n    at one');
    expect(written).toEqual([['error', 'server: boom\n    at one']]);
  });
});

describe('stdioIsJournal', () => {
  test('only a dev:inode of fd 1 or 2 counts', () => {
    const other = fs.openSync(path.join(tmp, 'not-the-journal'), 'w');
    try {
      expect(stdioIsJournal({})).toBe(false);
      expect(stdioIsJournal({ JOURNAL_STREAM: devIno(1) })).toBe(true);
      expect(stdioIsJournal({ JOURNAL_STREAM: devIno(2) })).toBe(true);
      // A stream of ours that is not stdout/stderr, or one inherited from elsewhere, is not the journal.
      expect(stdioIsJournal({ JOURNAL_STREAM: devIno(other) })).toBe(false);
      const [dev, ino] = devIno(1).split(':');
      expect(stdioIsJournal({ JOURNAL_STREAM: `${dev}:${BigInt(ino) + 1n}` })).toBe(false);
      expect(stdioIsJournal({ JOURNAL_STREAM: 'garbage' })).toBe(false);
    } finally {
      fs.closeSync(other);
    }
  });

  /** Runs a few log lines in a child whose stdout is a file, with JOURNAL_STREAM as given. */
  function logWithStdoutIn(file: string, journalStream: (stdoutFd: number) => string) {
    const fd = fs.openSync(file, 'w');
    try {
      const script = `
        const { createLogger } = require('./dist/log');
        const log = createLogger({ name: 't' });
        log.notice('up');
        log.warn('careful\\nsecond line');`;
      const result = spawnSync(process.execPath, ['-e', script], {
        cwd: ROOT,
        env: { PATH: process.env.PATH, JOURNAL_STREAM: journalStream(fd) },
        stdio: ['ignore', fd, 'pipe'],
        encoding: 'utf8',
      });
      expect(result.status).toBe(0);
      return { stdout: fs.readFileSync(file, 'utf8'), stderr: result.stderr };
    } finally {
      fs.closeSync(fd);
    }
  }

  test('by default the prefixes go only to the stream that is the journal', () => {
    if (!fs.existsSync(path.join(ROOT, 'dist', 'log.js'))) throw new Error('dist/log.js is missing: npm run build');
    const journal = logWithStdoutIn(path.join(tmp, 'journal'), devIno);
    expect(journal.stdout).toBe('<5>t: up\n');
    expect(journal.stderr).toBe('t: careful\nsecond line\n');

    const elsewhere = logWithStdoutIn(path.join(tmp, 'plain'), () => '0:12345');
    expect(elsewhere.stdout).toBe('t: up\n');
    expect(elsewhere.stderr).toBe('t: careful\nsecond line\n');
  });
});
