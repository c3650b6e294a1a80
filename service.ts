// What the three entries share from start to exit: main() run once, its failure turned into an exit
// status (configuration: EX_CONFIG, so systemd does not restart-loop), stray rejections logged (a
// daemon survives them), SIGTERM/SIGINT handled from the first moment (the first drains, a second
// stops at once), and what main() opened released exactly once, whichever way the process ends.
import { ConfigError, EX_CONFIG } from './config';
import { createLogger, type Logger, type LoggerOptions } from './log';

export interface StopHandlers {
  /** The first signal: take no new work; main() returns once what runs has finished. */
  drain(signal: NodeJS.Signals): void;
  /** A further signal: stop what still runs, now. The process exits 0 once this settles. */
  stopNow(signal: NodeJS.Signals): Promise<void> | void;
}

export interface Failure {
  status: number;
  message: string;
}

export interface ServiceOptions {
  /** The prefix of every line, e.g. "job-runner". */
  name: string;
  /** Signals drain it and a stray rejection is survived; otherwise (a one-shot command) both end it. */
  daemon: boolean;
  /** An entry's own statuses; the rest get `describeFailure`. */
  failure?: (err: unknown) => Failure | undefined;
}

/** ConfigError (a bad variable, task file or database login) is EX_CONFIG; anything else is 1. */
export function describeFailure(err: unknown): Failure {
  const message = err instanceof Error ? err.message : String(err);
  return { status: err instanceof ConfigError ? EX_CONFIG : 1, message };
}

/**
 * starting (no handlers yet) → running → draining (first signal) → stopping-now (second) → exiting.
 * A first signal while starting drains too: `stopping` aborts, and handlers set later drain at once.
 */
type Stage = 'starting' | 'running' | 'draining' | 'stopping-now' | 'exiting';

const SIGNALS: NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];

/** Releases that hang (a database that does not answer) do not keep the process from exiting. */
const RELEASE_LIMIT_MS = 10_000;

export class Service {
  /** Written by the signal handler, onStop() and exit(). */
  private stage: Stage = 'starting';
  /** Set by onStop() (main). */
  private handlers: StopHandlers | null = null;
  /** Set by the first signal. */
  private firstSignal: NodeJS.Signals | null = null;
  /** Added to by atExit() (main); run once by exit(). */
  private readonly releases: (() => Promise<void> | void)[] = [];
  private exiting: Promise<never> | null = null;
  private readonly stop = new AbortController();
  /** Set by useLogger() (main); until then, the default level. */
  private logger: Logger;

  constructor(private readonly options: ServiceOptions) {
    this.logger = createLogger({ name: options.name });
  }

  /** The service's own lines (signals, failures), and main()'s before LOG_LEVEL is known. */
  get log(): Logger {
    return this.logger;
  }

  /** Aborted by the first SIGTERM/SIGINT, whenever it comes: a start-up step that waits should end. */
  get stopping(): AbortSignal {
    return this.stop.signal;
  }

  /** The entry's logger once LOG_LEVEL is known; the service's own lines go there from now on. */
  useLogger(options: Omit<LoggerOptions, 'name'>): Logger {
    this.logger = createLogger({ name: this.options.name, ...options });
    return this.logger;
  }

  /** The daemon is up: what the signals do from now on. After an early signal, it drains at once. */
  onStop(handlers: StopHandlers): void {
    this.handlers = handlers;
    if (this.stage === 'starting') this.stage = 'running';
    else if (this.stage === 'draining' && this.firstSignal) this.drain(this.firstSignal);
  }

  private drain(signal: NodeJS.Signals): void {
    try {
      this.handlers?.drain(signal);
    } catch (err) {
      this.log.error(`draining: ${(err as Error)?.stack ?? String(err)}`);
    }
  }

  /** Runs `release` before the process exits, whichever way it does, once; the last added runs first. */
  atExit(release: () => Promise<void> | void): void {
    this.releases.unshift(release);
  }

  /** Runs `main` and exits with its status, or with its failure's. */
  run(main: (service: Service) => Promise<number>): void {
    process.on('unhandledRejection', this.onRejection);
    if (this.options.daemon) for (const signal of SIGNALS) process.on(signal, this.onSignal);
    main(this).then(
      (status) => this.exit(this.stage === 'stopping-now' ? 0 : status),
      (err: unknown) => this.fail(err),
    );
  }

  private fail(err: unknown): Promise<never> {
    const { status, message } = this.options.failure?.(err) ?? describeFailure(err);
    // Stopping at once promises exit 0, whatever main() met as the ground went from under it.
    if (this.stage === 'stopping-now') {
      this.log.warn(`while stopping at once: ${message}`);
      return this.exit(0);
    }
    this.log.error(message);
    return this.exit(status);
  }

  /** Releases what main() opened (once), then exits with `status`; later calls wait for the first. */
  exit(status: number): Promise<never> {
    this.exiting ??= (async () => {
      this.stage = 'exiting';
      process.exitCode = status;
      const limit = setTimeout(() => process.exit(status), RELEASE_LIMIT_MS);
      limit.unref();
      for (const release of this.releases) {
        try {
          await release();
        } catch (err) {
          this.log.warn(`while exiting: ${(err as Error)?.message ?? String(err)}`);
        }
      }
      process.exit(status);
    })();
    return this.exiting;
  }

  private readonly onRejection = (reason: unknown): void => {
    const text = String((reason as Error)?.stack ?? reason);
    if (this.options.daemon) {
      // A stray rejection must never take a daemon (and its jobs' bookkeeping) down.
      this.log.error(`unhandled rejection (ignored): ${text}`);
      return;
    }
    void this.fail(new Error(`unhandled rejection: ${text}`));
  };

  private readonly onSignal = (signal: NodeJS.Signals): void => {
    switch (this.stage) {
      case 'starting':
        this.stage = 'draining';
        this.firstSignal = signal;
        this.log.notice(`${signal} while starting: stopping (a second signal exits at once)`);
        this.stop.abort(signal);
        return;
      case 'running':
        this.stage = 'draining';
        this.firstSignal = signal;
        this.stop.abort(signal);
        this.drain(signal);
        return;
      case 'draining':
        this.stage = 'stopping-now';
        if (!this.handlers) {
          this.log.notice(`${signal} again: exiting now`);
          void this.exit(0);
          return;
        }
        void Promise.resolve()
          .then(() => this.handlers?.stopNow(signal))
          .catch((err: unknown) => this.log.error(`stopping at once: ${(err as Error)?.stack ?? String(err)}`))
          .then(() => this.exit(0));
        return;
      default:
        // Stopping at once already, or releasing: a further signal means now.
        this.log.notice(`${signal} again: exiting now`);
        process.exit(this.stage === 'exiting' ? Number(process.exitCode ?? 0) : 0);
    }
  };
}

/** The whole life of an entry: `runService({ name, daemon }, main)`. */
export function runService(options: ServiceOptions, main: (service: Service) => Promise<number>): void {
  new Service(options).run(main);
}
