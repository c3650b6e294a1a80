#!/usr/bin/env node
// Demo task: prints 1..N, one line per step, waiting --delay-ms between lines.
'use strict';
const arg = (name, fallback) => {
  const found = process.argv.find((a) => a.startsWith(`--${name}=`));
  return found ? Number(found.slice(name.length + 3)) : fallback;
};
const to = arg('to', 10);
const delay = arg('delay-ms', 0);
let i = 0;
function step() {
  while (i < to) {
    i++;
    const more = process.stdout.write(`${i}\n`);
    if (delay > 0) return void setTimeout(step, delay);
    if (!more) return void process.stdout.once('drain', step);
  }
}
step();
