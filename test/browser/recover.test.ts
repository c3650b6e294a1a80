// Recovering from failures on the page (README, "Retries", "Schedules"): Retry on a failed job's own
// page (the same job, its next attempt's lines below the last), automatic attempts followed live,
// Run again (a new job that links back), the API's refusals as text, and the admins' Schedules view.
// Real app, real runner, Debian's Chromium (see ./chromium.ts).
import type { Page } from 'playwright-core';
import { fireSchedule, registerSchedules } from '../../models/schedules';
import { TaskCatalog } from '../../tasks/catalog';
import { checkJobRequest } from '../../tasks/job-request';
import { waitFor } from '../helpers/runner';
import {
  describeInChromium,
  jobIdOf,
  overflow,
  titleStatus,
  UI_TASKS_FILE,
  useApiClients,
  useChromium,
  useUiApp,
} from './chromium';

const app = useUiApp('cj_test_recover');

/** A job as GET /jobs/:id answers it (the fields these tests read). */
interface JobJson {
  id: number;
  task: string;
  params: unknown;
  status: string;
  createdBy: string | null;
  attempt: number;
  maxAttempts: number;
  error: string | null;
  lastError: string | null;
  rerunOf: number | null;
  runAt: string | null;
  waiting: string | null;
}

describeInChromium('retry, run again and schedules in Chromium', () => {
  const browsing = useChromium(app);
  const { openPage, logIn, shot } = browsing;
  const { agents, postJob } = useApiClients(app);

  /** POST /jobs/:id/<action> (cancel, retry) as `user`, with the JSON content type the API asks of cookies. */
  const postAction = (user: string, id: number, action: string) =>
    agents[user].post(`/jobs/${id}/${action}`).set('Origin', app.api.origin).send({});

  const jobOf = async (id: number, user = 'alice'): Promise<JobJson> =>
    (await agents[user].get(`/jobs/${id}`).expect(200)).body as JobJson;

  /** Waits until GET /jobs/:id satisfies `check`, and returns that job (the caller asserts on it). */
  async function untilJob(id: number, check: (job: JobJson) => boolean): Promise<JobJson> {
    await waitFor(async () => check(await jobOf(id)));
    return jobOf(id);
  }

  /** The job's output as the API has it, every attempt's rows in order. */
  const apiLines = async (id: number): Promise<string[]> =>
    ((await agents.alice.get(`/jobs/${id}/status`).expect(200)).body as { output: string }[]).map((r) => r.output);
  const pageLines = (page: Page) => page.locator('.output .line .tx').allTextContents();
  const outputLine = (page: Page, text: string) =>
    page
      .locator('.output .line .tx')
      .filter({ hasText: new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) });
  const attempt = (page: Page, text: string) => page.locator('.page-head .attempt', { hasText: text });
  const button = (page: Page, name: string) => page.locator('.page-head').getByRole('button', { name, exact: true });
  const notice = (page: Page) => page.locator('.notice');
  const outputState = (page: Page, state: string) => page.locator('.output-state', { hasText: state });

  /** Marks the page's document: still marked later means the page was never reloaded. */
  const mark = (page: Page) => page.evaluate('window.notReloaded = true');
  const stillMarked = (page: Page) => page.evaluate<boolean>('window.notReloaded === true');

  test('a failed job: Retry runs it again as attempt 2 on the same page, its lines after the first attempt’s', async () => {
    // Exit code 3 is not one the policy retries (75 is): one attempt, failed.
    const id = await postJob('alice', { task: 'fail-retry', params: { message: 'disk full', exitCode: 3 } });
    const failed = await untilJob(id, (j) => j.status === 'failure');
    expect(failed).toMatchObject({ status: 'failure', attempt: 1, maxAttempts: 3, error: 'exit_code' });

    const page = await openPage();
    await logIn(page, 'alice', `#/jobs/${id}`);
    await titleStatus(page, 'failure').waitFor();
    await outputState(page, 'finished').waitFor();
    await attempt(page, 'attempt 1 of 3').waitFor();
    expect(await button(page, 'Retry').isVisible()).toBe(true);
    expect(await button(page, 'Run again').isVisible()).toBe(true);
    expect(await button(page, 'Cancel job').isVisible()).toBe(false);
    // The last attempt's reason is the Error; it is not said twice.
    expect(await page.locator('[data-fact="Error"]').textContent()).toBe('exited with code 3');
    expect(await page.locator('[data-fact="Last error"]').count()).toBe(0);
    expect(await outputLine(page, 'disk full').count()).toBe(1);
    await shot(page, 'ui-retry-before.png');

    await mark(page);
    const sent = page.waitForRequest((req) => req.method() === 'POST' && /\/retry$/.test(req.url()));
    await button(page, 'Retry').click();
    expect(new URL((await sent).url()).pathname).toBe(`/jobs/${id}/retry`);
    await page.getByText('Retried: attempt 2 is queued; its output follows below.').waitFor();
    // Attempt 2's lines arrive live in the same view, after attempt 1's and the retry's own line.
    await outputLine(page, 'retried by alice: attempt 2').waitFor();
    await outputLine(page, 'disk full').nth(1).waitFor();
    await attempt(page, 'attempt 2 of 3').waitFor();
    await titleStatus(page, 'failure').waitFor();
    await outputState(page, 'finished').waitFor();

    const again = await jobOf(id);
    expect(again).toMatchObject({ id, status: 'failure', attempt: 2, maxAttempts: 3, lastError: 'exit_code' });
    expect(await pageLines(page)).toEqual(await apiLines(id));
    expect((await pageLines(page)).filter((l) => l === 'disk full')).toHaveLength(2);
    expect(jobIdOf(page)).toBe(id);
    expect(await stillMarked(page)).toBe(true);
    expect(await notice(page).getAttribute('class')).not.toContain('notice-error');
    await shot(page, 'ui-retry-after.png');
  });

  test('attempts the policy retries by itself: the page follows them live and counts them', async () => {
    const page = await openPage();
    await logIn(page, 'alice');
    await page.getByRole('heading', { name: 'My jobs' }).waitFor();
    // Exit code 75 is retried: 3 attempts, 1 s and then 2 s apart, so the page sees them come.
    const id = await postJob('alice', { task: 'fail-retry', params: { message: 'try again', exitCode: 75 } });
    await page.goto(`${app.api.origin}/#/jobs/${id}`);
    await outputLine(page, 'attempt 1 of 3 failed (exit code 75); next attempt in 1 s').waitFor();
    await outputLine(page, 'attempt 2 of 3 failed (exit code 75); next attempt in 2 s').waitFor();
    await attempt(page, 'attempt 3 of 3').waitFor();
    await titleStatus(page, 'failure').waitFor();
    await outputState(page, 'finished').waitFor();

    const job = await jobOf(id);
    expect(job).toMatchObject({ status: 'failure', attempt: 3, maxAttempts: 3, error: 'exit_code' });
    expect(await pageLines(page)).toEqual(await apiLines(id));
    expect((await pageLines(page)).filter((l) => l === 'try again')).toHaveLength(3);
  });

  test('between attempts the page says when the next is due; cancelled there, Retry runs it at once', async () => {
    // Exit code 75 again, but the next attempt is an hour away: the job waits, pending.
    const id = await postJob('alice', { task: 'fail-retry-later', params: { message: 'later', exitCode: 75 } });
    const waiting = await untilJob(id, (j) => j.status === 'pending' && j.attempt === 2);
    expect(waiting).toMatchObject({ maxAttempts: 3, lastError: 'exit_code', error: null });
    // The API's word for a due time between attempts ("run_at" from an engine without it).
    expect(['retry', 'run_at']).toContain(waiting.waiting);

    const page = await openPage();
    await logIn(page, 'alice', `#/jobs/${id}`);
    await titleStatus(page, 'pending').waitFor();
    await attempt(page, 'attempt 2 of 3').waitFor();
    const shown = await page.evaluate<string>(`new Date(${JSON.stringify(waiting.runAt)}).toLocaleString()`);
    await page.locator('.waiting').waitFor();
    expect(await page.locator('.waiting').textContent()).toBe(`Waiting: attempt 2 of 3 is due at ${shown}`);
    expect(await page.locator('[data-fact="Last error"]').textContent()).toBe('exited with an error code');
    await outputLine(page, 'attempt 1 of 3 failed (exit code 75); next attempt in 3600 s').waitFor();
    expect(await button(page, 'Cancel job').isVisible()).toBe(true);
    expect(await button(page, 'Retry').isVisible()).toBe(false);
    expect(await button(page, 'Run again').isVisible()).toBe(false);
    await shot(page, 'ui-retry-waiting.png');

    // Cancelled while it waits: at once, and then it may be retried, now.
    await button(page, 'Cancel job').click();
    await page.getByRole('button', { name: 'Yes, cancel it' }).click();
    await titleStatus(page, 'cancelled').waitFor();
    await page.locator('.waiting').waitFor({ state: 'hidden' });
    await button(page, 'Retry').waitFor();
    await button(page, 'Retry').click();
    await outputLine(page, 'retried by alice: attempt 3').waitFor();
    await outputLine(page, 'later').nth(1).waitFor();
    await attempt(page, 'attempt 3 of 3').waitFor();
    await titleStatus(page, 'failure').waitFor();
    await outputState(page, 'finished').waitFor();
    // The last attempt failed: no more of them, whatever the exit code.
    expect(await jobOf(id)).toMatchObject({ status: 'failure', attempt: 3, error: 'exit_code' });
    expect(await pageLines(page)).toEqual(await apiLines(id));
  });

  test('Run again makes a new job with the same task and params; its page links back to the original', async () => {
    const id = await postJob('alice', { task: 'echo', params: { message: 'once more' } });
    await untilJob(id, (j) => j.status === 'success');

    const page = await openPage();
    await logIn(page, 'alice', `#/jobs/${id}`);
    await titleStatus(page, 'success').waitFor();
    // Only a failed or cancelled job can be retried; any finished one run again.
    expect(await button(page, 'Retry').isVisible()).toBe(false);
    expect(await attempt(page, 'attempt').count()).toBe(0);
    const sent = page.waitForRequest((req) => req.method() === 'POST' && /\/rerun$/.test(req.url()));
    await button(page, 'Run again').click();
    expect(new URL((await sent).url()).pathname).toBe(`/jobs/${id}/rerun`);
    await page.waitForURL((url) => /#\/jobs\/\d+$/.test(url.hash) && !url.hash.endsWith(`/${id}`));
    const rerun = jobIdOf(page);
    expect(rerun).toBeGreaterThan(id);
    await page.getByRole('heading', { name: `Job #${rerun}` }).waitFor();
    await outputLine(page, 'once more').waitFor();
    await titleStatus(page, 'success').waitFor();
    const original = page.locator('[data-fact="Original job"] a');
    expect(await original.textContent()).toBe(`#${id}`);
    expect(await original.getAttribute('href')).toBe(`#/jobs/${id}`);
    expect(await jobOf(rerun)).toMatchObject({
      task: 'echo',
      params: { message: 'once more' },
      createdBy: 'alice',
      rerunOf: id,
      attempt: 1,
      status: 'success',
    });
    await shot(page, 'ui-rerun.png');

    await original.click();
    await page.getByRole('heading', { name: `Job #${id}` }).waitFor();
    expect(jobIdOf(page)).toBe(id);
    await titleStatus(page, 'success').waitFor();
    expect(await page.locator('[data-fact="Original job"]').count()).toBe(0);
  });

  test('a Retry or Run again the API refuses: its message on the page, and the page catches up', async () => {
    const id = await postJob('alice', { task: 'sleep', params: { seconds: 300 } });
    await untilJob(id, (j) => j.status === 'running');
    await postAction('alice', id, 'cancel').expect(200);
    await untilJob(id, (j) => j.status === 'cancelled');

    // Two pages see it cancelled; a finished job's page reads nothing more until asked.
    const first = await openPage();
    await logIn(first, 'alice', `#/jobs/${id}`);
    await button(first, 'Retry').waitFor();
    const second = await openPage();
    await logIn(second, 'alice', `#/jobs/${id}`);
    await button(second, 'Retry').waitFor();
    // Meanwhile it is retried elsewhere, and runs.
    await postAction('alice', id, 'retry').expect(200);
    await untilJob(id, (j) => j.status === 'running');

    await button(first, 'Run again').click();
    const refused = notice(first);
    await refused.getByText(/^Could not run the job again: /).waitFor();
    expect(await refused.textContent()).toBe(
      `Could not run the job again: job ${id} is running; only a finished job can be run again`,
    );
    expect(await refused.getAttribute('class')).toContain('notice-error');
    // The page asked again: the job runs, its output follows live, and only Cancel is offered.
    await titleStatus(first, 'running').waitFor();
    await outputState(first, 'live').waitFor();
    await outputLine(first, 'retried by alice: attempt 2').waitFor();
    expect(await button(first, 'Run again').isVisible()).toBe(false);
    expect(await button(first, 'Retry').isVisible()).toBe(false);
    expect(await button(first, 'Cancel job').isVisible()).toBe(true);
    await shot(first, 'ui-rerun-refused.png');

    await button(second, 'Retry').click();
    await notice(second)
      .getByText(/^Could not retry the job: /)
      .waitFor();
    expect(await notice(second).textContent()).toBe(
      `Could not retry the job: job ${id} is running; only a failed or cancelled job can be retried`,
    );
    await titleStatus(second, 'running').waitFor();

    await postAction('alice', id, 'cancel').expect(200);
    await titleStatus(first, 'cancelled').waitFor();
    await titleStatus(second, 'cancelled').waitFor();
  });

  test('an admin’s Schedules view: each schedule’s cron line, next run, last run and last job', async () => {
    const scheduleRow = (page: Page) => page.locator('tr[data-schedule="nightly"]');
    const cellOf = (page: Page, label: string) => scheduleRow(page).locator(`td[data-label="${label}"]`);

    const page = await openPage();
    await logIn(page, 'root');
    await page.locator('#nav').getByRole('link', { name: 'Schedules' }).click();
    await page.getByRole('heading', { name: 'Schedules' }).waitFor();
    await scheduleRow(page).waitFor();
    expect(await cellOf(page, 'Schedule').textContent()).toBe('nightly');
    expect(await cellOf(page, 'Task').textContent()).toBe('echo');
    expect(await cellOf(page, 'Cron').locator('code').textContent()).toBe('30 3 * * *');
    expect(await cellOf(page, 'Cron').locator('.timezone').textContent()).toBe('Europe/Berlin');
    const [listed] = (await agents.root.get('/schedules').expect(200)).body as { nextRunAt: string }[];
    const next = await page.evaluate<string>(`new Date(${JSON.stringify(listed.nextRunAt)}).toLocaleString()`);
    expect(await cellOf(page, 'Next run').textContent()).toBe(next);
    expect(await cellOf(page, 'Next run').locator('time').getAttribute('datetime')).toBe(listed.nextRunAt);

    // A fire time made its job (as a runner's scheduler does at 03:30 in Berlin): the view shows it
    // when it next refreshes, with the job's status as it runs and ends.
    const catalog = new TaskCatalog(UI_TASKS_FILE);
    const nightly = catalog.schedules().get('nightly')!;
    const fireAt = nightly.latestAtOrBefore(new Date())!;
    await registerSchedules(app.api.queue, ['nightly'], new Date());
    const job = checkJobRequest(
      catalog,
      { username: nightly.createdBy, isAdmin: true },
      { task: nightly.task, params: nightly.params },
    );
    const fired = await fireSchedule(app.api.queue, 'nightly', fireAt, job, { allowOverlap: false });
    if (fired.result !== 'created') throw new Error(`expected a job, got ${fired.result}`);
    const lastJob = cellOf(page, 'Last job');
    await lastJob.locator('.status', { hasText: 'success' }).waitFor();
    expect(await lastJob.getByRole('link').textContent()).toBe(`#${fired.jobId}`);
    const last = await page.evaluate<string>(`new Date(${JSON.stringify(fireAt.toISOString())}).toLocaleString()`);
    expect(await cellOf(page, 'Last run').textContent()).toBe(last);
    await shot(page, 'ui-schedules.png');

    await lastJob.getByRole('link').click();
    await page.getByRole('heading', { name: `Job #${fired.jobId}` }).waitFor();
    await outputLine(page, 'hi').waitFor();
    expect(await page.locator('[data-fact="Owner"]').textContent()).toBe('scheduler');

    const phone = await openPage({ viewport: { width: 390, height: 844 } });
    await logIn(phone, 'root', '#/schedules');
    await scheduleRow(phone).waitFor();
    expect(await overflow(phone)).toBeLessThanOrEqual(0);
    await shot(phone, 'ui-phone-schedules.png');

    // A task file without schedules: the view says so (the API's answer, replaced in this page only).
    const empty = await openPage();
    await empty.route('**/schedules', (route) => route.fulfill({ json: [] }));
    await logIn(empty, 'root', '#/schedules');
    await empty.getByText('No schedules: the task file has no “schedules”.').waitFor();
    expect(await empty.locator('table').count()).toBe(0);
  });

  test('a user sees no Schedules link, GET /schedules is 403 for them, and #/schedules shows it as text', async () => {
    const answer = await agents.bob.get('/schedules').expect(403);
    expect(answer.body.error.code).toBe('admin_only');

    const page = await browsing.openAdminViewAs('bob', 'schedules');
    expect(await page.locator('tr[data-schedule]').count()).toBe(0);

    const admin = await openPage();
    await logIn(admin, 'root');
    expect(await admin.locator('#nav').getByRole('link', { name: 'Schedules' }).isVisible()).toBe(true);
  });
});
