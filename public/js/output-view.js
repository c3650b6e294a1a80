// A job's output as a virtual list: the rows loaded so far live in an OutputLines, and only the lines
// in view (and a margin around them) exist as elements. Lines have one fixed height, so a spacer of
// lines × height gives the scrollbar its full length, loaded or not, and a scroll position maps to a
// line by division. A line not loaded yet is drawn as a placeholder; `onRange` tells the loader.
import { h } from './dom.js';
import { OutputLines } from './output-lines.js';

/** Lines kept as elements above and below the visible ones, so fast scrolling shows no gaps. */
const OVERSCAN = 80;
/** Where the Times box's choice is remembered, in this browser. */
const TIMES_KEY = 'container-jobs.output-times';

/** A row's time as the line shows it: the local clock to the millisecond; the date on hover. */
function clock(value) {
  const date = value ? new Date(value) : null;
  if (!date || Number.isNaN(date.getTime())) return '';
  const pad = (n, width = 2) => String(n).padStart(width, '0');
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

function rememberedTimes() {
  try {
    return window.localStorage.getItem(TIMES_KEY) === 'on';
  } catch {
    return false;
  }
}

export class OutputView {
  /** `tools`: more nodes for the toolbar (the job page's Download link). */
  constructor({ tools = [] } = {}) {
    this.store = new OutputLines();
    /** The lines that have elements now, [from, to); `onRange()` is called after every drawing. */
    this.range = { from: 0, to: 0 };
    this.onRange = () => {};
    /** Keep the newest line in view as rows arrive; off once the reader scrolls up. */
    this.follow = true;
    this.lastTop = 0;
    this.frame = 0;
    this.pool = [];
    this.state = '';

    this.count = h('span', { class: 'output-count' });
    this.stateLabel = h('span', { class: 'output-state muted' });
    this.topButton = h('button', { type: 'button', class: 'button button-quiet' }, 'Top');
    this.timesBox = h('input', { type: 'checkbox', id: 'output-times', checked: rememberedTimes() });
    this.endButton = h('button', { type: 'button', class: 'button jump-end', hidden: true }, 'Jump to end ↓');
    this.spacer = h('div', { class: 'output-spacer' });
    this.lines = h('div', { class: 'output-lines' });
    this.scroller = h(
      'div',
      { class: 'output', tabindex: '0', role: 'region', 'aria-label': 'Job output' },
      this.spacer,
      this.lines,
    );
    this.empty = h('p', { class: 'output-empty muted' }, 'No output yet.');
    this.element = h(
      'section',
      { class: 'output-panel', 'aria-label': 'Output' },
      h(
        'div',
        { class: 'output-toolbar' },
        this.count,
        this.stateLabel,
        h('span', { class: 'grow' }),
        h('label', { class: 'toggle', for: 'output-times' }, this.timesBox, 'Times'),
        tools,
        this.topButton,
      ),
      h('div', { class: 'output-frame' }, this.scroller, this.empty, this.endButton),
    );

    this.element.classList.toggle('with-times', this.timesBox.checked);
    this.timesBox.addEventListener('change', () => {
      this.element.classList.toggle('with-times', this.timesBox.checked);
      try {
        window.localStorage.setItem(TIMES_KEY, this.timesBox.checked ? 'on' : 'off');
      } catch {
        // Storage refused (a private window): the choice lasts for this page only.
      }
    });
    this.scroller.addEventListener('scroll', () => this.onScroll(), { passive: true });
    this.topButton.addEventListener('click', () => {
      this.follow = false;
      this.scroller.scrollTop = 0;
      this.schedule();
    });
    this.endButton.addEventListener('click', () => {
      this.follow = true;
      this.schedule();
      this.scroller.focus({ preventScroll: true });
    });
    this.resizeObserver = new ResizeObserver(() => this.schedule());
    this.resizeObserver.observe(this.scroller);
    this.schedule();
  }

  /** The line height set in CSS (--output-line-height), read once the view is in the document. */
  get lineHeight() {
    if (!this.measured) {
      const value = parseFloat(getComputedStyle(this.scroller).getPropertyValue('--output-line-height'));
      if (value > 0) this.measured = value;
    }
    return this.measured || 18;
  }

  /** Adds rows `{id, stream, output}` at the end; rendering waits for the next frame. */
  append(rows) {
    if (rows.length === 0) return;
    this.keepPlace(this.store.append(rows));
  }

  /** Sets the number of lines, loaded or not. */
  setTotal(total) {
    this.keepPlace(this.store.resize(total));
  }

  /** Rows read at line `offset`. */
  put(offset, rows) {
    this.store.put(offset, rows);
    this.schedule();
  }

  /** `cut` lines left the front of the list: the lines in view stay where they are. */
  keepPlace(cut) {
    if (cut && !this.follow) this.scroller.scrollTop = Math.max(0, this.scroller.scrollTop - cut * this.lineHeight);
    this.schedule();
  }

  /** A word beside the line count: "loading…", "live", "finished". */
  setState(text) {
    this.state = text;
    this.schedule();
  }

  isAtEnd() {
    const s = this.scroller;
    return s.scrollTop + s.clientHeight >= s.scrollHeight - this.lineHeight / 2;
  }

  onScroll() {
    const top = this.scroller.scrollTop;
    // Only the reader scrolls up (this code only ever moves to the end), so that ends following.
    if (this.isAtEnd()) this.follow = true;
    else if (top < this.lastTop) this.follow = false;
    this.lastTop = top;
    this.schedule();
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.render());
  }

  render() {
    this.frame = 0;
    const lh = this.lineHeight;
    const { first: kept, total } = this.store;
    this.spacer.style.height = `${(total - kept) * lh}px`;
    if (this.follow) this.scroller.scrollTop = this.scroller.scrollHeight;
    this.lastTop = this.scroller.scrollTop;

    const top = this.scroller.scrollTop;
    const height = this.scroller.clientHeight;
    // Line numbers, 0-based: the list starts at line `kept`.
    const first = kept + Math.max(0, Math.floor(top / lh) - OVERSCAN);
    const end = Math.min(total, kept + Math.ceil((top + height) / lh) + OVERSCAN);
    const wanted = Math.max(0, end - first);
    while (this.pool.length < wanted) {
      const number = h('span', { class: 'ln', 'aria-hidden': 'true' });
      const time = h('span', { class: 'tm' });
      const text = h('span', { class: 'tx' });
      const line = h('div', { class: 'line' }, number, time, text);
      this.pool.push({ line, number, time, text, index: -1, row: undefined });
      this.lines.append(line);
    }
    while (this.pool.length > wanted) this.pool.pop().line.remove();
    for (let i = 0; i < wanted; i++) {
      const slot = this.pool[i];
      const index = first + i;
      const row = this.store.get(index);
      if (slot.index === index && slot.row === row) continue;
      slot.index = index;
      slot.row = row;
      slot.line.className = row ? `line ${row.stream}` : 'line pending';
      slot.number.textContent = String(index + 1);
      slot.time.textContent = row ? clock(row.createdAt) : '';
      slot.time.title = row && row.createdAt ? new Date(row.createdAt).toLocaleString() : '';
      // Output is text, always: textContent never parses markup.
      slot.text.textContent = row ? row.output : '';
    }
    this.lines.style.transform = `translateY(${(first - kept) * lh}px)`;
    this.range = { from: first, to: end };
    this.onRange();

    this.count.textContent =
      `${total.toLocaleString()} line${total === 1 ? '' : 's'}` +
      (kept ? ` (the first ${kept.toLocaleString()} are not kept in this page)` : '');
    this.stateLabel.textContent = this.state;
    this.empty.hidden = total > 0;
    this.endButton.hidden = this.follow || total === 0;
    this.topButton.disabled = top === 0;
  }

  dispose() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.resizeObserver.disconnect();
  }
}
