// Older output, read when the reader scrolls to it: the pages (GET /jobs/:id/status?offset=N&limit=1000,
// N a multiple of 1000) that cover the lines in view and are not loaded yet. At most two requests are
// in flight; when one answers, the lines in view *then* decide the next, so dragging the scrollbar
// across a million lines asks only for where it stops. An answer for a place the reader has left is
// kept all the same (it is within the view's cap, and the reader may come back).
import { PAGE } from './output-lines.js';

const MAX_IN_FLIGHT = 2;
const RETRY_MS = 3000;

/** Loads what `view` shows of job `jobId`; call `update()` when its range changes. */
export function createPageLoader(api, jobId, view) {
  const inFlight = new Set();
  // Pages answered: one that came back short (its rows pruned meanwhile) is not asked for again.
  const answered = new Set();
  let closed = false;
  let resting = false;

  function update() {
    if (closed || resting) return;
    const { from, to } = view.range;
    for (let page = Math.floor(from / PAGE); page * PAGE < to && inFlight.size < MAX_IN_FLIGHT; page++) {
      if (inFlight.has(page) || answered.has(page)) continue;
      const start = page * PAGE;
      if (view.store.firstMissing(Math.max(from, start), Math.min(to, start + PAGE)) !== -1) void load(page);
    }
  }

  async function load(page) {
    inFlight.add(page);
    try {
      const rows = await api.outputAt(jobId, page * PAGE, PAGE);
      if (closed) return;
      answered.add(page);
      view.put(page * PAGE, rows);
    } catch {
      // The API is away (a 401 has shown the login form already): rest a while, then try what is in view.
      if (closed || resting) return;
      resting = true;
      setTimeout(() => {
        resting = false;
        update();
      }, RETRY_MS);
    } finally {
      inFlight.delete(page);
    }
    update();
  }

  return {
    update,
    close() {
      closed = true;
    },
  };
}
