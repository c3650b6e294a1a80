// POST /jobs with runAt, delaySec and priority (README, "Delay and priority"): when a job is due on the
// database clock, what GET /jobs/:id says about it, who may raise a priority, and that bad input writes nothing.
import { count, useApi, type Agent } from './helpers/api';
import { dbNow, toMs } from './queue/harness';

const ctx = useApi({ users: { alice: false, root: true } });

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function postJob(agent: Agent, options: Record<string, unknown>) {
  return agent
    .post('/jobs')
    .set('Origin', ctx.api.origin)
    .send({ task: 'greet', params: { name: 'Ann' }, ...options });
}

/** `ms` as RFC 3339 in the zone `offsetMinutes` east of UTC, e.g. 2026-12-24T18:00:00.250+05:30. */
function rfc3339(ms: number, offsetMinutes: number): string {
  const local = new Date(ms + offsetMinutes * 60_000).toISOString().slice(0, 23);
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  const hhmm = `${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
  return `${local}${sign}${hhmm}`;
}

async function storedRunAt(id: number): Promise<number> {
  const job = await ctx.db.models.Job.findByPk(id);
  return toMs(job!.runAt) as number;
}

async function expectBadRequest(
  agent: Agent,
  options: Record<string, unknown>,
  status: number,
  code: string,
  field?: string,
): Promise<void> {
  const res = await postJob(agent, options).expect(status);
  expect(res.body.error).toMatchObject({ code, ...(field ? { field } : {}) });
  expect(await count(ctx.db, 'Jobs')).toBe(0);
}

describe('runAt', () => {
  test('a future time with an offset: runAt is that instant, shown in UTC, and the job waits for it (run_at)', async () => {
    const at = Math.floor((await dbNow(ctx.db)) / 1000) * 1000 + 2 * HOUR + 250;

    const res = await postJob(ctx.as.alice, { runAt: rfc3339(at, 5 * 60 + 30) }).expect(201);

    expect(await storedRunAt(res.body.id)).toBe(at);
    const job = (await ctx.as.alice.get(`/jobs/${res.body.id}`).expect(200)).body;
    expect(job.runAt).toBe(new Date(at).toISOString());
    expect(job.waiting).toBe('run_at');
    expect(await ctx.api.queue.claimDueJobs('r1', 10)).toEqual([]);
  });

  test('a negative offset and a lowercase separator and Z are RFC 3339 too', async () => {
    const at = Math.floor((await dbNow(ctx.db)) / 1000) * 1000 + DAY;
    const a = await postJob(ctx.as.alice, { runAt: rfc3339(at, -7 * 60) }).expect(201);
    const b = await postJob(ctx.as.alice, { runAt: new Date(at).toISOString().replace('T', 't') }).expect(201);
    expect(await storedRunAt(a.body.id)).toBe(at);
    expect(await storedRunAt(b.body.id)).toBe(at);
  });

  test('a past time means now: due at once on the database clock (waiting: slot)', async () => {
    const before = await dbNow(ctx.db);
    const res = await postJob(ctx.as.alice, { runAt: rfc3339(before - 3 * DAY, -7 * 60) }).expect(201);
    const after = await dbNow(ctx.db);

    const runAt = await storedRunAt(res.body.id);
    expect(runAt).toBeGreaterThanOrEqual(before);
    expect(runAt).toBeLessThanOrEqual(after);
    expect((await ctx.as.alice.get(`/jobs/${res.body.id}`).expect(200)).body.waiting).toBe('slot');
    expect((await ctx.api.queue.claimDueJobs('r1', 10)).map((j) => j.id)).toEqual([res.body.id]);
  });

  test('up to 366 days ahead is accepted', async () => {
    await postJob(ctx.as.alice, { runAt: rfc3339(Date.now() + 365 * DAY, 60) }).expect(201);
  });

  test.each([
    ['over 366 days ahead', () => rfc3339(Date.now() + 367 * DAY, 0)],
    ['without an offset', () => new Date(Date.now() + HOUR).toISOString().slice(0, 19)],
    ['a date alone', () => new Date(Date.now() + DAY).toISOString().slice(0, 10)],
    ['words', () => 'tomorrow'],
    ['epoch milliseconds', () => Date.now() + HOUR],
    ['an impossible day (February 30th)', () => `${new Date().getUTCFullYear() + 1}-02-30T10:00:00Z`],
    ['hour 24', () => `${new Date().getUTCFullYear() + 1}-01-10T24:00:00Z`],
  ])('%s: 400 invalid_field (runAt), nothing written', async (_what, runAt) => {
    await expectBadRequest(ctx.as.alice, { runAt: runAt() }, 400, 'invalid_field', 'runAt');
  });

  test('runAt and delaySec together: 400 invalid_field, nothing written', async () => {
    await expectBadRequest(ctx.as.alice, { runAt: rfc3339(Date.now() + HOUR, 0), delaySec: 60 }, 400, 'invalid_field');
  });
});

describe('delaySec', () => {
  test('delaySec seconds from now on the database clock; the job waits for it (run_at)', async () => {
    const before = await dbNow(ctx.db);
    const res = await postJob(ctx.as.alice, { delaySec: 3600 }).expect(201);
    const after = await dbNow(ctx.db);

    const runAt = await storedRunAt(res.body.id);
    expect(runAt).toBeGreaterThanOrEqual(before + HOUR);
    expect(runAt).toBeLessThanOrEqual(after + HOUR);
    expect((await ctx.as.alice.get(`/jobs/${res.body.id}`).expect(200)).body.waiting).toBe('run_at');
    expect(await ctx.api.queue.claimDueJobs('r1', 10)).toEqual([]);
  });

  test('0 is due now; the maximum, 31,622,400 (366 days), is accepted', async () => {
    const before = await dbNow(ctx.db);
    const now = await postJob(ctx.as.alice, { delaySec: 0 }).expect(201);
    const after = await dbNow(ctx.db);
    const max = await postJob(ctx.as.alice, { delaySec: 31_622_400 }).expect(201);

    expect(await storedRunAt(now.body.id)).toBeGreaterThanOrEqual(before);
    expect(await storedRunAt(now.body.id)).toBeLessThanOrEqual(after);
    expect(await storedRunAt(max.body.id)).toBeGreaterThanOrEqual(before + 366 * DAY);
    expect((await ctx.api.queue.claimDueJobs('r1', 10)).map((j) => j.id)).toEqual([now.body.id]);
  });

  test.each([
    ['over the maximum', 31_622_401],
    ['negative', -1],
    ['fractional', 1.5],
    ['a string', '60'],
  ])('%s: 400 invalid_field (delaySec), nothing written', async (_what, delaySec) => {
    await expectBadRequest(ctx.as.alice, { delaySec }, 400, 'invalid_field', 'delaySec');
  });
});

describe('priority', () => {
  test('0 by default; a user may lower it down to -100; an admin may raise it up to 100', async () => {
    const plain = await postJob(ctx.as.alice, {}).expect(201);
    const low = await postJob(ctx.as.alice, { priority: -100 }).expect(201);
    const high = await postJob(ctx.as.root, { priority: 100 }).expect(201);

    for (const [res, priority] of [
      [plain, 0],
      [low, -100],
      [high, 100],
    ] as const) {
      expect((await ctx.as.root.get(`/jobs/${res.body.id}`).expect(200)).body.priority).toBe(priority);
    }
    // Priority orders the claim.
    expect((await ctx.api.queue.claimDueJobs('r1', 10)).map((j) => j.id)).toEqual([
      high.body.id,
      plain.body.id,
      low.body.id,
    ]);
  });

  test('a positive priority from a non-admin: 403 admin_only, nothing written', async () => {
    await expectBadRequest(ctx.as.alice, { priority: 1 }, 403, 'admin_only');
  });

  test.each([
    ['above 100', 101],
    ['below -100', -101],
    ['fractional', 2.5],
    ['a string', '5'],
  ])('%s: 400 invalid_field (priority), nothing written', async (_what, priority) => {
    await expectBadRequest(ctx.as.root, { priority }, 400, 'invalid_field', 'priority');
  });
});
