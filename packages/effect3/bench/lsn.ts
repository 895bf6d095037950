/**
 * What read-your-writes costs a writer: a write transaction through
 * `SqlRouter.transaction` with and without a causal session. In a session the
 * router runs `SELECT pg_current_wal_insert_lsn()` on the transaction's
 * connection after COMMIT, one more round trip. Sequential transactions
 * (concurrency 1) isolate that round trip; rounds interleave the two kinds.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as SqlRouter from "#lib/SqlRouter.js"
import * as BenchCluster from "./cluster.js"

export interface LsnResult {
  readonly transactions: number
  readonly plainUs: number
  readonly sessionUs: number
  readonly addedUs: number
  readonly rounds: number
  /** µs per transaction in each round, and what the capture added in each (paired by round). */
  readonly plainPerRound: ReadonlyArray<number>
  readonly sessionPerRound: ReadonlyArray<number>
  readonly addedPerRound: ReadonlyArray<number>
}

const medianOf = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[sorted.length >> 1]!
}

export const run = (bench: BenchCluster.BenchCluster, options: { readonly quick: boolean }) =>
  Effect.gen(function*() {
    const router = yield* SqlRouter.make({
      primary: bench.primary.url,
      replicas: [],
      primaryMaxSize: 2,
      health: { enabled: false }
    })
    const write = (k: number) =>
      router.transaction(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`UPDATE bench_kv SET v = v + 1 WHERE k = ${k}`))
    const time = (n: number, inSession: boolean) =>
      Effect.gen(function*() {
        const body = Effect.forEach(Array.from({ length: n }, (_, i) => (i % BenchCluster.keys) + 1), write, {
          discard: true
        })
        const started = performance.now()
        yield* inSession ? SqlRouter.session(body) : body
        return ((performance.now() - started) * 1000) / n
      })
    const n = options.quick ? 300 : 1500
    const rounds = options.quick ? 5 : 7
    yield* time(100, false)
    const plain: Array<number> = []
    const session: Array<number> = []
    for (let round = 0; round < rounds; round++) {
      // Alternate the order so that drift favours neither.
      if (round % 2 === 0) {
        plain.push(yield* time(n, false))
        session.push(yield* time(n, true))
      } else {
        session.push(yield* time(n, true))
        plain.push(yield* time(n, false))
      }
    }
    const plainUs = medianOf(plain)
    const sessionUs = medianOf(session)
    return {
      transactions: n * rounds,
      rounds,
      plainUs,
      sessionUs,
      addedUs: sessionUs - plainUs,
      plainPerRound: plain,
      sessionPerRound: session,
      addedPerRound: plain.map((p, i) => session[i]! - p)
    } satisfies LsnResult
  }).pipe(Effect.scoped)
