// POST /jobs/:id/retry and /rerun (README, "Retries"): who may, in which states, what the job JSON
// says about attempts, and the same write rules (CSRF, content type, bearer) as cancel.
import path from 'node:path';
import { createApiToken } from '../models/users';
import { count, useApi, type Agent } from './helpers/api';
import { ROOT, sqlOf } from './helpers/database';

const TASKS_FILE = path.join(ROOT, 'test', 'fixtures', 'retry', 'tasks.json');
const ctx = useApi({ users: { alice: false, bob: false, root: true }, tasksFile: TASKS_FILE });

const FLAKY = { task: 'flaky', params: { failures: 1, code: 75, mode: 'exit' } };

/** A cookie write as the page sends it: same origin, JSON. */
function post(agent: Agent, url: string) {
  return agent.post(url).set('Origin', ctx.api.origin).set('Content-Type', 'application/json');
}

async function createJob(agent: Agent, body: object = FLAKY): Promise<number> {
  const res = await agent.post('/jobs').set('Origin', ctx.api.origin).send(body).expect(201);
  return res.body.id;
}

/** Ends a job by SQL as a runner would have: `status`, with its error (and lastError for a failure). */
async function endJob(id: number, status: string, error: string | null = null, exitCode: number | null = null) {
  await sqlOf(ctx.db).query(
    `UPDATE Jobs SET status = :status, error = :error, exitCode = :exitCode, runnerId = 'r1',
       lastError = CASE WHEN :status = 'failure' THEN :error ELSE lastError END,
       startedAt = createdAt, finishedAt = createdAt WHERE id = :id`,
    { replacements: { id, status, error, exitCode } },
  );
}

/** A job of alice's that failed with exit code 75 at its first attempt. */
async function failedJob(agent: Agent = ctx.as.alice): Promise<number> {
  const id = await createJob(agent);
  await endJob(id, 'failure', 'exit_code', 75);
  return id;
}

async function jobJson(id: number) {
  return (await ctx.as.root.get(`/jobs/${id}`).expect(200)).body;
}

/** A job inserted by plain SQL (a task or params the API would not take today). */
async function insertJob(task: string, params: object, createdBy: string | null, status: string): Promise<number> {
  return sqlOf(ctx.db).insert(`INSERT INTO Jobs (task, params, createdBy, status, error) VALUES (?, ?, ?, ?, ?)`, [
    task,
    JSON.stringify(params),
    createdBy,
    status,
    status === 'failure' ? 'exit_code' : null,
  ]);
}

describe('job JSON', () => {
  test('attempt, maxAttempts (from the template), lastError and rerunOf, in the job and in the list', async () => {
    const id = await createJob(ctx.as.alice);
    const admin = await createJob(ctx.as.root, { task: 'admin-flaky', params: {} });

    const expected = { attempt: 1, maxAttempts: 3, lastError: null, rerunOf: null };
    expect((await ctx.as.alice.get(`/jobs/${id}`).expect(200)).body).toMatchObject(expected);
    expect((await ctx.as.root.get(`/jobs/${admin}`).expect(200)).body).toMatchObject({ ...expected, maxAttempts: 2 });
    const list = (await ctx.as.alice.get('/jobs').expect(200)).body.jobs;
    expect(list).toEqual([expect.objectContaining({ id, ...expected })]);
  });

  test('a job inserted by plain SQL has one attempt and no last error', async () => {
    const id = await insertJob('flaky', FLAKY.params, 'alice', 'pending');
    expect(await jobJson(id)).toMatchObject({ attempt: 1, maxAttempts: 1, lastError: null, rerunOf: null });
  });
});

describe('POST /jobs/:id/retry', () => {
  test('the owner: 200 {id, status: pending}; the same job at attempt 2, due now, its last error kept', async () => {
    const id = await failedJob();

    const res = await post(ctx.as.alice, `/jobs/${id}/retry`).expect(200);

    expect(res.body).toMatchObject({ id, status: 'pending' });
    const job = await jobJson(id);
    expect(job).toMatchObject({
      id,
      status: 'pending',
      attempt: 2,
      maxAttempts: 3,
      lastError: 'exit_code',
      error: null,
      exitCode: null,
      runnerId: null,
      startedAt: null,
      finishedAt: null,
      createdBy: 'alice',
      rerunOf: null,
    });
    expect(await count(ctx.db, 'Jobs')).toBe(1);
    const output = (await ctx.as.alice.get(`/jobs/${id}/status`).expect(200)).body;
    expect(output.at(-1)).toMatchObject({ stream: 'system', output: 'retried by alice: attempt 2' });
  });

  test('a cancelled job may be retried too', async () => {
    const id = await createJob(ctx.as.alice);
    await post(ctx.as.alice, `/jobs/${id}/cancel`).expect(200);

    expect((await post(ctx.as.alice, `/jobs/${id}/retry`).expect(200)).body).toMatchObject({ id, status: 'pending' });
    expect(await jobJson(id)).toMatchObject({
      status: 'pending',
      attempt: 2,
      cancelledBy: null,
      lastError: null,
    });
  });

  test("another user's job: 404 not_found and untouched, like a missing one; an admin may retry it", async () => {
    const id = await failedJob();
    const before = await jobJson(id);

    expect((await post(ctx.as.bob, `/jobs/${id}/retry`).expect(404)).body.error.code).toBe('not_found');
    expect((await post(ctx.as.bob, `/jobs/${id + 1000}/retry`).expect(404)).body.error.code).toBe('not_found');
    expect(await jobJson(id)).toEqual(before);

    expect((await post(ctx.as.root, `/jobs/${id}/retry`).expect(200)).body).toMatchObject({ id, status: 'pending' });
    // Still alice's job, retried by root.
    expect(await jobJson(id)).toMatchObject({ createdBy: 'alice', attempt: 2 });
    const output = (await ctx.as.alice.get(`/jobs/${id}/status`).expect(200)).body;
    expect(output.at(-1).output).toBe('retried by root: attempt 2');
  });

  test('a createdBy NULL job: admins only', async () => {
    const id = await insertJob('flaky', FLAKY.params, null, 'failure');
    await post(ctx.as.alice, `/jobs/${id}/retry`).expect(404);
    await post(ctx.as.root, `/jobs/${id}/retry`).expect(200);
  });

  test.each(['pending', 'running', 'success'])('%s: 409 not_retryable, untouched', async (status) => {
    const id = await createJob(ctx.as.alice);
    if (status !== 'pending') await endJob(id, status, null, status === 'success' ? 0 : null);
    const before = await jobJson(id);

    const res = await post(ctx.as.alice, `/jobs/${id}/retry`).expect(409);

    expect(res.body.error.code).toBe('not_retryable');
    expect(res.body.error.message).toContain(status);
    expect(await jobJson(id)).toEqual(before);
  });

  test('a task the owner may no longer run (made admin-only since): 403 admin_only, untouched; an admin may', async () => {
    // Created when the task was open to everyone: the task file has changed since.
    const id = await insertJob('admin-flaky', {}, 'alice', 'failure');
    const before = await jobJson(id);

    const res = await post(ctx.as.alice, `/jobs/${id}/retry`).expect(403);

    expect(res.body.error.code).toBe('admin_only');
    expect(await jobJson(id)).toEqual(before);
    await post(ctx.as.root, `/jobs/${id}/retry`).expect(200);
    expect(await jobJson(id)).toMatchObject({ status: 'pending', attempt: 2, createdBy: 'alice' });
  });

  test('params that no longer validate, or a task no longer in the file: 400, untouched', async () => {
    const stale = await insertJob('flaky', { ...FLAKY.params, failures: 99 }, 'alice', 'failure');
    const gone = await insertJob('no-longer-here', {}, 'alice', 'failure');

    const invalid = await post(ctx.as.alice, `/jobs/${stale}/retry`).expect(400);
    const unknown = await post(ctx.as.root, `/jobs/${gone}/retry`).expect(400);

    expect(invalid.body.error).toMatchObject({ code: 'invalid_params', field: 'failures' });
    expect(unknown.body.error.code).toBe('unknown_task');
    for (const id of [stale, gone]) expect(await jobJson(id)).toMatchObject({ status: 'failure', attempt: 1 });
  });
});

describe('POST /jobs/:id/rerun', () => {
  test('the owner: 201 {id, status, rerunOf}, a new job with the same task and params, Location', async () => {
    const old = await createJob(ctx.as.alice);
    await endJob(old, 'success', null, 0);
    const oldBefore = await jobJson(old);

    const res = await post(ctx.as.alice, `/jobs/${old}/rerun`).expect(201);

    const id = res.body.id;
    expect(res.body).toEqual({ id: expect.any(Number), status: 'pending', rerunOf: old });
    expect(id).not.toBe(old);
    expect(res.headers.location).toBe(`/jobs/${id}`);
    expect(await jobJson(id)).toMatchObject({
      task: 'flaky',
      params: FLAKY.params,
      command: oldBefore.command,
      status: 'pending',
      createdBy: 'alice',
      rerunOf: old,
      attempt: 1,
      maxAttempts: 3,
      lastError: null,
    });
    expect(await jobJson(old)).toEqual(oldBefore);
  });

  test('an admin re-runs anyone’s job as their own; another user gets 404 and nothing is made', async () => {
    const old = await failedJob();

    expect((await post(ctx.as.bob, `/jobs/${old}/rerun`).expect(404)).body.error.code).toBe('not_found');
    expect(await count(ctx.db, 'Jobs')).toBe(1);

    const res = await post(ctx.as.root, `/jobs/${old}/rerun`).expect(201);
    expect(await jobJson(res.body.id)).toMatchObject({ createdBy: 'root', rerunOf: old, task: 'flaky' });
  });

  test('any finished job: success, failure, cancelled; a pending or running one is 409 not_finished', async () => {
    const ended: number[] = [];
    for (const status of ['success', 'failure', 'cancelled']) {
      const id = await createJob(ctx.as.alice);
      await endJob(id, status, status === 'success' ? null : status === 'failure' ? 'exit_code' : 'cancelled');
      ended.push(id);
    }
    for (const id of ended) {
      expect((await post(ctx.as.alice, `/jobs/${id}/rerun`).expect(201)).body).toMatchObject({ rerunOf: id });
    }
    const pending = await createJob(ctx.as.alice);
    const running = await createJob(ctx.as.alice);
    await endJob(running, 'running');
    const jobs = await count(ctx.db, 'Jobs');

    for (const id of [pending, running]) {
      const res = await post(ctx.as.alice, `/jobs/${id}/rerun`).expect(409);
      expect(res.body.error.code).toBe('not_finished');
    }
    expect(await count(ctx.db, 'Jobs')).toBe(jobs);
  });

  test('a task the requester may not run: 403 admin_only and nothing made; an admin may', async () => {
    const old = await insertJob('admin-flaky', {}, 'alice', 'failure');

    expect((await post(ctx.as.alice, `/jobs/${old}/rerun`).expect(403)).body.error.code).toBe('admin_only');
    expect(await count(ctx.db, 'Jobs')).toBe(1);
    await post(ctx.as.root, `/jobs/${old}/rerun`).expect(201);
  });
});

describe.each(['retry', 'rerun'])('POST /jobs/:id/%s: the write rules of cancel', (action) => {
  const success = action === 'retry' ? 200 : 201;

  test('cookie writes need JSON and the same origin (or Sec-Fetch-Site); bearer writes need neither', async () => {
    const id = await failedJob();
    const url = `/jobs/${id}/${action}`;
    await ctx.as.alice.post(url).set('Origin', ctx.api.origin).expect(415);
    await ctx.as.alice.post(url).set('Origin', ctx.api.origin).type('form').send('x=1').expect(415);
    await ctx.as.alice.post(url).set('Origin', 'https://evil.example').send({}).expect(403);
    await ctx.as.alice.post(url).send({}).expect(403);
    await ctx.as.alice.post(url).set('Origin', ctx.api.origin).set('Sec-Fetch-Site', 'same-site').send({}).expect(403);
    expect(await jobJson(id)).toMatchObject({ status: 'failure', attempt: 1 });
    expect(await count(ctx.db, 'Jobs')).toBe(1);

    const { token } = await createApiToken(ctx.db, 'alice', 'ci');
    await ctx.api.agent().post(url).set('Authorization', `Bearer ${token}`).expect(success);
  });

  test('Sec-Fetch-Site: same-origin stands in for Origin', async () => {
    const id = await failedJob();
    await ctx.as.alice.post(`/jobs/${id}/${action}`).set('Sec-Fetch-Site', 'same-origin').send({}).expect(success);
  });

  test('bad ids, unexpected fields and no session are refused, and change nothing', async () => {
    const id = await failedJob();
    const url = `/jobs/${id}/${action}`;
    expect((await post(ctx.as.alice, `/jobs/1.5/${action}`).send({}).expect(400)).body.error.code).toBe('invalid_id');
    expect((await post(ctx.as.alice, `/jobs/-1/${action}`).send({}).expect(400)).body.error.code).toBe('invalid_id');
    expect((await post(ctx.as.alice, url).send({ force: true }).expect(400)).body.error.code).toBe('unexpected_field');
    await ctx.api.agent().post(url).set('Origin', ctx.api.origin).send({}).expect(401);
    expect(await jobJson(id)).toMatchObject({ status: 'failure', attempt: 1 });
    expect(await count(ctx.db, 'Jobs')).toBe(1);
  });
});
