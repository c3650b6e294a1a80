#!/usr/bin/env node
// Demo task: prints its message to stderr and exits with the given code.
'use strict';
const [message, code] = process.argv.slice(2);
process.stdout.write('about to fail\n');
process.stderr.write(`${message}\n`);
process.exitCode = Number(code) || 1;
