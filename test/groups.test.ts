// Serial groups (README, "Serial groups"), in-process: one job of a group at a time in id order whatever
// the priorities, why a pending job waits, `groupOnFailure`, /groups for admins, and a group is never left
// held by a job that was cancelled, reaped, finished by a stale runner, or inserted without its group.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Outcome } from '../models/queue';
import { useApi, type Agent } from './helpers/api';
import { insertJob, makeRunner, RUNNER_TASKS_FILE, runOnce, waitFor } from './helpers/runner';
import { jobRow, setJobTime } from './queue/harness';

const ctx = useApi({ users: { alice: false, root: true }, tasksFile: RUNNER_TASKS_FILE });

const SUCCESS: Outcome = { status: 'success', exitCode: 0, signal: null, error: null };
// Jobs these tests claim by hand must not be reaped by the runner under test while it drains.
const LONG_LEASE = { leaseMs: 600_000 };

let tmp: string;
let files = 0;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cj-groups-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A fresh file for `step` jobs to append their ids to: the order they ran in. */
function ranFile(): string {
  return path.join(tmp, `ran-${++files}`);
}

const ranIds = (file: string): number[] =>
  fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map(Number) : [];

function post(agent: Agent, url: string) {
  return agent.post(url).set('Origin', ctx.api.origin);
}

interface StepOptions {
  task?: 'step' | 'step-block';
  code?: number;
  sleep?: number;
  priority?: number;
  delaySec?: number;
  as?: Agent;
}

/** A `step` job (group res:{res}, or blk:{res} for step-block) through POST /jobs; its id. */
async function step(res: number, file: string, options: StepOptions = {}): Promise<number> {
  const { task = 'step', code, sleep, priority, delaySec } = options;
  const agent = options.as ?? (priority !== undefined && priority > 0 ? ctx.as.root : ctx.as.alice);
  const params = { res, file, ...(code === undefined ? {} : { code }), ...(sleep === undefined ? {} : { sleep }) };
  const response = await post(agent, '/jobs').send({ task, params, priority, delaySec }).expect(201);
  return response.body.id;
}

async function getJob(id: number) {
  return (await ctx.as.root.get(`/jobs/${id}`).expect(200)).body;
}

async function waiting(id: number): Promise<string | null> {
  return (await getJob(id)).waiting;
}

async function groups(state?: 'active' | 'blocked') {
  return (await ctx.as.root.get(state ? `/groups?state=${state}` : '/groups').expect(200)).body.groups;
}

function release(key: string, agent: Agent = ctx.as.root) {
  return post(agent, `/groups/${encodeURIComponent(key)}/release`).send({});
}

const drain = (concurrency = 4) => runOnce(ctx.db, { config: { concurrency, ...LONG_LEASE } });

async function statuses(ids: number[]): Promise<string[]> {
  return Promise.all(ids.map(async (id) => (await jobRow(ctx.db, id)).status));
}

const claimedIds = async (runnerId: string) => (await ctx.api.queue.claimDueJobs(runnerId, 10)).map((j) => j.id);

test('POST /jobs renders the template’s group into groupKey; a task without a group has none', async () => {
  const grouped = await step(42, ranFile());
  const blocking = await step(42, ranFile(), { task: 'step-block' });
  const loose = (await post(ctx.as.alice, '/jobs').send({ task: 'hello', params: {} }).expect(201)).body.id;

  expect((await getJob(grouped)).groupKey).toBe('res:42');
  expect((await getJob(blocking)).groupKey).toBe('blk:42');
  expect((await getJob(loose)).groupKey).toBeNull();
});

test('a later job never overtakes an earlier pending one of its group, whatever its priority', async () => {
  const [one, two] = [ranFile(), ranFile()];
  const j1 = await step(1, one, { priority: -100 });
  const j2 = await step(1, one, { priority: 100 });
  const other = await step(2, two, { priority: 50 });
  const j3 = await step(1, one, { priority: 99 });
  const j4 = await step(1, one);

  await drain();

  expect(await statuses([j1, j2, j3, j4, other])).toEqual(Array(5).fill('success'));
  expect(ranIds(one)).toEqual([j1, j2, j3, j4]);
  // One at a time on the database clock: each started after the one before it had finished.
  const rows = await Promise.all([j1, j2, j3, j4].map((id) => jobRow(ctx.db, id)));
  for (let i = 1; i < rows.length; i++) expect(rows[i].startedAt).toBeGreaterThanOrEqual(rows[i - 1].finishedAt!);
});

describe('waiting: why a pending job has not started', () => {
  test('run_at (not due), group (behind a pending or running head), slot (due, no runner took it yet)', async () => {
    const file = ranFile();
    const delayedHead = await step(1, file, { delaySec: 3600 });
    const behindDelayed = await step(1, file);
    const head = await step(2, file);
    const behindHead = await step(2, file, { priority: 100 });
    const loose = (await post(ctx.as.alice, '/jobs').send({ task: 'hello', params: {} }).expect(201)).body.id;

    expect(await waiting(delayedHead)).toBe('run_at');
    expect(await waiting(behindDelayed)).toBe('group');
    expect(await waiting(head)).toBe('slot');
    expect(await waiting(behindHead)).toBe('group');
    expect(await waiting(loose)).toBe('slot');

    expect((await claimedIds('r1')).sort()).toEqual([head, loose].sort());
    expect((await getJob(head)).status).toBe('running');
    expect(await waiting(head)).toBeNull();
    expect(await waiting(behindHead)).toBe('group');
    expect(await waiting(behindDelayed)).toBe('group');
  });

  test('group_blocked: behind a failure in a `block` group', async () => {
    const file = ranFile();
    const failed = await step(1, file, { task: 'step-block', code: 3 });
    const next = await step(1, file, { task: 'step-block' });

    await drain();

    expect(await statuses([failed, next])).toEqual(['failure', 'pending']);
    expect(await waiting(next)).toBe('group_blocked');
  });
});

describe('groupOnFailure', () => {
  test('block: the group holds after a failure, /groups shows it, and an admin’s release lets the rest run', async () => {
    const [file, other] = [ranFile(), ranFile()];
    const j1 = await step(7, file, { task: 'step-block', code: 1 });
    const j2 = await step(7, file, { task: 'step-block' });
    const unrelated = await step(8, other, { task: 'step-block' });
    const j3 = await step(7, file, { task: 'step-block', priority: 100 });

    await drain();

    expect(await statuses([j1, j2, j3, unrelated])).toEqual(['failure', 'pending', 'pending', 'success']);
    expect(ranIds(file)).toEqual([j1]);
    expect(await waiting(j2)).toBe('group_blocked');
    expect(await waiting(j3)).toBe('group_blocked');
    const blocked = { key: 'blk:7', state: 'blocked', runningJobId: null, pendingJobs: 2, blockedByJobId: j1 };
    expect(await groups('blocked')).toEqual([blocked]);
    expect(await groups('active')).toEqual([]);
    expect(await groups()).toEqual([blocked]);

    // Nothing gets past the block: not another drain, not a job enqueued now.
    const j4 = await step(7, file, { task: 'step-block' });
    expect(await waiting(j4)).toBe('group_blocked');
    await drain();
    expect(ranIds(file)).toEqual([j1]);
    expect(await groups('blocked')).toEqual([{ ...blocked, pendingJobs: 3 }]);

    await release('blk:7').expect(200);

    expect(await groups('blocked')).toEqual([]);
    await drain();
    expect(await statuses([j2, j3, j4])).toEqual(['success', 'success', 'success']);
    expect(ranIds(file)).toEqual([j1, j2, j3, j4]);
    expect(await groups()).toEqual([]);
  });

  test('continue: the next job starts after a failure', async () => {
    const file = ranFile();
    const j1 = await step(3, file, { code: 2 });
    const j2 = await step(3, file, { code: 1 });
    const j3 = await step(3, file);

    await drain();

    expect(await statuses([j1, j2, j3])).toEqual(['failure', 'failure', 'success']);
    expect(ranIds(file)).toEqual([j1, j2, j3]);
    expect(await groups()).toEqual([]);
  });

  test('releasing a group that is not blocked changes nothing: its queued jobs stay behind the running head', async () => {
    const file = ranFile();
    const head = await step(4, file);
    const next = await step(4, file);
    expect(await claimedIds('r1')).toEqual([head]);

    await release('res:4').expect(200);

    expect(await claimedIds('r2')).toEqual([]);
    expect(await waiting(next)).toBe('group');
    expect(await groups('active')).toEqual([
      { key: 'res:4', state: 'active', runningJobId: head, pendingJobs: 1, blockedByJobId: null },
    ]);
  });
});

describe('a group is never left held', () => {
  test('cancelling its pending head passes the group on; cancelling a queued job does not', async () => {
    const file = ranFile();
    const j1 = await step(5, file);
    const j2 = await step(5, file);
    const j3 = await step(5, file);
    const j4 = await step(5, file);

    expect((await post(ctx.as.alice, `/jobs/${j1}/cancel`).send({}).expect(200)).body).toEqual({
      id: j1,
      status: 'cancelled',
    });
    expect(await waiting(j2)).toBe('slot');
    expect(await waiting(j3)).toBe('group');
    await post(ctx.as.alice, `/jobs/${j3}/cancel`).send({}).expect(200);
    expect(await claimedIds('r1')).toEqual([j2]);
    expect(await claimedIds('r1')).toEqual([]);
    await ctx.api.queue.finishJob({ jobId: j2, runnerId: 'r1', attempt: 1 }, SUCCESS, []);

    await drain();

    expect(await statuses([j1, j2, j3, j4])).toEqual(['cancelled', 'success', 'cancelled', 'success']);
    expect(ranIds(file)).toEqual([j4]);
    expect(await groups()).toEqual([]);
  });

  test('cancelling its running head: the runner stops it and the group passes on', async () => {
    const file = ranFile();
    const head = await step(6, file, { sleep: 300 });
    const next = await step(6, file);
    const { runner } = makeRunner(ctx.db, { once: true, config: { concurrency: 2 } });

    const ran = runner.run();
    await waitFor(() => ranIds(file).includes(head));
    expect(ranIds(file)).toEqual([head]);
    expect((await post(ctx.as.alice, `/jobs/${head}/cancel`).send({}).expect(200)).body.status).toBe('running');
    await ran;

    expect(await statuses([head, next])).toEqual(['cancelled', 'success']);
    expect(ranIds(file)).toEqual([head, next]);
  });

  test('a cancelled head is no failure: a `block` group passes on', async () => {
    const j1 = await step(17, ranFile(), { task: 'step-block' });
    const j2 = await step(17, ranFile(), { task: 'step-block' });
    const j3 = await step(17, ranFile(), { task: 'step-block' });
    expect(await claimedIds('r1')).toEqual([j1]);

    expect(await ctx.api.queue.cancelJob(j1, 'alice')).toEqual({ result: 'requested', status: 'running' });
    const cancelled: Outcome = { status: 'cancelled', exitCode: null, signal: 'SIGTERM', error: 'cancelled' };
    expect(await ctx.api.queue.finishJob({ jobId: j1, runnerId: 'r1', attempt: 1 }, cancelled, [])).toBe(true);
    expect(await waiting(j2)).toBe('slot');

    // Its pending successor cancelled in turn passes it on too.
    expect(await ctx.api.queue.cancelJob(j2, 'alice')).toEqual({ result: 'cancelled', status: 'cancelled' });
    expect(await claimedIds('r1')).toEqual([j3]);
    expect(await groups('blocked')).toEqual([]);
  });

  test('a reaped head passes a `continue` group on', async () => {
    const j1 = await step(9, ranFile());
    const j2 = await step(9, ranFile());
    expect(await claimedIds('lost-runner')).toEqual([j1]);

    await setJobTime(ctx.db, j1, 'heartbeatAt', -60_000);
    expect(await ctx.api.queue.reapExpiredLeases(2000)).toEqual([j1]);

    expect(await jobRow(ctx.db, j1)).toMatchObject({ status: 'failure', error: 'runner_lost' });
    expect(await claimedIds('r2')).toEqual([j2]);
  });

  test('a reaped head blocks a `block` group', async () => {
    const j1 = await step(9, ranFile(), { task: 'step-block' });
    const j2 = await step(9, ranFile(), { task: 'step-block' });
    expect(await claimedIds('lost-runner')).toEqual([j1]);

    await setJobTime(ctx.db, j1, 'heartbeatAt', -60_000);
    expect(await ctx.api.queue.reapExpiredLeases(2000)).toEqual([j1]);

    expect(await claimedIds('r2')).toEqual([]);
    expect(await waiting(j2)).toBe('group_blocked');
    expect(await groups('blocked')).toEqual([
      { key: 'blk:9', state: 'blocked', runningJobId: null, pendingJobs: 1, blockedByJobId: j1 },
    ]);
  });

  test('a stale runner’s finish does not release a group it no longer holds', async () => {
    const j1 = await step(10, ranFile());
    const j2 = await step(10, ranFile());
    const j3 = await step(10, ranFile());
    expect(await claimedIds('stale')).toEqual([j1]);
    await setJobTime(ctx.db, j1, 'heartbeatAt', -60_000);
    await ctx.api.queue.reapExpiredLeases(2000);
    expect(await claimedIds('fresh')).toEqual([j2]);

    // The stale runner comes back and reports its job done.
    expect(await ctx.api.queue.finishJob({ jobId: j1, runnerId: 'stale', attempt: 1 }, SUCCESS, [])).toBe(false);
    const { finished, claimed } = await ctx.api.queue.finishJobs(
      [{ fence: { jobId: j1, runnerId: 'stale', attempt: 1 }, outcome: SUCCESS, rows: [] }],
      { runnerId: 'stale', limit: 4 },
    );
    expect(finished).toEqual([false]);
    expect(claimed).toEqual([]);

    expect(await claimedIds('other')).toEqual([]);
    expect(await waiting(j3)).toBe('group');
    expect(await groups('active')).toEqual([
      { key: 'res:10', state: 'active', runningJobId: j2, pendingJobs: 1, blockedByJobId: null },
    ]);
    expect(await ctx.api.queue.finishJob({ jobId: j2, runnerId: 'fresh', attempt: 1 }, SUCCESS, [])).toBe(true);
    expect(await claimedIds('fresh')).toEqual([j3]);
  });
});

describe('a job of a grouped task inserted by plain SQL (no groupKey)', () => {
  test('joins its group when claimed and waits for the running head, then runs in its turn', async () => {
    const file = ranFile();
    const head = await step(11, file);
    expect(await claimedIds('elsewhere')).toEqual([head]);
    const plain = await insertJob(ctx.db, 'step', { res: 11, file });

    const logs = await drain();

    expect(ranIds(file)).toEqual([]);
    expect(logs.join('\n')).toMatch(new RegExp(`job ${plain}: joined its group res:11`));
    const job = await getJob(plain);
    expect(job).toMatchObject({ status: 'pending', groupKey: 'res:11', waiting: 'group', startedAt: null });

    await ctx.api.queue.finishJob({ jobId: head, runnerId: 'elsewhere', attempt: 1 }, SUCCESS, []);
    await drain();

    expect((await jobRow(ctx.db, plain)).status).toBe('success');
    expect(ranIds(file)).toEqual([plain]);
    expect(await groups()).toEqual([]);
  });

  test('runs at once when its group is idle, and holds the group while it runs', async () => {
    const file = ranFile();
    const plain = await insertJob(ctx.db, 'step', { res: 12, file });

    await drain();

    expect(await jobRow(ctx.db, plain)).toMatchObject({ status: 'success' });
    expect((await getJob(plain)).groupKey).toBe('res:12');
    expect(ranIds(file)).toEqual([plain]);
    expect(await groups()).toEqual([]);
  });

  test('waits behind a block like any job of its group', async () => {
    const file = ranFile();
    const failed = await step(18, file, { task: 'step-block', code: 1 });
    await drain();
    const plain = await insertJob(ctx.db, 'step-block', { res: 18, file });

    await drain();

    expect(await getJob(plain)).toMatchObject({ status: 'pending', groupKey: 'blk:18', waiting: 'group_blocked' });
    expect(ranIds(file)).toEqual([failed]);
    expect((await groups('blocked'))[0]).toMatchObject({ key: 'blk:18', pendingJobs: 1, blockedByJobId: failed });
  });

  test('several inserted by plain SQL into one group still run one at a time', async () => {
    const file = ranFile();
    const plain = [];
    for (let i = 0; i < 4; i++) plain.push(await insertJob(ctx.db, 'step', { res: 13, file }));

    await drain();

    expect(await statuses(plain)).toEqual(Array(4).fill('success'));
    expect([...ranIds(file)].sort()).toEqual([...plain].sort());
    const rows = (await Promise.all(plain.map((id) => jobRow(ctx.db, id)))).sort((a, b) => a.startedAt! - b.startedAt!);
    for (let i = 1; i < rows.length; i++) expect(rows[i].startedAt).toBeGreaterThanOrEqual(rows[i - 1].finishedAt!);
  });
});

describe('/groups', () => {
  test('lists a group with its head waiting for a slot, then running, and forgets it once idle', async () => {
    const file = ranFile();
    const head = await step(14, file);
    await step(14, file);
    const active = { key: 'res:14', state: 'active', blockedByJobId: null };

    expect(await groups('active')).toEqual([{ ...active, runningJobId: null, pendingJobs: 2 }]);
    expect(await claimedIds('r1')).toEqual([head]);
    expect(await groups('active')).toEqual([{ ...active, runningJobId: head, pendingJobs: 1 }]);
    expect(await groups('blocked')).toEqual([]);
    await ctx.api.queue.finishJob({ jobId: head, runnerId: 'r1', attempt: 1 }, SUCCESS, []);
    await drain();
    expect(await groups()).toEqual([]);
  });

  test('admins only: 403 for a user, 401 without one', async () => {
    await step(15, ranFile(), { task: 'step-block', code: 1 });
    await drain();

    expect((await ctx.as.alice.get('/groups').expect(403)).body.error.code).toBe('admin_only');
    expect((await release('blk:15', ctx.as.alice).expect(403)).body.error.code).toBe('admin_only');
    await ctx.api.agent().get('/groups').expect(401);
    await ctx.api.agent().post('/groups/blk%3A15/release').set('Origin', ctx.api.origin).send({}).expect(401);
    // Still blocked.
    expect((await groups('blocked')).map((g: { key: string }) => g.key)).toEqual(['blk:15']);
  });

  test('releasing an unknown group: 404; an unknown state: 400', async () => {
    expect((await release('res:999').expect(404)).body.error.code).toBe('not_found');
    await ctx.as.root.get('/groups?state=idle').expect(400);
  });
});
