// #/schedules (admins) — the task file's schedules: when each fires next, and its last job. This
// module holds the view's requests; schedules-view.js draws.
// Everyone can open the URL: the API answers 403 to non-admins, and that answer is what is shown.
import { pollView } from './poll.js';
import { drawSchedules, schedulesLayout } from './schedules-view.js';

/** A schedule's last job runs and ends, and a fire time passes, while the view is open. */
const REFRESH_MS = 5000;

export function renderSchedulesPage(container, { api }) {
  const fetch = () => api.schedules();
  return pollView(container, {
    layout: schedulesLayout,
    fetch,
    draw: drawSchedules,
    what: 'schedules',
    everyMs: REFRESH_MS,
  }).dispose;
}
