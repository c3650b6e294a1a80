// Who a job runs as (JOB_RUNNER_JOB_USER, or a template's `user`): resolved to numbers, never the
// runner's own user and never root, and whether this runner may switch to it at all.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { ConfigError, userSpecProblem } from '../config';
import type { TaskCatalog } from '../tasks/catalog';

export interface JobUser {
  /** As configured (a name, or `uid:gid`), for messages. */
  spec: string;
  uid: number;
  gid: number;
}

/** The capabilities a runner that is not root needs to start jobs as another user and stop them. */
const NEEDED_CAPS: [name: string, bit: number][] = [
  ['CAP_KILL', 5],
  ['CAP_SETGID', 6],
  ['CAP_SETUID', 7],
];
const MAX_ID = 2 ** 32 - 2;
const RESOLVE_TTL_MS = 60_000;
const resolved = new Map<string, { at: number; user: JobUser }>();

/** A passwd entry by name through NSS (getent), so LDAP/sssd users resolve too; /etc/passwd without getent. */
function lookupName(name: string): { uid: number; gid: number } | null {
  const getent = spawnSync('getent', ['passwd', name], { encoding: 'utf8' });
  let line: string | undefined;
  if (getent.error) {
    line = fs
      .readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .find((l) => l.split(':')[0] === name);
  } else if (getent.status === 0) {
    line = getent.stdout.split('\n')[0];
  } else if (getent.status !== 2) {
    throw new ConfigError(`cannot look up user ${name}: getent exited ${getent.status} ${getent.stderr.trim()}`);
  }
  if (!line) return null;
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/**
 * The numeric user and group of `spec`; `what` names the setting in the message. Throws ConfigError
 * for an unknown name, root, or the runner's own user (a job must not read the runner's secrets).
 * Names are remembered for a minute: the runner resolves one for each job it starts.
 */
export function resolveJobUser(spec: string, what: string, runnerUid = process.getuid?.() ?? -1): JobUser {
  const problem = userSpecProblem(spec);
  if (problem) throw new ConfigError(`${what}=${JSON.stringify(spec)} ${problem}`);
  let user: JobUser;
  const hit = resolved.get(spec);
  if (hit && Date.now() - hit.at < RESOLVE_TTL_MS) {
    user = hit.user;
  } else if (spec.includes(':')) {
    const [uid, gid] = spec.split(':').map(Number);
    user = { spec, uid, gid };
  } else {
    const found = lookupName(spec);
    if (!found) throw new ConfigError(`${what}=${JSON.stringify(spec)}: no such user on this host`);
    user = { spec, ...found };
    if (resolved.size > 100) resolved.clear();
    resolved.set(spec, { at: Date.now(), user });
  }
  if (user.uid > MAX_ID || user.gid > MAX_ID) throw new ConfigError(`${what}=${JSON.stringify(spec)}: id out of range`);
  if (user.uid === 0 || user.gid === 0) {
    throw new ConfigError(`${what}=${JSON.stringify(spec)} may not be root (uid or gid 0)`);
  }
  if (user.uid === runnerUid) {
    throw new ConfigError(
      `${what}=${JSON.stringify(spec)} is the runner's own user (uid ${runnerUid}): jobs must run as another user`,
    );
  }
  return user;
}

/** The capabilities of NEEDED_CAPS this process lacks (root normally has them all). */
export function missingCapabilities(status = fs.readFileSync('/proc/self/status', 'utf8')): string[] {
  const eff = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  const caps = eff ? BigInt(`0x${eff[1]}`) : 0n;
  return NEEDED_CAPS.filter(([, bit]) => (caps & (1n << BigInt(bit))) === 0n).map(([name]) => name);
}

/**
 * At start: every user a job may run as (the runner's JOB_RUNNER_JOB_USER and each template's
 * `user`) exists, is not the runner's own, and this runner may switch to it (setpriv, and root or
 * the capabilities). Throws ConfigError (exit 78), so a bad setup never starts claiming jobs.
 */
export function checkJobUsers(
  jobUser: string | undefined,
  catalog: TaskCatalog,
  setprivPath: string | undefined,
): void {
  const specs: [string, string][] = [];
  if (jobUser !== undefined) specs.push([jobUser, 'JOB_RUNNER_JOB_USER']);
  for (const task of catalog.current().values()) {
    if (task.user !== undefined) specs.push([task.user, `task "${task.name}": user`]);
  }
  if (specs.length === 0) return;
  for (const [spec, what] of specs) resolveJobUser(spec, what);
  const setting = specs[0][1];
  if (!setprivPath) throw new ConfigError(`${setting} needs setpriv (util-linux) on this host`);
  const missing = missingCapabilities();
  if (missing.length > 0) {
    throw new ConfigError(`${setting} needs the runner to run as root or with ${missing.join(' ')} (it has not)`);
  }
}
