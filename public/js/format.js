// Job facts as people read them: status badges, ages, durations, times.
import { h } from './dom.js';

export const FINISHED = ['success', 'failure', 'cancelled'];
export const STATUSES = ['pending', 'running', 'success', 'failure', 'cancelled'];

export function statusBadge(status) {
  return h('span', { class: `badge status status-${status}` }, status);
}

const toDate = (value) => (value ? new Date(value) : null);

/** "0.4 s", "3.2 s", "12 s", "3 min 4 s", "2 h 5 min", "3 d 4 h": tenths below 10 s, where they matter. */
export function formatDuration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '';
  if (ms < 9950) return `${(Math.max(0, ms) / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** "just now", "5 min ago", … */
export function formatAge(value, now = Date.now()) {
  const date = toDate(value);
  return date ? formatAgo(now - date.getTime()) : '';
}

/** `ms` ago in words: "just now" below 10 s, "25 s ago", "5 min ago", "2 h 5 min ago". */
export function formatAgo(ms) {
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

/** The run time as an element, with when it started and ended on hover; `—` when there is none. */
export function durationElement(job, now = Date.now()) {
  const text = jobDuration(job, now);
  if (!text) return h('span', { class: 'muted' }, '—');
  const started = formatTime(job.startedAt);
  const title = job.finishedAt ? `${started} → ${formatTime(job.finishedAt)}` : `started ${started}, still running`;
  return h('span', { class: 'duration', title }, text);
}

/**
 * The API's `error` reasons (README, "Runner") in words: `exit_code` with its code, `signal` with its
 * name; an unknown reason is shown as it is. `job`: `{exitCode, signal}` when they are known.
 */
export function errorText(reason, job = {}) {
  switch (reason) {
    case null:
    case undefined:
    case '':
      return '';
    case 'exit_code':
      return job.exitCode === null || job.exitCode === undefined
        ? 'exited with an error code'
        : `exited with code ${job.exitCode}`;
    case 'signal':
      return job.signal ? `killed by ${job.signal}` : 'killed by a signal';
    case 'timeout':
      return 'timed out';
    case 'shutdown':
      return 'stopped at runner shutdown';
    case 'runner_lost':
      return 'runner lost';
    case 'spawn_failed':
      return 'could not start';
    case 'memory_limit':
      return 'ran out of memory';
    case 'cpu_limit':
      return 'over its CPU time limit';
    case 'output_failed':
      return 'its output could not be stored';
    case 'invalid_template':
      return 'the task’s definition is invalid';
    case 'not_allowed':
      return 'not allowed to run';
    case 'cancelled':
      return job.cancelledBy ? `cancelled by ${job.cancelledBy}` : 'cancelled';
    default:
      return reason;
  }
}

/** A job's error in words with the API's reason on hover; an earlier attempt's while it waits to retry. */
export function errorElement(job) {
  if (job.error) return h('span', { class: 'error-text', title: job.error }, errorText(job.error, job));
  if (job.lastError && job.status !== 'success') {
    // The exit code and signal columns are the last attempt's only once it ends: not shown here.
    return h('span', { class: 'muted', title: job.lastError }, `last attempt: ${errorText(job.lastError)}`);
  }
  return null;
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
  return h('time', { datetime: date.toISOString(), title: date.toISOString() }, date.toLocaleString());
}
