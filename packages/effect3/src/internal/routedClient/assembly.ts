/** @internal */
import type * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as Connection from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import * as SqlStatement from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as ReactivityService from "@effect/experimental/Reactivity"
import * as Transaction from "../transaction.js"
import type * as Statement from "./statement.js"

// The one maker of the router's clients: the routed client, a node's own
// client, its pinned client (regions) and a lease's client differ only in the
// parameters below.

/** What one kind of client is made of. @internal */
export interface ClientSpec {
  readonly reactivity: Reactivity.Reactivity["Type"]
  /** The general path's connection outside transactions. */
  readonly acquirer: Effect.Effect<Connection.Connection, SqlError>
  /** A dedicated connection: `reserve`, and each transaction's. */
  readonly reserve: Effect.Effect<Connection.Connection, SqlError, Scope.Scope>
  /** The transforming compiler; `withoutTransforms()` uses its `withoutTransform`. */
  readonly compiler: SqlStatement.Compiler
  readonly transformRows: Statement.Rows | undefined
  /** The attributes of @effect/sql's own spans (the general path). */
  readonly spanAttributes: ReadonlyArray<readonly [string, unknown]>
  /** How `withTransaction` runs: the router's one way into transactions (`Transaction.make`), with these options. */
  readonly transactions: Transaction.Options
  /**
   * The statement constructor over @effect/sql's (`Integration.fastStatements`:
   * the fast path); without it, @effect/sql's statements as they are.
   */
  readonly statements?: ((general: SqlStatement.Constructor) => SqlStatement.Constructor) | undefined
  /** `PgClient`'s own members (`config`, `json`, `listen`, `notify`); without them the client is a plain `SqlClient`. */
  readonly pg?: PropertyDescriptorMap | undefined
}

/** The transforms of `PgClient`'s options: the compiler and the row transform. @internal */
export const transformsOf = (options: {
  readonly transformResultNames?: ((s: string) => string) | undefined
  readonly transformQueryNames?: ((s: string) => string) | undefined
  readonly transformJson?: boolean | undefined
}): { readonly compiler: SqlStatement.Compiler; readonly transformRows: Statement.Rows | undefined } => ({
  compiler: PgClient.makeCompiler(options.transformQueryNames, options.transformJson),
  transformRows: options.transformResultNames
    ? SqlStatement.defaultTransforms(options.transformResultNames, options.transformJson).array
    : undefined
})

/** A property as `Object.assign` would make it. @internal */
export const field = (value: unknown): PropertyDescriptor => ({ value, enumerable: true, writable: true, configurable: true })

/** A property read when asked. @internal */
export const getter = (get: () => unknown): PropertyDescriptor => ({ get, enumerable: true, configurable: true })

/** A copy of @effect/sql's statement constructor, to hold a client's members without touching the original. */
const copyConstructor = (base: SqlStatement.Constructor): SqlStatement.Constructor =>
  Object.assign(function(this: unknown, ...args: Array<any>) {
    return (base as any)(...args)
  }, base) as unknown as SqlStatement.Constructor

/**
 * A client of the given kind, and its twin without transforms.
 * `SqlClient.make` only reads the Reactivity service: it runs synchronously.
 * @internal
 */
export const makeClient = (spec: ClientSpec): PgClient.PgClient => {
  const withTransaction = Transaction.asSqlClientTransaction(spec.transactions)
  const build = (compiler: SqlStatement.Compiler, transformRows: Statement.Rows | undefined) => {
    const general = Effect.runSync(
      SqlClient.make({
        acquirer: spec.acquirer,
        transactionAcquirer: spec.reserve,
        compiler,
        spanAttributes: spec.spanAttributes,
        transformRows
      }).pipe(Effect.provideService(ReactivityService.Reactivity, spec.reactivity))
    )
    const statements = spec.statements === undefined ? copyConstructor(general) : spec.statements(general)
    const client = Object.assign(statements, {
      [SqlClient.TypeId]: SqlClient.TypeId,
      withTransaction,
      reserve: spec.reserve,
      reactive: general.reactive,
      reactiveMailbox: general.reactiveMailbox
    })
    if (spec.pg !== undefined) {
      Object.defineProperties(client, { [PgClient.TypeId]: field(PgClient.TypeId), ...spec.pg })
    }
    Object.defineProperties(client, { safe: field(client), withoutTransforms: field(() => plain) })
    return client as unknown as PgClient.PgClient
  }
  // withoutTransforms(): neither the query-name nor the result-name transform.
  const plain: PgClient.PgClient = build(spec.compiler.withoutTransform, undefined)
  return build(spec.compiler, spec.transformRows)
}
