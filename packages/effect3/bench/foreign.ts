/**
 * The Effect 3 line's systems, lent to the Effect 4 line's benchmark so that
 * both lines, and the peers this line measures (kysely-replication, drizzle's
 * withReplicas, pgpool-II), run side by side in one run against one cluster.
 *
 * This file lives here because its imports must resolve to this package's
 * Effect 3 (`effect`, `@effect/sql`, `#lib/*`); the Effect 4 benchmark
 * imports it by path and talks to it in plain promises and strings. The
 * cluster is the Effect 4 run's: its nodes arrive as plain URLs and are
 * wrapped in this line's `Redacted` here.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import type { BenchCluster } from "./cluster.js"
import * as Pgpool from "./pgpool.js"
import * as Systems from "./systems.js"

/** A server of the borrowing run's cluster, its URL in plain text (it never leaves the process). */
export interface NodeInfo {
  readonly name: string
  readonly role: "primary" | "replica"
  readonly host: string
  readonly port: number
  readonly database: string
  readonly user: string
  readonly url: string
}

/** The borrowing run's cluster. */
export interface Nodes {
  readonly primary: NodeInfo
  readonly replicas: ReadonlyArray<NodeInfo>
  readonly poolSize: number
  readonly serverVersion: string
}

/** What a lent system runs: the three statements of the shared workloads, as promises. */
export interface Instance {
  readonly select1: () => Promise<unknown>
  readonly read: (k: number) => Promise<unknown>
  readonly write: (k: number) => Promise<unknown>
  readonly close: () => Promise<void>
  readonly summary?: (() => Promise<string | undefined>) | undefined
}

/** A lent system, renamed for a report that holds both lines. */
export interface Lent {
  readonly key: string
  readonly name: string
  readonly routing: string
  readonly readConnections: (poolSize: number) => number
  readonly setup: () => Promise<{ readonly _tag: "Ready"; readonly instance: Instance } | { readonly _tag: "Skipped"; readonly reason: string }>
}

/** The lent systems: this line's key, the key and name in the borrowing report. */
const lent: ReadonlyArray<{ readonly key: string; readonly as: string; readonly name?: string }> = [
  { key: "pgclient", as: "pgclient3", name: "@effect/sql-pg 0.x PgClient, Effect 3 (primary)" },
  { key: "routed", as: "routed3", name: "Effect 3 line: RoutedClient (ours)" },
  { key: "kysely", as: "kysely" },
  { key: "drizzle", as: "drizzle" },
  { key: "pgpool", as: "pgpool" }
]

/** The keys the borrowing run may select with `--only`. */
export const keys: ReadonlyArray<string> = lent.map((entry) => entry.as)

/** The lent systems, set up against `nodes`, with pgpool-II started if it is wanted and installed. */
export interface Borrowed {
  readonly systems: ReadonlyArray<Lent>
  readonly pgpoolVersion: string | undefined
  /** Closes pgpool-II (the systems' pools close through their instances). */
  readonly close: () => Promise<void>
}

const nodeOf = (node: NodeInfo) => ({ ...node, url: Redacted.make(node.url) })

/**
 * Lends the systems `wanted` selects (by borrowed key). pgpool-II starts here,
 * in a scope of its own that `close` ends, when it is wanted and its binary
 * is installed; otherwise it is lent as skipped, with the reason.
 */
export const borrow = async (nodes: Nodes, wanted: (key: string) => boolean, log: (message: string) => void): Promise<Borrowed> => {
  const bench = {
    primary: nodeOf(nodes.primary),
    replicas: nodes.replicas.map(nodeOf),
    poolSize: nodes.poolSize,
    serverVersion: nodes.serverVersion
  } as unknown as BenchCluster
  const scope = Effect.runSync(Scope.make())
  let pgpoolVersion: string | undefined
  let pgpool: Systems.SetupContext["pgpool"] = { _tag: "Missing", reason: "not selected" }
  if (wanted("pgpool")) {
    const binary = Pgpool.findBinary()
    if (binary === undefined) {
      pgpool = { _tag: "Missing", reason: `pgpool binary not found on PATH or in /usr/sbin; install it with ${Pgpool.installHint}` }
    } else {
      pgpool = await Effect.runPromise(
        Pgpool.start(binary, bench, { children: 3 * nodes.poolSize + 8 }).pipe(
          Scope.extend(scope),
          Effect.map((running) => {
            pgpoolVersion = running.version
            log(`pgpool-II ${running.version} up on :${running.port}`)
            return { _tag: "Running", pgpool: running } as const
          }),
          Effect.catchAll((error) =>
            Effect.succeed({ _tag: "Missing", reason: `failed to start: ${error.message.split("\n")[0]}` } as const)
          )
        )
      )
    }
  }
  const context: Systems.SetupContext = { bench, pgpool }
  const systems = lent.filter((entry) => wanted(entry.as)).map((entry): Lent => {
    const system = Systems.all.find((s) => s.key === entry.key)
    if (system === undefined) throw new Error(`the Effect 3 benchmark has no system "${entry.key}"`)
    return {
      key: entry.as,
      name: entry.name ?? system.name,
      routing: system.routing,
      readConnections: system.readConnections,
      setup: () =>
        system.setup(context).then((setup) =>
          setup._tag === "Skipped"
            ? setup
            : {
              _tag: "Ready",
              instance: {
                select1: setup.instance.select1,
                read: setup.instance.read,
                write: setup.instance.write,
                close: setup.instance.close,
                summary: setup.instance.summary
              }
            }
        )
    }
  })
  return { systems, pgpoolVersion, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}
