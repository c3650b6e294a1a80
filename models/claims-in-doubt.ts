// Claims whose COMMIT got no answer. When the connection or the database node goes away while a
// claim commits, the claim may have committed: its jobs would then be running under this runner,
// which never started them, until their lease ran out and the reaper failed them (runner_lost).
// A claim in doubt keeps the jobs it took; before the next claim, once no other claim is in flight,
// they are settled: given back to pending if they are still this runner's (a cancel asked for
// meanwhile ends them cancelled instead), left alone otherwise. A job a later claim returned is
// this runner's for certain and leaves the doubt.

/** A job a claim in doubt took, with what proves it was this claim's. */
export interface DoubtfulClaim {
  id: number;
  runnerId: string;
  attempt: number;
  /** Its last output line when claimed (a cancelled one's system row goes after it). */
  lastSeq: number;
}

/** One claim's record: the jobs it is about to commit (set just before its COMMIT). */
export interface ClaimTicket {
  runnerId: string;
  committing: { id: number; attempt: number; lastSeq: number }[];
}

export class ClaimsInDoubt {
  private readonly doubts = new Map<number, DoubtfulClaim>();
  /** Written by claim(): claims running now (a settlement waits for none to be). */
  private inFlight = 0;
  /**
   * Written by claim(): the jobs claims returned since no claim was last in flight. A claim in doubt
   * whose rows were in fact rolled back may hear so after another claim took them: those stay out.
   */
  private readonly taken = new Set<number>();
  private settling: Promise<void> | null = null;
  private idleWaiters: (() => void)[] = [];

  /**
   * `settle` gives back (or ends) the jobs of claims in doubt that are still the runner's; `inDoubt`
   * says whether a claim's failure may have come after its COMMIT took effect (a lock conflict did not).
   */
  constructor(
    private readonly settle: (claims: DoubtfulClaim[]) => Promise<void>,
    private readonly inDoubt: (err: unknown) => boolean,
  ) {}

  /** Jobs waiting to be settled. */
  get size(): number {
    return this.doubts.size;
  }

  /**
   * Runs one claim (`work` fills in its ticket before its COMMIT) once earlier doubts are settled.
   * A settlement that fails (the database still away) fails this claim.
   */
  async claim<T>(
    runnerId: string,
    work: (ticket: ClaimTicket) => Promise<T>,
    claimed: (result: T) => number[],
  ): Promise<T> {
    await this.enter();
    const ticket: ClaimTicket = { runnerId, committing: [] };
    try {
      const result = await work(ticket);
      for (const id of claimed(result)) {
        this.doubts.delete(id);
        this.taken.add(id);
      }
      return result;
    } catch (err) {
      if (this.inDoubt(err)) {
        for (const job of ticket.committing) if (!this.taken.has(job.id)) this.doubts.set(job.id, { ...job, runnerId });
      }
      throw err;
    } finally {
      if (--this.inFlight === 0) {
        this.taken.clear();
        for (const wake of this.idleWaiters.splice(0)) wake();
      }
    }
  }

  /** Waits for a settlement in progress, settles what is in doubt once no claim is in flight, then counts this claim in. */
  private async enter(): Promise<void> {
    for (;;) {
      if (this.settling) {
        await this.settling;
        continue;
      }
      if (this.doubts.size === 0) break;
      if (this.inFlight > 0) {
        await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
        continue;
      }
      const claims = [...this.doubts.values()];
      this.settling = this.settle(claims).finally(() => (this.settling = null));
      await this.settling;
      for (const c of claims) if (this.doubts.get(c.id) === c) this.doubts.delete(c.id);
    }
    this.inFlight++;
  }
}
