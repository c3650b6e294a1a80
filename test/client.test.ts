// The library entry (README, "Enqueue from your own code"): a host program with its own Sequelize
// instance enqueues inside its own transaction, so a row of its own and its job commit or roll back
// together; input is checked exactly as POST /jobs checks it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { QueryTypes, type Sequelize } from 'sequelize';
import { createJobClient, EnqueueError, type ClientJobRequest, type JobClient } from '../index';
import { createDatabase, type Database } from '../models/database';
import { Queue } from '../models/queue';
import { useDatabase, sqlOf } from './helpers/database';
import { jobRow, RUNNER_TASKS_FILE, runOnce } from './helpers/runner';
import { dbNow, toMs } from './queue/harness';

const suite = useDatabase();
let host: Database;
let sequelize: Sequelize;
let client: JobClient;
let tmp: string;

beforeAll(async () => {
  // The host's own handle on the database the runners poll, as the container-creator has.
  host = createDatabase(suite.database);
  sequelize = host.sequelize;
  const id =
    host.dialect === 'mysql'
      ? 'INT AUTO_INCREMENT PRIMARY KEY'
      : host.dialect === 'postgres'
        ? 'SERIAL PRIMARY KEY'
        : 'INTEGER PRIMARY KEY AUTOINCREMENT';
  await sequelize.query(`CREATE TABLE IF NOT EXISTS Containers (id ${id}, name VARCHAR(100) NOT NULL)`);
  client = createJobClient({ sequelize, tasksFile: RUNNER_TASKS_FILE });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cj-client-'));
});

afterAll(async () => {
  await host.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

beforeEach(async () => {
  await sequelize.query('DELETE FROM Containers');
});

async function rows(table: string): Promise<number> {
  // The host's own table is named unquoted everywhere (PostgreSQL folds it to containers, consistently).
  const text = `SELECT COUNT(*) AS n FROM ${table}`;
  const [row] = await (table === 'Containers' ? suite.db.sequelize : sqlOf(suite.db)).query<{ n: number }>(text, {
    type: QueryTypes.SELECT,
  });
  return Number(row.n);
}

let files = 0;
/** A fresh file for `step` jobs to append their ids to. */
function ranFile(): string {
  return path.join(tmp, `ran-${++files}`);
}

const ranIds = (file: string): number[] =>
  fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map(Number) : [];

function step(res: number, file: string, extra: Partial<ClientJobRequest> = {}): ClientJobRequest {
  return { task: 'step', params: { res, file }, createdBy: 'alice', ...extra };
}

describe('in the host’s transaction', () => {
  test('rolled back: neither the host’s row nor the job (nor its group) exists', async () => {
    const file = ranFile();
    await expect(
      sequelize.transaction(async (transaction) => {
        await sequelize.query("INSERT INTO Containers (name) VALUES ('ct-101')", { transaction });
        await client.enqueue(step(101, file), { transaction });
        throw new Error('provisioning refused');
      }),
    ).rejects.toThrow('provisioning refused');

    expect(await rows('Containers')).toBe(0);
    expect(await rows('Jobs')).toBe(0);
    expect(await rows('JobGroups')).toBe(0);
    await runOnce(suite.db);
    expect(ranIds(file)).toEqual([]);
  });

  test('committed: both exist, and the job runs', async () => {
    const file = ranFile();
    const enqueued = await sequelize.transaction(async (transaction) => {
      await sequelize.query("INSERT INTO Containers (name) VALUES ('ct-102')", { transaction });
      return client.enqueue(step(102, file), { transaction });
    });

    expect(enqueued).toEqual({ id: expect.any(Number), status: 'pending', replayed: false });
    expect(await rows('Containers')).toBe(1);
    const [job] = await sqlOf(suite.db).query<{
      task: string;
      createdBy: string;
      groupKey: string;
      command: string;
    }>('SELECT task, createdBy, groupKey, command FROM Jobs WHERE id = ?', {
      type: QueryTypes.SELECT,
      replacements: [enqueued.id],
    });
    expect(job).toEqual({
      task: 'step',
      createdBy: 'alice',
      groupKey: 'res:102',
      command: `node test/fixtures/runner/step.js ${file}`,
    });

    await runOnce(suite.db);
    expect((await jobRow(suite.db, enqueued.id)).status).toBe('success');
    expect(ranIds(file)).toEqual([enqueued.id]);
  });

  test('bad input throws inside the transaction and writes nothing; the host may still commit its own row', async () => {
    await sequelize.transaction(async (transaction) => {
      await sequelize.query("INSERT INTO Containers (name) VALUES ('ct-103')", { transaction });
      await expect(
        client.enqueue({ task: 'step', params: { res: 0, file: '/tmp/x' } }, { transaction }),
      ).rejects.toThrow(EnqueueError);
    });
    expect(await rows('Containers')).toBe(1);
    expect(await rows('Jobs')).toBe(0);
  });

  test('two enqueues into one group in one transaction: the second waits behind the first', async () => {
    const file = ranFile();
    const [first, second] = await sequelize.transaction(async (transaction) => [
      await client.enqueue(step(105, file), { transaction }),
      await client.enqueue(step(105, file, { priority: -1 }), { transaction }),
    ]);

    const queue = new Queue(suite.db);
    expect(await queue.waitingReason(first.id)).toBe('slot');
    expect(await queue.waitingReason(second.id)).toBe('group');
    await runOnce(suite.db, { config: { concurrency: 4 } });
    expect(ranIds(file)).toEqual([first.id, second.id]);
  });

  test('an idempotency key used in a rolled-back transaction is free again', async () => {
    const request = step(104, ranFile(), { idempotencyKey: 'create-ct-104' });
    await expect(
      sequelize.transaction(async (transaction) => {
        await client.enqueue(request, { transaction });
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');

    const again = await client.enqueue(request);
    expect(again.replayed).toBe(false);
    expect(await rows('Jobs')).toBe(1);
  });
});

describe('enqueueMany', () => {
  test('many jobs, several groups and none, in one call: ids in request order; each group runs in id order', async () => {
    const [a, b] = [ranFile(), ranFile()];
    const requests: ClientJobRequest[] = [
      step(1, a),
      step(2, b),
      { task: 'hello', params: { times: 1 }, createdBy: 'alice' },
      step(1, a, { priority: -5 }),
      step(2, b),
      step(1, a),
      { task: 'hello', params: {}, createdBy: null },
      step(2, b, { priority: -100 }),
    ];

    const enqueued = await sequelize.transaction((transaction) => client.enqueueMany(requests, { transaction }));

    expect(enqueued.map((e) => [e.status, e.replayed])).toEqual(requests.map(() => ['pending', false]));
    const ids = enqueued.map((e) => e.id);
    expect([...ids].sort((x, y) => x - y)).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
    const stored = await sqlOf(suite.db).query<{ id: number; task: string; params: unknown; groupKey: string }>(
      'SELECT id, task, params, groupKey FROM Jobs ORDER BY id',
      { type: QueryTypes.SELECT },
    );
    expect(
      stored.map((r) => ({
        id: Number(r.id),
        task: r.task,
        params: typeof r.params === 'string' ? JSON.parse(r.params) : r.params,
        groupKey: r.groupKey,
      })),
    ).toEqual(
      requests.map((r, i) => ({
        id: ids[i],
        task: r.task,
        params: r.params,
        groupKey: r.task === 'step' ? `res:${(r.params as { res: number }).res}` : null,
      })),
    );
    const groups = await new Queue(suite.db).listGroups();
    expect(groups.map((g) => [g.key, g.pendingJobs])).toEqual([
      ['res:1', 3],
      ['res:2', 3],
    ]);

    await runOnce(suite.db, { config: { concurrency: 4 } });

    for (const id of ids) expect((await jobRow(suite.db, id)).status).toBe('success');
    expect(ranIds(a)).toEqual([ids[0], ids[3], ids[5]]);
    expect(ranIds(b)).toEqual([ids[1], ids[4], ids[7]]);
  });

  test('one bad request among good ones: EnqueueError, and none of them is written', async () => {
    const file = ranFile();
    await expect(
      client.enqueueMany([step(1, file), step(1, file, { priority: 1 }), step(2, file)]),
    ).rejects.toMatchObject({ name: 'EnqueueError', status: 403, code: 'admin_only' });
    expect(await rows('Jobs')).toBe(0);
    expect(await rows('JobGroups')).toBe(0);
  });
});

describe('checks, as POST /jobs checks', () => {
  test.each<[string, ClientJobRequest, { status: number; code: string; field?: string }]>([
    ['an unknown task', { task: 'nope', params: {} }, { status: 400, code: 'unknown_task', field: 'task' }],
    ['a missing param', { task: 'step', params: { res: 1 } }, { status: 400, code: 'invalid_params', field: 'file' }],
    [
      'a param out of range',
      { task: 'step', params: { res: 0, file: '/tmp/x' } },
      { status: 400, code: 'invalid_params', field: 'res' },
    ],
    [
      'an unknown param',
      { task: 'hello', params: { times: 1, shell: 'rm -rf /' } },
      { status: 400, code: 'invalid_params', field: 'shell' },
    ],
    [
      'a priority out of range',
      { task: 'hello', priority: -101, createdBy: 'alice' },
      { status: 400, code: 'invalid_field', field: 'priority' },
    ],
    ['a positive priority for a non-admin', { task: 'hello', priority: 5 }, { status: 403, code: 'admin_only' }],
    [
      'runAt and delaySec together',
      { task: 'hello', runAt: new Date(Date.now() + 60_000).toISOString(), delaySec: 60 },
      { status: 400, code: 'invalid_field' },
    ],
    [
      'runAt without an offset',
      { task: 'hello', runAt: '2030-01-01T00:00:00' },
      { status: 400, code: 'invalid_field', field: 'runAt' },
    ],
    [
      'delaySec too large',
      { task: 'hello', delaySec: 31_622_401 },
      { status: 400, code: 'invalid_field', field: 'delaySec' },
    ],
    [
      'an empty idempotency key',
      { task: 'hello', idempotencyKey: '' },
      { status: 400, code: 'invalid_idempotency_key' },
    ],
    [
      'a non-ASCII idempotency key',
      { task: 'hello', idempotencyKey: 'clé' },
      { status: 400, code: 'invalid_idempotency_key' },
    ],
  ])('%s: EnqueueError with the API’s status, code and field; nothing written', async (_what, request, expected) => {
    const error = await client.enqueue(request).then(
      () => null,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(EnqueueError);
    expect(error).toMatchObject(expected);
    expect(await rows('Jobs')).toBe(0);
  });

  test('runAt, delaySec and priority are taken as the API takes them', async () => {
    const queue = new Queue(suite.db);
    const before = await dbNow(suite.db);
    const delayed = await client.enqueue({ task: 'hello', delaySec: 600, createdBy: 'alice' });
    const at = await client.enqueue({ task: 'hello', runAt: new Date(before + 7_200_000).toISOString() });
    const urgent = await client.enqueue({ task: 'hello', priority: 50, isAdmin: true, createdBy: 'root' });

    const runAt = async (id: number) => toMs((await suite.db.models.Job.findByPk(id))!.runAt) as number;
    expect(await runAt(delayed.id)).toBeGreaterThanOrEqual(before + 600_000);
    expect(await runAt(at.id)).toBe(before + 7_200_000);
    expect(await queue.waitingReason(delayed.id)).toBe('run_at');
    expect(await queue.waitingReason(at.id)).toBe('run_at');
    expect(await queue.waitingReason(urgent.id)).toBe('slot');
    expect((await suite.db.models.Job.findByPk(urgent.id))!.priority).toBe(50);
    // No owner given: the job belongs to nobody (admins only).
    expect((await suite.db.models.Job.findByPk(at.id))!.createdBy).toBeNull();
  });
});

describe('idempotency keys', () => {
  test('a repeat is replayed; other params conflict (409); another owner is another job', async () => {
    const file = ranFile();
    const first = await client.enqueue(step(7, file, { idempotencyKey: 'ct-7' }));
    const again = await client.enqueue(step(7, file, { idempotencyKey: 'ct-7' }));
    expect(first.replayed).toBe(false);
    expect(again).toEqual({ id: first.id, status: 'pending', replayed: true });

    await expect(client.enqueue(step(8, file, { idempotencyKey: 'ct-7' }))).rejects.toMatchObject({
      name: 'EnqueueError',
      status: 409,
      code: 'idempotency_conflict',
    });
    const bobs = await client.enqueue(step(7, file, { idempotencyKey: 'ct-7', createdBy: 'bob' }));
    expect(bobs.replayed).toBe(false);
    expect(bobs.id).not.toBe(first.id);
    expect(await rows('Jobs')).toBe(2);
  });

  test('the same key twice in one enqueueMany is one job', async () => {
    const file = ranFile();
    const [a, b] = await client.enqueueMany([
      step(9, file, { idempotencyKey: 'twice' }),
      step(9, file, { idempotencyKey: 'twice' }),
    ]);
    expect(a.replayed).toBe(false);
    expect(b).toEqual({ id: a.id, status: 'pending', replayed: true });
    expect(await rows('Jobs')).toBe(1);
  });

  test('the same key twice in one enqueueMany with other params: 409, and nothing written', async () => {
    const file = ranFile();
    await expect(
      client.enqueueMany([step(9, file, { idempotencyKey: 'twice' }), step(10, file, { idempotencyKey: 'twice' })]),
    ).rejects.toMatchObject({ name: 'EnqueueError', status: 409, code: 'idempotency_conflict' });
    expect(await rows('Jobs')).toBe(0);
  });

  // Also on SQLite, where 20 transactions at once on one handle must not stall one another on the file
  // lock; the bound makes such a stall fail here rather than at the suite's timeout.
  test('20 enqueues racing with one key make one job, and none fails', async () => {
    await Promise.all(Array.from({ length: 20 }, () => sequelize.query('SELECT 1')));
    const request = step(10, ranFile(), { idempotencyKey: 'race' });

    const results = await Promise.allSettled(Array.from({ length: 20 }, () => client.enqueue(request)));

    expect(results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason?.message)] : []))).toEqual([]);
    expect(await rows('Jobs')).toBe(1);
  }, 60_000);
});
