/**
 * A benchmark's entry point, shared by `run.ts`, `instances.ts` and
 * `cdcScenario.ts`: parses the arguments (a bad one prints its message and
 * exits with code 2), runs the program, and interrupts it once on SIGINT or
 * SIGTERM so that every finalizer (servers, pools, child processes) runs. The
 * handlers stay installed: tsx relays the terminal's SIGINT, so it arrives
 * twice, and a second default SIGINT would kill the process before the
 * finalizers are done. Exits once stdout (a pipe writes asynchronously) has
 * flushed the report, with code 1 when the program failed.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { performance } from "node:perf_hooks"

export interface MainOptions<Args> {
  /** Reads the command line; throws an Error whose message says what is wrong. */
  readonly parse: () => Args
  readonly program: (args: Args) => Effect.Effect<unknown, unknown>
  readonly log: (message: string) => void
  /** What an interruption shuts down, for its log line: `children, servers`. */
  readonly shutsDown: string
  /** `performance.now()` when the benchmark started. */
  readonly startedAt: number
}

export const runMain = <Args>(options: MainOptions<Args>): void => {
  let args: Args
  try {
    args = options.parse()
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`)
    process.exit(2)
  }
  const fiber = Effect.runFork(options.program(args))
  let interrupted = false
  const interrupt = () => {
    if (interrupted) return
    interrupted = true
    options.log(`interrupted: shutting down (${options.shutsDown})`)
    Effect.runFork(Fiber.interrupt(fiber))
  }
  process.on("SIGINT", interrupt)
  process.on("SIGTERM", interrupt)
  fiber.addObserver((exit) => {
    options.log(`finished in ${((performance.now() - options.startedAt) / 60_000).toFixed(1)} min`)
    if (exit._tag === "Failure") {
      process.stderr.write(`${Cause.pretty(exit.cause)}\n`)
      process.exitCode = 1
    }
    process.stdout.write("", () => process.exit())
  })
}
