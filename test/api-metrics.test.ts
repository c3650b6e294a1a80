// GET /metrics (SPEC §6): admins or the METRICS_TOKEN bearer only; Prometheus text with the queue's
// gauges from the Jobs table, the API's process metrics, and each runner's metrics from its report.
import type { RunnerReport } from '../models/metrics';
import { spawnSync } from 'node:child_process';
import type { DatabaseConfig } from '../config';
import type { Database } from '../models/database';
import { createApiToken } from '../models/users';
import { RunnerMetrics } from '../runner/metrics';
import { addUser, login, startApi, type Agent, type Api } from './helpers/api';
import { freshDatabase, sqlOf } from './helpers/database';
import { insertJob, runOnce } from './helpers/runner';

/** A report as some other writer may have stored it: the scrape must survive any shape. */
const unchecked = (value: unknown) => value as RunnerReport;

/** `promtool check metrics` (Debian package prometheus) when it is installed. */
const promtoolTest = spawnSync('promtool', ['--version']).status === 0 ? test : test.skip;
if (promtoolTest === test.skip) {
  console.warn('promtool is not installed (apt-get install prometheus): skipping `promtool check metrics`');
}

/** One sample line: name, labels with escaped values, and a float (or ±Inf, or NaN, which prom-client writes Nan). */
const SAMPLE_LINE =
  /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*")*\})? (-?[0-9.]+(e[-+]?[0-9]+)?|[+-]Inf|NaN|Nan)$/;

const METRICS_TOKEN = 'scrape-token-0123456789abcdef';

let db: Database;
let database: DatabaseConfig;
let api: Api;
let alice: Agent;
let root: Agent;

beforeAll(async () => {
  ({ db, config: database } = await freshDatabase(`cj_test_metrics_w${process.env.JEST_WORKER_ID ?? '0'}`));
  api = await startApi(db, database, { env: { METRICS_TOKEN } });
  await addUser(db, 'alice');
  await addUser(db, 'root', true);
  ({ agent: alice } = await login(api, 'alice'));
  ({ agent: root } = await login(api, 'root'));
});

afterAll(async () => {
  await api.close();
  await db.close();
});

beforeEach(async () => {
  await sqlOf(db).query('DELETE FROM JobStatuses');
  await sqlOf(db).query('DELETE FROM Jobs');
  await sqlOf(db).query('DELETE FROM JobRunners');
});

/** `name{labels} value` lines of an exposition, as a map from `name{labels}` to the value. */
function samples(text: string): Map<string, number> {
  const map = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    map.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return map;
}

async function scrape(): Promise<Map<string, number>> {
  const res = await api
    .agent()
    .get('/metrics')
    .set('Authorization', `Bearer ${METRICS_TOKEN}`)
    .expect(200)
    .expect('Content-Type', /^text\/plain; version=0\.0\.4/);
  return samples(res.text);
}

describe('who may read /metrics', () => {
  test('no credentials: 401; a user: 403 admin_only; an admin session: 200', async () => {
    const anonymous = await api.agent().get('/metrics').expect(401);
    expect(anonymous.body.error.code).toBe('unauthenticated');
    const user = await alice.get('/metrics').expect(403);
    expect(user.body.error.code).toBe('admin_only');
    await root.get('/metrics').expect(200);
  });

  test('the METRICS_TOKEN bearer: 200 without a user; a wrong token: 401; an admin API token: 200', async () => {
    await api.agent().get('/metrics').set('Authorization', `Bearer ${METRICS_TOKEN}`).expect(200);
    const wrong = await api.agent().get('/metrics').set('Authorization', `Bearer ${METRICS_TOKEN}x`).expect(401);
    expect(wrong.body.error.code).toBe('invalid_token');
    const { token: adminToken } = await createApiToken(db, 'root', 'grafana');
    await api.agent().get('/metrics').set('Authorization', `Bearer ${adminToken}`).expect(200);
    const { token: userToken } = await createApiToken(db, 'alice', 'laptop');
    await api.agent().get('/metrics').set('Authorization', `Bearer ${userToken}`).expect(403);
  });

  test('without METRICS_TOKEN configured, no bearer string gets in but an API token', async () => {
    const open = await startApi(db, database);
    try {
      await open.agent().get('/metrics').set('Authorization', 'Bearer ').expect(401);
      await open.agent().get('/metrics').set('Authorization', `Bearer ${METRICS_TOKEN}`).expect(401);
    } finally {
      await open.close();
    }
  });
});

/** Moves a job's runAt `seconds` from now on the database clock (negative: into the past). */
async function setRunAt(id: number, seconds: number): Promise<void> {
  await sqlOf(db).query(
    db.dialect === 'mysql'
      ? `UPDATE Jobs SET runAt = NOW(3) + INTERVAL ${seconds} SECOND WHERE id = ?`
      : db.dialect === 'postgres'
        ? `UPDATE Jobs SET runAt = ${db.driver.now} + interval '${seconds} seconds' WHERE id = ?`
        : `UPDATE Jobs SET runAt = strftime('%Y-%m-%d %H:%M:%f', 'now', '${seconds} seconds') WHERE id = ?`,
    { replacements: [id] },
  );
}

describe('what /metrics shows', () => {
  test('queue gauges: pending depth, due jobs, the oldest due job age, running jobs, jobs by status', async () => {
    const old = await insertJob(db, 'hello', { times: 1 });
    await setRunAt(old, -90);
    await insertJob(db, 'hello', { times: 1 });
    await setRunAt(await insertJob(db, 'hello', { times: 1 }), 3600);
    const running = await insertJob(db, 'hello', { times: 1 });
    await sqlOf(db).query("UPDATE Jobs SET status = 'running' WHERE id = ?", { replacements: [running] });
    const done = await insertJob(db, 'hello', { times: 1 });
    await sqlOf(db).query("UPDATE Jobs SET status = 'failure' WHERE id = ?", { replacements: [done] });

    const m = await scrape();
    expect(m.get('container_jobs_pending_jobs')).toBe(3);
    expect(m.get('container_jobs_due_jobs')).toBe(2);
    expect(m.get('container_jobs_oldest_due_job_age_seconds')).toBeGreaterThanOrEqual(90);
    expect(m.get('container_jobs_oldest_due_job_age_seconds')).toBeLessThan(3600);
    expect(m.get('container_jobs_running_jobs')).toBe(1);
    expect(m.get('container_jobs_jobs{status="failure"}')).toBe(1);
    expect(m.get('container_jobs_jobs{status="success"}')).toBe(0);
    expect(m.get('container_jobs_runners')).toBe(0);
  });

  test('an empty queue: zero depth and age', async () => {
    const m = await scrape();
    expect(m.get('container_jobs_pending_jobs')).toBe(0);
    expect(m.get('container_jobs_oldest_due_job_age_seconds')).toBe(0);
  });

  test("a runner's report: finished jobs by status, job durations, claim/flush/finish latency, errors", async () => {
    for (let i = 0; i < 3; i++) await insertJob(db, 'hello', { times: 2 });
    await insertJob(db, 'exit-code', { code: 3 });
    await insertJob(db, 'no-such-task', {});
    // Enough lines for output batches of their own, before the outcome's.
    await insertJob(db, 'flood', { lines: 20000 });
    await runOnce(db);

    const m = await scrape();
    const r = 'runner="test-runner"';
    expect(m.get('container_jobs_runners')).toBe(1);
    expect(m.get(`container_jobs_runner_slots{${r}}`)).toBe(2);
    expect(m.get(`container_jobs_runner_busy_slots{${r}}`)).toBe(0);
    expect(m.get(`container_jobs_runner_jobs_started_total{${r}}`)).toBe(6);
    expect(m.get(`container_jobs_runner_jobs_finished_total{${r},status="success"}`)).toBe(4);
    expect(m.get(`container_jobs_runner_jobs_finished_total{${r},status="failure"}`)).toBe(2);
    expect(m.get(`container_jobs_runner_database_errors_total{${r}}`)).toBe(0);
    expect(m.get(`container_jobs_runner_report_age_seconds{${r}}`)).toBeLessThan(600);
    // Jobs that ran (not the one refused for its unknown task) have a duration.
    expect(m.get(`container_jobs_job_duration_seconds_count{${r}}`)).toBe(5);
    expect(m.get(`container_jobs_job_duration_seconds_bucket{${r},le="+Inf"}`)).toBe(5);
    expect(m.get(`container_jobs_job_duration_seconds_sum{${r}}`)).toBeGreaterThan(0);
    for (const name of ['claim', 'output_flush', 'finish']) {
      const count = m.get(`container_jobs_${name}_duration_seconds_count{${r}}`) ?? 0;
      expect(count).toBeGreaterThan(0);
      expect(m.get(`container_jobs_${name}_duration_seconds_bucket{${r},le="+Inf"}`)).toBe(count);
      // Buckets are cumulative: never decreasing.
      const buckets = [...m.entries()]
        .filter(([k]) => k.startsWith(`container_jobs_${name}_duration_seconds_bucket{${r},`))
        .map(([, v]) => v);
      expect(buckets).toEqual([...buckets].sort((a, b) => a - b));
    }
  });

  test('the exposition is well formed: each family has one HELP and one TYPE, before its samples', async () => {
    await insertJob(db, 'hello', { times: 1 });
    await runOnce(db);
    const res = await root.get('/metrics').expect(200);
    const help = new Map<string, number>();
    const types = new Map<string, string>();
    for (const line of res.text.trimEnd().split('\n')) {
      if (line === '') continue;
      const comment = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
      if (comment?.[1] === 'HELP') help.set(comment[2], (help.get(comment[2]) ?? 0) + 1);
      if (comment?.[1] === 'TYPE') {
        expect(types.has(comment[2])).toBe(false);
        expect(comment[3]).toMatch(/^(gauge|counter|histogram|summary)$/);
        types.set(comment[2], comment[3]);
      }
      if (comment) continue;
      expect(line).toMatch(SAMPLE_LINE);
      const name = line.split(/[{ ]/)[0];
      const family = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
      expect([name, types.get(family)]).toEqual([name, expect.any(String)]);
    }
    expect([...help.values()].every((n) => n === 1)).toBe(true);
    expect([...help.keys()].sort()).toEqual([...types.keys()].sort());
  });

  test("the API's own process metrics, and each runner's with its runner label", async () => {
    await insertJob(db, 'hello', { times: 1 });
    await runOnce(db);
    const m = await scrape();
    const r = 'runner="test-runner"';
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds']) {
      expect(m.get(name)).toBeGreaterThanOrEqual(0);
      expect(m.get(`${name}{${r}}`)).toBeGreaterThanOrEqual(0);
    }
    expect(
      [...m.keys()].some((k) => k.startsWith('nodejs_heap_space_size_used_bytes{runner="test-runner",space=')),
    ).toBe(true);
  });
});

/** Series named `name` (any labels) in an exposition. */
function seriesOf(m: Map<string, number>, name: string): string[] {
  return [...m.keys()].filter((k) => k === name || k.startsWith(`${name}{`));
}

describe('several runners in one scrape', () => {
  const odd = 'host "a"\\b\nc';

  beforeEach(async () => {
    await insertJob(db, 'hello', { times: 1 });
    await runOnce(db);
    const other = new RunnerMetrics();
    other.jobStarted();
    other.jobFinished('failure', 1500);
    await api.queue.reportRunner(odd, await other.report(8, 1, true));
    // A report as the previous version wrote it: its series are left out, the runner is still counted.
    await api.queue.reportRunner(
      'old-runner',
      unchecked({ slots: 4, busy: 0, draining: false, jobsStarted: 9, finished: {} }),
    );
  });

  test("one family per metric name, each runner's series labelled, label values escaped", async () => {
    const res = await api.agent().get('/metrics').set('Authorization', `Bearer ${METRICS_TOKEN}`).expect(200);
    expect(res.text.match(/^# TYPE container_jobs_runner_slots gauge$/gm)).toHaveLength(1);
    expect(res.text.match(/^# TYPE container_jobs_job_duration_seconds histogram$/gm)).toHaveLength(1);
    expect(res.text.match(/^# TYPE process_cpu_seconds_total counter$/gm)).toHaveLength(1);
    const m = samples(res.text);
    const escaped = 'runner="host \\"a\\"\\\\b\\nc"';
    expect(m.get(`container_jobs_runner_slots{${escaped}}`)).toBe(8);
    expect(m.get('container_jobs_runner_slots{runner="test-runner"}')).toBe(2);
    expect(m.get(`container_jobs_runner_draining{${escaped}}`)).toBe(1);
    expect(m.get(`container_jobs_runner_jobs_finished_total{${escaped},status="failure"}`)).toBe(1);
    expect(m.get(`container_jobs_runner_jobs_finished_total{${escaped},status="cancelled"}`)).toBe(0);
    expect(m.get(`container_jobs_job_duration_seconds_bucket{${escaped},le="1"}`)).toBe(0);
    expect(m.get(`container_jobs_job_duration_seconds_bucket{${escaped},le="5"}`)).toBe(1);
    expect(m.get('container_jobs_runners')).toBe(3);
    expect(m.get('container_jobs_runner_report_age_seconds{runner="old-runner"}')).toBeLessThan(600);
    expect(seriesOf(m, 'container_jobs_runner_slots')).toHaveLength(2);
    expect([...m.keys()].filter((k) => k.includes('runner="old-runner"'))).toEqual([
      'container_jobs_runner_report_age_seconds{runner="old-runner"}',
    ]);
  });

  test('a malformed report, or a metric reported with another type, is left out without breaking the scrape', async () => {
    await api.queue.reportRunner(
      'broken',
      unchecked({
        version: 2,
        metrics: [
          { name: 'container_jobs_runners', help: 'x', type: 'counter', values: [{ labels: {}, value: 5 }] },
          { name: 'bad name', help: 'x', type: 'gauge', values: [{ labels: {}, value: 1 }] },
          { name: 'bad_labels', help: 'x', type: 'gauge', values: [{ labels: { 'a-b': 'c' }, value: 1 }] },
          { name: 'custom_gauge', help: 'A gauge.', type: 'gauge', values: [{ labels: { k: 'v' }, value: 2 }] },
          'nonsense',
        ],
      }),
    );
    await sqlOf(db).query("UPDATE JobRunners SET report = 'not json' WHERE id = 'old-runner'");
    const m = await scrape();
    expect(m.get('container_jobs_runners')).toBe(4);
    expect(seriesOf(m, 'container_jobs_runners')).toEqual(['container_jobs_runners']);
    expect(seriesOf(m, 'bad_labels')).toEqual([]);
    expect(m.get('custom_gauge{runner="broken",k="v"}')).toBe(2);
  });

  promtoolTest('promtool check metrics accepts the scrape', async () => {
    const res = await api.agent().get('/metrics').set('Authorization', `Bearer ${METRICS_TOKEN}`).expect(200);
    const check = spawnSync('promtool', ['check', 'metrics'], { input: res.text, encoding: 'utf8' });
    expect({ status: check.status, output: `${check.stdout}${check.stderr}` }).toEqual({ status: 0, output: '' });
  });
});
