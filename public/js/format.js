// Job facts as people read them: status badges, ages, durations, times.
import { h } from './dom.js';

export const FINISHED = ['success', 'failure', 'cancelled'];
export const STATUSES = ['pending', 'running', 'success', 'failure', 'cancelled'];

export function statusBadge(status) {
  return h('span', { class: `badge status status-${status}` }, status);
}

const toDate = (value) => (value ? new Date(value) : null);

/** "12 s", "3 min 4 s", "2 h 5 min", "3 d 4 h". */
export function formatDuration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** "just now", "5 min ago", … */
export function formatAge(value, now = Date.now()) {
  const date = toDate(value);
  if (!date) return '';
  const ms = now - date.getTime();
  if (ms < 10_000) return 'just now';
  return `${formatDuration(ms).replace(/ \d+ s$/, '')} ago`;
}

export function formatTime(value) {
  const date = toDate(value);
  return date ? date.toLocaleString() : '—';
}

/** Run time: started → finished, or → now while running; nothing before it starts, or between attempts. */
export function jobDuration(job, now = Date.now()) {
  const started = toDate(job.startedAt);
  // A job waiting for its next attempt keeps the last attempt's start time.
  if (!started || job.status === 'pending') return '';
  const end = toDate(job.finishedAt);
  return formatDuration((end ? end.getTime() : now) - started.getTime());
}

/** A `<time>` element showing the age, with the exact time on hover. */
export function ageElement(value) {
  const date = toDate(value);
  if (!date) return h('span', { class: 'muted' }, '—');
  return h('time', { datetime: date.toISOString(), title: date.toLocaleString() }, formatAge(value));
}

/** A `<time>` element showing the exact local time (formatTime), or `empty` when there is none. */
export function timeElement(value, empty = '—') {
  const date = toDate(value);
  if (!date) return h('span', { class: 'muted' }, empty);
  return h('time', { datetime: date.toISOString() }, date.toLocaleString());
}
