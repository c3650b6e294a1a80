// POST /jobs under JOB_USER_MAX_PENDING (SPEC §11), and the `quota` waiting reason under
// JOB_USER_MAX_RUNNING, through the API as users meet them.
import { count, setStatus, useApi, type Agent } from './helpers/api';

const ctx = useApi({
  users: { alice: false, bob: false },
  env: { JOB_USER_MAX_PENDING: '2', JOB_USER_MAX_RUNNING: '1' },
});

function postJob(agent: Agent, name = 'Ann') {
  return agent.post('/jobs').set('Origin', ctx.api.origin).send({ task: 'greet', params: { name } });
}

test('a POST beyond JOB_USER_MAX_PENDING is 429 quota_exceeded and writes nothing; others are not held back', async () => {
  await postJob(ctx.as.bob).expect(201);
  await postJob(ctx.as.bob).expect(201);
  const refused = await postJob(ctx.as.bob).expect(429);
  expect(refused.body.error).toMatchObject({ code: 'quota_exceeded' });
  expect(refused.body.error.message).toMatch(/2 pending/);
  expect(await count(ctx.db, 'Jobs')).toBe(2);
  await postJob(ctx.as.alice).expect(201);
});

test('a job whose owner runs JOB_USER_MAX_RUNNING jobs already says it waits for its quota', async () => {
  const first = (await postJob(ctx.as.bob).expect(201)).body.id as number;
  const second = (await postJob(ctx.as.bob).expect(201)).body.id as number;
  await setStatus(ctx.db, first, 'running');
  expect((await ctx.as.bob.get(`/jobs/${second}`).expect(200)).body.waiting).toBe('quota');
  await setStatus(ctx.db, first, 'success');
  expect((await ctx.as.bob.get(`/jobs/${second}`).expect(200)).body.waiting).toBe('slot');
});
