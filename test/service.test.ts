// service.ts, the life every entry shares: exit statuses, stray rejections, the two signals, and
// releases run once. Each case is a small script on dist/service.js in its own process (it exits).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { ROOT } from './helpers/database';
import { waitFor } from './helpers/runner';

interface Run {
  lines: string[];
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  signal(name: NodeJS.Signals): void;
}

/** Runs `body` as main(service) of a service named "t"; stdout and stderr lines are collected in order. */
function service(options: string, body: string): Run {
  const script = `
    const { runService } = require('./dist/service');
    const { ConfigError } = require('./dist/config');
    const say = (line) => process.stdout.write(line + '\\n');
    // What a daemon's sockets and timers do: keep the event loop alive (signal handlers do not).
    setInterval(() => {}, 60_000);
    runService({ name: 't', ${options} }, async (service) => {
      ${body}
    });`;
  const child = spawn(process.execPath, ['-e', script], {
    cwd: ROOT,
    env: { PATH: process.env.PATH },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  for (const stream of [child.stdout, child.stderr])
    readline.createInterface({ input: stream }).on('line', (l) => lines.push(l));
  return {
    lines,
    exit: new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal }))),
    signal: (name) => child.kill(name),
  };
}

/** Waits until `run` printed `line`. */
async function printed(run: Run, line: string): Promise<void> {
  await waitFor(() => run.lines.includes(line), 30_000, 10);
  expect(run.lines).toContain(line);
}

beforeAll(() => {
  if (!fs.existsSync(path.join(ROOT, 'dist', 'service.js')))
    throw new Error('dist/service.js is missing: npm run build');
});

test("main's status is the exit status; a ConfigError is 78 with its message alone; any other error 1", async () => {
  expect(await service('daemon: false', 'return 3;').exit).toEqual({ code: 3, signal: null });
  const config = service('daemon: false', "throw new ConfigError('FOO=1 is not valid');");
  expect(await config.exit).toEqual({ code: 78, signal: null });
  expect(config.lines).toEqual(['t: FOO=1 is not valid']);
  const other = service('daemon: false', "throw new Error('boom');");
  expect(await other.exit).toEqual({ code: 1, signal: null });
  expect(other.lines).toEqual(['t: boom']);
});

test('a stray rejection: a daemon logs it and carries on; a one-shot command ends with 1', async () => {
  const body = `
    void Promise.reject(new Error('stray'));
    await new Promise((r) => setTimeout(r, 200));
    say('still here');
    return 0;`;
  const daemon = service('daemon: true', body);
  expect(await daemon.exit).toEqual({ code: 0, signal: null });
  expect(daemon.lines[0]).toMatch(/^t: unhandled rejection \(ignored\): Error: stray/);
  expect(daemon.lines).toContain('still here');
  const command = service('daemon: false', body);
  expect(await command.exit).toEqual({ code: 1, signal: null });
  expect(command.lines[0]).toMatch(/^t: unhandled rejection: Error: stray/);
  expect(command.lines).not.toContain('still here');
});

test('first signal drains, a second stops at once; each release runs once, in reverse order; exit 0', async () => {
  const run = service(
    'daemon: true',
    `
    service.atExit(() => say('released first-added'));
    service.atExit(() => say('released last-added'));
    let stoppedNow;
    const stopNow = new Promise((r) => (stoppedNow = r));
    service.onStop({
      drain: (signal) => say('drain ' + signal),
      stopNow: async (signal) => { say('stop now ' + signal); stoppedNow(); },
    });
    say('up');
    await stopNow; // main ends at the same time as the second signal's path: one exit, one release each
    return 5;`,
  );
  await printed(run, 'up');
  run.signal('SIGTERM');
  await printed(run, 'drain SIGTERM');
  run.signal('SIGINT');
  expect(await run.exit).toEqual({ code: 0, signal: null });
  expect(run.lines).toEqual(['up', 'drain SIGTERM', 'stop now SIGINT', 'released last-added', 'released first-added']);
});

test('a failure of main() while stopping at once (the database closed under it) still exits 0', async () => {
  const run = service(
    'daemon: true',
    `
    let stoppedNow;
    const stopNow = new Promise((r) => (stoppedNow = r));
    service.onStop({ drain: () => say('drain'), stopNow: () => stoppedNow() });
    say('up');
    await stopNow;
    throw new Error('the database is closed');`,
  );
  await printed(run, 'up');
  run.signal('SIGTERM');
  await printed(run, 'drain'); // two signals at once may arrive as one
  run.signal('SIGTERM');
  expect(await run.exit).toEqual({ code: 0, signal: null });
  expect(run.lines).toContain('t: while stopping at once: the database is closed');
});

test('a signal while starting aborts `stopping`; handlers set afterwards drain at once', async () => {
  const run = service(
    'daemon: true',
    `
    say('opening');
    await new Promise((r) => service.stopping.addEventListener('abort', r));
    // An open that was under way when the signal came succeeds anyway.
    await new Promise((r) => setTimeout(r, 100));
    await new Promise((drained) => service.onStop({ drain: (signal) => { say('drain ' + signal); drained(); }, stopNow() {} }));
    return 0;`,
  );
  await printed(run, 'opening');
  run.signal('SIGTERM');
  expect(await run.exit).toEqual({ code: 0, signal: null });
  expect(run.lines).toEqual([
    'opening',
    't: SIGTERM while starting: stopping (a second signal exits at once)',
    'drain SIGTERM',
  ]);
});

test('a second signal while starting exits at once, with the releases', async () => {
  const run = service(
    'daemon: true',
    `
    service.atExit(() => say('released'));
    say('opening');
    await new Promise(() => {}); // a start-up that never ends`,
  );
  await printed(run, 'opening');
  run.signal('SIGTERM');
  await printed(run, 't: SIGTERM while starting: stopping (a second signal exits at once)');
  run.signal('SIGTERM');
  expect(await run.exit).toEqual({ code: 0, signal: null });
  expect(run.lines.slice(2)).toEqual(['t: SIGTERM again: exiting now', 'released']);
});

test('a one-shot command keeps the default signals: it dies at once', async () => {
  const run = service('daemon: false', "say('working'); await new Promise(() => {});");
  await printed(run, 'working');
  run.signal('SIGTERM');
  expect(await run.exit).toEqual({ code: null, signal: 'SIGTERM' });
});
