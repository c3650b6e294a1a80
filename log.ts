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
  /**
   * Prefix lines with `<N>` (default: for each standard stream, when JOURNAL_STREAM says it is the
   * journal; with `write`, when either is).
   */
  journald?: boolean;
  /** Where lines go (default: error and warn to stderr, the rest to stdout). */
  write?: (level: LogLevel, line: string) => void;
  /** Prefix of every line, e.g. "job-runner". */
  name?: string;
}

/** JOURNAL_STREAM is "dev:inode" of the journal's socket; this descriptor counts only if it is that socket. */
function isJournal(fd: number, env: NodeJS.ProcessEnv): boolean {
  const journal = env.JOURNAL_STREAM;
  if (!journal) return false;
  try {
    // bigint: an inode number may be past 2^53.
    const st = fs.fstatSync(fd, { bigint: true });
    return `${st.dev}:${st.ino}` === journal.trim();
  } catch {
    return false; // a closed descriptor is not the journal
  }
}

/** Whether stdout or stderr is the journal (a JOURNAL_STREAM inherited from elsewhere does not count). */
export function stdioIsJournal(env: NodeJS.ProcessEnv = process.env): boolean {
  return isJournal(1, env) || isJournal(2, env);
}

const toStderr = (level: LogLevel) => PRIORITY[level] <= PRIORITY.warn;

/** Journald splits on newlines: every physical line gets the priority (a stack trace, say). */
function withPriority(level: LogLevel, text: string): string {
  return text
    .split('\n')
    .map((line) => `<${PRIORITY[level]}>${line}`)
    .join('\n');
}

type Sink = (level: LogLevel, text: string) => void;

function stdioSink(journald: boolean | undefined): Sink {
  const journal = { out: journald ?? isJournal(1, process.env), err: journald ?? isJournal(2, process.env) };
  return (level, text) => {
    const [stream, prefixed] = toStderr(level) ? [process.stderr, journal.err] : [process.stdout, journal.out];
    stream.write(`${prefixed ? withPriority(level, text) : text}\n`);
  };
}

function customSink(write: (level: LogLevel, line: string) => void, journald: boolean): Sink {
  return (level, text) => write(level, journald ? withPriority(level, text) : text);
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const threshold = PRIORITY[options.level ?? 'info'];
  const sink = options.write
    ? customSink(options.write, options.journald ?? stdioIsJournal())
    : stdioSink(options.journald);
  const make = (prefix: string): Logger => {
    const emit = (level: LogLevel) => (line: string) => {
      if (PRIORITY[level] > threshold) return;
      // A trailing newline (a child's output, say) would make an empty line.
      sink(level, prefix + line.replace(/\n+$/, ''));
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
export const silentLogger: Logger = createLogger({ journald: false, write: () => {} });
