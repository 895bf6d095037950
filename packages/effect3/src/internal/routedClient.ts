/** @internal */
import type * as PgClient from "@effect/sql-pg/PgClient"
import type * as Connection from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Classifier from "../Classifier.js"
import type * as Node from "../Node.js"
import * as Catalog from "./health/catalog.js"
import * as Consistency from "./consistency.js"
import * as Membership from "./health/membership.js"
import * as NodeInternal from "./node.js"
import * as Routing from "./routing/decision.js"
import { field, getter, makeClient, transformsOf } from "./routedClient/assembly.js"
import { makeRouter, type Router } from "./routedClient/execution.js"
import { fastStatements, intentCompiler } from "./routedClient/integration.js"
import * as Statement from "./routedClient/statement.js"
import { afterWriteOn } from "./routedClient/writes.js"
import { annotate } from "./routedClient/tracing.js"
import type { ClientOptions, RouterState } from "./routerState.js"

// The routed client owns its hot path: a statement compiles, is classified
// (cached), picks its node (at most one STM commit, pick and in-flight
// together) and runs as one `Effect.async` on that node's pg.Pool, without a
// per-statement canceler, scope or span. The general path (@effect/sql's
// Statement machinery over a routing Connection) remains for what the fast
// path does not cover: streams and a `Statement.withTransformer` in scope.
//
// Its parts, under ./routedClient/: `statement` (a statement's facts),
// `execution` with `writes`, `reads` and `hedging` (where it runs and the
// safety net), `integration` (the statement class over @effect/sql's),
// `tracing` (metrics and span facts) and `assembly` (the one client maker).
// This module makes the two clients from them: the routed one and a node's.

/** The options of `RoutedClient.make`. @internal */
export interface Options extends ClientOptions {
  readonly writeTimeout?: Duration.DurationInput | undefined
}

/** @internal */
export const make = (
  state: RouterState,
  options: Options = {}
): Effect.Effect<PgClient.PgClient, never, Scope.Scope> =>
  Effect.gen(function*() {
    const classifier = Classifier.make({ sideEffectFunctions: state.config.sideEffectFunctions })
    const { topology } = state
    // sideEffectFunctions: "catalog": the user's volatile functions, read at
    // start and after each routed schema change. A failed read keeps the list.
    const readCatalog = state.config.sideEffectCatalog
      ? Effect.ignore(Effect.flatMap(
        Effect.tryPromise(() =>
          Routing.peek(topology.primary).pool.query<{ name: string }>(Catalog.volatileFunctionsSql)
        ),
        (result) => Effect.sync(() => classifier.setDiscoveredFunctions(result.rows.map((row) => row.name)))
      ))
      : undefined
    if (readCatalog !== undefined) yield* readCatalog
    const router = makeRouter(state, classifier, { writeTimeout: options.writeTimeout, onSchemaChange: readCatalog })
    const currentPrimary = Effect.sync(() => Routing.peek(topology.primary))
    const intentSlot: [string, unknown] = ["effect_sql_router.intent", "write"]
    const spanAttributes: ReadonlyArray<readonly [string, unknown]> = [
      ...Object.entries(options.spanAttributes ?? {}),
      ["db.system.name", "postgresql"],
      ["effect_sql_router.routed", true]
    ]
    // Each transaction's own node, by its connection: fibers never share it.
    const nodeOfConnection = new WeakMap<Connection.Connection, string>()
    const reserve = Effect.flatMap(
      Effect.mapError(Membership.primaryForWrite(state), Statement.asSqlError),
      (primary) =>
        Effect.map(primary.client.reserve, (connection) => {
          nodeOfConnection.set(connection, primary.id)
          return connection
        })
    )
    const { compiler, transformRows } = transformsOf(options)
    return makeClient({
      reactivity: state.reactivity,
      acquirer: Effect.succeed(router.connection),
      reserve,
      compiler: intentCompiler(compiler, classifier, intentSlot),
      transformRows,
      spanAttributes: [...spanAttributes, intentSlot],
      transactions: {
        node: (connection) => nodeOfConnection.get(connection) ?? "primary",
        readOnly: false,
        reserve,
        commit: Consistency.commitRecording(state)
      },
      statements: fastStatements({ router, classifier, spanAttributes, nodeOfConnection }),
      pg: {
        // The primary's, read when asked: after a failover it is the new primary's.
        config: getter(() => Routing.peek(topology.primary).client.config),
        json: getter(() => Routing.peek(topology.primary).client.json),
        listen: field((channel: string) =>
          Stream.unwrap(Effect.map(currentPrimary, (primary) => primary.client.listen(channel)))),
        // @effect/sql-pg 0.53 sends NOTIFY with a bind parameter, which PostgreSQL rejects.
        notify: field((channel: string, payload: string) =>
          Effect.flatMap(currentPrimary, (primary) =>
            Effect.asVoid(primary.connection.execute("SELECT pg_notify($1, $2)", [channel, payload], undefined))))
      }
    })
  })

/**
 * A node's own client on the same lean machinery, for regions (`withRead`,
 * `withWrite`, …): every statement runs on this node as one operation on its
 * pool; inside a transaction, on the transaction's connection. Transactions,
 * `reserve`, LISTEN/NOTIFY and `config` are the node's `PgClient`'s.
 * @internal
 */
export const makePinned = (state: RouterState, node: Node.Node): PgClient.PgClient => {
  const options = state.clientOptions ?? {}
  const classifier = Classifier.make({ sideEffectFunctions: state.config.sideEffectFunctions })
  // A schema change in a primary region raises the DDL barrier too; a write there while it is up moves it.
  const afterWrite = afterWriteOn(state)
  const route: Router["route"] = (facts) => {
    annotate(facts.span, node)
    const kind = node.role === "primary" ? classifier.kind(facts.sql) : "read"
    return Effect.async<any, SqlError>((resume) => {
      NodeInternal.watch(
        facts.fiber,
        Statement.start(facts, node.pool, (error, result, acquired) => {
          if (error !== undefined) return resume(Effect.fail(NodeInternal.failed(error, acquired)))
          const value = Statement.finish(facts, result!)
          resume(kind === "read" ? value : afterWrite(node, kind === "schema-change", value))
        })
      )
    })
  }
  const spanAttributes: ReadonlyArray<readonly [string, unknown]> = [
    ...Object.entries(options.spanAttributes ?? {}),
    ["db.system.name", "postgresql"]
  ]
  return makeClient({
    reactivity: state.reactivity,
    acquirer: Effect.succeed(node.connection),
    reserve: node.client.reserve,
    ...transformsOf(options),
    spanAttributes: [...spanAttributes, ["effect_sql_router.node", node.id]],
    // As the node's own client's: BEGIN READ ONLY while the node is a replica.
    transactions: { node: () => node.id, readOnly: () => node.role === "replica", reserve: node.client.reserve },
    statements: fastStatements({
      router: { route, connection: node.connection },
      classifier,
      spanAttributes,
      nodeOfConnection: new WeakMap()
    }),
    pg: {
      config: field(node.client.config),
      json: field(node.client.json),
      listen: field(node.client.listen),
      notify: field(node.client.notify)
    }
  })
}
