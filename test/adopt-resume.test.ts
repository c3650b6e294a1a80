// `migrate --adopt` stopped half-way (MySQL commits each ALTER by itself): running it again finishes
// the conversion. Here the stop is played by hand: Jobs already has the queue's first columns.
import path from 'node:path';
import { QueryTypes, DataTypes } from 'sequelize';
import { databaseEnv } from '../config';
import { seedSqlFor } from '../models/sql';
import { runScript, serviceEnv, show } from './helpers/cli';
import { insertOldJobs, layOutHostJobs } from './helpers/container-creator-db';
import { emptyDatabase, ROOT } from './helpers/database';

const EXAMPLE = path.join(ROOT, 'examples', 'container-creator');

test('a conversion stopped after its first steps is finished by running it again', async () => {
  const { db, config } = await emptyDatabase();
  try {
    await layOutHostJobs(db);
    const [done, waiting] = await insertOldJobs(db, [
      {
        command: 'node bin/create-container.js --container-id=1',
        status: 'success',
        createdBy: 'alice',
        output: ['a\n'],
      },
      { command: 'node bin/create-container.js --container-id=2', status: 'pending', createdBy: 'alice' },
    ]);
    const qi = db.sequelize.getQueryInterface();
    await qi.addColumn('Jobs', 'task', { type: DataTypes.STRING(100), allowNull: true });
    await qi.addColumn('Jobs', 'params', { type: DataTypes.JSON, allowNull: true });
    await db.sequelize.query(
      seedSqlFor(config.dialect, "UPDATE Jobs SET task = '(legacy)', params = '{}' WHERE id = ?"),
      {
        replacements: [done],
      },
    );

    const env = { ...databaseEnv(config), JOB_TASKS_FILE: path.join(EXAMPLE, 'tasks.json') };
    const run = runScript(
      'dist/cli.js',
      ['migrate', '--adopt', '--map', path.join(EXAMPLE, 'adopt-commands.json')],
      serviceEnv(env),
    );
    if (run.status !== 0) throw new Error(show(run));
    expect(run.stdout).toMatch(/adopted: 2 job\(s\), 1 output row\(s\)/);
    const rows = await db.sequelize.query<{ id: number; task: string; status: string }>(
      seedSqlFor(config.dialect, 'SELECT id, task, status FROM Jobs ORDER BY id'),
      { type: QueryTypes.SELECT },
    );
    expect(rows.map((r) => [Number(r.id), r.task, r.status])).toEqual([
      [done, 'create-container', 'success'],
      [waiting, 'create-container', 'pending'],
    ]);
    const [output] = await db.sequelize.query<{ seq: number; stream: string; output: string }>(
      seedSqlFor(config.dialect, 'SELECT seq, stream, output FROM JobStatuses WHERE jobId = ?'),
      { type: QueryTypes.SELECT, replacements: [done] },
    );
    expect({ ...output, seq: Number(output.seq) }).toEqual({ seq: 1, stream: 'stdout', output: 'a\n' });
  } finally {
    await db.close();
  }
});
