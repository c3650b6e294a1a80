// Drawing the Schedules view (#/schedules): one row per schedule of the task file, with its cron
// line, its next fire time and its last job. No requests here: schedules-page.js loads, and calls
// these with what it has.
import { h, replace } from './dom.js';
import { statusBadge, timeElement } from './format.js';
import { drawUnloaded } from './poll.js';

const cell = (label, ...content) => h('td', { dataset: { label } }, ...content);

function scheduleRow(schedule) {
  return h(
    'tr',
    { dataset: { schedule: schedule.name } },
    cell('Schedule', schedule.name),
    cell('Task', schedule.task),
    cell('Cron', h('code', { class: 'cron' }, schedule.cron), h('span', { class: 'timezone' }, schedule.timezone)),
    cell('Next run', timeElement(schedule.nextRunAt, 'none')),
    cell('Last run', timeElement(schedule.lastRunAt, 'never')),
    cell(
      'Last job',
      schedule.lastJobId === null
        ? h('span', { class: 'muted' }, '—')
        : h(
            'span',
            { class: 'last-job' },
            h('a', { href: `#/jobs/${schedule.lastJobId}` }, `#${schedule.lastJobId}`),
            schedule.lastStatus && statusBadge(schedule.lastStatus),
          ),
    ),
  );
}

/** The view's fixed frame; `drawSchedules` fills its list. */
export function schedulesLayout() {
  const parts = { list: h('section', { class: 'schedules-section', 'aria-label': 'Schedules' }) };
  parts.nodes = [
    h('div', { class: 'page-head' }, h('h1', {}, 'Schedules')),
    h(
      'p',
      { class: 'muted' },
      'Schedules come from the task file: each fire time of a cron line makes one job, owned by the ' +
        'schedule’s user. Times are shown in this browser’s time zone; a cron line is read in its own.',
    ),
    parts.list,
  ];
  return parts;
}

/** `state`: pollView's, with GET /schedules as its data. */
export function drawSchedules(parts, state) {
  if (drawUnloaded(parts.list, state)) return;
  const schedules = state.data;
  if (schedules.length === 0) {
    replace(parts.list, h('p', { class: 'muted' }, 'No schedules: the task file has no “schedules”.'));
    return;
  }
  replace(
    parts.list,
    h(
      'table',
      { class: 'list schedules' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['Schedule', 'Task', 'Cron', 'Next run', 'Last run', 'Last job'].map((t) => h('th', { scope: 'col' }, t)),
        ),
      ),
      h('tbody', {}, schedules.map(scheduleRow)),
    ),
  );
}
