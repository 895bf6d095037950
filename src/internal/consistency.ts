/** @internal */
import type * as Connection from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import { globalValue } from "effect/GlobalValue"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as STM from "effect/STM"
import * as TRef from "effect/TRef"
import * as Crypto from "node:crypto"
import type * as Consistency from "../Consistency.js"
import type * as Node from "../Node.js"
import { InvalidToken, ReplicaNotCaughtUp } from "../RouterError.js"
import * as Selection from "../Selection.js"
import * as Topology from "../Topology.js"
import { formatLsn, parseLsn } from "./healthMonitor.js"
import { currentRoute, type Internals, pickReplica, releaseReplica } from "./routing.js"

/** @internal */
export const SessionTag = Context.GenericTag<Consistency.Session, Ref.Ref<Consistency.SessionState>>(
  "effect-sql-router/Consistency/Session"
)

/** @internal */
export const emptyState: Consistency.SessionState = { lsn: undefined, lastWriteAt: undefined }

/** @internal */
export const currentMaxStaleness = globalValue(
  Symbol.for("effect-sql-router/Consistency/currentMaxStaleness"),
  () => FiberRef.unsafeMake<Option.Option<Duration.Duration>>(Option.none())
)

/** @internal */
export const currentReadPolicy = globalValue(
  Symbol.for("effect-sql-router/Consistency/currentReadPolicy"),
  () => FiberRef.unsafeMake<Option.Option<Consistency.ReadPolicy>>(Option.none())
)

const none = Effect.succeed(Option.none<Topology.Replica>())

const minMillis = (a: number | undefined, b: number | undefined) =>
  a === undefined ? b : b === undefined ? a : Math.min(a, b)

/**
 * Asks each healthy replica for its replay position now, and records it:
 * what the monitor last saw may be a probe interval old.
 */
const refreshReplayPositions = (internals: Internals) =>
  Effect.gen(function*() {
    const replicas = yield* STM.commit(TRef.get(internals.topology.replicas))
    const timeout = internals.config.connectTimeout
    yield* Effect.forEach(replicas, (replica) =>
      Effect.gen(function*() {
        if (!(yield* STM.commit(Topology.isHealthy(replica)))) return
        const row = yield* Effect.tryPromise(() =>
          replica.node.pool.query<{ lsn: string | null }>("SELECT pg_last_wal_replay_lsn()::text AS lsn")
        ).pipe(Effect.timeout(timeout), Effect.option)
        const lsn = Option.flatMap(row, (r) => Option.fromNullable(parseLsn(r.rows[0]?.lsn)))
        if (Option.isNone(lsn)) return
        const at = yield* Clock.currentTimeMillis
        yield* STM.commit(TRef.update(replica.probe, (probe): Topology.Probe =>
          probe === undefined
            ? { at, ok: true, replayLsn: lsn.value, lagBytes: undefined, lagMillis: undefined, error: undefined }
            : { ...probe, replayLsn: probe.replayLsn !== undefined && probe.replayLsn > lsn.value ? probe.replayLsn : lsn.value }))
      }), { concurrency: "unbounded", discard: true })
  })

/** Waits (bounded by the policy) until a replica has replayed the session's position. */
const awaitCaughtUp = (internals: Internals, requirement: Selection.Requirement, policy: Consistency.ReadPolicy) =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    const maxWait = Duration.toMillis(policy.maxWait)
    for (;;) {
      yield* refreshReplayPositions(internals)
      const chosen = yield* pickReplica(internals, requirement)
      if (Option.isSome(chosen)) return chosen
      const waited = (yield* Clock.currentTimeMillis) - start
      if (waited >= maxWait) {
        return policy.onNotCaughtUp === "fail"
          ? yield* new ReplicaNotCaughtUp({ required: formatLsn(requirement.minLsn!), waitedMillis: waited })
          : Option.none<Topology.Replica>()
      }
      yield* Effect.sleep(Duration.millis(Math.min(10, maxWait - waited)))
    }
  })

/**
 * Where a read goes: `none` means the primary. Without a session or a
 * staleness bound this is one STM pick; otherwise the session's position,
 * sticky window and staleness bound narrow the choice.
 * @internal
 */
export const chooseRead = (internals: Internals): Effect.Effect<Option.Option<Topology.Replica>, ReplicaNotCaughtUp> =>
  internals.config.primaryReads === "overflow" ? Effect.flatMap(chooseReplica(internals), overflow(internals)) : chooseReplica(internals)

const busy = (node: Node.Node): boolean => {
  const pool = node.pool
  return pool.idleCount === 0 && pool.totalCount >= (pool.options.max ?? 10)
}

/** A busy replica hands the read to the primary when the primary has room. */
const overflow = (internals: Internals) => (chosen: Option.Option<Topology.Replica>) =>
  Option.isNone(chosen) || !busy(chosen.value.node)
    ? Effect.succeed(chosen)
    : Effect.flatMap(STM.commit(TRef.get(internals.topology.primary)), (primary) =>
      busy(primary)
        ? Effect.succeed(chosen)
        : Effect.as(releaseReplica(chosen.value), Option.none<Topology.Replica>()))

const chooseReplica = (internals: Internals): Effect.Effect<Option.Option<Topology.Replica>, ReplicaNotCaughtUp> =>
  Effect.withFiberRuntime((fiber) => {
    const route = fiber.getFiberRef(currentRoute)
    if (route === "primary") return none
    const staleness = fiber.getFiberRef(currentMaxStaleness)
    const session = Context.getOption(fiber.currentContext, SessionTag)
    if (session._tag === "None" && staleness._tag === "None") return pickReplica(internals, internals.requirement)
    return Effect.gen(function*() {
      const state = session._tag === "Some" ? yield* Ref.get(session.value) : emptyState
      const sticky = internals.config.consistency.stickyPrimaryAfterWrite
      if (sticky !== undefined && route !== "replica" && state.lastWriteAt !== undefined) {
        const now = yield* Clock.currentTimeMillis
        if (now - state.lastWriteAt < Duration.toMillis(sticky)) return Option.none<Topology.Replica>()
      }
      const base = internals.requirement
      const requirement: Selection.Requirement = {
        maxLagMillis: minMillis(
          base.maxLagMillis,
          staleness._tag === "Some" ? Duration.toMillis(staleness.value) : undefined
        ),
        maxLagBytes: base.maxLagBytes,
        minLsn: state.lsn
      }
      const chosen = yield* pickReplica(internals, requirement)
      if (Option.isSome(chosen) || state.lsn === undefined) return chosen
      const policy = Option.getOrElse(fiber.getFiberRef(currentReadPolicy), () => internals.config.consistency)
      return yield* awaitCaughtUp(internals, requirement, policy)
    })
  })

const lsnQuery = "SELECT pg_current_wal_insert_lsn()::text AS lsn"

/**
 * After a commit on the primary: records where the session must read from.
 * The insert position is taken after COMMIT returned, so it cannot precede
 * the commit record (pg_current_wal_lsn could, with asynchronous commit).
 * Sticky mode records only the time. No session: nothing to do, no query.
 * @internal
 */
export const recordCommit = (
  internals: Internals,
  lsnOf: Effect.Effect<ReadonlyArray<{ readonly lsn?: unknown }>, unknown>
): Effect.Effect<void> =>
  Effect.withFiberRuntime((fiber) => {
    const session = Context.getOption(fiber.currentContext, SessionTag)
    if (session._tag === "None") return Effect.void
    return Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      if (internals.config.consistency.stickyPrimaryAfterWrite !== undefined) {
        return yield* Ref.update(session.value, (s) => ({ ...s, lastWriteAt: now }))
      }
      // A failed capture must not fail a write that committed; without the
      // position the session falls back to the primary for its next read.
      const rows = yield* Effect.either(lsnOf)
      const lsn = rows._tag === "Right" ? parseLsn(String(rows.right[0]?.lsn ?? "")) : undefined
      yield* Ref.update(session.value, (s) => ({
        lsn: lsn === undefined ? s.lsn : s.lsn !== undefined && s.lsn > lsn ? s.lsn : lsn,
        lastWriteAt: now
      }))
      if (lsn === undefined) yield* stickUntilCaughtUp(internals, session.value)
    })
  })

/** Without a captured position, the safe choice is the primary's current one. */
const stickUntilCaughtUp = (internals: Internals, session: Ref.Ref<Consistency.SessionState>) =>
  Effect.flatMap(STM.commit(TRef.get(internals.topology.primaryLsn)), (lsn) =>
    Ref.update(session, (s) => ({ ...s, lsn: lsn ?? BigInt(Number.MAX_SAFE_INTEGER) })))

/**
 * COMMIT for a transaction on the primary. In a causal session that wants
 * LSNs, the position is read in the same round trip: `COMMIT; SELECT
 * pg_current_wal_insert_lsn()` as one simple-protocol message. A failed
 * COMMIT stops the message there, so this fails exactly when COMMIT does.
 * @internal
 */
export const commitRecording = (internals: Internals) => (connection: Connection.Connection): Effect.Effect<void, SqlError> =>
  Effect.withFiberRuntime((fiber) => {
    const session = Context.getOption(fiber.currentContext, SessionTag)
    const plain = Effect.asVoid(connection.executeUnprepared("COMMIT", [], undefined))
    if (session._tag === "None") return plain
    if (internals.config.consistency.stickyPrimaryAfterWrite !== undefined) {
      return Effect.zipRight(plain, recordCommit(internals, Effect.succeed([])))
    }
    return Effect.flatMap(
      connection.executeUnprepared(`COMMIT; ${lsnQuery}`, [], undefined),
      (results) => recordCommit(internals, Effect.succeed((results as ReadonlyArray<ReadonlyArray<{ lsn?: unknown }>>)[1] ?? []))
    )
  })

/** After autocommit writes on the primary: any connection sees the global insert position. @internal */
export const recordCommitOnNode = (internals: Internals, node: Node.Node) =>
  recordCommit(internals, node.connection.execute(lsnQuery, [], undefined))

// -----------------------------------------------------------------------------
// Tokens: v1.<lsn hex>.<system identifier base36>.<HMAC-SHA256, 16 bytes, base64url>
// -----------------------------------------------------------------------------

const mac = (secret: Redacted.Redacted<string>, payload: string) =>
  Crypto.createHmac("sha256", Redacted.value(secret)).update(payload).digest().subarray(0, 16)

/** @internal */
export const encodeToken = (internals: Pick<Internals, "config" | "systemIdentifier">, state: Consistency.SessionState): string => {
  const payload = `v1.${(state.lsn ?? 0n).toString(16)}.${BigInt(internals.systemIdentifier).toString(36)}`
  return `${payload}.${mac(internals.config.consistency.tokenSecret, payload).toString("base64url")}`
}

/** @internal */
export const decodeToken = (internals: Pick<Internals, "config" | "systemIdentifier">, token: string): Effect.Effect<Consistency.SessionState, InvalidToken> =>
  Effect.suspend(() => {
    const invalid = (reason: string) => Effect.fail(new InvalidToken({ reason }))
    if (token.length > 200) return invalid("too long")
    const parts = token.split(".")
    if (parts.length !== 4 || parts[0] !== "v1") return invalid("not a v1 token")
    const [version, lsnHex, system, signature] = parts as [string, string, string, string]
    if (!/^[0-9a-f]{1,16}$/.test(lsnHex) || !/^[0-9a-z]{1,14}$/.test(system)) return invalid("malformed")
    const expected = mac(internals.config.consistency.tokenSecret, `${version}.${lsnHex}.${system}`)
    const given = Buffer.from(signature, "base64url")
    // Buffer's decoder is lenient (padding, the standard alphabet, spare bits): one spelling only.
    if (given.toString("base64url") !== signature) return invalid("malformed signature")
    if (given.length !== expected.length || !Crypto.timingSafeEqual(given, expected)) {
      return invalid("bad signature (tampered, or signed with another tokenSecret)")
    }
    if (system !== BigInt(internals.systemIdentifier).toString(36)) return invalid("issued for another cluster")
    const lsn = BigInt(`0x${lsnHex}`)
    return Effect.succeed({ lsn: lsn === 0n ? undefined : lsn, lastWriteAt: undefined })
  })

/** Runs `effect` in the current session, or in a new one. @internal */
export const session = <A, E, R>(effect: Effect.Effect<A, E, R>, initial: Consistency.SessionState = emptyState) =>
  Effect.withFiberRuntime<A, E, Exclude<R, Consistency.Session>>((fiber) =>
    Context.getOption(fiber.currentContext, SessionTag)._tag === "Some"
      ? effect as Effect.Effect<A, E, Exclude<R, Consistency.Session>>
      : Effect.flatMap(Ref.make(initial), (ref) => Effect.provideService(effect, SessionTag, ref)) as Effect.Effect<
        A,
        E,
        Exclude<R, Consistency.Session>
      >
  )
