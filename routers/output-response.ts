// GET /jobs/:id/status's body: a JSON array of output rows, written a byte-bounded page at a time.
import type { Response } from 'express';
import type { Logger } from '../log';
import type { Database } from '../models/database';
import { readOutputPage, type OutputQuery } from './job-reads';
import { writeWhenReady } from './backpressure';

/** The most `output` bytes read from the database at once; the next read waits until the socket took these. */
export const STATUS_PAGE_BYTES = 512 * 1024;

/**
 * The rows of `q` as one JSON array, the same body `res.json(rows)` gives. A page that fits in
 * STATUS_PAGE_BYTES (the usual case) is one read and one res.json; a bigger one (1,000 rows of
 * 16 KiB lines are 16 MiB) is written in pieces, each read only after the last has drained. An
 * error after the first piece can no longer be a JSON error: the connection is cut, and the client
 * sees a truncated body, never a short but valid array.
 */
export async function sendOutputJson(
  db: Database,
  jobId: number,
  q: OutputQuery,
  res: Response,
  log: Logger,
  /** The host's `{data: …}` envelope around the array (the small path's res.json is wrapped by envelopeBodies). */
  envelope = false,
): Promise<void> {
  let page = await readOutputPage(db, jobId, { ...q, maxBytes: STATUS_PAGE_BYTES });
  let remaining = q.limit - page.rows.length;
  if (!page.more || remaining === 0) {
    res.json(page.rows);
    return;
  }
  res.status(200).type('json');
  try {
    let chunk = envelope ? '{"data":[' : '[';
    for (;;) {
      chunk += page.rows.map((row) => JSON.stringify(row)).join(',');
      if (!(await writeWhenReady(res, chunk))) return; // the client left
      const last = page.rows.at(-1);
      if (!page.more || remaining === 0 || last === undefined) break;
      page = await readOutputPage(db, jobId, { afterId: last.id, limit: remaining, maxBytes: STATUS_PAGE_BYTES });
      remaining -= page.rows.length;
      chunk = page.rows.length > 0 ? ',' : '';
    }
    res.end(envelope ? ']}' : ']');
  } catch (err) {
    log.warn(`output of job ${jobId}: response cut by an error: ${(err as Error)?.message ?? String(err)}`);
    res.destroy();
  }
}
