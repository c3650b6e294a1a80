// Getting a job's output into an OutputView: history by pages first, then live events.
//
// 1. History: GET /jobs/:id/status?afterId=<last row id>&limit=1000, page after page until a short
//    page. Keyed paging costs the same at any depth, and each page goes straight into the view's
//    array, so a 100,000-line job fills in with ~100 requests and never one element per line.
// 2. Live, only if the job was not finished when the page loaded it: GET /jobs/:id/stream?afterId=
//    <last row id>, which sends the newer rows, status changes and `end`. After a dropped connection
//    EventSource reconnects by itself with Last-Event-ID (the last row's id): nothing twice, no gaps.
// Why not the stream alone: it would replay the whole history as one event per row, with no pages.
// A job seen finished needs no stream: its last rows are committed with its outcome.

import { FINISHED } from './format.js';

const PAGE = 1000;
const RETRY_MS = 3000;

/**
 * Fills `view` with job `jobId`'s output and keeps it current. `finished`: the job's status
 * was final when read. Callbacks: onStatus({status, exitCode, error}), onEnd({status}).
 * Returns `close()`, which stops paging and closes the stream.
 */
export function followOutput(api, jobId, view, { finished, onStatus = () => {}, onEnd = () => {} }) {
  let closed = false;
  let source = null;
  let retry = 0;

  const appendNew = (rows) => {
    // Rows arrive in id order; one already shown (a page and the stream overlapping) is skipped.
    const lastId = view.lastId;
    view.append(lastId ? rows.filter((row) => row.id > lastId) : rows);
  };

  async function loadHistory() {
    view.setState('loading…');
    for (;;) {
      const rows = await api.output(jobId, view.lastId, PAGE);
      if (closed) return;
      appendNew(rows);
      if (rows.length < PAGE) return;
    }
  }

  function openStream() {
    if (closed) return;
    view.setState('live');
    source = api.stream(jobId, view.lastId || undefined);
    source.addEventListener('output', (event) => appendNew([JSON.parse(event.data)]));
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
    view.setState('disconnected; retrying…');
    retry = setTimeout(async () => {
      try {
        const job = await api.job(jobId);
        if (closed) return;
        if (!FINISHED.includes(job.status)) return openStream();
        await loadHistory();
        view.setState('finished');
        onEnd({ status: job.status });
      } catch (err) {
        if (closed) return;
        if (err.status === 404) view.setState('the job is gone');
        else reconnectLater();
      }
    }, RETRY_MS);
  }

  loadHistory().then(
    () => {
      if (closed) return;
      if (finished) view.setState('finished');
      else openStream();
    },
    (err) => {
      if (!closed) view.setState(`could not load the output: ${err.message}`);
    },
  );

  return {
    close() {
      closed = true;
      clearTimeout(retry);
      if (source) source.close();
    },
  };
}
