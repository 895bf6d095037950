/**
 * Where a routed statement allocates: samples every allocation (including
 * objects the GC already collected) while routed `SELECT 1` statements run on
 * pools whose queries answer on the next turn of the event loop, then prints
 * the allocation sites by bytes per query. `npx tsx --conditions=effect-sql-router-dist bench/alloc.ts [--floor|--withread|--write]`
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Inspector from "node:inspector"
import * as RoutedClient from "#lib/RoutedClient.js"
import * as SqlRouter from "#lib/SqlRouter.js"
import * as BenchCluster from "./cluster.js"
import { fake } from "./fakePool.js"
import { routerConfig } from "./systems.js"


interface ProfileNode {
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly selfSize: number
  readonly children: ReadonlyArray<ProfileNode>
}

const post = <A>(session: Inspector.Session, method: string, params?: object) =>
  new Promise<A>((resolve, reject) => session.post(method, params ?? {}, (err, result) => (err ? reject(err) : resolve(result as A))))

const program = Effect.gen(function*() {
  const bench = yield* BenchCluster.make({ replicas: 2 })
  const runtime = ManagedRuntime.make(
    RoutedClient.layer(routerConfig(bench, bench.replicas, {})) as Layer.Layer<SqlClient.SqlClient | SqlRouter.SqlRouter>
  )
  yield* Effect.addFinalizer(() => Effect.promise(() => runtime.dispose()))
  const sql = yield* Effect.promise(() => runtime.runPromise(SqlClient.SqlClient))
  const router = yield* Effect.promise(() => runtime.runPromise(SqlRouter.SqlRouter))
  const nodes = [yield* router.primary, ...(yield* router.replicas)]
  for (const node of nodes) fake(node.pool)
  const pool = nodes[0]!.pool
  const floor = Effect.async<unknown>((resume) => {
    pool.connect((_e, client, release) => client!.query("SELECT 1", [], (_err: unknown, r: unknown) => { release(); resume(Effect.succeed(r)) }))
  })
  const select1 = Effect.flatMap(SqlClient.SqlClient, (s) => s`SELECT 1`)
  const op = process.argv.includes("--floor")
    ? () => runtime.runPromise(floor)
    : process.argv.includes("--withread")
    ? () => runtime.runPromise(router.withRead(select1))
    : process.argv.includes("--write")
    ? () => runtime.runPromise(sql`UPDATE t SET v = 1`)
    : () => runtime.runPromise(sql`SELECT 1`)
  const loop = async (ms: number) => {
    let n = 0
    const stop = performance.now() + ms
    await Promise.all(Array.from({ length: 32 }, async () => { while (performance.now() < stop) { await op(); n++ } }))
    return n
  }
  yield* Effect.promise(async () => {
    await loop(1000)
    const session = new Inspector.Session()
    session.connect()
    await post(session, "HeapProfiler.enable")
    await post(session, "HeapProfiler.startSampling", {
      samplingInterval: 512,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true
    })
    const n = await loop(2000)
    const { profile } = await post<{ profile: { head: ProfileNode } }>(session, "HeapProfiler.stopSampling")
    session.disconnect()
    const sites = new Map<string, number>()
    let total = 0
    const walk = (node: ProfileNode, stack: ReadonlyArray<string>) => {
      const cf = node.callFrame
      const here = `${cf.functionName || "(anon)"} ${cf.url.split("/").slice(-2).join("/")}:${cf.lineNumber}`
      if (node.selfSize > 0) {
        // Attribute to the innermost frame and its caller: enough to find the site.
        const key = [here, ...stack.slice(-2).reverse()].join(" < ")
        sites.set(key, (sites.get(key) ?? 0) + node.selfSize)
        total += node.selfSize
      }
      for (const child of node.children) walk(child, [...stack, here])
    }
    walk(profile.head, [])
    process.stdout.write(`${n} queries, ${(total / n).toFixed(0)} bytes sampled per query\n`)
    for (const [site, bytes] of [...sites].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.TOP ?? 40))) {
      process.stdout.write(`${(bytes / n).toFixed(0).padStart(6)} B/q  ${site}\n`)
    }
  })
}).pipe(Effect.scoped)

Effect.runPromise(program).then(() => process.exit(0), (e) => { console.error(e); process.exit(1) })
