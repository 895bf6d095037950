/**
 * Closed-loop load generator: `concurrency` workers, each awaiting one
 * operation at a time, first for a warm-up (not recorded), then for a
 * measured window. Latencies of the operations that start and finish inside
 * the window go into a preallocated `Float64Array`; throughput counts the
 * operations that finish inside it. Node's own CPU time over the window is
 * recorded too: on a shared 2-core host it says where the client time goes.
 */
import { performance, PerformanceObserver } from "node:perf_hooks"

export interface LoadOptions {
  readonly concurrency: number
  /** Measured window. */
  readonly durationMs: number
  /** Unrecorded run before the window (pools fill, JIT warms up). */
  readonly warmupMs: number
  /** Stops the workers early (the harness was interrupted). */
  readonly signal?: AbortSignal | undefined
}

export interface LoadResult {
  readonly concurrency: number
  /** Operations completed inside the measured window. */
  readonly completed: number
  readonly errors: number
  readonly firstError: string | undefined
  readonly windowMs: number
  readonly qps: number
  readonly p50Ms: number
  readonly p99Ms: number
  /** Client (this Node process) CPU per completed operation, user + system, in µs. */
  readonly cpuUsPerOp: number
  /** Garbage-collection pauses of this process inside the window, per completed operation, in µs. */
  readonly gcUsPerOp: number
}

/** A growable sample buffer; growth is rare (the first capacity covers ~100k qps × 2.5 s). */
class Samples {
  private data = new Float64Array(1 << 18)
  length = 0

  push(value: number): void {
    if (this.length === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2)
      bigger.set(this.data)
      this.data = bigger
    }
    this.data[this.length++] = value
  }

  sorted(): Float64Array {
    return this.data.slice(0, this.length).sort()
  }
}

/** Nearest-rank percentile of sorted values (`q` in [0, 1]). */
export const percentile = (sorted: Float64Array, q: number): number => {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[rank]!
}

const describeError = (error: unknown): string =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error)

/** Runs `operation` in a closed loop and measures it. Never rejects: failures are counted. */
export const run = async (operation: () => Promise<unknown>, options: LoadOptions): Promise<LoadResult> => {
  const samples = new Samples()
  const start = performance.now()
  const windowStart = start + options.warmupMs
  const windowEnd = windowStart + options.durationMs
  let completed = 0
  let succeeded = 0
  let errors = 0
  let firstError: string | undefined
  let cpuAtStart: NodeJS.CpuUsage | undefined
  let cpuAtEnd: NodeJS.CpuUsage | undefined

  const worker = async (): Promise<void> => {
    for (;;) {
      const t0 = performance.now()
      if (t0 >= windowEnd || options.signal?.aborted) return
      if (cpuAtStart === undefined && t0 >= windowStart) cpuAtStart = process.cpuUsage()
      try {
        await operation()
      } catch (error) {
        errors++
        firstError ??= describeError(error)
        // A system that fails every call must not spin the event loop.
        if (errors > 1000 && succeeded === 0) return
        continue
      }
      succeeded++
      const t1 = performance.now()
      if (t1 > windowEnd) {
        cpuAtEnd ??= process.cpuUsage()
        continue
      }
      if (t1 >= windowStart) {
        completed++
        if (t0 >= windowStart) samples.push(t1 - t0)
      }
    }
  }

  let gcMs = 0
  const gc = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if (entry.startTime >= windowStart && entry.startTime < windowEnd) gcMs += entry.duration
    }
  })
  gc.observe({ entryTypes: ["gc"] })
  try {
    await Promise.all(Array.from({ length: options.concurrency }, worker))
    // GC entries are delivered asynchronously: let the last ones arrive.
    await new Promise((resolve) => setTimeout(resolve, 5))
  } finally {
    gc.disconnect()
  }
  const cpu = cpuAtStart === undefined ? undefined : process.cpuUsage(cpuAtStart)
  const cpuWindow = cpuAtEnd === undefined || cpuAtStart === undefined
    ? cpu
    : { user: cpuAtEnd.user - cpuAtStart.user, system: cpuAtEnd.system - cpuAtStart.system }
  const sorted = samples.sorted()
  return {
    concurrency: options.concurrency,
    completed,
    errors,
    firstError,
    windowMs: options.durationMs,
    qps: completed / (options.durationMs / 1000),
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    cpuUsPerOp: cpuWindow === undefined || completed === 0 ? Number.NaN : (cpuWindow.user + cpuWindow.system) / completed,
    gcUsPerOp: completed === 0 ? Number.NaN : (gcMs * 1000) / completed
  }
}
