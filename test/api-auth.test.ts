// The HTTP API (README, "HTTP API"): login, sessions, CSRF, bearer tokens, security headers, /health, /tasks
// and unknown routes.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DatabaseConfig } from '../config';
import { ConfigError } from '../config';
import { Coalescer } from '../models/coalescer';
import type { Database } from '../models/database';
import { createApiToken, revokeApiToken } from '../models/users';
import { resolveSessionSecret } from '../routers/sessions';
import { addUser, count, login, password, sessionCookie, startApi, testConfig, useApi, type Api } from './helpers/api';

const ctx = useApi();

function expectSecurityHeaders(res: { headers: Record<string, unknown> }): void {
  expect(res.headers['x-content-type-options']).toBe('nosniff');
  expect(res.headers['content-security-policy']).toContain("default-src 'self'");
  expect(res.headers['x-frame-options']).toBe('DENY');
  expect(res.headers['referrer-policy']).toBe('no-referrer');
  expect(res.headers['x-powered-by']).toBeUndefined();
}

describe('basics', () => {
  test('GET /health answers 200 when the database does', async () => {
    const res = await ctx.api.agent().get('/health').expect(200);
    expect(res.body).toEqual({ status: 'ok' });
    expectSecurityHeaders(res);
  });

  test('GET /health answers 503 when the database does not', async () => {
    // Model classes are bound to one Sequelize per process, so the outage is simulated on this handle.
    const sequelize = Object.create(ctx.db.sequelize) as Database['sequelize'];
    sequelize.query = (() => Promise.reject(new Error('connect ECONNREFUSED'))) as unknown as typeof sequelize.query;
    const broken = await startApi({ ...ctx.db, sequelize }, ctx.database);
    try {
      const res = await broken.agent().get('/health').expect(503);
      expect(res.body.error.code).toBe('database_unavailable');
      expectSecurityHeaders(res);
    } finally {
      await broken.close();
    }
  });

  test('unknown routes are 404 JSON with the security headers', async () => {
    const res = await ctx.api.agent().get('/no/such/route').expect(404);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body.error.code).toBe('not_found');
    expect(typeof res.body.error.message).toBe('string');
    expectSecurityHeaders(res);
    await ctx.api.agent().delete('/jobs').expect(401);
  });

  test('errors never carry a stack trace', async () => {
    const res = await ctx.api
      .agent()
      .post('/login')
      .set('Origin', ctx.api.origin)
      .set('Content-Type', 'application/json')
      .send('{"username":');
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: { code: 'invalid_json', message: expect.any(String) } });
    expect(res.text).not.toMatch(/at .*\.(js|ts):\d+/);
  });
});

describe('POST /login', () => {
  test('logs in: 200 {username, isAdmin}, an HttpOnly SameSite=Lax cookie, and GET /me works', async () => {
    await addUser(ctx.db, 'alice');
    const agent = ctx.api.agent();
    const res = await agent
      .post('/login')
      .set('Origin', ctx.api.origin)
      .send({ username: 'alice', password: password('alice') })
      .expect(200);
    expect(res.body).toEqual({ username: 'alice', isAdmin: false });
    const cookie = (res.headers['set-cookie'] as unknown as string[]).find((c) => c.startsWith('cj.sid='))!;
    expect(cookie).toMatch(/; HttpOnly/i);
    expect(cookie).toMatch(/; SameSite=Lax/i);
    expect(cookie).not.toMatch(/; Secure/i);
    expectSecurityHeaders(res);
    expect((await agent.get('/me').expect(200)).body).toEqual({ username: 'alice', isAdmin: false });
    expect(await count(ctx.db, 'Sessions')).toBe(1);
  });

  test('admins log in as admins', async () => {
    await addUser(ctx.db, 'root', true);
    const { agent } = await login(ctx.api, 'root');
    expect((await agent.get('/me').expect(200)).body).toEqual({ username: 'root', isAdmin: true });
  });

  test('a wrong password and an unknown user are the same 401 invalid_credentials', async () => {
    await addUser(ctx.db, 'alice');
    const wrong = await ctx.api
      .agent()
      .post('/login')
      .set('Origin', ctx.api.origin)
      .send({ username: 'alice', password: 'not-the-password' })
      .expect(401);
    const unknown = await ctx.api
      .agent()
      .post('/login')
      .set('Origin', ctx.api.origin)
      .send({ username: 'nobody', password: 'not-the-password' })
      .expect(401);
    expect(wrong.body.error.code).toBe('invalid_credentials');
    expect(unknown.body).toEqual(wrong.body);
    expect(wrong.headers['set-cookie']).toBeUndefined();
    expect(await count(ctx.db, 'Sessions')).toBe(0);
  });

  test('the session id is regenerated at login; the old one stops working', async () => {
    await addUser(ctx.db, 'alice');
    const { agent, cookie: first } = await login(ctx.api, 'alice');
    const again = await agent
      .post('/login')
      .set('Origin', ctx.api.origin)
      .send({ username: 'alice', password: password('alice') })
      .expect(200);
    const second = sessionCookie(again);
    expect(second).not.toBe(first);
    await ctx.api.agent().get('/me').set('Cookie', first).expect(401);
    await ctx.api.agent().get('/me').set('Cookie', second).expect(200);
  });

  test('a session id planted before login is not kept', async () => {
    await addUser(ctx.db, 'alice');
    const planted = 'cj.sid=s%3Aplanted-session-id.invalidsignature';
    const res = await ctx.api
      .agent()
      .post('/login')
      .set('Origin', ctx.api.origin)
      .set('Cookie', planted)
      .send({ username: 'alice', password: password('alice') })
      .expect(200);
    expect(sessionCookie(res)).not.toBe(planted);
  });

  test('checks in order: 415 form-encoded, 403 cross-origin, 400 invalid_json, 400 fields', async () => {
    await addUser(ctx.db, 'alice');
    const agent = ctx.api.agent();
    const form = await agent
      .post('/login')
      .set('Origin', 'https://evil.example')
      .type('form')
      .send({ username: 'alice', password: password('alice') })
      .expect(415);
    expect(form.body.error.code).toBe('unsupported_media_type');
    const cross = await agent
      .post('/login')
      .set('Origin', 'https://evil.example')
      .send({ username: 'alice', password: password('alice') })
      .expect(403);
    expect(cross.body.error.code).toBe('forbidden_origin');
    const noOrigin = await agent
      .post('/login')
      .send({ username: 'alice', password: password('alice') })
      .expect(403);
    expect(noOrigin.body.error.code).toBe('forbidden_origin');
    const crossSite = await agent
      .post('/login')
      .set('Sec-Fetch-Site', 'cross-site')
      .send({ username: 'alice', password: password('alice') })
      .expect(403);
    expect(crossSite.body.error.code).toBe('forbidden_origin');
    const badJson = await agent
      .post('/login')
      .set('Origin', ctx.api.origin)
      .set('Content-Type', 'application/json')
      .send('{"username": "alice",')
      .expect(400);
    expect(badJson.body.error.code).toBe('invalid_json');
    const extra = await agent
      .post('/login')
      .set('Origin', ctx.api.origin)
      .send({ username: 'alice', password: password('alice'), remember: true })
      .expect(400);
    expect(extra.body.error).toMatchObject({ code: 'unexpected_field', field: 'remember' });
    const missing = await agent.post('/login').set('Origin', ctx.api.origin).send({ username: 'alice' }).expect(400);
    expect(missing.body.error).toMatchObject({ code: 'invalid_field', field: 'password' });
    const big = await agent
      .post('/login')
      .set('Origin', ctx.api.origin)
      .send({ username: 'alice', password: 'x'.repeat(70 * 1024) })
      .expect(413);
    expect(big.body.error.code).toBe('payload_too_large');
    expect(await count(ctx.db, 'Sessions')).toBe(0);
  });

  test('Sec-Fetch-Site: same-origin stands in for Origin', async () => {
    await addUser(ctx.db, 'alice');
    await ctx.api
      .agent()
      .post('/login')
      .set('Sec-Fetch-Site', 'same-origin')
      .send({ username: 'alice', password: password('alice') })
      .expect(200);
  });

  test('after 10 failures for a username: 429 rate_limited, even with the right password', async () => {
    // Its own app, so the lock-out does not outlive this test.
    const own = await startApi(ctx.db, ctx.database);
    await addUser(ctx.db, 'alice');
    await addUser(ctx.db, 'bob');
    const agent = own.agent();
    for (let i = 0; i < 10; i++) {
      await agent
        .post('/login')
        .set('Origin', own.origin)
        .send({ username: 'alice', password: `wrong-${i}` })
        .expect(401);
    }
    const limited = await agent
      .post('/login')
      .set('Origin', own.origin)
      .send({ username: 'ALICE', password: password('alice') })
      .expect(429);
    expect(limited.body.error.code).toBe('rate_limited');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    await agent
      .post('/login')
      .set('Origin', own.origin)
      .send({ username: 'alice', password: password('alice') })
      .expect(429);
    // Per username: bob, from the same address, is not locked out.
    await login(own, 'bob');
    await own.close();
  });

  test('failures per client address are limited too, whatever the username', async () => {
    const strict = await startApi(ctx.db, ctx.database, { loginLimits: { perAddress: { max: 3, windowMs: 60_000 } } });
    try {
      await addUser(ctx.db, 'carol');
      for (const name of ['u1', 'u2', 'u3']) {
        await strict
          .agent()
          .post('/login')
          .set('Origin', strict.origin)
          .send({ username: name, password: 'x' })
          .expect(401);
      }
      const res = await strict
        .agent()
        .post('/login')
        .set('Origin', strict.origin)
        .send({ username: 'carol', password: password('carol') })
        .expect(429);
      expect(res.body.error.code).toBe('rate_limited');
    } finally {
      await strict.close();
    }
  });
});

describe('sessions', () => {
  test('POST /logout: 204, the session row is gone, and the cookie no longer works', async () => {
    await addUser(ctx.db, 'alice');
    const { agent, cookie } = await login(ctx.api, 'alice');
    await agent.post('/logout').set('Origin', ctx.api.origin).set('Content-Type', 'application/json').expect(204);
    expect(await count(ctx.db, 'Sessions')).toBe(0);
    await ctx.api.agent().get('/me').set('Cookie', cookie).expect(401);
  });

  test('POST /logout without a session is 401; cross-origin is 403', async () => {
    await ctx.api
      .agent()
      .post('/logout')
      .set('Origin', ctx.api.origin)
      .set('Content-Type', 'application/json')
      .expect(401);
    await addUser(ctx.db, 'alice');
    const { agent } = await login(ctx.api, 'alice');
    const res = await agent.post('/logout').set('Origin', 'https://evil.example').send({}).expect(403);
    expect(res.body.error.code).toBe('forbidden_origin');
    await agent.get('/me').expect(200);
  });

  test('GET /me without a session is 401 unauthenticated', async () => {
    const res = await ctx.api.agent().get('/me').expect(401);
    expect(res.body.error.code).toBe('unauthenticated');
  });

  test('an expired session is refused (and removed)', async () => {
    await addUser(ctx.db, 'alice');
    const { agent } = await login(ctx.api, 'alice');
    await agent.get('/me').expect(200);
    await ctx.db.models.Session.update({ expires: new Date(Date.now() - 1000) }, { where: {} });
    await agent.get('/me').expect(401);
    expect(await count(ctx.db, 'Sessions')).toBe(0);
  });

  test('a forged or unknown cookie is no session', async () => {
    await ctx.api.agent().get('/me').set('Cookie', 'cj.sid=s%3Aabc.def').expect(401);
  });

  test('COOKIE_SECURE behind a trusted proxy: Secure cookie and HSTS', async () => {
    const secure = await startApi(ctx.db, ctx.database, { env: { COOKIE_SECURE: 'true', TRUST_PROXY: 'loopback' } });
    try {
      await addUser(ctx.db, 'alice');
      const res = await secure
        .agent()
        .post('/login')
        .set('X-Forwarded-Proto', 'https')
        .set('X-Forwarded-Host', 'jobs.example.com')
        .set('Origin', 'https://jobs.example.com')
        .send({ username: 'alice', password: password('alice') })
        .expect(200);
      expect((res.headers['set-cookie'] as unknown as string[]).join('\n')).toMatch(/; Secure/i);
      expect(res.headers['strict-transport-security']).toMatch(/max-age=/);
    } finally {
      await secure.close();
    }
  });

  test('X-Forwarded-Host counts for the origin check only under TRUST_PROXY', async () => {
    await addUser(ctx.db, 'alice');
    const send = (target: Api) =>
      target
        .agent()
        .post('/login')
        .set('X-Forwarded-Host', 'jobs.example.com')
        .set('Origin', 'https://jobs.example.com')
        .send({ username: 'alice', password: password('alice') });
    expect((await send(ctx.api)).status).toBe(403);
    const proxied = await startApi(ctx.db, ctx.database, { env: { TRUST_PROXY: 'loopback' } });
    try {
      expect((await send(proxied)).status).toBe(200);
    } finally {
      await proxied.close();
    }
  });
});

describe('bearer tokens', () => {
  test('a token authenticates, is CSRF-exempt, and records lastUsedAt', async () => {
    await addUser(ctx.db, 'alice');
    const { id, token } = await createApiToken(ctx.db, 'alice', 'ci');
    const me = await ctx.api.agent().get('/me').set('Authorization', `Bearer ${token}`).expect(200);
    expect(me.body).toEqual({ username: 'alice', isAdmin: false });
    const created = await ctx.api
      .agent()
      .post('/jobs')
      .set('Authorization', `Bearer ${token}`)
      .set('Origin', 'https://elsewhere.example')
      .send({ task: 'greet', params: { name: 'Bob' } })
      .expect(201);
    expect(created.body).toEqual({ id: expect.any(Number), status: 'pending' });
    const row = await ctx.db.models.ApiToken.findByPk(id);
    expect(row!.lastUsedAt).toBeInstanceOf(Date);
    const job = await ctx.db.models.Job.findByPk(created.body.id);
    expect(job!.createdBy).toBe('alice');
  });

  test('a token still needs a JSON body on POST /jobs (415)', async () => {
    await addUser(ctx.db, 'alice');
    const { token } = await createApiToken(ctx.db, 'alice', 'ci');
    const res = await ctx.api
      .agent()
      .post('/jobs')
      .set('Authorization', `Bearer ${token}`)
      .type('form')
      .send({ task: 'greet' })
      .expect(415);
    expect(res.body.error.code).toBe('unsupported_media_type');
    expect(await count(ctx.db, 'Jobs')).toBe(0);
  });

  test('revoked, expired and unknown tokens are 401 invalid_token', async () => {
    await addUser(ctx.db, 'alice');
    const revoked = await createApiToken(ctx.db, 'alice', 'old');
    expect(await revokeApiToken(ctx.db, revoked.id)).toBe(true);
    const expired = await createApiToken(ctx.db, 'alice', 'expired', new Date(Date.now() - 60_000));
    for (const token of [revoked.token, expired.token, 'cjt_unknown', 'garbage']) {
      const res = await ctx.api.agent().get('/me').set('Authorization', `Bearer ${token}`).expect(401);
      expect(res.body.error.code).toBe('invalid_token');
    }
    await ctx.api
      .agent()
      .post('/jobs')
      .set('Authorization', `Bearer ${revoked.token}`)
      .send({ task: 'greet', params: { name: 'Bob' } })
      .expect(401);
    expect(await count(ctx.db, 'Jobs')).toBe(0);
  });

  test('a token that expires later acts as its user, whose rights are read on each request', async () => {
    await addUser(ctx.db, 'alice');
    const { id, token } = await createApiToken(ctx.db, 'alice', 'later', new Date(Date.now() + 3_600_000));
    const me = () => ctx.api.agent().get('/me').set('Authorization', `Bearer ${token}`).expect(200);
    expect((await me()).body).toMatchObject({ username: 'alice', isAdmin: false });
    const used = (await ctx.db.models.ApiToken.findByPk(id))!.lastUsedAt;
    expect(used).toBeInstanceOf(Date);
    await ctx.db.models.User.update({ isAdmin: true }, { where: { username: 'alice' } });
    expect((await me()).body).toMatchObject({ username: 'alice', isAdmin: true });
    // Written at most once a resolution: the second request left it as it was.
    expect((await ctx.db.models.ApiToken.findByPk(id))!.lastUsedAt).toEqual(used);
  });

  test('a token of a deleted user is refused', async () => {
    await addUser(ctx.db, 'alice');
    const { token } = await createApiToken(ctx.db, 'alice', 'ci');
    await ctx.db.models.User.destroy({ where: { username: 'alice' } });
    await ctx.api.agent().get('/me').set('Authorization', `Bearer ${token}`).expect(401);
  });
});

describe('concurrent requests', () => {
  afterEach(() => {
    jest.restoreAllMocks();
    ctx.db.sequelize.removeHook('beforeQuery', 'hold-first-reads');
  });

  test('the sessions and tokens of concurrent requests are read together, each request as its own user', async () => {
    const users = ['ann', 'ben', 'cat', 'dan'];
    for (const [i, name] of users.entries()) await addUser(ctx.db, name, i === 0);
    const cookies: string[] = [];
    const tokens: string[] = [];
    for (const name of users) {
      cookies.push((await login(ctx.api, name)).cookie);
      tokens.push((await createApiToken(ctx.db, name, 'ci')).token);
    }
    const gone = await login(ctx.api, 'ben');
    await gone.agent.post('/logout').set('Origin', ctx.api.origin).set('Content-Type', 'application/json').expect(204);
    const revoked = await createApiToken(ctx.db, 'cat', 'old');
    await revokeApiToken(ctx.db, revoked.id);

    const requests = [
      ...users.flatMap((name, i) => [
        { expect: name, header: ['Cookie', cookies[i]] },
        { expect: name, header: ['Authorization', `Bearer ${tokens[i]}`] },
      ]),
      ...users.flatMap((name, i) => [
        { expect: name, header: ['Authorization', `Bearer ${tokens[i]}`] },
        { expect: name, header: ['Cookie', cookies[i]] },
      ]),
      { expect: null, header: ['Cookie', gone.cookie] },
      { expect: null, header: ['Authorization', `Bearer ${revoked.token}`] },
    ];
    // The first session read and the first token read are held until every request has asked for its
    // own: the others must then come in one read of each kind, not one each.
    const asked = jest.spyOn(Coalescer.prototype, 'call');
    const reads = { sids: 0, hashes: 0 };
    const held = new Set<string>();
    ctx.db.sequelize.addHook('beforeQuery', 'hold-first-reads', (async (options: {
      replacements?: Record<string, unknown>;
    }) => {
      const kind = (['sids', 'hashes'] as const).find((key) => options.replacements?.[key] !== undefined);
      if (!kind) return;
      reads[kind]++;
      if (held.has(kind)) return;
      held.add(kind);
      for (let waited = 0; asked.mock.calls.length < requests.length && waited < 30_000; waited += 10) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }) as never);

    const answers = await Promise.all(
      requests.map(({ header }) =>
        ctx.api
          .agent()
          .get('/me')
          .set(header[0], header[1])
          .then((res) => (res.status === 200 ? (res.body as { username: string }).username : res.status)),
      ),
    );
    expect(answers).toEqual(requests.map((r) => r.expect ?? 401));
    expect(asked).toHaveBeenCalledTimes(requests.length);
    expect(reads).toEqual({ sids: 2, hashes: 2 });
    // Each still acts with its own rights: ann is the admin.
    const me = await ctx.api.agent().get('/me').set('Cookie', cookies[0]).expect(200);
    expect(me.body).toEqual({ username: 'ann', isAdmin: true });
  });
});

describe('GET /tasks', () => {
  test('401 without a user', async () => {
    await ctx.api.agent().get('/tasks').expect(401);
  });

  test('users see the tasks they may run; admins also the admin-only ones', async () => {
    await addUser(ctx.db, 'alice');
    await addUser(ctx.db, 'root', true);
    const user = (await (await login(ctx.api, 'alice')).agent.get('/tasks').expect(200)).body;
    expect(user).toEqual([
      {
        name: 'greet',
        description: 'Greet someone a few times',
        params: expect.objectContaining({ type: 'object', required: ['name'] }),
        adminOnly: false,
      },
    ]);
    // A param's label and help text for forms, as the task file gives them.
    expect(user[0].params.properties.name).toEqual({
      type: 'string',
      pattern: "^[A-Za-z ']{1,40}$",
      title: 'Who to greet',
      description: 'A first name, or a few words',
    });
    const admin = (await (await login(ctx.api, 'root')).agent.get('/tasks').expect(200)).body;
    expect(admin.map((t: { name: string; adminOnly: boolean }) => [t.name, t.adminOnly])).toEqual([
      ['greet', false],
      ['rebuild-cluster', true],
    ]);
  });
});

describe('session secret', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cj-secret-'));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('SQLite: generated once, kept beside the database file with mode 0600', () => {
    const config = testConfig({ dialect: 'sqlite', storage: path.join(tmp, 'jobs.sqlite') });
    const first = resolveSessionSecret(config);
    expect(first.length).toBeGreaterThanOrEqual(32);
    const file = path.join(tmp, 'jobs.sqlite.session-secret');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(resolveSessionSecret(config)).toBe(first);
  });

  test('MySQL: SESSION_SECRET is required; a short one is refused', () => {
    const mysql: DatabaseConfig = {
      dialect: 'mysql',
      host: 'db',
      port: 3306,
      user: 'u',
      password: '',
      database: 'd',
    };
    expect(() => resolveSessionSecret(testConfig(mysql))).toThrow(ConfigError);
    expect(() => resolveSessionSecret(testConfig(mysql, { SESSION_SECRET: 'short' }))).toThrow(/too short/);
    const long = 'a'.repeat(40);
    expect(resolveSessionSecret(testConfig(mysql, { SESSION_SECRET: long }))).toBe(long);
  });
});
