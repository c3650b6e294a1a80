// The jobs page (public/, served at /) in a real browser: Debian's Chromium driven by playwright-core,
// against the real app on an ephemeral port and a real in-process Runner, so job lines really arrive.
import path from 'node:path';
import type { Page } from 'playwright-core';
import { findPublicDir } from '../../routers/ui';
import type { Database } from '../../models/database';
import { count, insertOutput, type Api } from '../helpers/api';
import { ROOT, sqlOf } from '../helpers/database';
import { jobRow } from '../helpers/runner';
import { describeInChromium, enqueueSleep, jobIdOf, overflow, titleStatus, useChromium, useUiApp } from './chromium';

const app = useUiApp('cj_test_ui');

describe('serving the page', () => {
  test('GET / is the page, under the API’s Content-Security-Policy; its files are plain static files', async () => {
    const { api } = app;
    const res = await api.agent().get('/').expect(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.headers['content-security-policy']).toContain("default-src 'self'");
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.text).toContain('<script type="module" src="js/main.js"></script>');
    // Nothing inline: no script bodies, no handlers, no style attributes or elements.
    expect(res.text).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(res.text).not.toMatch(/\son[a-z]+=/i);
    expect(res.text).not.toMatch(/\sstyle=|<style/i);
    const js = await api.agent().get('/js/main.js').expect(200);
    expect(js.headers['content-type']).toMatch(/javascript/);
    await api.agent().head('/app.css').expect(200);
    // Only GET/HEAD reach the files; other methods and unknown paths are the API's JSON 404.
    const post = await api.agent().post('/index.html').expect(404);
    expect(post.body.error.code).toBe('not_found');
    expect((await api.agent().get('/nope.html').expect(404)).body.error.code).toBe('not_found');
  });

  test('public/ is found from the sources and from dist/', () => {
    const dir = path.join(ROOT, 'public');
    expect(findPublicDir(path.join(ROOT, 'routers'))).toBe(dir);
    expect(findPublicDir(path.join(ROOT, 'dist', 'routers'))).toBe(dir);
  });
});

describeInChromium('the jobs page in Chromium', () => {
  const browsing = useChromium(app);
  const { logIn, shot } = browsing;
  const openPage = (viewport = { width: 1280, height: 800 }) => browsing.openPage({ viewport });
  let db: Database;
  let api: Api;
  beforeAll(() => {
    ({ db, api } = app);
  });

  /** A job that is finished from the start, so the runner never claims it (and never writes its rows). */
  async function insertFinishedJob(createdBy: string): Promise<number> {
    return sqlOf(db).insert(
      `INSERT INTO Jobs (task, params, command, createdBy, status, exitCode, startedAt, finishedAt)
       VALUES ('echo', '{"message":"big"}', 'echo big', ?, 'success', 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`,
      [createdBy],
    );
  }

  const outputLine = (page: Page, text: string) =>
    page
      .locator('.output .line .tx')
      .filter({ hasText: new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) });

  test('log in, start a demo job from the generated form and watch its lines arrive live', async () => {
    const page = await openPage();
    await logIn(page, 'alice');
    await page.getByRole('heading', { name: 'My jobs' }).waitFor();
    await page.getByRole('link', { name: 'New job' }).first().click();
    await page.getByLabel('Task').selectOption('count');
    await page.locator('#param-to').fill('1000000');
    await page.locator('#param-delayMs').fill('100');
    await page.getByRole('button', { name: 'Start job' }).click();
    await page.waitForURL(/#\/jobs\/\d+$/);
    const id = jobIdOf(page);
    // The job counts for over a day: every line seen here came while it ran.
    await outputLine(page, '3').waitFor();
    await titleStatus(page, 'running').waitFor();
    await page.locator('.output-state', { hasText: 'live' }).waitFor();
    await outputLine(page, '12').waitFor();
    expect((await jobRow(db, id)).status).toBe('running');
    expect(await page.locator('[data-fact="Task"]').textContent()).toBe('count');
    expect(JSON.parse((await page.locator('[data-fact="Params"]').textContent())!)).toEqual({
      to: 1000000,
      delayMs: 100,
    });
    await shot(page, 'ui-live-output.png');
    await api.queue.cancelJob(id, 'alice');
  });

  test('a running job is cancelled from its page by its owner', async () => {
    const { id, page } = await browsing.openRunningJob('alice');
    await page.getByRole('button', { name: 'Cancel job' }).click();
    await page.getByRole('button', { name: 'Yes, cancel it' }).click();
    await titleStatus(page, 'cancelled').waitFor();
    await page.locator('.output-state', { hasText: 'finished' }).waitFor();
    expect(await page.getByRole('button', { name: 'Cancel job' }).isVisible()).toBe(false);
    const row = await jobRow(db, id);
    expect(row).toMatchObject({ status: 'cancelled', cancelledBy: 'alice' });
    expect(await page.locator('[data-fact="Cancel requested"]').textContent()).toContain('by alice');
  });

  test('an invalid value: the schema’s words are shown beside its field, and nothing is started', async () => {
    const page = await openPage();
    await logIn(page, 'alice', '#/new?task=deploy');
    // Every kind of field, drawn from the schema.
    expect(await page.locator('#param-target option').allTextContents()).toEqual(['choose…', 'staging', 'production']);
    expect(await page.locator('#param-dryRun').getAttribute('type')).toBe('checkbox');
    expect(await page.locator('#param-replicas').getAttribute('max')).toBe('9');
    expect(await page.locator('#param-ratio').getAttribute('step')).toBe('any');
    expect(await page.locator('[data-param="tag"] .hint').textContent()).toBe(
      '1 to 20 characters: lowercase letters, digits, “.” or “-”',
    );
    expect(await page.locator('[data-param="replicas"] .required').count()).toBe(1);
    expect(await page.locator('[data-param="tag"] .required').count()).toBe(0);
    const before = await count(db, 'Jobs');
    await page.locator('#param-target').selectOption('staging');
    await page.locator('#param-replicas').fill('12');
    await page.locator('#param-tag').fill('v1.2');
    await page.getByRole('button', { name: 'Start job' }).click();
    const error = page.locator('[data-param="replicas"] .field-error');
    await error.waitFor();
    expect(await error.textContent()).toBe('Must be a whole number from 1 to 9.');
    expect(await page.locator('#param-replicas').getAttribute('aria-invalid')).toBe('true');
    expect(await page.locator('.field-error:visible').count()).toBe(1);
    expect(page.url()).toMatch(/#\/new/);
    await shot(page, 'ui-form-error.png');
    expect(await count(db, 'Jobs')).toBe(before);
    // Fixed, it goes through.
    await page.locator('#param-replicas').fill('3');
    await page.getByRole('button', { name: 'Start job' }).click();
    await page.waitForURL(/#\/jobs\/\d+$/);
    await outputLine(page, 'staging --replicas=3 --dry-run=false --tag=v1.2').waitFor();
    await titleStatus(page, 'success').waitFor();
  });

  test('output is text: markup in a line is shown literally and never runs', async () => {
    const markup = '<img src=x onerror=alert(1)>';
    const page = await openPage();
    await logIn(page, 'alice', '#/new?task=echo');
    await page.locator('#param-message').fill(markup);
    await page.getByRole('button', { name: 'Start job' }).click();
    await page.waitForURL(/#\/jobs\/\d+$/);
    await titleStatus(page, 'success').waitFor();
    const line = outputLine(page, markup);
    await line.waitFor();
    expect(await line.textContent()).toBe(markup);
    expect(await page.locator('.output img').count()).toBe(0);
    expect(await page.evaluate<number>('document.images.length')).toBe(0);
    expect(browsing.dialogs).toEqual([]);
  });

  test("another user's job is not found, exactly like a missing one", async () => {
    const { id } = await api.queue.enqueue({
      task: 'echo',
      params: { message: 'secret' },
      command: 'echo secret',
      createdBy: 'alice',
    });
    const page = await openPage();
    await logIn(page, 'bob', `#/jobs/${id}`);
    await page.getByRole('heading', { name: 'Job not found' }).waitFor();
    expect(await page.getByText('secret').count()).toBe(0);
    await page.goto(`${api.origin}/#/jobs/${id + 100000}`);
    await page.getByRole('heading', { name: 'Job not found' }).waitFor();
    // Nor is it in bob's list.
    await page.goto(`${api.origin}/#/jobs`);
    await page.getByText('No jobs yet').waitFor();
  });

  /** The URLs of the page's requests for output rows (GET /jobs/:id/status), in the order sent. */
  function statusRequests(page: Page): string[] {
    const urls: string[] = [];
    page.on('request', (req) => {
      if (/\/jobs\/\d+\/status/.test(req.url())) urls.push(new URL(req.url()).search);
    });
    return urls;
  }
  /** The line number shown beside the output line whose text is `text`. */
  const lineNumberOf = (page: Page, text: string) =>
    outputLine(page, text).locator('xpath=preceding-sibling::span[@class="ln"]').textContent();
  const lastLineInView = (page: Page) =>
    page.locator('.output').evaluate((el) => {
      const last = [...el.querySelectorAll('.line')].pop()!;
      const a = el.getBoundingClientRect();
      const b = last.getBoundingClientRect();
      return b.top >= a.top && b.bottom <= a.bottom + 1;
    });

  test('a job with 100,000 lines opens at its end after one page, reads older pages by offset and keeps only a window of lines', async () => {
    const id = await insertFinishedJob('alice');
    const total = 100_000;
    const chunk = 5_000;
    for (let first = 1; first <= total; first += chunk) {
      const lines = Array.from({ length: chunk }, (_, i) => `line ${first + i} of the big job`);
      await insertOutput(db, id, lines, first);
    }
    const page = await openPage();
    const requests = statusRequests(page);
    await logIn(page, 'alice', `#/jobs/${id}`);
    // The end comes first: the newest page, read by offset, and not the 99 pages before it.
    await outputLine(page, `line ${total} of the big job`).waitFor();
    expect(requests.length).toBeLessThanOrEqual(3);
    expect(requests[0]).toBe(`?offset=${total - 1000}&limit=1000`);
    await page.locator('.output-count', { hasText: '100,000 lines' }).waitFor();
    expect(await lineNumberOf(page, `line ${total} of the big job`)).toBe(String(total));
    await page.locator('.output-state', { hasText: 'finished' }).waitFor();
    const lineCount = () => page.locator('.output .line').count();
    expect(await lineCount()).toBeLessThan(500);
    // Back to the top: the first page is read then, by offset.
    await page.getByRole('button', { name: 'Top' }).click();
    await outputLine(page, 'line 1 of the big job').waitFor();
    expect(requests).toContain('?offset=0&limit=1000');
    expect(await page.locator('.output .line.pending').count()).toBe(0);
    expect(await lineCount()).toBeLessThan(500);
    // Into the middle: the pages there, and only those.
    await page.locator('.output').evaluate((el) => (el.scrollTop = el.scrollHeight / 2));
    await outputLine(page, 'line 50000 of the big job').waitFor();
    expect(await lineNumberOf(page, 'line 50000 of the big job')).toBe('50000');
    expect(requests).toContain('?offset=49000&limit=1000');
    expect(await lineCount()).toBeLessThan(500);
    await page.getByRole('button', { name: 'Jump to end ↓' }).click();
    await outputLine(page, `line ${total} of the big job`).waitFor();
    await page.getByRole('button', { name: 'Jump to end ↓' }).waitFor({ state: 'hidden' });
    expect(await lineCount()).toBeLessThan(500);
    // The last line is really in view, not just in the DOM.
    expect(await lastLineInView(page)).toBe(true);
    // stderr rows (every fifth, as insertOutput writes them) are drawn apart from stdout.
    expect(await page.locator('.output .line.stderr').count()).toBeGreaterThan(0);
    // A handful of pages in all, never the whole history.
    expect(requests.length).toBeLessThanOrEqual(8);
  });

  test('a running job with earlier output: its end first, then live lines numbered after it; older lines by offset', async () => {
    const old = 5_000;
    // Pending but not due yet, so the runner leaves it while its earlier output is written.
    const id = await sqlOf(db).insert(
      `INSERT INTO Jobs (task, params, command, createdBy, runAt)
       VALUES ('count', '{"to":1000000,"delayMs":100}', 'node demo/count.js --to=1000000 --delay-ms=100', 'alice', '2100-01-01 00:00:00')`,
    );
    for (let first = 1; first <= old; first += 1000) {
      await insertOutput(
        db,
        id,
        Array.from({ length: 1000 }, (_, i) => `old line ${first + i}`),
        first,
      );
    }
    const page = await openPage();
    const requests = statusRequests(page);
    await logIn(page, 'alice', `#/jobs/${id}`);
    await outputLine(page, `old line ${old}`).waitFor();
    await page.locator('.output-state', { hasText: 'live' }).waitFor();
    expect(requests).toEqual([`?offset=${old - 1000}&limit=1000`]);
    // Due now: the runner claims it and its new lines follow the old ones (seq and line numbers alike).
    await sqlOf(db).query("UPDATE Jobs SET runAt = '2000-01-01 00:00:00' WHERE id = ?", { replacements: [id] });
    await titleStatus(page, 'running').waitFor();
    await outputLine(page, '3').waitFor();
    expect(await lineNumberOf(page, '3')).toBe(String(old + 3));
    expect(await lastLineInView(page)).toBe(true);
    // Scrolled up, it stays there while lines arrive; the top is read by offset.
    await page.getByRole('button', { name: 'Top' }).click();
    await outputLine(page, 'old line 1').waitFor();
    expect(await lineNumberOf(page, 'old line 1')).toBe('1');
    expect(requests).toContain('?offset=0&limit=1000');
    await page.getByRole('button', { name: 'Jump to end ↓' }).click();
    await page.getByRole('button', { name: 'Jump to end ↓' }).waitFor({ state: 'hidden' });
    const seen = Number(await page.locator('.output .line .tx').last().textContent());
    expect(await lineNumberOf(page, String(seen))).toBe(String(old + seen));
    await outputLine(page, String(seen + 2)).waitFor();
    expect(await lastLineInView(page)).toBe(true);
    await api.queue.cancelJob(id, 'alice');
    await titleStatus(page, 'cancelled').waitFor();
  });

  test('outputLines is a hint: when the job has fewer rows than it says, the end moves back', async () => {
    const id = await insertFinishedJob('alice');
    // Line numbers with gaps (MAX(seq) 3000, 1500 rows): offsets still count rows.
    let n = 0;
    for (const firstSeq of [1, 1001, 2501]) {
      await insertOutput(
        db,
        id,
        Array.from({ length: 500 }, () => `row ${++n}`),
        firstSeq,
      );
    }
    const page = await openPage();
    const requests = statusRequests(page);
    await logIn(page, 'alice', `#/jobs/${id}`);
    await outputLine(page, 'row 1500').waitFor();
    await page.locator('.output-count', { hasText: /^1,500 lines$/ }).waitFor();
    expect(await lineNumberOf(page, 'row 1500')).toBe('1500');
    expect(requests.slice(0, 2)).toEqual(['?offset=2000&limit=1000', '?offset=1000&limit=1000']);
    expect(await lastLineInView(page)).toBe(true);
    await page.getByRole('button', { name: 'Top' }).click();
    await outputLine(page, 'row 1').waitFor();
    expect(await lineNumberOf(page, 'row 1')).toBe('1');
  });

  test('the jobs list: status badges, owners for admins, filters and pages', async () => {
    await sqlOf(db).query(
      `INSERT INTO Jobs (task, params, createdBy, status, exitCode, startedAt, finishedAt) VALUES ${Array.from(
        { length: 55 },
        (_, i) =>
          `('echo', '{"message":"m${i}"}', 'carol', '${i % 3 ? 'success' : 'failure'}', ${i % 3 ? 0 : 1}, NULL, NULL)`,
      ).join(', ')}`,
    );
    const { id: failing } = await api.queue.enqueue({
      task: 'fail',
      params: { message: 'disk full', exitCode: 3 },
      command: "node demo/fail.js 'disk full' 3",
      createdBy: 'bob',
    });
    const sleeping = await enqueueSleep(app, 'bob');
    const page = await openPage();
    await logIn(page, 'root');
    await page.getByRole('heading', { name: 'Jobs', exact: true }).waitFor();
    await page.locator(`tr[data-job-id="${sleeping}"] .status`, { hasText: 'running' }).waitFor();
    await page.locator(`tr[data-job-id="${failing}"] .status`, { hasText: 'failure' }).waitFor();
    expect(await page.locator(`tr[data-job-id="${failing}"] td[data-label="Owner"]`).textContent()).toBe('bob');
    await shot(page, 'ui-list.png');

    // Admins filter by owner; 55 of carol's jobs are two pages.
    await page.getByLabel('Owner').fill('carol');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/createdBy=carol/);
    await page.locator('.pager', { hasText: '1–50' }).waitFor();
    expect(await page.locator('tbody tr').count()).toBe(50);
    await page.getByRole('link', { name: 'Older →' }).click();
    await page.locator('.pager', { hasText: '51–55' }).waitFor();
    expect(await page.locator('tbody tr').count()).toBe(5);
    expect(await page.getByRole('link', { name: 'Older →' }).isVisible()).toBe(false);
    // By status.
    await page.getByLabel('Status').selectOption('running');
    await page.waitForURL(/status=running/);
    await page.getByText('No jobs match this filter.').waitFor();
    await page.getByLabel('Owner').fill('');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.locator(`tr[data-job-id="${sleeping}"]`).waitFor();
    expect(new Set(await page.locator('tbody .status').allTextContents())).toEqual(new Set(['running']));

    // An admin may cancel another user's running job.
    await page.locator(`tr[data-job-id="${sleeping}"] a`).click();
    await page.getByRole('button', { name: 'Cancel job' }).click();
    await page.getByRole('button', { name: 'Yes, cancel it' }).click();
    await titleStatus(page, 'cancelled').waitFor();
    expect((await jobRow(db, sleeping)).cancelledBy).toBe('root');

    // A user sees only their own jobs, and no owner filter.
    const bobPage = await openPage();
    await logIn(bobPage, 'bob');
    await bobPage.getByRole('heading', { name: 'My jobs' }).waitFor();
    await bobPage.locator(`tr[data-job-id="${failing}"]`).waitFor();
    expect(new Set(await bobPage.locator('td[data-label="Owner"]').allTextContents())).toEqual(new Set(['bob']));
    expect(await bobPage.getByLabel('Owner').count()).toBe(0);
  });

  test('logging out, and a session that ends, both lead back to the login form', async () => {
    const page = await openPage();
    await logIn(page, 'alice');
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('heading', { name: 'Log in' }).waitFor();
    await page.getByLabel('Username').fill('alice');
    await page.getByLabel('Password').fill('wrong password');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByText('Wrong username or password.').waitFor();
    await logIn(page, 'alice', '#/new');
    await page.getByRole('heading', { name: 'New job' }).waitFor();
    // The session is gone on the server: the next request answers 401 and the page asks again.
    await sqlOf(db).query('DELETE FROM Sessions');
    await page.getByRole('link', { name: 'Jobs', exact: true }).click();
    await page.getByRole('heading', { name: 'Log in' }).waitFor();
    expect(await page.locator('#nav').isVisible()).toBe(false);
  });

  test('phone width: one column, nothing wider than the screen', async () => {
    const { id } = await api.queue.enqueue({
      task: 'fail',
      params: { message: 'a rather long message that would not fit on one line of a phone', exitCode: 2 },
      command: "node demo/fail.js 'a rather long message that would not fit on one line of a phone' 2",
      createdBy: 'alice',
    });
    const page = await openPage({ width: 390, height: 844 });
    await logIn(page, 'alice');
    await page.locator(`tr[data-job-id="${id}"] .status`, { hasText: 'failure' }).waitFor();
    expect(await overflow(page)).toBeLessThanOrEqual(0);
    await shot(page, 'ui-phone-list.png');
    await page.locator(`tr[data-job-id="${id}"] a`).click();
    await outputLine(page, 'a rather long message that would not fit on one line of a phone').waitFor();
    expect(await overflow(page)).toBeLessThanOrEqual(0);
    await shot(page, 'ui-phone.png');
    await page.goto(`${api.origin}/#/new?task=deploy`);
    await page.locator('#param-replicas').waitFor();
    expect(await overflow(page)).toBeLessThanOrEqual(0);
  });
});
