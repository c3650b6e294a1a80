// GET /jobs/:id/stream (README, "HTTP API") — every row once, in order, then `end`; resumable; owner-scoped.
import { createApiToken } from '../models/users';
import {
  collectText,
  insertOutput,
  parseSse,
  setStatus,
  useApi,
  LiveStream,
  type Agent,
  type SseEvent,
} from './helpers/api';
import { sqlOf } from './helpers/database';

const ctx = useApi({ users: { alice: false, bob: false, root: true } });

function enqueue(createdBy: string | null = 'alice'): Promise<number> {
  return ctx.api.queue
    .enqueue({ task: 'greet', params: { name: 'Ann' }, command: "echo 'hello Ann'", createdBy })
    .then((job) => job.id);
}

async function readStream(agent: Agent, path: string, headers: Record<string, string> = {}) {
  const res = await agent.get(path).set(headers).buffer(true).parse(collectText).expect(200);
  expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
  return parseSse(res.body as string);
}

const outputs = (events: SseEvent[]) => events.filter((e) => e.event === 'output');
const lines = (events: SseEvent[]) => outputs(events).map((e) => JSON.parse(e.data).output as string);

/** Every output event's SSE id equals its row id, and ids strictly increase. */
function expectWellFormed(events: SseEvent[], jobId: number): void {
  let previous = 0;
  for (const event of outputs(events)) {
    const row = JSON.parse(event.data);
    expect(Object.keys(row).sort()).toEqual(['createdAt', 'id', 'jobId', 'output', 'stream']);
    expect(row.jobId).toBe(jobId);
    expect(typeof row.id).toBe('number');
    expect(event.id).toBe(String(row.id));
    expect(row.id).toBeGreaterThan(previous);
    previous = row.id;
  }
  const last = events[events.length - 1];
  expect(last.event).toBe('end');
  expect(events.filter((e) => e.event === 'end')).toHaveLength(1);
}

describe('GET /jobs/:id/stream', () => {
  test('a finished job: all rows in order, its status, then end', async () => {
    const id = await enqueue();
    const expected = Array.from({ length: 1203 }, (_, i) => `line ${i + 1}`);
    await insertOutput(ctx.db, id, expected, 1);
    await setStatus(ctx.db, id, 'failure', { exitCode: 3, error: null });
    const events = await readStream(ctx.as.alice, `/jobs/${id}/stream`);
    expectWellFormed(events, id);
    expect(lines(events)).toEqual(expected);
    const tail = events.slice(-2);
    expect(tail[0]).toMatchObject({ event: 'status' });
    expect(JSON.parse(tail[0].data)).toEqual({ status: 'failure', exitCode: 3, error: null });
    expect(JSON.parse(tail[1].data)).toEqual({ status: 'failure' });
  });

  test('a live job: rows written while streaming arrive once each, in order, and end comes after the last', async () => {
    const id = await enqueue();
    const stream = new LiveStream(`${ctx.api.origin}/jobs/${id}/stream`, { Cookie: ctx.cookies.alice });
    // The stream is open and has seen the job pending before anything is written.
    const first = await stream.waitFor((e) => e.event === 'status');
    expect(JSON.parse(first.data)).toEqual({ status: 'pending', exitCode: null, error: null });
    await sqlOf(ctx.db).query("UPDATE Jobs SET status = 'running', runnerId = 'test' WHERE id = ?", {
      replacements: [id],
    });
    const expected: string[] = [];
    let seq = 1;
    for (let batch = 0; batch < 20; batch++) {
      const rows = Array.from({ length: 37 }, (_, i) => `batch ${batch} line ${i}`);
      await insertOutput(ctx.db, id, rows, seq);
      seq += rows.length;
      expected.push(...rows);
      if (batch === 5) await stream.waitFor((e) => e.event === 'output');
    }
    // The last rows and the outcome land in one transaction, as the runner's finishJob writes them.
    await ctx.db.sequelize.transaction(async (transaction) => {
      await sqlOf(ctx.db).query(
        'INSERT INTO JobStatuses (jobId, seq, stream, output) VALUES (?, ?, ?, ?), (?, ?, ?, ?)',
        { replacements: [id, seq, 'stdout', 'last words', id, seq + 1, 'system', 'exited 0'], transaction },
      );
      await sqlOf(ctx.db).query("UPDATE Jobs SET status = 'success', exitCode = 0 WHERE id = ?", {
        replacements: [id],
        transaction,
      });
    });
    expected.push('last words', 'exited 0');
    const events = await stream.finished;
    expect(stream.status).toBe(200);
    expectWellFormed(events, id);
    expect(lines(events)).toEqual(expected);
    const statuses = events.filter((e) => e.event === 'status').map((e) => JSON.parse(e.data).status);
    expect(statuses[0]).toBe('pending');
    expect(statuses[statuses.length - 1]).toBe('success');
    expect(JSON.parse(events[events.length - 1].data)).toEqual({ status: 'success' });
  });

  test('Last-Event-ID resumes after that row, without repeats', async () => {
    const id = await enqueue();
    await insertOutput(ctx.db, id, ['a', 'b', 'c', 'd', 'e', 'f'], 1);
    await setStatus(ctx.db, id, 'success', { exitCode: 0 });
    const full = await readStream(ctx.as.alice, `/jobs/${id}/stream`);
    const cut = outputs(full)[2].id!;
    const resumed = await readStream(ctx.as.alice, `/jobs/${id}/stream`, { 'Last-Event-ID': cut });
    expectWellFormed(resumed, id);
    expect(lines(resumed)).toEqual(['d', 'e', 'f']);
    // The header (what a reconnecting browser sends) wins over the URL's afterId.
    const both = await readStream(ctx.as.alice, `/jobs/${id}/stream?afterId=${outputs(full)[0].id}`, {
      'Last-Event-ID': cut,
    });
    expect(lines(both)).toEqual(['d', 'e', 'f']);
    const byQuery = await readStream(ctx.as.alice, `/jobs/${id}/stream?afterId=${outputs(full)[4].id}`);
    expect(lines(byQuery)).toEqual(['f']);
    const atEnd = await readStream(ctx.as.alice, `/jobs/${id}/stream`, { 'Last-Event-ID': outputs(full)[5].id! });
    expect(lines(atEnd)).toEqual([]);
    expect(atEnd.map((e) => e.event)).toEqual(['status', 'end']);
  });

  test('a reconnect in the middle of a live job continues where it stopped', async () => {
    const id = await enqueue();
    await insertOutput(ctx.db, id, ['one', 'two', 'three'], 1);
    const first = new LiveStream(`${ctx.api.origin}/jobs/${id}/stream`, { Cookie: ctx.cookies.alice });
    const seen = await first.waitFor((e) => e.event === 'output' && JSON.parse(e.data).output === 'three');
    first.close();
    await first.finished.catch(() => undefined);
    await insertOutput(ctx.db, id, ['four', 'five'], 4);
    await setStatus(ctx.db, id, 'cancelled', { error: 'cancelled' });
    const rest = await readStream(ctx.as.alice, `/jobs/${id}/stream`, { 'Last-Event-ID': seen.id! });
    expect(lines(rest)).toEqual(['four', 'five']);
    expect(JSON.parse(rest[rest.length - 1].data)).toEqual({ status: 'cancelled' });
  });

  test("another user's job: 404 JSON, like a missing one; admins may watch", async () => {
    const id = await enqueue();
    await insertOutput(ctx.db, id, ['secret'], 1);
    await setStatus(ctx.db, id, 'success', { exitCode: 0 });
    const other = await ctx.as.bob.get(`/jobs/${id}/stream`).expect(404);
    expect(other.headers['content-type']).toMatch(/^application\/json/);
    expect(other.body).toEqual({ error: { code: 'not_found', message: `no job ${id}` } });
    const missing = await ctx.as.bob.get(`/jobs/${id + 1000}/stream`).expect(404);
    expect(missing.body.error.code).toBe('not_found');
    expect(lines(await readStream(ctx.as.root, `/jobs/${id}/stream`))).toEqual(['secret']);
  });

  test('a createdBy NULL job streams to admins only', async () => {
    const id = await enqueue(null);
    await setStatus(ctx.db, id, 'success', { exitCode: 0 });
    await ctx.as.alice.get(`/jobs/${id}/stream`).expect(404);
    await readStream(ctx.as.root, `/jobs/${id}/stream`);
  });

  test('401 without a session; 400 for a bad id, afterId or Last-Event-ID', async () => {
    const id = await enqueue();
    await setStatus(ctx.db, id, 'success', { exitCode: 0 });
    await ctx.api.agent().get(`/jobs/${id}/stream`).expect(401);
    expect((await ctx.as.alice.get('/jobs/1.5/stream').expect(400)).body.error.code).toBe('invalid_id');
    expect((await ctx.as.alice.get(`/jobs/${id}/stream?afterId=-1`).expect(400)).body.error.code).toBe('invalid_query');
    expect((await ctx.as.alice.get(`/jobs/${id}/stream?afterId=x`).expect(400)).body.error.code).toBe('invalid_query');
    await ctx.as.alice.get(`/jobs/${id}/stream`).set('Last-Event-ID', 'abc').expect(400);
  });

  test('bearer tokens may stream too', async () => {
    const id = await enqueue();
    await insertOutput(ctx.db, id, ['x'], 1);
    await setStatus(ctx.db, id, 'success', { exitCode: 0 });
    const { token } = await createApiToken(ctx.db, 'alice', 'ci');
    const events = await readStream(ctx.api.agent(), `/jobs/${id}/stream`, { Authorization: `Bearer ${token}` });
    expect(lines(events)).toEqual(['x']);
  });
});
