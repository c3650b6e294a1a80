// Group commit for outcomes: jobs that end while one finish is being written share the next one,
// and their successors are claimed in the same transaction (one commit per turn of a slot).
import type { ClaimedJob, Fence, Outcome, OutputRow, Queue } from '../models/queue';

interface Pending {
  fence: Fence;
  outcome: Outcome;
  rows: OutputRow[];
  resolve: (finished: boolean) => void;
  reject: (err: unknown) => void;
  /** Written in a batch of its own (after its batch was refused). */
  alone?: boolean;
}

const MAX_BATCH = 64;

/** Marks an item to be written in a batch of its own. */
function alone(item: Pending): Pending {
  return { ...item, alone: true };
}
/**
 * Batches in flight. Statement by statement, two: one fills while the other waits for its commit.
 * Where a finish takes two round trips (Queue.hasLane), one: bigger batches, less work per job.
 */
const writersFor = (queue: Queue) => (queue.hasLane ? 1 : 2);

export class FinishBatcher {
  /** Written by finish() (callers queue up) and drain() (batches taken, refused ones put back). */
  private waiting: Pending[] = [];
  /** Written by drain(): how many batches are being written now (at most WRITERS). */
  private writers = 0;

  /**
   * `refill(n)` says how many successors to claim in the same transaction when n jobs end
   * (0 while draining); `launch` starts what was claimed; `claimed(asked, got)` says how that went.
   */
  constructor(
    private readonly queue: Queue,
    private readonly runnerId: string,
    private readonly refill: (ending: number) => number,
    private readonly launch: (job: ClaimedJob) => void,
    private readonly claimed: (asked: number, got: number) => void = () => {},
  ) {}

  /** Same contract as Queue.finishJob; a failed batch rejects each caller, who retries. */
  finish(fence: Fence, outcome: Outcome, rows: OutputRow[]): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ fence, outcome, rows, resolve, reject });
      void this.drain();
    });
  }

  private async drain(): Promise<void> {
    if (this.writers >= writersFor(this.queue)) return;
    this.writers++;
    try {
      while (this.waiting.length > 0) {
        const batch = this.waiting[0].alone ? this.waiting.splice(0, 1) : this.waiting.splice(0, MAX_BATCH);
        try {
          const limit = this.refill(batch.length);
          const { finished, claimed } = await this.queue.finishJobs(
            batch,
            limit > 0 ? { runnerId: this.runnerId, limit } : undefined,
          );
          // Successors start before the finished jobs give up their slots: the loop sees no gap to fill.
          for (const job of claimed) this.launch(job);
          if (limit > 0) this.claimed(limit, claimed.length);
          batch.forEach((item, i) => item.resolve(finished[i]));
        } catch (err) {
          // One job's refused rows must not fail the others' outcomes: each alone, then.
          if (batch.length > 1 && this.queue.isPermanentError(err)) this.waiting.unshift(...batch.map(alone));
          else for (const item of batch) item.reject(err);
        }
      }
    } finally {
      this.writers--;
    }
  }
}
