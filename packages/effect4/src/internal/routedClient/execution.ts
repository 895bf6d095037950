/** @internal */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Connection from "effect/sql/SqlConnection"
import type { SqlError } from "effect/sql/SqlError"
import * as Stream from "effect/Stream"
import type * as Classifier from "../../Classifier.js"
import * as NodeInternal from "../node.js"
import type { RouterState } from "../routerState.js"
import * as Routing from "../routing/decision.js"
import * as Reads from "./reads.js"
import * as Statement from "./statement.js"
import { count } from "./tracing.js"
import * as Writes from "./writes.js"

// Where a routed statement runs and what happens when that node does not
// answer: writes on the primary (once, with `writeTimeout`), reads on the
// replica `Routing.decideRead` chose, with the safety net (25006, eviction,
// `readTimeout`, hedging). The routed client lends one `Connection` to every
// statement (`SqlClient.make`'s `borrower`): its operations classify the
// statement and run it on the chosen node's pool.

/** @internal */
export interface Router {
  /** Routes one compiled statement. */
  readonly route: (facts: Statement.Facts) => Effect.Effect<any, SqlError>
  /** The routing `Connection`, lent to every statement outside a transaction. */
  readonly connection: Connection.Connection
  /** The primary for a write, or the split brain that forbids one. */
  readonly primaryForWrite: Effect.Effect<import("../../Node.js").Node, SqlError>
}

/**
 * The statement router.
 * @internal
 */
export const makeRouter = (
  state: RouterState,
  classifier: Classifier.Classifier,
  options: {
    readonly writeTimeout?: Duration.Input | undefined
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

  const routed = (sql: string, params: ReadonlyArray<unknown>, op: Statement.Op, rows: Statement.Rows) =>
    Effect.withFiber<any, SqlError>((fiber) => route(Statement.make(fiber, sql, params, op, rows)))

  const routeStream = (sql: string, params: ReadonlyArray<unknown>, rows: Statement.Rows): Stream.Stream<any, SqlError> =>
    Stream.unwrap(Effect.withFiber((fiber) =>
      classifier.classify(sql) === "write"
        ? Effect.map(primaryForWrite, (primary) => {
          count(fiber, primary, "write")
          return NodeInternal.stream(primary, sql, params, rows)
        })
        : Effect.map(
          Effect.acquireRelease(
            Effect.mapError(Routing.chooseRead(state), Statement.asSqlError),
            (chosen) => Option.isSome(chosen) ? Routing.releaseReplica(chosen.value) : Effect.void
          ),
          (chosen) => {
            const node = Option.isSome(chosen) ? chosen.value.node : Routing.peek(topology.primary)
            count(fiber, node, "read")
            return NodeInternal.stream(node, sql, params, rows)
          }
        )
    ))

  const connection: Connection.Connection = {
    execute: (sql, params, rows) => routed(sql, params, "execute", rows),
    executeUnprepared: (sql, params, rows) => routed(sql, params, "executeUnprepared", rows),
    executeRaw: (sql, params) => routed(sql, params, "executeRaw", undefined),
    executeValues: (sql, params) => routed(sql, params, "executeValues", undefined),
    executeValuesUnprepared: (sql, params) => routed(sql, params, "executeValuesUnprepared", undefined),
    executeStream: routeStream
  }
  return { route, connection, primaryForWrite }
}
