// GET /jobs/:id/log.txt's body: the job's whole output as plain text, one line per row, read and
// written a byte-bounded page at a time so a job with millions of lines never sits in memory.
import type { Response } from 'express';
import type { Logger } from '../log';
import type { Database } from '../models/database';
import { writeWhenReady } from './backpressure';
import { readOutputPage, type OutputRowJson } from './job-reads';

/** Rows and `output` bytes read at once; the next read waits until the socket took these. */
const LOG_PAGE_ROWS = 1000;
const LOG_PAGE_BYTES = 512 * 1024;

/** A row as a line of the file; with `timestamps`, its time (UTC, RFC 3339) and stream go first. */
function logLine(row: OutputRowJson, timestamps: boolean): string {
  if (!timestamps) return row.output + '\n';
  return `${new Date(row.createdAt).toISOString()} ${row.stream.padEnd(6)} ${row.output}\n`;
}

/**
 * Streams job `jobId`'s output (the caller checked the job is visible) as an attachment named
 * job-<id>.log. An error after the first page cannot be a JSON error any more: the connection is
 * cut, so the download shows as failed rather than as a short but complete-looking file.
 */
export async function sendOutputText(
  db: Database,
  jobId: number,
  options: { timestamps: boolean },
  res: Response,
  log: Logger,
): Promise<void> {
  let page = await readOutputPage(db, jobId, { limit: LOG_PAGE_ROWS, maxBytes: LOG_PAGE_BYTES });
  res
    .status(200)
    .type('text/plain; charset=utf-8')
    .set('Content-Disposition', `attachment; filename="job-${jobId}.log"`);
  try {
    for (;;) {
      const text = page.rows.map((row) => logLine(row, options.timestamps)).join('');
      if (text && !(await writeWhenReady(res, text))) return; // the client left
      const last = page.rows.at(-1);
      if (!page.more || last === undefined) break;
      page = await readOutputPage(db, jobId, { afterId: last.id, limit: LOG_PAGE_ROWS, maxBytes: LOG_PAGE_BYTES });
    }
    res.end();
  } catch (err) {
    log.warn(`log of job ${jobId}: download cut by an error: ${(err as Error)?.message ?? String(err)}`);
    res.destroy();
  }
}
