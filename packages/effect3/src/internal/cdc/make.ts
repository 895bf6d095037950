/** @internal */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type {
  Cdc,
  CdcError,
  Change,
  Options,
  Primary,
  Relation,
  Row,
  RowChange,
  Rule,
  Stats,
  StreamOptions,
  SyncResult,
  Target,
  Transaction
} from "../../Cdc.js"
import { InvalidRule, ReplicationError, UnknownRule } from "../../Cdc.js"
import * as SqlRouterInternal from "../sqlRouter.js"
import { checkRelation } from "./apply.js"
import type * as Pgoutput from "@effect-sql-router/core/cdc/Pgoutput"
import * as Replication from "./replication.js"
import type { TableInfo } from "./replication.js"
import * as CdcSchema from "./schema.js"
import { describe } from "../errors.js"

const defaultApplicationName = "effect-sql-router-cdc"

const resolvePrimary = (primary: Primary): Effect.Effect<Redacted.Redacted<string>> =>
  Redacted.isRedacted(primary) ? Effect.succeed(primary) : primary

/** @internal */
export const primaryFromRouter = Effect.flatMap(SqlRouterInternal.tag, (router) => Effect.map(router.primary, (node) => node.url))

// -----------------------------------------------------------------------------
// pgoutput messages → changes
// -----------------------------------------------------------------------------

const toRelation = (message: Pgoutput.RelationMessage): Relation => ({
  oid: message.relationOid,
  schema: message.schema,
  table: message.name,
  replicaIdentity: message.replicaIdentity,
  keyColumns: message.keyColumns,
  columns: message.columns.map((c) => ({
    name: c.name,
    typeOid: c.typeOid,
    typeName: c.typeName,
    typeMod: c.typeMod,
    isKey: (c.flags & 1) === 1
  }))
})

const pick = (row: Row, columns: ReadonlyArray<string>): Row => Object.fromEntries(columns.map((c) => [c, row[c]]))

// pgoutput's commit time, in microseconds since the Unix epoch.
const toDate = (micros: bigint): Date => new Date(Number(micros / 1000n))

/**
 * Turns protocol messages into changes. Relations are described once per
 * session and kept here (`Relation` objects are shared by every change of
 * the table until its definition changes).
 * @internal
 */
export const makeDecoder = () => {
  const relations = new Map<number, Relation>()
  let xid = 0
  const relationOf = (message: Pgoutput.RelationMessage): Relation => {
    const known = relations.get(message.relationOid)
    if (known) return known
    const relation = toRelation(message)
    relations.set(message.relationOid, relation)
    return relation
  }
  return {
    /** A new or changed table definition, to check before its rows are applied. */
    relation: (message: Pgoutput.RelationMessage): Relation => {
      const relation = toRelation(message)
      relations.set(message.relationOid, relation)
      return relation
    },
    decode: (lsn: bigint, message: Pgoutput.Message): Change | undefined => {
      const at = Replication.formatLsn(lsn)
      switch (message.tag) {
        case "begin":
          xid = message.xid
          return { _tag: "Begin", xid, lsn: Replication.formatLsn(message.finalLsn), commitTime: toDate(message.commitTime) }
        case "commit":
          return {
            _tag: "Commit",
            xid,
            lsn: Replication.formatLsn(message.commitLsn),
            endLsn: Replication.formatLsn(message.endLsn),
            commitTime: toDate(message.commitTime)
          }
        case "insert":
          return { _tag: "Insert", xid, lsn: at, relation: relationOf(message.relation), row: message.new }
        case "update": {
          const relation = relationOf(message.relation)
          const key = message.key ?? (message.old ? pick(message.old, relation.keyColumns) : pick(message.new, relation.keyColumns))
          return { _tag: "Update", xid, lsn: at, relation, row: message.new, key: message.old ?? key, old: message.old ?? undefined }
        }
        case "delete": {
          const relation = relationOf(message.relation)
          const key = message.key ?? message.old ?? {}
          return { _tag: "Delete", xid, lsn: at, relation, key, old: message.old ?? undefined }
        }
        case "truncate":
          return {
            _tag: "Truncate",
            xid,
            lsn: at,
            relations: message.relations.map(relationOf),
            cascade: message.cascade,
            restartIdentity: message.restartIdentity
          }
        default:
          return undefined
      }
    }
  }
}

// -----------------------------------------------------------------------------
// The public change stream
// -----------------------------------------------------------------------------

/** Slot and publication in place: adopted if present, else created. */
const prepareSource = (
  connect: Replication.Connect,
  client: import("pg").Client,
  options: {
    readonly slot: string
    readonly publication: string
    readonly rule: string
    readonly tables: ReadonlyArray<TableInfo> | undefined
    readonly failover: boolean
  }
) =>
  Effect.gen(function*() {
    if (options.tables) yield* Replication.ensurePublication(client, options.publication, options.rule, options.tables)
    const slot = yield* Replication.slotInfo(client, options.slot)
    if (slot) {
      if (slot.plugin !== "pgoutput") {
        return yield* new ReplicationError({ operation: "slot", reason: `slot ${options.slot} is not a pgoutput logical slot` })
      }
      return Replication.parseLsn(slot.confirmed ?? "0/0")
    }
    const created = yield* Replication.createSlot(connect, options.slot, { failover: options.failover, snapshot: undefined })
    return created.consistentPoint
  })

/** @internal */
export const changes = (options: StreamOptions) =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const connect = {
      url: yield* resolvePrimary(options.primary),
      applicationName: options.applicationName ?? defaultApplicationName
    }
    const client = yield* Replication.control(connect)
    // The raw stream carries any type (unsupported ones as the server's text).
    const tables = options.tables ? yield* Replication.describeTables(client, options.tables, { checkTypes: false }) : undefined
    const startLsn = yield* prepareSource(connect, client, {
      slot: options.slot,
      publication: options.publication,
      rule: options.slot,
      tables,
      failover: options.failover ?? false
    })
    const session = yield* Replication.startSession(connect, {
      slot: options.slot,
      publication: options.publication,
      startLsn,
      statusInterval: Duration.toMillis(options.statusInterval ?? "1 second")
    })
    const decoder = makeDecoder()
    let pendingAck: bigint | undefined
    let inTransaction = false
    const pull: Effect.Effect<Change, ReplicationError> = Effect.gen(function*() {
      if (pendingAck !== undefined) {
        yield* session.acknowledge(pendingAck)
        pendingAck = undefined
      }
      for (;;) {
        const item = yield* session.take
        if (item._tag === "Keepalive") {
          // Everything sent before it was handled: the slot may move on.
          if (!inTransaction) yield* session.acknowledge(item.lsn)
          continue
        }
        if (item.message.tag === "relation") {
          decoder.relation(item.message)
          continue
        }
        const change = decoder.decode(item.lsn, item.message)
        if (!change) continue
        if (change._tag === "Begin") inTransaction = true
        if (change._tag === "Commit") {
          inTransaction = false
          pendingAck = Replication.parseLsn(change.endLsn)
        }
        return change
      }
    })
    return Stream.repeatEffect(pull)
  }))

/** @internal */
export const drop = (options: { readonly primary: Primary; readonly slot: string; readonly publication?: string | undefined }) =>
  Effect.scoped(Effect.gen(function*() {
    const client = yield* Replication.control({ url: yield* resolvePrimary(options.primary), applicationName: defaultApplicationName })
    yield* Replication.dropSlot(client, options.slot)
    if (options.publication) yield* Replication.dropPublication(client, options.publication, options.slot)
  }))

// -----------------------------------------------------------------------------
// Rules
// -----------------------------------------------------------------------------

interface RuleState {
  rule: Rule
  running: boolean
  /** The `run` fiber, so that `removeRule` can stop it. */
  fiber: Fiber.RuntimeFiber<never, CdcError> | undefined
  changesApplied: number
  transactionsApplied: number
  lastAppliedLsn: bigint | undefined
  lastCommitTime: Date | undefined
  applyLagMillis: number | undefined
  retries: number
  errors: number
  restarts: number
  lastError: string | undefined
}

const slotOf = (rule: Rule) => rule.slot ?? `cdc_${rule.name}`
const publicationOf = (rule: Rule) => rule.publication ?? `cdc_${rule.name}`

const decodeRule = Schema.decodeUnknownEither(CdcSchema.Rule, { errors: "first", onExcessProperty: "error" })

const validateRule = (rule: unknown, targets: Readonly<Record<string, Target>>): Either.Either<Rule, InvalidRule> => {
  const name = typeof (rule as { name?: unknown })?.name === "string" ? (rule as { name: string }).name : "(unnamed)"
  const result = decodeRule(rule)
  if (Either.isLeft(result)) {
    const issue = ParseResult.ArrayFormatter.formatErrorSync(result.left)[0]
    return Either.left(
      new InvalidRule({
        name,
        field: issue?.path.map(String).join(".") || "rule",
        reason: issue?._tag === "Unexpected" ? "is not a known option" : issue?.message ?? "is invalid"
      })
    )
  }
  if (!(result.right.target in targets)) {
    return Either.left(new InvalidRule({ name, field: "target", reason: `names no target (known: ${Object.keys(targets).join(", ") || "none"})` }))
  }
  return Either.right(result.right)
}

const isRetriable = (error: CdcError): boolean => error._tag === "ReplicationError" || error._tag === "TargetError"

/** @internal */
export const make = (options: Options): Effect.Effect<Cdc, InvalidRule, Scope.Scope> =>
  Effect.gen(function*() {
    const states = new Map<string, RuleState>()
    const applicationName = options.applicationName ?? defaultApplicationName
    const statusInterval = Duration.toMillis(options.statusInterval ?? "1 second")
    const backoff = Schedule.exponential(options.retryDelay ?? "100 millis").pipe(
      Schedule.union(Schedule.spaced(options.maxRetryDelay ?? "5 seconds"))
    )
    const connectNow = Effect.map(resolvePrimary(options.primary), (url) => ({ url, applicationName }))

    const add = (rule: unknown): Effect.Effect<void, InvalidRule> =>
      Effect.suspend(() => {
        const result = validateRule(rule, options.targets)
        if (Either.isLeft(result)) return Effect.fail(result.left)
        if (states.has(result.right.name)) {
          return Effect.fail(new InvalidRule({ name: result.right.name, field: "name", reason: "is taken by another rule" }))
        }
        states.set(result.right.name, {
          rule: result.right,
          running: false,
          fiber: undefined,
          changesApplied: 0,
          transactionsApplied: 0,
          lastAppliedLsn: undefined,
          lastCommitTime: undefined,
          applyLagMillis: undefined,
          retries: 0,
          errors: 0,
          restarts: 0,
          lastError: undefined
        })
        return Effect.void
      })

    // The seed's enableAutoPersist: every change of the rule set is handed over.
    const persist = Effect.suspend(() =>
      options.persist
        ? options.persist({ rules: Array.from(states.values(), (s) => s.rule) }).pipe(
          Effect.catchAllCause((cause) => Effect.logWarning("CDC rules were not persisted", cause))
        )
        : Effect.void
    )

    const stateOf = (name: string) =>
      Effect.suspend(() => {
        const state = states.get(name)
        return state ? Effect.succeed(state) : Effect.fail(new UnknownRule({ name }))
      })

    // Each failure counts once in `errors`, whether a retry absorbed it or it ended the session.
    const counted = new WeakSet<object>()
    const noteError = (state: RuleState) => (error: CdcError) =>
      Effect.sync(() => {
        if (counted.has(error)) return
        counted.add(error)
        state.errors++
        state.lastError = error.message
      })

    /**
     * One session of a rule: check the tables, put publication, slot and
     * target in place (snapshot when the slot is new), then apply
     * transactions in commit order until `goal` (sync) or for ever (run).
     */
    const session = (state: RuleState, mode: "sync" | "run") =>
      Effect.scoped(Effect.gen(function*() {
        const rule = state.rule
        const slot = slotOf(rule)
        const publication = publicationOf(rule)
        const connect = yield* connectNow
        const client = yield* Replication.control(connect)
        const tables = yield* Replication.describeTables(client, rule.tables)
        yield* Replication.ensurePublication(client, publication, rule.name, tables)
        const applier = yield* options.targets[rule.target]!.open(rule.name, tables)
        const applyRetry: Schedule.Schedule<unknown> = mode === "run" ? backoff : Schedule.intersect(backoff, Schedule.recurs(10))
        const applyTransaction = (transaction: Transaction) =>
          applier.apply(transaction).pipe(
            Effect.tapError(noteError(state)),
            Effect.retry(applyRetry.pipe(Schedule.tapOutput(() => Effect.sync(() => state.retries++)))),
            Effect.tap(() =>
              Effect.sync(() => {
                state.transactionsApplied++
                state.changesApplied += transaction.changes.length
                state.lastAppliedLsn = Replication.parseLsn(transaction.endLsn)
                state.lastCommitTime = transaction.commitTime
                state.applyLagMillis = Math.max(0, Date.now() - transaction.commitTime.getTime())
              })
            )
          )

        let existing = yield* Replication.slotInfo(client, slot)
        const snapshotWanted = rule.snapshot ?? true
        if (existing && existing.plugin !== "pgoutput") {
          return yield* new ReplicationError({ operation: "slot", reason: `slot ${slot} is not a pgoutput logical slot` })
        }
        if (existing && snapshotWanted && applier.durableState && applier.appliedLsn === undefined) {
          // The slot outlived a snapshot that never reached the target: start over.
          yield* Replication.dropSlot(client, slot)
          existing = undefined
        }
        let startLsn: bigint
        // What the target already has: its own record, or, for a new slot,
        // the slot's consistent point (a record from an older slot, e.g. on a
        // server that lost WAL in a failover, must not hide the new slot's changes).
        let skipUpTo = applier.appliedLsn ?? 0n
        let snapshotTaken = false
        let transactions = 0
        let changesCount = 0
        if (existing) {
          startLsn = Replication.parseLsn(existing.confirmed ?? "0/0")
        } else {
          const created = yield* Replication.createSlot(connect, slot, {
            failover: rule.failover ?? false,
            snapshot: snapshotWanted ? tables : undefined
          })
          startLsn = created.consistentPoint
          skipUpTo = created.consistentPoint
          if (snapshotWanted) {
            const transaction = snapshotTransaction(created)
            yield* applyTransaction(transaction).pipe(
              // A target without its own position cannot tell later that the
              // snapshot is missing: take the slot away so the next try redoes it.
              Effect.tapError(() => applier.durableState ? Effect.void : Effect.ignore(Replication.dropSlot(client, slot)))
            )
            snapshotTaken = true
            transactions++
            changesCount += transaction.changes.length
          }
        }
        const goal = mode === "sync" ? yield* Replication.currentLsn(client) : undefined
        const stream = yield* Replication.startSession(connect, {
          slot,
          publication,
          startLsn,
          statusInterval: mode === "sync" ? Math.min(100, statusInterval) : statusInterval
        })
        const decoder = makeDecoder()
        // The changes of the transaction being received, until its Commit.
        let open: Array<RowChange> | undefined

        for (;;) {
          if (goal !== undefined && open === undefined && stream.confirmed() >= goal) {
            return { transactions, changes: changesCount, lsn: Replication.formatLsn(stream.confirmed()), snapshot: snapshotTaken } satisfies SyncResult
          }
          const item = yield* stream.take
          if (item._tag === "Keepalive") {
            if (open === undefined) yield* stream.acknowledge(item.lsn)
            continue
          }
          if (item.message.tag === "relation") {
            yield* checkRelation(decoder.relation(item.message))
            continue
          }
          const change = decoder.decode(item.lsn, item.message)
          if (!change) continue
          switch (change._tag) {
            case "Begin":
              open = []
              break
            case "Commit": {
              const end = Replication.parseLsn(change.endLsn)
              if (open && end > skipUpTo) {
                const transaction: Transaction = {
                  xid: change.xid,
                  lsn: change.lsn,
                  endLsn: change.endLsn,
                  commitTime: change.commitTime,
                  changes: open,
                  snapshot: false
                }
                yield* applyTransaction(transaction)
                transactions++
                changesCount += transaction.changes.length
              }
              open = undefined
              yield* stream.acknowledge(end)
              break
            }
            default:
              open?.push(change)
          }
        }
      }))

    const exclusive = <A, E>(state: RuleState, effect: Effect.Effect<A, E>) =>
      Effect.suspend((): Effect.Effect<A, E | InvalidRule> => {
        if (state.running) {
          return Effect.fail(new InvalidRule({ name: state.rule.name, field: "name", reason: "is already running" }))
        }
        state.running = true
        return Effect.ensuring(effect, Effect.sync(() => state.running = false))
      })

    const cdc: Cdc = {
      addRule: (rule) => Effect.zipRight(add(rule), persist),
      removeRule: (name, removeOptions) =>
        Effect.gen(function*() {
          const state = yield* stateOf(name)
          states.delete(name)
          if (state.fiber) yield* Fiber.interrupt(state.fiber)
          yield* persist
          if (removeOptions?.keepSlot) return
          yield* Effect.scoped(Effect.gen(function*() {
            const client = yield* Replication.control(yield* connectNow)
            yield* Replication.dropSlot(client, slotOf(state.rule))
            yield* Replication.dropPublication(client, publicationOf(state.rule), state.rule.name)
          }))
        }),
      listRules: Effect.sync(() => Array.from(states.values(), (s) => s.rule)),
      config: Effect.sync(() => ({ rules: Array.from(states.values(), (s) => s.rule) })),
      sync: (name) =>
        Effect.flatMap(stateOf(name), (state) =>
          exclusive(state, session(state, "sync")).pipe(
            Effect.tapError(noteError(state)),
            Effect.map((result) => result as SyncResult)
          )),
      run: (name) =>
        Effect.gen(function*() {
          const state = yield* stateOf(name)
          if (state.running) {
            return yield* new InvalidRule({ name, field: "name", reason: "is already running" })
          }
          state.running = true
          const follow = session(state, "run").pipe(
            Effect.tapError(noteError(state)),
            Effect.retry({
              schedule: backoff.pipe(Schedule.tapOutput(() => Effect.sync(() => state.restarts++))),
              while: isRetriable
            }),
            Effect.flatMap(() => Effect.never),
            Effect.ensuring(Effect.sync(() => {
              state.running = false
              state.fiber = undefined
            }))
          )
          const fiber = yield* Effect.forkScoped(follow as Effect.Effect<never, CdcError>)
          state.fiber = fiber
          return fiber
        }),
      stats: (name) =>
        Effect.gen(function*() {
          const state = yield* stateOf(name)
          const slot = yield* Effect.scoped(Effect.gen(function*() {
            const client = yield* Replication.control(yield* connectNow)
            return yield* Replication.slotInfo(client, slotOf(state.rule))
          })).pipe(Effect.option)
          const info = slot._tag === "Some" ? slot.value : undefined
          return {
            rule: name,
            running: state.running,
            changesApplied: state.changesApplied,
            transactionsApplied: state.transactionsApplied,
            lastAppliedLsn: state.lastAppliedLsn === undefined ? undefined : Replication.formatLsn(state.lastAppliedLsn),
            lastCommitTime: state.lastCommitTime,
            applyLagMillis: state.applyLagMillis,
            lagBytes: info?.confirmed
              ? Number(Replication.parseLsn(info.currentLsn) - Replication.parseLsn(info.confirmed))
              : undefined,
            retainedWalBytes: info?.retainedBytes ?? undefined,
            retries: state.retries,
            errors: state.errors,
            restarts: state.restarts,
            lastError: state.lastError
          } satisfies Stats
        }),
      enforceRetention: Effect.gen(function*() {
        const bounded = Array.from(states.values()).filter((s) => s.rule.maxRetainedWalBytes !== undefined)
        if (bounded.length === 0) return []
        return yield* Effect.scoped(Effect.gen(function*() {
          const client = yield* Replication.control(yield* connectNow)
          const dropped: Array<string> = []
          for (const state of bounded) {
            const info = yield* Replication.slotInfo(client, slotOf(state.rule))
            if (info && (info.retainedBytes ?? 0) > state.rule.maxRetainedWalBytes!) {
              yield* Replication.dropSlot(client, slotOf(state.rule))
              state.errors++
              state.lastError =
                `slot ${slotOf(state.rule)} held ${info.retainedBytes} bytes of WAL, over the rule's bound of ${state.rule.maxRetainedWalBytes}: dropped; the next session starts over with a snapshot`
              dropped.push(state.rule.name)
            }
          }
          return dropped
        }))
      }).pipe(
        Effect.catchAll((error) => Effect.logWarning(`CDC retention check failed: ${describe(error)}`).pipe(Effect.as([])))
      )
    }

    for (const rule of options.rules ?? []) yield* add(rule)
    yield* cdc.enforceRetention.pipe(
      Effect.schedule(Schedule.spaced(options.retentionCheckInterval ?? "30 seconds")),
      Effect.forkScoped
    )
    if (options.autoRun) {
      for (const state of states.values()) {
        if (state.rule.enabled ?? true) yield* cdc.run(state.rule.name).pipe(Effect.catchTag("UnknownRule", Effect.die))
      }
    }
    return cdc
  })

const snapshotTransaction = (snapshot: Replication.Snapshot): Transaction => {
  const changes: Array<RowChange> = []
  const lsn = Replication.formatLsn(snapshot.consistentPoint)
  const relations = snapshot.rows.map(({ table }) => tableRelation(table))
  changes.push({ _tag: "Truncate", xid: 0, lsn, relations, cascade: false, restartIdentity: false })
  snapshot.rows.forEach(({ rows }, i) => {
    for (const row of rows) changes.push({ _tag: "Insert", xid: 0, lsn, relation: relations[i]!, row })
  })
  return { xid: 0, lsn, endLsn: lsn, commitTime: new Date(), changes, snapshot: true }
}

const tableRelation = (table: TableInfo): Relation => ({
  oid: 0,
  schema: table.schema,
  table: table.table,
  columns: table.columns.map(({ formatted: _, ...column }) => column),
  keyColumns: table.key,
  replicaIdentity: "default"
})
