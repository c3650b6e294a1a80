// The jobs router inside a host app with the container-creator's conventions (SPEC §14): /api/v1,
// `{data: …}` bodies, its session keys and its own API keys, and its job page's SSE (`?lastId=`, `log`
// events, one final `status`).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { Queue } from '../models/queue';
import { createApiToken, createUser } from '../models/users';
import { TaskCatalog } from '../tasks/catalog';
import { useDatabase } from './helpers/database';
import { collectText, insertOutput, LiveStream, parseSse, setStatus, TASKS_FILE } from './helpers/api';
import { containerCreatorApp, type HostApp } from './helpers/host-app';

const suite = useDatabase();
let host: HostApp;
let server: http.Server;
let base: string;

beforeAll(async () => {
  host = containerCreatorApp({
    db: suite.db,
    queue: new Queue(suite.db),
    catalog: new TaskCatalog(TASKS_FILE),
    streamRecheckMs: 100,
  });
  host.addApiKey('key-of-alice', 'alice');
  host.addApiKey('key-of-bob', 'bob');
  server = http.createServer(host.app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

/** The host's session cookie for `username`, as its login sets it. */
async function loginCookie(username: string, isAdmin = false): Promise<string> {
  const res = await request(host.app).post('/api/v1/auth/login').send({ username, isAdmin }).expect(200);
  return (res.headers['set-cookie'] as unknown as string[])[0].split(';')[0];
}

async function aliceJob(): Promise<number> {
  const job = await new Queue(suite.db).enqueue({
    task: 'greet',
    params: { name: 'Ann' },
    command: "echo 'hello Ann'",
    createdBy: 'alice',
  });
  return job.id;
}

describe('the job page of the container-creator, unchanged', () => {
  test('GET /api/v1/jobs/:id and /status answer {data: …} with the fields the page reads', async () => {
    const cookie = await loginCookie('alice');
    const id = await aliceJob();
    await insertOutput(suite.db, id, ['one', 'two'], 1);
    const job = await request(host.app).get(`/api/v1/jobs/${id}`).set('Cookie', cookie).expect(200);
    expect(job.body.data).toMatchObject({ id, command: "echo 'hello Ann'", status: 'pending', createdBy: 'alice' });
    expect(typeof job.body.data.createdAt).toBe('string');
    const rows = await request(host.app)
      .get(`/api/v1/jobs/${id}/status?offset=0&limit=1000`)
      .set('Cookie', cookie)
      .expect(200);
    expect(rows.body.data.map((r: { output: string }) => r.output)).toEqual(['one', 'two']);
    expect(rows.body.data[0]).toMatchObject({ id: expect.any(Number), jobId: id, createdAt: expect.any(String) });
  });

  test('SSE resumes after ?lastId=, sends `log` rows, and one `status` only once the job has finished', async () => {
    const cookie = await loginCookie('alice');
    const id = await aliceJob();
    await setStatus(suite.db, id, 'running');
    await insertOutput(suite.db, id, ['one', 'two'], 1);
    const rows = await request(host.app).get(`/api/v1/jobs/${id}/status`).set('Cookie', cookie).expect(200);
    const lastId = rows.body.data[0].id as number;
    const stream = new LiveStream(`${base}/api/v1/jobs/${id}/stream?lastId=${lastId}`, { Cookie: cookie });
    const two = await stream.waitFor((e) => e.event === 'log');
    expect(JSON.parse(two.data)).toMatchObject({ id: lastId + 1, output: 'two', timestamp: expect.any(String) });
    expect(two.id).toBe(String(lastId + 1));
    await insertOutput(suite.db, id, ['three'], 3);
    await stream.waitFor((e) => e.event === 'log' && JSON.parse(e.data).output === 'three');
    await setStatus(suite.db, id, 'success', { exitCode: 0 });
    const events = await stream.finished; // the response ends after the final status
    expect(stream.status).toBe(200);
    expect(events.map((e) => e.event)).toEqual(['log', 'log', 'status']);
    expect(JSON.parse(events[2].data)).toMatchObject({ status: 'success' });
  });

  test('a finished job: its rows from lastId=0, then one status, and the response ends', async () => {
    const cookie = await loginCookie('alice');
    const id = await aliceJob();
    await insertOutput(suite.db, id, ['a', 'b', 'c'], 1);
    await setStatus(suite.db, id, 'failure', { exitCode: 3 });
    const res = await request(host.app)
      .get(`/api/v1/jobs/${id}/stream?lastId=0`)
      .set('Cookie', cookie)
      .buffer(true)
      .parse(collectText)
      .expect(200);
    const events = parseSse(res.body as string);
    expect(events.map((e) => e.event)).toEqual(['log', 'log', 'log', 'status']);
    expect(JSON.parse(events[3].data)).toEqual({ status: 'failure', exitCode: 3, error: null });
  });

  test('a page bigger than one read is still one {data: [...]} body', async () => {
    const cookie = await loginCookie('alice');
    const id = await aliceJob();
    const long = 'x'.repeat(16 * 1024);
    await insertOutput(
      suite.db,
      id,
      Array.from({ length: 40 }, () => long),
      1,
    );
    const res = await request(host.app).get(`/api/v1/jobs/${id}/status`).set('Cookie', cookie).expect(200);
    expect(res.body.data).toHaveLength(40);
    expect(res.body.data[39].output).toBe(long);
  });
});

describe('owner scoping and the host authentication', () => {
  test("another user's job is 404 in the host's error shape, an admin sees it, nobody is the host's 401", async () => {
    const id = await aliceJob();
    const bob = await request(host.app)
      .get(`/api/v1/jobs/${id}`)
      .set('Cookie', await loginCookie('bob'))
      .expect(404);
    expect(bob.body).toEqual({ error: { code: 'not_found', message: `no job ${id}` } });
    await request(host.app)
      .get(`/api/v1/jobs/${id}/stream`)
      .set('Cookie', await loginCookie('bob'))
      .expect(404);
    const admin = await request(host.app)
      .get(`/api/v1/jobs/${id}`)
      .set('Cookie', await loginCookie('root', true))
      .expect(200);
    expect(admin.body.data.createdBy).toBe('alice');
    const list = await request(host.app)
      .get('/api/v1/jobs')
      .set('Cookie', await loginCookie('bob'))
      .expect(200);
    expect(list.body.data.jobs).toEqual([]);
    const none = await request(host.app).get(`/api/v1/jobs/${id}`).expect(401);
    expect(none.body.error.code).toBe('unauthorized');
  });

  test("the host's API keys work as its scripts use them; our own tokens are not consulted", async () => {
    const id = await aliceJob();
    const job = await request(host.app)
      .get(`/api/v1/jobs/${id}`)
      .set('Authorization', 'Bearer key-of-alice')
      .expect(200);
    expect(job.body.data.id).toBe(id);
    await request(host.app).get(`/api/v1/jobs/${id}/status`).set('Authorization', 'Bearer key-of-alice').expect(200);
    await request(host.app).get(`/api/v1/jobs/${id}`).set('Authorization', 'Bearer key-of-bob').expect(404);
    await request(host.app).get(`/api/v1/jobs/${id}`).set('Authorization', 'Bearer nobody').expect(401);
    await createUser(suite.db, 'alice', 'alice-password-1');
    const { token } = await createApiToken(suite.db, 'alice', 'ci');
    await request(host.app).get(`/api/v1/jobs/${id}`).set('Authorization', `Bearer ${token}`).expect(401);
  });

  test('writes: an API key needs no Origin, a session does; field errors carry the host-style `fields`', async () => {
    const created = await request(host.app)
      .post('/api/v1/jobs')
      .set('Authorization', 'Bearer key-of-alice')
      .send({ task: 'greet', params: { name: 'Ann' } })
      .expect(201);
    expect(created.body).toEqual({ data: { id: expect.any(Number), status: 'pending' } });
    expect(created.headers.location).toBe(`/api/v1/jobs/${created.body.data.id}`);
    const cookie = await loginCookie('alice');
    await request(host.app)
      .post('/api/v1/jobs')
      .set('Cookie', cookie)
      .send({ task: 'greet', params: { name: 'Ann' } })
      .expect(403);
    const bad = await request(host.app)
      .post('/api/v1/jobs')
      .set('Cookie', cookie)
      .set('Origin', 'http://127.0.0.1')
      .set('Host', '127.0.0.1')
      .send({ task: 'greet', params: { name: 'Ann', nope: 1 } })
      .expect(400);
    expect(bad.body.error).toMatchObject({ code: 'invalid_params', field: expect.any(String) });
    expect(bad.body.error.fields).toEqual({ [bad.body.error.field]: bad.body.error.message });
    expect(bad.body.data).toBeUndefined();
  });
});

test('an open stream asks the host again: a revoked API key ends it (no final status)', async () => {
  const id = await aliceJob();
  await setStatus(suite.db, id, 'running');
  await insertOutput(suite.db, id, ['one'], 1);
  host.addApiKey('short-lived', 'alice');
  const stream = new LiveStream(`${base}/api/v1/jobs/${id}/stream`, { Authorization: 'Bearer short-lived' });
  await stream.waitFor((e) => e.event === 'log');
  host.revokeApiKey('short-lived');
  const events = await stream.finished;
  expect(events.map((e) => e.event)).toEqual(['log']);
  await request(host.app).get(`/api/v1/jobs/${id}`).set('Authorization', 'Bearer short-lived').expect(401);
});
