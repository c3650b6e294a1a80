// Flow control on the page (README, "Serial groups", "Delay and priority"): a job's group and why it
// waits, the admins' Groups view and its Release button, and the form's Run at, Delay and Priority.
// Real app, real runner, Debian's Chromium (see ./chromium.ts).
import type { Page } from 'playwright-core';
import { jobRow, waitFor } from '../helpers/runner';
import { describeInChromium, jobIdOf, overflow, titleStatus, useApiClients, useChromium, useUiApp } from './chromium';

const app = useUiApp('cj_test_flow');

describeInChromium('serial groups, delay and priority in Chromium', () => {
  const browsing = useChromium(app);
  const { openPage, logIn, shot } = browsing;
  const { agents, postJob } = useApiClients(app);

  async function untilStatus(id: number, status: string): Promise<void> {
    await waitFor(async () => (await jobRow(app.db, id)).status === status);
    expect((await jobRow(app.db, id)).status).toBe(status);
  }

  const waiting = (page: Page) => page.locator('.waiting');
  const groupRow = (page: Page, section: 'blocked' | 'active', key: string) =>
    page.locator(`section[aria-labelledby="groups-${section}"] tr[data-group="${key}"]`);

  test('a job queued behind a running one of its group: its page and the list say so, and it starts when the group frees', async () => {
    const first = await postJob('alice', { task: 'container-sleep', params: { containerId: 101, seconds: 300 } });
    const second = await postJob('alice', { task: 'container-sleep', params: { containerId: 101, seconds: 0 } });
    await untilStatus(first, 'running');
    const api = await agents.alice.get(`/jobs/${second}`).expect(200);
    expect(api.body).toMatchObject({ status: 'pending', groupKey: 'container:101', waiting: 'group' });

    const page = await openPage();
    await logIn(page, 'alice', `#/jobs/${second}`);
    await titleStatus(page, 'pending').waitFor();
    expect(await page.locator('[data-fact="Group"]').textContent()).toBe('container:101');
    await waiting(page).waitFor();
    expect(await waiting(page).textContent()).toBe('Waiting: an earlier job of container:101 is pending or running');
    await shot(page, 'ui-group-waiting.png');

    // The list shows each job's group under its task, also on a phone.
    const phone = await openPage({ viewport: { width: 390, height: 844 } });
    await logIn(phone, 'alice');
    const groupOf = (id: number) => phone.locator(`tr[data-job-id="${id}"] td[data-label="Task"] .group-key`);
    await groupOf(second).waitFor();
    expect(await groupOf(first).textContent()).toBe('container:101');
    expect(await overflow(phone)).toBeLessThanOrEqual(0);
    await shot(phone, 'ui-phone-list-groups.png');
    await phone.locator(`tr[data-job-id="${second}"] a`).click();
    await waiting(phone).waitFor();
    expect(await overflow(phone)).toBeLessThanOrEqual(0);

    // The group frees: the waiting job starts, and its page says so without a reload.
    await app.api.queue.cancelJob(first, 'alice');
    await titleStatus(page, 'success').waitFor();
    await waiting(page).waitFor({ state: 'hidden' });
    expect(await page.locator('[data-fact="Group"]').textContent()).toBe('container:101');
  });

  test('an admin releases a blocked group from the Groups view, and its queued job then runs', async () => {
    const failed = await postJob('alice', { task: 'container-fail', params: { containerId: 7, exitCode: 3 } });
    await untilStatus(failed, 'failure');
    const queued = await postJob('bob', { task: 'container-sleep', params: { containerId: 7, seconds: 0 } });
    expect((await agents.bob.get(`/jobs/${queued}`).expect(200)).body.waiting).toBe('group_blocked');

    // Its owner is told why, without the number of a job that is not theirs.
    const bobPage = await openPage();
    await logIn(bobPage, 'bob', `#/jobs/${queued}`);
    await waiting(bobPage).waitFor();
    expect(await waiting(bobPage).textContent()).toBe(
      'Waiting: group container:7 is blocked by a failed job (an admin can release it)',
    );

    // An admin sees which job blocks it, and finds the group in the Groups view.
    const page = await openPage();
    await logIn(page, 'root', `#/jobs/${queued}`);
    await waiting(page)
      .getByRole('link', { name: `#${failed}` })
      .waitFor();
    expect(await waiting(page).textContent()).toContain(
      `Waiting: group container:7 is blocked by job #${failed} (an admin can release it)`,
    );
    await shot(page, 'ui-group-blocked.png');
    await page.locator('#nav').getByRole('link', { name: 'Groups' }).click();
    await page.getByRole('heading', { name: 'Groups' }).waitFor();
    const row = groupRow(page, 'blocked', 'container:7');
    await row.waitFor();
    expect(await row.locator('td[data-label="Blocked by"]').textContent()).toBe(`#${failed}`);
    expect(await row.locator('td[data-label="Pending jobs"]').textContent()).toBe('1');
    await shot(page, 'ui-groups.png');

    const phone = await openPage({ viewport: { width: 390, height: 844 } });
    await logIn(phone, 'root', '#/groups');
    await groupRow(phone, 'blocked', 'container:7').waitFor();
    expect(await overflow(phone)).toBeLessThanOrEqual(0);
    await shot(phone, 'ui-phone-groups.png');

    const release = page.waitForRequest((req) => req.method() === 'POST' && /\/groups\/.+\/release$/.test(req.url()));
    await page.getByRole('button', { name: 'Release container:7' }).click();
    expect(new URL((await release).url()).pathname).toBe('/groups/container%3A7/release');
    await page.getByText('Released container:7: its next job may start.').waitFor();
    await row.waitFor({ state: 'detached' });
    await untilStatus(queued, 'success');
    // bob's page follows: his job ran.
    await titleStatus(bobPage, 'success').waitFor();
    await waiting(bobPage).waitFor({ state: 'hidden' });
  });

  test('a user sees no Groups link, and #/groups shows the API’s 403 as text', async () => {
    const page = await browsing.openAdminViewAs('bob', 'groups');
    expect(await page.getByRole('button', { name: /^Release/ }).count()).toBe(0);

    // Admins have the link.
    const admin = await openPage();
    await logIn(admin, 'root');
    expect(await admin.locator('#nav').getByRole('link', { name: 'Groups' }).isVisible()).toBe(true);
  });

  test('a delayed job from the form says when it is due; the form’s checks of priority and timing show beside their fields', async () => {
    const page = await openPage();
    await logIn(page, 'alice', '#/new?task=echo');
    await page.locator('#param-message').fill('later');

    // A positive priority is for admins: said beside the field before anything is sent (the API says 403).
    await page.getByLabel('Priority').fill('5');
    await page.getByRole('button', { name: 'Start job' }).click();
    const priorityError = page.locator('#job-priority-error');
    await priorityError.waitFor();
    expect(await priorityError.textContent()).toBe('Positive priorities are for admins: use 0 or less.');
    expect(await page.locator('#job-priority').getAttribute('aria-invalid')).toBe('true');

    // Both Run at and Delay: beside Run at, where the API's 400 would be.
    await page.getByLabel('Priority').fill('-5');
    await page.getByLabel('Run at').fill('2030-01-01T10:00');
    await page.getByLabel('Delay (seconds)').fill('3600');
    await page.getByRole('button', { name: 'Start job' }).click();
    const runAtError = page.locator('#job-run-at-error');
    await runAtError.waitFor();
    expect(await runAtError.textContent()).toBe('Give Run at or a delay, not both.');
    expect(await priorityError.isVisible()).toBe(false);
    expect(page.url()).toMatch(/#\/new/);
    await shot(page, 'ui-form-when.png');

    await page.getByLabel('Run at').fill('');
    const sent = page.waitForRequest((req) => req.method() === 'POST' && new URL(req.url()).pathname === '/jobs');
    const before = Date.now();
    await page.getByRole('button', { name: 'Start job' }).click();
    expect((await sent).postDataJSON()).toEqual({
      task: 'echo',
      params: { message: 'later' },
      delaySec: 3600,
      priority: -5,
    });
    await page.waitForURL(/#\/jobs\/\d+$/);
    const id = jobIdOf(page);
    await waiting(page).waitFor();
    const job = (await agents.alice.get(`/jobs/${id}`).expect(200)).body;
    expect(job).toMatchObject({ status: 'pending', waiting: 'run_at', priority: -5, groupKey: null });
    const due = Date.parse(job.runAt);
    expect(due).toBeGreaterThanOrEqual(before + 3_595_000);
    expect(due).toBeLessThanOrEqual(Date.now() + 3_605_000);
    const shown = await page.evaluate<string>(`new Date(${JSON.stringify(job.runAt)}).toLocaleString()`);
    expect(await waiting(page).textContent()).toBe(`Waiting: not due until ${shown}`);
    expect(await page.locator('[data-fact="Priority"]').textContent()).toBe('-5');
    expect(await page.locator('[data-fact="Group"]').count()).toBe(0);
    await shot(page, 'ui-delayed.png');
    await app.api.queue.cancelJob(id, 'alice');
  });

  test('Run at is the browser’s local time, sent with its UTC offset; admins may give a positive priority', async () => {
    const page = await openPage({ timezoneId: 'Asia/Kolkata', locale: 'en-US' });
    await logIn(page, 'root', '#/new?task=echo');
    await page.locator('#param-message').fill('at a time');
    // Two days ahead, on a whole minute; Kolkata is UTC+05:30 all year.
    const at = Math.ceil((Date.now() + 2 * 86_400_000) / 60_000) * 60_000;
    const local = new Date(at + 330 * 60_000).toISOString().slice(0, 16);
    await page.getByLabel('Run at').fill(local);
    await page.getByLabel('Priority').fill('10');
    const sent = page.waitForRequest((req) => req.method() === 'POST' && new URL(req.url()).pathname === '/jobs');
    await page.getByRole('button', { name: 'Start job' }).click();
    expect((await sent).postDataJSON()).toMatchObject({ runAt: `${local}:00+05:30`, priority: 10 });
    await page.waitForURL(/#\/jobs\/\d+$/);
    const id = jobIdOf(page);
    const job = (await agents.root.get(`/jobs/${id}`).expect(200)).body;
    expect(job).toMatchObject({ runAt: new Date(at).toISOString(), priority: 10, waiting: 'run_at' });
    await waiting(page).waitFor();
    const shown = new Date(at).toLocaleString('en-US', { timeZone: 'Asia/Kolkata' });
    const text = (await waiting(page).textContent())!;
    expect(text.replace(/\s/g, ' ')).toBe(`Waiting: not due until ${shown}`.replace(/\s/g, ' '));
    await app.api.queue.cancelJob(id, 'root');
  });
});
