/**
 * A small Prometheus text-format registry (exposition format 0.0.4). alarmd needs counters,
 * gauges and fixed-bucket histograms, nothing more, so this avoids a client library that
 * assumes Node's process APIs.
 */

type Labels = Record<string, string>;

interface Metric {
  readonly name: string;
  render(): string;
}

const escapeLabel = (v: string) =>
  v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');

function labelText(labels: Labels): string {
  const keys = Object.keys(labels);
  if (keys.length === 0) return "";
  return `{${keys.map((k) => `${k}="${escapeLabel(labels[k])}"`).join(",")}}`;
}

function header(name: string, help: string, type: string) {
  return `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`;
}

export class Counter implements Metric {
  #values = new Map<string, { labels: Labels; value: number }>();
  constructor(readonly name: string, readonly help: string) {}
  inc(labels: Labels = {}, by = 1): void {
    const key = labelText(labels);
    const entry = this.#values.get(key);
    if (entry) entry.value += by;
    else this.#values.set(key, { labels, value: by });
  }
  value(labels: Labels = {}): number {
    return this.#values.get(labelText(labels))?.value ?? 0;
  }
  render(): string {
    let out = header(this.name, this.help, "counter");
    if (this.#values.size === 0) out += `${this.name} 0\n`;
    for (const [key, { value }] of this.#values) out += `${this.name}${key} ${value}\n`;
    return out;
  }
}

export class Gauge implements Metric {
  constructor(
    readonly name: string,
    readonly help: string,
    readonly read: () => number,
  ) {}
  render(): string {
    return header(this.name, this.help, "gauge") + `${this.name} ${this.read()}\n`;
  }
}

export class Histogram implements Metric {
  #counts: number[];
  #sum = 0;
  #count = 0;
  constructor(readonly name: string, readonly help: string, readonly buckets: readonly number[]) {
    this.#counts = new Array(buckets.length).fill(0);
  }
  observe(value: number): void {
    this.#sum += value;
    this.#count++;
    for (let i = 0; i < this.buckets.length; i++) {
      if (value <= this.buckets[i]) {
        this.#counts[i]++;
        return;
      }
    }
  }
  get count(): number {
    return this.#count;
  }
  render(): string {
    let out = header(this.name, this.help, "histogram");
    let cumulative = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      cumulative += this.#counts[i];
      out += `${this.name}_bucket{le="${this.buckets[i]}"} ${cumulative}\n`;
    }
    out += `${this.name}_bucket{le="+Inf"} ${this.#count}\n`;
    out += `${this.name}_sum ${this.#sum}\n${this.name}_count ${this.#count}\n`;
    return out;
  }
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** Every metric alarmd exports. */
export function createMetrics(sources: {
  connections: () => number;
  memory: () => { rss: number; heapUsed: number };
  queuedBytes: () => number;
}) {
  const metrics = {
    connectionsOpened: new Counter("alarmd_connections_opened_total", "Streams opened."),
    connectionsClosed: new Counter(
      "alarmd_connections_closed_total",
      "Streams closed, by reason (client_closed, timeout, token_expired, slow_client, " +
        "write_timeout, storage_unavailable, shutdown).",
    ),
    connectionsRefused: new Counter(
      "alarmd_connections_refused_total",
      "Streams refused by a cap, by scope (user, server, memory).",
    ),
    slowClientsDropped: new Counter(
      "alarmd_slow_clients_dropped_total",
      "Streams dropped because the client stopped reading (queue over the cap or a stuck write).",
    ),
    alarmsCreated: new Counter("alarmd_alarms_created_total", "Alarms stored."),
    alarmsDelivered: new Counter(
      "alarmd_alarms_delivered_total",
      "Alarm events written to streams while live.",
    ),
    alarmsReplayed: new Counter(
      "alarmd_alarms_replayed_total",
      "Alarm events written to streams by a Last-Event-ID replay.",
    ),
    deliveryLatency: new Histogram(
      "alarmd_delivery_latency_seconds",
      "From an alarm's creation to its event being queued on a live stream.",
      LATENCY_BUCKETS,
    ),
    kvCommitLatency: new Histogram(
      "alarmd_kv_commit_seconds",
      "Duration of one Deno KV atomic commit (a group of changes).",
      LATENCY_BUCKETS,
    ),
    kvCommitSize: new Histogram(
      "alarmd_kv_commit_changes",
      "Changes (creates, reads, deletes) per Deno KV atomic commit.",
      [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
    ),
    kvErrors: new Counter("alarmd_kv_errors_total", "Deno KV operations that failed."),
    pushes: new Counter(
      "alarmd_pushes_total",
      "Web Push messages and due pushes, by result (sent, gone, retried, rejected, expired, " +
        "skipped, dropped).",
    ),
  };
  /** Set by the push sender on the instance holding the lease; 0 elsewhere. */
  const outbox = { pending: 0, oldestDueAt: null as number | null };
  const gauges = [
    new Gauge("alarmd_connections", "Open streams.", sources.connections),
    new Gauge(
      "alarmd_stream_queued_bytes",
      "Bytes waiting in stream queues: memory held for clients that read slower than it comes.",
      sources.queuedBytes,
    ),
    new Gauge(
      "alarmd_process_resident_memory_bytes",
      "Resident memory of the process.",
      () => sources.memory().rss,
    ),
    new Gauge(
      "alarmd_process_heap_used_bytes",
      "V8 heap in use.",
      () => sources.memory().heapUsed,
    ),
    new Gauge(
      "alarmd_push_outbox_pending",
      "Pushes waiting in the outbox (reported by the instance that sends).",
      () => outbox.pending,
    ),
    new Gauge(
      "alarmd_push_outbox_oldest_due_seconds",
      "Age of the oldest due push in the outbox; 0 when none is due.",
      () => outbox.oldestDueAt === null ? 0 : Math.max(0, (Date.now() - outbox.oldestDueAt) / 1000),
    ),
  ];
  const all: Metric[] = [...gauges, ...Object.values(metrics)];
  return {
    ...metrics,
    outbox,
    /** The exposition text for GET /metrics. */
    render: () => all.map((m) => m.render()).join(""),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
