// The orphan guard's own process (started by orphan-guard.ts, one per runner outside systemd). It
// reads `+PGID` and `-PGID` lines from its runner: the process groups of the jobs running now. When
// its input ends — the runner exited, or was killed with `kill -9` — it SIGKILLs every group still
// listed, and exits. Signals meant for the runner's terminal or service do not stop it.
const groups = new Set<number>();
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => {});

let pending = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => {
  pending += chunk;
  for (let end = pending.indexOf('\n'); end >= 0; end = pending.indexOf('\n')) {
    const line = pending.slice(0, end);
    pending = pending.slice(end + 1);
    const pgid = Number(line.slice(1));
    if (!Number.isInteger(pgid) || pgid <= 1) continue;
    if (line.startsWith('+')) groups.add(pgid);
    else if (line.startsWith('-')) groups.delete(pgid);
  }
});
process.stdin.on('end', () => {
  for (const pgid of groups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // that group is gone already
    }
  }
  process.exit(0);
});
