// /groups (admins): the serial groups that hold a job or are blocked, and releasing a blocked one.
import { Router, type Request, type Response } from 'express';
import type { Database } from '../models/database';
import type { Queue } from '../models/queue';
import { adminsOnly, authenticate, bodyFields, jsonBody, writeGuard } from './auth';
import { HttpError } from './errors';
import { queryString } from './params';

export interface GroupsRouterDeps {
  db: Database;
  queue: Queue;
}

const STATES = ['active', 'blocked'] as const;

export function createGroupsRouter(deps: GroupsRouterDeps): Router {
  const router = Router();
  router.use(authenticate(deps.db), adminsOnly('groups are for admins'));
  router.get('/', (req, res) => listGroups(deps.queue, req, res));
  router.post('/:key/release', writeGuard({ bodyRequired: false }), jsonBody, (req, res) =>
    releaseGroup(deps.queue, req, res),
  );
  return router;
}

async function listGroups(queue: Queue, req: Request, res: Response): Promise<void> {
  const state = queryString(req, 'state');
  if (state !== undefined && !STATES.includes(state as (typeof STATES)[number])) {
    throw new HttpError(400, 'invalid_query', `"state" must be one of ${STATES.join(', ')}`);
  }
  res.json({ groups: await queue.listGroups((state as (typeof STATES)[number] | undefined) ?? null) });
}

async function releaseGroup(queue: Queue, req: Request, res: Response): Promise<void> {
  bodyFields(req.body, [], true);
  const key = String(req.params.key);
  const released = await queue.releaseGroup(key);
  if (released === null) throw new HttpError(404, 'not_found', `no group ${JSON.stringify(key)}`);
  const [group] = (await queue.listGroups()).filter((g) => g.key === key);
  res.json({ key, released, state: group?.state ?? 'idle' });
}
