/**
 * What both lines' benchmarks read from the host: cores in use before the run
 * (/proc/stat, for the busy-host rule in `Stats.busyHost`), load averages, the
 * git commit, installed library versions, and a full garbage collection
 * between cells. Plain Node, no Effect.
 */
import * as ChildProcess from "node:child_process"
import * as Esbuild from "esbuild"
import * as Fs from "node:fs"
import { createRequire } from "node:module"
import * as Os from "node:os"
import * as Path from "node:path"
import * as V8 from "node:v8"
import * as Vm from "node:vm"
import type { Machine } from "./report.js"
import * as Stats from "./stats.js"

/** The 1-, 5- and 15-minute load averages. */
export const loadavg = (): readonly [number, number, number] => {
  const [a = 0, b = 0, c = 0] = Os.loadavg()
  return [a, b, c]
}

/** The first line of /proc/stat as numbers, or undefined off Linux. */
const cpuTimes = (): ReadonlyArray<number> | undefined => {
  try {
    const line = Fs.readFileSync("/proc/stat", "utf8").split("\n")[0]!
    return line.trim().split(/\s+/).slice(1).map(Number)
  } catch {
    return undefined
  }
}

/** Cores in use on the whole host over `millis` (this process is idle meanwhile); undefined without /proc/stat. */
export const sampleBusyCores = async (millis: number): Promise<number | undefined> => {
  const before = cpuTimes()
  if (before === undefined) return undefined
  await new Promise((resolve) => setTimeout(resolve, millis))
  const after = cpuTimes()
  return after === undefined ? undefined : Stats.busyCores(before, after, Os.cpus().length)
}

/** `git rev-parse --short HEAD`, marked when the tree has uncommitted changes; undefined outside a checkout. */
export const gitCommit = (): string | undefined => {
  try {
    const run = (args: Array<string>) =>
      ChildProcess.execFileSync("git", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim()
    const head = run(["rev-parse", "--short", "HEAD"])
    const dirty = run(["status", "--porcelain", "--untracked-files=no"]) !== ""
    return dirty ? `${head} + uncommitted changes` : head
  } catch {
    return undefined
  }
}

/**
 * A full garbage collection, run between cells so that no cell pays for the
 * garbage its predecessor (another system) left. `--expose-gc` is switched on
 * at run time; when that fails, undefined (nothing is collected).
 */
let collector: { readonly gc: (() => void) | undefined } | undefined
export const collect = (): (() => void) | undefined => {
  if (collector === undefined) {
    try {
      V8.setFlagsFromString("--expose-gc")
      const gc = Vm.runInNewContext("gc") as unknown
      collector = { gc: typeof gc === "function" ? () => (gc as () => void)() : undefined }
    } catch {
      collector = { gc: undefined }
    }
  }
  return collector.gc
}

/**
 * The versions of `names` as Node finds them from `from` (a module URL of the
 * line: each line resolves its own `effect` major), "?" for one not installed.
 */
export const libraryVersions = (
  from: string,
  names: ReadonlyArray<string>
): ReadonlyArray<readonly [string, string]> => {
  const manifestOf = (name: string): string => {
    for (const dir of createRequire(from).resolve.paths(name) ?? []) {
      const file = Path.join(dir, name, "package.json")
      if (Fs.existsSync(file)) return file
    }
    throw new Error(`${name} is not installed`)
  }
  return names.map((name) => {
    try {
      return [name, (JSON.parse(Fs.readFileSync(manifestOf(name), "utf8")) as { version: string }).version] as const
    } catch {
      return [name, "?"] as const
    }
  })
}

/** The machine section's facts: CPU, memory, OS, Node, PostgreSQL, the load at start and now, the libraries. */
export const describeMachine = (options: {
  readonly postgres: string
  readonly loadStart: number
  readonly busyCoresBefore?: number | undefined
  readonly libraries: ReadonlyArray<readonly [string, string]>
}): Machine => {
  const cpus = Os.cpus()
  return {
    cpu: cpus[0]?.model.trim() ?? "unknown",
    cores: cpus.length,
    memoryGiB: Os.totalmem() / 2 ** 30,
    os: `${Os.type()} ${Os.release()} ${Os.arch()}`,
    node: process.version,
    postgres: options.postgres,
    load: { start: options.loadStart, end: Os.loadavg()[0] ?? 0 },
    busyCoresBefore: options.busyCoresBefore,
    libraries: options.libraries
  }
}

/**
 * Bundles a benchmark's child (TypeScript) into one ES module next to it, with
 * every package left external, so that plain Node runs it on the built
 * package: a child's RSS is then the library's, not a TypeScript loader's
 * (tsx adds about 65 MiB). esbuild is the one tsx runs on. `dispose`
 * removes the file.
 */
export const bundleWorker = (entry: string): { readonly file: string; readonly dispose: () => void } => {
  const file = Path.join(Path.dirname(entry), `.cdc-worker-${process.pid}-${Path.basename(entry, ".ts")}.mjs`)
  Esbuild.buildSync({ entryPoints: [entry], bundle: true, packages: "external", format: "esm", platform: "node", outfile: file, logLevel: "error" })
  return { file, dispose: () => Fs.rmSync(file, { force: true }) }
}
