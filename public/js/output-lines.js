// A job's output lines by line number (0-based, the `offset` of GET /jobs/:id/status), loaded in any
// order: the newest page first, live lines at the end, older pages when the reader scrolls to them.
// Lines not loaded yet are holes. Rows are kept in chunks of one page, so a hole costs nothing.

/** Rows per request (the API's cap) and per chunk. */
export const PAGE = 1000;
/** Browsers cap an element's height near 2^25 px (~1.8 million lines of 18 px): keep the newest million. */
const MAX_LINES = 1_000_000;
const DROP_CHUNK = 100_000;

export class OutputLines {
  constructor() {
    /** chunk number → array of PAGE rows, holes where not loaded */
    this.chunks = new Map();
    /** Lines the job has, as far as known: the list's length. */
    this.total = 0;
    /** Lines before this one are not kept (MAX_LINES); line numbers stay true. */
    this.first = 0;
  }

  get(line) {
    const chunk = this.chunks.get(Math.floor(line / PAGE));
    return chunk ? chunk[line % PAGE] : undefined;
  }

  set(line, row) {
    const number = Math.floor(line / PAGE);
    let chunk = this.chunks.get(number);
    if (!chunk) this.chunks.set(number, (chunk = new Array(PAGE)));
    chunk[line % PAGE] = row;
  }

  /** A page read at `offset`. Rows past the known end are left to the live feed, which appends them. */
  put(offset, rows) {
    const end = Math.min(rows.length, this.total - offset);
    for (let i = Math.max(0, this.first - offset); i < end; i++) this.set(offset + i, rows[i]);
  }

  /** Rows after the last line. Returns how many lines were dropped from the front. */
  append(rows) {
    for (const row of rows) this.set(this.total++, row);
    return this.trim();
  }

  /** Sets the number of lines (the newest page tells it). Returns how many were dropped from the front. */
  resize(total) {
    this.total = total;
    for (const number of this.chunks.keys()) if (number * PAGE >= total) this.chunks.delete(number);
    return this.trim();
  }

  trim() {
    if (this.total - this.first <= MAX_LINES) return 0;
    const cut = this.total - MAX_LINES + DROP_CHUNK - this.first;
    this.first += cut;
    for (const number of this.chunks.keys()) if ((number + 1) * PAGE <= this.first) this.chunks.delete(number);
    return cut;
  }

  /** The first line in [from, to) that is not loaded, or -1. */
  firstMissing(from, to) {
    for (let line = Math.max(from, this.first); line < Math.min(to, this.total); line++) {
      if (this.get(line) === undefined) return line;
    }
    return -1;
  }
}
