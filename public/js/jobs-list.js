// #/jobs?status=&createdBy=&offset= — the newest jobs first, filtered and paged; it refreshes itself.
import { h, replace } from './dom.js';
import { ageElement, jobDuration, STATUSES, statusBadge } from './format.js';
import { createPoller } from './poll.js';

const PAGE = 50;
const REFRESH_MS = 5000;

/** The list's URL for a filter: filters live in the hash, so a filtered list can be bookmarked. */
export function listHash({ status = '', createdBy = '', offset = 0 } = {}) {
  const q = new URLSearchParams();
  if (status) q.set('status', status);
  if (createdBy) q.set('createdBy', createdBy);
  if (offset > 0) q.set('offset', String(offset));
  const text = q.toString();
  return '#/jobs' + (text ? '?' + text : '');
}

function jobRow(job) {
  const cell = (label, ...content) => h('td', { dataset: { label } }, ...content);
  return h(
    'tr',
    { dataset: { jobId: job.id } },
    cell('Job', h('a', { href: `#/jobs/${job.id}` }, `#${job.id}`)),
    cell('Status', statusBadge(job.status)),
    // The serial group under the task: a column more would not fit a phone's card.
    cell('Task', job.task, job.groupKey && h('code', { class: 'group-key', title: 'serial group' }, job.groupKey)),
    cell('Owner', job.createdBy ?? '(none)'),
    cell('Created', ageElement(job.createdAt)),
    cell('Duration', jobDuration(job) || '—'),
  );
}

export function renderJobList(container, { api, me, query, navigate }) {
  const filter = {
    status: STATUSES.includes(query.get('status')) ? query.get('status') : '',
    createdBy: me.isAdmin ? (query.get('createdBy') ?? '') : '',
    offset: Math.max(0, Number.parseInt(query.get('offset') ?? '0', 10) || 0),
  };
  let disposed = false;

  const statusSelect = h(
    'select',
    { id: 'filter-status', name: 'status' },
    h('option', { value: '' }, 'any status'),
    STATUSES.map((s) => h('option', { value: s, selected: s === filter.status }, s)),
  );
  const ownerInput = me.isAdmin
    ? h('input', {
        id: 'filter-owner',
        name: 'createdBy',
        type: 'search',
        value: filter.createdBy,
        placeholder: 'anyone',
      })
    : null;
  const filters = h(
    'form',
    { class: 'filters', role: 'search' },
    h('label', { for: 'filter-status' }, 'Status'),
    statusSelect,
    ownerInput && [h('label', { for: 'filter-owner' }, 'Owner'), ownerInput],
    h('button', { type: 'submit', class: 'button button-quiet' }, 'Filter'),
  );
  const apply = () =>
    navigate(listHash({ status: statusSelect.value, createdBy: ownerInput ? ownerInput.value.trim() : '' }));
  filters.addEventListener('submit', (event) => {
    event.preventDefault();
    apply();
  });
  statusSelect.addEventListener('change', apply);

  const body = h('tbody');
  const table = h(
    'table',
    { class: 'list jobs' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ['Job', 'Status', 'Task', 'Owner', 'Created', 'Duration'].map((t) => h('th', { scope: 'col' }, t)),
      ),
    ),
    body,
  );
  const message = h('p', { class: 'muted', role: 'status' });
  const pageLink = (offset, text) =>
    h('a', { class: 'button button-quiet', href: listHash({ ...filter, offset }) }, text);
  const newer = pageLink(filter.offset - PAGE, '← Newer');
  const older = pageLink(filter.offset + PAGE, 'Older →');
  const range = h('span', { class: 'muted' });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' }, newer, range, older);

  replace(
    container,
    h(
      'div',
      { class: 'page-head' },
      h('h1', {}, me.isAdmin ? 'Jobs' : 'My jobs'),
      h('span', { class: 'grow' }),
      h('a', { class: 'button', href: '#/new' }, 'New job'),
    ),
    filters,
    table,
    message,
    pager,
  );

  // A list in a hidden tab waits; it catches up when looked at again.
  async function load() {
    try {
      const { jobs } = await api.listJobs({ ...filter, limit: PAGE, offset: filter.offset || undefined });
      if (disposed) return;
      replace(body, jobs.map(jobRow));
      table.hidden = jobs.length === 0;
      message.textContent = jobs.length
        ? ''
        : filter.offset > 0
          ? 'No more jobs.'
          : filter.status || filter.createdBy
            ? 'No jobs match this filter.'
            : 'No jobs yet: start one with “New job”.';
      newer.hidden = filter.offset === 0;
      older.hidden = jobs.length < PAGE;
      range.textContent = jobs.length ? `${filter.offset + 1}–${filter.offset + jobs.length}` : '';
    } catch (err) {
      if (disposed || err.status === 401) return;
      message.textContent = `Could not load the jobs: ${err.message}`;
    }
  }
  const poller = createPoller(load, REFRESH_MS);
  poller.start();

  return () => {
    disposed = true;
    poller.stop();
  };
}
