/** @internal */
import type * as Connection from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type * as Classifier from "../../Classifier.js"
import * as Routing from "../routing/decision.js"
import * as Reads from "./reads.js"
import * as Statement from "./statement.js"
import { count } from "./tracing.js"
import * as Writes from "./writes.js"
import type { RouterState } from "../routerState.js"

// Where a routed statement runs and what happens when that node does not
// answer: writes on the primary (once, with `writeTimeout`), reads on the
// replica `Routing.decideRead` chose, with the safety net (25006, eviction,
// `readTimeout`, hedging). Each runs as one `Effect.async` on the node's
// pg.Pool, without a per-statement canceler, scope, span or fiber.

/** @internal */
export interface Router {
  /** Routes one compiled statement: the fast path's core, and the general path's. */
  readonly route: (facts: Statement.Facts) => Effect.Effect<any, SqlError>
  /** The general path's `Connection`: @effect/sql uses it outside transactions. */
  readonly connection: Connection.Connection
}

/**
 * The statement router.
 * @internal
 */
export const makeRouter = (
  state: RouterState,
  classifier: Classifier.Classifier,
  options: {
    readonly writeTimeout?: Duration.DurationInput | undefined
    /** After a routed schema change: e.g. read the catalog's functions again. */
    readonly onSchemaChange?: Effect.Effect<void> | undefined
  } = {}
): Router => {
  const { topology } = state
  const writes = Writes.makeWrites(state, options)
  const { primaryForWrite, write } = writes
  const read = Reads.makeRead(state, writes)

  const route: Router["route"] = (facts) => {
    const kind = classifier.kind(facts.sql)
    return kind === "read" ? read(facts) : write(facts, kind === "schema-change")
  }

  const routed = (sql: string, params: ReadonlyArray<unknown>, op: Statement.Op, rows: Statement.Rows | undefined) =>
    Effect.withFiberRuntime<any, SqlError>((fiber) => route(Statement.make(fiber, sql, params, op, rows, undefined)))

  const routeStream = <A>(
    sql: string,
    params: ReadonlyArray<unknown>,
    rows: Statement.Rows | undefined
  ): Stream.Stream<A, SqlError> =>
    Stream.unwrapScoped(
      classifier.classify(sql) === "write"
        ? Effect.map(primaryForWrite, (primary) => {
          count(primary, "write")
          return primary.connection.executeStream(sql, params, rows) as Stream.Stream<A, SqlError>
        })
        : Effect.map(
          Effect.acquireRelease(
            Effect.mapError(Routing.chooseRead(state), Statement.asSqlError),
            (chosen) => Option.isSome(chosen) ? Routing.releaseReplica(chosen.value) : Effect.void
          ),
          (chosen) => {
            const node = Option.isSome(chosen) ? chosen.value.node : Routing.peek(topology.primary)
            count(node, "read")
            return node.connection.executeStream(sql, params, rows) as Stream.Stream<A, SqlError>
          }
        )
    )

  const connection: Connection.Connection = {
    execute: (sql, params, rows) => routed(sql, params, "execute", rows),
    executeUnprepared: (sql, params, rows) => routed(sql, params, "executeUnprepared", rows),
    executeRaw: (sql, params) => routed(sql, params, "executeRaw", undefined),
    executeValues: (sql, params) => routed(sql, params, "executeValues", undefined),
    executeStream: (sql, params, rows) => routeStream(sql, params, rows)
  }
  return { route, connection }
}

