// A stand-in for systemd's notify socket: a unix datagram listener (python3, since Node cannot
// bind one) that records each sd_notify message the process under test sends, in order.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { waitFor } from './runner';

const LISTENER = `
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps({"listening": True}), flush=True)
while True:
    # recv() without room for ancillary data closes the fd a BARRIER=1 carries: the barrier passes.
    data = s.recv(1 << 16)
    print(json.dumps({"message": data.decode("utf-8", "replace")}), flush=True)
`;

export class NotifyListener {
  /** Every message but BARRIER=1, as sent (newline-separated assignments). */
  readonly messages: string[] = [];
  /** The listener's end, its pipes closed too. */
  private readonly closed: Promise<void>;

  private constructor(
    readonly socketPath: string,
    private readonly child: ChildProcess,
  ) {
    this.closed = new Promise((resolve) => child.once('close', () => resolve()));
  }

  static async start(): Promise<NotifyListener> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cj-notify-'));
    const socketPath = path.join(dir, 'notify.sock');
    const child = spawn('python3', ['-u', '-c', LISTENER, socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
    const listener = new NotifyListener(socketPath, child);
    let listening = false;
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      const parsed = JSON.parse(line) as { listening?: boolean; message?: string };
      if (parsed.listening) listening = true;
      if (parsed.message !== undefined && parsed.message !== 'BARRIER=1') listener.messages.push(parsed.message);
    });
    await waitFor(() => listening || child.exitCode !== null, 10_000);
    if (!listening) throw new Error('the notify listener (python3) did not start');
    return listener;
  }

  /** Indexes of the messages holding this assignment (e.g. "READY=1"). */
  indexesOf(assignment: string): number[] {
    return this.messages.flatMap((m, i) => (m.split('\n').includes(assignment) ? [i] : []));
  }

  /** Every STATUS= text sent so far. */
  statuses(): string[] {
    return this.messages.flatMap((m) =>
      m
        .split('\n')
        .filter((l) => l.startsWith('STATUS='))
        .map((l) => l.slice('STATUS='.length)),
    );
  }

  async waitFor(assignment: string, count = 1, timeoutMs = 30_000): Promise<void> {
    await waitFor(() => this.indexesOf(assignment).length >= count, timeoutMs, 20);
    if (this.indexesOf(assignment).length < count) {
      throw new Error(`no ${count}× ${assignment} within ${timeoutMs} ms; got: ${JSON.stringify(this.messages)}`);
    }
  }

  /** Kills the listener and waits until it is gone: a jest worker does not exit while its child runs. */
  async close(): Promise<void> {
    this.child.kill('SIGKILL');
    await this.closed;
    fs.rmSync(path.dirname(this.socketPath), { recursive: true, force: true });
  }
}
