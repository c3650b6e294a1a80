// The runner's output (README, "How the runner works"): bytes in, lines out — UTF-8 across chunks, CR dropped
// before LF, lines over 16 KiB split.
import { LineSplitter, MAX_LINE_BYTES, splitLongLine } from '../runner/line-splitter';

const EMOJI = '😀'; // 4 bytes, 2 UTF-16 code units
const EURO = '€'; // 3 bytes

function collect(): { splitter: LineSplitter; out: string[] } {
  const out: string[] = [];
  return { splitter: new LineSplitter((line) => out.push(line)), out };
}

/** Feeds `bytes` to a splitter in chunks of `size` bytes. */
function feed(splitter: LineSplitter, bytes: Buffer, size: number): void {
  for (let i = 0; i < bytes.length; i += size) splitter.write(bytes.subarray(i, i + size));
}

function expectWellFormed(pieces: string[], maxBytes = MAX_LINE_BYTES): void {
  for (const piece of pieces) {
    expect(Buffer.byteLength(piece)).toBeLessThanOrEqual(maxBytes);
    expect(piece).not.toContain('\uFFFD');
    // No lone surrogate: re-encoding gives the same string back.
    expect(Buffer.from(piece, 'utf8').toString('utf8')).toBe(piece);
  }
}

describe('splitLongLine', () => {
  test('MAX_LINE_BYTES is 16 KiB', () => {
    expect(MAX_LINE_BYTES).toBe(16384);
  });

  test('short lines and the empty line come back whole', () => {
    expect(splitLongLine('')).toEqual(['']);
    expect(splitLongLine('hello')).toEqual(['hello']);
    expect(splitLongLine(EMOJI.repeat(100))).toEqual([EMOJI.repeat(100)]);
  });

  test('a line of exactly MAX_LINE_BYTES is one piece; one byte more makes two', () => {
    const exact = 'a'.repeat(MAX_LINE_BYTES);
    expect(splitLongLine(exact)).toEqual([exact]);
    expect(splitLongLine(`${exact}b`)).toEqual([exact, 'b']);
  });

  test('multi-byte lines are measured in bytes, not characters', () => {
    const euros = EURO.repeat(6000); // 6000 characters, 18000 bytes
    const pieces = splitLongLine(euros);
    expect(pieces).toHaveLength(2);
    expect(Buffer.byteLength(pieces[0])).toBe(16383); // 5461 whole euros; a 5462nd would straddle 16384
    expect(pieces.join('')).toBe(euros);
    expectWellFormed(pieces);
  });

  test.each([0, 1, 2, 3])(
    'a 4-byte character at the split point (%i byte(s) of it before the limit) is never cut',
    (before) => {
      const line = `${'a'.repeat(MAX_LINE_BYTES - before)}${EMOJI}tail`;
      const pieces = splitLongLine(line);
      expect(pieces.join('')).toBe(line);
      expectWellFormed(pieces);
      expect(pieces[0]).toBe('a'.repeat(MAX_LINE_BYTES - before));
      expect(pieces[1].startsWith(EMOJI)).toBe(true);
    },
  );

  test('a 40 KiB mixed-width line splits into pieces of at most 16 KiB that concatenate to it', () => {
    let line = '';
    while (Buffer.byteLength(line) < 40 * 1024) line += `ab${EURO}${EMOJI}ü`;
    const pieces = splitLongLine(line);
    expect(pieces).toHaveLength(3);
    expect(pieces.join('')).toBe(line);
    expectWellFormed(pieces);
    // Each piece but the last is as full as the character boundaries allow.
    for (const piece of pieces.slice(0, -1)) expect(Buffer.byteLength(piece)).toBeGreaterThan(MAX_LINE_BYTES - 4);
  });

  test('a smaller limit works the same way', () => {
    const pieces = splitLongLine(`${EMOJI}${EMOJI}${EMOJI}abc`, 5);
    expect(pieces).toEqual([EMOJI, EMOJI, `${EMOJI}a`, 'bc']);
  });
});

describe('LineSplitter', () => {
  test('splits on LF, keeps empty lines, holds a partial line until more comes', () => {
    const { splitter, out } = collect();
    splitter.write(Buffer.from('one\n\ntwo\nthr'));
    expect(out).toEqual(['one', '', 'two']);
    splitter.write(Buffer.from('ee\n'));
    expect(out).toEqual(['one', '', 'two', 'three']);
    splitter.end();
    expect(out).toEqual(['one', '', 'two', 'three']);
  });

  test('end() emits a final line that has no newline, once', () => {
    const { splitter, out } = collect();
    splitter.write(Buffer.from('first\nlast without newline'));
    expect(out).toEqual(['first']);
    splitter.end();
    expect(out).toEqual(['first', 'last without newline']);
    splitter.end();
    expect(out).toEqual(['first', 'last without newline']);
  });

  test('end() with nothing pending emits nothing', () => {
    const { splitter, out } = collect();
    splitter.end();
    expect(out).toEqual([]);
    splitter.write(Buffer.from('done\n'));
    splitter.end();
    expect(out).toEqual(['done']);
  });

  test('CRLF loses the CR, also when CR and LF arrive in different chunks; a lone CR stays', () => {
    const { splitter, out } = collect();
    splitter.write(Buffer.from('dos line\r\nsplit\r'));
    splitter.write(Buffer.from('\nbare\rcarriage\n\r\n'));
    splitter.end();
    expect(out).toEqual(['dos line', 'split', 'bare\rcarriage', '']);
  });

  test('a 4-byte character split over four chunks arrives whole', () => {
    const { splitter, out } = collect();
    const bytes = Buffer.from(`x${EMOJI}y\n`);
    feed(splitter, bytes, 1);
    splitter.end();
    expect(out).toEqual([`x${EMOJI}y`]);
  });

  test.each([1, 2, 3, 5, 7, 4096])('mixed-width text in chunks of %i byte(s) decodes exactly', (size) => {
    const text = [`héllo ${EMOJI} wörld`, `${EURO}${EURO} 日本語`, '', `${EMOJI}${EMOJI}`, 'end'].join('\r\n');
    const { splitter, out } = collect();
    feed(splitter, Buffer.from(text), size);
    splitter.end();
    expect(out).toEqual([`héllo ${EMOJI} wörld`, `${EURO}${EURO} 日本語`, '', `${EMOJI}${EMOJI}`, 'end']);
  });

  test('a truncated character at the very end becomes U+FFFD, not an exception', () => {
    const { splitter, out } = collect();
    splitter.write(Buffer.from(`ok ${EMOJI}`).subarray(0, 5)); // "ok " + 2 of 4 bytes
    splitter.end();
    expect(out).toEqual(['ok \uFFFD']);
  });

  test('a long line is emitted in 16 KiB pieces while it is still arriving (bounded memory)', () => {
    const { splitter, out } = collect();
    const line = 'z'.repeat(100 * 1024);
    feed(splitter, Buffer.from(line), 1000);
    // Most of it is out before any newline or end().
    expect(out.join('').length).toBeGreaterThan(line.length - 2 * MAX_LINE_BYTES);
    splitter.write(Buffer.from('\nnext\n'));
    splitter.end();
    expect(out.at(-1)).toBe('next');
    const pieces = out.slice(0, -1);
    expect(pieces.join('')).toBe(line);
    expectWellFormed(pieces);
  });

  test('a long line of 4-byte characters fed in odd-sized chunks: pieces never cut a character', () => {
    const { splitter, out } = collect();
    let line = '';
    while (Buffer.byteLength(line) < 60 * 1024) line += `${EMOJI}a${EURO}`;
    feed(splitter, Buffer.from(line), 4093);
    splitter.end();
    expect(out.join('')).toBe(line);
    expect(out.length).toBeGreaterThanOrEqual(4);
    expectWellFormed(out);
  });

  test('a 40 KiB line without newline, written at once, comes out at end() as pieces that rebuild it', () => {
    const { splitter, out } = collect();
    let line = '';
    while (Buffer.byteLength(line) < 40 * 1024) line += `ab${EURO}${EMOJI}ü`;
    splitter.write(Buffer.from(line));
    splitter.end();
    expect(out.join('')).toBe(line);
    expect(out).toHaveLength(3);
    expectWellFormed(out);
  });

  test('CRLF right after a 16 KiB line: the CR is dropped, the line is one piece', () => {
    const { splitter, out } = collect();
    const line = 'q'.repeat(MAX_LINE_BYTES);
    splitter.write(Buffer.from(`${line}\r`));
    splitter.write(Buffer.from('\nafter\n'));
    splitter.end();
    expect(out).toEqual([line, 'after']);
  });

  test('a CR that ends a piece flushed early is still dropped when its LF follows', () => {
    const { splitter, out } = collect();
    const line = 'r'.repeat(30_000);
    splitter.write(Buffer.from(`${line}\r`)); // over the early-flush threshold: a piece goes out now
    expect(out.length).toBeGreaterThan(0);
    splitter.write(Buffer.from('\n'));
    splitter.end();
    expect(out.join('')).toBe(line);
    expectWellFormed(out);
  });
});
