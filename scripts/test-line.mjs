// A line's `npm test`: its typecheck and its test suite, run side by side
// (tsc is one process on one core; the suite mostly waits on its PostgreSQL
// servers), failing when either fails. Run from the workspace's directory.
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"

const cwd = process.cwd()

/**
 * A package's command, found as Node finds the package (the workspace's own
 * node_modules first, then the repository's): read from its package.json's
 * "bin", since packages do not all export their bin files.
 */
const binOf = (name, command) => {
  for (let dir = cwd; ; dir = Path.dirname(dir)) {
    const manifest = Path.join(dir, "node_modules", name, "package.json")
    if (Fs.existsSync(manifest)) {
      const { bin } = JSON.parse(Fs.readFileSync(manifest, "utf8"))
      return Path.join(Path.dirname(manifest), typeof bin === "string" ? bin : bin[command])
    }
    if (Path.dirname(dir) === dir) throw new Error(`${name} is not installed (npm install)`)
  }
}

const run = (file, args) =>
  new Promise((resolve) => {
    const child = spawn(process.execPath, [file, ...args], { cwd, stdio: "inherit" })
    child.on("close", (code, signal) => resolve(code ?? (signal ? 1 : 0)))
  })

const [typecheck, tests] = await Promise.all([
  run(binOf("typescript", "tsc"), ["--noEmit", "-p", "tsconfig.json"]),
  run(binOf("vitest", "vitest"), ["run", ...process.argv.slice(2)])
])
if (typecheck !== 0) console.error(`typecheck failed (exit ${typecheck})`)
if (tests !== 0) console.error(`tests failed (exit ${tests})`)
process.exitCode = typecheck !== 0 || tests !== 0 ? 1 : 0
