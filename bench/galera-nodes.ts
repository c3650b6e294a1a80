// bench/galera-nodes: a 3-node MariaDB Galera cluster on this machine, from Debian's packages
// (mariadb-server, galera-4, rsync), for bench/cluster and test/cluster. Run as root; the nodes
// run as the `mysql` user.
//   node dist/bench/galera-nodes.js start        bootstraps node 1, then nodes 2 and 3 join (SST by rsync)
//   node dist/bench/galera-nodes.js status       each node's state and the cluster size it sees
//   node dist/bench/galera-nodes.js kill N       kill -9 of node N (a crash, no goodbye)
//   node dist/bench/galera-nodes.js rejoin N     starts node N again; it catches up (IST or SST)
//   node dist/bench/galera-nodes.js stop         stops every node (SIGTERM, then waits)
// Node N: data in /tmp/cj-galera/nodeN, SQL on 127.0.0.1:331N, root over TCP without a password,
// group communication on 4567+10(N-1), IST on the next port, SST on the one after.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export const GALERA_DIR = process.env.CJ_GALERA_DIR ?? '/tmp/cj-galera';
export const NODES = [1, 2, 3] as const;
const PROVIDER = '/usr/lib/galera/libgalera_smm.so';

export const sqlPort = (n: number) => 3310 + n;
const gcommPort = (n: number) => 4567 + 10 * (n - 1);
const nodeDir = (n: number) => path.join(GALERA_DIR, `node${n}`);
const socketOf = (n: number) => path.join(nodeDir(n), 'mysqld.sock');
const pidFileOf = (n: number) => path.join(nodeDir(n), 'mysqld.pid');

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function config(n: number): string {
  const peers = NODES.map((m) => `127.0.0.1:${gcommPort(m)}`).join(',');
  const gcomm = gcommPort(n);
  return [
    '[mysqld]',
    `datadir=${path.join(nodeDir(n), 'data')}`,
    `socket=${socketOf(n)}`,
    `pid-file=${pidFileOf(n)}`,
    `log-error=${path.join(nodeDir(n), 'error.log')}`,
    `port=${sqlPort(n)}`,
    'bind-address=127.0.0.1',
    'skip-name-resolve',
    'binlog_format=ROW',
    'default_storage_engine=InnoDB',
    'innodb_autoinc_lock_mode=2',
    'innodb_buffer_pool_size=128M',
    'innodb_flush_log_at_trx_commit=2',
    'max_connections=300',
    'wsrep_on=ON',
    `wsrep_provider=${PROVIDER}`,
    'wsrep_cluster_name=cj_bench',
    `wsrep_cluster_address=gcomm://${peers}`,
    `wsrep_node_name=node${n}`,
    `wsrep_node_address=127.0.0.1:${gcomm}`,
    `wsrep_provider_options="gmcast.listen_addr=tcp://127.0.0.1:${gcomm};ist.recv_addr=127.0.0.1:${gcomm + 1};gcache.size=128M"`,
    `wsrep_sst_method=${fs.existsSync('/usr/bin/rsync') ? 'rsync' : 'mariabackup'}`,
    `wsrep_sst_receive_address=127.0.0.1:${gcomm + 2}`,
    '',
  ].join('\n');
}

/** `mariadb` on node N's socket (as root: unix_socket authentication); its output, or null on failure. */
function sql(n: number, statement: string): string | null {
  // The client would take MYSQL_HOST (set for the tests) over the socket and ask the main server.
  const env = { ...process.env };
  delete env.MYSQL_HOST;
  delete env.MYSQL_TCP_PORT;
  const result = spawnSync('mariadb', ['--protocol=socket', '-S', socketOf(n), '-uroot', '-N', '-B', '-e', statement], {
    encoding: 'utf8',
    timeout: 10_000,
    env,
  });
  return result.status === 0 ? result.stdout.trim() : null;
}

function status(n: number, variable: string): string | null {
  const out = sql(n, `SHOW GLOBAL STATUS LIKE '${variable}'`);
  return out === null ? null : (out.split('\t')[1] ?? null);
}

function pidOf(n: number): number | null {
  try {
    const pid = Number(fs.readFileSync(pidFileOf(n), 'utf8').trim());
    process.kill(pid, 0);
    return pid;
  } catch {
    return null;
  }
}

function prepare(n: number): void {
  const dir = nodeDir(n);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'my.cnf'), config(n));
  if (!fs.existsSync(path.join(dir, 'data', 'mysql'))) {
    const init = spawnSync(
      'mariadb-install-db',
      [`--defaults-file=${path.join(dir, 'my.cnf')}`, '--user=mysql', '--skip-test-db', '--wsrep-on=OFF'],
      { encoding: 'utf8' },
    );
    if (init.status !== 0) throw new Error(`mariadb-install-db for node ${n} failed:\n${init.stdout}${init.stderr}`);
  }
  spawnSync('chown', ['-R', 'mysql:mysql', GALERA_DIR]);
}

/** Starts node N's mariadbd in the background; resolves once it is Synced with the cluster. */
async function startNode(n: number, bootstrap: boolean): Promise<void> {
  if (pidOf(n) !== null) {
    console.log(`node ${n}: already running (pid ${pidOf(n)})`);
    return;
  }
  prepare(n);
  const args = [`--defaults-file=${path.join(nodeDir(n), 'my.cnf')}`, '--user=mysql'];
  if (bootstrap) {
    args.push('--wsrep-new-cluster');
    // Every node is down (this script stopped them): node 1 may found the cluster again.
    const grastate = path.join(nodeDir(n), 'data', 'grastate.dat');
    if (fs.existsSync(grastate)) {
      fs.writeFileSync(
        grastate,
        fs.readFileSync(grastate, 'utf8').replace(/safe_to_bootstrap: 0/, 'safe_to_bootstrap: 1'),
      );
    }
  }
  const out = fs.openSync(path.join(nodeDir(n), 'stdout.log'), 'a');
  const child = spawn('/usr/sbin/mariadbd', args, { detached: true, stdio: ['ignore', out, out] });
  child.unref();
  for (const deadline = Date.now() + 180_000; Date.now() < deadline; await sleep(500)) {
    if (child.exitCode !== null) throw new Error(`node ${n} exited (${child.exitCode}): see ${nodeDir(n)}/error.log`);
    if (status(n, 'wsrep_local_state_comment') === 'Synced') {
      console.log(`node ${n}: Synced on 127.0.0.1:${sqlPort(n)} (pid ${child.pid})`);
      return;
    }
  }
  throw new Error(`node ${n} not Synced after 180 s: see ${nodeDir(n)}/error.log`);
}

async function start(): Promise<void> {
  const running = NODES.filter((n) => pidOf(n) !== null);
  await startNode(1, running.length === 0);
  // The runners connect over TCP as root, without a password (a bench on loopback only).
  const grant =
    "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; " +
    "GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION";
  if (sql(1, grant) === null) throw new Error('could not grant root@127.0.0.1 on node 1');
  for (const n of [2, 3]) await startNode(n, false);
}

async function stopNode(n: number, signal: NodeJS.Signals): Promise<void> {
  const pid = pidOf(n);
  if (pid === null) return;
  process.kill(pid, signal);
  for (const deadline = Date.now() + 120_000; Date.now() < deadline; await sleep(200)) {
    try {
      process.kill(pid, 0);
    } catch {
      console.log(`node ${n}: stopped (${signal})`);
      return;
    }
  }
  throw new Error(`node ${n} (pid ${pid}) still running 120 s after ${signal}`);
}

function printStatus(): void {
  for (const n of NODES) {
    const pid = pidOf(n);
    if (pid === null) {
      console.log(`node ${n}: down`);
      continue;
    }
    console.log(
      `node ${n}: pid ${pid}, 127.0.0.1:${sqlPort(n)}, ${status(n, 'wsrep_local_state_comment')}, ` +
        `cluster size ${status(n, 'wsrep_cluster_size')}, ${status(n, 'wsrep_cluster_status')}`,
    );
  }
}

function nodeArg(value: string | undefined): number {
  const n = Number(value);
  if (!NODES.includes(n as 1 | 2 | 3)) throw new Error(`expected a node number 1, 2 or 3, got ${value ?? 'nothing'}`);
  return n;
}

export async function galera(command: string | undefined, arg?: string): Promise<void> {
  switch (command) {
    case 'start':
      return start();
    case 'stop':
      // Joiners first, the bootstrap node last: a clean shutdown of the last one makes it safe to bootstrap.
      for (const n of [...NODES].reverse()) await stopNode(n, 'SIGTERM');
      return;
    case 'status':
      return printStatus();
    case 'kill':
      return stopNode(nodeArg(arg), 'SIGKILL');
    case 'rejoin':
      return startNode(nodeArg(arg), false);
    default:
      throw new Error('usage: galera-nodes start | stop | status | kill N | rejoin N');
  }
}

if (require.main === module) {
  galera(process.argv[2], process.argv[3]).catch((err: Error) => {
    console.error(`galera-nodes: ${err.message}`);
    process.exit(1);
  });
}
