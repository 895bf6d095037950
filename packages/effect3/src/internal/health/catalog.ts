/** @internal */
import * as Effect from "effect/Effect"
import * as Catalog from "@effect-sql-router/core/Catalog"

// The catalog's questions (SQL text and row decoders) live in the core; here
// they run. Callers pass a `Query` (first row of one statement) so that where
// the statement runs (a pool checkout, a probe with a timeout) stays theirs.

export { address, identitySql, promoteSql, volatileFunctionsSql } from "@effect-sql-router/core/Catalog"
export type { NodeRole, PrimaryReport, Receiver, StandbyReport, StandbyState } from "@effect-sql-router/core/Catalog"
export { formatLsn, parseLsn } from "@effect-sql-router/core/Lsn"

/** Runs one statement and gives its first row. @internal */
export type Query = <A>(sql: string) => Effect.Effect<A, unknown>

/** Asks one catalog question. @internal */
export const ask = <A>(query: Query, question: Catalog.Question<A>): Effect.Effect<A, unknown> =>
  Effect.map(query<unknown>(question.sql), question.decode)

/** @internal */
export const role = (query: Query) => ask(query, Catalog.role)

/** The primary's role and its report of every standby streaming from it, in one statement. @internal */
export const primaryReport = (query: Query) => ask(query, Catalog.primaryReport)

/** @internal */
export const standbyState = (query: Query) => ask(query, Catalog.standbyState)

/** The primary's WAL position now. @internal */
export const currentLsn = (query: Query) => ask(query, Catalog.currentLsn)

/** A standby's replay position now. @internal */
export const replayLsn = (query: Query) => ask(query, Catalog.replayLsn)
