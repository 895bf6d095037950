/** @internal */
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as Duration from "effect/Duration"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Reactivity from "effect/reactivity/Reactivity"
import type * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import type * as Connection from "effect/sql/SqlConnection"
import { SqlError, UnknownError } from "effect/sql/SqlError"
import type * as SqlStatement from "effect/sql/Statement"
import * as Classifier from "../Classifier.js"
import type * as Node from "../Node.js"
import { CommitFailed } from "../RouterError.js"
import * as Catalog from "@effect-sql-router/core/Catalog"
import * as Consistency from "./consistency.js"
import { describe, errorCode } from "./errors.js"
import * as Membership from "./health/membership.js"
import * as NodeInternal from "./node.js"
import type { ClientOptions, RouterState } from "./routerState.js"
import * as Routing from "./routing/decision.js"
import { makeRouter } from "./routedClient/execution.js"
import * as Statement from "./routedClient/statement.js"
import { annotate, annotateSpan } from "./routedClient/tracing.js"
import { afterWriteOn } from "./routedClient/writes.js"
import * as Tracer from "effect/Tracer"

// The routed client is `effect/sql`'s own client (`SqlClient.make`) over the
// router: every statement outside a transaction borrows the routing
// `Connection`, whose operations classify the statement (cached), pick its
// node (at most one transactional step, pick and in-flight together) and run
// it on that node's pool, pipelined when the node multiplexes. Transactions
// take a reserved session on the primary. No statement prototype is touched.
//
// Its parts, under ./routedClient/: `statement` (a statement's facts),
// `execution` with `writes`, `reads` and `hedging` (where it runs and the
// safety net) and `tracing` (metrics and span facts). This module makes the
// two kinds of client from them: the routed one and a node's (regions).

/** The options of `RoutedClient.make`. @internal */
export interface Options extends ClientOptions {
  readonly writeTimeout?: Duration.Input | undefined
}

/**
 * Classifies at compile time too, so that the statement's `sql.execute` span
 * carries its intent: `effect/sql` reads a client's span attributes right
 * after compiling, in the same synchronous step, and we fill the slot in
 * between.
 * @internal
 */
export const intentCompiler = (
  base: SqlStatement.Compiler,
  classifier: Classifier.Classifier,
  slot: [string, unknown]
): SqlStatement.Compiler => {
  const wrap = (compiler: SqlStatement.Compiler): SqlStatement.Compiler => {
    const wrapped: SqlStatement.Compiler = Object.assign(Object.create(compiler) as SqlStatement.Compiler, {
      compile: (statement: SqlStatement.Fragment, withoutTransform: boolean, placeholderOverride?: any) => {
        const compiled = (compiler.compile as any)(statement, withoutTransform, placeholderOverride)
        slot[1] = classifier.classify(compiled[0])
        return compiled
      }
    })
    Object.defineProperty(wrapped, "withoutTransform", { get: () => wrap(compiler.withoutTransform) })
    return wrapped
  }
  return wrap(base)
}

/**
 * A transaction's session, as `effect/sql` sees it: its statements run on it
 * as they are; a schema change among them raises the DDL barrier at COMMIT.
 */
class TransactionConnection implements Connection.Connection {
  constructor(
    readonly inner: Connection.Connection,
    readonly node: Node.Node,
    readonly classifier: Classifier.Classifier | undefined
  ) {}
  /** The statement's span (with propagation on) names the node; a schema change marks the transaction. */
  private around<A>(sql: string, statement: Effect.Effect<A, SqlError>): Effect.Effect<A, SqlError> {
    if (this.classifier !== undefined && this.classifier.kind(sql) === "schema-change") {
      Consistency.markSchemaChange(this)
    }
    return Effect.withFiber((fiber) => {
      annotate(fiber, this.node)
      return statement
    })
  }
  execute(sql: string, params: ReadonlyArray<unknown>, rows: Statement.Rows) {
    return this.around(sql, this.inner.execute(sql, params, rows))
  }
  executeRaw(sql: string, params: ReadonlyArray<unknown>) {
    return this.around(sql, this.inner.executeRaw(sql, params))
  }
  executeValues(sql: string, params: ReadonlyArray<unknown>) {
    return this.around(sql, this.inner.executeValues(sql, params))
  }
  executeValuesUnprepared(sql: string, params: ReadonlyArray<unknown>) {
    return this.around(sql, this.inner.executeValuesUnprepared(sql, params))
  }
  executeUnprepared(sql: string, params: ReadonlyArray<unknown>, rows: Statement.Rows) {
    return this.around(sql, this.inner.executeUnprepared(sql, params, rows))
  }
  executeStream(sql: string, params: ReadonlyArray<unknown>, rows: Statement.Rows) {
    if (this.classifier !== undefined && this.classifier.kind(sql) === "schema-change") {
      Consistency.markSchemaChange(this)
    }
    return this.inner.executeStream(sql, params, rows)
  }
}

/** The node a transaction's connection is on. @internal */
export const nodeOfTransaction = (connection: Connection.Connection): Node.Node | undefined =>
  connection instanceof TransactionConnection ? connection.node : undefined

/**
 * A reserved session on `node` for a transaction (or `reserve`). `effect/sql`
 * acquires it under the transaction's span, which is told the node.
 */
const reserveOn = (node: Node.Node, classifier: Classifier.Classifier | undefined) =>
  Effect.withFiber((fiber) => {
    annotateSpan(Context.getOrUndefined(fiber.context, Tracer.ParentSpan), node)
    const own = NodeInternal.internalsOf(node)
    return Effect.map(
      own.pool.reserve,
      (session) => new TransactionConnection(NodeInternal.connectionOf(session, own.prepare), node, classifier)
    )
  })

/**
 * A refused COMMIT as `effect/sql` reports it (SqlError), with the router's
 * typed `CommitFailed` as its cause: `SqlRouter.transaction` fails with that.
 * @internal
 */
export const commitFailed = (connection: Connection.Connection, error: SqlError): SqlError => {
  const code = errorCode(error)
  const failed = new CommitFailed({
    node: nodeOfTransaction(connection)?.id ?? "primary",
    reason: describe(error),
    cause: error,
    ...(code !== undefined ? { sqlState: code } : {})
  })
  return new SqlError({ reason: new UnknownError({ cause: failed, message: failed.message, operation: "commit" }) })
}

/** The typed `CommitFailed` inside a SqlError made by `commitFailed`, if it is one. @internal */
export const commitFailure = (error: unknown): CommitFailed | undefined => {
  const cause = (error as SqlError | undefined)?.reason?.cause
  return cause instanceof CommitFailed ? cause : undefined
}

const withCommitFailed = (commit: (connection: Connection.Connection) => Effect.Effect<void, SqlError>) =>
(connection: Connection.Connection): Effect.Effect<void, SqlError> =>
  Effect.mapError(commit(connection), (error) => commitFailure(error) ? error : commitFailed(connection, error))

/**
 * One transaction service per router, shared by the routed client and every
 * region client: a statement of the routed client inside a region's
 * transaction (`SqlRouter.transaction`, `readTransaction`) runs in that
 * transaction, on its connection, as `@effect/sql`'s one transaction tag
 * made it in the Effect 3 line.
 */
let routers = 0
const transactionServices = new WeakMap<
  RouterState,
  Context.Service<SqlClient.TransactionConnection, SqlClient.TransactionConnection.Service>
>()
const transactionServiceOf = (state: RouterState) => {
  let service = transactionServices.get(state)
  if (service === undefined) {
    service = Context.Service<SqlClient.TransactionConnection, SqlClient.TransactionConnection.Service>(
      `effect-sql-router/SqlRouter/TransactionConnection/${routers++}`
    )
    transactionServices.set(state, service)
  }
  return service
}

/** What a client of either kind is made of. */
interface ClientSpec {
  readonly transactionService: Context.Service<SqlClient.TransactionConnection, SqlClient.TransactionConnection.Service>
  readonly reactivity: Reactivity.Reactivity
  readonly connection: Connection.Connection
  readonly reserve: Effect.Effect<Connection.Connection, SqlError, Scope.Scope>
  readonly compiler: SqlStatement.Compiler
  readonly transformRows: Statement.Rows
  readonly spanAttributes: ReadonlyArray<readonly [string, unknown]>
  readonly readOnly: () => boolean
  readonly commit: (connection: Connection.Connection) => Effect.Effect<void, SqlError>
  /** `PgClient`'s own members, read when asked (the primary's may change). */
  readonly pg: () => Node.Node
}

/** The one client maker: the routed client and each node's region client. */
/** A client as `PgClient.make` types it: both services in one. @internal */
export type RoutedPgClient = PgClient.PgClient & SqlClient.SqlClient

const makeClient = (spec: ClientSpec): Effect.Effect<RoutedPgClient> =>
  Effect.map(
    SqlClient.make({
      driver: "pg",
      acquirer: Effect.succeed(spec.connection),
      borrower: (f) => f(spec.connection),
      transactionAcquirer: spec.reserve,
      transactionService: spec.transactionService,
      compiler: spec.compiler,
      transformRows: spec.transformRows,
      spanAttributes: spec.spanAttributes,
      begin: NodeInternal.begin(spec.readOnly),
      commit: withCommitFailed(spec.commit),
      onCommitFailure: NodeInternal.onCommitFailure,
      isTransaction: (connection) =>
        NodeInternal.isTransaction(connection instanceof TransactionConnection ? connection.inner : connection),
      releaseSavepoint: (name) => `RELEASE SAVEPOINT ${name}`
    }).pipe(Effect.provideService(Reactivity.Reactivity, spec.reactivity)),
    (client) => {
      const pg = {
        [PgClient.TypeId]: PgClient.TypeId,
        json: NodeInternal.json,
        listen: (channel: string) => Effect.suspend(() => spec.pg().client.listen(channel)),
        notify: (channel: string, payload: string) => Effect.suspend(() => spec.pg().client.notify(channel, payload)),
        poolStats: Effect.suspend(() => spec.pg().client.poolStats)
      }
      Object.defineProperty(client, "config", { get: () => spec.pg().client.config, enumerable: true })
      return Object.assign(client, pg) as unknown as RoutedPgClient
    }
  )

/** @internal */
export const make = (
  state: RouterState,
  options: Options = {}
): Effect.Effect<RoutedPgClient, never, Scope.Scope> =>
  Effect.gen(function*() {
    const classifier = Classifier.make({ sideEffectFunctions: state.config.sideEffectFunctions })
    const { topology } = state
    // sideEffectFunctions: "catalog": the user's volatile functions, read at
    // start and after each routed schema change. A failed read keeps the list.
    const readCatalog = state.config.sideEffectCatalog
      ? Effect.ignore(Effect.flatMap(
        NodeInternal.query(Routing.peek(topology.primary), Catalog.volatileFunctionsSql, [], undefined),
        (rows) => Effect.sync(() => classifier.setDiscoveredFunctions(rows.map((row: { name: string }) => row.name)))
      ))
      : undefined
    if (readCatalog !== undefined) yield* readCatalog
    const router = makeRouter(state, classifier, { writeTimeout: options.writeTimeout, onSchemaChange: readCatalog })
    const intentSlot: [string, unknown] = ["effect_sql_router.intent", "write"]
    const { compiler, transformRows } = NodeInternal.transformsOf(options)
    const reserve = Effect.flatMap(
      Effect.mapError(Membership.primaryForWrite(state), Statement.asSqlError),
      (primary) => reserveOn(primary, classifier)
    )
    return yield* makeClient({
      transactionService: transactionServiceOf(state),
      reactivity: state.reactivity,
      connection: router.connection,
      reserve,
      compiler: intentCompiler(compiler, classifier, intentSlot),
      transformRows,
      spanAttributes: [
        ...Object.entries(options.spanAttributes ?? {}),
        ["db.system.name", "postgresql"],
        ["effect_sql_router.routed", true],
        intentSlot
      ],
      readOnly: () => false,
      commit: Consistency.commitRecording(state),
      pg: () => Routing.peek(topology.primary)
    })
  })

/**
 * A node's own client for regions (`withRead`, `withWrite`, …): every
 * statement runs on this node; transactions on a reserved session of it,
 * `BEGIN READ ONLY` while the node is a replica. A schema change in a
 * primary region raises the DDL barrier too; a write there while it is up
 * moves it.
 * @internal
 */
export const makePinned = (state: RouterState, node: Node.Node): Effect.Effect<RoutedPgClient> => {
  const options = state.clientOptions ?? {}
  const classifier = Classifier.make({ sideEffectFunctions: state.config.sideEffectFunctions })
  const afterWrite = afterWriteOn(state)
  const run = <A>(sql: string, statement: Effect.Effect<A, SqlError>): Effect.Effect<A, SqlError> => {
    if (node.role !== "primary") return statement
    const kind = classifier.kind(sql)
    return kind === "read" ? statement : afterWrite(node, kind === "schema-change", statement)
  }
  const connection: Connection.Connection = {
    execute: (sql, params, rows) => run(sql, NodeInternal.query(node, sql, params, rows)),
    executeUnprepared: (sql, params, rows) => run(sql, NodeInternal.queryUnprepared(node, sql, params, rows)),
    executeRaw: (sql, params) => run(sql, NodeInternal.queryRaw(node, sql, params)),
    executeValues: (sql, params) => run(sql, NodeInternal.queryValues(node, sql, params)),
    executeValuesUnprepared: (sql, params) => run(sql, NodeInternal.queryValues(node, sql, params, false)),
    executeStream: (sql, params, rows) => NodeInternal.stream(node, sql, params, rows)
  }
  const { compiler, transformRows } = NodeInternal.transformsOf(options)
  return makeClient({
    transactionService: transactionServiceOf(state),
    reactivity: state.reactivity,
    connection,
    reserve: reserveOn(node, node.role === "primary" ? classifier : undefined),
    compiler,
    transformRows,
    spanAttributes: [
      ...Object.entries(options.spanAttributes ?? {}),
      ["db.system.name", "postgresql"],
      ["effect_sql_router.node", node.id]
    ],
    readOnly: () => node.role === "replica",
    commit: (connection) =>
      node.role === "primary" ? Consistency.commitRecording(state)(connection) : NodeInternal.commit(connection),
    pg: () => node
  })
}

