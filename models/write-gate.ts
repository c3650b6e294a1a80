// SQLite admits one writer per file. node-sqlite3 runs every statement on libuv's thread pool (4
// threads); writes waiting for the file lock (busy timeout) each hold a thread, so a process with
// four of them starves its own transaction that holds the lock: it cannot run its next statement,
// and every process on the file stalls until busy timeouts expire (seen with 5 runners). Queueing
// the writes in the process costs nothing, since the file takes one at a time anyway.

/** Runs async work one at a time, in call order; urgent work goes to the front of the line. */
export class WriteGate {
  private busy = false;
  private readonly waiting: (() => void)[] = [];

  async run<T>(work: () => Promise<T>, urgent = false): Promise<T> {
    if (this.busy) {
      await new Promise<void>((resolve) => (urgent ? this.waiting.unshift(resolve) : this.waiting.push(resolve)));
    }
    this.busy = true;
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.busy = false;
    }
  }
}

const gates = new Map<string, WriteGate>();

/** The gate of one database file, shared by every handle on it in this process. */
export function writeGateFor(file: string): WriteGate {
  let gate = gates.get(file);
  if (!gate) gates.set(file, (gate = new WriteGate()));
  return gate;
}
