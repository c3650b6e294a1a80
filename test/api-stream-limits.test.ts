// SPEC §11, live streams: JOB_STREAMS_PER_USER (429 too_many_streams), a slow reader's bounded buffer,
// credentials re-checked while a stream is open; and /status pages of long lines written in pieces.
import http from 'node:http';
import net from 'node:net';
import { createApiToken, revokeApiToken } from '../models/users';
import { StreamSlots, type OpenStream } from '../routers/stream-slots';
import {
  addUser,
  insertOutput,
  login,
  parseSse,
  setStatus,
  startApi,
  useApi,
  LiveStream,
  type Api,
  type SseEvent,
} from './helpers/api';

const ctx = useApi({ users: { alice: false, bob: false } });

const RECHECK_MS = 50;
const LINE_BYTES = 16 * 1024;

/** Resolves once `condition` holds, checking every 20 ms (no deadline: jest's timeout is the bound). */
async function until(condition: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await condition())) await new Promise((resolve) => setTimeout(resolve, 20));
}

function enqueue(createdBy = 'alice'): Promise<number> {
  return ctx.api.queue
    .enqueue({ task: 'greet', params: { name: 'Ann' }, command: "echo 'hello Ann'", createdBy })
    .then((job) => job.id);
}

/** A stream opened and seen to be live (its first `status` event arrived). */
async function openLive(api: Api, jobId: number, headers: Record<string, string>): Promise<LiveStream> {
  const stream = new LiveStream(`${api.origin}/jobs/${jobId}/stream`, headers);
  await stream.waitFor((e) => e.event === 'status');
  return stream;
}

/** Disconnects a client and waits until its request is gone. */
async function closeStream(stream: LiveStream): Promise<void> {
  stream.close();
  await stream.finished.catch(() => undefined);
}

/** One GET's status and body, read whole (for answers that are not event streams). */
function getOnce(api: Api, path: string, headers: Record<string, string>) {
  return new Promise<{ status: number; body: string; req: http.ClientRequest }>((resolve, reject) => {
    const req = http.get(`${api.origin}${path}`, { headers }, (res) => {
      if (res.statusCode === 200) {
        res.resume();
        return resolve({ status: 200, body: '', req });
      }
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, req }));
    });
    req.on('error', reject);
  });
}

/** `rows` lines of LINE_BYTES each, numbered so order and completeness can be checked. */
function longLines(rows: number): string[] {
  return Array.from({ length: rows }, (_, i) => `row ${i + 1} `.padEnd(LINE_BYTES, 'x'));
}

async function jobWithLongLines(rows: number): Promise<{ id: number; lines: string[] }> {
  const id = await enqueue();
  const lines = longLines(rows);
  for (let i = 0; i < rows; i += 64) await insertOutput(ctx.db, id, lines.slice(i, i + 64), i + 1);
  await setStatus(ctx.db, id, 'success', { exitCode: 0 });
  return { id, lines };
}

describe('JOB_STREAMS_PER_USER', () => {
  let api: Api;
  beforeAll(async () => {
    api = await startApi(ctx.db, ctx.database, { env: { JOB_STREAMS_PER_USER: '3' } });
  });
  afterAll(() => api.close());

  test('the 4th open stream of a user is 429 too_many_streams; other users are not counted; a closed or ended stream frees its slot', async () => {
    const id = await enqueue();
    const cookie = { Cookie: ctx.cookies.alice };
    const open = [await openLive(api, id, cookie), await openLive(api, id, cookie), await openLive(api, id, cookie)];
    const refused = await getOnce(api, `/jobs/${id}/stream`, cookie);
    expect(refused.status).toBe(429);
    expect(JSON.parse(refused.body)).toEqual({
      error: { code: 'too_many_streams', message: expect.stringContaining('3 streams') },
    });
    // A bearer token of the same user counts against the same slots.
    const { token } = await createApiToken(ctx.db, 'alice', 'ci');
    expect((await getOnce(api, `/jobs/${id}/stream`, { Authorization: `Bearer ${token}` })).status).toBe(429);
    // Bob's own job: his slots are his.
    const bobs = await enqueue('bob');
    const bob = await openLive(api, bobs, { Cookie: ctx.cookies.bob });

    // A client that disconnects frees its slot (as soon as the server sees the close).
    await closeStream(open[0]);
    let fourth: LiveStream | null = null;
    await until(async () => {
      const attempt = new LiveStream(`${api.origin}/jobs/${id}/stream`, cookie);
      const first = await Promise.race([attempt.waitFor((e) => e.event === 'status'), attempt.finished]);
      if (Array.isArray(first)) return false; // 429: the response ended without events
      fourth = attempt;
      return true;
    });
    expect(fourth).not.toBeNull();
    expect((await getOnce(api, `/jobs/${id}/stream`, cookie)).status).toBe(429);

    // The job ends: every stream sends `end` and frees its slot, so three new ones fit again.
    await setStatus(ctx.db, id, 'success', { exitCode: 0 });
    for (const stream of [open[1], open[2], fourth!]) {
      const events = await stream.finished;
      expect(events[events.length - 1].event).toBe('end');
    }
    for (let i = 0; i < 3; i++) {
      const again = await getOnce(api, `/jobs/${id}/stream`, cookie);
      expect(again.status).toBe(200);
    }
    await closeStream(bob);
  });
});

describe('an open stream re-checks its credentials', () => {
  let api: Api;
  beforeAll(async () => {
    api = await startApi(ctx.db, ctx.database, { streamRecheckMs: RECHECK_MS });
  });
  afterAll(() => api.close());

  const outputAndStatus = (events: SseEvent[]) => events.filter((e) => e.event !== 'end');

  test('a session that logged out: its stream ends; another session of the same user keeps streaming', async () => {
    const id = await enqueue();
    const session = await login(api, 'alice');
    const doomed = await openLive(api, id, { Cookie: session.cookie });
    const other = await openLive(api, id, { Cookie: ctx.cookies.alice });
    await session.agent.post('/logout').set('Origin', api.origin).set('Content-Type', 'application/json').expect(204);
    const events = await doomed.finished;
    expect(events.map((e) => e.event)).not.toContain('end');
    expect(outputAndStatus(events).length).toBeGreaterThan(0);
    // The other session's stream is still live: a new row reaches it.
    await insertOutput(ctx.db, id, ['still here'], 1);
    await other.waitFor((e) => e.event === 'output' && JSON.parse(e.data).output === 'still here');
    await closeStream(other);
  });

  test('a revoked token: its stream ends', async () => {
    const id = await enqueue();
    const { id: tokenId, token } = await createApiToken(ctx.db, 'alice', 'ci');
    const stream = await openLive(api, id, { Authorization: `Bearer ${token}` });
    expect(await revokeApiToken(ctx.db, tokenId)).toBe(true);
    const events = await stream.finished;
    expect(events.map((e) => e.event)).not.toContain('end');
  });

  test('a deleted user: their stream ends', async () => {
    await addUser(ctx.db, 'carol');
    const session = await login(api, 'carol');
    const id = await enqueue('carol');
    const stream = await openLive(api, id, { Cookie: session.cookie });
    await ctx.db.models.User.destroy({ where: { username: 'carol' } });
    const events = await stream.finished;
    expect(events.map((e) => e.event)).not.toContain('end');
  });
});

describe('a reader that does not read', () => {
  const slots = new StreamSlots(8);
  let api: Api;
  beforeAll(async () => {
    api = await startApi(ctx.db, ctx.database, { streamSlots: slots });
  });
  afterAll(() => api.close());

  test('the server stops reading rows once the socket is full, and sends every row in order once it reads', async () => {
    const rows = 2048; // 32 MiB of output: far more than the kernel's socket buffers take
    const { id, lines } = await jobWithLongLines(rows);
    const socket = net.connect(Number(new URL(api.origin).port), '127.0.0.1');
    socket.pause();
    socket.write(`GET /jobs/${id}/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: ${ctx.cookies.alice}\r\n\r\n`);
    let stream: OpenStream | undefined;
    await until(() => {
      stream = slots.open('alice').find((s) => s.jobId === id);
      return stream?.waitingForDrain === true;
    });
    const blocked = { ...stream! };
    expect(blocked.rowsRead).toBeGreaterThan(0);
    expect(blocked.rowsRead).toBeLessThan(rows / 2);
    expect(blocked.bytesRead).toBeLessThan(16 * 1024 * 1024);
    // What the server holds besides the kernel's buffers: the response's own buffer, about one event.
    expect(blocked.buffered).toBeLessThanOrEqual(1024 * 1024);

    // Meanwhile the server answers others, and the blocked stream reads nothing more.
    const small = await enqueue();
    await insertOutput(ctx.db, small, ['a', 'b'], 1);
    await setStatus(ctx.db, small, 'success', { exitCode: 0 });
    const other = new LiveStream(`${api.origin}/jobs/${small}/stream`, { Cookie: ctx.cookies.alice });
    expect((await other.finished).filter((e) => e.event === 'output')).toHaveLength(2);
    expect(stream!.rowsRead).toBe(blocked.rowsRead);
    expect(stream!.waitingForDrain).toBe(true);

    // The client reads at last: every row, once each, in order, then `end`.
    const text = await new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        if (chunk.toString('latin1').includes('event: end\n')) resolve(Buffer.concat(chunks).toString('utf8'));
      });
      socket.on('error', reject);
      socket.resume();
    });
    socket.destroy();
    const body = text.slice(text.indexOf('\r\n\r\n') + 4);
    const dechunked = body.replace(/\r\n[0-9a-f]+\r\n/g, '').replace(/^[0-9a-f]+\r\n/, '');
    const events = parseSse(dechunked);
    const outputs = events.filter((e) => e.event === 'output').map((e) => JSON.parse(e.data).output as string);
    expect(outputs).toHaveLength(rows);
    expect(outputs.every((line, i) => line === lines[i])).toBe(true);
    expect(events[events.length - 1].event).toBe('end');
    await until(() => slots.open('alice').length === 0);
  });
});

describe('GET /jobs/:id/status with long lines', () => {
  test('1000 rows of 16 KiB: the same JSON array as ever, written in pieces', async () => {
    const { id, lines } = await jobWithLongLines(1000);
    const res = await ctx.as.alice.get(`/jobs/${id}/status`).expect(200);
    expect(res.headers['content-type']).toMatch(/^application\/json; charset=utf-8/);
    expect(res.headers['content-length']).toBeUndefined(); // written in pieces
    const rows = res.body as { id: number; jobId: number; output: string }[];
    expect(rows).toHaveLength(1000);
    expect(rows.map((r) => r.output)).toEqual(lines);
    expect(Object.keys(rows[0]).sort()).toEqual(['createdAt', 'id', 'jobId', 'output', 'stream']);
    expect(rows.every((r, i) => r.jobId === id && (i === 0 || r.id > rows[i - 1].id))).toBe(true);

    const page = await ctx.as.alice.get(`/jobs/${id}/status?offset=100&limit=300`).expect(200);
    expect((page.body as { output: string }[]).map((r) => r.output)).toEqual(lines.slice(100, 400));
    const after = await ctx.as.alice.get(`/jobs/${id}/status?afterId=${rows[949].id}&limit=1000`).expect(200);
    expect((after.body as { output: string }[]).map((r) => r.output)).toEqual(lines.slice(950));
    // A short page is one read and one ordinary response.
    const short = await ctx.as.alice.get(`/jobs/${id}/status?limit=5`).expect(200);
    expect(short.headers['content-length']).toBeDefined();
    expect((short.body as { output: string }[]).map((r) => r.output)).toEqual(lines.slice(0, 5));
  });
});
