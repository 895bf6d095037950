/** @internal */
import type * as Fiber from "effect/Fiber"
import * as Effect from "effect/Effect"
import { SqlError, UnknownError } from "effect/sql/SqlError"
import type * as Node from "../../Node.js"
import * as NodeInternal from "../node.js"

// What a routed statement is: its facts, made once per statement and handed
// whole from the routing connection to the node that answers.

/** @internal */
export type Rows = NodeInternal.Rows

/** What a statement is asked for: `effect/sql`'s connection operations. @internal */
export type Op = "execute" | "executeValues" | "executeValuesUnprepared" | "executeRaw" | "executeUnprepared"

/**
 * One statement's facts, allocated once per statement: every step of its
 * routing (write, read, hedge, safety net) takes this record, not its parts.
 * @internal
 */
export interface Facts {
  /** The fiber the statement runs in: its route, session and staleness bound. */
  readonly fiber: Fiber.Fiber<unknown, unknown>
  readonly sql: string
  readonly params: ReadonlyArray<unknown>
  readonly op: Op
  readonly rows: Rows
  /** Whether the safety net may still run the read once more elsewhere: spent by the first retry. */
  retry: boolean
}

/** @internal */
export const make = (
  fiber: Fiber.Fiber<unknown, unknown>,
  sql: string,
  params: ReadonlyArray<unknown>,
  op: Op,
  rows: Rows
): Facts => ({ fiber, sql, params, op, rows, retry: true })

/** Statements fail with SqlError; the router's reason travels as its cause. @internal */
export const asSqlError = (error: { readonly message: string }): SqlError =>
  new SqlError({ reason: new UnknownError({ cause: error, message: error.message }) })

/** The statement on `node`, as its operation asks. @internal */
export const run = (facts: Facts, node: Node.Node): Effect.Effect<any, SqlError> => {
  switch (facts.op) {
    case "execute":
      return NodeInternal.query(node, facts.sql, facts.params, facts.rows)
    case "executeRaw":
      return NodeInternal.queryRaw(node, facts.sql, facts.params)
    case "executeValues":
      return NodeInternal.queryValues(node, facts.sql, facts.params)
    case "executeValuesUnprepared":
      return NodeInternal.queryValues(node, facts.sql, facts.params, false)
    case "executeUnprepared":
      return NodeInternal.queryUnprepared(node, facts.sql, facts.params, facts.rows)
  }
}
