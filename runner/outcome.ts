// How a finished process becomes a job outcome and the last system row a person reads.
import type { Outcome } from '../models/queue';
import type { TaskTemplate } from '../tasks/catalog';
import type { JobExit } from './job-process';

/** Words a program prints when an allocation failed (RLIMIT_DATA gives no other sign). */
const OUT_OF_MEMORY = /MemoryError|out of memory|Cannot allocate memory|allocation failed|bad_alloc|ENOMEM/i;

/** Whether a stderr line says an allocation failed (the runner remembers it: a stack trace may follow). */
export function mentionsOutOfMemory(line: string): boolean {
  return OUT_OF_MEMORY.test(line);
}

export interface OutcomeInput {
  exit: JobExit;
  template: TaskTemplate;
  durationMs: number;
  stderrTail: string[];
  /** Why the job's output could not be stored, when it could not (the job was stopped for it). */
  storeError?: string | null;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

export function describeOutcome({ exit, template, durationMs, stderrTail, storeError }: OutcomeInput): {
  outcome: Outcome;
  line: string;
} {
  const took = seconds(durationMs);
  const how = exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.exitCode}`;
  const base = { exitCode: exit.exitCode, signal: exit.signal };
  if (exit.spawnError) {
    return {
      outcome: { status: 'failure', exitCode: null, signal: null, error: 'spawn_failed' },
      line: `could not start: ${exit.spawnError}`,
    };
  }
  switch (exit.stopReason) {
    case 'cancelled':
      return {
        outcome: { status: 'cancelled', ...base, error: 'cancelled' },
        line: `cancelled on request after ${took} (${how})`,
      };
    case 'timeout':
      return {
        outcome: { status: 'failure', ...base, error: 'timeout' },
        line: `timed out (limit ${template.timeoutSec} s) and was stopped after ${took} (${how})`,
      };
    case 'shutdown':
      return {
        outcome: { status: 'failure', ...base, error: 'shutdown' },
        line: `stopped after ${took} because the runner shut down (${how})`,
      };
    case 'runner_lost':
      return {
        outcome: { status: 'failure', ...base, error: 'runner_lost' },
        line: `stopped after ${took}: the runner could not renew its lease (${how})`,
      };
    case 'output_failed':
      return {
        outcome: { status: 'failure', ...base, error: 'output_failed' },
        line: `stopped after ${took}: its output could not be stored (${storeError ?? 'refused by the database'}) (${how})`,
      };
    case null:
      break;
  }
  if (exit.exitCode === 0)
    return { outcome: { status: 'success', ...base, error: null }, line: `succeeded in ${took} (exit code 0)` };
  if (exit.signal === 'SIGXCPU') {
    return {
      outcome: { status: 'failure', ...base, error: 'cpu_limit' },
      line: `failed after ${took}: over its CPU limit of ${template.limits.cpuSeconds} s (${how})`,
    };
  }
  if (template.limits.memoryMB && stderrTail.some((l) => OUT_OF_MEMORY.test(l))) {
    return {
      outcome: { status: 'failure', ...base, error: 'memory_limit' },
      line: `failed after ${took}: ran out of memory under its limit of ${template.limits.memoryMB} MB (${how})`,
    };
  }
  return {
    outcome: { status: 'failure', ...base, error: exit.signal ? 'signal' : 'exit_code' },
    line: `failed after ${took} (${how})`,
  };
}
