// LISTEN/NOTIFY (PostgreSQL): an idle runner hears of a job due now the moment its enqueue commits.
// The listener has a connection of its own, outside the pool (a LISTEN lives as long as its session),
// and opens a new one after an outage; whatever was enqueued meanwhile is found by the wake-up that
// follows each (re)connect, and by polling, which stays the fallback.
import pg from 'pg';
import type { Database } from './database';

/** After a lost connection, the next attempt waits this long, doubling up to the last. */
const RETRY_MS = [250, 500, 1000, 2000, 5000, 10000];

export class DueListener {
  /** Written by connect() and close(); the live connection, if any. */
  private client: pg.Client | null = null;
  /** Set by close(): no reconnect after it. */
  private closed = false;
  private failures = 0;
  private timer: NodeJS.Timeout | null = null;

  private constructor(
    private readonly options: pg.ClientConfig,
    private readonly channel: string,
    private readonly onDue: () => void,
    private readonly onError: (message: string) => void,
  ) {}

  /**
   * Listens on the database's due channel, with the handle's connection settings; null where the
   * database has none (the runner hears nudges instead). Resolves once the first attempt has ended.
   */
  static async open(db: Database, onDue: () => void, onError: (message: string) => void): Promise<DueListener | null> {
    const notice = db.driver.dueNotice;
    if (!notice) return null;
    const { host, port, username, password, database } = db.sequelize.config;
    const options: pg.ClientConfig = {
      host,
      port: Number(port),
      user: username,
      password: password ?? undefined,
      database,
      application_name: 'container-jobs listener',
      connectionTimeoutMillis: 10000,
      keepAlive: true,
    };
    const listener = new DueListener(options, notice.channel, onDue, onError);
    await listener.connect();
    return listener;
  }

  private async connect(): Promise<void> {
    this.timer = null;
    if (this.closed) return;
    const client = new pg.Client(this.options);
    client.on('notification', (message) => {
      if (message.channel === this.channel) this.onDue();
    });
    // An error or end of this connection (the server restarted, the network went): connect again.
    const lost = (err?: Error) => {
      if (this.client !== client) return;
      this.client = null;
      client.removeAllListeners('end');
      client.on('error', () => {});
      void client.end().catch(() => {});
      if (err) this.onError(`LISTEN ${this.channel} lost (${err.message}): polling until it is back`);
      this.retryLater();
    };
    client.on('error', lost);
    client.on('end', () => lost());
    this.client = client;
    try {
      await client.connect();
      await client.query(`LISTEN ${this.channel}`);
      if (this.failures > 0) this.onError(`LISTEN ${this.channel} is back`);
      this.failures = 0;
      if (this.closed) await this.close();
      // Jobs enqueued while nobody listened: claim now rather than at the next poll.
      else this.onDue();
    } catch (err) {
      lost(err as Error);
    }
  }

  private retryLater(): void {
    if (this.closed || this.timer) return;
    const wait = RETRY_MS[Math.min(this.failures++, RETRY_MS.length - 1)];
    this.timer = setTimeout(() => void this.connect(), wait);
    this.timer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const client = this.client;
    this.client = null;
    if (client) {
      client.removeAllListeners('end');
      client.on('error', () => {});
      await client.end().catch(() => {});
    }
  }
}
