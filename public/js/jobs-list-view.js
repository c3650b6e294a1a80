// Drawing the jobs list (#/jobs): the filter form, the counts by status, the rows and the pager.
// No requests here: jobs-list.js loads, and calls these with what it has.
import { h, replace } from './dom.js';
import { ageElement, durationElement, errorElement, STATUSES, statusBadge } from './format.js';

/** The list's URL for a filter: filters live in the hash, so a filtered list can be bookmarked. */
export function listHash({ status = '', createdBy = '', task = '', q = '', offset = 0 } = {}) {
  const query = new URLSearchParams();
  if (q) query.set('q', q);
  if (task) query.set('task', task);
  if (status) query.set('status', status);
  if (createdBy) query.set('createdBy', createdBy);
  if (offset > 0) query.set('offset', String(offset));
  const text = query.toString();
  return '#/jobs' + (text ? '?' + text : '');
}

/** The filter a list URL's query holds; what a user may not filter by (the owner) is dropped. */
export function filterOf(query, me) {
  const text = (name, max = 100) => (query.get(name) ?? '').trim().slice(0, max);
  return {
    q: text('q'),
    task: text('task'),
    status: STATUSES.includes(query.get('status')) ? query.get('status') : '',
    createdBy: me.isAdmin ? text('createdBy', 255) : '',
    offset: Math.max(0, Number.parseInt(query.get('offset') ?? '0', 10) || 0),
  };
}

export const COLUMNS = ['Job', 'Status', 'Task', 'Owner', 'Created', 'Duration', 'Error'];

export function jobRow(job) {
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
    cell('Duration', durationElement(job)),
    cell('Error', errorElement(job) ?? h('span', { class: 'muted' }, '—')),
  );
}

/**
 * A click anywhere on a job's row opens its page, as its "#id" link does (Ctrl, Shift, ⌘ or the
 * middle button: in a new tab); a click on a link, or one that ends a text selection, keeps its meaning.
 */
export function linkRows(body, navigate) {
  const open = (event, newTab) => {
    const row = event.target.closest('tr[data-job-id]');
    if (!row || event.target.closest('a, button') || String(window.getSelection()) !== '') return;
    const hash = `#/jobs/${row.dataset.jobId}`;
    if (newTab) window.open(hash, '_blank', 'noopener');
    else navigate(hash);
  };
  body.addEventListener('click', (event) => {
    if (event.button === 0) open(event, event.ctrlKey || event.metaKey || event.shiftKey);
  });
  body.addEventListener('auxclick', (event) => {
    if (event.button === 1) open(event, true);
  });
}

/**
 * The filter form. `tasks`: the names offered (the current filter's task is added when missing).
 * Returns the form, its controls, and `setTasks(names)` for when the task list arrives.
 */
export function filterForm(filter, { isAdmin }) {
  const search = h('input', {
    id: 'filter-q',
    name: 'q',
    type: 'search',
    value: filter.q,
    maxlength: 100,
    placeholder: isAdmin ? 'id, task or owner' : 'id or task',
  });
  const task = h('select', { id: 'filter-task', name: 'task' });
  const status = h(
    'select',
    { id: 'filter-status', name: 'status' },
    h('option', { value: '' }, 'any status'),
    STATUSES.map((s) => h('option', { value: s, selected: s === filter.status }, s)),
  );
  const owner = isAdmin
    ? h('input', {
        id: 'filter-owner',
        name: 'createdBy',
        type: 'search',
        value: filter.createdBy,
        placeholder: 'anyone',
      })
    : null;
  const clear = h('a', { class: 'button button-quiet', href: listHash({}), hidden: !isFiltered(filter) }, 'Clear');
  const form = h(
    'form',
    { class: 'filters', role: 'search' },
    h('label', { for: 'filter-q' }, 'Search'),
    search,
    h('label', { for: 'filter-task' }, 'Task'),
    task,
    h('label', { for: 'filter-status' }, 'Status'),
    status,
    owner && [h('label', { for: 'filter-owner' }, 'Owner'), owner],
    h('button', { type: 'submit', class: 'button button-quiet' }, 'Filter'),
    clear,
  );
  const setTasks = (names) => {
    const all = [...new Set([...names, ...(filter.task ? [filter.task] : [])])].sort();
    replace(
      task,
      h('option', { value: '' }, 'any task'),
      all.map((name) => h('option', { value: name, selected: name === filter.task }, name)),
    );
  };
  setTasks([]);
  const read = () => ({
    q: search.value.trim(),
    task: task.value,
    status: status.value,
    createdBy: owner ? owner.value.trim() : '',
  });
  return { form, task, status, read, setTasks };
}

export const isFiltered = (f) => Boolean(f.q || f.task || f.status || f.createdBy);

/**
 * The counts by status as links that filter by it ("All" clears the status), the current one marked.
 * `counts`: `{pending, running, …}` and `total` as GET /jobs?counts=true gives them.
 */
export function drawCounts(bar, filter, { counts, total }) {
  const chip = (status, label, n) =>
    h(
      'a',
      {
        class: `count-chip${status ? ` count-${status}` : ''}${status === filter.status ? ' active' : ''}`,
        href: listHash({ ...filter, status, offset: 0 }),
        'aria-current': status === filter.status ? 'true' : undefined,
        dataset: { count: status || 'all' },
      },
      h('span', { class: 'count-label' }, label),
      h('span', { class: 'count-n' }, n.toLocaleString()),
    );
  replace(
    bar,
    chip('', 'All', total),
    STATUSES.map((s) => chip(s, s, counts[s] ?? 0)),
  );
}

/** The rows, the line under them and the pager for one loaded page of `jobs`. */
export function drawJobs(parts, filter, { jobs, counts, total }, pageSize) {
  replace(parts.body, jobs.map(jobRow));
  parts.table.hidden = jobs.length === 0;
  parts.message.textContent = jobs.length
    ? ''
    : filter.offset > 0
      ? 'No more jobs.'
      : isFiltered(filter)
        ? 'No jobs match this filter.'
        : 'No jobs yet: start one with “New job”.';
  const of = counts ? (filter.status ? (counts[filter.status] ?? 0) : total) : null;
  parts.newer.hidden = filter.offset === 0;
  parts.older.hidden = of === null ? jobs.length < pageSize : filter.offset + jobs.length >= of;
  parts.range.textContent = jobs.length
    ? `${filter.offset + 1}–${filter.offset + jobs.length}` + (of === null ? '' : ` of ${of.toLocaleString()}`)
    : '';
}
