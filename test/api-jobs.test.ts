// The /jobs routes (README, "HTTP API") — create, list, read, output, cancel — with owner scoping and input checks.
import express from 'express';
import request from 'supertest';
import { createApiToken } from '../models/users';
import { createJobsRouter, silentLogger } from '../routers';
import { TaskCatalog } from '../tasks/catalog';
import { count, insertOutput, setStatus, TASKS_FILE, useApi, type Agent } from './helpers/api';
import { sqlOf } from './helpers/database';

const ctx = useApi({ users: { alice: false, bob: false, root: true } });

function post(agent: Agent, path: string) {
  return agent.post(path).set('Origin', ctx.api.origin);
}

async function createJob(agent: Agent, body: unknown = { task: 'greet', params: { name: 'Ann' } }): Promise<number> {
  const res = await post(agent, '/jobs')
    .send(body as object)
    .expect(201);
  return res.body.id;
}

describe('POST /jobs', () => {
  test('201 {id, status: pending}; the row has validated params, the quoted command and the creator', async () => {
    const res = await post(ctx.as.alice, '/jobs')
      .send({ task: 'greet', params: { name: "Ann O'Neil", times: 3, loud: true } })
      .expect(201);
    expect(res.body).toEqual({ id: expect.any(Number), status: 'pending' });
    expect(res.headers.location).toBe(`/jobs/${res.body.id}`);
    const job = await ctx.db.models.Job.findByPk(res.body.id);
    expect(job).toMatchObject({
      task: 'greet',
      params: { name: "Ann O'Neil", times: 3, loud: true },
      command: `echo 'hello Ann O'\\''Neil' --times=3 --loud=true`,
      status: 'pending',
      createdBy: 'alice',
    });
  });

  test('an optional param left out drops its argv element', async () => {
    const id = await createJob(ctx.as.alice, { task: 'greet', params: { name: 'Ann' } });
    expect((await ctx.db.models.Job.findByPk(id))!.command).toBe("echo 'hello Ann'");
  });

  test('no session: 401 and nothing written', async () => {
    const res = await ctx.api
      .agent()
      .post('/jobs')
      .set('Origin', ctx.api.origin)
      .send({ task: 'greet', params: { name: 'Ann' } })
      .expect(401);
    expect(res.body.error.code).toBe('unauthenticated');
    expect(await count(ctx.db, 'Jobs')).toBe(0);
  });

  test('a non-admin gets 403 admin_only on an admin-only task; an admin may run it', async () => {
    const res = await post(ctx.as.alice, '/jobs').send({ task: 'rebuild-cluster', params: {} }).expect(403);
    expect(res.body.error.code).toBe('admin_only');
    expect(await count(ctx.db, 'Jobs')).toBe(0);
    await post(ctx.as.root, '/jobs').send({ task: 'rebuild-cluster' }).expect(201);
  });

  test.each([
    ['an unknown task', { task: 'rm-rf', params: {} }, 'unknown_task', 'task'],
    ['a missing task', { params: { name: 'Ann' } }, 'invalid_field', 'task'],
    ['a task that is not a string', { task: ['greet'], params: {} }, 'invalid_field', 'task'],
    [
      'an unknown top-level field',
      { task: 'greet', params: { name: 'Ann' }, command: 'id' },
      'unexpected_field',
      'command',
    ],
    ['a priority out of range', { task: 'greet', params: { name: 'Ann' }, priority: 101 }, 'invalid_field', 'priority'],
    ['a fractional priority', { task: 'greet', params: { name: 'Ann' }, priority: 0.5 }, 'invalid_field', 'priority'],
    ['an unknown field', { task: 'greet', params: { name: 'Ann' }, urgent: true }, 'unexpected_field', 'urgent'],
    ['a param of the wrong type', { task: 'greet', params: { name: 'Ann', times: '3' } }, 'invalid_params', 'times'],
    ['a fractional integer', { task: 'greet', params: { name: 'Ann', times: 1.5 } }, 'invalid_params', 'times'],
    ['a param out of range', { task: 'greet', params: { name: 'Ann', times: 11 } }, 'invalid_params', 'times'],
    [
      'a param not matching its pattern',
      { task: 'greet', params: { name: 'Ann; rm -rf /' } },
      'invalid_params',
      'name',
    ],
    ['a missing required param', { task: 'greet', params: {} }, 'invalid_params', 'name'],
    ['an unknown param', { task: 'greet', params: { name: 'Ann', shell: 'sh' } }, 'invalid_params', 'shell'],
    ['params that are not an object', { task: 'greet', params: ['Ann'] }, 'invalid_params', 'params'],
    ['a body that is an array', [{ task: 'greet' }], 'invalid_body', undefined],
  ])('%s: 400 and nothing written', async (_what, body, code, field) => {
    const res = await post(ctx.as.alice, '/jobs').send(body).expect(400);
    expect(res.body.error.code).toBe(code);
    if (field !== undefined) {
      expect(res.body.error.field).toBe(field);
      expect(res.body.error.message).toContain(field);
    }
    expect(await count(ctx.db, 'Jobs')).toBe(0);
  });

  test('invalid JSON: 400 invalid_json', async () => {
    const res = await post(ctx.as.alice, '/jobs')
      .set('Content-Type', 'application/json')
      .send('{"task": "greet",')
      .expect(400);
    expect(res.body.error.code).toBe('invalid_json');
    expect(await count(ctx.db, 'Jobs')).toBe(0);
  });

  test('a 1 MB body: 413 payload_too_large', async () => {
    const res = await post(ctx.as.alice, '/jobs')
      .send({ task: 'greet', params: { name: 'A'.repeat(1024 * 1024) } })
      .expect(413);
    expect(res.body.error.code).toBe('payload_too_large');
    expect(await count(ctx.db, 'Jobs')).toBe(0);
  });

  test('a form-encoded POST: 415', async () => {
    const res = await post(ctx.as.alice, '/jobs')
      .type('form')
      .send({ task: 'greet', 'params[name]': 'Ann' })
      .expect(415);
    expect(res.body.error.code).toBe('unsupported_media_type');
    const plain = await post(ctx.as.alice, '/jobs')
      .set('Content-Type', 'text/plain')
      .send('{"task":"greet"}')
      .expect(415);
    expect(plain.body.error.code).toBe('unsupported_media_type');
    expect(await count(ctx.db, 'Jobs')).toBe(0);
  });

  test('a cross-origin POST, or one with no Origin at all: 403', async () => {
    const body = { task: 'greet', params: { name: 'Ann' } };
    const cross = await ctx.as.alice.post('/jobs').set('Origin', 'https://evil.example').send(body).expect(403);
    expect(cross.body.error.code).toBe('forbidden_origin');
    await ctx.as.alice.post('/jobs').send(body).expect(403);
    await ctx.as.alice.post('/jobs').set('Origin', 'null').send(body).expect(403);
    await ctx.as.alice
      .post('/jobs')
      .set('Origin', ctx.api.origin)
      .set('Sec-Fetch-Site', 'same-site')
      .send(body)
      .expect(403);
    expect(await count(ctx.db, 'Jobs')).toBe(0);
    await ctx.as.alice.post('/jobs').set('Sec-Fetch-Site', 'same-origin').send(body).expect(201);
  });

  test('checks run in the contract order: 401, 415, 403, 413, 400 invalid_json, fields', async () => {
    const big = `{"task": "greet", "params": {"name": "${'A'.repeat(70 * 1024)}"`; // also not valid JSON
    // 401 beats everything.
    await ctx.api.agent().post('/jobs').set('Origin', 'https://evil.example').type('form').send('a=b').expect(401);
    // 415 beats a bad origin.
    await ctx.as.alice.post('/jobs').set('Origin', 'https://evil.example').type('form').send('a=b').expect(415);
    // 403 beats a body too large.
    await ctx.as.alice
      .post('/jobs')
      .set('Origin', 'https://evil.example')
      .set('Content-Type', 'application/json')
      .send(big)
      .expect(403);
    // 413 beats invalid JSON.
    await post(ctx.as.alice, '/jobs').set('Content-Type', 'application/json').send(big).expect(413);
    // invalid_json beats field checks.
    const res = await post(ctx.as.alice, '/jobs').set('Content-Type', 'application/json').send('{"nope": ').expect(400);
    expect(res.body.error.code).toBe('invalid_json');
    expect(await count(ctx.db, 'Jobs')).toBe(0);
  });
});

describe('GET /jobs', () => {
  test('own jobs, newest first, with ids as numbers', async () => {
    const a1 = await createJob(ctx.as.alice);
    await createJob(ctx.as.bob);
    const a2 = await createJob(ctx.as.alice);
    const res = await ctx.as.alice.get('/jobs').expect(200);
    expect(res.body.limit).toBe(50);
    expect(res.body.offset).toBe(0);
    expect(res.body.jobs.map((j: { id: number }) => j.id)).toEqual([a2, a1]);
    expect(res.body.jobs[0]).toMatchObject({ id: a2, task: 'greet', status: 'pending', createdBy: 'alice' });
    expect(typeof res.body.jobs[0].id).toBe('number');
  });

  test('admins see every job, including createdBy NULL ones, and may filter by createdBy', async () => {
    const a = await createJob(ctx.as.alice);
    const b = await createJob(ctx.as.bob);
    const { id: orphan } = await ctx.api.queue.enqueue({
      task: 'greet',
      params: { name: 'X' },
      command: 'echo',
      createdBy: null,
    });
    const all = await ctx.as.root.get('/jobs').expect(200);
    expect(all.body.jobs.map((j: { id: number }) => j.id)).toEqual([orphan, b, a]);
    const bobs = await ctx.as.root.get('/jobs?createdBy=bob').expect(200);
    expect(bobs.body.jobs.map((j: { id: number }) => j.id)).toEqual([b]);
    // A user's createdBy filter can only narrow to their own jobs.
    expect((await ctx.as.alice.get('/jobs?createdBy=bob').expect(200)).body.jobs).toEqual([]);
    expect(
      (await ctx.as.alice.get('/jobs?createdBy=alice').expect(200)).body.jobs.map((j: { id: number }) => j.id),
    ).toEqual([a]);
    expect((await ctx.as.alice.get('/jobs').expect(200)).body.jobs.map((j: { id: number }) => j.id)).toEqual([a]);
  });

  test('status filter, limit and offset', async () => {
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) ids.push(await createJob(ctx.as.alice));
    await setStatus(ctx.db, ids[1], 'success', { exitCode: 0 });
    await setStatus(ctx.db, ids[3], 'success', { exitCode: 0 });
    const done = await ctx.as.alice.get('/jobs?status=success').expect(200);
    expect(done.body.jobs.map((j: { id: number }) => j.id)).toEqual([ids[3], ids[1]]);
    const page = await ctx.as.alice.get('/jobs?limit=2&offset=1').expect(200);
    expect(page.body).toMatchObject({ limit: 2, offset: 1 });
    expect(page.body.jobs.map((j: { id: number }) => j.id)).toEqual([ids[3], ids[2]]);
  });

  test('limit above 500 is lowered to 500', async () => {
    const res = await ctx.as.alice.get('/jobs?limit=5000').expect(200);
    expect(res.body.limit).toBe(500);
  });

  test.each([
    'limit=abc',
    'limit=-1',
    'limit=0',
    'limit=1.5',
    'offset=-1',
    'offset=x',
    'status=done',
    'limit=1&limit=2',
  ])('?%s is 400 invalid_query', async (query) => {
    const res = await ctx.as.alice.get(`/jobs?${query}`).expect(400);
    expect(res.body.error.code).toBe('invalid_query');
  });

  test('no session: 401', async () => {
    await ctx.api.agent().get('/jobs').expect(401);
  });
});

describe('GET /jobs/:id', () => {
  test('the owner and admins see the job with every column', async () => {
    const id = await createJob(ctx.as.alice);
    const res = await ctx.as.alice.get(`/jobs/${id}`).expect(200);
    expect(res.body).toMatchObject({
      id,
      task: 'greet',
      params: { name: 'Ann' },
      command: "echo 'hello Ann'",
      status: 'pending',
      createdBy: 'alice',
      priority: 0,
      exitCode: null,
      signal: null,
      error: null,
      startedAt: null,
      finishedAt: null,
      cancelRequestedAt: null,
      cancelledBy: null,
    });
    expect(new Date(res.body.createdAt).getTime()).not.toBeNaN();
    expect(new Date(res.body.runAt).getTime()).not.toBeNaN();
    await ctx.as.root.get(`/jobs/${id}`).expect(200);
  });

  test('outputLines: how many output rows the job has (0 without any); only on the single-job read', async () => {
    const id = await createJob(ctx.as.alice);
    expect((await ctx.as.alice.get(`/jobs/${id}`).expect(200)).body.outputLines).toBe(0);
    const other = await createJob(ctx.as.alice);
    await insertOutput(ctx.db, other, ['not', 'this', 'job'], 1);
    const lines = Array.from({ length: 1200 }, (_, i) => `line ${i + 1}`);
    for (let i = 0; i < lines.length; i += 300) await insertOutput(ctx.db, id, lines.slice(i, i + 300), i + 1);
    expect((await ctx.as.alice.get(`/jobs/${id}`).expect(200)).body.outputLines).toBe(1200);
    expect((await ctx.as.root.get(`/jobs/${other}`).expect(200)).body.outputLines).toBe(3);
    // The same numbering as /status's offset: the last row is at offset outputLines - 1.
    const [last] = (await ctx.as.alice.get(`/jobs/${id}/status?offset=1199`).expect(200)).body;
    expect(last.output).toBe('line 1200');
    const list = await ctx.as.alice.get('/jobs').expect(200);
    expect(list.body.jobs).toHaveLength(2);
    for (const job of list.body.jobs) expect(job).not.toHaveProperty('outputLines');
  });

  test("another user's job is 404 not_found, exactly like a missing one", async () => {
    const id = await createJob(ctx.as.alice);
    const other = await ctx.as.bob.get(`/jobs/${id}`).expect(404);
    const missing = await ctx.as.bob.get(`/jobs/${id + 1000}`).expect(404);
    expect(other.body.error.code).toBe('not_found');
    expect(other.body).toEqual({ error: { code: 'not_found', message: `no job ${id}` } });
    expect(missing.body).toEqual({ error: { code: 'not_found', message: `no job ${id + 1000}` } });
  });

  test('a createdBy NULL job is visible to admins only', async () => {
    const { id } = await ctx.api.queue.enqueue({
      task: 'greet',
      params: { name: 'X' },
      command: 'echo',
      createdBy: null,
    });
    await ctx.as.alice.get(`/jobs/${id}`).expect(404);
    expect((await ctx.as.root.get(`/jobs/${id}`).expect(200)).body.createdBy).toBeNull();
  });

  test.each(['1.5', '-1', 'abc', '1e3', '0x10'])('id %s is 400 invalid_id', async (id) => {
    const res = await ctx.as.alice.get(`/jobs/${id}`).expect(400);
    expect(res.body.error.code).toBe('invalid_id');
  });

  test('a path that does not decode is 400, not a 500', async () => {
    const res = await ctx.as.alice.get('/jobs/%E0%A4%A').expect(400);
    expect(res.body.error.code).toBe('bad_request');
  });

  test('no session: 401 (before the id is looked at)', async () => {
    await ctx.api.agent().get('/jobs/abc').expect(401);
  });
});

describe('GET /jobs/:id/status', () => {
  test('rows {id, jobId, stream, output, createdAt} in output order', async () => {
    const id = await createJob(ctx.as.alice);
    await insertOutput(ctx.db, id, ['one', 'two', 'three', 'four', 'five'], 1);
    const res = await ctx.as.alice.get(`/jobs/${id}/status`).expect(200);
    expect(res.body.map((r: { output: string }) => r.output)).toEqual(['one', 'two', 'three', 'four', 'five']);
    expect(Object.keys(res.body[0]).sort()).toEqual(['createdAt', 'id', 'jobId', 'output', 'stream']);
    expect(res.body[0]).toMatchObject({ jobId: id, stream: 'stdout' });
    expect(res.body[4].stream).toBe('stderr');
    for (const row of res.body) expect(typeof row.id).toBe('number');
    const ids = res.body.map((r: { id: number }) => r.id);
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
  });

  test('offset, limit and afterId page through the rows', async () => {
    const id = await createJob(ctx.as.alice);
    await insertOutput(ctx.db, id, ['a', 'b', 'c', 'd', 'e', 'f'], 1);
    const all = (await ctx.as.alice.get(`/jobs/${id}/status`).expect(200)).body as { id: number; output: string }[];
    const page = await ctx.as.alice.get(`/jobs/${id}/status?offset=2&limit=2`).expect(200);
    expect(page.body.map((r: { output: string }) => r.output)).toEqual(['c', 'd']);
    const after = await ctx.as.alice.get(`/jobs/${id}/status?afterId=${all[3].id}`).expect(200);
    expect(after.body.map((r: { output: string }) => r.output)).toEqual(['e', 'f']);
    const both = await ctx.as.alice.get(`/jobs/${id}/status?afterId=${all[1].id}&limit=1`).expect(200);
    expect(both.body.map((r: { output: string }) => r.output)).toEqual(['c']);
  });

  test('limit defaults to 1000 and limit=5000 returns at most 1000 rows', async () => {
    const id = await createJob(ctx.as.alice);
    const lines = Array.from({ length: 1200 }, (_, i) => `line ${i + 1}`);
    for (let i = 0; i < lines.length; i += 300) await insertOutput(ctx.db, id, lines.slice(i, i + 300), i + 1);
    const capped = await ctx.as.alice.get(`/jobs/${id}/status?limit=5000`).expect(200);
    expect(capped.body).toHaveLength(1000);
    expect(capped.body[999].output).toBe('line 1000');
    expect((await ctx.as.alice.get(`/jobs/${id}/status`).expect(200)).body).toHaveLength(1000);
    const rest = await ctx.as.alice.get(`/jobs/${id}/status?afterId=${capped.body[999].id}&limit=5000`).expect(200);
    expect(rest.body).toHaveLength(200);
    expect(rest.body[0].output).toBe('line 1001');
  });

  test.each(['offset=-1', 'limit=abc', 'limit=0', 'afterId=-5', 'afterId=1.5', 'offset=1&offset=2'])(
    '?%s is 400 invalid_query',
    async (query) => {
      const id = await createJob(ctx.as.alice);
      const res = await ctx.as.alice.get(`/jobs/${id}/status?${query}`).expect(400);
      expect(res.body.error.code).toBe('invalid_query');
    },
  );

  test("another user's job: 404, no rows", async () => {
    const id = await createJob(ctx.as.alice);
    await insertOutput(ctx.db, id, ['secret'], 1);
    const res = await ctx.as.bob.get(`/jobs/${id}/status`).expect(404);
    expect(res.body.error.code).toBe('not_found');
    expect(JSON.stringify(res.body)).not.toContain('secret');
    await ctx.as.root.get(`/jobs/${id}/status`).expect(200);
    await ctx.api.agent().get(`/jobs/${id}/status`).expect(401);
    await ctx.as.alice.get('/jobs/1.5/status').expect(400);
  });
});

describe('POST /jobs/:id/cancel', () => {
  function cancel(agent: Agent, id: number | string) {
    return post(agent, `/jobs/${id}/cancel`).set('Content-Type', 'application/json');
  }

  test('a pending job is cancelled at once: 200 {id, status: cancelled}', async () => {
    const id = await createJob(ctx.as.alice);
    const res = await cancel(ctx.as.alice, id).expect(200);
    expect(res.body).toEqual({ id, status: 'cancelled' });
    const job = await ctx.db.models.Job.findByPk(id);
    expect(job).toMatchObject({ status: 'cancelled', cancelledBy: 'alice', error: 'cancelled' });
    expect(job!.finishedAt).toBeInstanceOf(Date);
  });

  test('a running job gets a cancel request: 200 {id, status: running}', async () => {
    const id = await createJob(ctx.as.alice);
    await sqlOf(ctx.db).query("UPDATE Jobs SET status = 'running', runnerId = 'r1' WHERE id = ?", {
      replacements: [id],
    });
    const res = await cancel(ctx.as.alice, id).send({}).expect(200);
    expect(res.body).toEqual({ id, status: 'running' });
    const job = await ctx.db.models.Job.findByPk(id);
    expect(job!.cancelRequestedAt).toBeInstanceOf(Date);
    expect(job!.cancelledBy).toBe('alice');
  });

  test('a finished job: 409 already_finished', async () => {
    const id = await createJob(ctx.as.alice);
    await setStatus(ctx.db, id, 'success', { exitCode: 0 });
    const res = await cancel(ctx.as.alice, id).expect(409);
    expect(res.body.error.code).toBe('already_finished');
  });

  test("another user's job: 404 and untouched; an admin may cancel it", async () => {
    const id = await createJob(ctx.as.alice);
    const res = await cancel(ctx.as.bob, id).expect(404);
    expect(res.body.error.code).toBe('not_found');
    expect((await ctx.db.models.Job.findByPk(id))!.status).toBe('pending');
    await cancel(ctx.as.bob, id + 1000).expect(404);
    expect((await cancel(ctx.as.root, id).expect(200)).body).toEqual({ id, status: 'cancelled' });
    expect((await ctx.db.models.Job.findByPk(id))!.cancelledBy).toBe('root');
  });

  test('a createdBy NULL job can be cancelled by admins only', async () => {
    const { id } = await ctx.api.queue.enqueue({
      task: 'greet',
      params: { name: 'X' },
      command: 'echo',
      createdBy: null,
    });
    await cancel(ctx.as.alice, id).expect(404);
    await cancel(ctx.as.root, id).expect(200);
  });

  test('cookie writes need JSON and the same origin; bearer writes need neither', async () => {
    const id = await createJob(ctx.as.alice);
    await post(ctx.as.alice, `/jobs/${id}/cancel`).expect(415);
    await post(ctx.as.alice, `/jobs/${id}/cancel`).type('form').send('x=1').expect(415);
    await ctx.as.alice.post(`/jobs/${id}/cancel`).set('Origin', 'https://evil.example').send({}).expect(403);
    await ctx.as.alice.post(`/jobs/${id}/cancel`).send({}).expect(403);
    expect((await ctx.db.models.Job.findByPk(id))!.status).toBe('pending');
    const { token } = await createApiToken(ctx.db, 'alice', 'ci');
    await ctx.api.agent().post(`/jobs/${id}/cancel`).set('Authorization', `Bearer ${token}`).expect(200);
  });

  test('bad ids, unexpected fields and no session are refused', async () => {
    const id = await createJob(ctx.as.alice);
    expect((await cancel(ctx.as.alice, '1.5').send({}).expect(400)).body.error.code).toBe('invalid_id');
    expect((await cancel(ctx.as.alice, '-1').send({}).expect(400)).body.error.code).toBe('invalid_id');
    expect((await cancel(ctx.as.alice, id).send({ force: true }).expect(400)).body.error.code).toBe('unexpected_field');
    await ctx.api.agent().post(`/jobs/${id}/cancel`).set('Origin', ctx.api.origin).send({}).expect(401);
    expect((await ctx.db.models.Job.findByPk(id))!.status).toBe('pending');
  });
});

describe('createJobsRouter mounted in the container-creator', () => {
  /** A host app whose own login has put `user` and `isAdmin` in the session (here: from test headers). */
  function hostApp() {
    const host = express();
    host.use((req, _res, next) => {
      const user = req.headers['x-host-user'];
      if (typeof user === 'string') {
        Object.assign(req, { session: { user, isAdmin: req.headers['x-host-admin'] === 'yes' } });
      }
      next();
    });
    host.use(
      '/jobs',
      createJobsRouter({ db: ctx.db, queue: ctx.api.queue, catalog: new TaskCatalog(TASKS_FILE), log: silentLogger }),
    );
    return host;
  }

  test('acts as the session user of the host app, with the same checks and JSON errors', async () => {
    const host = hostApp();
    const created = await request(host)
      .post('/jobs')
      .set('X-Host-User', 'dora')
      .set('Sec-Fetch-Site', 'same-origin')
      .send({ task: 'greet', params: { name: 'Ann' } })
      .expect(201);
    expect(created.headers.location).toBe(`/jobs/${created.body.id}`);
    expect((await ctx.db.models.Job.findByPk(created.body.id))!.createdBy).toBe('dora');
    await request(host).get(`/jobs/${created.body.id}`).set('X-Host-User', 'dora').expect(200);
    const other = await request(host).get(`/jobs/${created.body.id}`).set('X-Host-User', 'eve').expect(404);
    expect(other.body.error.code).toBe('not_found');
    await request(host)
      .get(`/jobs/${created.body.id}`)
      .set('X-Host-User', 'eve')
      .set('X-Host-Admin', 'yes')
      .expect(200);
    const anonymous = await request(host).get('/jobs').expect(401);
    expect(anonymous.body.error.code).toBe('unauthenticated');
    await request(host)
      .post('/jobs')
      .set('X-Host-User', 'dora')
      .set('Origin', 'https://evil.example')
      .send({ task: 'greet', params: { name: 'Ann' } })
      .expect(403);
    const adminOnly = await request(host)
      .post('/jobs')
      .set('X-Host-User', 'dora')
      .set('Sec-Fetch-Site', 'same-origin')
      .send({ task: 'rebuild-cluster' })
      .expect(403);
    expect(adminOnly.body.error.code).toBe('admin_only');
    expect((await request(host).get('/jobs/x').set('X-Host-User', 'dora').expect(400)).body.error.code).toBe(
      'invalid_id',
    );
    expect(await count(ctx.db, 'Jobs')).toBe(1);
  });
});
