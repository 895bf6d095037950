/**
 * One adapter per system under test. Each opens its pools once (P
 * connections per server) and exposes the four statements of the workloads
 * as plain `() => Promise` calls. Effect-based systems build their layer once
 * in a `ManagedRuntime` and resolve their service before the load starts, so
 * a call costs only the statement path plus one `runPromise`.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { eq, sql as dsql } from "drizzle-orm"
import { drizzle } from "drizzle-orm/node-postgres"
import { bigint, integer, pgTable, withReplicas } from "drizzle-orm/pg-core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as STM from "effect/STM"
import * as TRef from "effect/TRef"
import { Kysely, PostgresDialect, sql as ksql } from "kysely"
import { KyselyReplicationDialect } from "kysely-replication"
import { RoundRobinReplicaStrategy } from "kysely-replication/strategy/round-robin"
import Pg from "pg"
import * as RouterInternal from "#lib/internal/sqlRouter.js"
import type * as RouterConfig from "#lib/RouterConfig.js"
import * as SqlRouter from "#lib/SqlRouter.js"
import { mixStep, statements } from "../../core/bench/workload.js"
import { type BenchCluster, urlOf } from "./cluster.js"
import type { Pgpool } from "./pgpool.js"

// ---------------------------------------------------------------------------
// Workloads

export type WorkloadKey =
  | "select1-c1"
  | "select1-c8"
  | "select1-c32"
  | "select1-c128"
  | "sleep-c32"
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
  readonly fibers?: { readonly operation: (effects: Effects) => () => Effect.Effect<unknown, unknown>; readonly against: WorkloadKey } | undefined
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
  { key: "sleep-c32", title: "`SELECT pg_sleep(0.005)`, concurrency 32 (I/O-bound)", concurrency: 32, operation: (i) => i.sleep },
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
  readonly sleep: () => Promise<unknown>
  readonly read: (k: number) => Promise<unknown>
  readonly write: (k: number) => Promise<unknown>
  readonly close: () => Promise<void>
  /** Facts worth a line in the report after the run (e.g. where reads went). */
  readonly summary?: (() => Promise<string | undefined>) | undefined
}

export interface SetupContext {
  readonly bench: BenchCluster
  /** The running pgpool, or why it is not running. */
  readonly pgpool: { readonly _tag: "Running"; readonly pgpool: Pgpool } | { readonly _tag: "Missing"; readonly reason: string }
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
  /** Server connections that can serve a read at once, for pool size P: the I/O-bound ceiling. */
  readonly readConnections: (poolSize: number) => number
  readonly setup: (context: SetupContext) => Promise<Setup>
}

const ready = (instance: Instance): Setup => ({ _tag: "Ready", instance })

const { read: READ, select1: SELECT_1, sleep: SLEEP, write: WRITE } = statements

const pgPool = (connectionString: string, max: number, name: string): Pg.Pool => {
  const pool = new Pg.Pool({ connectionString, max, idleTimeoutMillis: 0, application_name: `bench-${name}` })
  pool.on("error", () => {})
  return pool
}

const pgPoolAt = (host: string, port: number, user: string, max: number, name: string): Pg.Pool => {
  const pool = new Pg.Pool({ host, port, user, database: "postgres", max, idleTimeoutMillis: 0, application_name: `bench-${name}` })
  pool.on("error", () => {})
  return pool
}

const rawPgOn = (pool: Pg.Pool): Instance => ({
  select1: () => pool.query(SELECT_1),
  sleep: () => pool.query(SLEEP),
  read: (k) => pool.query(READ, [k]),
  write: (k) => pool.query(WRITE, [k]),
  close: () => pool.end()
})

/** Router configuration over the cluster with P connections per server and no background probes. */
export const routerConfig = (
  bench: BenchCluster,
  replicas = bench.replicas,
  extra: Partial<RouterConfig.RouterConfig> = {}
): RouterConfig.RouterConfig => ({
  ...extra,
  primary: bench.primary.url,
  replicas: replicas.map((node) => node.url),
  primaryMaxSize: bench.poolSize,
  replicaMaxSizeEach: bench.poolSize,
  idleTimeout: "1 hour",
  health: { enabled: false }
})

/** The four statements through an `@effect/sql` client, built afresh per call as application code does. */
const statementsOf = (sql: SqlClient.SqlClient) => ({
  select1: () => sql`SELECT 1`,
  sleep: () => sql`SELECT pg_sleep(0.005)`,
  read: (k: number) => sql`SELECT v FROM bench_kv WHERE k = ${k}`,
  write: (k: number) => sql`UPDATE bench_kv SET v = v + 1 WHERE k = ${k}`
})

/** An Effect system: the layer is built once; each call is one `runPromise` of a fresh statement. */
/** Each query is one `runPromise` of a plain `SqlClient` statement. */
const plainStatements = async (runtime: ManagedRuntime.ManagedRuntime<SqlClient.SqlClient, unknown>) => {
  const s = statementsOf(await runtime.runPromise(SqlClient.SqlClient))
  return {
    effects: { runPromise: (effect: Effect.Effect<void>) => runtime.runPromise(effect), ...s },
    select1: () => runtime.runPromise(s.select1()),
    sleep: () => runtime.runPromise(s.sleep()),
    read: (k: number) => runtime.runPromise(s.read(k)),
    write: (k: number) => runtime.runPromise(s.write(k))
  }
}

const effectSystem = async <R, E>(
  layer: Layer.Layer<R, E>,
  make: (runtime: ManagedRuntime.ManagedRuntime<R, E>) => Promise<Omit<Instance, "close">>
): Promise<Setup> => {
  const runtime = ManagedRuntime.make(layer)
  try {
    const instance = await make(runtime)
    return ready({ ...instance, close: () => runtime.dispose() })
  } catch (error) {
    await runtime.dispose()
    throw error
  }
}

const rawPg: System = {
  key: "pg",
  readConnections: (p) => p,
  name: "raw pg (primary)",
  routing: "everything to the primary; `pg.Pool` max P",
  setup: async ({ bench }) => ready(rawPgOn(pgPool(urlOf(bench.primary), bench.poolSize, "pg")))
}

const rawPg3P: System = {
  key: "pg-3p",
  readConnections: (p) => 3 * p,
  name: "raw pg (primary, pool 3P)",
  routing: "everything to the primary; `pg.Pool` max 3P (the connections the routed systems have in total)",
  workloads: ["sleep-c32"],
  setup: async ({ bench }) => ready(rawPgOn(pgPool(urlOf(bench.primary), 3 * bench.poolSize, "pg-3p")))
}

const roundRobin: System = {
  key: "pg-rr",
  readConnections: (p) => 3 * p,
  name: "hand-written round-robin (raw pg)",
  routing: "reads round-robin over primary + replicas, writes to the primary; one `pg.Pool` (max P) per server",
  setup: async ({ bench }) => {
    const pools = [bench.primary, ...bench.replicas].map((node) => pgPool(urlOf(node), bench.poolSize, "pg-rr"))
    const primary = pools[0]!
    let next = 0
    const reader = () => {
      const pool = pools[next]!
      next = (next + 1) % pools.length
      return pool
    }
    return ready({
      select1: () => reader().query(SELECT_1),
      sleep: () => reader().query(SLEEP),
      read: (k) => reader().query(READ, [k]),
      write: (k) => primary.query(WRITE, [k]),
      close: async () => {
        await Promise.all(pools.map((pool) => pool.end()))
      }
    })
  }
}

const pgClientDirect: System = {
  key: "pgclient",
  readConnections: (p) => p,
  name: "@effect/sql-pg PgClient (primary)",
  routing: "everything to the primary; `PgClient.layer`, maxConnections P",
  setup: ({ bench }) =>
    effectSystem(
      PgClient.layer({ url: bench.primary.url, maxConnections: bench.poolSize, idleTimeout: "1 hour" }),
      plainStatements
    )
}

/**
 * An @effect/sql client whose connection is the router's lean per-statement
 * connection to the primary (`Node.connection`: the pool is called directly).
 * Against PgClient direct it prices DESIGN's "lean connection" on its own.
 */
const leanConnection: System = {
  key: "lean",
  name: "SqlClient over the router's lean connection (primary)",
  routing: "everything to the primary through `Node.connection` of a router's primary node (pool max P); no routing",
  workloads: ["select1-c1", "select1-c32"],
  readConnections: (p) => p,
  setup: ({ bench }) =>
    effectSystem(
      Layer.scoped(
        SqlClient.SqlClient,
        Effect.gen(function*() {
          const internals = yield* RouterInternal.makeState(routerConfig(bench, []))
          const primary = yield* STM.commit(TRef.get(internals.topology.primary))
          return yield* SqlClient.make({
            acquirer: Effect.succeed(primary.connection),
            compiler: PgClient.makeCompiler(),
            spanAttributes: [["db.system.name", "postgresql"]]
          }).pipe(Effect.provideService(Reactivity.Reactivity, internals.reactivity))
        })
      ),
      plainStatements
    )
}

const withReadOn = (bench: BenchCluster, extra: Partial<RouterConfig.RouterConfig> = {}) =>
  effectSystem(SqlRouter.layer(routerConfig(bench, bench.replicas, extra)), async (runtime) => {
    const router = await runtime.runPromise(SqlRouter.SqlRouter)
    const select1 = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`)
    const sleep = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT pg_sleep(0.005)`)
    const read = (k: number) => router.withRead(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT v FROM bench_kv WHERE k = ${k}`))
    const write = (k: number) =>
      router.withWrite(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`UPDATE bench_kv SET v = v + 1 WHERE k = ${k}`))
    return {
      effects: { runPromise: (effect) => runtime.runPromise(effect), select1: () => router.withRead(select1), read, write },
      select1: () => runtime.runPromise(router.withRead(select1)),
      sleep: () => runtime.runPromise(router.withRead(sleep)),
      read: (k) =>
        runtime.runPromise(router.withRead(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT v FROM bench_kv WHERE k = ${k}`))),
      write: (k) =>
        runtime.runPromise(router.withWrite(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`UPDATE bench_kv SET v = v + 1 WHERE k = ${k}`))),
      summary: () => runtime.runPromise(Effect.map(router.stats, servedLine))
    }
  })

const servedLine = (stats: SqlRouter.Stats): string =>
  [stats.primary, ...stats.replicas].map((node) => `${node.id} ${node.served.reads} reads / ${node.served.writes} writes`).join(", ")

const withRead: System = {
  key: "withread",
  readConnections: (p) => 2 * p,
  name: "SqlRouter.withRead",
  routing: "reads (`withRead`) round-robin over the replicas, writes (`withWrite`) to the primary; P per server",
  setup: ({ bench }) => withReadOn(bench)
}

const overflowNote = "with `primaryReads: \"overflow\"`: a read whose replica pool is busy uses the primary's spare connections"

const withReadOverflow: System = {
  key: "withread-overflow",
  name: "SqlRouter.withRead, primaryReads overflow",
  routing: `as \`SqlRouter.withRead\`, ${overflowNote}`,
  workloads: ["sleep-c32"],
  readConnections: (p) => 3 * p,
  setup: ({ bench }) => withReadOn(bench, { primaryReads: "overflow" })
}

/** Our routed client: `RoutedClient.layer`, skipped with a note when the module cannot be loaded. */
const routedOn = async (
  bench: BenchCluster,
  extra: Partial<RouterConfig.RouterConfig> = {},
  replicas: ReadonlyArray<BenchCluster["primary"]> = bench.replicas
): Promise<Setup> => {
  let RoutedClient: typeof import("#lib/RoutedClient.js")
  try {
    RoutedClient = await import("#lib/RoutedClient.js")
  } catch (error) {
    return { _tag: "Skipped", reason: `src/RoutedClient.ts could not be loaded (${(error as Error).message.split("\n")[0]})` }
  }
  return effectSystem(RoutedClient.layer(routerConfig(bench, replicas, extra)), async (runtime) => {
    const sql = await runtime.runPromise(SqlClient.SqlClient)
    const router = await runtime.runPromise(SqlRouter.SqlRouter)
    const s = statementsOf(sql)
    return {
      effects: { runPromise: (effect) => runtime.runPromise(effect), ...s },
      select1: () => runtime.runPromise(s.select1()),
      sleep: () => runtime.runPromise(s.sleep()),
      read: (k) => runtime.runPromise(s.read(k)),
      write: (k) => runtime.runPromise(s.write(k)),
      summary: () => runtime.runPromise(Effect.map(router.stats, servedLine))
    }
  })
}

const routed: System = {
  key: "routed",
  name: "RoutedClient (ours)",
  routing: "every statement classified: reads round-robin over the replicas, writes to the primary; P per server",
  readConnections: (p) => 2 * p,
  setup: ({ bench }) => routedOn(bench)
}

const routedTimeout: System = {
  key: "routed-timeout",
  name: "RoutedClient, readTimeout 5 s",
  routing: "as the RoutedClient, with `readTimeout: \"5 seconds\"` (the README's quick start)",
  workloads: ["select1-c32", "mix-c32", "select1-c32-fibers"],
  readConnections: (p) => 2 * p,
  setup: ({ bench }) => routedOn(bench, { readTimeout: "5 seconds" })
}

const routedOneReplica: System = {
  key: "routed-r1",
  name: "RoutedClient, 1 replica",
  routing: "as the RoutedClient over replica-0 only",
  workloads: ["select1-c32", "select1-c32-fibers"],
  readConnections: (p) => p,
  setup: ({ bench }) => routedOn(bench, {}, bench.replicas.slice(0, 1))
}

const routedFourReplicas: System = {
  key: "routed-r4",
  name: "RoutedClient, 4 replicas (2 per server)",
  routing: "as the RoutedClient over 4 replica nodes: each of the 2 replica servers configured twice (P each)",
  workloads: ["select1-c32", "select1-c32-fibers"],
  readConnections: (p) => 4 * p,
  setup: ({ bench }) => routedOn(bench, {}, [...bench.replicas, ...bench.replicas])
}

/** The Effect floor: one `Effect.async` over `pool.query`, no routing, no @effect/sql. */
const effectFloor: System = {
  key: "floor",
  name: "Effect floor: Effect.async(pool.query) (primary)",
  routing: "everything to the primary; `pg.Pool` max P; each query one `Effect.async` without a canceler",
  workloads: ["select1-c1", "select1-c32", "select1-c128", "mix-c32", "select1-c32-fibers", "mix-c32-fibers"],
  readConnections: (p) => p,
  setup: async ({ bench }) => {
    const pool = pgPool(urlOf(bench.primary), bench.poolSize, "floor")
    const query = (text: string, params: Array<unknown> = []) =>
      Effect.async<unknown, Error>((resume) => {
        pool.query(text, params, (error, result) => resume(error ? Effect.fail(error) : Effect.succeed(result)))
      })
    const runtime = ManagedRuntime.make(Layer.empty)
    const select1 = () => query(SELECT_1)
    const read = (k: number) => query(READ, [k])
    const write = (k: number) => query(WRITE, [k])
    return ready({
      effects: { runPromise: (effect) => runtime.runPromise(effect), select1, read, write },
      select1: () => runtime.runPromise(select1()),
      sleep: () => runtime.runPromise(query(SLEEP)),
      read: (k) => runtime.runPromise(read(k)),
      write: (k) => runtime.runPromise(write(k)),
      close: async () => {
        await runtime.dispose()
        await pool.end()
      }
    })
  }
}

const routedOverflow: System = {
  key: "routed-overflow",
  name: "RoutedClient, primaryReads overflow",
  routing: `as the RoutedClient, ${overflowNote}`,
  workloads: ["sleep-c32"],
  readConnections: (p) => 3 * p,
  setup: ({ bench }) => routedOn(bench, { primaryReads: "overflow" })
}

const benchKv = pgTable("bench_kv", {
  k: integer("k").primaryKey(),
  v: bigint("v", { mode: "number" }).notNull()
})

const drizzleReplicas: System = {
  key: "drizzle",
  readConnections: (p) => 2 * p,
  name: "drizzle-orm withReplicas",
  routing:
    "query-builder selects to a random replica (drizzle's default picker), `update` to the primary; " +
    "`SELECT 1` is `select 1 from (SELECT 1) AS t` (drizzle has no FROM-less select; `db.execute` goes to the primary)",
  setup: async ({ bench }) => {
    const pools = [bench.primary, ...bench.replicas].map((node) => pgPool(urlOf(node), bench.poolSize, "drizzle"))
    const [primary, first, ...rest] = pools.map((client) => drizzle({ client }))
    if (primary === undefined || first === undefined) {
      await Promise.all(pools.map((pool) => pool.end()))
      return { _tag: "Skipped", reason: "needs at least one replica" }
    }
    const db = withReplicas(primary, [first, ...rest])
    const one = dsql`(SELECT 1) AS t`
    return ready({
      select1: () => db.select({ one: dsql<number>`1` }).from(one).execute(),
      sleep: () => db.select({ slept: dsql`pg_sleep(0.005)` }).from(one).execute(),
      read: (k) => db.select({ v: benchKv.v }).from(benchKv).where(eq(benchKv.k, k)).execute(),
      write: (k) => db.update(benchKv).set({ v: dsql`${benchKv.v} + 1` }).where(eq(benchKv.k, k)).execute(),
      close: async () => {
        await Promise.all(pools.map((pool) => pool.end()))
      }
    })
  }
}

interface KyselyDb {
  readonly bench_kv: { readonly k: number; readonly v: number }
}

const kyselyReplication: System = {
  key: "kysely",
  readConnections: (p) => 2 * p,
  name: "kysely-replication",
  routing: "`selectNoFrom`/`selectFrom` round-robin over the replicas, `updateTable` to the primary; P per server",
  setup: async ({ bench }) => {
    const dialect = (node: BenchCluster["primary"]) =>
      new PostgresDialect({ pool: pgPool(urlOf(node), bench.poolSize, "kysely") })
    const [first, ...rest] = bench.replicas.map(dialect)
    if (first === undefined) return { _tag: "Skipped", reason: "needs at least one replica" }
    const db = new Kysely<KyselyDb>({
      dialect: new KyselyReplicationDialect({
        primaryDialect: dialect(bench.primary),
        replicaDialects: [first, ...rest],
        replicaStrategy: new RoundRobinReplicaStrategy({ onTransaction: "error" })
      })
    })
    return ready({
      select1: () => db.selectNoFrom(ksql<number>`1`.as("one")).execute(),
      sleep: () => db.selectNoFrom(ksql`pg_sleep(0.005)`.as("slept")).execute(),
      read: (k) => db.selectFrom("bench_kv").select("v").where("k", "=", k).execute(),
      write: (k) => db.updateTable("bench_kv").set({ v: ksql`v + 1` }).where("k", "=", k).execute(),
      close: () => db.destroy()
    })
  }
}

const pgpool: System = {
  key: "pgpool",
  readConnections: (p) => 3 * p,
  name: "pgpool-II (raw pg client)",
  routing:
    "raw `pg.Pool` (max 3P: one pgpool session per child) to pgpool-II, which balances each SELECT over " +
    "primary + replicas (weight 1 each) and sends writes to the primary",
  setup: async ({ bench, pgpool }) => {
    if (pgpool._tag === "Missing") return { _tag: "Skipped", reason: pgpool.reason }
    const { host, port } = pgpool.pgpool
    const instance = rawPgOn(pgPoolAt(host, port, bench.primary.user, 3 * bench.poolSize, "pgpool"))
    return ready({
      ...instance,
      summary: async () =>
        `SELECTs per backend: ${
          (await pgpool.pgpool.selectCounts()).map((row) => `${row.role} ${row.node} ${row.selects}`).join(", ")
        }`
    })
  }
}

/** Every system, in report order. raw pg comes first: every ratio is against it. */
export const all: ReadonlyArray<System> = [
  rawPg,
  effectFloor,
  roundRobin,
  pgClientDirect,
  leanConnection,
  withRead,
  routed,
  routedTimeout,
  routedOneReplica,
  routedFourReplicas,
  drizzleReplicas,
  kyselyReplication,
  pgpool,
  rawPg3P,
  withReadOverflow,
  routedOverflow
]

/** The system every ratio is taken against. */
export const baselineKey = rawPg.key
