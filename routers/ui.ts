// The jobs page for people: the static files of public/ (plain HTML, CSS and ES modules, no build step).
import fs from 'node:fs';
import path from 'node:path';
import express, { Router } from 'express';

/** public/ beside the sources (ts-jest: routers/ → ../public) or beside dist/ (dist/routers/ → ../../public). */
export function findPublicDir(from = __dirname): string {
  const candidates = [path.resolve(from, '..', 'public'), path.resolve(from, '..', '..', 'public')];
  const found = candidates.find((dir) => fs.existsSync(path.join(dir, 'index.html')));
  if (!found) throw new Error(`the web UI's files are missing (looked in ${candidates.join(' and ')})`);
  return found;
}

/**
 * GET/HEAD of the UI's files; anything else falls through to the app's 404. The page talks to the
 * API only (its views route by URL hash), so one index.html is all the server serves.
 */
export function createUiRouter(dir = findPublicDir()): Router {
  const serve = express.static(dir, {
    index: 'index.html',
    dotfiles: 'ignore',
    redirect: false,
    // Revalidate (Last-Modified/ETag) on each load so a deploy shows at once; the app's no-store is replaced.
    cacheControl: false,
    setHeaders: (res) => res.setHeader('Cache-Control', 'no-cache'),
  });
  const router = Router();
  // Browsers and tools that ignore the page's <link rel="icon"> ask for /favicon.ico: the same icon, not a 404.
  router.get('/favicon.ico', (_req, res, next) => {
    res.setHeader('Cache-Control', 'no-cache');
    res.sendFile(path.join(dir, 'favicon.svg'), (err) => err && next(err));
  });
  router.use((req, res, next) => (req.method === 'GET' || req.method === 'HEAD' ? serve(req, res, next) : next()));
  return router;
}
