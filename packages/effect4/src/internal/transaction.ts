/** @internal */
import * as SqlClient from "@effect/sql/SqlClient"
import type * as Connection from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import { CommitFailed } from "../RouterError.js"
import { describe, errorCode } from "./errors.js"

// Transactions use @effect/sql's own TransactionConnection tag, so every
// statement of any client inside them (a node's PgClient, the routed client,
// a nested `sql.withTransaction`) runs on the pinned connection, and nesting
// uses the same savepoint names as the stock implementation.

/** Connections pinned by read-only transactions: a write transaction must not nest into them. */
const readOnlyConnections = new WeakSet<Connection.Connection>()

/** @internal */
export interface Options {
  /** The node a connection of this transaction is on (for the span and `CommitFailed`). */
  readonly node: (connection: Connection.Connection) => string
  /** Evaluated when the transaction starts: a node's role can change (failover). */
  readonly readOnly: boolean | (() => boolean)
  readonly reserve: Effect.Effect<Connection.Connection, SqlError, Scope.Scope>
  /**
   * Replaces the plain COMMIT, e.g. to capture the commit's LSN in the same
   * round trip. It must fail exactly when the COMMIT fails.
   */
  readonly commit?: ((connection: Connection.Connection) => Effect.Effect<void, SqlError>) | undefined
}

const exec = (connection: Connection.Connection, sql: string) =>
  Effect.asVoid(connection.executeUnprepared(sql, [], undefined))

/**
 * BEGIN … COMMIT on one pinned connection. Failure, defect or interruption
 * rolls back; nested calls use savepoints; a refused COMMIT is a typed
 * `CommitFailed`, not a defect.
 * @internal
 */
export const make = (options: Options) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError | CommitFailed, R> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.useSpan("sql.transaction", { kind: "client", captureStackTrace: false }, (span) =>
      Effect.withFiberRuntime<A, E | SqlError | CommitFailed, R>((fiber) => {
        const context = fiber.currentContext
        const current = Context.getOption(context, SqlClient.TransactionConnection)
        const readOnly = typeof options.readOnly === "function" ? options.readOnly() : options.readOnly
        span.attribute("effect_sql_router.read_only", readOnly)
        const within = (connection: Connection.Connection, depth: number) =>
          Effect.locally(
            restore(effect),
            FiberRef.currentContext,
            Context.add(context, SqlClient.TransactionConnection, [connection, depth]).pipe(
              Context.add(Tracer.ParentSpan, span)
            )
          )

        // Nest into the current transaction unless a write would land in a read-only one.
        if (current._tag === "Some" && (readOnly || !readOnlyConnections.has(current.value[0]))) {
          const [connection, depth] = current.value
          const id = depth + 1
          span.attribute("effect_sql_router.node", options.node(connection))
          return exec(connection, `SAVEPOINT effect_sql_${id}`).pipe(
            Effect.zipRight(Effect.exit(within(connection, id))),
            Effect.flatMap((exit) =>
              Exit.isSuccess(exit)
                ? exit
                : Effect.zipRight(Effect.orDie(exec(connection, `ROLLBACK TO SAVEPOINT effect_sql_${id}`)), exit)
            )
          )
        }

        return Effect.flatMap(Scope.make(), (scope) =>
          Effect.gen(function*() {
            const connection = yield* Scope.extend(options.reserve, scope)
            span.attribute("effect_sql_router.node", options.node(connection))
            if (readOnly) readOnlyConnections.add(connection)
            yield* exec(connection, readOnly ? "BEGIN READ ONLY" : "BEGIN")
            const exit = yield* Effect.exit(within(connection, 0))
            if (Exit.isFailure(exit)) {
              // The body's failure is the news; a failed ROLLBACK only means the
              // connection is broken, and the pool discards broken connections.
              yield* Effect.ignore(exec(connection, "ROLLBACK"))
              return yield* exit
            }
            const committed = yield* Effect.either(
              options.commit ? options.commit(connection) : exec(connection, "COMMIT")
            )
            if (committed._tag === "Left") {
              yield* Effect.ignore(exec(connection, "ROLLBACK"))
              return yield* new CommitFailed({
                node: options.node(connection),
                reason: describe(committed.left),
                cause: committed.left,
                ...(errorCode(committed.left) ? { sqlState: errorCode(committed.left)! } : {})
              })
            }
            return exit.value
          }).pipe(Effect.onExit((exit) => Scope.close(scope, exit)))
        )
      })
    )
  )

/** The same, with a refused COMMIT as `SqlError`, to fit `SqlClient.withTransaction`. @internal */
export const asSqlClientTransaction = (options: Options) => {
  const transaction = make(options)
  return <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
    Effect.catchIf(
      transaction(effect),
      (error): error is CommitFailed => error instanceof CommitFailed,
      (error) => Effect.fail(new SqlError({ cause: error, message: error.message }))
    )
}
