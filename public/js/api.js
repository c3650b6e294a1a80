// The HTTP API (README, "HTTP API") as the page uses it: JSON in and out, errors as ApiError.

/** An error answer of the API: `{error: {code, message, field?}}` with its HTTP status. */
export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

/**
 * A client for the API at `base` ('' when the page is served by the API itself).
 * `onUnauthorized` is called on any 401 except a failed login, so the page can show its login form.
 */
export function createApi({ base = '', onUnauthorized = () => {} } = {}) {
  /** `text`: the answer's body as text (a JSON error is still an ApiError). */
  async function request(method, path, body, { text = false } = {}) {
    const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (method !== 'GET') {
      // The API's CSRF check: JSON content type, plus the Origin the browser adds by itself.
      init.headers['Content-Type'] = 'application/json';
      if (body !== undefined) init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(base + path, init);
    } catch {
      throw new ApiError(0, 'network_error', 'the server cannot be reached; try again shortly');
    }
    if (res.status === 204) return null;
    if (res.ok && text) return res.text();
    const data = await res.json().catch(() => null);
    if (res.ok) return data;
    const error = data && data.error ? data.error : { code: 'http_' + res.status, message: res.statusText };
    if (res.status === 401 && path !== '/login') onUnauthorized();
    throw new ApiError(res.status, error.code, error.message, error.field);
  }

  const query = (params) => {
    const q = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) if (value !== undefined && value !== '') q.set(key, value);
    const text = q.toString();
    return text ? '?' + text : '';
  };

  return {
    login: (username, password) => request('POST', '/login', { username, password }),
    logout: () => request('POST', '/logout'),
    me: () => request('GET', '/me'),
    tasks: () => request('GET', '/tasks'),
    /** `when`: `{runAt, delaySec, priority}`, each left out when undefined. */
    createJob: (task, params, when = {}) => request('POST', '/jobs', { task, params, ...when }),
    /**
     * `{q, task, status, createdBy, limit, offset, counts}` → `{jobs, limit, offset}`, newest first;
     * with `counts: 'true'` also `{counts: {pending, running, …}, total}` for the filter without its status.
     */
    listJobs: (filter = {}) => request('GET', '/jobs' + query(filter)),
    /** The job, with `outputLines`: how many output rows it has. */
    job: (id) => request('GET', `/jobs/${id}`),
    /** Output rows after row `afterId`, at most `limit` (the API caps it at 1000). */
    output: (id, afterId, limit = 1000) => request('GET', `/jobs/${id}/status` + query({ afterId, limit })),
    /** At most `limit` output rows from row number `offset` (0-based, in output order). */
    outputAt: (id, offset, limit = 1000) => request('GET', `/jobs/${id}/status` + query({ offset, limit })),
    /** The address of the job's whole output as a text file (a download: no request made here). */
    logUrl: (id, { timestamps = false } = {}) =>
      base + `/jobs/${id}/log.txt` + query({ timestamps: timestamps ? 'true' : '' }),
    /** The job's whole output as one text, as Download log saves it (read at once: for copying). */
    logText: (id) => request('GET', `/jobs/${id}/log.txt`, undefined, { text: true }),
    cancel: (id) => request('POST', `/jobs/${id}/cancel`),
    /** A failed or cancelled job goes back to pending, the same job → `{id, status, attempt}`. */
    retry: (id) => request('POST', `/jobs/${id}/retry`),
    /** A finished job's task and params as a new job → `{id, status, rerunOf}`. */
    rerun: (id) => request('POST', `/jobs/${id}/rerun`),
    /** Admins: `{groups: [{key, state, runningJobId, pendingJobs, blockedByJobId}]}`; state 'active', 'blocked' or all. */
    groups: (state) => request('GET', '/groups' + query({ state })),
    /** Admins: lets a blocked group's next job run → `{key, released, state}`. */
    releaseGroup: (key) => request('POST', `/groups/${encodeURIComponent(key)}/release`),
    /** Admins: `[{name, task, cron, timezone, nextRunAt, lastRunAt, lastJobId, lastStatus, …}]`, by name. */
    schedules: () => request('GET', '/schedules'),
    /**
     * Admins: `{runners: [{id, host, pid, slots, runningJobs, lastReportAt, reportAgeSec, stale, draining, …}],
     * notListed}`: the runners heard from in the last day, live ones first.
     */
    runners: () => request('GET', '/runners'),
    /** The live event stream; the browser itself resumes with Last-Event-ID after a dropped connection. */
    stream: (id, afterId) => new EventSource(base + `/jobs/${id}/stream` + query({ afterId })),
  };
}
