// A line's `npm test`: its typecheck and its test suite, run side by side
// (tsc is one process on one core; the suite mostly waits on its PostgreSQL
// servers), failing when either fails. Run from the workspace's directory.
import { spawn } from "node:child_process"
import { createRequire } from "node:module"
import * as Path from "node:path"

const cwd = process.cwd()
const require = createRequire(Path.join(cwd, "package.json"))
const run = (command, args) =>
  new Promise((resolve) => {
    const child = spawn(process.execPath, [command, ...args], { cwd, stdio: "inherit" })
    child.on("close", (code, signal) => resolve(code ?? (signal ? 1 : 0)))
  })

const [typecheck, tests] = await Promise.all([
  run(require.resolve("typescript/bin/tsc"), ["--noEmit", "-p", "tsconfig.json"]),
  run(require.resolve("vitest/vitest.mjs"), ["run", ...process.argv.slice(2)])
])
if (typecheck !== 0) console.error(`typecheck failed (exit ${typecheck})`)
if (tests !== 0) console.error(`tests failed (exit ${tests})`)
process.exitCode = typecheck !== 0 || tests !== 0 ? 1 : 0
