// Whatever bytes a job prints are stored, the same on every database (README, "Job output"), and a
// write the database refuses for good ends the job (failure/output_failed) instead of being retried
// forever.
import type { Database } from '../models/database';
import { freshDatabase, truncateAll, sqlOf } from './helpers/database';
import { expectSeqsInOrder, insertJob, jobRow, lines, runOnce, statusRows } from './helpers/runner';

let db: Database;

beforeAll(async () => {
  ({ db } = await freshDatabase(`cj_test_bytes_w${process.env.JEST_WORKER_ID ?? '0'}`));
});

afterAll(async () => {
  await db.close();
});

beforeEach(async () => {
  await truncateAll(db);
  await sqlOf(db).query(
    db.dialect === 'postgres'
      ? 'DROP TRIGGER IF EXISTS refuse_poison ON JobStatuses'
      : 'DROP TRIGGER IF EXISTS refuse_poison',
  );
});

const hex = (...parts: (string | number[])[]) =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p)))).toString('hex');

/** Makes the database refuse, for good, any output line that contains "poison" (a trigger). */
// Its message must not say "poison": the runner's explanation quotes it, and is an output row too.
async function refusePoison(): Promise<void> {
  if (db.dialect === 'postgres') {
    await sqlOf(db).query(
      `CREATE OR REPLACE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF NEW.output LIKE '%poison%' THEN
           RAISE EXCEPTION 'refused by the test trigger' USING ERRCODE = '22001';
         END IF;
         RETURN NEW;
       END $$`,
    );
    await sqlOf(db).query(
      'CREATE TRIGGER refuse_poison BEFORE INSERT ON JobStatuses FOR EACH ROW EXECUTE FUNCTION refuse_poison()',
    );
    return;
  }
  await sqlOf(db).query(
    db.dialect === 'mysql'
      ? `CREATE TRIGGER refuse_poison BEFORE INSERT ON JobStatuses FOR EACH ROW BEGIN
           IF NEW.output LIKE '%poison%' THEN
             SIGNAL SQLSTATE '22001' SET MESSAGE_TEXT = 'refused by the test trigger', MYSQL_ERRNO = 1406;
           END IF;
         END`
      : `CREATE TRIGGER refuse_poison BEFORE INSERT ON JobStatuses WHEN NEW.output LIKE '%poison%'
         BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END`,
  );
}

test('NUL bytes, invalid UTF-8 and a 16 KiB line are stored: NUL as U+2400, bad bytes as U+FFFD', async () => {
  const long = 'x'.repeat(16 * 1024);
  const id = await insertJob(db, 'bytes', {
    hex: hex('a', [0], 'b\n', [0xff, 0xfe], 'A\n', 'env=1', [0], 'HOME=/', [0], '\n', long, '\n', 'end'),
  });

  await runOnce(db);

  const job = await jobRow(db, id);
  const rows = await statusRows(db, id);
  expectSeqsInOrder(rows);
  expect(job).toMatchObject({ status: 'success', exitCode: 0, error: null });
  expect(lines(rows, 'stdout')).toEqual(['a\u2400b', '\uFFFD\uFFFDA', 'env=1\u2400HOME=/\u2400', long, 'end']);
});

test('output the database refuses while the job runs: the job is stopped and ends failure/output_failed', async () => {
  await refusePoison();
  const id = await insertJob(db, 'bytes', { hex: hex('fine\n', 'poison\n'), sleep: 60 });

  const logs = await runOnce(db, { killGraceMs: 1000 });

  const job = await jobRow(db, id);
  const rows = await statusRows(db, id);
  expect(job).toMatchObject({ status: 'failure', error: 'output_failed', signal: 'SIGTERM' });
  const system = lines(rows, 'system');
  expect(system.some((l) => /database refused this job's output: \d+ bytes \(2 lines\) were not stored/.test(l))).toBe(
    true,
  );
  expect(system.at(-1)).toMatch(/its output could not be stored \(.*refused by the test trigger.*\)/);
  expect(lines(rows, 'stdout')).toEqual([]);
  expect(logs.join('\n')).toMatch(/job \d+: its output cannot be stored/);
});

test('last rows the database refuses at the finish: the outcome lands as failure/output_failed, with a system row', async () => {
  await refusePoison();
  const id = await insertJob(db, 'bytes', { hex: hex('fine\n', 'poison\n') });

  await runOnce(db);

  const job = await jobRow(db, id);
  const rows = await statusRows(db, id);
  expect(job).toMatchObject({ status: 'failure', error: 'output_failed', exitCode: 0 });
  expect(rows.map((r) => r.stream)).toEqual(['system']);
  expect(rows[0].output).toMatch(
    /refused the job's last 3 output row\(s\) \(.*refused by the test trigger.*\).*succeeded/,
  );
});

test('one refused job in a finish batch does not fail the others', async () => {
  await refusePoison();
  const poisoned = await insertJob(db, 'bytes', { hex: hex('poison\n') });
  const clean = await Promise.all([1, 2, 3].map(() => insertJob(db, 'bytes', { hex: hex('clean\n') })));

  await runOnce(db, { config: { concurrency: 4 } });

  expect((await jobRow(db, poisoned)).error).toBe('output_failed');
  for (const id of clean) {
    expect(await jobRow(db, id)).toMatchObject({ status: 'success', error: null });
    expect(lines(await statusRows(db, id), 'stdout')).toEqual(['clean']);
  }
});
