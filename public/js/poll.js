// Reloading a view every few seconds while someone looks at it: one timer however loads overlap,
// nothing loaded in a hidden tab, and a load at once when the tab is shown again.

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
