// Drawing the Groups view (#/groups): blocked groups first, each with a Release button, then the
// active ones. No requests here: groups-page.js loads, and calls these with what it has.
import { h, replace } from './dom.js';
import { drawUnloaded } from './poll.js';

const jobLink = (id) => h('a', { href: `#/jobs/${id}` }, `#${id}`);
const cell = (label, ...content) => h('td', { dataset: { label } }, ...content);

function table(headings, rows) {
  return h(
    'table',
    { class: 'list groups' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        headings.map((t) => h('th', { scope: 'col' }, t)),
      ),
    ),
    h('tbody', {}, rows),
  );
}

function blockedRow(group, { releasing, onRelease }) {
  const button = h(
    'button',
    {
      type: 'button',
      class: 'button',
      'aria-label': `Release ${group.key}`,
      disabled: releasing.has(group.key),
    },
    releasing.has(group.key) ? 'Releasing…' : 'Release',
  );
  button.addEventListener('click', () => onRelease(group.key));
  return h(
    'tr',
    { dataset: { group: group.key } },
    cell('Group', h('code', { class: 'group-key' }, group.key)),
    cell('Blocked by', group.blockedByJobId === null ? '—' : jobLink(group.blockedByJobId)),
    cell('Pending jobs', String(group.pendingJobs)),
    cell('', button),
  );
}

function activeRow(group) {
  return h(
    'tr',
    { dataset: { group: group.key } },
    cell('Group', h('code', { class: 'group-key' }, group.key)),
    // The group's head may wait for a slot or its due time: held, but not running yet.
    cell(
      'Running',
      group.runningJobId === null ? h('span', { class: 'muted' }, 'next job not started') : jobLink(group.runningJobId),
    ),
    cell('Pending jobs', String(group.pendingJobs)),
  );
}

/** The view's fixed frame; `draw` fills its parts. */
export function groupsLayout() {
  const parts = {
    message: h('p', { class: 'notice', role: 'status', hidden: true }),
    blocked: h('section', { class: 'groups-section', 'aria-labelledby': 'groups-blocked' }),
    active: h('section', { class: 'groups-section', 'aria-labelledby': 'groups-active' }),
  };
  parts.nodes = [
    h('div', { class: 'page-head' }, h('h1', {}, 'Groups')),
    h(
      'p',
      { class: 'muted' },
      'A serial group runs one job at a time, in order. A group whose job failed under “block” waits until ' +
        'that job is retried and succeeds, or until it is released here.',
    ),
    parts.message,
    parts.blocked,
    parts.active,
  ];
  return parts;
}

/**
 * `state`: pollView's, with GET /groups' list as its data; `releasing`: the keys being released
 * now; `onRelease(key)`.
 */
export function drawGroups(parts, state, { releasing, onRelease }) {
  if (drawUnloaded(parts.blocked, state)) {
    replace(parts.active);
    return;
  }
  const groups = state.data;
  const blocked = groups.filter((g) => g.state === 'blocked');
  const active = groups.filter((g) => g.state !== 'blocked');
  replace(
    parts.blocked,
    h('h2', { id: 'groups-blocked' }, 'Blocked'),
    blocked.length
      ? table(
          ['Group', 'Blocked by', 'Pending jobs', ''],
          blocked.map((g) => blockedRow(g, { releasing, onRelease })),
        )
      : h('p', { class: 'muted' }, 'No group is blocked.'),
  );
  replace(
    parts.active,
    h('h2', { id: 'groups-active' }, 'Active'),
    active.length
      ? table(['Group', 'Running', 'Pending jobs'], active.map(activeRow))
      : h('p', { class: 'muted' }, 'No group holds a job.'),
  );
}

/** A line above the tables: what a release did, or why it failed (`error`: drawn as an error). */
export function drawMessage(parts, text, { error = false } = {}) {
  parts.message.textContent = text;
  parts.message.hidden = text === '';
  parts.message.classList.toggle('notice-error', error);
}
