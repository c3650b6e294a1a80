// #/groups (admins) — serial groups that hold a job or are blocked; Release lets a blocked group's
// next job run. This module holds the view's state and its requests; groups-view.js draws.
// Everyone can open the URL: the API answers 403 to non-admins, and that answer is what is shown.
import { drawGroups, drawMessage, groupsLayout } from './groups-view.js';
import { replace } from './dom.js';
import { createPoller } from './poll.js';

const REFRESH_MS = 5000;

export function renderGroupsPage(container, { api }) {
  // Written by load() and release(); read by draw().
  let disposed = false;
  const state = { groups: null, error: null };
  /** Keys with a release on its way: their buttons stay disabled across redraws. */
  const releasing = new Set();
  /** What was drawn last, so an unchanged refresh leaves the buttons (and focus) alone. */
  let drawn = '';

  const parts = groupsLayout();
  replace(container, parts.nodes);

  function draw() {
    const key = JSON.stringify([state, [...releasing]]);
    if (key === drawn) return;
    drawn = key;
    drawGroups(parts, state, { releasing, onRelease: release });
  }

  async function load() {
    try {
      const { groups } = await api.groups();
      if (disposed) return;
      state.groups = groups;
      state.error = null;
    } catch (err) {
      if (disposed || err.status === 401) return;
      state.error = `Could not load the groups: ${err.message}`;
      // Not an admin (403): there is nothing to refresh.
      if (err.status === 403) poller.stop();
    }
    draw();
  }

  async function release(key) {
    releasing.add(key);
    draw();
    try {
      const result = await api.releaseGroup(key);
      if (disposed) return;
      drawMessage(
        parts,
        result.released ? `Released ${key}: its next job may start.` : `${key} was not blocked (any more).`,
      );
    } catch (err) {
      if (disposed || err.status === 401) return;
      drawMessage(parts, `Could not release ${key}: ${err.message}`, { error: true });
    } finally {
      releasing.delete(key);
    }
    await load();
  }

  const poller = createPoller(load, REFRESH_MS);
  draw();
  poller.start();

  return () => {
    disposed = true;
    poller.stop();
  };
}
