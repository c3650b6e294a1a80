// Open GET /jobs/:id/stream responses, counted per user in this process (JOB_STREAMS_PER_USER).
//
// Per process, not fleet-wide: a shared count would be rows in the database that a crashed or
// SIGKILLed API process never removes, so users would be locked out until some lease expired,
// and every open and close would be a write. N API processes behind a balancer allow N times the cap.

export const DEFAULT_STREAMS_PER_USER = 8;

/** One open stream, for the limit and for tests and operators to see what it holds. */
export interface OpenStream {
  readonly username: string;
  readonly jobId: number;
  /** Written by the stream's loop: output rows read from the database, and their `output` bytes. */
  rowsRead: number;
  bytesRead: number;
  /** Written by the stream's loop: SSE bytes handed to the response. */
  bytesWritten: number;
  /** Written by the stream's loop: true while it waits for the socket to drain before reading more. */
  waitingForDrain: boolean;
  /** Written by the stream's loop: the response's own buffer (writableLength) when it last had to wait. */
  buffered: number;
}

export class StreamSlots {
  /** Changed only by tryOpen and release (synchronous, so two requests never both take the last slot). */
  private readonly byUser = new Map<string, Set<OpenStream>>();

  constructor(readonly perUser: number = DEFAULT_STREAMS_PER_USER) {}

  /** A slot for `username`, or null when they already hold `perUser` open streams. */
  tryOpen(username: string, jobId: number): OpenStream | null {
    const held = this.byUser.get(username) ?? new Set<OpenStream>();
    if (held.size >= this.perUser) return null;
    const stream: OpenStream = {
      username,
      jobId,
      rowsRead: 0,
      bytesRead: 0,
      bytesWritten: 0,
      waitingForDrain: false,
      buffered: 0,
    };
    held.add(stream);
    this.byUser.set(username, held);
    return stream;
  }

  /** Frees the stream's slot; calling it again does nothing. */
  release(stream: OpenStream): void {
    const held = this.byUser.get(stream.username);
    if (!held?.delete(stream)) return;
    if (held.size === 0) this.byUser.delete(stream.username);
  }

  /** Open streams of one user, or of everyone. */
  open(username?: string): OpenStream[] {
    if (username !== undefined) return [...(this.byUser.get(username) ?? [])];
    return [...this.byUser.values()].flatMap((held) => [...held]);
  }
}
