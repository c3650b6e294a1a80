// /schedules (admins): the task file's schedules, when each fires next and what its last job did.
import { Router } from 'express';
import type { Database } from '../models/database';
import type { Queue } from '../models/queue';
import { listSchedules } from '../models/schedules';
import type { TaskCatalog } from '../tasks/catalog';
import { adminsOnly, authenticate } from './auth';

export interface SchedulesRouterDeps {
  db: Database;
  queue: Queue;
  catalog: TaskCatalog;
}

export function createSchedulesRouter(deps: SchedulesRouterDeps): Router {
  const router = Router();
  router.use(authenticate(deps.db), adminsOnly('schedules are for admins'));
  router.get('/', async (_req, res) => {
    res.json(await listSchedules(deps.queue, deps.catalog.schedules().values()));
  });
  return router;
}
