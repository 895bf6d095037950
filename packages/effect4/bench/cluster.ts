/**
 * The benchmark's database: a primary and streaming replicas from the Effect 4
 * line's embedded cluster harness (`testing/PgCluster`) on loopback, with the
 * small table of the read/write mix, replicated before any measurement
 * starts. The table, the settings and the pool size are the shared ones
 * (`packages/core/bench/workload.ts`), as in the Effect 3 line's benchmark.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as PgCluster from "#lib/testing/PgCluster.js"
import * as Workload from "../../core/bench/workload.js"

export interface Options {
  readonly replicas?: number | undefined
  /** Connections per server for every system (P); default 10. */
  readonly poolSize?: number | undefined
}

export interface BenchCluster {
  readonly cluster: PgCluster.PgCluster
  readonly primary: PgCluster.ClusterNode
  readonly replicas: ReadonlyArray<PgCluster.ClusterNode>
  readonly poolSize: number
  /** `server_version` as the primary reports it. */
  readonly serverVersion: string
}

/** Starts the cluster and creates `bench_kv`; everything is gone when the scope closes. */
export const make = (options: Options = {}): Effect.Effect<BenchCluster, PgCluster.ClusterError, Scope.Scope> =>
  Effect.gen(function*() {
    const cluster = yield* PgCluster.make({ replicas: options.replicas ?? 2, settings: Workload.serverSettings })
    const primary = cluster.primary
    for (const statement of Workload.setupStatements) yield* cluster.query(primary, statement)
    yield* cluster.awaitReplication()
    const [row] = yield* cluster.query<{ v: string }>(primary, "SELECT current_setting('server_version') AS v")
    return {
      cluster,
      primary,
      replicas: cluster.replicas,
      poolSize: options.poolSize ?? Workload.defaultPoolSize,
      serverVersion: row?.v ?? "unknown"
    }
  })
