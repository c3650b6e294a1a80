// #/jobs/:id — one job: its facts, why it waits, a Cancel button for its owner and admins, and its
// output, live. This module holds the page's state and its requests; job-view.js draws.
import { ApiError } from './api.js';
import { replace, h } from './dom.js';
import { FINISHED } from './format.js';
import { drawDuration, drawJob, jobLayout, jobUnavailable } from './job-view.js';
import { followOutput } from './output-feed.js';
import { OutputView } from './output-view.js';
import { createPoller } from './poll.js';

/** A pending job's reason to wait changes without a status event (its group frees, it falls due). */
const WAITING_REFRESH_MS = 5000;

export function renderJobPage(container, { api, me, id }) {
  // All of these are written by the load and refresh callbacks below, and read by the drawing.
  let disposed = false;
  let feed = null;
  let view = null;
  let ticker = 0;
  let job = null;
  /** The job blocking this job's group (admins only may ask GET /groups). */
  let blockedBy = null;

  const parts = jobLayout(id);
  const waitingPoll = createPoller(() => refresh(), WAITING_REFRESH_MS);
  replace(container, h('p', { class: 'muted' }, 'Loading…'));

  const mayCancel = (j) =>
    (j.createdBy === me.username || me.isAdmin) && !FINISHED.includes(j.status) && !j.cancelRequestedAt;

  /** Who blocks the job's group: only admins may read the groups, others get the words without it. */
  async function blockerOf(next) {
    if (!me.isAdmin || next.waiting !== 'group_blocked' || !next.groupKey) return null;
    try {
      const { groups } = await api.groups('blocked');
      return groups.find((g) => g.key === next.groupKey)?.blockedByJobId ?? null;
    } catch {
      return null;
    }
  }

  /** Loads the job (and its group's blocker when it matters); rejects like api.job. */
  async function loadJob() {
    const next = await api.job(id);
    return { next, blocker: await blockerOf(next) };
  }

  function show({ next, blocker }) {
    job = next;
    blockedBy = blocker;
    drawJob(parts, job, { mayCancel: mayCancel(job), blockedBy, isAdmin: me.isAdmin });
    clearInterval(ticker);
    // A running job's duration counts up.
    if (job.status === 'running') ticker = setInterval(() => drawDuration(parts, job), 1000);
    if (job.status === 'pending') waitingPoll.start({ now: false });
    else waitingPoll.stop();
  }

  const refresh = () =>
    loadJob().then(
      (loaded) => !disposed && show(loaded),
      () => {},
    );

  parts.cancelButton.addEventListener('click', async () => {
    parts.cancelButton.disabled = true;
    try {
      const result = await api.cancel(id);
      parts.notice.textContent =
        result.status === 'running' ? 'Cancel requested: the runner stops the job within a heartbeat.' : 'Cancelled.';
    } catch (err) {
      parts.notice.textContent = err.code === 'already_finished' ? 'The job has already finished.' : err.message;
    }
    parts.notice.hidden = false;
    parts.cancelButton.disabled = false;
    await refresh();
  });

  // Only a number goes into the API's path (`#/jobs/..` must not become another request).
  const first = /^\d+$/.test(id) ? loadJob() : Promise.reject(new ApiError(404, 'not_found', `no job ${id}`));
  first.then(
    (loaded) => {
      if (disposed) return;
      view = new OutputView();
      replace(container, parts.nodes(view.element));
      show(loaded);
      feed = followOutput(api, id, view, {
        lines: loaded.next.outputLines,
        finished: FINISHED.includes(loaded.next.status),
        onStatus: refresh,
        onEnd: refresh,
      });
    },
    (err) => {
      if (disposed) return;
      if (err instanceof ApiError && err.status === 401) return;
      // Another user's job is answered exactly like a missing one.
      const missing = err instanceof ApiError && (err.status === 404 || err.status === 400);
      replace(container, jobUnavailable(id, { missing, message: err.message }));
    },
  );

  return () => {
    disposed = true;
    clearInterval(ticker);
    waitingPoll.stop();
    if (feed) feed.close();
    if (view) view.dispose();
  };
}
