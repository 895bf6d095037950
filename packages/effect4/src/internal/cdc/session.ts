/** @internal */
import * as Changes from "@effect-sql-router/core/cdc/Changes"
import * as Follow from "@effect-sql-router/core/cdc/Follow"
import * as Snapshot from "@effect-sql-router/core/cdc/Snapshot"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import type { Begin, CdcError, RowChange, Stats, SyncResult, Transaction } from "../../Cdc.js"
import { InvalidRule, ReplicationError, type TargetError, UnknownTable } from "./errors.js"
import type { Applier, Atomicity, Part, ProgressUpdate } from "./apply.js"
import { checkRelation } from "./apply.js"
import type { CdcContext } from "./context.js"
import { checkTruncate, makeTracker, type Tracker } from "./schemaChanges.js"
import * as Replication from "./replication.js"
import type { TableInfo } from "./replication.js"
import type { RuleState } from "./rules.js"
import { publicationOf, slotOf, stateOf } from "./rules.js"
import { type Driver, makeDriver } from "./snapshot.js"

// One rule's session (`sync` until the primary's current position, `run` for
// ever with restarts), its apply retries, and the rule's `stats`.

type Mode = "sync" | "run"

/** What one session has applied so far, for its `SyncResult`. */
interface Progress {
  transactions: number
  changes: number
  snapshot: boolean
}

/** The session's open connection, tables and target. */
interface Source {
  readonly connect: Replication.Connect
  readonly client: Replication.Client
  readonly tables: ReadonlyArray<TableInfo>
  readonly applier: Applier
}

/** Tables checked, publication in place, target opened. */
const openSource = (context: CdcContext, state: RuleState, connect: Replication.Connect) =>
  Effect.gen(function*() {
    const rule = state.rule
    const client = yield* Replication.control(connect)
    const tables = yield* Replication.describeTables(client, rule.tables, {
      checkTypes: true,
      unsupportedTypes: rule.unsupportedTypes
    })
    yield* Replication.ensurePublication(client, publicationOf(rule), rule.name, tables)
    const applier = yield* context.options.targets[rule.target]!.open(rule.name, tables)
    // Requests kept by the target (asked before a crash, or by another process) join this process's.
    for (const table of applier.resnapshotRequested) state.resnapshot.add(table)
    return { connect, client, tables, applier } satisfies Source
  })

/** One session's facts, made once and handed to each of its steps. */
interface Session {
  readonly context: CdcContext
  readonly state: RuleState
  readonly source: Source
  /** Retries of one apply: for ever in `run`, 10 in `sync`. */
  readonly applyRetry: Schedule.Schedule<unknown>
  readonly progress: Progress
  /** The rule's schema changes, as the snapshot and the stream meet them. */
  readonly tracker: Tracker
}

/** A target write with the session's retries, counted in the rule's stats. */
const retrying = <A>(session: Session, effect: Effect.Effect<A, TargetError>): Effect.Effect<A, TargetError> =>
  effect.pipe(
    Effect.tapError(session.context.noteError(session.state)),
    Effect.retry(session.applyRetry.pipe(Schedule.tap(() => Effect.sync(() => session.state.retries++))))
  )

/**
 * Applies one transaction to the target with the session's retries, counted
 * in the rule's stats (`transactions`: how many source transactions it
 * groups); `snapshot` progress is recorded with it.
 */
const apply = (
  session: Session,
  transaction: Transaction,
  snapshot?: ReadonlyArray<ProgressUpdate>,
  transactions = 1
): Effect.Effect<void, TargetError> => {
  return retrying(session, session.source.applier.apply(transaction, snapshot)).pipe(
    Effect.tap(() =>
      Effect.sync(() => {
        applied(session, transaction.changes.length, transaction.endLsn, transaction.commitTime, transactions)
        if (transaction.snapshot) session.progress.snapshot = true
      })
    )
  )
}

/**
 * The slot in place and where to start: an existing slot resumes (with the
 * tables whose snapshot is unfinished); a new one (or one whose snapshot
 * never reached the target) is created and, unless the rule says not to,
 * every table is to be copied (recorded on the target with the slot's
 * consistent point).
 */
const startPosition = (session: Session) =>
  Effect.gen(function*() {
    const { applier, client, connect, tables } = session.source
    const rule = session.state.rule
    const slot = slotOf(rule)
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
    // `skipUpTo` is what the target already has: its own record, or, for a
    // new slot, the slot's consistent point (a record from an older slot,
    // e.g. on a server that lost WAL in a failover, must not hide the new
    // slot's changes).
    if (existing) {
      const pending: ReadonlyArray<Snapshot.TableProgress> = applier.snapshotPending ??
        Array.from(session.state.sinkPending, ([table, after]) => ({ table, after }))
      return { startLsn: Changes.parseLsn(existing.confirmed ?? "0/0"), skipUpTo: applier.appliedLsn ?? 0n, pending }
    }
    const created = yield* Replication.createSlot(connect, slot, { failover: rule.failover ?? false })
    const pending = snapshotWanted ? tables.map((t) => ({ table: Snapshot.tableName(t), after: null })) : []
    if (snapshotWanted) {
      // A target table of an older shape (a slot taken again) is brought in
      // step before the chunks, in the target transaction that records them pending.
      const at = Changes.formatLsn(created.consistentPoint)
      const aligned = yield* session.tracker.snapshot(at)
      yield* aligned.length === 0
        ? retrying(session, applier.recordProgress(pending, created.consistentPoint))
        : apply(session, { xid: 0, lsn: at, endLsn: at, commitTime: new Date(), changes: aligned, snapshot: true }, pending)
    }
    return { startLsn: created.consistentPoint, skipUpTo: created.consistentPoint, pending }
  })


/** Counts source transactions applied (whole, grouped or streamed) in the rule's stats and the session's progress. */
const applied = (session: Session, changes: number, endLsn: string, commitTime: Date, transactions = 1) => {
  const { progress, state } = session
  state.transactionsApplied += transactions
  state.changesApplied += changes
  state.lastAppliedLsn = Changes.parseLsn(endLsn)
  state.lastCommitTime = commitTime
  state.applyLagMillis = Math.max(0, Date.now() - commitTime.getTime())
  progress.transactions += transactions
  progress.changes += changes
}

/** One `follow` loop's facts and the state its steps share, made once per session. @internal */
interface Loop {
  readonly session: Session
  readonly stream: Replication.Session
  readonly driver: Driver
  readonly position: { appliedUpTo: bigint }
  readonly skipUpTo: bigint
  readonly decoder: Changes.Decoder
  readonly slot: string
  readonly batchSize: number
  readonly atomicity: Atomicity
  // Whole transactions received while more messages were waiting: a SQL
  // target applies them together, as one target transaction (each source
  // transaction still whole, in commit order), when the queue is drained or
  // they reach `batchSize` changes. A sink gets each on its own, and so does
  // every target while the snapshot has tables left.
  readonly groups: boolean
  // The transaction being received, until its Commit.
  begin: Begin | undefined
  open: Array<RowChange> | undefined
  // The transaction being received carried logical decoding messages
  // (watermarks, ours or another slot's): without changes it is not applied.
  messaged: boolean
  // The transaction being received, and whether the target has it already
  // (its commit is at or before `skipUpTo`: its schema changes are there too).
  xid: number
  skipping: boolean
  // The whole transactions waiting to be applied together, and their changes.
  pending: Array<Changes.Commit>
  pendingChanges: Array<RowChange>
  // The changes of the transaction being streamed, so far.
  streamed: number
}

/** The state of a `follow` loop before its first message. @internal */
const makeLoop = (
  session: Session,
  stream: Replication.Session,
  skipUpTo: bigint,
  driver: Driver,
  position: { appliedUpTo: bigint }
): Loop => {
  const rule = session.state.rule
  return {
    session,
    stream,
    driver,
    position,
    skipUpTo,
    decoder: Changes.makeDecoder(),
    slot: slotOf(rule),
    batchSize: rule.batchSize ?? Changes.defaultBatchSize,
    atomicity: rule.atomicity ?? "transaction",
    groups: session.source.applier.durableState,
    begin: undefined,
    open: undefined,
    messaged: false,
    xid: 0,
    skipping: false,
    pending: [],
    pendingChanges: [],
    streamed: 0
  }
}

/** Applies the whole transactions waiting as one target transaction, then acknowledges the last. @internal */
const flush = (loop: Loop) => {
  const { position, session, stream } = loop
  const commits = loop.pending
  const changes = loop.pendingChanges
  loop.pending = []
  loop.pendingChanges = []
  const last = commits[commits.length - 1]!
  const { commitTime, endLsn, lsn, xid } = last
  const end = Changes.parseLsn(endLsn)
  return apply(session, { xid, lsn, endLsn, commitTime, changes, snapshot: false }, undefined, commits.length).pipe(
    Effect.andThen(Effect.sync(() => {
      if (end > position.appliedUpTo) position.appliedUpTo = end
    })),
    Effect.andThen(stream.acknowledge(end))
  )
}

/**
 * Reads messages until a change (a schema change found in a Relation
 * message is one); between transactions a keepalive is acknowledged and
 * returned as undefined (the goal may be reached). Built once per loop.
 *
 * @internal
 */
const nextChangeOf = (loop: Loop) => {
  const { decoder, driver, session, slot, stream } = loop
  const rule = session.state.rule
  const tracker = session.tracker
  const types = session.source.tables[0]?.types
  return Effect.gen(function*() {
    for (;;) {
      if (Follow.flushDue(loop)) {
        // Back to the loop: the position acknowledged may be the goal.
        yield* flush(loop)
        if (loop.open === undefined) return undefined
      }
      const item = yield* stream.take
      if (item._tag === "Keepalive") {
        if (loop.open !== undefined || loop.pending.length > 0) continue
        yield* stream.acknowledge(item.lsn)
        return undefined
      }
      if (item.message.tag === "relation") {
        const relation = decoder.relation(item.message)
        yield* checkRelation(relation, types)
        const schemaChange = loop.skipping
          ? undefined
          : yield* tracker.relation(relation, loop.xid, Changes.formatLsn(item.lsn))
        if (schemaChange) return schemaChange
        continue
      }
      if (item.message.tag === "message") {
        loop.messaged = true
        const watermark = Snapshot.parseWatermark(slot, item.message.prefix, item.message.content)
        if (watermark) driver.watermark(watermark)
        continue
      }
      const change = decoder.decode(item.lsn, item.message)
      if (!change) continue
      if (change._tag === "Truncate" && !loop.skipping) yield* checkTruncate(rule, change)
      return change
    }
  })
}

/**
 * The next batch of a streamed transaction, up to its commit; its keys
 * leave the snapshot chunk in flight. Built once per loop.
 *
 * @internal
 */
const nextPartOf = (loop: Loop, nextChange: ReturnType<typeof nextChangeOf>) => {
  const { batchSize, driver } = loop
  return Effect.gen(function*() {
    const changes: Array<RowChange> = []
    for (;;) {
      const change = Follow.pollChange(loop) ?? (yield* nextChange)
      if (change === undefined) continue
      if (change._tag === "Commit") {
        yield* driver.touch(changes, loop.xid)
        return { changes, commit: change } satisfies Part
      }
      if (change._tag === "Begin") continue
      changes.push(change)
      loop.streamed++
      if (changes.length >= batchSize) {
        yield* driver.touch(changes, loop.xid)
        return { changes, commit: undefined } satisfies Part
      }
    }
  })
}

/**
 * A transaction too large to hold: the rest is streamed, after the
 * transactions before it. A transaction the target already has (it commits
 * at or before `skipUpTo`) is read and dropped.
 *
 * @internal
 */
const streamRest = (loop: Loop, nextPart: ReturnType<typeof nextPartOf>) =>
  Effect.gen(function*() {
    const { driver, position, session, stream } = loop
    if (loop.pending.length > 0) yield* flush(loop)
    const first = loop.open!
    loop.open = []
    if (loop.skipping) {
      let part: Part
      do part = yield* nextPart; while (!part.commit)
      loop.open = undefined
      yield* stream.acknowledge(Changes.parseLsn(part.commit.endLsn))
      return
    }
    loop.streamed = first.length
    yield* driver.touch(first, loop.xid)
    const commit = yield* session.source.applier.stream(loop.begin!, loop.atomicity, first, nextPart).pipe(
      Effect.tapError(session.context.noteError(session.state))
    )
    applied(session, loop.streamed, commit.endLsn, commit.commitTime)
    const end = Changes.parseLsn(commit.endLsn)
    if (end > position.appliedUpTo) position.appliedUpTo = end
    loop.begin = undefined
    loop.open = undefined
    yield* stream.acknowledge(end)
  })

/**
 * Applies transactions in commit order, those past `skipUpTo`, until the
 * slot confirms `goal` (or for ever), and drives the snapshot's chunks
 * between them. A transaction of up to `batchSize` changes is held until its
 * commit and applied whole, with retries; a larger one is streamed to the
 * target batch by batch (see `Applier.stream`): it is never retried, a
 * failure ends the session and the next one reads it again from its start
 * (the slot is acknowledged at whole commits only). While no snapshot chunk
 * is in flight, a SQL target gets the whole transactions already waiting in
 * the queue together, in one target transaction.
 */
const follow = (
  session: Session,
  stream: Replication.Session,
  skipUpTo: bigint,
  goal: bigint | undefined,
  driver: Driver,
  position: { appliedUpTo: bigint }
) =>
  Effect.gen(function*() {
    const loop = makeLoop(session, stream, skipUpTo, driver, position)
    const nextChange = nextChangeOf(loop)
    const nextPart = nextPartOf(loop, nextChange)
    for (;;) {
      if (loop.open === undefined) {
        // A chunk starts (or a resnapshot is taken) only after what came before it is applied.
        if (loop.pending.length > 0 && driver.busy()) yield* flush(loop)
        yield* driver.step
      }
      if (
        goal !== undefined && loop.open === undefined && loop.pending.length === 0 && !driver.busy() &&
        stream.confirmed() >= goal
      ) {
        return {
          transactions: session.progress.transactions,
          changes: session.progress.changes,
          lsn: Changes.formatLsn(stream.confirmed()),
          snapshot: session.progress.snapshot
        } satisfies SyncResult
      }
      const change = Follow.pollChange(loop) ?? (yield* nextChange)
      if (change === undefined) continue
      switch (change._tag) {
        case "Begin":
          loop.begin = change
          loop.open = []
          loop.messaged = false
          loop.xid = change.xid
          loop.skipping = Changes.parseLsn(change.lsn) < skipUpTo
          break
        case "Commit": {
          const end = Changes.parseLsn(change.endLsn)
          const open = loop.open
          // A watermark's own transaction: nothing to apply, maybe a chunk.
          const watermarks = open !== undefined && loop.messaged && open.length === 0
          const applying = open !== undefined && !watermarks && end > skipUpTo
          if (applying) {
            yield* driver.touch(open, change.xid)
            if (loop.groups && !driver.busy()) {
              loop.pending.push(change)
              for (const c of open) loop.pendingChanges.push(c)
              loop.begin = undefined
              loop.open = undefined
              break
            }
          }
          // What waits is applied before this commit, in commit order.
          if (loop.pending.length > 0) yield* flush(loop)
          if (watermarks) {
            yield* driver.commit(change)
          } else if (applying) {
            const { commitTime, endLsn, lsn, xid } = change
            yield* apply(session, { xid, lsn, endLsn, commitTime, changes: open, snapshot: false })
          }
          if (end > position.appliedUpTo) position.appliedUpTo = end
          loop.begin = undefined
          loop.open = undefined
          yield* stream.acknowledge(end)
          break
        }
        default: {
          if (!loop.open) break
          loop.open.push(change)
          if (loop.open.length < loop.batchSize || !loop.begin) break
          yield* streamRest(loop, nextPart)
        }
      }
    }
  })

/**
 * One session of a rule: check the tables, put publication, slot and
 * target in place (snapshot when the slot is new), then apply
 * transactions in commit order until the primary's current position
 * (sync) or for ever (run).
 */
const runSession = (context: CdcContext, state: RuleState, mode: Mode) =>
  Effect.scoped(Effect.gen(function*() {
    // The replication connection opens while the source and the target are
    // read (a failure of theirs comes first; the connection closes with the scope).
    const connect = yield* context.connect
    const opening = yield* Effect.forkScoped(Replication.replicationConnection(connect))
    const source = yield* openSource(context, state, connect)
    const session: Session = {
      context,
      state,
      source,
      applyRetry: mode === "run" ? context.backoff : Schedule.max([context.backoff, Schedule.recurs(10)]),
      progress: { transactions: 0, changes: 0, snapshot: false },
      tracker: makeTracker(state.rule, source.applier, source.tables, source.client)
    }
    const { pending, skipUpTo, startLsn } = yield* startPosition(session)
    const goal = mode === "sync" ? yield* Replication.currentLsn(source.client) : undefined
    const stream = yield* Replication.startSession(yield* Fiber.join(opening), {
      slot: slotOf(state.rule),
      publication: publicationOf(state.rule),
      startLsn,
      statusInterval: mode === "sync" ? Math.min(100, context.statusInterval) : context.statusInterval,
      messages: true,
      types: source.tables[0]?.types
    })
    const position = { appliedUpTo: skipUpTo }
    const driver = yield* makeDriver({
      slot: slotOf(state.rule),
      client: source.client,
      tables: source.tables,
      ruleTables: state.rule.tables,
      chunkSize: state.rule.snapshotChunkSize ?? Snapshot.defaultChunkSize,
      state,
      applier: source.applier,
      apply: (transaction, progress) => apply(session, transaction, progress),
      recordProgress: (progress, lsn) => retrying(session, source.applier.recordProgress(progress, lsn)),
      appliedUpTo: () => position.appliedUpTo,
      pending
    })
    return yield* follow(session, stream, skipUpTo, goal, driver, position)
  }))

const exclusive = <A, E>(state: RuleState, effect: Effect.Effect<A, E>) =>
  Effect.suspend((): Effect.Effect<A, E | InvalidRule> => {
    if (state.running) {
      return Effect.fail(new InvalidRule({ name: state.rule.name, field: "name", reason: "is already running" }))
    }
    state.running = true
    return Effect.ensuring(effect, Effect.sync(() => state.running = false))
  })

/** `Cdc.sync`: one session up to the primary's position now, not while the rule runs. @internal */
export const sync = (context: CdcContext, name: string) =>
  Effect.flatMap(stateOf(context, name), (state) =>
    exclusive(state, runSession(context, state, "sync")).pipe(
      Effect.tapError(context.noteError(state)),
      Effect.map((result) => result as SyncResult)
    ))

const isRetriable = (error: CdcError): boolean => error._tag === "ReplicationError" || error._tag === "TargetError"

/** `Cdc.run`: sessions for ever in a fiber of the current scope, restarted with backoff while retriable. @internal */
export const run = (context: CdcContext, name: string) =>
  Effect.gen(function*() {
    const state = yield* stateOf(context, name)
    if (state.running) {
      return yield* new InvalidRule({ name, field: "name", reason: "is already running" })
    }
    state.running = true
    const following = runSession(context, state, "run").pipe(
      Effect.tapError(context.noteError(state)),
      // A restart is counted for a failure that gets one (the schedule steps
      // before `while` refuses, so it cannot count them).
      Effect.tapError((error) => Effect.sync(() => isRetriable(error) && state.restarts++)),
      Effect.retry({ schedule: context.backoff, while: isRetriable }),
      Effect.flatMap(() => Effect.never),
      Effect.ensuring(Effect.sync(() => {
        state.running = false
        state.fiber = undefined
      }))
    )
    const fiber = yield* Effect.forkScoped(following as Effect.Effect<never, CdcError>)
    state.fiber = fiber
    return fiber
  })

/** `Cdc.stats`: the rule's counters, with lag and retained WAL read from its slot when the primary answers. @internal */
export const stats = (context: CdcContext, name: string) =>
  Effect.gen(function*() {
    const state = yield* stateOf(context, name)
    const slot = yield* context.monitor.read((client) => Replication.slotInfo(client, slotOf(state.rule))).pipe(
      Effect.option
    )
    const info = slot._tag === "Some" ? slot.value : undefined
    return {
      rule: name,
      running: state.running,
      changesApplied: state.changesApplied,
      transactionsApplied: state.transactionsApplied,
      lastAppliedLsn: state.lastAppliedLsn === undefined ? undefined : Changes.formatLsn(state.lastAppliedLsn),
      lastCommitTime: state.lastCommitTime,
      applyLagMillis: state.applyLagMillis,
      lagBytes: info?.confirmed
        ? Number(Changes.parseLsn(info.currentLsn) - Changes.parseLsn(info.confirmed))
        : undefined,
      retainedWalBytes: info?.retainedBytes ?? undefined,
      retries: state.retries,
      errors: state.errors,
      restarts: state.restarts,
      lastError: state.lastError,
      snapshot: state.snapshot ? Snapshot.progress(state.snapshot, Date.now()) : undefined
    } satisfies Stats
  })

/**
 * `Cdc.resnapshot`: the tables (all of the rule's by default) are copied
 * again, by the running session or the next one. The request is kept on the
 * target first (a SQL target), so that a process that stops before a
 * session takes it does not lose it.
 * @internal
 */
export const resnapshot = (context: CdcContext, name: string, tables?: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const state = yield* stateOf(context, name)
    const asked = tables ?? state.rule.tables
    const unqualified = (table: string) => table.startsWith("public.") ? table.slice("public.".length) : table
    const names: Array<string> = []
    for (const table of asked) {
      const known = state.rule.tables.find((t) => t === table || unqualified(t) === unqualified(table))
      if (known === undefined) return yield* new UnknownTable({ table, reason: `is not a table of rule ${name}` })
      names.push(known)
    }
    yield* context.options.targets[state.rule.target]!.request(name, names)
    for (const known of names) state.resnapshot.add(known)
  })
