// Ids and paging numbers from paths, query strings and headers: whole numbers or a 400.
import type { Request } from 'express';
import { HttpError } from './errors';

const DIGITS = /^\d+$/;

/** A job id from the path; 400 invalid_id unless a non-negative whole number. */
export function pathId(req: Request): number {
  const raw = req.params.id;
  if (typeof raw !== 'string' || !DIGITS.test(raw) || !Number.isSafeInteger(Number(raw))) {
    throw new HttpError(400, 'invalid_id', `job id must be a non-negative whole number, not ${JSON.stringify(raw)}`);
  }
  return Number(raw);
}

export interface IntRule {
  min?: number;
  /** Larger values are lowered to this (not an error). */
  cap?: number;
}

function parseInt(raw: string, what: string, rule: IntRule): number {
  const min = rule.min ?? 0;
  if (!DIGITS.test(raw) || !Number.isSafeInteger(Number(raw)) || Number(raw) < min) {
    throw new HttpError(400, 'invalid_query', `${what} must be a whole number of at least ${min}`);
  }
  const value = Number(raw);
  return rule.cap === undefined ? value : Math.min(value, rule.cap);
}

/** A whole-number query parameter, or `fallback` when absent; 400 invalid_query otherwise. */
export function queryInt(req: Request, name: string, fallback: number, rule?: IntRule): number;
export function queryInt(req: Request, name: string, fallback: undefined, rule?: IntRule): number | undefined;
export function queryInt(req: Request, name: string, fallback: number | undefined, rule: IntRule = {}) {
  const raw = queryString(req, name);
  return raw === undefined ? fallback : parseInt(raw, `"${name}"`, rule);
}

/** A query parameter given at most once. */
export function queryString(req: Request, name: string): string | undefined {
  const raw = (req.query as Record<string, unknown>)[name];
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string') throw new HttpError(400, 'invalid_query', `"${name}" must be given once`);
  return raw;
}

/** The SSE resume point: `Last-Event-ID` (what a reconnecting browser sends) wins over `?afterId=`. */
export function resumeAfter(req: Request): number | undefined {
  const header = req.headers['last-event-id'];
  if (typeof header === 'string' && header.trim() !== '') return parseInt(header.trim(), 'Last-Event-ID', {});
  // `lastId` is the container-creator's name for it (its job page sends `?lastId=`).
  return queryInt(req, 'afterId', undefined) ?? queryInt(req, 'lastId', undefined);
}
