// The dashboard parts of the page (README, "Web UI"): the icon and the "not found" page, the jobs
// list's counts, search, task filter, error words and durations, Cancel's confirmation, the output's
// times and the log download, and the form's checks in words. Real app, real runner, Debian's
// Chromium (see ./chromium.ts).
import fs from 'node:fs';
import type { Page } from 'playwright-core';
import { addUser, count, insertOutput, login, type Agent } from '../helpers/api';
import { jobRow, waitFor } from '../helpers/runner';
import { describeInChromium, jobIdOf, overflow, titleStatus, useChromium, useUiApp } from './chromium';
import { sqlOf } from '../helpers/database';

const app = useUiApp('cj_test_dashboard');

interface JobFields {
  task?: string;
  createdBy: string | null;
  status: string;
  exitCode?: number | null;
  error?: string | null;
  cancelledBy?: string | null;
  startedAt?: string | null;
  finishedAt?: string | null;
}

describeInChromium('the dashboard in Chromium', () => {
  const browsing = useChromium(app);
  const { logIn, shot } = browsing;
  const openPage = (viewport = { width: 1280, height: 800 }) => browsing.openPage({ viewport });
  const agents: Record<string, Agent> = {};

  beforeAll(async () => {
    // dana's and erin's jobs are theirs alone in this file, so their counts are exact.
    await addUser(app.db, 'dana');
    for (const user of ['alice', 'dana']) agents[user] = (await login(app.api, user)).agent;
  });

  /** A job written straight into Jobs; a pending one is not due before 2100, so no runner takes it. */
  async function insertJob(job: JobFields): Promise<number> {
    return sqlOf(app.db).insert(
      `INSERT INTO Jobs (task, params, command, createdBy, status, exitCode, error, cancelledBy, startedAt, finishedAt, runAt)
       VALUES (?, '{"message":"x"}', 'echo x', ?, ?, ?, ?, ?, ?, ?, '2100-01-01 00:00:00')`,
      [
        job.task ?? 'echo',
        job.createdBy,
        job.status,
        job.exitCode ?? null,
        job.error ?? null,
        job.cancelledBy ?? null,
        job.startedAt ?? null,
        job.finishedAt ?? null,
      ],
    );
  }

  const row = (page: Page, id: number) => page.locator(`tr[data-job-id="${id}"]`);
  const cell = (page: Page, id: number, label: string) => row(page, id).locator(`td[data-label="${label}"]`);
  const countOf = (page: Page, status: string) => page.locator(`.counts [data-count="${status}"] .count-n`);
  const listedIds = async (page: Page) =>
    (await page.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-job-id')))).map(Number);

  test('the icon loads, no request of the page fails, and an unknown address says "Page not found"', async () => {
    const { id } = await app.api.queue.enqueue({
      task: 'echo',
      params: { message: 'hello' },
      command: 'echo hello',
      createdBy: 'alice',
    });
    const page = await openPage();
    await logIn(page, 'alice');
    const failed: string[] = [];
    page.on('response', (res) => {
      if (res.status() >= 400) failed.push(`${res.status()} ${res.url()}`);
    });
    await page.getByRole('heading', { name: 'My jobs' }).waitFor();
    await page.reload();
    await page.getByRole('heading', { name: 'My jobs' }).waitFor();
    const icon = await page.evaluate<{ href: string; status: number; icoStatus: number; type: string }>(`(async () => {
      const href = document.querySelector('link[rel="icon"]').href;
      const res = await fetch(href);
      const ico = await fetch('/favicon.ico');
      return { href, status: res.status, icoStatus: ico.status, type: ico.headers.get('content-type') };
    })()`);
    expect(icon).toEqual({
      href: `${app.api.origin}/favicon.svg`,
      status: 200,
      icoStatus: 200,
      type: expect.stringMatching(/^image\/svg\+xml/),
    });
    await page.goto(`${app.api.origin}/#/new`);
    await page.getByRole('heading', { name: 'New job' }).waitFor();
    await page.goto(`${app.api.origin}/#/jobs/${id}`);
    await titleStatus(page, 'success').waitFor();
    expect(failed).toEqual([]);

    for (const hash of ['#/nope', '#/job', '#/jobs/12/extra', '#/schedules/x']) {
      await page.goto(`${app.api.origin}/${hash}`);
      await page.getByText(`There is no page at ${hash}.`).waitFor();
      expect(await page.getByRole('heading', { name: 'Page not found' }).count()).toBe(1);
    }
    await shot(page, 'ui-not-found.png');
    await page.getByRole('link', { name: '← All jobs' }).click();
    await page.getByRole('heading', { name: 'My jobs' }).waitFor();
    // #/ and #/login (logged in already) are the list.
    await page.goto(`${app.api.origin}/#/`);
    await page.getByRole('heading', { name: 'My jobs' }).waitFor();
  });

  test('the list: counts by status as filters, search, task filter, error words, sub-second durations, all in the URL', async () => {
    const fast = await insertJob({
      createdBy: 'dana',
      status: 'success',
      exitCode: 0,
      startedAt: '2026-01-01 10:00:00.000',
      finishedAt: '2026-01-01 10:00:00.400',
    });
    const exited = await insertJob({
      task: 'fail',
      createdBy: 'dana',
      status: 'failure',
      exitCode: 3,
      error: 'exit_code',
    });
    const shutdown = await insertJob({ task: 'sleep', createdBy: 'dana', status: 'failure', error: 'shutdown' });
    const lost = await insertJob({ task: 'sleep', createdBy: 'dana', status: 'failure', error: 'runner_lost' });
    const slow = await insertJob({ task: 'count', createdBy: 'dana', status: 'failure', error: 'timeout' });
    const cancelled = await insertJob({
      createdBy: 'dana',
      status: 'cancelled',
      error: 'cancelled',
      cancelledBy: 'dana',
    });
    const waiting = await insertJob({ createdBy: 'dana', status: 'pending' });
    const erins = [
      await insertJob({ createdBy: 'erin', status: 'success' }),
      await insertJob({ createdBy: 'erin', status: 'failure', error: 'spawn_failed' }),
    ];

    const page = await openPage();
    await logIn(page, 'dana');
    await page.getByRole('heading', { name: 'My jobs' }).waitFor();
    await countOf(page, 'all').filter({ hasText: '7' }).waitFor();
    const counts = Object.fromEntries(
      await Promise.all(
        ['pending', 'running', 'success', 'failure', 'cancelled'].map(async (s) => [
          s,
          await countOf(page, s).textContent(),
        ]),
      ),
    );
    expect(counts).toEqual({ pending: '1', running: '0', success: '1', failure: '4', cancelled: '1' });
    await page.locator('.pager', { hasText: '1–7 of 7' }).waitFor();
    expect(await cell(page, exited, 'Error').textContent()).toBe('exited with code 3');
    expect(await cell(page, shutdown, 'Error').textContent()).toBe('stopped at runner shutdown');
    expect(await cell(page, lost, 'Error').textContent()).toBe('runner lost');
    expect(await cell(page, slow, 'Error').textContent()).toBe('timed out');
    expect(await cell(page, cancelled, 'Error').textContent()).toBe('cancelled by dana');
    expect(await cell(page, exited, 'Error').locator('span').getAttribute('title')).toBe('exit_code');
    expect(await cell(page, fast, 'Error').textContent()).toBe('—');
    expect(await cell(page, fast, 'Duration').textContent()).toBe('0.4 s');
    // Exact times on hover: when it was created, and when it ran.
    expect(await cell(page, fast, 'Duration').locator('span').getAttribute('title')).toContain('→');
    expect(await cell(page, fast, 'Created').locator('time').getAttribute('title')).toBeTruthy();
    expect(await cell(page, waiting, 'Duration').textContent()).toBe('—');
    await shot(page, 'ui-list-counts.png');

    // A count is a filter, kept in the URL.
    await page.locator('.counts [data-count="failure"]').click();
    await page.waitForURL(/#\/jobs\?status=failure$/);
    await page.locator('.pager', { hasText: '1–4 of 4' }).waitFor();
    expect(await listedIds(page)).toEqual([slow, lost, shutdown, exited]);
    expect(await page.locator('.counts [data-count="failure"]').getAttribute('aria-current')).toBe('true');
    expect(await page.getByLabel('Status').inputValue()).toBe('failure');

    // Search by id, then by a piece of the task's name; a reload keeps it.
    await page.getByLabel('Search').fill(`#${exited}`);
    await page.getByLabel('Search').press('Enter');
    await page.waitForURL(new RegExp(`q=%23${exited}`));
    await page.locator('.pager', { hasText: '1–1 of 1' }).waitFor();
    expect(await listedIds(page)).toEqual([exited]);
    await page.getByLabel('Search').fill('SLE');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/q=SLE&status=failure/);
    await page.locator('.pager', { hasText: '1–2 of 2' }).waitFor();
    await page.reload();
    await page.locator('.pager', { hasText: '1–2 of 2' }).waitFor();
    expect(await listedIds(page)).toEqual([lost, shutdown]);
    expect(await page.getByLabel('Search').inputValue()).toBe('SLE');
    // The counts follow the search, whatever the status.
    expect(await countOf(page, 'all').textContent()).toBe('2');

    // Clear, then the task filter (the tasks of the task file).
    await page.getByRole('link', { name: 'Clear' }).click();
    await page.waitForURL(/#\/jobs$/);
    await page.locator('.pager', { hasText: '1–7 of 7' }).waitFor();
    await page.getByLabel('Task').selectOption('sleep');
    await page.waitForURL(/#\/jobs\?task=sleep$/);
    await page.locator('.pager', { hasText: '1–2 of 2' }).waitFor();
    expect(await listedIds(page)).toEqual([lost, shutdown]);
    expect(await countOf(page, 'all').textContent()).toBe('2');
    // Another user's jobs are never found, nor counted.
    await page.goto(`${app.api.origin}/#/jobs?q=erin`);
    await page.getByText('No jobs match this filter.').waitFor();
    expect(await countOf(page, 'all').textContent()).toBe('0');
    await page.goto(`${app.api.origin}/#/jobs?q=${erins[0]}`);
    await waitFor(async () => (await page.getByLabel('Search').inputValue()) === String(erins[0]));
    await page.getByText('No jobs match this filter.').waitFor();

    // An admin counts everyone's, and filters by owner.
    const admin = await openPage();
    await logIn(admin, 'root', '#/jobs?createdBy=erin');
    await admin.locator('.pager', { hasText: '1–2 of 2' }).waitFor();
    expect(await listedIds(admin)).toEqual([erins[1], erins[0]]);
    expect(await cell(admin, erins[1], 'Error').textContent()).toBe('could not start');
    expect(await countOf(admin, 'failure').textContent()).toBe('1');
    await admin.goto(`${app.api.origin}/#/jobs?q=erin`);
    await admin.locator('.pager', { hasText: '1–2 of 2' }).waitFor();

    // A phone: the counts wrap, nothing wider than the screen.
    const phone = await openPage({ width: 390, height: 844 });
    await logIn(phone, 'dana');
    await countOf(phone, 'all').filter({ hasText: '7' }).waitFor();
    expect(await overflow(phone)).toBeLessThanOrEqual(0);
    await shot(phone, 'ui-phone-list-counts.png');
  });

  test('Cancel asks first, in the page; its notice goes once the job is cancelled', async () => {
    const { id, page } = await browsing.openRunningJob('alice');
    const confirm = page.getByRole('alertdialog', { name: 'Cancel this job?' });
    await page.getByRole('button', { name: 'Cancel job' }).click();
    await confirm.waitFor();
    expect(await confirm.textContent()).toContain(`Cancel job #${id}? Its process is stopped`);
    await shot(page, 'ui-cancel-confirm.png');
    await page.getByRole('button', { name: 'Keep it' }).click();
    await confirm.waitFor({ state: 'hidden' });
    expect((await jobRow(app.db, id)).status).toBe('running');

    await page.getByRole('button', { name: 'Cancel job' }).click();
    await page.getByRole('button', { name: 'Yes, cancel it' }).click();
    await titleStatus(page, 'cancelled').waitFor();
    await page.locator('.notice').waitFor({ state: 'hidden' });
    await confirm.waitFor({ state: 'hidden' });
    expect(await page.getByRole('button', { name: 'Cancel job' }).isVisible()).toBe(false);
    expect(await page.locator('[data-fact="Error"]').textContent()).toBe('cancelled by alice');
    expect(browsing.dialogs).toEqual([]);
  });

  test('the output: times per line on request (remembered), and the whole log as a file', async () => {
    const id = await insertJob({ createdBy: 'alice', status: 'success', exitCode: 0 });
    const lines = Array.from({ length: 2500 }, (_, i) => `log line ${i + 1}`);
    for (let i = 0; i < lines.length; i += 500) await insertOutput(app.db, id, lines.slice(i, i + 500), i + 1);
    const page = await openPage();
    await logIn(page, 'alice', `#/jobs/${id}`);
    const last = page.locator('.output .line', { hasText: 'log line 2500' });
    await last.waitFor();
    expect(await last.locator('.tm').isVisible()).toBe(false);
    await page.getByLabel('Times').check();
    await last.locator('.tm').waitFor();
    expect(await last.locator('.tm').textContent()).toMatch(/^\d\d:\d\d:\d\d\.\d{3}$/);
    expect(await last.locator('.tx').textContent()).toBe('log line 2500');
    await shot(page, 'ui-output-times.png');
    await page.reload();
    await last.locator('.tm').waitFor();
    expect(await page.getByLabel('Times').isChecked()).toBe(true);
    await page.getByLabel('Times').uncheck();
    await last.locator('.tm').waitFor({ state: 'hidden' });

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Download log' }).click(),
    ]);
    expect(download.suggestedFilename()).toBe(`job-${id}.log`);
    expect(fs.readFileSync(await download.path(), 'utf8')).toBe(lines.join('\n') + '\n');
  });

  test('a pending job not due yet says until when', async () => {
    const res = await agents.alice
      .post('/jobs')
      .set('Origin', app.api.origin)
      .send({ task: 'echo', params: { message: 'later' }, delaySec: 3600 })
      .expect(201);
    const id = res.body.id as number;
    const page = await openPage();
    await logIn(page, 'alice', `#/jobs/${id}`);
    await page.locator('.waiting').waitFor();
    expect(await page.locator('.waiting').textContent()).toMatch(/^Waiting: not due until /);
    expect(await page.locator('.waiting').getAttribute('data-reason')).toBe('run_at');
    await agents.alice.post(`/jobs/${id}/cancel`).set('Origin', app.api.origin).send({}).expect(200);
  });

  test('the form: every field’s problem at once, in words from the schema, and nothing sent', async () => {
    const page = await openPage();
    const posts: string[] = [];
    page.on('request', (req) => {
      if (req.method() === 'POST' && new URL(req.url()).pathname === '/jobs') posts.push(req.url());
    });
    await logIn(page, 'alice', '#/new?task=deploy');
    const hint = page.locator('[data-param="tag"] .hint');
    await hint.waitFor();
    expect(await hint.textContent()).toBe('1 to 20 characters: lowercase letters, digits, “.” or “-”');
    const before = await count(app.db, 'Jobs');
    await page.locator('#param-replicas').fill('12');
    await page.locator('#param-ratio').fill('2');
    await page.locator('#param-tag').fill('V1 final!');
    await page.locator('#job-priority').fill('5');
    await page.getByRole('button', { name: 'Start job' }).click();
    const errorOf = (name: string) => page.locator(`[data-param="${name}"] .field-error`);
    await errorOf('target').waitFor();
    expect(await errorOf('target').textContent()).toBe('Choose one.');
    expect(await errorOf('replicas').textContent()).toBe('Must be a whole number from 1 to 9.');
    expect(await errorOf('ratio').textContent()).toBe('Must be a number from 0 to 1.');
    expect(await errorOf('tag').textContent()).toBe(
      'Must be 1 to 20 characters: lowercase letters, digits, “.” or “-”.',
    );
    expect(await page.locator('#job-priority-error').textContent()).toBe(
      'Positive priorities are for admins: use 0 or less.',
    );
    expect(await page.locator('.field-error:visible').count()).toBe(5);
    expect(await page.locator('.form-error').textContent()).toBe('5 fields need a change.');
    expect(await page.evaluate<string>('document.activeElement.id')).toBe('param-target');
    const shown = (await page.locator('.field-error:visible, .hint').allTextContents()).join(' ');
    expect(shown).not.toMatch(/[\^$\\]|\{\d/);
    await shot(page, 'ui-form-errors.png');
    expect(posts).toEqual([]);
    expect(await count(app.db, 'Jobs')).toBe(before);

    // The API's own words for a field (it still checks) are reworded the same way.
    const reworded = await page.evaluate<string>(
      `import('/js/param-check.js').then((m) => m.plainApiMessage('param "tag" must match pattern "^[a-z]+$"', { pattern: '^[a-z]+$' }))`,
    );
    expect(reworded).toBe('Must be at least 1 character: lowercase letters.');

    await page.locator('#param-target').selectOption('staging');
    await page.locator('#param-replicas').fill('3');
    await page.locator('#param-ratio').fill('0.5');
    await page.locator('#param-tag').fill('v1.2');
    await page.locator('#job-priority').fill('');
    await page.getByRole('button', { name: 'Start job' }).click();
    await page.waitForURL(/#\/jobs\/\d+$/);
    await waitFor(async () => (await jobRow(app.db, jobIdOf(page))).status === 'success');
    expect(posts).toHaveLength(1);
  });
});
