/**
 * A frozen replica under concurrent readers: the longest gap with no
 * completed read (issue 16, item 4), without hedging (eviction by the probe,
 * `readTimeout` as the last resort) and with `hedgeAfter`. Not part of
 * `npm run bench` nor of the tests. `npx tsx bench/hedge.ts [readers] [hedgeAfter ms]`
 * (default 16 readers, 50 ms); NOFREEZE=1 and NOPROBES=1 as below. PostgreSQL runs,
 * so take the shared lock.
 *
 * Each round: readers loop `SELECT` through a fresh routed client; after a
 * warm-up one replica is frozen (SIGSTOP) for 2 s, then thawed; the gap is
 * measured from the freeze until the readers stop.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { performance } from "node:perf_hooks"
import * as RoutedClient from "#lib/RoutedClient.js"
import type * as RouterConfig from "#lib/RouterConfig.js"
import * as BenchCluster from "./cluster.js"
import { routerConfig } from "./systems.js"

const readers = Number(process.argv[2] ?? 16)
const hedgeMillis = Number(process.argv[3] ?? 50)
// NOFREEZE=1: the same rounds with no replica frozen (what hedging costs when it never fires).
const freeze = process.env.NOFREEZE !== "1"
// NOPROBES=1: health probes off, so only a read's failure (readTimeout) takes the frozen replica out.
// With hedging it stays in: the hedge answers first and the slow statement is cancelled before its timeout.
const probes = process.env.NOPROBES !== "1"

const round = (bench: BenchCluster.BenchCluster, name: string, extra: Partial<RouterConfig.RouterConfig>) =>
  Effect.gen(function*() {
    const { client } = yield* RoutedClient.make({
      ...routerConfig(bench, bench.replicas, { readTimeout: "1 second", ...extra }),
      health: probes
        ? { interval: "200 millis", timeout: "500 millis", failureThreshold: 1, successThreshold: 2 }
        : { enabled: false }
    })
    let last = performance.now()
    let longest = 0
    let measuring = false
    let completed = 0
    let failed = 0
    const read = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT v FROM bench_kv WHERE k = ${1 + Math.floor(Math.random() * BenchCluster.keys)}`)
    const reader = Effect.forever(
      Effect.matchEffect(Effect.provideService(read, SqlClient.SqlClient, client), {
        onFailure: () => Effect.sync(() => void failed++),
        onSuccess: () =>
          Effect.sync(() => {
            const now = performance.now()
            if (measuring && now - last > longest) longest = now - last
            last = now
            completed++
          })
      })
    )
    const fibers = yield* Effect.forEach(Array.from({ length: readers }), () => Effect.fork(reader))
    yield* Effect.sleep("1 second")
    const victim = bench.replicas[0]!
    const before = completed
    measuring = true
    last = performance.now()
    if (freeze) yield* bench.cluster.freeze(victim)
    yield* Effect.sleep("2 seconds")
    if (freeze) yield* bench.cluster.thaw(victim)
    yield* Effect.sleep("1 second")
    measuring = false
    yield* Fiber.interruptAll(fibers)
    process.stdout.write(
      `${name.padEnd(34)} longest gap ${longest.toFixed(0).padStart(5)} ms   ${completed - before} reads in 3 s, ${failed} failed\n`
    )
  }).pipe(Effect.scoped)

const program = Effect.gen(function*() {
  const bench = yield* BenchCluster.make({ replicas: 2 })
  process.stdout.write(
    `${readers} readers, replica-0 ${freeze ? "frozen for 2 s" : "not frozen"}; ` +
      `${probes ? "probes every 200 ms" : "no probes"}, readTimeout 1 s\n`
  )
  for (let i = 0; i < 3; i++) {
    yield* round(bench, "no hedging", {})
    yield* round(bench, `hedgeAfter ${hedgeMillis} ms`, { hedgeAfter: hedgeMillis })
  }
}).pipe(Effect.scoped)

Effect.runPromise(program).then(() => process.exit(0), (e) => {
  console.error(e)
  process.exit(1)
})
