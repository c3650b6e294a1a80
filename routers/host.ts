// A host app's conventions (SPEC §14): its `{data: …}` envelope, and its own authentication.
import type { Request, RequestHandler } from 'express';
import type { AccessCheck } from './stream-access';
import type { Principal } from './auth';

/** Who the host app says is asking: from its session, or from its own API keys (`via: 'token'`). */
export interface HostPrincipal {
  username: string;
  isAdmin: boolean;
  /** 'token' for a credential the browser does not send by itself (an API key): no same-origin check. Default 'session'. */
  via?: 'session' | 'token';
}

/**
 * The host's authentication: the principal it resolved for this request, or null/undefined for
 * none (401). Called again every 15 s while a stream is open; null then ends the stream.
 */
export type HostAuthenticate = (
  req: Request,
) => HostPrincipal | null | undefined | Promise<HostPrincipal | null | undefined>;

/** The host's answer as a Principal, or null when it names nobody. */
export async function hostPrincipal(resolve: HostAuthenticate, req: Request): Promise<Principal | null> {
  const found = await resolve(req);
  if (!found || typeof found.username !== 'string' || found.username === '') return null;
  return {
    username: found.username,
    isAdmin: found.isAdmin === true,
    via: found.via === 'token' ? 'token' : 'session',
  };
}

/** A stream's re-check under the host's authentication: ask the host again; another user or none ends it. */
export function hostAccessCheck(resolve: HostAuthenticate, req: Request, principal: Principal): AccessCheck {
  return async () => {
    const now = await hostPrincipal(resolve, req);
    return now && now.username === principal.username ? { username: now.username, isAdmin: now.isAdmin } : null;
  };
}

/**
 * Success bodies as `{data: body}`; error bodies keep `{error: {code, message}}` and gain the host's
 * `fields: {name: message}` beside our `field` when one field is at fault.
 */
export const envelopeBodies: RequestHandler = (_req, res, next) => {
  const json = res.json.bind(res);
  res.json = (body: unknown) => {
    if (res.statusCode < 400) return json({ data: body });
    const error = (body as { error?: { field?: unknown; message?: unknown } } | null)?.error;
    if (error && typeof error.field === 'string') {
      return json({ error: { ...error, fields: { [error.field]: error.message } } });
    }
    return json(body);
  };
  next();
};
