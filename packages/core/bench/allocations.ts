/**
 * Where a statement allocates, for both lines' `bench/alloc.ts`: V8's
 * sampling heap profiler (every 512 bytes, objects the GC already collected
 * included) over a timed loop of statements, reported as bytes per statement
 * by allocation site (the innermost frame and its two callers).
 */
import * as Inspector from "node:inspector"

interface ProfileNode {
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly selfSize: number
  readonly children: ReadonlyArray<ProfileNode>
}

const post = <A>(session: Inspector.Session, method: string, params?: object) =>
  new Promise<A>((resolve, reject) =>
    session.post(method, params ?? {}, (err, result) => (err ? reject(err) : resolve(result as A)))
  )

/**
 * `op` run by `concurrency` callers in turn for `ms` milliseconds; resolves
 * with the number of statements run.
 */
export const loop = async (op: () => Promise<unknown>, ms: number, concurrency = 32): Promise<number> => {
  let n = 0
  const stop = performance.now() + ms
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < stop) {
      await op()
      n++
    }
  }))
  return n
}

/**
 * Warms `op` up for a second, samples allocations over two more, and returns
 * the report: statements, bytes sampled per statement, then the `top` sites.
 */
export const profile = async (op: () => Promise<unknown>, top = 40): Promise<string> => {
  await loop(op, 1000)
  const session = new Inspector.Session()
  session.connect()
  try {
    await post(session, "HeapProfiler.enable")
    await post(session, "HeapProfiler.startSampling", {
      samplingInterval: 512,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true
    })
    const n = await loop(op, 2000)
    const { profile: sampled } = await post<{ profile: { head: ProfileNode } }>(session, "HeapProfiler.stopSampling")
    const sites = new Map<string, number>()
    let total = 0
    const walk = (node: ProfileNode, stack: ReadonlyArray<string>) => {
      const cf = node.callFrame
      const here = `${cf.functionName || "(anon)"} ${cf.url.split("/").slice(-2).join("/")}:${cf.lineNumber}`
      if (node.selfSize > 0) {
        // Attributed to the innermost frame and its callers: enough to find the site.
        const key = [here, ...stack.slice(-2).reverse()].join(" < ")
        sites.set(key, (sites.get(key) ?? 0) + node.selfSize)
        total += node.selfSize
      }
      for (const child of node.children) walk(child, [...stack, here])
    }
    walk(sampled.head, [])
    const lines = [`${n} statements, ${(total / n).toFixed(0)} bytes sampled per statement`]
    for (const [site, bytes] of [...sites].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      lines.push(`${(bytes / n).toFixed(0).padStart(6)} B/q  ${site}`)
    }
    return lines.join("\n") + "\n"
  } finally {
    session.disconnect()
  }
}
