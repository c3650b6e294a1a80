// The operators' parts of the page (README, "Web UI"): the admins' Runners view (slots, running jobs,
// last report, a stale runner marked), a param's title and help text in the form, Copy log, and whole
// rows as links in the jobs list (whose picture is the README's, docs/ui-jobs.png). Real app, real
// runner, Debian's Chromium (see ./chromium.ts).
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { RUNNER_REPORT_VERSION } from '../../models/metrics';
import { seedSqlFor } from '../../models/sql';
import { ROOT } from '../helpers/database';
import { RUNNER_ID, waitFor } from '../helpers/runner';
import {
  ARTIFACTS,
  describeInChromium,
  enqueueSleep,
  jobIdOf,
  overflow,
  titleStatus,
  useApiClients,
  useChromium,
  useUiApp,
} from './chromium';

const app = useUiApp('cj_test_operators');

/** Where the README's picture of the jobs list is kept; this file's test writes its source. */
const README_PICTURE = path.join(ROOT, 'docs', 'ui-jobs.png');

describeInChromium('the operators’ views in Chromium', () => {
  const browsing = useChromium(app);
  const { openPage, logIn, shot } = browsing;
  const { agents, postJob } = useApiClients(app);

  const jobOf = async (id: number) =>
    (await agents.root.get(`/jobs/${id}`).expect(200)).body as { status: string; outputLines: number };
  const untilStatus = (id: number, status: string) => waitFor(async () => (await jobOf(id)).status === status);

  /** A runner's report row as another host's runner left it, `ageMs` ago on the database clock. */
  async function insertRunner(id: string, ageMs: number, extra: object): Promise<void> {
    const report = {
      version: RUNNER_REPORT_VERSION,
      metrics: [
        { name: 'container_jobs_runner_slots', help: 'slots', type: 'gauge', values: [{ labels: {}, value: 2 }] },
      ],
      reportMs: 15_000,
      ...extra,
    };
    const { driver } = app.db;
    await app.db.sequelize.query(
      seedSqlFor(
        driver.dialect,
        `INSERT INTO JobRunners (id, startedAt, seenAt, report) VALUES (?, ${driver.ago(ageMs + 3_600_000)}, ${driver.ago(ageMs)}, ?)`,
      ),
      { replacements: [id, JSON.stringify(report)] },
    );
  }

  const runnerRow = (page: Page, id: string) => page.locator(`tr[data-runner="${id}"]`);
  const runnerCell = (page: Page, id: string, label: string) =>
    runnerRow(page, id).locator(`td[data-label="${label}"]`);

  // First in the file: no other test's job is running yet, so the slots in use are this test's.
  test('Runners (admins): each runner’s slots in use, running jobs and last report; a silent one marked stale', async () => {
    await insertRunner('gone-host:4242', 5 * 60_000, { host: 'gone-host', pid: 4242 });
    await insertRunner('old-host:77', 60 * 60_000, { host: 'old-host', pid: 77, stopped: true });
    const id = await enqueueSleep(app, 'alice');
    await untilStatus(id, 'running');

    const page = await openPage();
    await logIn(page, 'root');
    await page.locator('#nav').getByRole('link', { name: 'Runners' }).click();
    await page.getByRole('heading', { name: 'Runners' }).waitFor();
    await runnerRow(page, RUNNER_ID).waitFor();
    expect(await runnerCell(page, RUNNER_ID, 'State').textContent()).toBe('live');
    expect(await runnerCell(page, RUNNER_ID, 'Slots used').textContent()).toBe('1 / 4');
    expect(await runnerCell(page, RUNNER_ID, 'Running jobs').textContent()).toBe(`#${id} sleep`);
    expect(await runnerCell(page, RUNNER_ID, 'Runner').textContent()).toContain(`Node ${process.version}`);
    // The last report: how long ago (the database's clock), and the exact time on hover.
    const reported = runnerCell(page, RUNNER_ID, 'Last report').locator('time');
    expect(await reported.textContent()).toMatch(/^(just now|.+ ago)$/);
    const at = await reported.getAttribute('datetime');
    expect(await reported.getAttribute('title')).toBe(
      await page.evaluate<string>(`new Date(${JSON.stringify(at)}).toLocaleString()`),
    );

    // The silent one: stale, in words, after the live one; the one that said it stopped is not stale.
    const stale = runnerRow(page, 'gone-host:4242');
    expect(await stale.getAttribute('class')).toBe('runner-stale');
    expect(await runnerCell(page, 'gone-host:4242', 'State').textContent()).toMatch(
      /^staleno report for \d+ min \d+ s: it died or lost the database$/,
    );
    expect(await runnerCell(page, 'gone-host:4242', 'Runner').textContent()).toBe('gone-host:4242gone-host, pid 4242');
    expect(await runnerCell(page, 'gone-host:4242', 'Last report').textContent()).toMatch(/^\d+ min ago$/);
    expect(await runnerCell(page, 'old-host:77', 'State').textContent()).toContain('stopped');
    expect(
      await page.locator('tr[data-runner]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-runner'))),
    ).toEqual([RUNNER_ID, 'gone-host:4242', 'old-host:77']);
    expect(await page.locator('.runners-summary').textContent()).toBe(
      '1 live runner, 1 of 4 slots in use; 1 stale; 1 stopped',
    );
    await shot(page, 'ui-runners.png');

    // A running job's link opens its page.
    await runnerCell(page, RUNNER_ID, 'Running jobs')
      .getByRole('link', { name: `#${id}` })
      .click();
    await titleStatus(page, 'running').waitFor();
    expect(jobIdOf(page)).toBe(id);
    await agents.alice.post(`/jobs/${id}/cancel`).set('Origin', app.api.origin).send({}).expect(200);

    const phone = await openPage({ viewport: { width: 390, height: 844 } });
    await logIn(phone, 'root', '#/runners');
    await runnerRow(phone, 'gone-host:4242').waitFor();
    expect(await overflow(phone)).toBeLessThanOrEqual(0);
    await shot(phone, 'ui-phone-runners.png');
  });

  test('a user sees no Runners link; GET /runners is 403 for them, and #/runners shows it as text', async () => {
    expect((await agents.bob.get('/runners').expect(403)).body.error.code).toBe('admin_only');
    const page = await browsing.openAdminViewAs('bob', 'runners');
    expect(await page.locator('tr[data-runner]').count()).toBe(0);
    // Admins have the link.
    const admin = await openPage();
    await logIn(admin, 'root');
    expect(await admin.locator('#nav-runners').isVisible()).toBe(true);
  });

  test('the form: a param’s title is its label, its description the help under it, read with the field', async () => {
    const page = await openPage();
    await logIn(page, 'alice', '#/new?task=deploy');
    const target = page.getByLabel('Environment');
    await target.waitFor();
    expect(await target.getAttribute('id')).toBe('param-target');
    const help = page.locator('[data-param="target"] .help');
    expect(await help.textContent()).toBe('Where the release goes: staging first, then production.');
    expect(await help.getAttribute('id')).toBe('param-target-help');
    expect(await target.getAttribute('aria-describedby')).toBe(
      'param-target-help param-target-hint param-target-error',
    );
    // A title without a description; no title: the param's name.
    expect(await page.getByLabel('Replicas').getAttribute('id')).toBe('param-replicas');
    expect(await page.locator('[data-param="replicas"] .help').count()).toBe(0);
    expect(await page.locator('#param-replicas').getAttribute('aria-describedby')).toBe(
      'param-replicas-hint param-replicas-error',
    );
    expect(await page.locator('[data-param="tag"] label').textContent()).toBe('tag (optional)');
    // An error joins the help and the hint under the field.
    await page.getByRole('button', { name: 'Start job' }).click();
    await page.locator('[data-param="target"] .field-error', { hasText: 'Choose one.' }).waitFor();
    expect(await help.isVisible()).toBe(true);
    await shot(page, 'ui-form-help.png');
  });

  test('Copy log puts the whole output on the clipboard, not only the lines the page has read', async () => {
    const id = await postJob('alice', { task: 'count', params: { to: 2500, delayMs: 0 } });
    await untilStatus(id, 'success');
    const whole = (await agents.alice.get(`/jobs/${id}/log.txt`).expect(200)).text;
    expect(whole.split('\n')).toHaveLength(2502);

    const page = await openPage({ permissions: ['clipboard-read', 'clipboard-write'] });
    await logIn(page, 'alice', `#/jobs/${id}`);
    await page.locator('.output-state', { hasText: 'finished' }).waitFor();
    await page.getByRole('button', { name: 'Copy log' }).click();
    await page.locator('.notice', { hasText: 'Copied the whole log (2,501 lines).' }).waitFor();
    expect(await page.evaluate<string>('navigator.clipboard.readText()')).toBe(whole);

    // Refused by the API (the job went away meanwhile): said under the title, nothing copied.
    await page.evaluate('navigator.clipboard.writeText("before")');
    await page.route(`**/jobs/${id}/log.txt`, (route) =>
      route.fulfill({ status: 404, json: { error: { code: 'not_found', message: `no job ${id}` } } }),
    );
    await page.getByRole('button', { name: 'Copy log' }).click();
    await page.locator('.notice-error', { hasText: `Could not copy the log: no job ${id}` }).waitFor();
    expect(await page.evaluate<string>('navigator.clipboard.readText()')).toBe('before');
  });

  test('the jobs list (the README’s picture): a click anywhere on a row opens the job; Ctrl+click, a new tab', async () => {
    const done = await postJob('alice', { task: 'count', params: { to: 20, delayMs: 50 } });
    const failed = await postJob('bob', { task: 'fail', params: { message: 'disk full', exitCode: 3 } });
    await postJob('alice', { task: 'echo', params: { message: 'hello' } });
    const later = await postJob('bob', { task: 'echo', params: { message: 'later' }, delaySec: 3600 });
    const running = await enqueueSleep(app, 'root');
    for (const [id, status] of [
      [done, 'success'],
      [failed, 'failure'],
      [running, 'running'],
    ] as const) {
      await untilStatus(id, status);
    }

    const page = await openPage();
    await logIn(page, 'root');
    const row = (id: number) => page.locator(`tr[data-job-id="${id}"]`);
    await row(later).locator('.status', { hasText: 'pending' }).waitFor();
    await row(running).locator('.status', { hasText: 'running' }).waitFor();
    await shot(page, 'ui-jobs.png');
    if (process.env.CJ_README_PICTURE === '1') fs.copyFileSync(path.join(ARTIFACTS, 'ui-jobs.png'), README_PICTURE);

    await row(failed).locator('td[data-label="Owner"]').click();
    await page.waitForURL(new RegExp(`#/jobs/${failed}$`));
    await titleStatus(page, 'failure').waitFor();
    await page.goBack();
    const [tab] = await Promise.all([
      page.context().waitForEvent('page'),
      row(done)
        .locator('td[data-label="Task"]')
        .click({ modifiers: ['Control'] }),
    ]);
    await tab.waitForURL(new RegExp(`#/jobs/${done}$`));
    expect(page.url()).toMatch(/#\/jobs$/);
    // The "#id" link is still a plain link.
    await row(done)
      .getByRole('link', { name: `#${done}` })
      .click();
    await page.waitForURL(new RegExp(`#/jobs/${done}$`));
    await agents.root.post(`/jobs/${running}/cancel`).set('Origin', app.api.origin).send({}).expect(200);
  });
});
