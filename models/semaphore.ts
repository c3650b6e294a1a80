// Bounds how many of one kind of work run at once; the rest wait in line, and a long line refuses.

/** The line is full: the caller should come back later (the API answers 429). */
export class SemaphoreFullError extends Error {
  override name = 'SemaphoreFullError';
}

export class Semaphore {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    readonly limit: number,
    /** How many may wait for a turn; one more is refused at once. */
    readonly maxWaiting: number,
  ) {}

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.running >= this.limit) {
      if (this.waiting.length >= this.maxWaiting) throw new SemaphoreFullError('too many waiting');
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running++;
    }
    try {
      return await work();
    } finally {
      // The turn passes straight to the next in line (running stays counted), or is given back.
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}
