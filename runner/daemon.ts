// What the entries that run a runner share: building it from the configuration, and the signals.
import type { Config } from '../config';
import type { Queue } from '../models/queue';
import type { TaskCatalog } from '../tasks/catalog';
import { hostTools } from './job-process';
import { Runner, type Logger } from './runner';

export function createRunner(config: Config, queue: Queue, catalog: TaskCatalog, log: Logger, once = false): Runner {
  return new Runner({
    queue,
    catalog,
    config: config.runner,
    runnerEnv: config.runnerEnv,
    ...hostTools(config.runnerEnv),
    log,
    once,
  });
}

/** SIGTERM/SIGINT: the first one drains, any further one stops at once. */
export function onStopSignals(handlers: {
  drain: (signal: NodeJS.Signals) => void;
  stopNow: (signal: NodeJS.Signals) => void;
}): void {
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1) handlers.drain(signal);
    else handlers.stopNow(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
