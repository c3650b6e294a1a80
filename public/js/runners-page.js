// #/runners (admins) — the runners that reported in the last day: slots in use, running jobs, last
// report, and a stale mark for one that went silent. This module holds the view's requests;
// runners-view.js draws. Everyone can open the URL: the API answers 403 to non-admins, as text.
import { pollView } from './poll.js';
import { drawRunners, runnersLayout } from './runners-view.js';

/** Runners report every 15 s; their jobs start and end in between. */
const REFRESH_MS = 5000;

export function renderRunnersPage(container, { api }) {
  const fetch = () => api.runners();
  return pollView(container, { layout: runnersLayout, fetch, draw: drawRunners, what: 'runners', everyMs: REFRESH_MS })
    .dispose;
}
