// Drawing one job (#/jobs/:id): its facts, its attempts, why it waits, its buttons, and the page
// when it cannot be shown.
// No requests here: job-page.js loads, and calls these with what it has.
import { h, replace } from './dom.js';
import { errorText, formatTime, jobDuration, statusBadge } from './format.js';

function paramsText(params) {
  if (params === null || params === undefined) return '—';
  return typeof params === 'string' ? params : JSON.stringify(params);
}

const jobLink = (id) => h('a', { href: `#/jobs/${id}` }, `#${id}`);

/** "attempt 2 of 3", or null for a job that has one attempt and is on it. */
export function attemptText(job) {
  const attempt = job.attempt ?? 1;
  const max = job.maxAttempts ?? 1;
  return max > 1 || attempt > 1 ? `attempt ${attempt} of ${max}` : null;
}

/** The job's facts as definition-list items (empty ones left out); long values get a wider cell. */
export function jobFacts(job) {
  const items = [
    ['Task', job.task],
    ['Status', statusBadge(job.status)],
    ['Original job', job.rerunOf === null || job.rerunOf === undefined ? null : jobLink(job.rerunOf)],
    ['Group', job.groupKey ? h('code', { class: 'group-key' }, job.groupKey) : null],
    ['Priority', job.priority ? String(job.priority) : null],
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
    [
      'Error',
      job.error ? h('span', { class: 'error-text', title: job.error }, errorText(job.error, job)) : null,
      'wide',
    ],
    // The reason an earlier attempt failed; after the last one it is the Error above, said once.
    [
      'Last error',
      job.lastError && job.lastError !== job.error
        ? h('span', { class: 'error-text', title: job.lastError }, errorText(job.lastError))
        : null,
      'wide',
    ],
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

/**
 * Why a pending job has not started (the API's `waiting`), in words, as nodes for one line; null
 * when it does not wait. `blockedBy`: the job that blocks its group, when known (admins can ask).
 */
export function waitingReason(job, { blockedBy = null, isAdmin = false } = {}) {
  if (job.status !== 'pending' || !job.waiting) return null;
  const group = job.groupKey ?? 'its group';
  // Between attempts of a retry the API says `retry` (or, from an older one, `run_at`).
  if (job.waiting === 'retry' || (job.waiting === 'run_at' && (job.attempt ?? 1) > 1)) {
    return [`Waiting: ${attemptText(job)} is due at ${formatTime(job.runAt)}`];
  }
  switch (job.waiting) {
    case 'run_at':
      return [`Waiting: not due until ${formatTime(job.runAt)}`];
    case 'group':
      return [`Waiting: an earlier job of ${group} is pending or running`];
    case 'group_blocked':
      return [
        `Waiting: group ${group} is blocked by `,
        blockedBy === null ? 'a failed job' : ['job ', jobLink(blockedBy)],
        ' (an admin can release it)',
        isAdmin && [' — ', h('a', { href: '#/groups', class: 'waiting-action' }, 'Groups')],
      ];
    case 'quota':
      return ['Waiting: its owner already runs as many jobs as allowed at once'];
    case 'slot':
      return ['Waiting for a free runner slot'];
    default:
      return [`Waiting (${job.waiting})`];
  }
}

/** The page's parts that change as the job does; `nodes(output)` lays them out around the output. */
export function jobLayout(id) {
  const parts = {
    badge: h('span', { class: 'title-badge' }),
    attempt: h('span', { class: 'attempt muted', hidden: true }),
    retryButton: h('button', { type: 'button', class: 'button', hidden: true }, 'Retry'),
    rerunButton: h('button', { type: 'button', class: 'button button-quiet', hidden: true }, 'Run again'),
    cancelButton: h('button', { type: 'button', class: 'button button-danger', hidden: true }, 'Cancel job'),
    confirmText: h('span', { class: 'grow' }),
    confirmYes: h('button', { type: 'button', class: 'button button-danger' }, 'Yes, cancel it'),
    confirmNo: h('button', { type: 'button', class: 'button button-quiet' }, 'Keep it'),
    notice: h('p', { class: 'notice', role: 'status', hidden: true }),
    waiting: h('p', { class: 'waiting', role: 'status', hidden: true }),
    factList: h('dl', { class: 'facts' }),
  };
  parts.confirm = h(
    'div',
    { class: 'confirm', role: 'alertdialog', 'aria-label': 'Cancel this job?', hidden: true },
    parts.confirmText,
    parts.confirmYes,
    parts.confirmNo,
  );
  parts.nodes = (output) => [
    h(
      'div',
      { class: 'page-head' },
      h('h1', {}, `Job #${id}`),
      parts.badge,
      parts.attempt,
      h('span', { class: 'grow' }),
      parts.retryButton,
      parts.rerunButton,
      parts.cancelButton,
    ),
    parts.confirm,
    parts.notice,
    parts.waiting,
    parts.factList,
    output,
  ];
  return parts;
}

/** Draws `job` into the layout's parts; `may`: `{cancel, retry, rerun}`, which buttons to show. */
export function drawJob(parts, job, { may, blockedBy, isAdmin }) {
  replace(parts.badge, statusBadge(job.status));
  const attempt = attemptText(job);
  parts.attempt.hidden = attempt === null;
  parts.attempt.textContent = attempt ?? '';
  replace(parts.factList, jobFacts(job));
  parts.cancelButton.hidden = !may.cancel;
  parts.retryButton.hidden = !may.retry;
  parts.rerunButton.hidden = !may.rerun;
  const reason = waitingReason(job, { blockedBy, isAdmin });
  parts.waiting.hidden = reason === null;
  parts.waiting.dataset.reason = job.waiting ?? '';
  replace(parts.waiting, reason);
}

/** Asks before cancelling (in the page: no browser dialog); `job` null hides the question. */
export function drawConfirm(parts, job) {
  parts.confirm.hidden = job === null;
  if (job === null) return;
  parts.confirmText.textContent =
    job.status === 'running'
      ? `Cancel job #${job.id}? Its process is stopped (SIGTERM, then SIGKILL) and the job ends cancelled.`
      : `Cancel job #${job.id}? It will not run.`;
}

/** A line under the title: what a button did, or why it did not (`error`: drawn as an error). */
export function drawNotice(parts, text, { error = false } = {}) {
  parts.notice.textContent = text;
  parts.notice.hidden = text === '';
  parts.notice.classList.toggle('notice-error', error);
}

/** The running duration's cell, redrawn every second while the job runs. */
export function drawDuration(parts, job) {
  const cell = parts.factList.querySelector('[data-fact="Duration"]');
  if (cell) cell.textContent = jobDuration(job);
}

/** The page for a job that cannot be shown: missing (or another user's), or an error. */
export function jobUnavailable(id, { missing, message }) {
  return [
    h('h1', {}, missing ? 'Job not found' : 'Could not load the job'),
    h('p', { class: 'muted' }, missing ? `There is no job ${id} that you may see.` : message),
    h('p', {}, h('a', { href: '#/jobs' }, '← All jobs')),
  ];
}
