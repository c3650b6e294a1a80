// A runner's process slots: JOB_RUNNER_CONCURRENCY jobs hold one each from their start to their
// process's exit (not while their outcome is written). Jobs claimed ahead wait here in claim order, so
// that a slot that frees is taken at once, without a round trip to the database.

/** Why a place in line ended: a slot is the job's, it waited too long, the runner drains, or it left. */
export type Turn = 'go' | 'late' | 'closed' | 'withdrawn';

/** One job's place: `turn` says how its wait ended; leave() gives the slot back (or leaves the line). */
export interface Place {
  readonly turn: Promise<Turn>;
  leave(): void;
}

/** How much a shorter hold weighs in the typical one (an exponential moving average on the way down). */
const WEIGHT = 0.2;

export class SlotGate {
  /** Written by enter() and leave(): slots held now. */
  private held = 0;
  /** Written by close(): no slot is given any more. */
  private closed = false;
  /** Waiting places in arrival order, each with the function that ends its wait. */
  private readonly line = new Map<object, (turn: Turn) => void>();
  /** How long a job typically holds its slot (ms): the longest lately; Infinity until one has. */
  private typical = Number.POSITIVE_INFINITY;

  constructor(readonly slots: number) {}

  /** Slots held now. */
  get busy(): number {
    return this.held;
  }

  /** Places waiting for a slot. */
  get waiting(): number {
    return this.line.size;
  }

  /** The typical time a job holds a slot, ms (Infinity until a job has held one). */
  get typicalHoldMs(): number {
    return this.typical;
  }

  /** A place in line: its turn comes at once when a slot is free, else when one frees; 'late' after maxWaitMs. */
  enter(maxWaitMs: number): Place {
    const key = {};
    let state: 'waiting' | 'holding' | 'gone' = 'waiting';
    let since = 0;
    let end!: (turn: Turn) => void;
    const turn = new Promise<Turn>((resolve) => (end = resolve));
    let timer: NodeJS.Timeout | null = null;
    const finish = (how: Turn) => {
      if (state !== 'waiting') return;
      if (timer) clearTimeout(timer);
      this.line.delete(key);
      if (how === 'go') {
        state = 'holding';
        since = Date.now();
        this.held++;
      } else {
        state = 'gone';
        // A job sent back for waiting too long says the slots are held long: no more claims ahead for now.
        if (how === 'late') this.typical = Math.max(this.typical, maxWaitMs);
      }
      end(how);
    };
    const place: Place = {
      turn,
      leave: () => {
        if (state === 'waiting') return finish('withdrawn');
        if (state !== 'holding') return;
        state = 'gone';
        this.held--;
        // A longer hold counts at once, shorter ones bring it down slowly: one long job stops the claims
        // ahead, and it takes a run of short ones to start them again.
        const took = Date.now() - since;
        this.typical =
          !Number.isFinite(this.typical) || took >= this.typical ? took : this.typical + WEIGHT * (took - this.typical);
        this.next();
      },
    };
    if (this.closed) finish('closed');
    else if (this.held < this.slots && this.line.size === 0) finish('go');
    else {
      this.line.set(key, finish);
      timer = setTimeout(() => finish('late'), maxWaitMs);
      timer.unref?.();
    }
    return place;
  }

  /** The runner drains: every waiting place ends 'closed', and so does every later one. */
  close(): void {
    this.closed = true;
    for (const finish of [...this.line.values()]) finish('closed');
  }

  private next(): void {
    if (this.closed || this.held >= this.slots) return;
    const first = this.line.values().next();
    if (!first.done) first.value('go');
  }
}
