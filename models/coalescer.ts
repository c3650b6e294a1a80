// Calls coalesced into batches: while one batch is in flight, the calls that arrive wait and then go
// together in the next one. A lone call goes at once, so a quiet caller waits for nothing; under load
// (32 clients) one round trip answers many calls. A call is never answered by a batch that started
// before it was made, so it sees every write that committed before it was called.

interface Waiting<T, R> {
  item: T;
  resolve: (result: R) => void;
  reject: (err: unknown) => void;
}

export interface CoalescerOptions {
  /** The most calls one batch takes (default 100). */
  maxBatch?: number;
  /**
   * A batch's failure that belongs to one of its calls (a quota refusal, say): each call of the batch
   * then goes again alone, in arrival order, and gets its own answer. Any other failure is every call's.
   */
  refusesOne?: (err: unknown) => boolean;
}

export class Coalescer<T, R> {
  private waiting: Waiting<T, R>[] = [];
  private flushing = false;
  private readonly maxBatch: number;
  private readonly refusesOne: (err: unknown) => boolean;

  /** `run` answers a batch's calls in their order (one result per item), or fails them all. */
  constructor(
    private readonly run: (items: T[]) => Promise<R[]>,
    options: CoalescerOptions = {},
  ) {
    this.maxBatch = options.maxBatch ?? 100;
    this.refusesOne = options.refusesOne ?? (() => false);
  }

  call(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.waiting.length > 0) await this.runBatch(this.waiting.splice(0, this.maxBatch));
    } finally {
      this.flushing = false;
    }
  }

  private async runBatch(batch: Waiting<T, R>[]): Promise<void> {
    let results: R[];
    try {
      results = await this.run(batch.map((w) => w.item));
    } catch (err) {
      if (batch.length > 1 && this.refusesOne(err)) {
        for (const one of batch) await this.runBatch([one]);
      } else {
        for (const w of batch) w.reject(err);
      }
      return;
    }
    batch.forEach((w, i) => w.resolve(results[i]));
  }
}

/**
 * Coalesced reads by key: one `fetch` of a batch's distinct keys, and each call gets the row of its
 * own key or undefined. Rows are matched to keys exactly here (`keyOf`), whatever the database's
 * collation compared.
 */
export function keyedReads<Row>(
  fetch: (keys: string[]) => Promise<Row[]>,
  keyOf: (row: Row) => string,
): Coalescer<string, Row | undefined> {
  return new Coalescer(async (keys) => {
    const byKey = new Map((await fetch([...new Set(keys)])).map((row) => [keyOf(row), row]));
    return keys.map((key) => byKey.get(key));
  });
}
