// POST /jobs with an Idempotency-Key (README, "Idempotency keys"): the first request makes the job, a
// repeat replays it (also when many race), other params conflict, keys are per user, bad keys are 400.
import { count, useApi, type Agent } from './helpers/api';
import { sqlOf } from './helpers/database';

const ctx = useApi({ users: { alice: false, bob: false, root: true } });

const GREET = { task: 'greet', params: { name: 'Ann', times: 2, loud: true } };

function postJob(agent: Agent, key: string | null, body: object = GREET) {
  const req = agent.post('/jobs').set('Origin', ctx.api.origin);
  return (key === null ? req : req.set('Idempotency-Key', key)).send(body);
}

/** Opens the pool's connections, as on a busy server: racers then start together, not a connect apart. */
async function warmPool(): Promise<void> {
  await Promise.all(Array.from({ length: 20 }, () => sqlOf(ctx.db).query('SELECT 1')));
}

async function jobIds(): Promise<number[]> {
  return (await ctx.db.models.Job.findAll({ order: [['id', 'ASC']] })).map((job) => job.id);
}

test('20 identical requests at once make exactly one job: one 201, the rest 200 replayed, all the same id', async () => {
  await warmPool();
  const responses = await Promise.all(Array.from({ length: 20 }, () => postJob(ctx.as.alice, 'order-4711')));

  expect(responses.map((res) => res.status).sort()).toEqual([...Array(19).fill(200), 201]);
  const created = responses.filter((res) => res.status === 201);
  const replayed = responses.filter((res) => res.status === 200);
  const { id } = created[0].body;
  expect(created[0].headers['idempotent-replayed']).toBeUndefined();
  for (const res of replayed) {
    expect(res.headers['idempotent-replayed']).toBe('true');
    expect(res.body).toEqual({ id, status: 'pending' });
  }
  expect(await jobIds()).toEqual([id]);
});

test('a later repeat answers 200 with the same id and the job’s status, and writes nothing', async () => {
  const first = await postJob(ctx.as.alice, 'k1').expect(201);
  expect(first.body).toEqual({ id: expect.any(Number), status: 'pending' });

  const again = await postJob(ctx.as.alice, 'k1').expect(200);

  expect(again.headers['idempotent-replayed']).toBe('true');
  expect(again.body).toEqual(first.body);
  expect(await jobIds()).toEqual([first.body.id]);
});

test('params given in another key order are the same request', async () => {
  const first = await postJob(ctx.as.alice, 'k2', {
    task: 'greet',
    params: { name: 'Ann', times: 2, loud: true },
  }).expect(201);

  const again = await postJob(ctx.as.alice, 'k2', {
    params: { loud: true, times: 2, name: 'Ann' },
    task: 'greet',
  }).expect(200);

  expect(again.body.id).toBe(first.body.id);
  expect(await count(ctx.db, 'Jobs')).toBe(1);
});

test.each([
  ['other params', { task: 'greet', params: { name: 'Ann', times: 3, loud: true } }],
  ['a param left out', { task: 'greet', params: { name: 'Ann', times: 2 } }],
  ['another task', { task: 'rebuild-cluster', params: {} }],
])('the same key with %s: 409 idempotency_conflict, nothing written', async (_what, body) => {
  const first = await postJob(ctx.as.root, 'k3').expect(201);

  const res = await postJob(ctx.as.root, 'k3', body).expect(409);

  expect(res.body.error.code).toBe('idempotency_conflict');
  expect(await jobIds()).toEqual([first.body.id]);
  const job = await ctx.db.models.Job.findByPk(first.body.id);
  expect(job).toMatchObject({ task: 'greet', params: GREET.params, status: 'pending', createdBy: 'root' });
});

test('a key is scoped to its user: the same key from another user makes another job', async () => {
  const alices = await postJob(ctx.as.alice, 'shared-key').expect(201);
  const bobs = await postJob(ctx.as.bob, 'shared-key').expect(201);

  expect(bobs.body.id).not.toBe(alices.body.id);
  expect(await ctx.db.models.Job.findByPk(bobs.body.id)).toMatchObject({ createdBy: 'bob' });
  // Each replays their own.
  expect((await postJob(ctx.as.alice, 'shared-key').expect(200)).body.id).toBe(alices.body.id);
  expect((await postJob(ctx.as.bob, 'shared-key').expect(200)).body.id).toBe(bobs.body.id);
  expect(await count(ctx.db, 'Jobs')).toBe(2);
});

test('without a key, identical requests make a job each', async () => {
  await postJob(ctx.as.alice, null).expect(201);
  await postJob(ctx.as.alice, null).expect(201);
  expect(await count(ctx.db, 'Jobs')).toBe(2);
});

test.each([
  ['empty', ''],
  ['256 characters', 'k'.repeat(256)],
  ['a non-ASCII character', 'clé'],
  ['a control character (tab)', 'a\tb'],
])('a malformed key (%s): 400 invalid_idempotency_key, nothing written', async (_what, key) => {
  const res = await postJob(ctx.as.alice, key).expect(400);
  expect(res.body.error.code).toBe('invalid_idempotency_key');
  expect(await count(ctx.db, 'Jobs')).toBe(0);
});

test('a key of 1 and of 255 printable characters is accepted', async () => {
  await postJob(ctx.as.alice, '~').expect(201);
  await postJob(ctx.as.alice, `${'x'.repeat(250)} !"#$`).expect(201);
  expect(await count(ctx.db, 'Jobs')).toBe(2);
});

test('a request that fails its checks uses up no key: the same key works once the request is right', async () => {
  await postJob(ctx.as.alice, 'k4', { task: 'greet', params: { name: 'Ann', times: 99 } }).expect(400);
  expect(await count(ctx.db, 'Jobs')).toBe(0);

  await postJob(ctx.as.alice, 'k4').expect(201);
});

test('20 enqueues racing with one key straight into the queue (no HTTP to spread them): one job, no error', async () => {
  const job = { task: 'greet', params: { name: 'Ann' }, command: "echo 'hello Ann'", createdBy: 'alice' };
  await warmPool();

  const results = await Promise.allSettled(
    Array.from({ length: 20 }, () => ctx.api.queue.enqueue({ ...job, idempotencyKey: 'burst' })),
  );

  const errors = results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason?.message ?? r.reason)] : []));
  expect(errors).toEqual([]);
  const enqueued = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  expect(enqueued.filter((e) => !e.replayed)).toHaveLength(1);
  expect(new Set(enqueued.map((e) => e.id)).size).toBe(1);
  expect(await count(ctx.db, 'Jobs')).toBe(1);
});
