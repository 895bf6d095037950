/**
 * Closed-loop load generator: `concurrency` workers, each awaiting one
 * operation at a time, first for a warm-up (not recorded), then for a
 * measured window. Latencies of the operations that start and finish inside
 * the window go into a preallocated `Float64Array`; throughput counts the
 * operations that finish inside it. Node's own CPU time over the window is
 * recorded too: on a shared 2-core host it says where the client time goes.
 *
 * No Effect here: both lines share it. Each line's `bench/load.ts` adds the
 * fibers harness (long-lived fibers in one runtime) on its own Effect major,
 * with the same `Recorder`.
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

/**
 * The bookkeeping shared by both harness styles: which operations fall in
 * the window, their latencies, errors, CPU and GC over the window.
 */
export class Recorder {
  readonly samples = new Samples()
  readonly start = performance.now()
  readonly windowStart: number
  readonly windowEnd: number
  completed = 0
  succeeded = 0
  errors = 0
  firstError: string | undefined
  cpuAtStart: NodeJS.CpuUsage | undefined
  cpuAtEnd: NodeJS.CpuUsage | undefined
  private gcMs = 0
  private readonly gc: PerformanceObserver

  constructor(readonly options: LoadOptions) {
    this.windowStart = this.start + options.warmupMs
    this.windowEnd = this.windowStart + options.durationMs
    this.gc = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        if (entry.startTime >= this.windowStart && entry.startTime < this.windowEnd) this.gcMs += entry.duration
      }
    })
    this.gc.observe({ entryTypes: ["gc"] })
  }

  /** Called before each operation: false when the worker should stop. */
  begin(t0: number): boolean {
    if (t0 >= this.windowEnd || this.options.signal?.aborted) return false
    if (this.cpuAtStart === undefined && t0 >= this.windowStart) this.cpuAtStart = process.cpuUsage()
    return true
  }

  /** After a failure: false when the worker should stop (a system that fails every call must not spin). */
  failed(error: unknown): boolean {
    this.errors++
    this.firstError ??= describeError(error)
    return !(this.errors > 1000 && this.succeeded === 0)
  }

  succeededAt(t0: number): void {
    this.succeeded++
    const t1 = performance.now()
    if (t1 > this.windowEnd) {
      this.cpuAtEnd ??= process.cpuUsage()
      return
    }
    if (t1 >= this.windowStart) {
      this.completed++
      if (t0 >= this.windowStart) this.samples.push(t1 - t0)
    }
  }

  async result(): Promise<LoadResult> {
    // GC entries are delivered asynchronously: let the last ones arrive.
    await new Promise((resolve) => setTimeout(resolve, 5))
    this.gc.disconnect()
    const { completed, cpuAtEnd, cpuAtStart } = this
    const cpu = cpuAtStart === undefined ? undefined : process.cpuUsage(cpuAtStart)
    const cpuWindow = cpuAtEnd === undefined || cpuAtStart === undefined
      ? cpu
      : { user: cpuAtEnd.user - cpuAtStart.user, system: cpuAtEnd.system - cpuAtStart.system }
    const sorted = this.samples.sorted()
    return {
      concurrency: this.options.concurrency,
      completed,
      errors: this.errors,
      firstError: this.firstError,
      windowMs: this.options.durationMs,
      qps: completed / (this.options.durationMs / 1000),
      p50Ms: percentile(sorted, 0.5),
      p99Ms: percentile(sorted, 0.99),
      cpuUsPerOp: cpuWindow === undefined || completed === 0 ? Number.NaN : (cpuWindow.user + cpuWindow.system) / completed,
      gcUsPerOp: completed === 0 ? Number.NaN : (this.gcMs * 1000) / completed
    }
  }

  stop(): void {
    this.gc.disconnect()
  }
}

/**
 * Runs `operation` in a closed loop and measures it: `concurrency` async
 * workers, one Promise per operation (for an Effect system, one `runPromise`
 * per query). Never rejects: failures are counted.
 */
export const run = async (operation: () => Promise<unknown>, options: LoadOptions): Promise<LoadResult> => {
  const recorder = new Recorder(options)
  const worker = async (): Promise<void> => {
    for (;;) {
      const t0 = performance.now()
      if (!recorder.begin(t0)) return
      try {
        await operation()
      } catch (error) {
        if (!recorder.failed(error)) return
        continue
      }
      recorder.succeededAt(t0)
    }
  }
  try {
    await Promise.all(Array.from({ length: options.concurrency }, worker))
  } catch (error) {
    recorder.stop()
    throw error
  }
  return recorder.result()
}
