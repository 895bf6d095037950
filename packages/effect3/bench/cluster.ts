/**
 * The benchmark's database: a primary and streaming replicas from the
 * embedded cluster harness on loopback, with the small table of the
 * read/write mix, replicated before any measurement starts.
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as PgCluster from "#lib/testing/PgCluster.js"

/** Rows of `bench_kv`; the mix picks keys uniformly in 1..keys. */
export const keys = 1000

/** Default pool size per server (P). */
export const defaultPoolSize = 10

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

/** The URL of a node, unwrapped for drivers that take a string. */
export const urlOf = (node: PgCluster.ClusterNode): string => Redacted.value(node.url)

// Every system keeps its pools open for the whole run (8 systems, pgpool with
// up to 3P children per backend, raw pg with 3P): well above the default 100.
const settings = { max_connections: "400" }

/** Starts the cluster and creates `bench_kv`; everything is gone when the scope closes. */
export const make = (options: Options = {}): Effect.Effect<BenchCluster, PgCluster.ClusterError, Scope.Scope> =>
  Effect.gen(function*() {
    const cluster = yield* PgCluster.make({ replicas: options.replicas ?? 2, settings })
    const primary = cluster.primary
    yield* cluster.query(primary, "CREATE TABLE bench_kv (k int PRIMARY KEY, v bigint NOT NULL DEFAULT 0)")
    yield* cluster.query(primary, `INSERT INTO bench_kv (k) SELECT generate_series(1, ${keys})`)
    yield* cluster.query(primary, "VACUUM ANALYZE bench_kv")
    yield* cluster.awaitReplication()
    const [row] = yield* cluster.query<{ v: string }>(primary, "SELECT current_setting('server_version') AS v")
    return {
      cluster,
      primary,
      replicas: cluster.replicas,
      poolSize: options.poolSize ?? defaultPoolSize,
      serverVersion: row?.v ?? "unknown"
    }
  })
