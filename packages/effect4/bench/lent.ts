/**
 * The systems the Effect 3 line's benchmark lends this one
 * (`packages/effect3/bench/foreign.ts`): the Effect 3 line's RoutedClient,
 * @effect/sql-pg 0.x's PgClient, kysely-replication, drizzle's withReplicas
 * and pgpool-II, run against this run's cluster so that both lines and the
 * peers are measured side by side in one run.
 *
 * The module is imported by path at run time: its imports resolve in the
 * Effect 3 package (Effect 3, its own `#lib`), and this line's typecheck
 * does not follow it. What crosses is plain promises and strings, typed by
 * the small interface below.
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Host from "../../core/bench/host.js"
import type { BenchCluster } from "./cluster.js"
import type * as Systems from "./systems.js"

/** The workloads the lent systems run: the judged one and the mix. */
const lentWorkloads: ReadonlyArray<Systems.WorkloadKey> = ["select1-c32", "mix-c32"]

/** The lent systems' keys, for `--only` (kept in step with foreign.ts by the run, which fails on a key it lacks). */
export const keys: ReadonlyArray<string> = ["pgclient3", "routed3", "kysely", "drizzle", "pgpool"]

interface NodeInfo {
  readonly name: string
  readonly role: "primary" | "replica"
  readonly host: string
  readonly port: number
  readonly database: string
  readonly user: string
  readonly url: string
}

interface ForeignModule {
  readonly keys: ReadonlyArray<string>
  readonly borrow: (
    nodes: {
      readonly primary: NodeInfo
      readonly replicas: ReadonlyArray<NodeInfo>
      readonly poolSize: number
      readonly serverVersion: string
    },
    wanted: (key: string) => boolean,
    log: (message: string) => void
  ) => Promise<{
    readonly systems: ReadonlyArray<{
      readonly key: string
      readonly name: string
      readonly routing: string
      readonly readConnections: (poolSize: number) => number
      readonly setup: () => Promise<Systems.Setup>
    }>
    readonly pgpoolVersion: string | undefined
    readonly close: () => Promise<void>
  }>
}

const foreignPath = new URL("../../effect3/bench/foreign.ts", import.meta.url)

/** The libraries of the lent systems, as the Effect 3 package resolves them, named apart from this line's. */
const lentLibraries = (): ReadonlyArray<readonly [string, string]> =>
  Host.libraryVersions(foreignPath.href, ["effect", "@effect/sql", "@effect/sql-pg", "kysely", "kysely-replication", "drizzle-orm"])
    .map(([name, version]) => [`${name} (Effect 3 line and peers)`, version] as const)

const nodeOf = (node: BenchCluster["primary"]): NodeInfo => ({
  name: node.name,
  role: node.role === "primary" ? "primary" : "replica",
  host: node.host,
  port: node.port,
  database: node.database,
  user: node.user,
  url: Redacted.value(node.url)
})

/**
 * The lent systems `wanted` selects, as this run's systems (on `SELECT 1`
 * c=32 and the mix only), and their libraries; pgpool-II, if lent, stops with
 * the scope.
 */
export const borrow = (
  bench: BenchCluster,
  wanted: (key: string) => boolean,
  log: (message: string) => void
): Effect.Effect<
  { readonly systems: ReadonlyArray<Systems.System>; readonly libraries: ReadonlyArray<readonly [string, string]> },
  never,
  Scope.Scope
> => {
  if (!keys.some(wanted)) return Effect.succeed({ systems: [], libraries: [] })
  return Effect.gen(function*() {
    const foreign = (yield* Effect.promise(() => import(foreignPath.href))) as ForeignModule
    const missing = keys.filter((key) => !foreign.keys.includes(key))
    if (missing.length > 0) return yield* Effect.die(new Error(`foreign.ts lends no system ${missing.join(", ")}`))
    const lent = yield* Effect.acquireRelease(
      Effect.promise(() =>
        foreign.borrow(
          {
            primary: nodeOf(bench.primary),
            replicas: bench.replicas.map(nodeOf),
            poolSize: bench.poolSize,
            serverVersion: bench.serverVersion
          },
          wanted,
          log
        )
      ),
      (lent) => Effect.promise(() => lent.close().catch(() => {}))
    )
    const systems = lent.systems.map((system): Systems.System => ({
      key: system.key,
      name: system.name,
      routing: system.routing,
      readConnections: system.readConnections,
      workloads: lentWorkloads,
      setup: () => system.setup()
    }))
    const libraries = [
      ...lentLibraries(),
      ...(lent.pgpoolVersion === undefined ? [] : [["pgpool-II", lent.pgpoolVersion] as const])
    ]
    return { systems, libraries }
  })
}
