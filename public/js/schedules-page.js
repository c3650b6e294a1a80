// #/schedules (admins) — the task file's schedules: when each fires next, and its last job. This
// module holds the view's state and its requests; schedules-view.js draws.
// Everyone can open the URL: the API answers 403 to non-admins, and that answer is what is shown.
import { replace } from './dom.js';
import { createPoller } from './poll.js';
import { drawSchedules, schedulesLayout } from './schedules-view.js';

/** A schedule's last job runs and ends, and a fire time passes, while the view is open. */
const REFRESH_MS = 5000;

export function renderSchedulesPage(container, { api }) {
  // Written by load(); read by draw().
  let disposed = false;
  const state = { schedules: null, error: null };
  /** What was drawn last, so an unchanged refresh leaves the table (and any selection) alone. */
  let drawn = '';

  const parts = schedulesLayout();
  replace(container, parts.nodes);

  function draw() {
    const key = JSON.stringify(state);
    if (key === drawn) return;
    drawn = key;
    drawSchedules(parts, state);
  }

  async function load() {
    try {
      const schedules = await api.schedules();
      if (disposed) return;
      state.schedules = schedules;
      state.error = null;
    } catch (err) {
      if (disposed || err.status === 401) return;
      state.error = `Could not load the schedules: ${err.message}`;
      // Not an admin (403): there is nothing to refresh.
      if (err.status === 403) poller.stop();
    }
    draw();
  }

  const poller = createPoller(load, REFRESH_MS);
  draw();
  poller.start();

  return () => {
    disposed = true;
    poller.stop();
  };
}
