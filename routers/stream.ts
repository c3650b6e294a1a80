// GET /jobs/:id/stream: Server-Sent Events from polling the database (the runner and the API share nothing else).
import type { Request, Response } from 'express';
import type { Logger } from '../log';
import type { Database } from '../models/database';
import { FINISHED_STATUSES, type JobStatusName } from '../models/models';
import { drained } from './backpressure';
import { readJobState, readOutputPage, type OutputRowJson, type Viewer } from './job-reads';
import type { AccessCheck } from './stream-access';
import type { OpenStream } from './stream-slots';

export interface StreamOptions {
  /** How often to look for new rows and status changes. */
  pollMs: number;
  keepAliveMs: number;
  /** How often the viewer's session or token is re-checked (`check`); the stream ends when it fails. */
  recheckMs: number;
  check: AccessCheck;
  /** Where the stream counts what it read and wrote (its slot in StreamSlots). */
  stats: OpenStream;
  /** Aborted at shutdown: open streams end, and clients resume with Last-Event-ID. */
  shutdown?: AbortSignal;
  log: Logger;
  /**
   * The events sent. 'output' (ours): `output` rows, `status` at each change, then `end`. 'log' (the
   * container-creator's job page, which closes at the first `status`): `log` rows `{id, output,
   * timestamp}`, then one `status` once the job has finished, and the response ends.
   */
  events?: StreamEvents;
}

export type StreamEvents = 'output' | 'log';

/** One output row as an event of `events`' kind (SSE id = the row id either way). */
function outputEvent(row: OutputRowJson, events: StreamEvents): string {
  if (events === 'output') return `id: ${row.id}\nevent: output\ndata: ${JSON.stringify(row)}\n\n`;
  const data = { id: row.id, jobId: row.jobId, stream: row.stream, output: row.output, timestamp: row.createdAt };
  return `id: ${row.id}\nevent: log\ndata: ${JSON.stringify(data)}\n\n`;
}

/** Rows per read, and the most `output` bytes one read may hold: a slow reader costs about this much. */
const PAGE_ROWS = 500;
export const STREAM_PAGE_BYTES = 512 * 1024;

/**
 * Sends `output` events (SSE id = row id), `status` events when the status changes, and `end`
 * once the job is finished. Each round reads the status first and the rows after it, so when a
 * finished status is seen, the rows read next include every row written before it.
 * Rows are read a byte-bounded page at a time, and the next page only once the socket has taken
 * the last one; a stream whose viewer logged out, lost its token or was deleted ends.
 */
export async function streamJob(
  db: Database,
  viewer: Viewer,
  jobId: number,
  afterId: number | undefined,
  req: Request,
  res: Response,
  options: StreamOptions,
): Promise<void> {
  const { stats, log } = options;
  const events = options.events ?? 'output';
  /** Fired by the client leaving, the server shutting down or the viewer losing access. */
  const stop = new AbortController();
  let wake: (() => void) | null = null;
  let why = 'closed';
  const close = (reason: string) => {
    if (stop.signal.aborted) return;
    why = reason;
    stop.abort();
    wake?.();
  };
  const onClose = () => close('closed');
  const onShutdown = () => close('shutdown');
  res.on('close', onClose);
  options.shutdown?.addEventListener('abort', onShutdown);
  if (options.shutdown?.aborted) close('shutdown');
  res.status(200);
  res.set({
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache, no-transform',
    'X-Accel-Buffering': 'no',
  });
  res.flushHeaders();
  // A comment into a socket that is not draining would only grow its buffer.
  const keepAlive = setInterval(() => {
    if (!res.writableNeedDrain && !stop.signal.aborted) res.write(': keep-alive\n\n');
  }, options.keepAliveMs);

  /** The viewer as of its last check; the check timer writes it, the loop reads it. */
  let current = viewer;
  let checking = false;
  const recheck = setInterval(() => {
    if (checking || stop.signal.aborted) return;
    checking = true;
    options.check().then(
      (now) => {
        checking = false;
        if (now) current = now;
        else close('access');
      },
      (err: unknown) => {
        checking = false;
        // The database is away: the loop's own reads fail and end the stream if it stays away.
        log.debug(`stream of job ${jobId}: access check failed: ${(err as Error)?.message ?? String(err)}`);
      },
    );
  }, options.recheckMs);

  /** Writes one event; waits for the socket to drain so a slow client never buffers more than a page. */
  const send = async (text: string): Promise<boolean> => {
    if (stop.signal.aborted) return false;
    stats.bytesWritten += text.length;
    if (res.write(text)) return true;
    stats.buffered = res.writableLength;
    stats.waitingForDrain = true;
    try {
      return await drained(res, stop.signal);
    } finally {
      stats.waitingForDrain = false;
    }
  };
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  let lastId = afterId ?? 0;
  let lastStatus: JobStatusName | null = null;
  try {
    await send('retry: 2000\n\n');
    while (!stop.signal.aborted) {
      const state = await readJobState(db, current, jobId);
      if (!state) break; // deleted (pruned) while watched, or no longer visible to this viewer
      for (let more = true; more && !stop.signal.aborted;) {
        const page = await readOutputPage(db, jobId, {
          afterId: lastId,
          limit: PAGE_ROWS,
          maxBytes: STREAM_PAGE_BYTES,
        });
        stats.rowsRead += page.rows.length;
        for (const row of page.rows) stats.bytesRead += row.output.length;
        for (const row of page.rows) {
          if (!(await send(outputEvent(row, events)))) break;
          lastId = row.id;
        }
        more = page.more;
      }
      if (stop.signal.aborted) break;
      const finished = FINISHED_STATUSES.includes(state.status);
      if (state.status !== lastStatus && (events === 'output' || finished)) {
        lastStatus = state.status;
        await send(`event: status\ndata: ${JSON.stringify(state)}\n\n`);
      }
      if (finished) {
        if (events === 'output') await send(`event: end\ndata: ${JSON.stringify({ status: state.status })}\n\n`);
        break;
      }
      await sleep(options.pollMs);
    }
  } catch (err) {
    // Headers are sent: the best answer is to end the stream; the client resumes with Last-Event-ID.
    log.warn(`stream of job ${jobId} (${req.ip}) ended by an error: ${(err as Error)?.message ?? String(err)}`);
  } finally {
    clearInterval(keepAlive);
    clearInterval(recheck);
    options.shutdown?.removeEventListener('abort', onShutdown);
    res.off('close', onClose);
    if (why === 'access') log.info(`stream of job ${jobId} for ${viewer.username} ended: access ended`);
    // A client that is not reading would keep the connection (and its buffer) open forever.
    if (res.writableNeedDrain) res.destroy();
    else if (!res.writableEnded) res.end();
  }
}
