// Fair shares across the fleet (SPEC §11): with JOB_USER_MAX_RUNNING=1, bob's long jobs never take
// the slot alice's job needs, whichever of two runner processes claims what.
import { QueryTypes } from 'sequelize';
import { insertJob, jobRow, waitFor } from '../helpers/runner';
import { startRunner, useChaosDatabase } from '../helpers/chaos';
import { sqlOf } from '../helpers/database';

const chaos = useChaosDatabase('quota');

async function runningOf(owner: string): Promise<number> {
  const [{ n }] = await sqlOf(chaos.db).query<{ n: number }>(
    'SELECT COUNT(*) AS n FROM Jobs WHERE createdBy = :owner AND status = :status',
    { type: QueryTypes.SELECT, replacements: { owner, status: 'running' } },
  );
  return Number(n);
}

test('bob’s three long jobs never take the slot alice’s job needs (two runners, one slot each)', async () => {
  const env = { JOB_USER_MAX_RUNNING: '1', JOB_RUNNER_CONCURRENCY: '1' };
  const bobs = [];
  for (let i = 0; i < 3; i++) {
    bobs.push(await insertJob(chaos.db, 'sleep', { seconds: 600, mode: 'alone' }, { createdBy: 'bob' }));
  }
  const alice = await insertJob(chaos.db, 'print-id', {}, { createdBy: 'alice' });
  startRunner(chaos.config, { id: 'quota-a', env });
  startRunner(chaos.config, { id: 'quota-b', env });

  // Bob's first job holds one runner; alice's runs on the other, though bob's two others came first.
  let mostBob = 0;
  await waitFor(async () => {
    mostBob = Math.max(mostBob, await runningOf('bob'));
    return (await jobRow(chaos.db, alice)).status === 'success';
  }, 90_000);
  expect((await jobRow(chaos.db, alice)).status).toBe('success');
  expect(mostBob).toBeLessThanOrEqual(1);
  expect(await runningOf('bob')).toBe(1);
  const waiting = await Promise.all(bobs.map(async (id) => (await jobRow(chaos.db, id)).status));
  expect(waiting.filter((s) => s === 'pending')).toHaveLength(2);
});
