// Drawing the Runners view (#/runners): one row per runner heard from in the last day, with its
// slots in use, its running jobs, its last report and a stale mark. No requests here:
// runners-page.js loads, and calls these with what it has.
import { h, replace } from './dom.js';
import { formatAgo, formatDuration, timeElement } from './format.js';
import { drawUnloaded } from './poll.js';

const cell = (label, ...content) => h('td', { dataset: { label } }, ...content);
/** A state's badge wears the colours of the job status it is like. */
const STATE_COLOURS = { live: 'success', draining: 'cancelled', stopped: 'pending', stale: 'failure' };

/** `at` (ISO text) shown as "12 s ago" from the API's own age (the database clock), exact on hover. */
function reportedAgo(at, ageSec) {
  const date = at ? new Date(at) : null;
  if (!date) return h('span', { class: 'muted' }, '—');
  return h('time', { datetime: date.toISOString(), title: date.toLocaleString() }, formatAgo(ageSec * 1000));
}

/** live, draining, stopped (said so in its last report) or stale (went silent), and why, in words. */
function stateOf(runner) {
  if (runner.stopped) return ['stopped', 'stopped cleanly; its last report said so'];
  if (runner.stale) {
    return ['stale', `no report for ${formatDuration(runner.reportAgeSec * 1000)}: it died or lost the database`];
  }
  return runner.draining ? ['draining', 'finishing its jobs, claiming none'] : ['live', ''];
}

function runnerRow(runner) {
  const [state, why] = stateOf(runner);
  const used = runner.runningJobs.length;
  const facts = [
    runner.host && runner.pid ? `${runner.host}, pid ${runner.pid}` : runner.host,
    runner.nodeVersion && `Node ${runner.nodeVersion}`,
    runner.nudgeAddress && `nudges on ${runner.nudgeAddress}`,
  ].filter(Boolean);
  return h(
    'tr',
    { class: runner.stale ? 'runner-stale' : undefined, dataset: { runner: runner.id } },
    cell(
      'Runner',
      h('code', { class: 'runner-id' }, runner.id),
      facts.length > 0 && h('span', { class: 'runner-facts muted' }, facts.join(' · ')),
    ),
    cell(
      'State',
      h('span', { class: `badge runner-state status-${STATE_COLOURS[state]}` }, state),
      why && h('span', { class: 'runner-why muted' }, why),
    ),
    cell(
      'Slots used',
      runner.slots === null
        ? h('span', { class: 'muted', title: 'its report is not one this version reads' }, `${used} / ?`)
        : h('span', { class: 'slots' }, `${used} / ${runner.slots}`),
    ),
    cell(
      'Running jobs',
      used === 0
        ? h('span', { class: 'muted' }, 'none')
        : h(
            'ul',
            { class: 'runner-jobs' },
            runner.runningJobs.map((job) =>
              h('li', {}, h('a', { href: `#/jobs/${job.id}` }, `#${job.id}`), ' ', job.task),
            ),
          ),
    ),
    cell('Last report', reportedAgo(runner.lastReportAt, runner.reportAgeSec)),
    cell('Started', timeElement(runner.startedAt)),
  );
}

/** The view's fixed frame; `drawRunners` fills its parts. */
export function runnersLayout() {
  const parts = {
    summary: h('p', { class: 'runners-summary', role: 'status' }),
    list: h('section', { class: 'runners-section', 'aria-label': 'Runners' }),
    note: h('p', { class: 'muted', hidden: true }),
  };
  parts.nodes = [
    h('div', { class: 'page-head' }, h('h1', {}, 'Runners')),
    h(
      'p',
      { class: 'muted' },
      'Every runner reports its slots and jobs every 15 s (or every heartbeat, when that is longer), and ' +
        'says so when it stops. One that misses three reports in a row without saying so is marked stale: ' +
        'it died or cannot reach the database, and the jobs it held fail (or retry) once their lease runs out.',
    ),
    parts.summary,
    parts.list,
    parts.note,
  ];
  return parts;
}

/** `state`: pollView's, with GET /runners as its data. */
export function drawRunners(parts, state) {
  parts.summary.hidden = true;
  parts.note.hidden = true;
  if (drawUnloaded(parts.list, state)) return;
  const { runners, notListed } = state.data;
  if (notListed > 0) {
    parts.note.hidden = false;
    parts.note.textContent =
      `${notListed} runner${notListed === 1 ? '' : 's'} silent for more than a day ` +
      `${notListed === 1 ? 'is' : 'are'} not listed (npx container-jobs prune deletes their rows).`;
  }
  if (runners.length === 0) {
    replace(parts.list, h('p', { class: 'muted' }, 'No runner has reported in the last day.'));
    return;
  }
  const live = runners.filter((r) => !r.stale && !r.stopped);
  const slots = live.reduce((n, r) => n + (r.slots ?? 0), 0);
  const used = live.reduce((n, r) => n + r.runningJobs.length, 0);
  const stale = runners.filter((r) => r.stale).length;
  const stopped = runners.filter((r) => r.stopped).length;
  parts.summary.hidden = false;
  parts.summary.textContent =
    `${live.length} live runner${live.length === 1 ? '' : 's'}, ${used} of ${slots} slots in use` +
    (stale ? `; ${stale} stale` : '') +
    (stopped ? `; ${stopped} stopped` : '');
  replace(
    parts.list,
    h(
      'table',
      { class: 'list runners' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['Runner', 'State', 'Slots used', 'Running jobs', 'Last report', 'Started'].map((t) =>
            h('th', { scope: 'col' }, t),
          ),
        ),
      ),
      h('tbody', {}, runners.map(runnerRow)),
    ),
  );
}
