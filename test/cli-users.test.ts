// `container-jobs user delete|admin|sessions` (README, "Accounts and sessions"), run as the compiled
// command against the database of a live API: what each prints, and what the API does next.
import type { SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { authenticateApiToken, createApiToken, verifyCredentials } from '../models/users';
import { addUser, count, login, password, useApi } from './helpers/api';
import { runScript, serviceEnv, show } from './helpers/cli';
import { ROOT, databaseEnv, sqlOf } from './helpers/database';

const ctx = useApi();

beforeAll(() => {
  if (!fs.existsSync(path.join(ROOT, 'dist', 'cli.js'))) {
    throw new Error('dist/cli.js is missing: run "npm run build" first (npm test does it as pretest)');
  }
});

function cli(args: string[]): SpawnSyncReturns<string> {
  return runScript(path.join('dist', 'cli.js'), args, serviceEnv(databaseEnv(ctx.database)));
}

function ok(args: string[]): string {
  const result = cli(args);
  if (result.status !== 0) throw new Error(`container-jobs ${args.join(' ')} failed:\n${show(result)}`);
  return result.stdout;
}

/** Expects `status`, a stderr matching `message`, no stack trace and nothing on stdout. */
function refused(args: string[], status: number, message: RegExp): void {
  const result = cli(args);
  if (result.status !== status) throw new Error(`expected exit ${status}, got:\n${show(result)}`);
  expect(result.stdout).toBe('');
  expect(result.stderr).toMatch(message);
  expect(result.stderr).not.toMatch(/\n\s+at /);
}

async function insertJob(owner: string): Promise<void> {
  await sqlOf(ctx.db).query("INSERT INTO Jobs (task, params, createdBy) VALUES ('greet', '{}', ?)", {
    replacements: [owner],
  });
}

describe('container-jobs user admin NAME on|off', () => {
  test("grants and takes back admin rights; the user's open session follows on its next request", async () => {
    await addUser(ctx.db, 'alice');
    const { agent } = await login(ctx.api, 'alice');
    await agent.get('/schedules').expect(403);

    expect(ok(['user', 'admin', 'alice', 'on'])).toMatch(/"alice" is an admin/);
    expect(await verifyCredentials(ctx.db, 'alice', password('alice'))).toEqual({ username: 'alice', isAdmin: true });
    expect((await agent.get('/me').expect(200)).body).toEqual({ username: 'alice', isAdmin: true });
    await agent.get('/schedules').expect(200);

    expect(ok(['user', 'admin', 'alice', 'off'])).toMatch(/"alice" is no longer an admin/);
    expect((await agent.get('/me').expect(200)).body).toEqual({ username: 'alice', isAdmin: false });
    const refusedNow = await agent.get('/schedules').expect(403);
    expect(refusedNow.body.error.code).toBe('admin_only');
  });

  test('refuses an unknown user (65) and anything but on|off (64), changing nothing', async () => {
    await addUser(ctx.db, 'alice');
    refused(['user', 'admin', 'nobody', 'on'], 65, /nobody/);
    refused(['user', 'admin', 'alice', 'yes'], 64, /on\|off/);
    refused(['user', 'admin', 'alice'], 64, /on\|off/);
    refused(['user', 'admin', 'alice', 'on', '--revoke'], 64, /revoke/);
    expect(await verifyCredentials(ctx.db, 'alice', password('alice'))).toEqual({ username: 'alice', isAdmin: false });
  });
});

describe('container-jobs user delete NAME', () => {
  test('removes the user, their sessions and tokens at once; their jobs stay, and admins still see them', async () => {
    await addUser(ctx.db, 'alice');
    await addUser(ctx.db, 'bob');
    await addUser(ctx.db, 'root', true);
    const alice = await login(ctx.api, 'alice');
    const bob = await login(ctx.api, 'bob');
    const admin = await login(ctx.api, 'root');
    const { token } = await createApiToken(ctx.db, 'alice', 'laptop');
    await insertJob('alice');
    await insertJob('alice');

    expect(ok(['user', 'delete', 'alice'])).toMatch(/deleted user "alice" with 1 session\(s\) and 1 token\(s\)/);
    await alice.agent.get('/me').expect(401);
    await ctx.api.agent().get('/me').set('Authorization', `Bearer ${token}`).expect(401);
    expect(await authenticateApiToken(ctx.db, token)).toBeNull();
    expect(await verifyCredentials(ctx.db, 'alice', password('alice'))).toBeNull();
    await bob.agent.get('/me').expect(200);
    const list = await admin.agent.get('/jobs?createdBy=alice').expect(200);
    expect(list.body.jobs).toHaveLength(2);
    expect(await count(ctx.db, 'Jobs')).toBe(2);
  });

  test('refuses an unknown user (65) and a missing or extra NAME (64)', async () => {
    await addUser(ctx.db, 'alice');
    refused(['user', 'delete', 'nobody'], 65, /nobody/);
    refused(['user', 'delete'], 64, /NAME/);
    refused(['user', 'delete', 'alice', 'bob'], 64, /NAME/);
    expect(await count(ctx.db, 'Users')).toBe(1);
  });
});

describe('container-jobs user sessions NAME [--revoke]', () => {
  test("lists a user's sessions, then --revoke ends all of them and no one else's", async () => {
    await addUser(ctx.db, 'alice');
    await addUser(ctx.db, 'bob');
    const one = await login(ctx.api, 'alice');
    const two = await login(ctx.api, 'alice');
    const bob = await login(ctx.api, 'bob');
    await one.agent.get('/me').expect(200);

    const listed = ok(['user', 'sessions', 'alice']).trimEnd().split('\n');
    expect(listed[0]).toBe('2 session(s) of "alice"');
    expect(listed.slice(1)).toHaveLength(2);
    for (const line of listed.slice(1)) expect(line).toMatch(/^last seen \S+.*\tlogged in \S+.*\texpires \S+/);

    expect(ok(['user', 'sessions', 'alice', '--revoke'])).toMatch(/ended 2 session\(s\) of "alice"/);
    await one.agent.get('/me').expect(401);
    await two.agent.get('/me').expect(401);
    await bob.agent.get('/me').expect(200);
    expect(ok(['user', 'sessions', 'alice'])).toBe('0 session(s) of "alice"\n');
    // Logging in again works: revoking ends sessions, not the account.
    await login(ctx.api, 'alice');
  });

  test('refuses an unknown user (65) and a missing NAME (64)', () => {
    refused(['user', 'sessions', 'nobody'], 65, /nobody/);
    refused(['user', 'sessions', 'nobody', '--revoke'], 65, /nobody/);
    refused(['user', 'sessions'], 64, /NAME/);
  });
});
