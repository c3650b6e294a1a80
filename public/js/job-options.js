// The new-job form's "when and priority" fields: Run at (the browser's local time, sent as RFC 3339
// with its UTC offset), Delay (seconds) and Priority. The API checks them; its message for `runAt`,
// `delaySec` or `priority` (error.field) is shown beside that field.
import { h } from './dom.js';
import { fieldRow } from './form-field.js';

const MAX_DELAY_SEC = 31_622_400;
const pad = (n, width = 2) => String(n).padStart(width, '0');

/** A Date as RFC 3339 in the browser's time zone: "2026-12-24T18:00:00+01:00". */
export function rfc3339Local(date) {
  const offset = -date.getTimezoneOffset();
  const sign = offset < 0 ? '-' : '+';
  const abs = Math.abs(offset);
  return (
    `${pad(date.getFullYear(), 4)}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}` +
    `${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`
  );
}

/**
 * A datetime-local value ("2026-12-24T18:00", seconds optional) read as the browser's local time.
 * The offset is the one in force on that date (summer or winter time), not today's.
 */
export function localInputToRfc3339(value) {
  const m = /^(\d{4,})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?$/.exec(value);
  // Anything else goes as typed: the API's message says what it wants.
  if (!m) return value;
  const [year, month, day, hour, minute, second = '0'] = m.slice(1);
  return rfc3339Local(new Date(+year, +month - 1, +day, +hour, +minute, +second));
}

const timeZone = () => Intl.DateTimeFormat().resolvedOptions().timeZone || 'the browser’s time zone';

/** The three fields; `read()` → `{runAt, delaySec, priority}` (undefined when left empty). */
export function jobOptionFields(me) {
  const runAt = fieldRow({
    input: h('input', { id: 'job-run-at', name: 'runAt', type: 'datetime-local', step: '1' }),
    label: 'Run at',
    hint: `Not before this time (${timeZone()}); at most 366 days ahead. Empty: as soon as possible.`,
  });
  const delaySec = fieldRow({
    input: h('input', {
      id: 'job-delay',
      name: 'delaySec',
      type: 'number',
      inputmode: 'numeric',
      step: '1',
      min: 0,
      max: MAX_DELAY_SEC,
    }),
    label: 'Delay (seconds)',
    hint: `Or this many seconds from now, 0 to ${MAX_DELAY_SEC.toLocaleString()} (366 days); not with Run at.`,
  });
  const priority = fieldRow({
    input: h('input', {
      id: 'job-priority',
      name: 'priority',
      type: 'number',
      inputmode: 'numeric',
      step: '1',
      min: -100,
      max: me.isAdmin ? 100 : 0,
      placeholder: '0',
    }),
    label: 'Priority',
    hint: me.isAdmin
      ? 'A whole number, −100 to 100 (default 0): among due jobs, higher starts first.'
      : 'A whole number, −100 to 0 (default 0): lower lets other jobs go first. Positive ones are for admins.',
  });
  const fields = new Map([
    ['runAt', runAt],
    ['delaySec', delaySec],
    ['priority', priority],
  ]);
  // Sent as typed (1.5 stays 1.5): the API says what is wrong, beside the field.
  const number = (input) => (input.value === '' ? undefined : Number(input.value));

  return {
    element: h(
      'fieldset',
      { class: 'job-options' },
      h('legend', {}, 'When and priority'),
      [...fields.values()].map((f) => f.row),
    ),
    read: () => ({
      runAt: runAt.input.value === '' ? undefined : localInputToRfc3339(runAt.input.value),
      delaySec: number(delaySec.input),
      priority: number(priority.input),
    }),
    /** `[[name, message]]` for each field whose value the API would refuse, in words. */
    check() {
      const problems = [];
      const whole = (input) => input.value !== '' && !Number.isInteger(Number(input.value));
      if (runAt.input.value !== '' && delaySec.input.value !== '') {
        // Beside Run at, where the API's own error for it goes too.
        problems.push(['runAt', 'Give Run at or a delay, not both.']);
      } else if (
        whole(delaySec.input) ||
        Number(delaySec.input.value) < 0 ||
        Number(delaySec.input.value) > MAX_DELAY_SEC
      ) {
        problems.push(['delaySec', `Must be a whole number of seconds from 0 to ${MAX_DELAY_SEC.toLocaleString()}.`]);
      }
      const p = Number(priority.input.value);
      if (whole(priority.input) || p < -100 || p > 100) {
        problems.push(['priority', 'Must be a whole number from −100 to 100.']);
      } else if (p > 0 && !me.isAdmin) {
        problems.push(['priority', 'Positive priorities are for admins: use 0 or less.']);
      }
      return problems;
    },
    /** The field the API's `error.field` names, if it is one of these. */
    field: (name) => fields.get(name),
    clearErrors() {
      for (const f of fields.values()) f.showError('');
    },
  };
}
