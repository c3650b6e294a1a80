// #/jobs?q=&task=&status=&createdBy=&offset= — the newest jobs first, searched, filtered, counted by
// status and paged; it refreshes itself. This module holds the filter and the requests;
// jobs-list-view.js draws.
import { h, replace } from './dom.js';
import { COLUMNS, drawCounts, drawJobs, filterForm, filterOf, linkRows, listHash } from './jobs-list-view.js';
import { createPoller } from './poll.js';

export { listHash } from './jobs-list-view.js';

const PAGE = 50;
const REFRESH_MS = 5000;

export function renderJobList(container, { api, me, query, navigate }) {
  /** From the URL, once: a change of filter is a new URL, so a new render. */
  const filter = filterOf(query, me);
  let disposed = false;

  const form = filterForm(filter, me);
  const apply = () => navigate(listHash(form.read()));
  form.form.addEventListener('submit', (event) => {
    event.preventDefault();
    apply();
  });
  form.status.addEventListener('change', apply);
  form.task.addEventListener('change', apply);

  const parts = {
    counts: h('nav', { class: 'counts', 'aria-label': 'Jobs by state' }),
    body: h('tbody'),
    message: h('p', { class: 'muted', role: 'status' }),
    range: h('span', { class: 'muted' }),
  };
  linkRows(parts.body, navigate);
  parts.table = h(
    'table',
    { class: 'list jobs' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        COLUMNS.map((t) => h('th', { scope: 'col' }, t)),
      ),
    ),
    parts.body,
  );
  const pageLink = (offset, text) =>
    h('a', { class: 'button button-quiet', href: listHash({ ...filter, offset }) }, text);
  parts.newer = pageLink(Math.max(0, filter.offset - PAGE), '← Newer');
  parts.older = pageLink(filter.offset + PAGE, 'Older →');

  replace(
    container,
    h(
      'div',
      { class: 'page-head' },
      h('h1', {}, me.isAdmin ? 'Jobs' : 'My jobs'),
      h('span', { class: 'grow' }),
      h('a', { class: 'button', href: '#/new' }, 'New job'),
    ),
    form.form,
    parts.counts,
    parts.table,
    parts.message,
    h('nav', { class: 'pager', 'aria-label': 'Pages' }, parts.newer, parts.range, parts.older),
  );

  // The task filter offers the tasks of the task file; without them it still holds the current one.
  api.tasks().then(
    (tasks) => !disposed && form.setTasks(tasks.map((t) => t.name)),
    () => {},
  );

  // A list in a hidden tab waits; it catches up when looked at again.
  async function load() {
    try {
      const page = await api.listJobs({
        q: filter.q,
        task: filter.task,
        status: filter.status,
        createdBy: filter.createdBy,
        limit: PAGE,
        offset: filter.offset || undefined,
        counts: 'true',
      });
      if (disposed) return;
      if (page.counts) drawCounts(parts.counts, filter, page);
      drawJobs(parts, filter, page, PAGE);
    } catch (err) {
      if (disposed || err.status === 401) return;
      parts.message.textContent = `Could not load the jobs: ${err.message}`;
    }
  }
  const poller = createPoller(load, REFRESH_MS);
  poller.start();

  return () => {
    disposed = true;
    poller.stop();
  };
}
