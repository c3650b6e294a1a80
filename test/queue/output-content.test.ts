// What a line of output may contain, and what every database gives back: the same text everywhere,
// a NUL stored as U+2400 (␀), a lone UTF-16 surrogate as U+FFFD, everything else exactly.
import { readOutput } from '../../routers/job-reads';
import { addJob, makeRunning, outputRows, storedRows, useQueueDatabase } from './harness';

const t = useQueueDatabase('content');

const KIB16 = 16 * 1024;

/** [what a runner hands the queue, what every database must give back]. */
const CASES: [name: string, written: string, stored: string][] = [
  ['a NUL byte', 'a\u0000b', 'a\u2400b'],
  ['only NULs', '\u0000\u0000', '\u2400\u2400'],
  ['a lone high surrogate', '\uD800x', '\uFFFDx'],
  ['a lone low surrogate at the end', 'x\uDC00', 'x\uFFFD'],
  ['a high surrogate cut off at the end', 'ok \uD83D', 'ok \uFFFD'],
  ['invalid UTF-8 as Node decodes it', Buffer.from([0xff, 0xfe, 0x41]).toString('utf8'), '\uFFFD\uFFFDA'],
  ['a valid surrogate pair (emoji)', 'done \u{1F600}', 'done \u{1F600}'],
  ['accents, CJK and a ZWJ sequence', 'Zoë 日本 👩‍💻', 'Zoë 日本 👩‍💻'],
  [
    'control characters other than NUL',
    'tab\there\u0007\u001b[31mred\u001b[0m\r',
    'tab\there\u0007\u001b[31mred\u001b[0m\r',
  ],
  ['backslashes and quotes', `it's "quoted" \\ \\0 \\n`, `it's "quoted" \\ \\0 \\n`],
  ['an empty line', '', ''],
  ['16 KiB of ASCII', 'x'.repeat(KIB16), 'x'.repeat(KIB16)],
  ['4096 four-byte emoji (16 KiB of UTF-8)', '\u{1F600}'.repeat(KIB16 / 4), '\u{1F600}'.repeat(KIB16 / 4)],
];

test('the 16 KiB cases really are 16 KiB of UTF-8', () => {
  expect(Buffer.byteLength(CASES[CASES.length - 2][1], 'utf8')).toBe(KIB16);
  expect(Buffer.byteLength(CASES[CASES.length - 1][1], 'utf8')).toBe(KIB16);
});

async function runningJob(): Promise<number> {
  const id = await addJob(t.db);
  await makeRunning(t.db, id, 'r1');
  return id;
}

describe.each(CASES)('%s', (_name, written, stored) => {
  test('appendOutput stores it as the contract says, and readOutput reads it back', async () => {
    const id = await runningJob();

    expect(
      await t.queue.appendOutput(
        { jobId: id, runnerId: 'r1', attempt: 1 },
        outputRows(1, ['before', written, 'after']),
      ),
    ).toBe(true);

    expect((await storedRows(t.db, id)).map((r) => r.output)).toEqual(['before', stored, 'after']);
    expect((await readOutput(t.db, id, { limit: 10 })).map((r) => r.output)).toEqual(['before', stored, 'after']);
  });

  test('finishJob stores it the same way', async () => {
    const id = await runningJob();

    const finished = await t.queue.finishJob(
      { jobId: id, runnerId: 'r1', attempt: 1 },
      { status: 'success', exitCode: 0, signal: null, error: null },
      [...outputRows(1, [written]), ...outputRows(2, ['exit 0'], 'system')],
    );

    expect(finished).toBe(true);
    expect((await readOutput(t.db, id, { limit: 10 })).map((r) => r.output)).toEqual([stored, 'exit 0']);
  });
});

test('a batch mixing every case is stored whole: one bad line does not lose its neighbours', async () => {
  const id = await runningJob();

  expect(
    await t.queue.appendOutput(
      { jobId: id, runnerId: 'r1', attempt: 1 },
      outputRows(
        1,
        CASES.map(([, written]) => written),
      ),
    ),
  ).toBe(true);

  expect((await storedRows(t.db, id)).map((r) => r.output)).toEqual(CASES.map(([, , stored]) => stored));
});
