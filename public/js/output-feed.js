// Getting a job's output into an OutputView: the end first, then live events, older pages on demand.
//
// 1. The end: GET /jobs/:id says how many lines the job has (`outputLines`, a hint), and
//    GET /jobs/:id/status?offset=<lines - 1000>&limit=1000 reads the newest page. The view is sized
//    to all the lines (placeholders for the rest) and shows that page at its bottom, so a job with a
//    million lines shows its end after one request. A shorter page than hinted moves the end back.
// 2. Live, only if the job was not finished when the page loaded it: GET /jobs/:id/stream?afterId=
//    <last row id>, which sends the newer rows, status changes and `end`. After a dropped connection
//    EventSource reconnects by itself with Last-Event-ID (the last row's id): nothing twice, no gaps.
//    A finished job instead reads on with ?afterId= until a short page (rows written after the hint).
// 3. Older lines: when the reader scrolls to lines not loaded yet, the pages covering them are read
//    by offset (output-pages.js). Offsets count rows in id order, the order the list shows.
// Why not the stream alone: it would replay the whole history as one event per row, with no pages.
// A job seen finished needs no stream: its last rows are committed with its outcome. When it runs
// again (a retry: the same job, pending anew), `resume()` streams again from the last line shown.

import { FINISHED } from './format.js';
import { PAGE } from './output-lines.js';
import { createPageLoader } from './output-pages.js';

const RETRY_MS = 3000;

/**
 * Fills `view` with job `jobId`'s output and keeps it current. `lines`: the job's outputLines;
 * `finished`: the job's status was final when read. Callbacks: onStatus({status, exitCode, error}),
 * onEnd({status}), onSystem() when a `system` row arrives live (an attempt ended, a retry began).
 * Returns `{close(), resume()}`: close stops reading and closes the stream; resume follows live again.
 */
export function followOutput(
  api,
  jobId,
  view,
  { lines, finished, onStatus = () => {}, onEnd = () => {}, onSystem = () => {} },
) {
  let closed = false;
  let source = null;
  let retry = 0;
  /** Whether to stream: from the start for an unfinished job, after resume() for one that runs again. */
  let wantLive = !finished;
  /** Set once the newest page is in: the stream starts after it, never before. */
  let started = false;
  /** From a lost stream until the next opens or the job is read to its end: resume() leaves it to that. */
  let reconnecting = false;
  /** The id of the last line: live rows come after it. */
  let lastId = 0;
  const pages = createPageLoader(api, jobId, view);

  const appendNew = (rows) => {
    // Rows arrive in id order; one already shown (a page and the stream overlapping) is skipped.
    const fresh = rows.filter((row) => row.id > lastId);
    if (fresh.length === 0) return;
    lastId = fresh[fresh.length - 1].id;
    view.append(fresh);
  };

  /** Reads the newest page. Returns whether it was full (more rows may follow it). */
  async function loadEnd() {
    view.setState('loading…');
    // Without a hint (an older API) this reads from the start, and on with afterId.
    let end = Number(lines) || 0;
    for (;;) {
      const offset = Math.max(0, end - PAGE);
      const rows = await api.outputAt(jobId, offset, PAGE);
      if (closed) return false;
      // Nothing there: fewer rows than hinted (line numbers with gaps); look before it.
      if (rows.length === 0 && offset > 0) {
        end = offset;
        continue;
      }
      view.setTotal(offset + rows.length);
      view.put(offset, rows);
      if (rows.length) lastId = rows[rows.length - 1].id;
      return rows.length === PAGE;
    }
  }

  async function readOn() {
    for (;;) {
      const rows = await api.output(jobId, lastId || undefined, PAGE);
      if (closed) return;
      appendNew(rows);
      if (rows.length < PAGE) return;
    }
  }

  function openStream() {
    if (closed) return;
    view.setState('live');
    source = api.stream(jobId, lastId || undefined);
    source.addEventListener('output', (event) => {
      const row = JSON.parse(event.data);
      appendNew([row]);
      if (row.stream === 'system') onSystem();
    });
    source.addEventListener('status', (event) => onStatus(JSON.parse(event.data)));
    source.addEventListener('end', (event) => {
      source.close();
      view.setState('finished');
      onEnd(JSON.parse(event.data));
    });
    source.addEventListener('open', () => view.setState('live'));
    source.addEventListener('error', () => {
      if (closed) return;
      if (source.readyState === EventSource.CONNECTING) {
        view.setState('reconnecting…');
        return;
      }
      // Closed for good: the answer was not a stream (401, 404…), or the server is away.
      reconnectLater();
    });
  }

  /** Asks the API about the job (a 401 brings the login form), then streams again or reads the rest. */
  function reconnectLater() {
    reconnecting = true;
    view.setState('disconnected; retrying…');
    retry = setTimeout(async () => {
      try {
        const job = await api.job(jobId);
        if (closed) return;
        if (!FINISHED.includes(job.status)) {
          reconnecting = false;
          return openStream();
        }
        await readOn();
        reconnecting = false;
        view.setState('finished');
        onEnd({ status: job.status });
      } catch (err) {
        if (closed) return;
        if (err.status === 404) {
          reconnecting = false;
          view.setState('the job is gone');
        } else reconnectLater();
      }
    }, RETRY_MS);
  }

  async function start() {
    const full = await loadEnd();
    if (closed) return;
    view.onRange = pages.update;
    pages.update();
    if (!wantLive) {
      if (full) await readOn();
      if (closed) return;
      if (!wantLive) view.setState('finished');
    }
    started = true;
    // resume() may have come while the rest was read.
    if (wantLive) openStream();
  }

  start().catch((err) => {
    if (!closed) view.setState(`could not load the output: ${err.message}`);
  });

  /** Whether a stream is open or connecting, or a reconnect is on its way (which streams if the job runs). */
  const following = () => reconnecting || (source !== null && source.readyState !== EventSource.CLOSED);

  return {
    close() {
      closed = true;
      clearTimeout(retry);
      pages.close();
      if (source) source.close();
    },
    /** The job runs again: stream its new rows (after the last one shown) until it ends again. */
    resume() {
      wantLive = true;
      if (closed || !started || following()) return;
      openStream();
    },
  };
}
