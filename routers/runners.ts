// /runners (admins): every runner heard from in the last day, with its slots, its running jobs and
// how long ago it last reported; one that stopped reporting is marked stale.
import { Router } from 'express';
import type { Database } from '../models/database';
import { listRunners, STALE_AFTER_REPORTS } from '../models/runners';
import { adminsOnly, authenticate } from './auth';

export interface RunnersRouterDeps {
  db: Database;
}

export function createRunnersRouter(deps: RunnersRouterDeps): Router {
  const router = Router();
  router.use(authenticate(deps.db), adminsOnly('runners are for admins'));
  router.get('/', async (_req, res) => {
    res.json({ ...(await listRunners(deps.db)), staleAfterReports: STALE_AFTER_REPORTS });
  });
  return router;
}
