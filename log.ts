// The one logger: levels (LOG_LEVEL), and systemd's priority prefixes (sd-daemon(3)) when stdout
// is the journal, so `journalctl -p warning` finds trouble; plain lines on a terminal or in a file.
import fs from 'node:fs';

export const LOG_LEVELS = ['error', 'warn', 'notice', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** syslog priorities: <3> err, <4> warning, <5> notice, <6> info, <7> debug. */
const PRIORITY: Record<LogLevel, number> = { error: 3, warn: 4, notice: 5, info: 6, debug: 7 };

export interface Logger {
  error(line: string): void;
  warn(line: string): void;
  notice(line: string): void;
  info(line: string): void;
  debug(line: string): void;
  /** The same sink and level, each line prefixed with `name: `. */
  child(name: string): Logger;
}

export interface LoggerOptions {
  /** Lines below this level are dropped (default info). */
  level?: LogLevel;
  /** Prefix lines with `<N>` (default: when JOURNAL_STREAM says stdout or stderr is the journal). */
  journald?: boolean;
  /** Where lines go (default: error and warn to stderr, the rest to stdout). */
  write?: (level: LogLevel, line: string) => void;
  /** Prefix of every line, e.g. "job-runner". */
  name?: string;
}

function defaultWrite(level: LogLevel, line: string): void {
  (PRIORITY[level] <= PRIORITY.warn ? process.stderr : process.stdout).write(`${line}\n`);
}

/** JOURNAL_STREAM is "dev:inode" of the journal's socket; it counts only if one of our streams is it. */
export function stdioIsJournal(env: NodeJS.ProcessEnv = process.env): boolean {
  const journal = env.JOURNAL_STREAM;
  if (!journal) return false;
  for (const fd of [1, 2]) {
    try {
      const st = fs.fstatSync(fd);
      if (`${st.dev}:${st.ino}` === journal) return true;
    } catch {
      // a closed descriptor is not the journal
    }
  }
  return false;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const threshold = PRIORITY[options.level ?? 'info'];
  const journald = options.journald ?? stdioIsJournal();
  const write = options.write ?? defaultWrite;
  const make = (prefix: string): Logger => {
    const emit = (level: LogLevel) => (line: string) => {
      if (PRIORITY[level] > threshold) return;
      // Each physical line gets the prefix: journald splits on newlines (a stack trace, say).
      const text = prefix + line;
      write(level, journald ? text.replace(/^/gm, `<${PRIORITY[level]}>`) : text);
    };
    return {
      error: emit('error'),
      warn: emit('warn'),
      notice: emit('notice'),
      info: emit('info'),
      debug: emit('debug'),
      child: (name) => make(`${prefix}${name}: `),
    };
  };
  return make(options.name ? `${options.name}: ` : '');
}

/** A logger that drops everything (tests and library callers that pass none). */
export const silentLogger: Logger = createLogger({ write: () => {} });
