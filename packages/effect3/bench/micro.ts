/**
 * Micro-benchmarks of the routing hot path, without the network:
 * - the router's per-statement decision (`pickReplica` + `releaseReplica`, one
 *   STM commit each) on a router built over the cluster, per strategy;
 * - the classifier over a corpus of varied statements, cached and uncached.
 * Variants run interleaved, repetition after repetition (5, also in a quick
 * run), and each figure is the best of the repetitions, by wall time and by
 * process CPU time: other work on the host stretches wall time, rarely CPU
 * time. Every repetition is kept too: a target is judged on the worst one.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as Connection from "@effect/sql/SqlConnection"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as STM from "effect/STM"
import * as Stream from "effect/Stream"
import * as TRef from "effect/TRef"
import { performance } from "node:perf_hooks"
import * as Classifier from "#lib/Classifier.js"
import type * as Node from "#lib/Node.js"
import type * as RouterConfig from "#lib/RouterConfig.js"
import * as Routing from "#lib/internal/routing/decision.js"
import * as RouterInternal from "#lib/internal/sqlRouter.js"
import type * as SqlRouter from "#lib/SqlRouter.js"
import * as Selection from "#lib/Selection.js"
import * as Topology from "#lib/Topology.js"
import type { BenchCluster } from "./cluster.js"
import * as Load from "./load.js"
import { routerConfig } from "./systems.js"

/** ~50 statements of the kinds applications send, reads and writes, with comments and literals. */
export const corpus: ReadonlyArray<string> = [
  "SELECT 1",
  "SELECT v FROM bench_kv WHERE k = $1",
  "SELECT id, name, email FROM users WHERE id = $1",
  "select * from orders where customer_id = $1 order by created_at desc limit 20",
  "SELECT u.id, u.name, count(o.id) AS orders FROM users u LEFT JOIN orders o ON o.user_id = u.id GROUP BY u.id, u.name HAVING count(o.id) > $1",
  "WITH recent AS (SELECT * FROM events WHERE at > now() - interval '1 day') SELECT kind, count(*) FROM recent GROUP BY kind",
  "SELECT * FROM products WHERE name ILIKE $1 AND price BETWEEN $2 AND $3 ORDER BY price",
  "/* dashboard */ SELECT date_trunc('hour', at) AS h, count(*) FROM page_views GROUP BY 1 ORDER BY 1",
  "-- count users\nSELECT count(*) FROM users",
  "SELECT 'it''s an UPDATE in a string', $1::int",
  "SELECT $$ DELETE FROM users $$ AS text",
  "SELECT \"update\", \"insert\" FROM \"weird table\" WHERE \"delete\" = $1",
  "SELECT json_build_object('id', id, 'tags', tags) FROM posts WHERE author_id = $1",
  "SELECT * FROM accounts WHERE id = ANY($1::int[])",
  "SELECT EXISTS (SELECT 1 FROM sessions WHERE token = $1 AND expires_at > now())",
  "VALUES (1, 'a'), (2, 'b')",
  "TABLE settings",
  "SHOW search_path",
  "EXPLAIN SELECT * FROM users WHERE email = $1",
  "SELECT current_setting('cluster_name')",
  "SELECT pg_sleep(0.005)",
  "SELECT a.*, b.* FROM a JOIN b USING (id) JOIN c ON c.a_id = a.id WHERE c.flag AND a.created_at > $1",
  "SELECT id FROM jobs WHERE state = 'queued' ORDER BY priority DESC, id LIMIT 10",
  "SELECT sum(amount) OVER (PARTITION BY account_id ORDER BY at) FROM ledger WHERE account_id = $1",
  "SELECT * FROM (SELECT id, row_number() OVER (ORDER BY score DESC) AS rn FROM players) ranked WHERE rn <= 10",
  "SELECT lower(email), upper(name), coalesce(nickname, name) FROM users WHERE id = $1",
  "SELECT * FROM t1 UNION ALL SELECT * FROM t2",
  "SELECT * FROM audit WHERE payload @> $1::jsonb",
  "SELECT id FROM users WHERE created_at::date = current_date",
  "SELECT 1 FROM pg_class WHERE relname = 'bench_kv'",
  "UPDATE bench_kv SET v = v + 1 WHERE k = $1",
  "INSERT INTO users (name, email) VALUES ($1, $2) RETURNING id",
  "DELETE FROM sessions WHERE expires_at < now()",
  "UPDATE orders SET state = 'shipped', shipped_at = now() WHERE id = $1",
  "INSERT INTO events (kind, payload) SELECT 'copy', payload FROM staging",
  "MERGE INTO stock s USING deliveries d ON s.item = d.item WHEN MATCHED THEN UPDATE SET qty = s.qty + d.qty",
  "SELECT * FROM jobs WHERE state = 'queued' LIMIT 1 FOR UPDATE SKIP LOCKED",
  "SELECT * FROM accounts WHERE id = $1 FOR SHARE",
  "SELECT nextval('users_id_seq')",
  "SELECT pg_advisory_lock($1)",
  "SELECT set_config('app.user', $1, false)",
  "WITH moved AS (DELETE FROM queue WHERE id = $1 RETURNING *) INSERT INTO done SELECT * FROM moved",
  "WITH d AS (UPDATE t SET x = 1 RETURNING *) SELECT * FROM d",
  "SELECT * INTO backup_users FROM users",
  "CREATE TABLE IF NOT EXISTS kv (k text PRIMARY KEY, v text)",
  "ALTER TABLE users ADD COLUMN last_seen timestamptz",
  "BEGIN",
  "COMMIT",
  "SELECT 1; DELETE FROM users",
  "EXPLAIN ANALYZE DELETE FROM users WHERE id = $1",
  "COPY users TO STDOUT WITH (FORMAT csv)",
  "COPY users FROM STDIN",
  "TRUNCATE sessions",
  "VACUUM ANALYZE bench_kv"
]

export interface DecisionResult {
  readonly label: string
  /** Best wall time per operation, µs. */
  readonly usPerOp: number
  /** Best process CPU time per operation, µs. */
  readonly cpuUsPerOp: number
  readonly iterations: number
  /** CPU µs per operation in every repetition: the targets are judged on the worst one. */
  readonly cpuUsPerRep: ReadonlyArray<number>
}

export interface ClassifierResult {
  readonly label: string
  /** Best of the repetitions, by wall time. */
  readonly opsPerSec: number
  /** Best of the repetitions, by process CPU time. */
  readonly opsPerCpuSec: number
  readonly iterations: number
  /** Classifications per second (wall) in every repetition: the targets are judged on the worst one. */
  readonly opsPerSecPerRep: ReadonlyArray<number>
}

export interface PathResult {
  readonly label: string
  readonly cpuUsPerOp: number
  readonly opsPerSec: number
}

export interface MicroResults {
  readonly decision: ReadonlyArray<DecisionResult>
  /** Client CPU per statement with a fake connection: the library's cost without network or servers. */
  readonly paths: ReadonlyArray<PathResult>
  readonly classifier: ReadonlyArray<ClassifierResult>
  readonly corpusSize: number
  readonly corpusReads: number
}

export interface Options {
  readonly quick: boolean
}

/**
 * One pick + release, as a routed read does around its statement: the pick
 * and the in-flight count in one synchronous step without an STM commit
 * (`pickReplica`), the release in the driver's callback.
 */
const decide = (internals: RouterInternal.RouterState): Effect.Effect<void> =>
  Effect.flatMap(RouterInternal.pickReplica(internals, internals.requirement), (chosen) =>
    Option.isSome(chosen) ? Effect.sync(() => Routing.unsafeRelease(chosen.value)) : Effect.die("no replica was eligible"))

/**
 * The same choice as one STM transaction (`Selection.acquire`, the public
 * form, and the read path's until 0.1.0's hot-path work): what the commit
 * costs over the synchronous pick.
 */
const decideInStm = (internals: RouterInternal.RouterState): Effect.Effect<void> =>
  Effect.flatMap(
    STM.commit(Selection.acquire(internals.config.selection, internals.topology, internals.requirement, 0)),
    (chosen) =>
      Option.isSome(chosen) ? Effect.sync(() => Routing.unsafeRelease(chosen.value)) : Effect.die("no replica was eligible")
  )

interface Timing {
  readonly wallUs: number
  readonly cpuUs: number
}

const cpuNow = () => {
  const usage = process.cpuUsage()
  return usage.user + usage.system
}

/** Wall and CPU µs per iteration of `step`, run `n` times in one fiber (no runtime entry per op). */
const timeLoop = (step: Effect.Effect<void>, n: number): Effect.Effect<Timing> =>
  Effect.suspend(() => {
    let i = 0
    const loop: Effect.Effect<void> = Effect.suspend(() => i++ < n ? Effect.flatMap(step, () => loop) : Effect.void)
    const t0 = performance.now()
    const c0 = cpuNow()
    return Effect.map(loop, () => ({ wallUs: ((performance.now() - t0) * 1000) / n, cpuUs: (cpuNow() - c0) / n }))
  })

/** Every case once per repetition, in turn; the best of the repetitions per case. */
const timeDecisions = (
  cases: ReadonlyArray<readonly [label: string, step: Effect.Effect<void>]>,
  n: number,
  reps: number
): Effect.Effect<Array<DecisionResult>> =>
  Effect.gen(function*() {
    for (const [, step] of cases) yield* timeLoop(step, Math.max(1, n >> 2)) // warm-up
    const best = cases.map(() => ({ wallUs: Infinity, cpuUs: Infinity }))
    const all = cases.map((): Array<number> => [])
    for (let r = 0; r < reps; r++) {
      for (const [i, [, step]] of cases.entries()) {
        const t = yield* timeLoop(step, n)
        best[i] = { wallUs: Math.min(best[i]!.wallUs, t.wallUs), cpuUs: Math.min(best[i]!.cpuUs, t.cpuUs) }
        all[i]!.push(t.cpuUs)
      }
    }
    return cases.map(([label], i) => ({
      label,
      usPerOp: best[i]!.wallUs,
      cpuUsPerOp: best[i]!.cpuUs,
      iterations: n,
      cpuUsPerRep: all[i]!
    }))
  })

/** The router's decision cost, per strategy, on a router over the cluster's replicas. */
export const decisions = (
  bench: BenchCluster,
  options: Options
): Effect.Effect<ReadonlyArray<DecisionResult>, SqlRouter.BuildError, Scope.Scope> =>
  Effect.gen(function*() {
    const n = options.quick ? 50_000 : 100_000
    const reps = 5
    const base = yield* RouterInternal.makeState(routerConfig(bench))
    const withSelection = (selection: RouterConfig.Selection): RouterInternal.RouterState => ({
      ...base,
      config: { ...base.config, selection }
    })
    const classifier = Classifier.make()
    const statement = "SELECT v FROM bench_kv WHERE k = $1"
    const ref = yield* STM.commit(TRef.make(0))
    return yield* timeDecisions([
      ["baseline: `Effect.void` step (loop overhead)", Effect.void],
      ...(["round-robin", "least-connections", "random", "least-lag"] as const).map((selection) =>
        [`pick + release, ${selection}`, decide(withSelection(selection))] as const
      ),
      [
        "classify (cached) + pick + release, round-robin",
        Effect.suspend(() => classifier.classify(statement) === "read" ? decide(base) : Effect.die("misclassified"))
      ],
      ["reference: one trivial STM commit (`TRef.get`)", STM.commit(TRef.get(ref))],
      ["reference: pick + release, round-robin, as one STM commit (`Selection.acquire`)", decideInStm(base)]
    ], n, reps)
  })

interface ClassifierCase {
  readonly label: string
  readonly classify: (sql: string) => Classifier.Intent
  readonly textsFor: () => ReadonlyArray<string>
  readonly n: number
}

/** Every case once per repetition, in turn (after one warm-up pass); the best repetition per case. */
const timeClassifiers = (cases: ReadonlyArray<ClassifierCase>, reps: number): Array<ClassifierResult> => {
  let sink = 0
  const once = ({ classify, n, textsFor }: ClassifierCase): Timing => {
    const texts = textsFor()
    const t0 = performance.now()
    const c0 = cpuNow()
    for (let i = 0, j = 0; i < n; i++, j = j + 1 === texts.length ? 0 : j + 1) {
      if (classify(texts[j]!) === "read") sink++
    }
    return { wallUs: (performance.now() - t0) * 1000, cpuUs: cpuNow() - c0 }
  }
  for (const c of cases) once(c)
  const best = cases.map(() => ({ wallUs: Infinity, cpuUs: Infinity }))
  const all = cases.map((): Array<number> => [])
  for (let r = 0; r < reps; r++) {
    for (const [i, c] of cases.entries()) {
      const t = once(c)
      best[i] = { wallUs: Math.min(best[i]!.wallUs, t.wallUs), cpuUs: Math.min(best[i]!.cpuUs, t.cpuUs) }
      all[i]!.push(c.n / (t.wallUs / 1e6))
    }
  }
  if (sink < 0) throw new Error("unreachable")
  return cases.map((c, i) => ({
    label: c.label,
    opsPerSec: c.n / (best[i]!.wallUs / 1e6),
    opsPerCpuSec: c.n / (Math.max(1, best[i]!.cpuUs) / 1e6),
    iterations: c.n,
    opsPerSecPerRep: all[i]!
  }))
}

/**
 * Fresh copies of the corpus texts, never hashed: the statements @effect/sql
 * compiles are new strings each time, so a cache hit still hashes and
 * compares the whole text.
 */
const freshCopies = (count: number): Array<string> => {
  const out: Array<string> = []
  for (let i = 0; i < count; i++) out.push(corpus[i % corpus.length]!.split("").join(""))
  return out
}

export const classifier = (options: Options): ReadonlyArray<ClassifierResult> => {
  const reps = 5
  const cachedN = options.quick ? 1_000_000 : 3_000_000
  const freshN = options.quick ? 100_000 : 300_000
  const uncachedN = options.quick ? 100_000 : 300_000
  const cached = Classifier.make()
  const uncached = Classifier.make({ cacheSize: 0 })
  return timeClassifiers([
    { label: "cached, the same string objects repeated", classify: cached.classify, textsFor: () => corpus, n: cachedN },
    {
      label: "cached, a fresh string per call (as compiled statements are)",
      classify: cached.classify,
      textsFor: () => freshCopies(freshN),
      n: freshN
    },
    { label: "uncached (`cacheSize: 0`)", classify: uncached.classify, textsFor: () => corpus, n: uncachedN }
  ], reps)
}

/** An I/O completion as a driver delivers it: a callback on a later turn of the event loop. */
const fakeIo = <A>(value: A): Effect.Effect<A> =>
  Effect.async<A>((resume) => {
    setImmediate(() => resume(Effect.succeed(value)))
  })

const oneRow: ReadonlyArray<any> = [{ "?column?": 1 }]

const fakeConnection: Connection.Connection = {
  execute: () => fakeIo(oneRow),
  executeUnprepared: () => fakeIo(oneRow),
  executeRaw: () => fakeIo({ rows: oneRow }),
  executeValues: () => fakeIo([[1]]),
  executeStream: () => Stream.die("the fake connection does not stream")
}

/**
 * The statement paths of the systems, with every connection replaced by a
 * fake one: 32 fibers in a closed loop, each call one `runPromise`, as in the
 * load runs. What remains is the client CPU the library spends per statement.
 */
export const statementPaths = (
  bench: BenchCluster,
  options: Options
): Effect.Effect<ReadonlyArray<PathResult>, SqlRouter.BuildError, Scope.Scope> =>
  Effect.gen(function*() {
    const real = yield* RouterInternal.makeState(routerConfig(bench))
    const client = yield* SqlClient.make({
      acquirer: Effect.succeed(fakeConnection),
      compiler: PgClient.makeCompiler(),
      spanAttributes: [["db.system.name", "postgresql"]]
    }).pipe(Effect.provideService(Reactivity.Reactivity, real.reactivity))
    const realPrimary = yield* STM.commit(TRef.get(real.topology.primary))
    // A real node's record with its client and connection swapped for fakes.
    const fakeNode = (id: string, role: Node.Role): Node.Node => ({
      ...realPrimary,
      id,
      role,
      client: client as unknown as PgClient.PgClient,
      connection: fakeConnection,
      served: { reads: 0, writes: 0 }
    })
    const topology = yield* STM.commit(
      STM.flatMap(
        STM.all([Topology.makeReplica(fakeNode("replica-0", "replica"), true), Topology.makeReplica(fakeNode("replica-1", "replica"), true)]),
        (replicas) => Topology.make(fakeNode("primary", "primary"), replicas)
      )
    )
    const internals: RouterInternal.RouterState = { ...real, topology }
    const router = RouterInternal.fromState(internals)
    const RoutedInternal = yield* Effect.promise(() => import("#lib/internal/routedClient.js").then((m) => m, () => undefined))
    const routed = RoutedInternal === undefined ? undefined : yield* RoutedInternal.make(internals)
    const runtime = yield* Effect.acquireRelease(
      Effect.sync(() => ManagedRuntime.make(Layer.empty)),
      (runtime) => Effect.promise(() => runtime.dispose())
    )
    const statement = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`)
    const nodeContext = Context.make(SqlClient.SqlClient, client).pipe(
      Context.add(PgClient.PgClient, client as unknown as PgClient.PgClient)
    )
    const cases: Array<readonly [string, () => Promise<unknown>]> = [
      ["`runPromise` of the fake I/O alone (the floor)", () => runtime.runPromise(fakeIo(oneRow))],
      [
        "`pickReplica` + `releaseReplica` around the fake I/O",
        () =>
          runtime.runPromise(Effect.flatMap(RouterInternal.pickReplica(internals, internals.requirement), (chosen) =>
            Option.isSome(chosen) ? Effect.ensuring(fakeIo(oneRow), RouterInternal.releaseReplica(chosen.value)) : fakeIo(oneRow)))
      ],
      [
        "`Effect.provide` of a node's SqlClient/PgClient context around the fake I/O (as `withRead` does)",
        () => runtime.runPromise(Effect.provide(fakeIo(oneRow), nodeContext))
      ],
      ["@effect/sql statement `sql`SELECT 1`` on a plain SqlClient (the PgClient path)", () => runtime.runPromise(client`SELECT 1`)],
      ["`SqlRouter.withRead` around that statement", () => runtime.runPromise(router.withRead(statement))],
      ...(routed === undefined ? [] : [["RoutedClient statement `sql`SELECT 1``", () => runtime.runPromise(routed`SELECT 1`)] as const])
    ]
    const reps = options.quick ? 1 : 3
    const samples = new Map<string, Array<Load.LoadResult>>()
    for (let r = 0; r < reps; r++) {
      for (const [label, operation] of cases) {
        const result = yield* Effect.promise(() =>
          Load.run(operation, { concurrency: 32, durationMs: options.quick ? 600 : 1000, warmupMs: 200 }))
        samples.set(label, [...(samples.get(label) ?? []), result])
      }
    }
    return cases.map(([label]) => {
      const results = samples.get(label) ?? []
      return {
        label,
        cpuUsPerOp: Math.min(...results.map((r) => r.cpuUsPerOp)),
        opsPerSec: Math.max(...results.map((r) => r.qps))
      }
    })
  })

export const run = (
  bench: BenchCluster,
  options: Options
): Effect.Effect<MicroResults, SqlRouter.BuildError, Scope.Scope> =>
  Effect.map(Effect.zip(decisions(bench, options), statementPaths(bench, options)), ([decision, paths]) => ({
    decision,
    paths,
    classifier: classifier(options),
    corpusSize: corpus.length,
    corpusReads: corpus.filter((text) => Classifier.make({ cacheSize: 0 }).classify(text) === "read").length
  }))
