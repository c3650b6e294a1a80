// GET /jobs/:id/stream: Server-Sent Events from polling the database (the runner and the API share nothing else).
import type { Request, Response } from 'express';
import type { Logger } from '../log';
import type { Database } from '../models/database';
import { FINISHED_STATUSES, type JobStatusName } from '../models/models';
import { readJobState, readOutput, type Viewer } from './job-reads';

export interface StreamOptions {
  /** How often to look for new rows and status changes. */
  pollMs: number;
  keepAliveMs: number;
  /** Aborted at shutdown: open streams end, and clients resume with Last-Event-ID. */
  shutdown?: AbortSignal;
  log: Logger;
}

const PAGE = 500;

/**
 * Sends `output` events (SSE id = row id), `status` events when the status changes, and `end`
 * once the job is finished. Each round reads the status first and the rows after it, so when a
 * finished status is seen, the rows read next include every row written before it.
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
  let closed = false;
  let wake: (() => void) | null = null;
  const close = () => {
    closed = true;
    wake?.();
  };
  res.on('close', close);
  options.shutdown?.addEventListener('abort', close);
  res.status(200);
  res.set({
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache, no-transform',
    'X-Accel-Buffering': 'no',
  });
  res.flushHeaders();
  const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), options.keepAliveMs);

  /** Writes one event; waits for the socket to drain so a slow client never buffers a whole job's output. */
  const send = async (text: string): Promise<void> => {
    if (closed || res.write(text)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        res.off('drain', done);
        res.off('close', done);
        resolve();
      };
      res.on('drain', done);
      res.on('close', done);
    });
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
    while (!closed) {
      const state = await readJobState(db, viewer, jobId);
      if (!state) break; // deleted (pruned) while watched
      for (;;) {
        const rows = await readOutput(db, jobId, { afterId: lastId, limit: PAGE });
        for (const row of rows) {
          if (closed) break;
          await send(`id: ${row.id}\nevent: output\ndata: ${JSON.stringify(row)}\n\n`);
          lastId = row.id;
        }
        if (closed || rows.length < PAGE) break;
      }
      if (closed) break;
      if (state.status !== lastStatus) {
        lastStatus = state.status;
        await send(`event: status\ndata: ${JSON.stringify(state)}\n\n`);
      }
      if (FINISHED_STATUSES.includes(state.status)) {
        await send(`event: end\ndata: ${JSON.stringify({ status: state.status })}\n\n`);
        break;
      }
      await sleep(options.pollMs);
    }
  } catch (err) {
    // Headers are sent: the best answer is to end the stream; the client resumes with Last-Event-ID.
    options.log.warn(`stream of job ${jobId} (${req.ip}) ended by an error: ${(err as Error)?.message ?? String(err)}`);
  } finally {
    clearInterval(keepAlive);
    options.shutdown?.removeEventListener('abort', close);
    res.off('close', close);
    if (!res.writableEnded) res.end();
  }
}
