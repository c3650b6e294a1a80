// Bytes in, lines out: UTF-8 decoded across chunk boundaries, long lines split at 16 KiB.
import { StringDecoder } from 'node:string_decoder';

export const MAX_LINE_BYTES = 16 * 1024;

/** Splits a line longer than MAX_LINE_BYTES at UTF-8 character boundaries. */
export function splitLongLine(line: string, maxBytes = MAX_LINE_BYTES): string[] {
  // A UTF-16 code unit is at most 3 bytes of UTF-8, so short strings need no byte count.
  if (line.length * 3 <= maxBytes || Buffer.byteLength(line) <= maxBytes) return [line];
  const buf = Buffer.from(line, 'utf8');
  const parts: string[] = [];
  let start = 0;
  while (start < buf.length) {
    let end = Math.min(start + maxBytes, buf.length);
    // Never cut inside a multi-byte character: back up over continuation bytes.
    while (end < buf.length && end > start && (buf[end] & 0xc0) === 0x80) end--;
    // A limit smaller than one character still moves forward by a whole character.
    if (end === start)
      do end++;
      while (end < buf.length && (buf[end] & 0xc0) === 0x80);
    parts.push(buf.toString('utf8', start, end));
    start = end;
  }
  return parts;
}

export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private partial = '';

  constructor(private readonly emit: (line: string) => void) {}

  write(chunk: Buffer): void {
    const text = this.partial + this.decoder.write(chunk);
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      const end = nl > start && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
      this.emitLine(text.slice(start, end));
      start = nl + 1;
    }
    this.partial = start === 0 ? text : text.slice(start);
    // Bound memory on output without newlines: flush whole 16 KiB pieces as they fill.
    if (this.partial.length * 3 > MAX_LINE_BYTES * 4) {
      const parts = splitLongLine(this.partial);
      this.partial = parts.pop() ?? '';
      for (const part of parts) this.emit(part);
    }
  }

  /** The end of the stream: whatever is left is the last line (without a newline). */
  end(): void {
    const rest = this.partial + this.decoder.end();
    this.partial = '';
    if (rest !== '') this.emitLine(rest);
  }

  private emitLine(line: string): void {
    for (const part of splitLongLine(line)) this.emit(part);
  }
}
