// #/jobs/:id — one job: its facts, a Cancel button for its owner and admins, and its output, live.
import { ApiError } from './api.js';
import { h, replace } from './dom.js';
import { FINISHED, formatTime, jobDuration, statusBadge } from './format.js';
import { followOutput } from './output-feed.js';
import { OutputView } from './output-view.js';

function paramsText(params) {
  if (params === null || params === undefined) return '—';
  return typeof params === 'string' ? params : JSON.stringify(params);
}

/** The job's facts as a definition list (empty ones left out); long values get a wider cell. */
function facts(job) {
  const items = [
    ['Task', job.task],
    ['Status', statusBadge(job.status)],
    ['Owner', job.createdBy ?? '(none)'],
    ['Created', formatTime(job.createdAt)],
    ['Started', job.startedAt ? formatTime(job.startedAt) : null],
    ['Finished', job.finishedAt ? formatTime(job.finishedAt) : null],
    ['Duration', jobDuration(job) || null],
    ['Exit code', job.exitCode === null ? null : String(job.exitCode)],
    ['Signal', job.signal],
    ['Runner', job.runnerId],
    ['Cancel requested', job.cancelRequestedAt ? `${formatTime(job.cancelRequestedAt)} by ${job.cancelledBy}` : null],
    ['Params', h('code', {}, paramsText(job.params)), 'wide'],
    ['Command', job.command ? h('code', {}, job.command) : null, 'wide'],
    ['Error', job.error ? h('span', { class: 'error-text' }, job.error) : null, 'wide'],
  ];
  return items
    .filter(([, value]) => value !== null && value !== undefined && value !== '')
    .map(([label, value, wide]) =>
      h(
        'div',
        { class: wide ? 'fact fact-wide' : 'fact' },
        h('dt', {}, label),
        h('dd', { dataset: { fact: label } }, value),
      ),
    );
}

export function renderJobPage(container, { api, me, id }) {
  let disposed = false;
  let feed = null;
  let view = null;
  let ticker = 0;
  let job = null;

  const title = h('h1', {}, `Job #${id}`);
  const badge = h('span', { class: 'title-badge' });
  const cancelButton = h('button', { type: 'button', class: 'button button-danger', hidden: true }, 'Cancel job');
  const notice = h('p', { class: 'notice', role: 'status', hidden: true });
  const factList = h('dl', { class: 'facts' });
  replace(container, h('p', { class: 'muted' }, 'Loading…'));
  // Only a number goes into the API's path (`#/jobs/..` must not become another request).
  const load = /^\d+$/.test(id) ? api.job(id) : Promise.reject(new ApiError(404, 'not_found', `no job ${id}`));

  const mayCancel = (j) =>
    (j.createdBy === me.username || me.isAdmin) && !FINISHED.includes(j.status) && !j.cancelRequestedAt;

  function show(next) {
    job = next;
    replace(badge, statusBadge(job.status));
    replace(factList, facts(job));
    cancelButton.hidden = !mayCancel(job);
    clearInterval(ticker);
    // A running job's duration counts up.
    if (job.status === 'running') {
      ticker = setInterval(() => {
        const cell = factList.querySelector('[data-fact="Duration"]');
        if (cell) cell.textContent = jobDuration(job);
      }, 1000);
    }
  }

  const refresh = () =>
    api.job(id).then(
      (next) => !disposed && show(next),
      () => {},
    );

  cancelButton.addEventListener('click', async () => {
    cancelButton.disabled = true;
    try {
      const result = await api.cancel(id);
      notice.textContent =
        result.status === 'running' ? 'Cancel requested: the runner stops the job within a heartbeat.' : 'Cancelled.';
    } catch (err) {
      notice.textContent = err.code === 'already_finished' ? 'The job has already finished.' : err.message;
    }
    notice.hidden = false;
    cancelButton.disabled = false;
    await refresh();
  });

  load.then(
    (first) => {
      if (disposed) return;
      view = new OutputView();
      replace(
        container,
        h('div', { class: 'page-head' }, title, badge, h('span', { class: 'grow' }), cancelButton),
        notice,
        factList,
        view.element,
      );
      show(first);
      feed = followOutput(api, id, view, {
        lines: first.outputLines,
        finished: FINISHED.includes(first.status),
        onStatus: refresh,
        onEnd: refresh,
      });
    },
    (err) => {
      if (disposed) return;
      // Another user's job is answered exactly like a missing one.
      const missing = err instanceof ApiError && (err.status === 404 || err.status === 400);
      if (err instanceof ApiError && err.status === 401) return;
      replace(
        container,
        h('h1', {}, missing ? 'Job not found' : 'Could not load the job'),
        h('p', { class: 'muted' }, missing ? `There is no job ${id} that you may see.` : err.message),
        h('p', {}, h('a', { href: '#/jobs' }, '← All jobs')),
      );
    },
  );

  return () => {
    disposed = true;
    clearInterval(ticker);
    if (feed) feed.close();
    if (view) view.dispose();
  };
}
