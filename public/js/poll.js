// Reloading a view every few seconds while someone looks at it: one timer however loads overlap,
// nothing loaded in a hidden tab, and a load at once when the tab is shown again.
import { h, replace } from './dom.js';

/** `load()` must not throw (it shows its own errors). `start({now})`: load at once, or after one wait. */
export function createPoller(load, everyMs) {
  let active = false;
  let timer = 0;

  const schedule = () => {
    clearTimeout(timer);
    timer = setTimeout(tick, everyMs);
  };

  async function tick() {
    if (!active) return;
    if (!document.hidden) await load();
    if (active) schedule();
  }

  const onVisible = () => {
    if (!document.hidden) tick();
  };

  return {
    start({ now = true } = {}) {
      if (active) return;
      active = true;
      document.addEventListener('visibilitychange', onVisible);
      if (now) tick();
      else schedule();
    },
    stop() {
      active = false;
      clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVisible);
    },
    get active() {
      return active;
    },
  };
}

/**
 * An admin view in `container` that loads one thing every `everyMs` and draws it: `layout()` gives
 * its parts (`nodes` put in the container), `fetch()` the data, and `draw(parts, {data, error})`
 * draws it (data null until loaded; error the words of a failed load of `what`). An answer that
 * changes nothing (with `extra()`, more of the view's own state) is not redrawn, so buttons, focus
 * and selection stay. A 403 (not an admin) is shown and ends the polling.
 */
export function pollView(container, { layout, fetch, draw, what, everyMs, extra = () => null }) {
  const parts = layout();
  replace(container, parts.nodes);
  const state = { data: null, error: null };
  let disposed = false;
  let drawn = '';

  function redraw() {
    const key = JSON.stringify([state, extra()]);
    if (key === drawn) return;
    drawn = key;
    draw(parts, state);
  }

  async function load() {
    try {
      const data = await fetch();
      if (disposed) return;
      state.data = data;
      state.error = null;
    } catch (err) {
      if (disposed || err.status === 401) return;
      state.error = `Could not load the ${what}: ${err.message}`;
      if (err.status === 403) poller.stop();
    }
    redraw();
  }

  const poller = createPoller(load, everyMs);
  redraw();
  poller.start();

  return {
    parts,
    load,
    redraw,
    get disposed() {
      return disposed;
    },
    dispose() {
      disposed = true;
      poller.stop();
    },
  };
}

/**
 * Draws a pollView state that has nothing to show yet into `el`: its error as an alert, or
 * "Loading…". Returns false when there is data, for the view to draw.
 */
export function drawUnloaded(el, { data, error }) {
  if (error !== null) replace(el, h('p', { class: 'form-error', role: 'alert' }, error));
  else if (data === null) replace(el, h('p', { class: 'muted' }, 'Loading…'));
  return error !== null || data === null;
}
