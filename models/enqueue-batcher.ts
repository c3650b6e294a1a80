// Enqueues made outside a caller's transaction, coalesced: while one enqueue transaction is in
// flight, the calls that arrive wait and then go together in the next one (one lock per owner, one
// count of their pending jobs, one INSERT, one COMMIT for all of them). A lone call goes at once, in
// a transaction of its own, so a quiet API answers as fast as before; under load (32 clients, one
// owner) the owner's lock is taken once per batch instead of once per job.
import { IdempotencyConflictError, QuotaExceededError, type Enqueued, type NewJob } from './enqueue';

interface Waiting {
  job: NewJob;
  resolve: (enqueued: Enqueued) => void;
  reject: (err: unknown) => void;
}

/** The most jobs one coalesced transaction inserts. */
export const MAX_ENQUEUE_BATCH = 100;

export class EnqueueBatcher {
  private waiting: Waiting[] = [];
  private flushing = false;

  /** `write` inserts its jobs in one transaction, all or none (Queue.enqueueMany without a transaction). */
  constructor(
    private readonly write: (jobs: NewJob[]) => Promise<Enqueued[]>,
    private readonly maxBatch = MAX_ENQUEUE_BATCH,
  ) {}

  enqueue(job: NewJob): Promise<Enqueued> {
    return new Promise<Enqueued>((resolve, reject) => {
      this.waiting.push({ job, resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.waiting.length > 0) await this.run(this.waiting.splice(0, this.maxBatch));
    } finally {
      this.flushing = false;
    }
  }

  private async run(batch: Waiting[]): Promise<void> {
    let enqueued: Enqueued[];
    try {
      enqueued = await this.write(batch.map((w) => w.job));
    } catch (err) {
      // One call's refusal (its owner at the pending cap, its key used for another job) must not
      // refuse the others: each goes again alone, in arrival order, and gets its own answer. Any
      // other failure (the database) is every call's.
      if (batch.length > 1 && (err instanceof QuotaExceededError || err instanceof IdempotencyConflictError)) {
        for (const one of batch) await this.run([one]);
      } else {
        for (const w of batch) w.reject(err);
      }
      return;
    }
    batch.forEach((w, i) => w.resolve(enqueued[i]));
  }
}
