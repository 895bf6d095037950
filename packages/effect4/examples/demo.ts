/**
 * `npm run demo`: the router on a real replicated PostgreSQL, live.
 *
 * Starts an embedded primary and two streaming replicas, sends a mixed
 * read/write workload through the router's `SqlClient`, takes replica-0 out
 * of rotation by hand, crashes replica-1 so the health probes take it out,
 * brings both back, and prints who served what. Nothing to set up beyond
 * `npm install`; `npm run demo -- --seconds 40` runs longer.
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as Schedule from "effect/Schedule"
import * as SqlClient from "effect/sql/SqlClient"
import { pathToFileURL } from "node:url"
import type { HealthMonitor } from "@effect-sql-router/effect4"
import { SqlRouter } from "@effect-sql-router/effect4"
import { PgCluster } from "@effect-sql-router/effect4/testing"

/** How to run the demo. */
export interface DemoOptions {
  /** Length of the workload; default 20. The fault script scales with it. */
  readonly seconds?: number | undefined
  /** Concurrent workload fibers; default 8. */
  readonly workers?: number | undefined
  /** Where lines go (progress, status in plain mode, the summary); default stdout. */
  readonly output?: ((line: string) => void) | undefined
  /** A terminal to redraw a live table in; without one, one status line per second. */
  readonly terminal?: { readonly write: (chunk: string) => unknown; readonly columns?: number | undefined } | undefined
}

/** What the demo observed; `ok` decides the exit code. */
export interface DemoSummary {
  /** Seconds the workload ran. */
  readonly seconds: number
  /** What the router sent to each node (a `withRead` region or a transaction counts once). */
  readonly nodes: ReadonlyArray<{ readonly id: string; readonly reads: number; readonly writes: number }>
  /** Statements the workload saw succeed and fail. */
  readonly reads: number
  readonly writes: number
  readonly transactions: number
  /** Failed attempts of `withRead` regions (each run again): their replica died under them. */
  readonly regionRetries: number
  readonly readFailures: number
  readonly writeFailures: number
  /** The first few failure messages, for the report. */
  readonly failures: ReadonlyArray<string>
  /** Reads the router sent to replica-0 while it was marked unhealthy (0 expected). */
  readonly readsWhileMarkedDown: number
  /** Inserts the workload saw committed, and how many of them the primary does not have. */
  readonly committedInserts: number
  readonly missingOnPrimary: number
  /** Committed inserts missing on some replica once replication caught up. */
  readonly missingOnReplicas: number
  readonly ok: boolean
}

// ---------------------------------------------------------------------------
// The workload: ~90% reads, ~10% writes, through unchanged effect/sql code.
// ---------------------------------------------------------------------------

const seedOrders = 1_000
const customers = 50

interface Tally {
  reads: number
  writes: number
  transactions: number
  /** Failed attempts of `withRead` regions (each run again): their replica died under them. */
  regionRetries: number
  readFailures: number
  writeFailures: number
  readonly failures: Array<string>
  /** Ids of inserts that committed: the end check looks for each of them. */
  readonly inserted: Array<number>
  maxId: number
}

const makeTally = (): Tally => ({
  reads: 0,
  writes: 0,
  transactions: 0,
  regionRetries: 0,
  readFailures: 0,
  writeFailures: 0,
  failures: [],
  inserted: [],
  maxId: seedOrders
})

const describeFailure = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause) as { message?: unknown; cause?: { message?: unknown } }
  const inner = typeof error?.cause?.message === "string" ? `: ${error.cause.message}` : ""
  return `${typeof error?.message === "string" ? error.message : String(error)}${inner}`
}

/**
 * Counts an operation: its statements when it succeeds, one failure of its
 * kind when it fails. Interruption (the end of the run) is not a failure.
 */
const counted = (tally: Tally, name: string, kind: "read" | "write", done: { reads?: number; writes?: number }) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  effect.pipe(
    Effect.tap(() =>
      Effect.sync(() => {
        tally.reads += done.reads ?? 0
        tally.writes += done.writes ?? 0
      })
    ),
    Effect.tapCause((cause) =>
      Cause.hasInterruptsOnly(cause) ? Effect.void : Effect.sync(() => {
        if (kind === "read") tally.readFailures++
        else tally.writeFailures++
        if (tally.failures.length < 5) tally.failures.push(`${name}: ${describeFailure(cause)}`)
      })
    )
  )

const randomInt = (max: number) => Effect.sync(() => 1 + Math.floor(Math.random() * max))

/** One operation of the mix, picked by weight. */
const makeOperation = (sql: SqlClient.SqlClient, tally: Tally) => {
  const read = (name: string, statements: number) => counted(tally, name, "read", { reads: statements })
  const write = (name: string, statements: number) => counted(tally, name, "write", { writes: statements })
  const inserted = (id: number) =>
    Effect.sync(() => {
      tally.inserted.push(id)
      tally.maxId = Math.max(tally.maxId, id)
    })
  const insertOrder = Effect.flatMap(randomInt(customers), (customer) =>
    sql<{ id: number }>`INSERT INTO orders (customer, amount_cents) VALUES (${customer}, ${customer * 100 + 99}) RETURNING id`)

  // Any order id seen so far; read when the operation runs, not when it is built.
  const someOrder = Effect.suspend(() => randomInt(tally.maxId))

  const orderById = Effect.flatMap(someOrder, (id) =>
    sql`SELECT id, customer, amount_cents, status FROM orders WHERE id = ${id}`).pipe(read("orderById", 1))

  const customerTotals = Effect.flatMap(randomInt(customers), (customer) =>
    sql`SELECT count(*)::int AS orders, sum(amount_cents)::bigint AS cents FROM orders WHERE customer = ${customer}`)
    .pipe(read("customerTotals", 1))

  // Two reads of one page on the same replica. Inside the region the
  // SqlClient comes from the context: the region's replica.
  const dashboard = SqlRouter.withRead(
    Effect.flatMap(SqlClient.SqlClient, (replica) =>
      Effect.all([
        replica`SELECT count(*)::int AS orders FROM orders`,
        replica`SELECT status, count(*)::int AS n FROM orders GROUP BY status`
      ]))
  ).pipe(
    // The router retries a single routed read elsewhere, but a region is
    // pinned to its replica: if that replica dies mid-region, the region
    // fails. It only reads, so run it again, backing off long enough for the
    // health probes to take the dead replica out of rotation.
    Effect.tapError(() => Effect.sync(() => tally.regionRetries++)),
    Effect.retry({ schedule: Schedule.exponential("100 millis"), times: 3 }),
    read("dashboard (withRead)", 2)
  )

  const placeOrder = insertOrder.pipe(Effect.flatMap(([row]) => inserted(Number(row!.id))), write("placeOrder", 1))

  const markPaid = Effect.flatMap(someOrder, (id) =>
    sql`UPDATE orders SET status = 'paid' WHERE id = ${id}`).pipe(write("markPaid", 1))

  // Read-your-writes: a replica may not have replayed the INSERT yet.
  const placeAndShow = insertOrder.pipe(
    Effect.flatMap(([row]) => inserted(Number(row!.id)).pipe(Effect.as(Number(row!.id)))),
    write("placeAndShow", 1),
    Effect.flatMap((id) =>
      SqlRouter.primary(sql`SELECT id, status FROM orders WHERE id = ${id}`).pipe(
        Effect.filterOrFail((rows) => rows.length === 1, () => new Error(`order ${id} not visible on the primary`)),
        read("placeAndShow (SqlRouter.primary)", 1)
      )
    )
  )

  // One primary connection: the SELECT sees the INSERT before COMMIT, which
  // no replica could.
  const checkout = sql.withTransaction(Effect.gen(function*() {
    const [row] = yield* insertOrder
    const id = Number(row!.id)
    const seen = yield* sql`SELECT id FROM orders WHERE id = ${id}`
    if (seen.length !== 1) return yield* Effect.fail(new Error(`order ${id} not visible inside its transaction`))
    return id
  })).pipe(
    Effect.tap(() => Effect.sync(() => tally.transactions++)),
    Effect.flatMap(inserted),
    counted(tally, "checkout (withTransaction)", "write", { reads: 1, writes: 1 })
  )

  const mix: ReadonlyArray<readonly [weight: number, operation: Effect.Effect<unknown, unknown, SqlRouter.SqlRouter>]> = [
    [58, orderById],
    [20, customerTotals],
    [8, dashboard],
    [4, placeAndShow],
    [4, placeOrder],
    [3, markPaid],
    [3, checkout]
  ]
  const total = mix.reduce((n, [weight]) => n + weight, 0)
  return Effect.suspend(() => {
    let r = Math.random() * total
    for (const [weight, operation] of mix) {
      if ((r -= weight) < 0) return operation
    }
    return orderById
  })
}

// ---------------------------------------------------------------------------
// The display: a table redrawn in place on a terminal, plain lines otherwise.
// ---------------------------------------------------------------------------

interface Event {
  readonly at: number
  readonly text: string
}

interface Frame {
  readonly elapsed: number
  readonly seconds: number
  readonly workers: number
  readonly stats: SqlRouter.Stats
  readonly status: ReadonlyArray<HealthMonitor.NodeStatus>
  readonly rates: ReadonlyMap<string, number>
  readonly tally: Tally
  readonly events: ReadonlyArray<Event>
  /** How each role's sessions are used, from the router's configuration. */
  readonly sessions: (role: SqlRouter.NodeStats["role"]) => string
}

const ansi = {
  green: (s: string) => `\x1b[32m${s}\x1b[0m`,
  red: (s: string) => `\x1b[31m${s}\x1b[0m`,
  bold: (s: string) => `\x1b[1m${s}\x1b[0m`,
  dim: (s: string) => `\x1b[2m${s}\x1b[0m`
}
const plainStyle: typeof ansi = { green: (s) => s, red: (s) => s, bold: (s) => s, dim: (s) => s }

const pad = (value: string | number, width: number) => String(value).padEnd(width)
const padLeft = (value: string | number, width: number) => String(value).padStart(width)

const formatBytes = (bytes: number) =>
  bytes < 1024 ? `${bytes} B` : bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} kB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`

const lagOf = (status: HealthMonitor.NodeStatus | undefined) =>
  status === undefined || status.role === "primary"
    ? "-"
    : status.lastError !== undefined
    ? `probe failed: ${status.lastError.slice(0, 32)}…`
    : status.lagBytes === undefined
    ? "?"
    : `${formatBytes(status.lagBytes)} / ${Math.round(status.lagMillis ?? 0)} ms`

const stateOf = (status: HealthMonitor.NodeStatus | undefined, style: typeof ansi) =>
  status === undefined || status.role === "primary"
    ? style.green(pad("✓ primary", 14))
    : status.markedDown
    ? style.red(pad("✗ marked down", 14))
    : status.healthy
    ? style.green(pad("✓ in rotation", 14))
    : style.red(pad("✗ unhealthy", 14))

const formatEvent = (event: Event, style: typeof ansi) =>
  `t=${padLeft(event.at.toFixed(1), 5)}s  ${event.text.startsWith("▶") ? style.bold(event.text) : event.text}`

/**
 * How a role's sessions are used: `multiplex` pipelines the statements of
 * many fibers on one session (at most `multiplexConcurrency` at a time),
 * otherwise a statement has a session to itself.
 */
const sessionUse = (config: SqlRouter.SqlRouter["config"]) => (role: SqlRouter.NodeStats["role"]): string => {
  const pool = role === "primary" ? config.primaryPool : config.replicaPool
  return pool.multiplex ? `multiplex ≤${pool.multiplexConcurrency}` : "one at a time"
}

const nodesOf = (stats: SqlRouter.Stats): ReadonlyArray<SqlRouter.NodeStats> => [stats.primary, ...stats.replicas]

const renderTable = (frame: Frame, style: typeof ansi): Array<string> => {
  const { stats, status, tally } = frame
  const header = `${pad("node", 10)} ${pad("role", 8)} ${pad("address", 16)} ${pad("state", 14)} ${padLeft("reads", 7)} ${
    padLeft("writes", 7)
  } ${padLeft("q/s", 6)}  ${pad("pool use/max wait", 17)}  ${pad("sessions", 13)}  lag (bytes / time)`
  const rows = nodesOf(stats).map((node) => {
    const s = status.find((x) => x.id === node.id)
    const pool = `${padLeft(`${node.pool.inUse}/${node.pool.max}`, 8)} ${padLeft(node.pool.waiting, 4)}`
    return `${pad(node.id, 10)} ${pad(node.role, 8)} ${pad(node.address, 16)} ${stateOf(s, style)} ${
      padLeft(node.served.reads, 7)
    } ${padLeft(node.served.writes, 7)} ${padLeft(Math.round(frame.rates.get(node.id) ?? 0), 6)}  ${pad(pool, 17)}  ${
      pad(frame.sessions(node.role), 13)
    }  ${lagOf(s)}`
  })
  const failures = tally.readFailures + tally.writeFailures
  return [
    style.bold(
      `effect-sql-router demo (Effect 4) · primary + ${stats.replicas.length} replicas (${
        frame.sessions("replica")
      }) · ${frame.workers} workers · t=${
        frame.elapsed.toFixed(1)
      }s of ${frame.seconds}s`
    ),
    "",
    style.dim(header),
    ...rows,
    "",
    `workload: ${tally.reads} reads, ${tally.writes} writes, ${tally.transactions} transactions · failed: ${
      (failures === 0 ? style.green : style.red)(`${tally.readFailures} reads, ${tally.writeFailures} writes`)
    }`,
    "",
    "events:",
    ...frame.events.slice(-10).map((event) => `  ${formatEvent(event, style)}`)
  ]
}

const renderLine = (frame: Frame): string =>
  `t=${padLeft(frame.elapsed.toFixed(0), 3)}s  ${
    nodesOf(frame.stats).map((node) => {
      const s = frame.status.find((x) => x.id === node.id)
      const mark = s === undefined || s.healthy ? "✓" : s.markedDown ? "✗ (marked)" : "✗"
      return `${node.id} ${mark} ${Math.round(frame.rates.get(node.id) ?? 0)} q/s`
    }).join(" | ")
  } | failed ${frame.tally.readFailures} reads, ${frame.tally.writeFailures} writes`

/** Visible width, ignoring colour codes: a line wider than the terminal would wrap and break the redraw. */
const fit = (line: string, width: number | undefined) => {
  // A pseudo-terminal without a size reports 0 columns.
  if (width === undefined || width < 20) return line
  let visible = 0
  let out = ""
  for (let i = 0; i < line.length; i++) {
    if (line[i] === "\x1b") {
      const end = line.indexOf("m", i)
      out += line.slice(i, end + 1)
      i = end
      continue
    }
    if (visible >= width - 1) continue
    out += line[i]
    visible++
  }
  return out
}

/** Queries per second per node over the last second, from the router's `served` counters. */
const makeRates = () => {
  const samples: Array<{ readonly at: number; readonly served: ReadonlyMap<string, number> }> = []
  return (stats: SqlRouter.Stats, at: number): ReadonlyMap<string, number> => {
    const served = new Map(nodesOf(stats).map((n) => [n.id, n.served.reads + n.served.writes]))
    samples.push({ at, served })
    while (samples.length > 2 && at - samples[1]!.at >= 1000) samples.shift()
    const base = samples[0]!
    const span = (at - base.at) / 1000
    // Too short a span gives noise, not a rate.
    return new Map([...served].map(([id, n]) => [id, span >= 0.5 ? (n - (base.served.get(id) ?? 0)) / span : 0]))
  }
}

// ---------------------------------------------------------------------------
// The run.
// ---------------------------------------------------------------------------

const wait = (until: number) => Effect.suspend(() => Effect.sleep(Math.max(0, until - Date.now())))

/**
 * The fault script, at fractions of the run: replica-0 out and back by hand,
 * then replica-1 crashed and restarted for the health monitor to handle.
 * Returns the reads replica-0 got while it was marked down.
 */
const faultScript = (
  cluster: PgCluster.PgCluster,
  router: SqlRouter.SqlRouter,
  at: (fraction: number) => Effect.Effect<void>,
  note: (text: string) => void
) =>
  Effect.gen(function*() {
    const replica0Reads = Effect.map(router.stats, (s) => s.replicas[0]!.served.reads)
    const victim = cluster.replicas[1]!
    yield* at(0.30)
    note("▶ router.markReplicaUnhealthy(\"replica-0\"): its reads move to replica-1")
    yield* router.markReplicaUnhealthy("replica-0")
    const before = yield* replica0Reads
    yield* at(0.55)
    const markedDownReads = (yield* replica0Reads) - before
    note(`▶ router.markReplicaHealthy("replica-0"): back in rotation (${markedDownReads} reads while marked down)`)
    yield* router.markReplicaHealthy("replica-0")
    yield* at(0.65)
    note("▶ cluster.kill(replica-1): SIGKILL, a crash; failed reads retry elsewhere, probes take it out")
    yield* cluster.kill(victim)
    yield* at(0.80)
    note("▶ cluster.start(replica-1): restarting; two good probes bring it back")
    yield* cluster.start(victim)
    note("  replica-1 accepts connections again")
    return markedDownReads
  })

/** Redraws the table on a terminal every 250 ms, or prints a status line every second. */
const makeDisplay = (options: {
  readonly router: SqlRouter.SqlRouter
  readonly terminal: DemoOptions["terminal"]
  readonly output: (line: string) => void
  readonly view: (stats: SqlRouter.Stats, status: ReadonlyArray<HealthMonitor.NodeStatus>) => Frame
}) => {
  const { output, router, terminal } = options
  let drawn = 0
  const draw = Effect.map(Effect.zip(router.stats, router.replicaStatus), ([stats, status]) => {
    const frame = options.view(stats, status)
    if (!terminal) return output(renderLine(frame))
    const lines = renderTable(frame, ansi).map((line) => `\x1b[2K${fit(line, terminal.columns)}\n`)
    // Back to the top of the previous frame, overwrite it, clear what is left.
    terminal.write(`${drawn > 0 ? `\x1b[${drawn}F` : "\x1b[?25l"}${lines.join("")}\x1b[J`)
    drawn = lines.length
  })
  const loop = Effect.repeat(draw, Schedule.spaced(terminal ? "250 millis" : "1 second")).pipe(
    Effect.delay(terminal ? "0 millis" : "1 second"),
    Effect.ensuring(Effect.sync(() => terminal?.write("\x1b[?25h")))
  )
  return { draw, loop }
}

/** How many of `ids` (rows the workload saw committed) the node does not have. */
const missingOn = (cluster: PgCluster.PgCluster, ids: ReadonlyArray<number>) => (node: PgCluster.ClusterNode) =>
  Effect.map(
    cluster.query<{ n: number }>(node, "SELECT count(*)::int AS n FROM orders WHERE id = ANY($1::bigint[])", [ids]),
    (rows) => ids.length - rows[0]!.n
  )

/**
 * Runs the demo: cluster, router, workload, fault script, summary. Everything
 * lives in one scope, so an interruption (Ctrl-C) stops every server too.
 */
export const runDemo = (options: DemoOptions = {}) => {
  const seconds = options.seconds ?? 20
  const workers = options.workers ?? 8
  const output = options.output ?? ((line: string) => void process.stdout.write(`${line}\n`))
  const terminal = options.terminal
  const style = terminal ? ansi : plainStyle
  const events: Array<Event> = []
  let startedAt = Date.now()
  const note = (text: string) => {
    const event = { at: (Date.now() - startedAt) / 1000, text }
    events.push(event)
    // On a terminal the table shows the events; in plain mode they are lines.
    if (!terminal) output(formatEvent(event, style))
  }
  // The router reports health transitions through Effect's logger: into the timeline.
  const timelineLogger = Logger.make(({ logLevel, message }) =>
    note(`  ${logLevel.toLowerCase()}: ${Array.isArray(message) ? message.join(" ") : String(message)}`)
  )

  const session = (cluster: PgCluster.PgCluster) =>
    Effect.gen(function*() {
      const router = yield* SqlRouter.SqlRouter
      const sql = yield* SqlClient.SqlClient
      // DDL is a write: the routed client sends it to the primary.
      yield* sql`CREATE TABLE orders (
        id bigserial PRIMARY KEY,
        customer int NOT NULL,
        amount_cents int NOT NULL,
        status text NOT NULL DEFAULT 'new',
        created_at timestamptz NOT NULL DEFAULT now()
      )`
      yield* sql`INSERT INTO orders (customer, amount_cents)
        SELECT 1 + i % ${customers}, 100 + i FROM generate_series(1, ${seedOrders}) AS i`
      yield* cluster.awaitReplication()
      output(`orders: ${seedOrders} rows on the primary, replayed by every replica`)
      output(
        `router: ${router.config.selection} over ${router.config.replicas.length} replicas (${
          yield* router.countHealthyReplicas
        } healthy), probes every ${Duration.format(router.config.health.interval)}`
      )
      const sessions = sessionUse(router.config)
      output(
        `sessions (statements per server session): replicas ${sessions("replica")}, primary ${sessions("primary")}`
      )
      output(`running ${workers} workload fibers for ${seconds} s (Ctrl-C stops and cleans up)`)
      output("")

      const tally = makeTally()
      const operation = makeOperation(sql, tally)
      let running = true
      const worker = Effect.whileLoop({
        while: () => running,
        // The pause leaves CPU to three servers on a small machine.
        body: () => operation.pipe(Effect.ignore, Effect.andThen(Effect.sleep("5 millis"))),
        step: () => {}
      })
      startedAt = Date.now()
      const rates = makeRates()
      rates(yield* router.stats, startedAt)
      const display = makeDisplay({
        router,
        terminal,
        output,
        view: (stats, status) => {
          const now = Date.now()
          const elapsed = Math.min(seconds, (now - startedAt) / 1000)
          return { elapsed, seconds, workers, stats, status, rates: rates(stats, now), tally, events, sessions }
        }
      })

      const fibers = yield* Effect.all(Array.from({ length: workers }, () => Effect.forkChild(worker)))
      const displayFiber = yield* Effect.forkChild(display.loop)
      const at = (fraction: number) => wait(startedAt + seconds * 1000 * fraction)
      // The run lasts `seconds`, or until the script is done (a restart may take a while).
      const [markedDownReads] = yield* Effect.all([faultScript(cluster, router, at, note), at(1)], { concurrency: 2 })
      running = false
      yield* Fiber.joinAll(fibers)
      const elapsed = (Date.now() - startedAt) / 1000
      yield* Fiber.interrupt(displayFiber)
      if (terminal) yield* display.draw

      // Every insert the workload saw committed must be on the primary, and,
      // once replication has caught up, on every replica.
      const stats = yield* router.stats
      const missing = missingOn(cluster, tally.inserted)
      const missingOnPrimary = yield* missing(cluster.primary)
      yield* cluster.awaitReplication({ timeout: "20 seconds" })
      const missingOnReplicas = Math.max(...(yield* Effect.forEach(cluster.replicas, missing)))

      const summary: DemoSummary = {
        seconds: elapsed,
        nodes: nodesOf(stats).map((n) => ({ id: n.id, reads: n.served.reads, writes: n.served.writes })),
        reads: tally.reads,
        writes: tally.writes,
        transactions: tally.transactions,
        regionRetries: tally.regionRetries,
        readFailures: tally.readFailures,
        writeFailures: tally.writeFailures,
        failures: tally.failures,
        readsWhileMarkedDown: markedDownReads,
        committedInserts: tally.inserted.length,
        missingOnPrimary,
        missingOnReplicas,
        ok: tally.readFailures === 0 && tally.writeFailures === 0 && missingOnPrimary === 0 && missingOnReplicas === 0
      }
      printSummary(summary, style, output)
      output("stopping the servers…")
      return summary
    })

  return Effect.gen(function*() {
    const began = Date.now()
    output(style.bold("effect-sql-router demo, Effect 4 line (replicas pipelined: multiplex)"))
    output("starting a PostgreSQL primary + 2 streaming replicas…")
    const cluster = yield* PgCluster.make({ replicas: 2 })
    for (const node of cluster.nodes) output(`  ${pad(node.name, 10)} ${node.host}:${node.port}`)
    output(`  ${cluster.backend} cluster up in ${((Date.now() - began) / 1000).toFixed(1)} s`)
    const router = SqlRouter.layerClient({
      primary: cluster.primary.url,
      replicas: cluster.replicas.map((node) => node.url),
      readTimeout: "2 seconds",
      health: { interval: "500 millis", timeout: "500 millis" },
      // The native driver pipelines the replicas' reads: statements of many
      // fibers share a session.
      replicaPool: { multiplex: true }
    })
    return yield* Effect.provide(session(cluster), router)
  }).pipe(
    Effect.scoped,
    Effect.tap(() => Effect.sync(() => output("cluster stopped and its files removed"))),
    Effect.provide(Logger.layer([timelineLogger]))
  )
}

const printSummary = (summary: DemoSummary, style: typeof ansi, output: (line: string) => void) => {
  output("")
  output(style.bold(`summary: ${summary.seconds.toFixed(1)} s of workload`))
  output(style.dim(`  ${pad("node", 10)} ${padLeft("reads", 8)} ${padLeft("writes", 8)}   (as the router counts: a region counts once)`))
  for (const node of summary.nodes) output(`  ${pad(node.id, 10)} ${padLeft(node.reads, 8)} ${padLeft(node.writes, 8)}`)
  output(
    `  workload: ${summary.reads} reads (${summary.readFailures} failed), ${summary.writes} writes (${summary.writeFailures} failed), ${summary.transactions} transactions`
  )
  output(`  withRead region attempts retried after their replica died: ${summary.regionRetries}`)
  for (const failure of summary.failures) output(style.red(`    ${failure}`))
  output(`  replica-0 while marked unhealthy: ${summary.readsWhileMarkedDown} reads`)
  output(
    `  committed inserts: ${summary.committedInserts}; missing on the primary: ${summary.missingOnPrimary}; missing on a replica after catch-up: ${summary.missingOnReplicas}`
  )
  output(
    summary.ok
      ? style.green("  ✓ no read or write failed, and every committed write is on the primary and the replicas")
      : style.red("  ✗ something failed: see above")
  )
  output("")
}

// ---------------------------------------------------------------------------
// The command line.
// ---------------------------------------------------------------------------

const parseSeconds = (argv: ReadonlyArray<string>): number | string => {
  const index = argv.findIndex((arg) => arg === "--seconds" || arg.startsWith("--seconds="))
  if (index < 0) return 20
  const arg = argv[index]!
  const text = arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : argv[index + 1]
  const seconds = Number(text)
  return Number.isFinite(seconds) && seconds >= 2 ? seconds : `--seconds wants a number of seconds (at least 2), got ${text}`
}

const main = () => {
  const seconds = parseSeconds(process.argv.slice(2))
  if (typeof seconds === "string") {
    process.stderr.write(`${seconds}\nusage: npm run demo [-- --seconds N]\n`)
    process.exitCode = 2
    return
  }
  const fiber = Effect.runFork(runDemo({ seconds, terminal: process.stdout.isTTY ? process.stdout : undefined }))
  let interrupts = 0
  const onSigint = () => {
    if (++interrupts === 1) {
      process.stdout.write(`${process.stdout.isTTY ? "\x1b[?25h" : ""}\ninterrupted: stopping the servers… (Ctrl-C again to force)\n`)
      Effect.runFork(Fiber.interrupt(fiber))
    } else {
      // The cluster's exit hook still kills the servers and removes their files.
      process.exit(130)
    }
  }
  process.on("SIGINT", onSigint)
  fiber.addObserver((exit) => {
    process.off("SIGINT", onSigint)
    if (Exit.isSuccess(exit)) {
      process.exitCode = exit.value.ok ? 0 : 1
    } else if (Cause.hasInterruptsOnly(exit.cause)) {
      process.stdout.write("servers stopped and their files removed\n")
      process.exitCode = 130
    } else {
      const failure = Cause.findErrorOption(exit.cause)
      process.stderr.write(
        `\ndemo failed: ${
          failure._tag === "Some" && failure.value instanceof Error ? failure.value.message : Cause.pretty(exit.cause)
        }\n`
      )
      process.exitCode = 1
    }
  })
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main()
