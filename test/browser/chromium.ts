// The browser tests' common setup: the real app on its own database and an ephemeral port, a real
// in-process Runner (so job lines and group hand-overs really happen), and Debian's Chromium driven
// by playwright-core. Any script error, CSP refusal or dialog fails the test that caused it.
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core';
import type { DatabaseConfig } from '../../config';
import type { Database } from '../../models/database';
import type { Runner } from '../../runner/runner';
import { TaskCatalog } from '../../tasks/catalog';
import { addUser, login, password, startApi, type Agent, type Api } from '../helpers/api';
import { freshDatabase, ROOT } from '../helpers/database';
import { makeRunner } from '../helpers/runner';

export const CHROMIUM = '/usr/bin/chromium';
export const UI_TASKS_FILE = path.join(ROOT, 'test', 'fixtures', 'ui-tasks.json');
export const ARTIFACTS = path.join(ROOT, 'test', 'artifacts');
export const WAIT_MS = 30_000;
// Without the background-networking flags Chromium keeps calling home, into a closed network.
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export const haveChromium = fs.existsSync(CHROMIUM);

/** `describe` when Chromium is installed; else skipped with a warning, or failing under CI=true. */
export function describeInChromium(title: string, tests: () => void): void {
  if (haveChromium) return describe(title, tests);
  console.warn(
    `${CHROMIUM} is missing: the browser tests of the web UI are ${process.env.CI === 'true' ? 'FAILING (CI=true)' : 'skipped'}. ` +
      'Install it with: apt-get install -y --no-install-recommends chromium',
  );
  if (process.env.CI === 'true') {
    test('Chromium is installed (CI=true)', () => {
      throw new Error(`${CHROMIUM} is missing: .ci/run installs it (apt-get install chromium)`);
    });
  }
  describe.skip(title, tests);
}

export interface UiApp {
  db: Database;
  database: DatabaseConfig;
  api: Api;
}

/**
 * The hooks of a browser test file: a fresh database named `name` (per jest worker) with users
 * alice, bob and root (an admin), and the API on it serving public/. Fields are filled in beforeAll.
 */
export function useUiApp(name: string): UiApp {
  const app = {} as UiApp;
  beforeAll(async () => {
    ({ db: app.db, config: app.database } = await freshDatabase(`${name}_w${process.env.JEST_WORKER_ID ?? '0'}`));
    app.api = await startApi(app.db, app.database, { catalog: new TaskCatalog(UI_TASKS_FILE), streamPollMs: 50 });
    await addUser(app.db, 'alice');
    await addUser(app.db, 'bob');
    await addUser(app.db, 'root', true);
  });
  afterAll(async () => {
    await app.api?.close();
    await app.db?.close();
  });
  return app;
}

export interface Browsing {
  /** A page in a fresh context (its own cookies); closed after the test. */
  openPage(options?: BrowserContextOptions): Promise<Page>;
  /** Opens `/#hash` (the login form first) and logs in as `username`. */
  logIn(page: Page, username: string, hash?: string): Promise<void>;
  /** A `sleep 300` job of `owner` (enqueueSleep), its page open as `owner` once the job is running. */
  openRunningJob(owner: string): Promise<{ id: number; page: Page }>;
  /**
   * As `user`, not an admin: the menu has no link to the admins' view `#/${view}`, whose API path
   * answers 403, and the view, opened anyway, shows that answer as text. Returns that page.
   */
  openAdminViewAs(user: string, view: 'groups' | 'schedules' | 'runners'): Promise<Page>;
  /** Saves a screenshot in test/artifacts/. */
  shot(page: Page, name: string): Promise<unknown>;
  /** Dialogs (alert, confirm) seen so far in this test: none is expected, ever. */
  readonly dialogs: string[];
}

/** API clients of the fixture users, logged in before all tests (beside the browser, to set a scene). */
export interface ApiClients {
  agents: Record<string, Agent>;
  /** POST /jobs as `user`, the way any client would; returns the new job's id. */
  postJob(user: string, body: object): Promise<number>;
}

export function useApiClients(app: UiApp, users: string[] = ['alice', 'bob', 'root']): ApiClients {
  const agents: Record<string, Agent> = {};
  beforeAll(async () => {
    for (const user of users) agents[user] = (await login(app.api, user)).agent;
  });
  return {
    agents,
    async postJob(user, body) {
      const res = await agents[user].post('/jobs').set('Origin', app.api.origin).send(body).expect(201);
      return res.body.id as number;
    },
  };
}

/** Inside a describe: a runner (4 slots) and Chromium for its tests, and the no-errors check after each. */
export function useChromium(app: UiApp): Browsing {
  let browser: Browser;
  let runner: Runner;
  let running: Promise<void>;
  const contexts: BrowserContext[] = [];
  let problems: string[] = [];
  let dialogs: string[] = [];

  beforeAll(async () => {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    // The production lease (60 s), not the runner tests' 2 s: on a busy machine a heartbeat can be
    // seconds late, and a reaped job (runner_lost) is not what a test of the page is about.
    ({ runner } = makeRunner(app.db, {
      once: false,
      tasksFile: UI_TASKS_FILE,
      config: { concurrency: 4, leaseMs: 60_000 },
    }));
    running = runner.run();
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  });

  afterAll(async () => {
    await browser?.close();
    await runner?.stop(2000);
    await running;
  });

  afterEach(async () => {
    await Promise.all(contexts.splice(0).map((c) => c.close()));
    // No script errors and no CSP refusals; failed requests (a 401, a 403, a 404) are expected answers.
    expect(problems).toEqual([]);
    expect(dialogs).toEqual([]);
    problems = [];
    dialogs = [];
  });

  const browsing: Browsing = {
    async openPage(options = {}) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...options });
      contexts.push(context);
      const page = await context.newPage();
      page.setDefaultTimeout(WAIT_MS);
      page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
      page.on('console', (msg) => {
        if (msg.type() === 'error' && !/Failed to load resource/.test(msg.text())) problems.push(msg.text());
      });
      page.on('dialog', (dialog) => {
        dialogs.push(dialog.message());
        void dialog.dismiss();
      });
      return page;
    },
    async logIn(page, username, hash = '') {
      await page.goto(`${app.api.origin}/${hash}`);
      await page.getByLabel('Username').fill(username);
      await page.getByLabel('Password').fill(password(username));
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.locator('#who-name', { hasText: username }).waitFor();
    },
    async openRunningJob(owner) {
      const id = await enqueueSleep(app, owner);
      const page = await browsing.openPage();
      await browsing.logIn(page, owner, `#/jobs/${id}`);
      await titleStatus(page, 'running').waitFor();
      return { id, page };
    },
    async openAdminViewAs(user, view) {
      const page = await browsing.openPage();
      await browsing.logIn(page, user);
      await page.getByRole('heading', { name: 'My jobs' }).waitFor();
      expect(await page.locator(`#nav-${view}`).isVisible()).toBe(false);
      const answer = page.waitForResponse((res) => new URL(res.url()).pathname === `/${view}`);
      await page.goto(`${app.api.origin}/#/${view}`);
      expect((await answer).status()).toBe(403);
      await page.getByText(`Could not load the ${view}: ${view} are for admins`).waitFor();
      return page;
    },
    shot: (page, name) => page.screenshot({ path: path.join(ARTIFACTS, name) }),
    get dialogs() {
      return dialogs;
    },
  };
  return browsing;
}

/** A `sleep 300` job of `owner`, enqueued as the host's code would: the runner starts it at once. */
export async function enqueueSleep(app: UiApp, owner: string): Promise<number> {
  const job = { task: 'sleep', params: { seconds: 300 }, command: 'sleep 300', createdBy: owner };
  return (await app.api.queue.enqueue(job)).id;
}

/** The job id in a job page's URL (#/jobs/12). */
export const jobIdOf = (page: Page) => Number(/#\/jobs\/(\d+)$/.exec(page.url())?.[1]);

/** The status badge beside the job page's title, once it shows `status`. */
export const titleStatus = (page: Page, status: string) => page.locator('.title-badge .status', { hasText: status });

/** How far the page is wider than the window (0 or less: no horizontal scrolling). */
export const overflow = (page: Page) =>
  // The page's own code runs in the browser; the test's TypeScript has no DOM types, hence strings.
  page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
