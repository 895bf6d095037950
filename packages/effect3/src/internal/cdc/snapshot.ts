/** @internal */
import * as Changes from "@effect-sql-router/core/cdc/Changes"
import * as Snapshot from "@effect-sql-router/core/cdc/Snapshot"
import * as Effect from "effect/Effect"
import type { Commit, RowChange, Transaction } from "../../Cdc.js"
import { randomUUID } from "node:crypto"
import type { Applier, ProgressUpdate } from "./apply.js"
import type { ReplicationError, TargetError } from "./errors.js"
import * as Replication from "./replication.js"
import type { TableInfo } from "./replication.js"
import type { RuleState } from "./rules.js"

// The incremental snapshot of one session (DBLog's watermarks; the rules are
// the core's `cdc/Snapshot`): tables are copied chunk by chunk while the
// stream flows. Per chunk: a low watermark, the read, a high watermark, all
// on the control connection; the stream loop tells the driver what it sees
// (watermarks, each transaction's changes), and at the high watermark's
// commit the rows the stream did not touch are applied with the progress.
// A table copied from its start is emptied on the target first, in apply
// order before anything read after its first chunk started.

/** @internal */
export interface Driver {
  /** True while tables are left to copy: a `sync` does not end before. */
  readonly busy: () => boolean
  /** Takes `resnapshot` requests, and starts the next chunk when none is in flight. */
  readonly step: Effect.Effect<void, ReplicationError | TargetError>
  /** A watermark of this slot, seen in the stream. */
  readonly watermark: (watermark: Snapshot.Watermark) => void
  /** A stream transaction about to be applied: its keys leave the chunk in flight. */
  readonly touch: (changes: ReadonlyArray<RowChange>, xid: number) => Effect.Effect<void, TargetError>
  /** The commit of a transaction that carried only watermarks: the chunk is applied at its high one. */
  readonly commit: (commit: Commit) => Effect.Effect<void, TargetError>
}

interface Pending {
  readonly table: TableInfo
  after: ReadonlyArray<string> | null
}

interface InFlight {
  readonly name: string
  readonly window: Snapshot.Window
  readonly read: number
  readonly last: ReadonlyArray<string> | null
  closing: boolean
  /** `resnapshot` asked for this table while its chunk was in flight: start it over. */
  restart: boolean
  /** The table's columns changed while the chunk was in flight: its rows are dropped and the chunk read again. */
  stale: boolean
}

/** What a session hands its snapshot driver. @internal */
export interface DriverOptions {
  readonly slot: string
  readonly client: import("pg").Client
  /** The rule's tables, in the rule's order (as `rule.tables`). */
  readonly tables: ReadonlyArray<TableInfo>
  readonly ruleTables: ReadonlyArray<string>
  readonly chunkSize: number
  readonly state: RuleState
  readonly applier: Applier
  /** Applies with the session's retries and counts; `progress` goes in the same target transaction. */
  readonly apply: (transaction: Transaction, progress: ReadonlyArray<ProgressUpdate>) => Effect.Effect<void, TargetError>
  readonly recordProgress: (progress: ReadonlyArray<ProgressUpdate>, lsn?: bigint) => Effect.Effect<void, TargetError>
  /** The end of the last transaction applied (or skipped as already applied). */
  readonly appliedUpTo: () => bigint
  /** Tables left from earlier sessions, and from a new slot. */
  readonly pending: ReadonlyArray<Snapshot.TableProgress>
}

/** One driver's tables and the state its steps share, made once per session. @internal */
interface Copy {
  readonly options: DriverOptions
  /** The tables by qualified name, with the columns the stream last announced. */
  readonly byName: Map<string, TableInfo>
  readonly relations: Map<string, Changes.Relation>
  readonly pending: Map<string, Pending>
  /** Tables copied from their start, not yet emptied on the target. */
  readonly truncateDue: Set<string>
  inFlight: InFlight | undefined
}

/** Keeps a sink's snapshot progress in the rule's state (a SQL target keeps its own). @internal */
const remember = (copy: Copy, name: string, after: ReadonlyArray<string> | null | "done") => {
  const { applier, state } = copy.options
  if (applier.durableState) return
  if (after === "done") state.sinkPending.delete(name)
  else state.sinkPending.set(name, after)
}

/** Adds tables to copy, and their row estimates to the figures. @internal */
const add = (copy: Copy, entries: ReadonlyArray<Snapshot.TableProgress>) =>
  Effect.gen(function*() {
    const { byName, pending } = copy
    const { client, state } = copy.options
    const fresh = entries.filter((e) => byName.has(e.table))
    if (fresh.length === 0) return
    let estimate: number | undefined = 0
    for (const entry of fresh) {
      const table = byName.get(entry.table)!
      if (!pending.has(entry.table)) {
        const rows = yield* Replication.estimateRows(client, table)
        estimate = estimate === undefined || rows === undefined ? undefined : estimate + rows
      }
      pending.set(entry.table, { table, after: entry.after })
      remember(copy, entry.table, entry.after)
    }
    const stats = state.snapshot
    if (stats?.running) {
      stats.tablesTotal = stats.tablesDone + pending.size
      stats.rowsTotal = stats.rowsTotal === undefined || estimate === undefined ? undefined : stats.rowsTotal + estimate
    } else {
      state.snapshot = {
        running: true,
        table: undefined,
        tablesDone: 0,
        tablesTotal: pending.size,
        rowsCopied: 0,
        rowsTotal: estimate,
        startedAt: Date.now(),
        endedAt: undefined
      }
    }
  })

/**
 * `resnapshot` requests: the tables start over, recorded on the target at
 * once in the transaction that deletes the requests it kept (a request for
 * a table the rule no longer has just goes); built once per driver.
 * @internal
 */
const takeRequests = (copy: Copy) =>
  Effect.suspend(() => {
    const { options } = copy
    const { state } = options
    if (state.resnapshot.size === 0) return Effect.void
    const names = options.ruleTables
      .map((name, i) => state.resnapshot.has(name) ? Snapshot.tableName(options.tables[i]!) : undefined)
      .filter((name): name is string => name !== undefined)
    const taken: Array<Snapshot.ProgressUpdate> = Array.from(state.resnapshot, (table) => ({ taken: table }))
    state.resnapshot.clear()
    const restarted: Array<Snapshot.TableProgress> = []
    for (const name of names) {
      if (copy.inFlight?.name === name) copy.inFlight.restart = true
      restarted.push({ table: name, after: null })
    }
    return add(copy, restarted).pipe(Effect.zipRight(options.recordProgress([...restarted, ...taken])))
  })

/** The next chunk: low watermark, read, high watermark, then in flight; built once per driver. @internal */
const startChunk = (copy: Copy) =>
  Effect.gen(function*() {
    const { client, slot, chunkSize, state } = copy.options
    const [name, entry] = copy.pending.entries().next().value!
    const chunk = randomUUID()
    if (entry.after === null) copy.truncateDue.add(name)
    yield* Replication.emitWatermark(client, slot, { chunk, kind: "low" })
    const { rows, visibility } = yield* Replication.readChunk(client, entry.table, entry.after, chunkSize)
    yield* Replication.emitWatermark(client, slot, { chunk, kind: "high" })
    copy.inFlight = {
      name,
      window: Snapshot.makeWindow(chunk, entry.table, rows, Snapshot.parseVisibility(visibility)),
      read: rows.length,
      last: Snapshot.lastKey(entry.table, rows),
      closing: false,
      restart: false,
      stale: false
    }
    if (state.snapshot) state.snapshot.table = name
  })

/** The change that empties the tables on the target, at the position applied so far. @internal */
const truncation = (copy: Copy, names: ReadonlyArray<string>): RowChange => ({
  _tag: "Truncate",
  xid: 0,
  lsn: Changes.formatLsn(copy.options.appliedUpTo()),
  relations: names.map((name) => copy.relations.get(name)!),
  cascade: false,
  restartIdentity: false
})

/**
 * A schema change the stream applied: later chunks of the table read its
 * new columns, and a chunk in flight (read with the old ones) is read again.
 *
 * @internal
 */
const reshape = (copy: Copy, change: Changes.SchemaChange) => {
  const { byName, pending, relations } = copy
  const name = `${change.relation.schema}.${change.relation.table}`
  const table = byName.get(name)
  if (!table) return
  const formatted = new Map(table.columns.map((c) => [c.name, c.formatted]))
  const next: TableInfo = {
    ...table,
    columns: change.relation.columns.map((c) => ({
      ...c,
      formatted: change.columns.find((x) => x.column === c.name)?.newType ?? formatted.get(c.name) ?? "text"
    }))
  }
  byName.set(name, next)
  relations.set(name, Snapshot.relationOf(next))
  const entry = pending.get(name)
  if (entry) pending.set(name, { ...entry, table: next })
  if (copy.inFlight?.name === name) copy.inFlight.stale = true
}

/**
 * A stream transaction about to be applied: schema changes reshape the
 * tables, its keys leave the chunk in flight, and a table emptied at its
 * first chunk's start is emptied before any later change to it.
 *
 * @internal
 */
const touch = (copy: Copy, changes: ReadonlyArray<RowChange>, xid: number): Effect.Effect<void, TargetError> => {
  const { options, truncateDue } = copy
  for (const change of changes) if (change._tag === "SchemaChange") reshape(copy, change)
  if (copy.inFlight) for (const change of changes) copy.inFlight.window.touch(change, xid)
  if (truncateDue.size === 0) return Effect.void
  // A table emptied at its first chunk's start: before any later change to it.
  const due = Array.from(truncateDue).filter((name) =>
    changes.some((c) =>
      c._tag === "Truncate"
        ? c.relations.some((r) => `${r.schema}.${r.table}` === name)
        : `${c.relation.schema}.${c.relation.table}` === name
    )
  )
  if (due.length === 0) return Effect.void
  for (const name of due) truncateDue.delete(name)
  const lsn = Changes.formatLsn(options.appliedUpTo())
  return options.apply(
    { xid: 0, lsn, endLsn: lsn, commitTime: new Date(), changes: [truncation(copy, due)], snapshot: true },
    []
  )
}

/**
 * The high watermark's commit: the chunk's untouched rows are applied with
 * its progress, and the figures move on.
 *
 * @internal
 */
const finishChunk = (copy: Copy, flight: InFlight, commit: Commit) =>
  Effect.gen(function*() {
    const { options, pending } = copy
    copy.inFlight = undefined
    if (flight.stale && !flight.restart) {
      // Read with the old columns: nothing applied, the same chunk is read again.
      yield* options.recordProgress([], Changes.parseLsn(commit.endLsn))
      return
    }
    const relation = copy.relations.get(flight.name)!
    const changes: Array<RowChange> = []
    if (copy.truncateDue.delete(flight.name)) changes.push(truncation(copy, [flight.name]))
    for (const row of flight.window.remaining()) {
      changes.push({ _tag: "Insert", xid: 0, lsn: commit.lsn, relation, row })
    }
    const done = flight.read < options.chunkSize
    const after = flight.restart ? null : done ? "done" as const : flight.last
    const progress: Array<ProgressUpdate> = [{ table: flight.name, after }]
    if (changes.length > 0) {
      yield* options.apply(
        { xid: 0, lsn: commit.lsn, endLsn: commit.endLsn, commitTime: commit.commitTime, changes, snapshot: true },
        progress
      )
    } else {
      yield* options.recordProgress(progress, Changes.parseLsn(commit.endLsn))
    }
    remember(copy, flight.name, after)
    if (after === "done") pending.delete(flight.name)
    else pending.get(flight.name)!.after = after
    const stats = options.state.snapshot
    if (stats) {
      stats.rowsCopied += flight.read
      if (after === "done") stats.tablesDone++
      if (pending.size === 0) {
        stats.running = false
        stats.endedAt = Date.now()
      }
    }
  })

/** The snapshot driver of one session, with the tables left from earlier ones (see the module comment). @internal */
export const makeDriver = (options: DriverOptions) =>
  Effect.gen(function*() {
    const { state } = options
    const copy: Copy = {
      options,
      byName: new Map(options.tables.map((t) => [Snapshot.tableName(t), t])),
      relations: new Map(options.tables.map((t) => [Snapshot.tableName(t), Snapshot.relationOf(t)])),
      pending: new Map<string, Pending>(),
      truncateDue: new Set<string>(),
      inFlight: undefined
    }
    // A new session's figures start over (an interrupted one's are stale).
    if (state.snapshot?.running) state.snapshot = undefined
    yield* add(copy, options.pending)
    const requests = takeRequests(copy)
    const nextChunk = startChunk(copy)
    return {
      busy: () => copy.pending.size > 0 || copy.inFlight !== undefined || state.resnapshot.size > 0,
      step: Effect.suspend(() =>
        requests.pipe(Effect.zipRight(copy.inFlight === undefined && copy.pending.size > 0 ? nextChunk : Effect.void))
      ),
      watermark: (watermark) => {
        const inFlight = copy.inFlight
        if (!inFlight || watermark.chunk !== inFlight.window.chunk) return
        if (watermark.kind === "low") inFlight.window.opened = true
        else inFlight.closing = true
      },
      touch: (changes, xid) => Effect.suspend(() => touch(copy, changes, xid)),
      commit: (commit) =>
        Effect.suspend(() => copy.inFlight?.closing ? finishChunk(copy, copy.inFlight, commit) : Effect.void)
    } satisfies Driver
  })
