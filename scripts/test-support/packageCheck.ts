/**
 * What both lines' packaging checks share: running commands, packing a
 * workspace, and reading the install commands of a README section, word by
 * word, as a user copies them.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"

/** The repository root (this file is scripts/test-support/packageCheck.ts). */
export const root = Path.resolve(import.meta.dirname, "..", "..")

/** A tool installed at the root (npm workspaces hoist them). */
export const bin = (name: string): string => Path.join(root, "node_modules", ".bin", name)

export interface Outcome {
  readonly code: number | null
  readonly output: string
}

export const exec = (command: string, args: ReadonlyArray<string>, cwd: string): Promise<Outcome> =>
  new Promise((resolve, reject) => {
    const child = ChildProcess.spawn(command, args, { cwd, stdio: ["ignore", "pipe", "pipe"], env: process.env })
    let output = ""
    child.stdout.on("data", (chunk) => (output += chunk))
    child.stderr.on("data", (chunk) => (output += chunk))
    child.on("error", reject)
    child.on("close", (code) => resolve({ code, output }))
  })

/** Runs a command that must succeed; its output is in the failure message. */
export const ok = async (command: string, args: ReadonlyArray<string>, cwd: string): Promise<string> => {
  const outcome = await exec(command, args, cwd)
  if (outcome.code !== 0) {
    throw new Error(`${Path.basename(command)} ${args.join(" ")} exited with ${outcome.code}:\n${outcome.output}`)
  }
  return outcome.output
}

const npmPack = async (dir: string, destination: string, ...flags: ReadonlyArray<string>): Promise<string> => {
  const packed = await ok("npm", ["pack", "--json", "--pack-destination", destination, ...flags], dir)
  return Path.join(destination, JSON.parse(packed.slice(packed.indexOf("[")))[0].filename)
}

/**
 * `npm pack` of the line in `dir` and of the core in `core` into
 * `destination`; the tarballs' paths. The line's prepack builds the core's
 * dist/ and then its own; the core is packed from that build (its own
 * prepack would only build it again), under the same hold of the build lock.
 */
export const packWithCore = (
  dir: string,
  core: string,
  destination: string
): Promise<{ readonly tarball: string; readonly coreTarball: string }> =>
  withBuildLock(async () => {
    const tarball = await npmPack(dir, destination)
    const coreTarball = await npmPack(core, destination, "--ignore-scripts")
    return { tarball, coreTarball }
  })

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** Whether the lock's holder is gone (no pid yet: between its mkdir and write, unless it died there long ago). */
const stale = (lock: string, owner: string): boolean => {
  try {
    const holder = Fs.existsSync(owner) ? Number(Fs.readFileSync(owner, "utf8")) : 0
    return holder > 0 ? !alive(holder) : Date.now() - Fs.statSync(lock).mtimeMs > 60_000
  } catch {
    return false // released meanwhile: try again
  }
}

/**
 * Runs `f` holding the repository's build lock (a directory, created
 * atomically, naming its holder's pid). Every pack builds the core's dist/
 * (a line's build builds the core first) and `npm test` runs the lines side by
 * side, so two packs at once would remove and rewrite the same files. A lock
 * whose holder is gone is taken over.
 */
const withBuildLock = async <A>(f: () => Promise<A>): Promise<A> => {
  const lock = Path.join(root, "node_modules", ".effect-sql-router-build.lock")
  const owner = Path.join(lock, "pid")
  for (;;) {
    try {
      Fs.mkdirSync(lock)
      Fs.writeFileSync(owner, String(process.pid))
      break
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
      if (stale(lock, owner)) Fs.rmSync(lock, { recursive: true, force: true })
      else await new Promise((resolve) => setTimeout(resolve, 250))
    }
  }
  try {
    return await f()
  } finally {
    Fs.rmSync(lock, { recursive: true, force: true })
  }
}

/**
 * The install commands (```sh blocks) of the README section whose heading is
 * `heading` (up to the next heading of the same or a higher level), split
 * into words.
 */
export const installCommands = (heading: string): ReadonlyArray<ReadonlyArray<string>> => {
  const readme = Fs.readFileSync(Path.join(root, "README.md"), "utf8")
  const level = heading.match(/^#+/)![0]
  const start = readme.indexOf(`\n${heading}\n`)
  if (start < 0) throw new Error(`README.md has no section "${heading}"`)
  const next = readme.slice(start + 1).search(new RegExp(`\\n#{1,${level.length}} `))
  const section = next < 0 ? readme.slice(start) : readme.slice(start, start + 1 + next)
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)]
    .flatMap((block) => block[1]!.trim().split("\n"))
    .map((line) => line.trim().split(/\s+/))
}
