/**
 * The event log on the router: appends per second with 1 and 16 appenders
 * (each append is one primary transaction that reads the system version and
 * appends at it; the 16 race and decide again on `VersionMismatch`), and
 * events read per second from replicas, by `readOnly` pages and by `stream`.
 * Rounds interleave the kinds; medians are reported.
 */
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import * as EventLog from "#lib/EventLog.js"
import * as SqlRouter from "#lib/SqlRouter.js"
import * as BenchCluster from "./cluster.js"

export interface EventLogResult {
  readonly appendsPerSecond1: number
  readonly appendsPerSecond16: number
  /** VersionMismatch per successful append at 16 appenders. */
  readonly conflictsPerAppend16: number
  /** `readOnly` + `events({ limit: 100 })` at concurrency 8, events per second. */
  readonly pageEventsPerSecond: number
  /** `EventLog.stream({ pageSize: 1000 })` over the whole read log, one consumer. */
  readonly streamEventsPerSecond: number
  readonly readLogSize: number
  readonly replicas: number
  readonly rounds: number
  /** The per-round figures behind the medians, for their ranges. */
  readonly perRound: {
    readonly appends1: ReadonlyArray<number>
    readonly appends16: ReadonlyArray<number>
    readonly conflicts16: ReadonlyArray<number>
    readonly pageEvents: ReadonlyArray<number>
    readonly streamEvents: ReadonlyArray<number>
  }
}

const medianOf = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[sorted.length >> 1]!
}

/** Runs `worker` on `concurrency` fibers for `millis`; returns what they counted, per second. */
const perSecond = <E, R>(concurrency: number, millis: number, worker: Effect.Effect<number, E, R>) =>
  Effect.gen(function*() {
    const done = yield* Ref.make(0)
    const deadline = performance.now() + millis
    const started = performance.now()
    yield* Effect.forEach(Array.from({ length: concurrency }), () =>
      Effect.gen(function*() {
        while (performance.now() < deadline) {
          const n = yield* worker
          yield* Ref.update(done, (total) => total + n)
        }
      }), { concurrency: "unbounded", discard: true })
    return ((yield* Ref.get(done)) * 1000) / (performance.now() - started)
  })

export const run = (bench: BenchCluster.BenchCluster, options: { readonly quick: boolean }) =>
  Effect.gen(function*() {
    const router = yield* SqlRouter.make({
      primary: bench.primary.url,
      replicas: bench.replicas.map((node) => node.url),
      primaryMaxSize: bench.poolSize,
      replicaMaxSizeEach: bench.poolSize,
      health: { enabled: false }
    })
    const provide = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.provideService(effect, SqlRouter.SqlRouter, router)
    const appends = yield* provide(EventLog.make({ table: "bench_event_log" }))
    const reads = yield* provide(EventLog.make({ table: "bench_event_read" }))
    const readLogSize = options.quick ? 20_000 : 100_000
    yield* bench.cluster.query(
      bench.primary,
      `INSERT INTO bench_event_read (version, type_name, payload)
       SELECT g, 'Bench', jsonb_build_object('n', g, 'label', 'event ' || g) FROM generate_series(1, ${readLogSize}) g`
    )
    yield* bench.cluster.query(bench.primary, "VACUUM ANALYZE bench_event_read")
    yield* bench.cluster.awaitReplication()

    const conflicts = yield* Ref.make(0)
    const appendOne = appends.readWrite((tx) =>
      Effect.flatMap(tx.systemVersion, (version) => tx.appendEvent(version, { typeName: "Bench", payload: { at: version } }))
    ).pipe(
      Effect.tapError((error) => error._tag === "VersionMismatch" ? Ref.update(conflicts, (n) => n + 1) : Effect.void),
      Effect.retry({ while: (error) => error._tag === "VersionMismatch" }),
      Effect.as(1)
    )
    const page = Effect.suspend(() => {
      const atVersion = 1 + Math.floor(Math.random() * (readLogSize - 100))
      return Effect.map(reads.readOnly((reader) => reader.events({ atVersion, limit: 100 })), (events) => events.length)
    })
    const streamed = Effect.gen(function*() {
      const started = performance.now()
      const n = yield* Stream.runCount(reads.stream({ pageSize: 1000 }))
      return (n * 1000) / (performance.now() - started)
    })

    const millis = options.quick ? 1000 : 2000
    const rounds = 5
    yield* perSecond(4, 300, appendOne) // warm-up: pools, plans
    yield* perSecond(4, 300, page)
    const one: Array<number> = []
    const sixteen: Array<number> = []
    const conflictRatios: Array<number> = []
    const pages: Array<number> = []
    const streams: Array<number> = []
    for (let round = 0; round < rounds; round++) {
      one.push(yield* perSecond(1, millis, appendOne))
      yield* Ref.set(conflicts, 0)
      const rate = yield* perSecond(16, millis, appendOne)
      sixteen.push(rate)
      conflictRatios.push((yield* Ref.get(conflicts)) / Math.max(1, (rate * millis) / 1000))
      pages.push(yield* perSecond(8, millis, page))
      streams.push(yield* streamed)
    }
    return {
      appendsPerSecond1: medianOf(one),
      appendsPerSecond16: medianOf(sixteen),
      conflictsPerAppend16: medianOf(conflictRatios),
      pageEventsPerSecond: medianOf(pages),
      streamEventsPerSecond: medianOf(streams),
      readLogSize,
      replicas: bench.replicas.length,
      rounds,
      perRound: { appends1: one, appends16: sixteen, conflicts16: conflictRatios, pageEvents: pages, streamEvents: streams }
    } satisfies EventLogResult
  }).pipe(Effect.scoped)
