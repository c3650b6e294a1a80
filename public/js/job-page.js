// #/jobs/:id — one job: its facts, why it waits, Cancel and Retry for its owner and admins, Run
// again, and its output, live (on across a retry's attempts), to copy or download whole. This module holds the page's state and
// its requests; job-view.js draws.
import { ApiError } from './api.js';
import { copyPendingText } from './clipboard.js';
import { replace, h } from './dom.js';
import { FINISHED } from './format.js';
import { drawConfirm, drawDuration, drawJob, drawNotice, jobLayout, jobUnavailable } from './job-view.js';
import { followOutput } from './output-feed.js';
import { OutputView } from './output-view.js';
import { createPoller } from './poll.js';

/** A pending job's reason to wait changes without a status event (its group frees, it falls due). */
const WAITING_REFRESH_MS = 5000;

/** Only a failed or cancelled job can be retried (POST /jobs/:id/retry); any finished one run again. */
const RETRYABLE = ['failure', 'cancelled'];

export function renderJobPage(container, { api, me, id, navigate }) {
  // All of these are written by the load and refresh callbacks below, and read by the drawing.
  let disposed = false;
  let feed = null;
  let view = null;
  let ticker = 0;
  let job = null;
  /** The job blocking this job's group (admins only may ask GET /groups). */
  let blockedBy = null;
  /** Set by Cancel while its "Cancel requested" notice shows; show() clears that notice once the job ends. */
  let cancelNotice = false;

  const parts = jobLayout(id);
  const waitingPoll = createPoller(() => refresh(), WAITING_REFRESH_MS);
  replace(container, h('p', { class: 'muted' }, 'Loading…'));

  const mine = (j) => j.createdBy === me.username || me.isAdmin;
  /** Which buttons `j` has. Run again is anyone's who sees the job: a user sees only their own. */
  const buttonsFor = (j) => ({
    cancel: mine(j) && !FINISHED.includes(j.status) && !j.cancelRequestedAt,
    retry: mine(j) && RETRYABLE.includes(j.status),
    rerun: FINISHED.includes(j.status),
  });

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
    const may = buttonsFor(job);
    drawJob(parts, job, { may, blockedBy, isAdmin: me.isAdmin });
    // Nothing left to confirm once it cannot be cancelled (it ended, or someone else cancelled it).
    if (!may.cancel) drawConfirm(parts, null);
    if (cancelNotice && FINISHED.includes(job.status)) {
      cancelNotice = false;
      drawNotice(parts, '');
    }
    // Running again (a retry, here or elsewhere): its new lines follow the ones shown.
    if (feed && !FINISHED.includes(job.status)) feed.resume();
    clearInterval(ticker);
    // A running job's duration counts up.
    if (job.status === 'running') ticker = setInterval(() => drawDuration(parts, job), 1000);
    if (job.status === 'pending') waitingPoll.start({ now: false });
    else waitingPoll.stop();
  }

  /** Loads counted: an answer overtaken by a later load is dropped, so the page never steps back. */
  let loads = 0;
  const refresh = () => {
    const load = ++loads;
    return loadJob().then(
      (loaded) => !disposed && load === loads && show(loaded),
      () => {},
    );
  };

  /**
   * Runs `action` for a button: the buttons wait meanwhile, and what it says (or the API's error,
   * prefixed with `failed`) shows under the title. A 401 has shown the login form: nothing to say.
   */
  async function act(action, failed) {
    const buttons = [parts.cancelButton, parts.retryButton, parts.rerunButton, parts.confirmYes];
    for (const b of buttons) b.disabled = true;
    try {
      const said = await action();
      if (disposed) return;
      if (said) drawNotice(parts, said);
    } catch (err) {
      if (disposed || err.status === 401) return;
      drawNotice(parts, `${failed}: ${err.message}`, { error: true });
    } finally {
      for (const b of buttons) b.disabled = false;
    }
    await refresh();
  }

  // Cancel asks first, in the page; only "Yes" sends it.
  parts.cancelButton.addEventListener('click', () => {
    drawConfirm(parts, job);
    parts.confirmNo.focus();
  });
  parts.confirmNo.addEventListener('click', () => {
    drawConfirm(parts, null);
    parts.cancelButton.focus();
  });
  parts.confirmYes.addEventListener('click', () => {
    drawConfirm(parts, null);
    return act(async () => {
      try {
        const result = await api.cancel(id);
        if (result.status !== 'running') return 'Cancelled.';
        cancelNotice = true;
        return 'Cancel requested: the runner stops the job within a heartbeat.';
      } catch (err) {
        if (err.code === 'already_finished') return 'The job has already finished.';
        throw err;
      }
    }, 'Could not cancel the job');
  });

  parts.retryButton.addEventListener('click', () =>
    act(async () => {
      const result = await api.retry(id);
      return `Retried: attempt ${result.attempt} is queued; its output follows below.`;
    }, 'Could not retry the job'),
  );

  parts.rerunButton.addEventListener('click', () =>
    act(async () => {
      const result = await api.rerun(id);
      if (!disposed) navigate(`#/jobs/${result.id}`);
      return null;
    }, 'Could not run the job again'),
  );

  /** The whole output to the clipboard (not only the lines this page has read); what happened, under the title. */
  async function copyLog(button) {
    button.disabled = true;
    try {
      const text = api.logText(id);
      await copyPendingText(text);
      const lines = (await text).split('\n').length - 1;
      if (!disposed)
        drawNotice(parts, `Copied the whole log (${lines.toLocaleString()} line${lines === 1 ? '' : 's'}).`);
    } catch (err) {
      if (!disposed && err.status !== 401) drawNotice(parts, `Could not copy the log: ${err.message}`, { error: true });
    } finally {
      button.disabled = false;
    }
  }

  // Only a number goes into the API's path (`#/jobs/..` must not become another request).
  const first = /^\d+$/.test(id) ? loadJob() : Promise.reject(new ApiError(404, 'not_found', `no job ${id}`));
  first.then(
    (loaded) => {
      if (disposed) return;
      const download = h(
        'a',
        { class: 'button button-quiet', href: api.logUrl(id), download: `job-${id}.log` },
        'Download log',
      );
      const copy = h('button', { type: 'button', class: 'button button-quiet' }, 'Copy log');
      copy.addEventListener('click', () => copyLog(copy));
      view = new OutputView({ tools: [copy, download] });
      replace(container, parts.nodes(view.element));
      show(loaded);
      feed = followOutput(api, id, view, {
        lines: loaded.next.outputLines,
        finished: FINISHED.includes(loaded.next.status),
        onStatus: refresh,
        onEnd: refresh,
        // An attempt ended and the next is queued: the status may not change, the attempt does.
        onSystem: refresh,
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
