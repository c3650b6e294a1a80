// A job's output on its way to JobStatuses: numbered, capped, batched, retried, in order.
import { Queue, storableText, type Fence, type Outcome, type OutputRow } from '../models/queue';
import type { OutputStream } from '../models/models';

export interface OutputWriterOptions {
  queue: Queue;
  fence: Fence;
  /** Output line numbers continue after this one. */
  lastSeq: number;
  maxBytes: number;
  flushMs?: number;
  /** Flush at once when a batch reaches this many rows or bytes. */
  batchRows?: number;
  batchBytes?: number;
  /** Above this many unsent bytes the producer is asked to pause (bounded memory). */
  highWaterBytes?: number;
  /** Writes the outcome (default: queue.finishJob; the runner batches finishes across jobs). */
  finishJob?: (fence: Fence, outcome: Outcome, rows: OutputRow[]) => Promise<boolean>;
  /** Told when the producer should pause (true) or may resume (false). */
  onPressure?: (paused: boolean) => void;
  /** Told once when the fence is lost: the job is no longer ours. */
  onLost?: () => void;
  /** Told once when the database refuses the output for good (see Queue.isPermanentError): stop the job. */
  onStoreFailed?: (err: unknown) => void;
  /** Database trouble and recovery, for the runner's once-per-change logging. */
  onDbError?: (err: unknown) => void;
  onDbOk?: () => void;
}

/** What one pending row counts for in batch and buffer sizes: its UTF-8 bytes plus this. */
const ROW_OVERHEAD = 32;
const rowBytes = (output: string) => Buffer.byteLength(output) + ROW_OVERHEAD;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

type Callbacks = 'onPressure' | 'onLost' | 'onStoreFailed' | 'onDbError' | 'onDbOk' | 'finishJob';

/**
 * Every field is written by the job's own callbacks (add, the flush loop, finish) on one event
 * loop; `abandon` comes from the runner's shutdown, `markLost` from a fenced write.
 */
export class OutputWriter {
  private pending: OutputRow[] = [];
  private pendingBytes = 0;
  private seq: number;
  private storedBytes = 0;
  private droppedBytes = 0;
  private droppedLines = 0;
  private flushing: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private paused = false;
  private abandoned = false;
  lost = false;
  /** Set when the database refused the output for good: later lines are counted, not sent. */
  storeError: string | null = null;
  private readonly options: Required<Omit<OutputWriterOptions, Callbacks>> & OutputWriterOptions;

  constructor(options: OutputWriterOptions) {
    this.options = {
      flushMs: 250,
      batchRows: 2000,
      batchBytes: 1024 * 1024,
      highWaterBytes: 8 * 1024 * 1024,
      ...options,
    };
    this.seq = options.lastSeq;
  }

  /** Adds one line; beyond the output cap it is only counted. */
  add(stream: OutputStream, output: string): void {
    if (this.lost) return;
    const bytes = Buffer.byteLength(output);
    // Once a line is dropped, so is everything after it: what is stored stays the beginning of the output.
    if (this.droppedLines > 0 || this.storeError !== null || this.storedBytes + bytes > this.options.maxBytes) {
      this.droppedBytes += bytes;
      this.droppedLines += 1;
      return;
    }
    this.storedBytes += bytes;
    this.push({ seq: ++this.seq, stream, output }, bytes);
  }

  /** Output the job stored before this run (earlier attempts): it counts against the cap. */
  countEarlier(bytes: number): void {
    this.storedBytes += bytes;
  }

  /** A system row (never capped: it says what happened to the job). */
  addSystem(output: string): void {
    if (!this.lost) this.push({ seq: ++this.seq, stream: 'system', output }, Buffer.byteLength(output));
  }

  private push(row: OutputRow, utf8Bytes: number): void {
    this.pending.push(row);
    this.pendingBytes += utf8Bytes + ROW_OVERHEAD;
    if (this.pending.length >= this.options.batchRows || this.pendingBytes >= this.options.batchBytes) {
      this.kick();
    } else if (!this.timer) {
      this.timer = setTimeout(() => this.kick(), this.options.flushMs);
    }
    if (!this.paused && this.pendingBytes > this.options.highWaterBytes) {
      this.paused = true;
      this.options.onPressure?.(true);
    }
  }

  /** Starts a flush unless one is under way (that one picks up what is pending when it ends). */
  private kick(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (!this.flushing) {
      this.flushing = this.flushLoop().finally(() => {
        this.flushing = null;
      });
    }
  }

  /** The oldest pending rows, up to one batch; `pendingBytes` drops by exactly what `push` added for them. */
  private takeBatch(): OutputRow[] {
    let rows = this.pending.length;
    let bytes = 0;
    for (let i = 0; i < this.pending.length; i++) {
      bytes += rowBytes(this.pending[i].output);
      if (i + 1 >= this.options.batchRows || bytes >= this.options.batchBytes) {
        rows = i + 1;
        break;
      }
    }
    this.pendingBytes -= bytes;
    return this.pending.splice(0, rows);
  }

  private async flushLoop(): Promise<void> {
    while (this.pending.length > 0 && !this.lost && !this.abandoned) {
      const batch = this.takeBatch();
      const refused = await this.withRetry(() => this.options.queue.appendOutput(this.options.fence, batch));
      if (refused) this.storeFailed(refused, batch);
      if (this.paused && this.pendingBytes <= this.options.highWaterBytes / 2) {
        this.paused = false;
        this.options.onPressure?.(false);
      }
    }
  }

  /**
   * Runs a fenced write until it commits. A lost fence ends the job's writing for good; a database
   * error is retried with backoff (the batch stays in hand; (jobId, seq) makes a retry harmless).
   * An error no retry can fix is returned instead: the caller gives that write up.
   */
  private async withRetry(write: () => Promise<boolean>): Promise<unknown> {
    for (let attempt = 0; !this.abandoned; attempt++) {
      try {
        const ok = await write();
        this.options.onDbOk?.();
        if (!ok) this.markLost();
        return null;
      } catch (err) {
        if (this.options.queue.isPermanentError(err)) return err;
        this.options.onDbError?.(err);
        const backoff = Math.min(5000, 100 * 2 ** Math.min(attempt, 6));
        await sleep(backoff / 2 + Math.random() * (backoff / 2));
      }
    }
    return null;
  }

  /** The database refused a batch for good: drop it and what follows, and have the job stopped. Once. */
  private storeFailed(err: unknown, rows: OutputRow[]): void {
    this.droppedLines += rows.filter((r) => r.stream !== 'system').length;
    this.droppedBytes += rows.reduce((n, r) => n + Buffer.byteLength(r.output), 0);
    if (this.storeError !== null) return;
    this.storeError = Queue.describeError(err);
    this.options.onStoreFailed?.(err);
  }

  private markLost(): void {
    if (this.lost) return;
    this.lost = true;
    this.pending = [];
    this.pendingBytes = 0;
    this.options.onLost?.();
  }

  /** Bytes and lines dropped by the output cap so far. */
  get dropped(): { bytes: number; lines: number } {
    return { bytes: this.droppedBytes, lines: this.droppedLines };
  }

  /**
   * Writes the rest of the output, the closing system rows and the outcome in one fenced
   * transaction, after every earlier batch. Resolves false if the job was no longer ours.
   */
  async finish(outcome: Outcome, closingLines: string[]): Promise<boolean> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    while (this.flushing) await this.flushing;
    if (this.lost) return false;
    const dropped = `${this.droppedBytes} bytes (${this.droppedLines} lines) were not stored`;
    if (this.storeError !== null) this.addSystem(`the database refused this job's output: ${dropped}`);
    else if (this.droppedBytes > 0)
      this.addSystem(`output limit of ${this.options.maxBytes} bytes reached: ${dropped}`);
    for (const line of closingLines) this.addSystem(line);
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    // Leave the last batch (status + rows) small enough for one statement.
    while (this.pending.length > this.options.batchRows) {
      const batch = this.takeBatch();
      const refused = await this.withRetry(() => this.options.queue.appendOutput(this.options.fence, batch));
      if (refused) this.storeFailed(refused, batch);
      if (this.lost) return false;
    }
    const rows = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    const finishJob = this.options.finishJob ?? ((f, o, r) => this.options.queue.finishJob(f, o, r));
    let finished = false;
    const write = (how: Outcome, last: OutputRow[]) => async () =>
      (finished = await finishJob(this.options.fence, how, last));
    const refused = await this.withRetry(write(outcome, rows));
    if (refused) {
      // The outcome must land: as a failure that says so, without the rows the database refused (and,
      // should it refuse the explanation too, with a fixed one).
      const failed: Outcome = { ...outcome, status: 'failure', error: 'output_failed' };
      const seq = rows[0]?.seq ?? this.seq + 1;
      const explanations = [
        `the database refused the job's last ${rows.length} output row(s) (${Queue.describeError(refused)}); ` +
          `job marked failed (output_failed). ${closingLines.join(' ')}`,
        "the database refused the job's last output rows; job marked failed (output_failed)",
      ];
      let last: unknown = refused;
      for (const why of explanations) {
        last = await this.withRetry(write(failed, [{ seq, stream: 'system', output: storableText(why) }]));
        if (!last) break;
      }
      if (last) throw last;
    }
    return finished;
  }

  /** Gives up on writing (the runner is exiting and the database is away): the reaper will settle it. */
  abandon(): void {
    this.abandoned = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
