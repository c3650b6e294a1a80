// A small reader for systemd unit files (systemd.syntax(7)): sections, repeated keys, comments,
// backslash continuations, and the empty assignment that resets a list.
import fs from 'node:fs';

export class UnitFile {
  private readonly sections = new Map<string, [string, string][]>();

  constructor(
    readonly file: string,
    text: string,
  ) {
    let section: [string, string][] | undefined;
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      let line = lines[i].trim();
      if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
      // A trailing backslash joins the next line (comment lines inside are skipped).
      while (line.endsWith('\\') && i + 1 < lines.length) {
        const next = lines[++i].trim();
        if (next.startsWith('#') || next.startsWith(';')) continue;
        line = `${line.slice(0, -1)} ${next}`;
      }
      const header = /^\[([^\]]+)\]$/.exec(line);
      if (header) {
        section = this.sections.get(header[1]) ?? [];
        this.sections.set(header[1], section);
        continue;
      }
      const eq = line.indexOf('=');
      if (!section || eq < 0) throw new Error(`${file}:${i + 1}: not a section or a Key=Value line: ${line}`);
      section.push([line.slice(0, eq).trim(), line.slice(eq + 1).trim()]);
    }
  }

  static read(file: string): UnitFile {
    return new UnitFile(file, fs.readFileSync(file, 'utf8'));
  }

  has(section: string): boolean {
    return this.sections.has(section);
  }

  /** Every value of a key in order; an empty assignment drops the values before it. */
  all(section: string, key: string): string[] {
    const values: string[] = [];
    for (const [k, v] of this.sections.get(section) ?? []) {
      if (k !== key) continue;
      if (v === '') values.length = 0;
      else values.push(v);
    }
    return values;
  }

  /** Every assignment of a key as written, empty ones included. */
  assignments(section: string, key: string): string[] {
    return (this.sections.get(section) ?? []).filter(([k]) => k === key).map(([, v]) => v);
  }

  /** The value in force for a single-valued key (the last one), or undefined. */
  get(section: string, key: string): string | undefined {
    return this.all(section, key).at(-1);
  }

  /** Space-separated list settings (RestrictAddressFamilies=, SystemCallFilter=, ...), all lines joined. */
  words(section: string, key: string): string[] {
    return this.all(section, key).flatMap((v) => v.split(/\s+/).filter(Boolean));
  }
}

const SPAN_UNITS: Record<string, number> = {
  us: 0.001,
  ms: 1,
  s: 1000,
  sec: 1000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
  hr: 3_600_000,
  d: 86_400_000,
};

/** A systemd time span ("60s", "1min 30s", "90" = seconds) in milliseconds. */
export function timespanMs(text: string): number {
  let total = 0;
  const parts = text.trim().split(/\s+/);
  for (const part of parts) {
    const match = /^(\d+(?:\.\d+)?)([a-z]*)$/.exec(part);
    const unit = match ? (match[2] === '' ? 's' : match[2]) : undefined;
    if (!match || unit === undefined || !(unit in SPAN_UNITS)) throw new Error(`not a time span: ${text}`);
    total += Number(match[1]) * SPAN_UNITS[unit];
  }
  return total;
}
