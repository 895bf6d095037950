/** @internal */
import type * as Connection from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import type * as Tracer from "effect/Tracer"
import type Pg from "pg"
import * as NodeInternal from "../node.js"

// What a routed statement is: its facts, made once per statement and handed
// whole from the client's statement to the node that answers, and how its
// result becomes what @effect/sql's operation returns.

/** @internal */
export type Rows = <A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>

/** What a statement is asked for: @effect/sql's operation names, as on its spans. @internal */
export type Op = "execute" | "executeValues" | "executeRaw" | "executeUnprepared" | "executeWithoutTransform"

/**
 * One statement's facts, allocated once per statement: every step of its
 * routing (write, read, hedge, safety net) takes this record, not its parts.
 * @internal
 */
export interface Facts {
  /** The fiber the statement runs in: its route, session and staleness bound, and who waits. */
  readonly fiber: Fiber.RuntimeFiber<unknown, unknown>
  readonly sql: string
  readonly params: ReadonlyArray<unknown>
  readonly op: Op
  readonly rows: Rows | undefined
  /** The statement's span, only when a tracer listens. */
  readonly span: Tracer.Span | undefined
  /** Whether the safety net may still run the read once more elsewhere: spent by the first retry. */
  retry: boolean
}

/** @internal */
export const make = (
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  sql: string,
  params: ReadonlyArray<unknown>,
  op: Op,
  rows: Rows | undefined,
  span: Tracer.Span | undefined
): Facts => ({ fiber, sql, params, op, rows, span, retry: true })

/** Statements fail with SqlError; the router's reason travels as its cause. @internal */
export const asSqlError = (error: { readonly message: string }) => new SqlError({ cause: error, message: error.message })

/** Starts the statement on a pool (see `NodeInternal.start`). @internal */
export const start = (
  facts: Facts,
  pool: Pg.Pool,
  done: NodeInternal.Done
): NodeInternal.Running => NodeInternal.start(pool, facts.sql, facts.params, facts.op === "executeValues", done)

/** The driver's result as the statement's operation returns it. @internal */
export const finish = (facts: Facts, result: Pg.QueryResult): Effect.Effect<any> => {
  switch (facts.op) {
    case "executeRaw":
      return Effect.succeed(result)
    case "executeValues":
      return Effect.succeed(result.rows)
    case "executeWithoutTransform":
      return Effect.succeed(NodeInternal.rowsOf(result))
    default: {
      // A transform that throws is a defect of the fiber, not of the driver's callback.
      const rows = facts.rows
      return rows === undefined ? Effect.succeed(NodeInternal.rowsOf(result)) : Effect.sync(() => rows(NodeInternal.rowsOf(result)))
    }
  }
}

/** The statement on a given connection (a transaction's): @effect/sql's own operation. @internal */
export const onConnection = (
  connection: Connection.Connection,
  sql: string,
  params: ReadonlyArray<unknown>,
  op: Op,
  rows: Rows | undefined
): Effect.Effect<any, SqlError> => {
  switch (op) {
    case "executeRaw":
      return connection.executeRaw(sql, params)
    case "executeValues":
      return connection.executeValues(sql, params)
    case "executeUnprepared":
      return connection.executeUnprepared(sql, params, rows)
    case "executeWithoutTransform":
      return connection.execute(sql, params, undefined)
    default:
      return connection.execute(sql, params, rows)
  }
}
