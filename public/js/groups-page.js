// #/groups (admins) — serial groups that hold a job or are blocked; Release lets a blocked group's
// next job run. This module holds the view's state and its requests; groups-view.js draws.
// Everyone can open the URL: the API answers 403 to non-admins, and that answer is what is shown.
import { drawGroups, drawMessage, groupsLayout } from './groups-view.js';
import { pollView } from './poll.js';

const REFRESH_MS = 5000;

export function renderGroupsPage(container, { api }) {
  /** Keys with a release on its way: their buttons stay disabled across redraws. Written by release(). */
  const releasing = new Set();

  const view = pollView(container, {
    layout: groupsLayout,
    fetch: async () => (await api.groups()).groups,
    draw: (parts, state) => drawGroups(parts, state, { releasing, onRelease: release }),
    extra: () => [...releasing],
    what: 'groups',
    everyMs: REFRESH_MS,
  });

  async function release(key) {
    releasing.add(key);
    view.redraw();
    try {
      const result = await api.releaseGroup(key);
      if (view.disposed) return;
      drawMessage(
        view.parts,
        result.released ? `Released ${key}: its next job may start.` : `${key} was not blocked (any more).`,
      );
    } catch (err) {
      if (view.disposed || err.status === 401) return;
      drawMessage(view.parts, `Could not release ${key}: ${err.message}`, { error: true });
    } finally {
      releasing.delete(key);
    }
    await view.load();
  }

  return view.dispose;
}
