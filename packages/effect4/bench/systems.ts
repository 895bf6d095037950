/**
 * One adapter per system under test (issue 22). Each opens its pools once (P
 * connections per server) and exposes the statements of the workloads as
 * plain `() => Promise` calls. Effect systems build their layer once in a
 * `ManagedRuntime` and resolve their service before the load starts, so a
 * call costs only the statement path plus one `runPromise`; they also expose
 * the statements as effects, for the long-lived fibers harness.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import * as SqlClient from "effect/sql/SqlClient"
import Pg from "pg"
import type * as RouterConfig from "#lib/RouterConfig.js"
import type * as SqlRouter from "#lib/SqlRouter.js"
import { mixStep, statements } from "../../core/bench/workload.js"
import type { BenchCluster } from "./cluster.js"

// ---------------------------------------------------------------------------
// Workloads

export type WorkloadKey =
  | "select1-c1"
  | "select1-c8"
  | "select1-c32"
  | "select1-c128"
  | "mix-c32"
  | "select1-c32-fibers"
  | "mix-c32-fibers"

export interface Workload {
  readonly key: WorkloadKey
  readonly title: string
  readonly concurrency: number
  readonly operation: (instance: Instance) => () => Promise<unknown>
  /**
   * Long-lived fibers in one runtime instead of one `runPromise` per query;
   * only systems with `effects` run it, and "× raw pg" compares with raw pg
   * on `against` (raw pg has no fibers).
   */
  readonly fibers?: {
    readonly operation: (effects: Effects) => () => Effect.Effect<unknown, unknown>
    readonly against: WorkloadKey
  } | undefined
}

/** 90 % `SELECT v … WHERE k = $1`, 10 % `UPDATE … SET v = v + 1 WHERE k = $1`, k uniform in 1..keys (`mixStep`). */
const mix = (instance: Instance) => () => {
  const { k, write } = mixStep()
  return write ? instance.write(k) : instance.read(k)
}

const mixEffect = (effects: Effects) => () => {
  const { k, write } = mixStep()
  return write ? effects.write(k) : effects.read(k)
}

export const workloads: ReadonlyArray<Workload> = [
  { key: "select1-c1", title: "`SELECT 1`, concurrency 1", concurrency: 1, operation: (i) => i.select1 },
  { key: "select1-c8", title: "`SELECT 1`, concurrency 8", concurrency: 8, operation: (i) => i.select1 },
  { key: "select1-c32", title: "`SELECT 1`, concurrency 32", concurrency: 32, operation: (i) => i.select1 },
  { key: "select1-c128", title: "`SELECT 1`, concurrency 128", concurrency: 128, operation: (i) => i.select1 },
  { key: "mix-c32", title: "90/10 read/write mix on `bench_kv`, concurrency 32", concurrency: 32, operation: mix },
  {
    key: "select1-c32-fibers",
    title: "`SELECT 1`, 32 long-lived fibers in one runtime (× raw pg against raw pg at c=32)",
    concurrency: 32,
    operation: (i) => i.select1,
    fibers: { operation: (e) => e.select1, against: "select1-c32" }
  },
  {
    key: "mix-c32-fibers",
    title: "90/10 mix, 32 long-lived fibers in one runtime (× raw pg against raw pg's mix at c=32)",
    concurrency: 32,
    operation: mix,
    fibers: { operation: mixEffect, against: "mix-c32" }
  }
]

/** Whether `system` runs `workload` with this instance. */
export const runs = (system: System, instance: Instance, workload: Workload): boolean =>
  (system.workloads === undefined || system.workloads.includes(workload.key)) &&
  (workload.fibers === undefined || instance.effects !== undefined)

// ---------------------------------------------------------------------------
// Systems

/** An Effect system's statements as effects, and how to run them: for the fibers harness. */
export interface Effects {
  readonly runPromise: (effect: Effect.Effect<void>) => Promise<void>
  readonly select1: () => Effect.Effect<unknown, unknown>
  readonly read: (k: number) => Effect.Effect<unknown, unknown>
  readonly write: (k: number) => Effect.Effect<unknown, unknown>
}

export interface Instance {
  /** Present for Effect systems: the fibers-in-one-runtime harness style. */
  readonly effects?: Effects | undefined
  readonly select1: () => Promise<unknown>
  readonly read: (k: number) => Promise<unknown>
  readonly write: (k: number) => Promise<unknown>
  readonly close: () => Promise<void>
  /** Facts worth a line in the report after the run (e.g. where reads went). */
  readonly summary?: (() => Promise<string | undefined>) | undefined
}

export interface SetupContext {
  readonly bench: BenchCluster
}

export type Setup =
  | { readonly _tag: "Ready"; readonly instance: Instance }
  | { readonly _tag: "Skipped"; readonly reason: string }

export interface System {
  /** Used by `--only`. */
  readonly key: string
  readonly name: string
  /** Where reads and writes go, for the report. */
  readonly routing: string
  /** Workloads it runs; all when absent. */
  readonly workloads?: ReadonlyArray<WorkloadKey> | undefined
  /** Server connections that can serve a read at once, for pool size P. */
  readonly readConnections: (poolSize: number) => number
  readonly setup: (context: SetupContext) => Promise<Setup>
}

const ready = (instance: Instance): Setup => ({ _tag: "Ready", instance })

const rawPg: System = {
  key: "pg",
  readConnections: (p) => p,
  name: "raw pg (primary)",
  routing: "everything to the primary; `pg.Pool` max P",
  setup: async ({ bench }) => {
    const pool = new Pg.Pool({
      connectionString: Redacted.value(bench.primary.url),
      max: bench.poolSize,
      idleTimeoutMillis: 0,
      application_name: "bench-pg"
    })
    pool.on("error", () => {})
    return ready({
      select1: () => pool.query(statements.select1),
      read: (k) => pool.query(statements.read, [k]),
      write: (k) => pool.query(statements.write, [k]),
      close: () => pool.end()
    })
  }
}

/** The statements through an `effect/sql` client, built afresh per call as application code does. */
const statementsOf = (sql: SqlClient.SqlClient) => ({
  select1: () => sql`SELECT 1`,
  read: (k: number) => sql`SELECT v FROM bench_kv WHERE k = ${k}`,
  write: (k: number) => sql`UPDATE bench_kv SET v = v + 1 WHERE k = ${k}`
})

/** An Effect system: the layer is built once; each call is one `runPromise` of a fresh statement. */
const effectSystem = async <R, E>(
  layer: Layer.Layer<R | SqlClient.SqlClient, E>,
  summary?: (runtime: ManagedRuntime.ManagedRuntime<R | SqlClient.SqlClient, E>) => Promise<string | undefined>
): Promise<Setup> => {
  const runtime = ManagedRuntime.make(layer)
  try {
    const s = statementsOf(await runtime.runPromise(Effect.service(SqlClient.SqlClient)))
    return ready({
      effects: { runPromise: (effect) => runtime.runPromise(effect), ...s },
      select1: () => runtime.runPromise(s.select1()),
      read: (k) => runtime.runPromise(s.read(k)),
      write: (k) => runtime.runPromise(s.write(k)),
      close: () => runtime.dispose(),
      ...(summary ? { summary: () => summary(runtime) } : {})
    })
  } catch (error) {
    await runtime.dispose()
    throw error
  }
}

/** `@effect/sql-pg` 4's own client on the primary, maxConnections P. */
const pgClientOn = (bench: BenchCluster, multiplex: boolean) =>
  effectSystem(PgClient.layer({
    url: bench.primary.url,
    maxConnections: bench.poolSize,
    idleTimeout: "1 hour",
    applicationName: multiplex ? "bench-pgclient-mx" : "bench-pgclient",
    ...(multiplex ? { multiplex: true } : {})
  }))

const pgClient: System = {
  key: "pgclient",
  readConnections: (p) => p,
  name: "@effect/sql-pg 4 PgClient (primary)",
  routing: "everything to the primary; `PgClient.layer`, maxConnections P",
  setup: ({ bench }) => pgClientOn(bench, false)
}

const pgClientMultiplex: System = {
  key: "pgclient-mx",
  readConnections: (p) => p,
  name: "@effect/sql-pg 4 PgClient, multiplex (primary)",
  routing: "everything to the primary; `PgClient.layer` with `multiplex: true` (multiplexConcurrency 32), maxConnections P",
  setup: ({ bench }) => pgClientOn(bench, true)
}

/** How each role's pools use their connections (`RouterConfig`'s `primaryPool` / `replicaPool`). */
export interface PoolSettings {
  readonly multiplex?: boolean | undefined
  readonly multiplexConcurrency?: number | undefined
  readonly prepare?: boolean | undefined
}

/**
 * Router configuration over the cluster with P connections per server, no
 * background probes, and `pool` for both roles when given.
 */
export const routerConfig = (
  bench: BenchCluster,
  pool?: PoolSettings,
  options: { readonly primaryOnly?: boolean } = {}
): RouterConfig.RouterConfig => {
  const config = {
    primary: bench.primary.url,
    replicas: options.primaryOnly === true ? [] : bench.replicas.map((node) => node.url),
    primaryMaxSize: bench.poolSize,
    replicaMaxSizeEach: bench.poolSize,
    idleTimeout: "1 hour",
    health: { enabled: false },
    ...(pool === undefined ? {} : { primaryPool: pool, replicaPool: pool })
  } as const
  return config
}

const servedLine = (stats: SqlRouter.Stats): string =>
  [stats.primary, ...stats.replicas].map((node) => `${node.id} ${node.served.reads} reads / ${node.served.writes} writes`)
    .join(", ")

/** Our routed client: `RoutedClient.layer`, skipped with the reason when the module cannot be loaded. */
const routedOn = async (
  bench: BenchCluster,
  pool?: PoolSettings,
  options: { readonly primaryOnly?: boolean } = {}
): Promise<Setup> => {
  let RoutedClient: typeof import("#lib/RoutedClient.js")
  let Router: typeof import("#lib/SqlRouter.js")
  try {
    RoutedClient = await import("#lib/RoutedClient.js")
    Router = await import("#lib/SqlRouter.js")
  } catch (error) {
    return { _tag: "Skipped", reason: `the router could not be loaded (${(error as Error).message.split("\n")[0]})` }
  }
  return effectSystem(
    RoutedClient.layer(routerConfig(bench, pool, options)),
    (runtime) => runtime.runPromise(Effect.map(Router.stats, servedLine))
  )
}

const routed: System = {
  key: "routed",
  name: "RoutedClient (ours)",
  routing: "every statement classified: reads round-robin over the replicas, writes to the primary; P per server",
  readConnections: (p) => 2 * p,
  setup: ({ bench }) => routedOn(bench)
}

const routedMultiplex: System = {
  key: "routed-mx",
  name: "RoutedClient, multiplex (ours)",
  routing: "as the RoutedClient, with `primaryPool` and `replicaPool` `{ multiplex: true }` (multiplexConcurrency 32)",
  readConnections: (p) => 2 * p,
  setup: ({ bench }) => routedOn(bench, { multiplex: true })
}

/**
 * The router's own cost: the multiplexed RoutedClient configured with no
 * replicas, so that it runs every statement on the one server PgClient uses.
 * Against PgClient with multiplex this isolates routing (classify, decide,
 * count) from spreading reads over three servers that share the host's cores.
 */
const routedMultiplexPrimaryOnly: System = {
  key: "routed-mx-primary",
  name: "RoutedClient, multiplex, no replicas (ours)",
  routing: "the multiplexed RoutedClient with `replicas: []`: every statement classified and run on the primary",
  readConnections: (p) => p,
  setup: ({ bench }) => routedOn(bench, { multiplex: true }, { primaryOnly: true })
}

/** Every system, in report order. raw pg comes first: every ratio is against it. */
export const all: ReadonlyArray<System> = [
  rawPg,
  pgClient,
  pgClientMultiplex,
  routed,
  routedMultiplex,
  routedMultiplexPrimaryOnly
]

/** The system every ratio is taken against. */
export const baselineKey = rawPg.key
