// A job's output as a virtual list: every row stays in an array, but only the lines in view (and a
// margin around them) exist as elements. Lines have one fixed height, so a spacer of
// rows × height gives the scrollbar its full length and a scroll position maps to a row by division.
import { h } from './dom.js';

/** Lines kept as elements above and below the visible ones, so fast scrolling shows no gaps. */
const OVERSCAN = 80;
/** Browsers cap an element's height near 2^25 px (~1.8 million lines of 18 px): keep the newest million. */
const MAX_ROWS = 1_000_000;
const DROP_CHUNK = 100_000;

export class OutputView {
  constructor() {
    this.rows = [];
    /** Rows dropped from the front (MAX_ROWS), so line numbers stay true. */
    this.dropped = 0;
    /** Keep the newest line in view as rows arrive; off once the reader scrolls up. */
    this.follow = true;
    this.lastTop = 0;
    this.frame = 0;
    this.pool = [];
    this.state = '';

    this.count = h('span', { class: 'output-count' });
    this.stateLabel = h('span', { class: 'output-state muted' });
    this.topButton = h('button', { type: 'button', class: 'button button-quiet' }, 'Top');
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
      h('div', { class: 'output-toolbar' }, this.count, this.stateLabel, h('span', { class: 'grow' }), this.topButton),
      h('div', { class: 'output-frame' }, this.scroller, this.empty, this.endButton),
    );

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
    // A loop, not push(...rows): a spread of a big page can overflow the call stack.
    for (const row of rows) this.rows.push(row);
    if (this.rows.length > MAX_ROWS) {
      const cut = this.rows.length - MAX_ROWS + DROP_CHUNK;
      this.rows.splice(0, cut);
      this.dropped += cut;
      if (!this.follow) this.scroller.scrollTop = Math.max(0, this.scroller.scrollTop - cut * this.lineHeight);
    }
    this.schedule();
  }

  /** A word beside the line count: "loading history…", "live", "finished". */
  setState(text) {
    this.state = text;
    this.schedule();
  }

  get lastId() {
    return this.rows.length ? this.rows[this.rows.length - 1].id : 0;
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
    const total = this.rows.length;
    this.spacer.style.height = `${total * lh}px`;
    if (this.follow) this.scroller.scrollTop = this.scroller.scrollHeight;
    this.lastTop = this.scroller.scrollTop;

    const top = this.scroller.scrollTop;
    const height = this.scroller.clientHeight;
    const first = Math.max(0, Math.floor(top / lh) - OVERSCAN);
    const end = Math.min(total, Math.ceil((top + height) / lh) + OVERSCAN);
    const wanted = Math.max(0, end - first);
    while (this.pool.length < wanted) {
      const number = h('span', { class: 'ln', 'aria-hidden': 'true' });
      const text = h('span', { class: 'tx' });
      const line = h('div', { class: 'line' }, number, text);
      this.pool.push({ line, number, text, row: null });
      this.lines.append(line);
    }
    while (this.pool.length > wanted) this.pool.pop().line.remove();
    for (let i = 0; i < wanted; i++) {
      const slot = this.pool[i];
      const row = this.rows[first + i];
      if (slot.row === row) continue;
      slot.row = row;
      slot.line.className = `line ${row.stream}`;
      slot.number.textContent = String(this.dropped + first + i + 1);
      // Output is text, always: textContent never parses markup.
      slot.text.textContent = row.output;
    }
    this.lines.style.transform = `translateY(${first * lh}px)`;

    const n = this.dropped + total;
    this.count.textContent =
      `${n.toLocaleString()} line${n === 1 ? '' : 's'}` +
      (this.dropped ? ` (the first ${this.dropped.toLocaleString()} are no longer kept in this page)` : '');
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
