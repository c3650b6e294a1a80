// The runner's timers: a periodic duty (lease renewal, reaping, reports), a sleep that can be cut
// short, and a wait with a time limit.

export class Periodic {
  /** Written by start() and stop(). */
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly everyMs: number,
    private readonly tick: () => Promise<void>,
  ) {}

  /** Starts ticking; `now` also runs one tick at once. */
  start(now = false): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.tick(), this.everyMs);
    if (now) void this.tick();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  get running(): boolean {
    return this.timer !== null;
  }
}

/** A sleep that another part can cut short (a job ended, stop was called). */
export class Nap {
  /** Written by sleep(), cleared by wake(). */
  private wakeUp: (() => void) | null = null;
  /** A wake() while nobody slept: the next sleep() returns at once (a nudge during a claim is not lost). */
  private woken = false;

  /** Sleeps until `ms` pass (forever when null) or wake() is called; true when woken. */
  sleep(ms: number | null): Promise<boolean> {
    if (this.woken) {
      this.woken = false;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const timer = ms === null ? null : setTimeout(() => done(false), ms);
      const done = (woken: boolean) => {
        if (timer) clearTimeout(timer);
        this.wakeUp = null;
        resolve(woken);
      };
      this.wakeUp = () => done(true);
    });
  }

  wake(): void {
    if (this.wakeUp) this.wakeUp();
    else this.woken = true;
  }
}

/** Waits for `work` at most `ms`; true when the time ran out first. */
export async function timedOut(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((r) => (timer = setTimeout(() => r(true), ms)));
  try {
    return await Promise.race([work.then(() => false), late]);
  } finally {
    clearTimeout(timer);
  }
}
