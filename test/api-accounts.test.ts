// Accounts and sessions (README, "Accounts and sessions"): every request re-reads its user, a user's
// sessions end with a password change or on demand, and login throttling lives in the database.
import {
  createApiToken,
  deleteUser,
  listSessions,
  passwordHashing,
  revokeSessions,
  setAdmin,
  setPassword,
} from '../models/users';
import { LoginThrottle } from '../models/login-throttle';
import { Semaphore, SemaphoreFullError } from '../models/semaphore';
import { addUser, count, login, password, startApi, useApi, type Api } from './helpers/api';

const ctx = useApi();

/** A login attempt as if from `address` (the test apps trust X-Forwarded-For from loopback). */
function attempt(api: Api, username: string, secret: string, address: string) {
  return api
    .agent()
    .post('/login')
    .set('Origin', api.origin)
    .set('X-Forwarded-For', address)
    .send({ username, password: secret });
}

async function fail(api: Api, username: string, address: string, times: number): Promise<void> {
  for (let i = 0; i < times; i++) await attempt(api, username, `wrong-${i}`, address).expect(401);
}

describe('every request re-reads its user', () => {
  test('a demoted admin: the next request is 403 on admin routes, and sees only their own jobs', async () => {
    await addUser(ctx.db, 'root', true);
    await addUser(ctx.db, 'alice');
    const { agent } = await login(ctx.api, 'root');
    const { token } = await createApiToken(ctx.db, 'root', 'ci');
    await ctx.api.queue.enqueue({ task: 'greet', params: { name: 'A' }, command: 'echo', createdBy: 'alice' });
    await agent.get('/groups').expect(200);
    expect((await agent.get('/jobs').expect(200)).body.jobs).toHaveLength(1);
    await setAdmin(ctx.db, 'root', false);
    const refused = await agent.get('/groups').expect(403);
    expect(refused.body.error.code).toBe('admin_only');
    await ctx.api.agent().get('/groups').set('Authorization', `Bearer ${token}`).expect(403);
    expect((await agent.get('/me').expect(200)).body).toEqual({ username: 'root', isAdmin: false });
    expect((await agent.get('/jobs').expect(200)).body.jobs).toHaveLength(0);
    // And back: rights granted apply from the next request too, in the same session.
    await setAdmin(ctx.db, 'root', true);
    await agent.get('/groups').expect(200);
  });

  test('a deleted user: their session and their token are 401 at once; their jobs stay for admins', async () => {
    await addUser(ctx.db, 'alice');
    await addUser(ctx.db, 'root', true);
    const alice = await login(ctx.api, 'alice');
    const root = await login(ctx.api, 'root');
    const { token } = await createApiToken(ctx.db, 'alice', 'ci');
    await alice.agent
      .post('/jobs')
      .set('Origin', ctx.api.origin)
      .send({ task: 'greet', params: { name: 'Bob' } })
      .expect(201);
    await alice.agent.get('/me').expect(200);
    expect(await deleteUser(ctx.db, 'alice')).toEqual({ sessions: 1, tokens: 1 });
    expect((await alice.agent.get('/me').expect(401)).body.error.code).toBe('unauthenticated');
    await alice.agent.get('/jobs').expect(401);
    await ctx.api.agent().get('/me').set('Authorization', `Bearer ${token}`).expect(401);
    const jobs = (await root.agent.get('/jobs?createdBy=alice').expect(200)).body.jobs;
    expect(jobs).toEqual([expect.objectContaining({ createdBy: 'alice', task: 'greet' })]);
  });

  test('a user deleted behind the CLI’s back (a bare DELETE): the session is refused and removed', async () => {
    await addUser(ctx.db, 'alice');
    const { agent } = await login(ctx.api, 'alice');
    await ctx.db.models.User.destroy({ where: { username: 'alice' } });
    await agent.get('/me').expect(401);
    expect(await count(ctx.db, 'Sessions')).toBe(0);
    // A new user of the same name is not the old one: the old cookie stays dead.
    await addUser(ctx.db, 'alice');
    await agent.get('/me').expect(401);
  });

  test('the session keeps who it is, never the rights', async () => {
    await addUser(ctx.db, 'root', true);
    await login(ctx.api, 'root');
    const [row] = await ctx.db.models.Session.findAll();
    const data = JSON.parse(row.data!) as Record<string, unknown>;
    expect(data).toMatchObject({ userId: expect.any(Number), user: 'root' });
    expect(data).not.toHaveProperty('isAdmin');
    expect(row.userId).toBe(data.userId);
  });

  test('the user read with the session is never stored, and a forged one in the store is not believed', async () => {
    await addUser(ctx.db, 'alice');
    const { agent } = await login(ctx.api, 'alice');
    await agent.get('/me').expect(200);
    const [row] = await ctx.db.models.Session.findAll();
    expect(JSON.parse(row.data!)).not.toHaveProperty('__user');
    // Someone who can write the store but not Users: the rights still come from Users.
    const forged = { ...JSON.parse(row.data!), __user: { id: row.userId, username: 'alice', isAdmin: true } };
    await ctx.db.models.Session.update({ data: JSON.stringify(forged) }, { where: { sid: row.sid } });
    expect((await agent.get('/me').expect(200)).body).toEqual({ username: 'alice', isAdmin: false });
    await agent.get('/schedules').expect(403);
  });
});

describe("ending a user's sessions", () => {
  test('a password change ends every session of the user, and only theirs', async () => {
    await addUser(ctx.db, 'alice');
    await addUser(ctx.db, 'bob');
    const first = await login(ctx.api, 'alice');
    const second = await login(ctx.api, 'alice');
    const bob = await login(ctx.api, 'bob');
    expect(await setPassword(ctx.db, 'alice', 'a-new-password')).toBe(2);
    await first.agent.get('/me').expect(401);
    await second.agent.get('/me').expect(401);
    await bob.agent.get('/me').expect(200);
    await attempt(ctx.api, 'alice', password('alice'), '10.0.0.1').expect(401);
    await attempt(ctx.api, 'alice', 'a-new-password', '10.0.0.1').expect(200);
  });

  test('sessions are listed (count, last seen) and revoked together', async () => {
    await addUser(ctx.db, 'alice');
    const one = await login(ctx.api, 'alice');
    const two = await login(ctx.api, 'alice');
    await one.agent.get('/me').expect(200);
    const sessions = await listSessions(ctx.db, 'alice');
    expect(sessions).toHaveLength(2);
    for (const s of sessions) expect(s.lastSeenAt).toBeInstanceOf(Date);
    expect(await revokeSessions(ctx.db, 'alice')).toBe(2);
    await one.agent.get('/me').expect(401);
    await two.agent.get('/me').expect(401);
    expect(await listSessions(ctx.db, 'alice')).toEqual([]);
  });
});

describe('login throttling, in the database', () => {
  let proxied: Api;
  beforeAll(async () => {
    proxied = await startApi(ctx.db, ctx.database, { env: { TRUST_PROXY: 'loopback' } });
  });
  afterAll(() => proxied.close());

  test('the 11th failure from the same (username, address) is 429, even with the right password', async () => {
    await addUser(ctx.db, 'alice');
    await fail(proxied, 'alice', '10.0.0.1', 10);
    const limited = await attempt(proxied, 'alice', 'wrong-again', '10.0.0.1').expect(429);
    expect(limited.body.error.code).toBe('rate_limited');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    await attempt(proxied, 'Alice', password('alice'), '10.0.0.1').expect(429);
  });

  test('ten failures from one address do not stop the right password from another address', async () => {
    await addUser(ctx.db, 'alice');
    await fail(proxied, 'alice', '10.0.0.1', 10);
    await attempt(proxied, 'alice', 'wrong', '10.0.0.1').expect(429);
    await attempt(proxied, 'alice', password('alice'), '10.0.0.2').expect(200);
  });

  test('a success from an address starts its count afresh', async () => {
    await addUser(ctx.db, 'alice');
    await fail(proxied, 'alice', '10.0.0.1', 9);
    await attempt(proxied, 'alice', password('alice'), '10.0.0.1').expect(200);
    await fail(proxied, 'alice', '10.0.0.1', 10);
    await attempt(proxied, 'alice', password('alice'), '10.0.0.1').expect(429);
  });

  test('per username across addresses: a cap far above one address’s (1,000 by default)', async () => {
    const capped = await startApi(ctx.db, ctx.database, {
      env: { TRUST_PROXY: 'loopback' },
      loginLimits: { perUsername: { max: 4, windowMs: 60_000 } },
    });
    try {
      await addUser(ctx.db, 'alice');
      for (const address of ['10.0.1.1', '10.0.1.2', '10.0.1.3']) await fail(capped, 'alice', address, 1);
      // Below the cap, others' failures do not lock her out of her own address.
      await attempt(capped, 'alice', password('alice'), '10.0.9.9').expect(200);
      await fail(capped, 'alice', '10.0.1.4', 1);
      await attempt(capped, 'alice', password('alice'), '10.0.9.9').expect(429);
    } finally {
      await capped.close();
    }
  });

  test('the counts are shared by two API instances and outlive them (a restart forgets nothing)', async () => {
    await addUser(ctx.db, 'alice');
    const other = await startApi(ctx.db, ctx.database, { env: { TRUST_PROXY: 'loopback' } });
    try {
      await fail(proxied, 'alice', '10.0.0.1', 5);
      await fail(other, 'alice', '10.0.0.1', 5);
      await attempt(proxied, 'alice', password('alice'), '10.0.0.1').expect(429);
      await attempt(other, 'alice', password('alice'), '10.0.0.1').expect(429);
    } finally {
      await other.close();
    }
    const restarted = await startApi(ctx.db, ctx.database, { env: { TRUST_PROXY: 'loopback' } });
    try {
      await attempt(restarted, 'alice', password('alice'), '10.0.0.1').expect(429);
      expect(await count(ctx.db, 'LoginFailures')).toBeGreaterThan(0);
    } finally {
      await restarted.close();
    }
  });

  test('concurrent failures are all counted: at most 10 of a burst are checked', async () => {
    await addUser(ctx.db, 'alice');
    const results = await Promise.all(
      Array.from({ length: 25 }, (_, i) => attempt(proxied, 'alice', `wrong-${i}`, '10.0.0.7')),
    );
    const statuses = results.map((r) => r.status);
    expect(statuses.every((status) => status === 401 || status === 429)).toBe(true);
    // Attempts that raced may be refused early, never counted twice: ten failures in all, then 429.
    let failures = statuses.filter((status) => status === 401).length;
    expect(failures).toBeLessThanOrEqual(10);
    while ((await attempt(proxied, 'alice', 'wrong', '10.0.0.7')).status === 401) failures++;
    expect(failures).toBe(10);
    await attempt(proxied, 'alice', password('alice'), '10.0.0.7').expect(429);
  });
});

describe('password hashing is bounded', () => {
  test('Semaphore: at most `limit` at once, a bounded line, refusals beyond it', async () => {
    const semaphore = new Semaphore(2, 1);
    let running = 0;
    let peak = 0;
    const gates: (() => void)[] = [];
    const work = () =>
      semaphore.run(async () => {
        peak = Math.max(peak, ++running);
        await new Promise<void>((resolve) => gates.push(resolve));
        running--;
      });
    const started = [work(), work(), work()];
    await expect(work()).rejects.toBeInstanceOf(SemaphoreFullError);
    while (gates.length < 2) await new Promise((resolve) => setImmediate(resolve));
    gates.shift()!();
    while (gates.length < 2) await new Promise((resolve) => setImmediate(resolve));
    for (const open of gates.splice(0)) open();
    await Promise.all(started);
    expect(peak).toBe(2);
  });

  test('a login while the hashing line is full is 429, and is not counted as a failure', async () => {
    await addUser(ctx.db, 'alice');
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const held = Array.from({ length: passwordHashing.limit + passwordHashing.maxWaiting }, () =>
      passwordHashing.run(() => gate),
    );
    try {
      const busy = await ctx.api
        .agent()
        .post('/login')
        .set('Origin', ctx.api.origin)
        .send({ username: 'alice', password: password('alice') })
        .expect(429);
      expect(busy.body.error.code).toBe('rate_limited');
      expect(busy.headers['retry-after']).toBe('1');
    } finally {
      open();
      await Promise.all(held);
    }
    const rows = await ctx.db.models.LoginFailure.findAll();
    expect(rows.every((r) => r.count === 0)).toBe(true);
    await login(ctx.api, 'alice');
  });
});

describe('the login window, on a clock the test holds', () => {
  const rule = { max: 10, windowMs: 15 * 60_000 };
  const limits = {
    perPair: rule,
    perAddress: { max: 1000, windowMs: rule.windowMs },
    perUsername: { max: 1000, windowMs: rule.windowMs },
  };
  const minute = 60_000;
  // A minute's edge, a whole number of windows from the epoch: the edge of the old two-window estimate too.
  const edge = Date.UTC(2026, 11, 2, 19, 15);

  async function failAt(throttle: LoginThrottle, at: { now: number }, when: number, times: number) {
    at.now = when;
    for (let i = 0; i < times; i++) expect((await throttle.reserve('alice', '10.0.0.1')).retryAfter).toBe(0);
  }

  test('ten failures that straddle an edge still refuse the eleventh', async () => {
    const at = { now: 0 };
    const throttle = new LoginThrottle(ctx.db, limits, () => at.now);
    await failAt(throttle, at, edge - 1, 5);
    await failAt(throttle, at, edge, 5);
    at.now = edge + 1;
    expect((await throttle.reserve('alice', '10.0.0.1')).retryAfter).toBeGreaterThan(0);
  });

  test('failures are remembered for the window, at most a fifteenth of it longer, then forgotten', async () => {
    const at = { now: 0 };
    const throttle = new LoginThrottle(ctx.db, limits, () => at.now);
    const first = edge + 30_000;
    await failAt(throttle, at, first, 10);
    at.now = first + rule.windowMs - 1;
    const refused = await throttle.reserve('alice', '10.0.0.1');
    expect(refused.retryAfter).toBeGreaterThan(0);
    expect(refused.retryAfter * 1000).toBeLessThanOrEqual(minute + 1000);
    at.now = first + rule.windowMs + minute;
    expect((await throttle.reserve('alice', '10.0.0.1')).retryAfter).toBe(0);
  });

  test('the oldest failures leave first: a burst later in the window keeps its own time', async () => {
    const at = { now: 0 };
    const throttle = new LoginThrottle(ctx.db, limits, () => at.now);
    await failAt(throttle, at, edge, 4);
    await failAt(throttle, at, edge + 10 * minute, 6);
    // The first four have left, the six remain: four more are allowed, then the eleventh-in-window is not.
    await failAt(throttle, at, edge + 16 * minute, 4);
    const refused = await throttle.reserve('alice', '10.0.0.1');
    expect(refused.retryAfter).toBeGreaterThan(8 * 60);
    expect(refused.retryAfter).toBeLessThanOrEqual(10 * 60);
  });
});
