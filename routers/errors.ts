// One error shape for every failure: {"error": {"code", "message"}}; never a stack trace.
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { ConnectionAcquireTimeoutError, ConnectionError } from 'sequelize';
import type { Logger } from '../log';

/** Thrown anywhere in a handler; the error middleware turns it into the JSON error body. */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: { field?: string; headers?: Record<string, string> } = {},
  ) {
    super(message);
  }
}

/** body-parser's error types, as the API's codes. */
const BODY_ERRORS: Record<string, [number, string, string]> = {
  'entity.too.large': [413, 'payload_too_large', 'the request body is larger than 64 KiB'],
  'entity.parse.failed': [400, 'invalid_json', 'the request body is not valid JSON'],
  'charset.unsupported': [415, 'unsupported_media_type', 'the request body must be UTF-8 JSON'],
  'encoding.unsupported': [415, 'unsupported_media_type', 'unsupported Content-Encoding'],
  'request.aborted': [400, 'request_aborted', 'the request body was not received completely'],
  'request.size.invalid': [400, 'invalid_body', 'the request body does not match its Content-Length'],
};

function toHttpError(err: unknown): HttpError | null {
  if (err instanceof HttpError) return err;
  const type = (err as { type?: unknown })?.type;
  if (typeof type === 'string' && type in BODY_ERRORS) {
    const [status, code, message] = BODY_ERRORS[type];
    return new HttpError(status, code, message);
  }
  if (err instanceof ConnectionError || err instanceof ConnectionAcquireTimeoutError) {
    return new HttpError(503, 'database_unavailable', 'the database does not answer; try again shortly');
  }
  // Other client errors raised by Express itself (e.g. a path that does not URL-decode).
  const status = (err as { status?: unknown })?.status;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new HttpError(status, 'bad_request', 'the request could not be understood');
  }
  return null;
}

export function sendError(res: Parameters<RequestHandler>[1], err: HttpError): void {
  for (const [name, value] of Object.entries(err.extra.headers ?? {})) res.setHeader(name, value);
  const body: { code: string; message: string; field?: string } = { code: err.code, message: err.message };
  if (err.extra.field !== undefined) body.field = err.extra.field;
  res.status(err.status).json({ error: body });
}

/** The last middleware: known errors become their status and code, anything else a logged 500. */
export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    const known = toHttpError(err);
    if (!known) log.error(`${req.method} ${req.originalUrl}: ${String((err as Error)?.stack ?? err)}`);
    if (res.headersSent) {
      // A stream already under way: all that is left is to end it.
      res.end();
      return;
    }
    sendError(res, known ?? new HttpError(500, 'internal_error', 'internal error'));
  };
}

export const notFound: RequestHandler = (req) => {
  throw new HttpError(404, 'not_found', `no route for ${req.method} ${req.path}`);
};
