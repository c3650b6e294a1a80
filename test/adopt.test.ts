// `migrate --adopt` (SPEC §14): a database laid out as the container-creator's, with its jobs, output
// and a Containers table pointing at Jobs, converted in place by the compiled CLI as an operator runs
// it. Old jobs stay readable through the router mounted in a host app; a job enqueued inside a host
// transaction runs with a real runner and its page's SSE works; a rolled-back transaction leaves none.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { QueryTypes } from 'sequelize';
import request from 'supertest';
import { createJobClient } from '../client';
import { databaseEnv, type DatabaseConfig } from '../config';
import type { Database } from '../models/database';
import { LEGACY_TASK } from '../models/adopt';
import { Queue } from '../models/queue';
import { seedSqlFor } from '../models/sql';
import { TaskCatalog } from '../tasks/catalog';
import { LiveStream } from './helpers/api';
import { runScript, serviceEnv, show } from './helpers/cli';
import { insertOldJobs, layOutHostJobs, layOutHostLogin, tableRows } from './helpers/container-creator-db';
import { emptyDatabase, freshDatabase, ROOT } from './helpers/database';
import { containerCreatorApp, type HostApp } from './helpers/host-app';
import { runOnce } from './helpers/runner';

const EXAMPLE = path.join(ROOT, 'examples', 'container-creator');
const FAKE_CREATOR = path.join(ROOT, 'test', 'fixtures', 'container-creator');

/** The example task file, its jobs run in a stand-in of the container-creator's checkout. */
function exampleTasksFile(): string {
  const doc = JSON.parse(fs.readFileSync(path.join(EXAMPLE, 'tasks.json'), 'utf8'));
  for (const task of Object.values(doc.tasks) as { cwd: string }[]) task.cwd = FAKE_CREATOR;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cj-adopt-'));
  const file = path.join(dir, 'tasks.json');
  fs.writeFileSync(file, JSON.stringify(doc));
  return file;
}

let db: Database;
let config: DatabaseConfig;
let tasksFile: string;
let host: HostApp;
let server: http.Server;
let base: string;
let ids: number[];
let firstRun: string;

function adoptCli() {
  const env = { ...databaseEnv(config), JOB_TASKS_FILE: tasksFile };
  return runScript(
    'dist/cli.js',
    ['migrate', '--adopt', '--map', path.join(EXAMPLE, 'adopt-commands.json')],
    serviceEnv(env),
  );
}

async function query<T extends object>(sql: string, replacements: unknown[] = []): Promise<T[]> {
  return db.sequelize.query<T>(seedSqlFor(db.sequelize.getDialect(), sql), { type: QueryTypes.SELECT, replacements });
}

beforeAll(async () => {
  ({ db, config } = await emptyDatabase());
  tasksFile = exampleTasksFile();
  await layOutHostLogin(db);
  await layOutHostJobs(db);
  ids = await insertOldJobs(db, [
    {
      command: 'node bin/create-container.js --container-id=1',
      status: 'success',
      createdBy: 'alice',
      output: ['creating container 1\n', 'container 1 created\nProcess exited with code 0\n'],
    },
    {
      command: 'node bin/reconfigure-container.js --container-id=1 --memory=2048',
      status: 'failure',
      createdBy: 'bob',
      output: ['reconfiguring\n', null, 'Process exited with code 1\n'],
    },
    { command: 'node bin/create-container.js --container-id=2', status: 'pending', createdBy: 'alice' },
    { command: 'node bin/create-container.js --container-id=3; rm -rf /tmp/x', status: 'pending', createdBy: 'alice' },
    {
      command: 'node bin/reconfigure-container.js --container-id=3 --cpus=2',
      status: 'running',
      createdBy: 'alice',
      output: ['reconfiguring\n'],
    },
    { command: 'node bin/reconfigure-container.js --container-id=2 --memory=10', status: 'pending', createdBy: 'bob' },
    { command: 'echo hi', status: 'success', createdBy: null, output: ['hi\n'] },
  ]);
  const at = new Date();
  await db.sequelize.getQueryInterface().bulkInsert('Containers', [
    { hostname: 'one', creationJobId: ids[0], createdAt: at, updatedAt: at },
    { hostname: 'two', creationJobId: ids[2], createdAt: at, updatedAt: at },
  ]);
  const run = adoptCli();
  if (run.status !== 0) throw new Error(show(run));
  firstRun = run.stdout;
  host = containerCreatorApp({ db, queue: new Queue(db), catalog: new TaskCatalog(tasksFile) });
  server = http.createServer(host.app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await db?.close();
});

async function loginCookie(username: string, isAdmin = false): Promise<string> {
  const res = await request(host.app).post('/api/v1/auth/login').send({ username, isAdmin }).expect(200);
  return (res.headers['set-cookie'] as unknown as string[])[0].split(';')[0];
}

test('the operator is told what was found and what became of each old job', () => {
  expect(firstRun).toMatch(
    /found the container-creator's Jobs \(7 job\(s\): .*pending 3.*\) and JobStatuses \(7 row\(s\)\)/,
  );
  expect(firstRun).toMatch(/1 pending mapped to a task, 2 pending not run \(cancelled, not_adopted\), 1 running ended/);
  expect(firstRun).toMatch(/adopted: 7 job\(s\)/);
});

test('old jobs keep their ids, owners, statuses and output, readable through the mounted router', async () => {
  const alice = await loginCookie('alice');
  const job = await request(host.app).get(`/api/v1/jobs/${ids[0]}`).set('Cookie', alice).expect(200);
  expect(job.body.data).toMatchObject({
    id: ids[0],
    command: 'node bin/create-container.js --container-id=1',
    status: 'success',
    createdBy: 'alice',
    task: 'create-container',
    params: { containerId: 1 },
  });
  const rows = await request(host.app).get(`/api/v1/jobs/${ids[0]}/status`).set('Cookie', alice).expect(200);
  expect(rows.body.data.map((r: { output: string }) => r.output)).toEqual([
    'creating container 1\n',
    'container 1 created\nProcess exited with code 0\n',
  ]);
  // Another user's old job is 404; an admin sees it, its NULL output row kept as an empty one.
  await request(host.app).get(`/api/v1/jobs/${ids[1]}`).set('Cookie', alice).expect(404);
  const root = await loginCookie('root', true);
  const bobs = await request(host.app).get(`/api/v1/jobs/${ids[1]}/status`).set('Cookie', root).expect(200);
  expect(bobs.body.data.map((r: { output: string }) => r.output)).toEqual([
    'reconfiguring\n',
    '',
    'Process exited with code 1\n',
  ]);
  const legacy = await request(host.app).get(`/api/v1/jobs/${ids[6]}`).set('Cookie', root).expect(200);
  expect(legacy.body.data).toMatchObject({ task: LEGACY_TASK, params: {}, status: 'success', createdBy: null });
  // A finished old job that maps to nothing cannot be run again.
  const rerun = await request(host.app)
    .post(`/api/v1/jobs/${ids[6]}/rerun`)
    .set('Cookie', root)
    .set('Sec-Fetch-Site', 'same-origin')
    .set('Content-Type', 'application/json')
    .expect(400);
  expect(rerun.body.error.code).toBe('unknown_task');
});

test('old pending and running jobs: mapped ones wait as their template, the rest are never run', async () => {
  const byId = async (id: number) =>
    (
      await query<Record<string, unknown>>('SELECT task, params, status, error, cancelledBy FROM Jobs WHERE id = ?', [
        id,
      ])
    )[0];
  expect(await byId(ids[2])).toMatchObject({ task: 'create-container', status: 'pending' });
  expect(await byId(ids[3])).toMatchObject({ task: LEGACY_TASK, status: 'cancelled', error: 'not_adopted' });
  expect(await byId(ids[4])).toMatchObject({ task: 'reconfigure-container', status: 'failure', error: 'runner_lost' });
  expect(await byId(ids[5])).toMatchObject({ task: LEGACY_TASK, status: 'cancelled', error: 'not_adopted' });
  const notes = await query<{ stream: string; output: string }>(
    'SELECT stream, output FROM JobStatuses WHERE jobId = ? ORDER BY id',
    [ids[5]],
  );
  expect(notes).toEqual([{ stream: 'system', output: expect.stringMatching(/^not run: .*do not validate.*memory/) }]);
});

test("the host's own tables and its foreign key to Jobs are untouched", async () => {
  const containers = await query<{ hostname: string; creationJobId: number }>(
    'SELECT hostname, creationJobId FROM Containers ORDER BY id',
  );
  expect(containers.map((c) => [c.hostname, Number(c.creationJobId)])).toEqual([
    ['one', ids[0]],
    ['two', ids[2]],
  ]);
  if (config.dialect === 'sqlite') {
    const [table] = await query<{ sql: string }>("SELECT sql FROM sqlite_master WHERE name = 'Containers'");
    expect(table.sql).toMatch(/REFERENCES `Jobs`/);
    expect(table.sql).not.toMatch(/adopt_old/);
  } else {
    const refs = await query<{ t: string }>(
      config.dialect === 'postgres'
        ? `SELECT ccu.table_name AS t FROM information_schema.table_constraints tc
             JOIN information_schema.constraint_column_usage ccu ON ccu.constraint_name = tc.constraint_name
            WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_name = 'Containers'`
        : "SELECT REFERENCED_TABLE_NAME AS t FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = 'Containers'",
    );
    expect(refs.map((r) => r.t)).toEqual(['Jobs']);
  }
  expect((await tableRows(db, 'Users', 'uidNumber')).length).toBe(1);
  expect((await tableRows(db, 'Sessions', 'session_id')).length).toBe(1);
});

test('adopting again changes nothing and says so', async () => {
  const before = await tableRows(db, 'Jobs', 'id');
  const run = adoptCli();
  if (run.status !== 0) throw new Error(show(run));
  expect(run.stdout).toMatch(/the queue's already.*nothing to convert/);
  expect(run.stdout).toMatch(/already adopted: 7 job\(s\)/);
  expect(await tableRows(db, 'Jobs', 'id')).toEqual(before);
});

test("a job enqueued in the host's transaction runs with a real runner; its page's SSE follows it; a rollback leaves none", async () => {
  const jobs = createJobClient({ sequelize: db.sequelize, tasksFile });
  const qi = db.sequelize.getQueryInterface();
  const containerRows = async () => (await query<{ n: number | string }>('SELECT COUNT(*) AS n FROM Containers'))[0].n;
  const jobRows = async () => (await query<{ n: number | string }>('SELECT COUNT(*) AS n FROM Jobs'))[0].n;

  const before = { containers: Number(await containerRows()), jobs: Number(await jobRows()) };
  await expect(
    db.sequelize.transaction(async (transaction) => {
      const at = new Date();
      await qi.bulkInsert('Containers', [{ hostname: 'gone', createdAt: at, updatedAt: at }], { transaction });
      await jobs.enqueue(
        { task: 'create-container', params: { containerId: 99 }, createdBy: 'alice' },
        { transaction },
      );
      throw new Error('the host changed its mind');
    }),
  ).rejects.toThrow('the host changed its mind');
  expect({ containers: Number(await containerRows()), jobs: Number(await jobRows()) }).toEqual(before);

  const jobId = await db.sequelize.transaction(async (transaction) => {
    const at = new Date();
    await qi.bulkInsert('Containers', [{ hostname: 'three', createdAt: at, updatedAt: at }], { transaction });
    const [row] = await db.sequelize.query<{ id: number | string }>(
      seedSqlFor(config.dialect, "SELECT id FROM Containers WHERE hostname = 'three'"),
      { type: QueryTypes.SELECT, transaction },
    );
    const containerId = Number(row.id);
    const job = await jobs.enqueue(
      { task: 'create-container', params: { containerId }, createdBy: 'alice' },
      { transaction },
    );
    await db.sequelize.query(seedSqlFor(config.dialect, 'UPDATE Containers SET creationJobId = ? WHERE id = ?'), {
      replacements: [job.id, containerId],
      transaction,
    });
    return job.id;
  });
  expect(jobId).toBeGreaterThan(Math.max(...ids));

  // The page opens its stream while the job is pending, then a runner runs it (and the adopted one).
  const alice = await loginCookie('alice');
  const stream = new LiveStream(`${base}/api/v1/jobs/${jobId}/stream?lastId=0`, { Cookie: alice });
  await runOnce(db, { tasksFile });
  const events = await stream.finished;
  expect(stream.status).toBe(200);
  expect(events.map((e) => e.event).at(-1)).toBe('status');
  expect(events.filter((e) => e.event === 'status')).toHaveLength(1);
  expect(JSON.parse(events.at(-1)!.data)).toMatchObject({ status: 'success' });
  const lines = events.filter((e) => e.event === 'log').map((e) => JSON.parse(e.data).output as string);
  expect(lines).toEqual(expect.arrayContaining([expect.stringMatching(/^creating container \d+$/)]));

  // Their CI's wait-for-job polls GET /api/v1/jobs/:id with an API key and reads `.data.status`.
  host.addApiKey('ci-key-of-alice', 'alice');
  const polled = await request(host.app)
    .get(`/api/v1/jobs/${jobId}`)
    .set('Authorization', 'Bearer ci-key-of-alice')
    .set('Accept', 'application/json')
    .expect(200);
  expect(polled.body.data.status).toBe('success');

  const adopted = await request(host.app).get(`/api/v1/jobs/${ids[2]}`).set('Cookie', alice).expect(200);
  expect(adopted.body.data).toMatchObject({ status: 'success', task: 'create-container' });
  const output = await request(host.app).get(`/api/v1/jobs/${ids[2]}/status`).set('Cookie', alice).expect(200);
  expect(output.body.data.map((r: { output: string }) => r.output)).toContain('creating container 2');
});

test("mounted without `authenticate`, trusting the host's sessions: their Users table is never read", async () => {
  const sessionsHost = containerCreatorApp({
    db,
    queue: new Queue(db),
    catalog: new TaskCatalog(tasksFile),
    sessionsOnly: true,
  });
  const login = await request(sessionsHost.app).post('/api/v1/auth/login').send({ username: 'alice' }).expect(200);
  const alice = (login.headers['set-cookie'] as unknown as string[])[0].split(';')[0];
  await request(sessionsHost.app).get(`/api/v1/jobs/${ids[0]}`).set('Cookie', alice).expect(200);
  const listening = http.createServer(sessionsHost.app);
  await new Promise<void>((resolve) => listening.listen(0, '127.0.0.1', resolve));
  try {
    const url = `http://127.0.0.1:${(listening.address() as AddressInfo).port}/api/v1/jobs/${ids[0]}/stream?lastId=0`;
    const stream = new LiveStream(url, { Cookie: alice });
    const events = await stream.finished;
    expect(stream.status).toBe(200);
    expect(events.filter((e) => e.event === 'log').map((e) => JSON.parse(e.data).output)).toEqual([
      'creating container 1\n',
      'container 1 created\nProcess exited with code 0\n',
    ]);
    expect(events.at(-1)).toMatchObject({ event: 'status' });
  } finally {
    listening.closeAllConnections();
    await new Promise((resolve) => listening.close(resolve));
  }
});

// Last: a second database in this process re-binds the model classes to it (models/models.ts).
test('the converted tables have the columns of a new install: types, NULLs, defaults and indexes', async () => {
  const fresh = await freshDatabase(`cj_test_fresh_w${process.env.JEST_WORKER_ID ?? '0'}`);
  try {
    for (const table of ['Jobs', 'JobStatuses']) {
      const shape = async (d: Database) => {
        const columns = await d.sequelize.getQueryInterface().describeTable(table);
        const indexes = (await d.sequelize.getQueryInterface().showIndex(table)) as { name: string }[];
        return {
          columns: Object.fromEntries(
            Object.entries(columns).map(([name, c]) => [
              name,
              { type: c.type, allowNull: c.allowNull, hasDefault: c.defaultValue != null },
            ]),
          ),
          indexes: indexes
            .map((i) => i.name)
            .filter((name) => name.startsWith(table.toLowerCase()))
            .sort(),
        };
      };
      const ours = await shape(fresh.db);
      const adopted = await shape(db);
      expect(adopted.columns).toEqual(ours.columns);
      expect(adopted.indexes).toEqual(expect.arrayContaining(ours.indexes));
    }
  } finally {
    await fresh.db.close();
  }
});
