/** @internal */
import * as SqlClient from "@effect/sql/SqlClient"
import type * as Connection from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import * as SqlStatement from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import type * as Classifier from "../../Classifier.js"
import * as Consistency from "../consistency.js"
import type { Router } from "./execution.js"
import * as Statement from "./statement.js"
import { isTracing } from "./tracing.js"

// How routed statements plug into @effect/sql: a statement class whose every
// execution takes the fast path (compile, classify, `Router.route`), and the
// compiler that puts a statement's intent on the general path's span.

/**
 * Classifies at compile time too, so that the general path's `sql.execute`
 * span carries the statement's intent: @effect/sql reads a client's span
 * attributes right after compiling, in the same synchronous step, and we fill
 * the slot in between.
 * @internal
 */
export const intentCompiler = (
  base: SqlStatement.Compiler,
  classifier: Classifier.Classifier,
  slot: [string, unknown]
): SqlStatement.Compiler => {
  const wrap = (compiler: SqlStatement.Compiler): SqlStatement.Compiler => {
    const wrapped: SqlStatement.Compiler = {
      dialect: compiler.dialect,
      compile: (statement, withoutTransform) => {
        const compiled = compiler.compile(statement, withoutTransform)
        slot[1] = classifier.classify(compiled[0])
        return compiled
      },
      get withoutTransform() {
        return wrap(compiler.withoutTransform)
      }
    }
    return wrapped
  }
  return wrap(base)
}

/** @internal */
export type AnyStatement = SqlStatement.Statement<any> & {
  readonly segments: ReadonlyArray<SqlStatement.Segment>
  readonly acquirer: unknown
  readonly compiler: SqlStatement.Compiler
  readonly spanAttributes: ReadonlyArray<readonly [string, unknown]>
  readonly transformRows: Statement.Rows | undefined
}

/** @internal */
export interface StatementClass {
  new(
    segments: ReadonlyArray<SqlStatement.Segment>,
    acquirer: unknown,
    compiler: SqlStatement.Compiler,
    spanAttributes: ReadonlyArray<readonly [string, unknown]>,
    transformRows: Statement.Rows | undefined
  ): AnyStatement
}

/** What the fast path of a client's statements needs. @internal */
export interface FastPath {
  readonly router: Router
  readonly classifier: Classifier.Classifier
  /** The attributes of a statement's span, besides the router's. */
  readonly spanAttributes: ReadonlyArray<readonly [string, unknown]>
  /** Each transaction's own node, by its connection: fibers never share it. */
  readonly nodeOfConnection: WeakMap<Connection.Connection, string>
}

/**
 * A statement class whose every execution takes the fast path. It extends
 * @effect/sql's own statement class (taken from a statement it made), so
 * compile, toJSON, fragments and `.stream` behave exactly as upstream.
 * @internal
 */
export const makeStatementClass = (sample: AnyStatement, fast: FastPath): StatementClass => {
  const { classifier, nodeOfConnection, router, spanAttributes } = fast
  const Base = sample.constructor as new(...args: Array<any>) => any
  // A schema change inside a transaction raises the DDL barrier at its COMMIT.
  const inTransaction = (
    connection: Connection.Connection,
    sql: string,
    params: ReadonlyArray<unknown>,
    op: Statement.Op,
    rows: Statement.Rows | undefined
  ) => {
    if (classifier.kind(sql) === "schema-change") Consistency.markSchemaChange(connection)
    return Statement.onConnection(connection, sql, params, op, rows)
  }
  const general = (statement: AnyStatement, op: Statement.Op): Effect.Effect<any, SqlError> => {
    switch (op) {
      case "execute":
        return Base.prototype.commit.call(statement) as Effect.Effect<any, SqlError>
      case "executeValues":
        return Reflect.get(Base.prototype, "values", statement)
      case "executeRaw":
        return Reflect.get(Base.prototype, "raw", statement)
      case "executeUnprepared":
        return Reflect.get(Base.prototype, "unprepared", statement)
      case "executeWithoutTransform":
        return Reflect.get(Base.prototype, "withoutTransform", statement)
    }
  }

  /** With a tracer listening: the statement in its `sql.execute` span, which names its intent and node. */
  const traced = (
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    statement: AnyStatement,
    op: Statement.Op,
    transaction: readonly [Connection.Connection, number] | undefined
  ): Effect.Effect<any, SqlError> =>
    Effect.useSpan("sql.execute", { kind: "client", captureStackTrace: false }, (span) => {
      const [sql, params] = statement.compile(op === "executeRaw" || op === "executeWithoutTransform")
      for (const [key, value] of spanAttributes) span.attribute(key, value)
      span.attribute("db.operation.name", op)
      span.attribute("db.query.text", sql)
      if (transaction !== undefined) {
        span.attribute("effect_sql_router.intent", "transaction")
        const node = nodeOfConnection.get(transaction[0])
        if (node !== undefined) span.attribute("effect_sql_router.node", node)
        return inTransaction(transaction[0], sql, params, op, statement.transformRows)
      }
      span.attribute("effect_sql_router.intent", classifier.classify(sql))
      return router.route(Statement.make(fiber, sql, params, op, statement.transformRows, span))
    })

  // No closure in `run`'s callback: its variables need no context allocated per statement.
  const run = (statement: AnyStatement, op: Statement.Op): Effect.Effect<any, SqlError> =>
    Effect.withFiberRuntime<any, SqlError>((fiber) => {
      // A statement transformer rewrites statements with @effect/sql's machinery: let it.
      if (fiber.getFiberRef(SqlStatement.currentTransformer)._tag === "Some") return general(statement, op)
      const transaction = fiber.currentContext.unsafeMap.get(SqlClient.TransactionConnection.key) as
        | readonly [Connection.Connection, number]
        | undefined
      if (isTracing(fiber)) return traced(fiber, statement, op, transaction)
      const [sql, params] = statement.compile(op === "executeRaw" || op === "executeWithoutTransform")
      return transaction !== undefined
        ? inTransaction(transaction[0], sql, params, op, statement.transformRows)
        : router.route(Statement.make(fiber, sql, params, op, statement.transformRows, undefined))
    })

  class RoutedStatement extends Base {
    commit(): Effect.Effect<any, SqlError> {
      return run(this as unknown as AnyStatement, "execute")
    }
    get values(): Effect.Effect<any, SqlError> {
      return run(this as unknown as AnyStatement, "executeValues")
    }
    get raw(): Effect.Effect<any, SqlError> {
      return run(this as unknown as AnyStatement, "executeRaw")
    }
    get unprepared(): Effect.Effect<any, SqlError> {
      return run(this as unknown as AnyStatement, "executeUnprepared")
    }
    get withoutTransform(): Effect.Effect<any, SqlError> {
      return run(this as unknown as AnyStatement, "executeWithoutTransform")
    }
  }
  return RoutedStatement as unknown as StatementClass
}

/**
 * A statement constructor (`sql`…``, `sql.unsafe`, helpers) over @effect/sql's
 * own, whose statements take the fast path.
 * @internal
 */
export const routedConstructor = (base: SqlStatement.Constructor, Routed: StatementClass): SqlStatement.Constructor => {
  const wrap = (s: AnyStatement) => new Routed(s.segments, s.acquirer, s.compiler, s.spanAttributes, s.transformRows)
  const sql = function(strings: unknown, ...args: Array<any>): any {
    const made = (base as any)(strings, ...args)
    return Array.isArray(strings) && "raw" in strings ? wrap(made) : made
  }
  return Object.assign(sql, base, {
    unsafe: (text: string, params?: ReadonlyArray<unknown>) => wrap(base.unsafe(text, params) as AnyStatement)
  }) as unknown as SqlStatement.Constructor
}

/**
 * The fast path as a client maker takes it (`ClientSpec.statements`): over
 * each @effect/sql constructor the maker builds, one whose statements take it.
 * @internal
 */
export const fastStatements = (fast: FastPath) => (general: SqlStatement.Constructor): SqlStatement.Constructor =>
  routedConstructor(general, makeStatementClass(general`SELECT 1` as AnyStatement, fast))
