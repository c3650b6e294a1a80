// What the web UI's dashboard reads (README, "Web UI"): GET /jobs searched (`q=`), filtered by task and
// counted by status (`counts=true`), owner-scoped like the list; a job's whole output as a text file
// (GET /jobs/:id/log.txt); and the icon at /favicon.ico.
import { insertOutput, setStatus, useApi, type Agent } from './helpers/api';
import { sqlOf } from './helpers/database';

const ctx = useApi({ users: { alice: false, bob: false, root: true } });

interface ListBody {
  jobs: { id: number; task: string; createdBy: string | null; status: string }[];
  counts?: Record<string, number>;
  total?: number;
}

/** A job inserted as `createdBy` with task `task` (any name: the list does not check the task file). */
async function insertJob(createdBy: string | null, task = 'greet', status = 'success'): Promise<number> {
  return sqlOf(ctx.db).insert(
    `INSERT INTO Jobs (task, params, command, createdBy, status, runAt, createdAt, updatedAt)
     VALUES (?, '{}', 'true', ?, ?, '2100-01-01 00:00:00', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`,
    [task, createdBy, status],
  );
}

const list = async (agent: Agent, query: string): Promise<ListBody> =>
  (await agent.get(`/jobs?${query}`).expect(200)).body as ListBody;
const ids = (body: ListBody) => body.jobs.map((j) => j.id);

describe('GET /jobs: search, task filter and counts', () => {
  test('q= finds a job by id ("12" or "#12"), or by a piece of its task or owner name, in any case', async () => {
    const a = await insertJob('alice', 'backup-volume');
    const b = await insertJob('alice', 'greet');
    const c = await insertJob('bob', 'Backup-db');
    const d = await insertJob('carol_x', 'greet');
    expect(ids(await list(ctx.as.root, `q=${b}`))).toEqual([b]);
    expect(ids(await list(ctx.as.root, `q=%23${b}`))).toEqual([b]);
    expect(ids(await list(ctx.as.root, 'q=BACKUP'))).toEqual([c, a]);
    expect(ids(await list(ctx.as.root, 'q=bo'))).toEqual([c]);
    // LIKE's wildcards are plain characters here.
    expect(ids(await list(ctx.as.root, 'q=_x'))).toEqual([d]);
    expect(ids(await list(ctx.as.root, 'q=%25'))).toEqual([]);
    expect(ids(await list(ctx.as.root, 'q=%20greet%20'))).toEqual([d, b]);
  });

  test('task= is the exact task name, and combines with status, owner and q', async () => {
    const a = await insertJob('alice', 'greet', 'success');
    const b = await insertJob('alice', 'greet', 'failure');
    await insertJob('alice', 'greeting', 'failure');
    const d = await insertJob('bob', 'greet', 'failure');
    expect(ids(await list(ctx.as.root, 'task=greet'))).toEqual([d, b, a]);
    expect(ids(await list(ctx.as.root, 'task=greet&status=failure'))).toEqual([d, b]);
    expect(ids(await list(ctx.as.root, 'task=greet&status=failure&createdBy=alice'))).toEqual([b]);
    expect(ids(await list(ctx.as.root, 'task=greet&q=bob'))).toEqual([d]);
  });

  test('a user searches, filters and counts their own jobs only', async () => {
    const mine = await insertJob('alice', 'greet', 'failure');
    const theirs = await insertJob('bob', 'greet', 'failure');
    await insertJob(null, 'greet', 'failure');
    expect(ids(await list(ctx.as.alice, 'q=bob'))).toEqual([]);
    expect(ids(await list(ctx.as.alice, `q=${theirs}`))).toEqual([]);
    expect(ids(await list(ctx.as.alice, 'task=greet'))).toEqual([mine]);
    expect(ids(await list(ctx.as.alice, 'task=greet&createdBy=bob'))).toEqual([]);
    const counted = await list(ctx.as.alice, 'counts=true');
    expect(counted.total).toBe(1);
    expect(counted.counts).toEqual({ pending: 0, running: 0, success: 0, failure: 1, cancelled: 0 });
    // Asking for another owner's counts narrows to nothing, never to theirs.
    expect((await list(ctx.as.alice, 'counts=true&createdBy=bob')).total).toBe(0);
    expect((await list(ctx.as.bob, `counts=true&q=${mine}`)).total).toBe(0);
  });

  test('counts=true: jobs by status for the filter without its status, and their total; admins count everyone', async () => {
    for (const status of ['success', 'success', 'failure', 'cancelled']) await insertJob('alice', 'greet', status);
    await insertJob('alice', 'other', 'failure');
    await insertJob('bob', 'greet', 'pending');
    await insertJob(null, 'greet', 'success');
    const all = await list(ctx.as.root, 'counts=true');
    expect(all.counts).toEqual({ pending: 1, running: 0, success: 3, failure: 2, cancelled: 1 });
    expect(all.total).toBe(7);
    // The status filter narrows the rows, not the counts: each count says what choosing it would list.
    const failed = await list(ctx.as.root, 'counts=1&task=greet&status=failure');
    expect(failed.jobs).toHaveLength(1);
    expect(failed.counts).toEqual({ pending: 1, running: 0, success: 3, failure: 1, cancelled: 1 });
    expect(failed.total).toBe(6);
    expect((await list(ctx.as.root, 'counts=true&createdBy=alice&task=greet')).total).toBe(4);
    // Without counts=true the answer is as before.
    const plain = await list(ctx.as.root, 'counts=false');
    expect(Object.keys(plain).sort()).toEqual(['jobs', 'limit', 'offset']);
  });

  test.each([
    ['task=', '"task"'],
    [`task=${'x'.repeat(101)}`, '"task"'],
    ['task=a&task=b', '"task"'],
    ['q=', '"q"'],
    ['q=%20%20', '"q"'],
    [`q=${'x'.repeat(101)}`, '"q"'],
    ['counts=yes', '"counts"'],
  ])('?%s is 400 invalid_query naming %s', async (query, name) => {
    const res = await ctx.as.alice.get(`/jobs?${query}`).expect(400);
    expect(res.body).toEqual({ error: { code: 'invalid_query', message: expect.stringContaining(name) } });
  });
});

describe('GET /jobs/:id/log.txt', () => {
  test('the whole output as a text attachment, one line per row, read a page at a time', async () => {
    const { body } = await ctx.as.alice
      .post('/jobs')
      .set('Origin', ctx.api.origin)
      .send({ task: 'greet', params: { name: 'Ann' } });
    const id = body.id as number;
    const lines = Array.from({ length: 2500 }, (_, i) => `line ${i + 1} <b>&</b> é`);
    for (let i = 0; i < lines.length; i += 500) await insertOutput(ctx.db, id, lines.slice(i, i + 500), i + 1);
    await setStatus(ctx.db, id, 'success', { exitCode: 0 });
    const res = await ctx.as.alice.get(`/jobs/${id}/log.txt`).buffer(true).expect(200);
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(res.headers['content-disposition']).toBe(`attachment; filename="job-${id}.log"`);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.text).toBe(lines.join('\n') + '\n');
    // Admins may read it too.
    expect((await ctx.as.root.get(`/jobs/${id}/log.txt`).buffer(true).expect(200)).text).toBe(res.text);
  });

  test('timestamps=true puts each line’s time (UTC) and stream first', async () => {
    const id = await insertJob('alice');
    await insertOutput(ctx.db, id, ['one', 'two', 'three', 'four', 'five'], 1);
    const res = await ctx.as.alice.get(`/jobs/${id}/log.txt?timestamps=true`).buffer(true).expect(200);
    const rows = res.text.split('\n');
    expect(rows).toHaveLength(6);
    expect(rows[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z stdout one$/);
    expect(rows[4]).toMatch(/Z stderr five$/);
    expect(rows[5]).toBe('');
  });

  test('a job without output is an empty file', async () => {
    const id = await insertJob('alice');
    const res = await ctx.as.alice.get(`/jobs/${id}/log.txt`).buffer(true).expect(200);
    expect(res.text).toBe('');
  });

  test("another user's job and a missing one are 404 JSON; no session 401; bad input 400", async () => {
    const id = await insertJob('alice');
    await insertOutput(ctx.db, id, ['secret'], 1);
    const other = await ctx.as.bob.get(`/jobs/${id}/log.txt`).expect(404);
    expect(other.body).toEqual({ error: { code: 'not_found', message: `no job ${id}` } });
    expect((await ctx.as.bob.get(`/jobs/${id + 1000}/log.txt`).expect(404)).body.error.code).toBe('not_found');
    const orphan = await insertJob(null);
    await ctx.as.alice.get(`/jobs/${orphan}/log.txt`).expect(404);
    await ctx.as.root.get(`/jobs/${orphan}/log.txt`).expect(200);
    expect((await ctx.api.agent().get(`/jobs/${id}/log.txt`).expect(401)).body.error.code).toBe('unauthenticated');
    expect((await ctx.as.alice.get('/jobs/x/log.txt').expect(400)).body.error.code).toBe('invalid_id');
    expect((await ctx.as.alice.get(`/jobs/${id}/log.txt?timestamps=2`).expect(400)).body.error.code).toBe(
      'invalid_query',
    );
  });
});

describe('the icon', () => {
  test('GET /favicon.ico and /favicon.svg are the page’s icon, without a session', async () => {
    const ico = await ctx.api.agent().get('/favicon.ico').buffer(true).expect(200);
    expect(ico.headers['content-type']).toMatch(/^image\/svg\+xml/);
    const text = Buffer.isBuffer(ico.body) ? ico.body.toString('utf8') : String(ico.text);
    expect(text).toContain('<svg');
    await ctx.api
      .agent()
      .get('/favicon.svg')
      .expect(200)
      .expect('Content-Type', /^image\/svg\+xml/);
    await ctx.api.agent().head('/favicon.ico').expect(200);
  });
});
