// Promise 1 of the design: no fiber without an owner. Fails when code outside the edge files
// starts an unowned fiber or a raw timer. Runs first in `pnpm test`.
import { readdirSync, readFileSync, statSync } from "node:fs"
import { join, relative } from "node:path"

const root = new URL("..", import.meta.url).pathname

// Edge files: process entry points and the places that hand work back from outside callbacks.
// Each entry says why it may.
const ALLOW: Record<string, string> = {
  "packages/core/src/Main.ts": "the process entry point: starts the runtime, hard-exit timer after the shutdown deadline",
  "packages/examples/src/playground.ts": "an entry point",
  "packages/bench/src/dispatch-overhead.ts": "an entry point"
}

const PATTERNS: ReadonlyArray<[RegExp, string]> = [
  [/\bEffect\.forkDetach\b/, "Effect.forkDetach (fork into a scope: forkScoped, forkIn, FiberSet)"],
  [/\bEffect\.runFork\b/, "Effect.runFork (use FiberSet.runtime to hand callback work to a scope)"],
  [/\bEffect\.runPromise\b/, "Effect.runPromise (only at the process edge)"],
  [/(?<![\w.])setTimeout\s*\(/, "setTimeout (use Effect.sleep, Schedule or a timeout)"],
  [/(?<![\w.])setInterval\s*\(/, "setInterval (use Effect.repeat with a Schedule)"],
  [/\b(?:globalThis|window)\.set(?:Timeout|Interval)\b/, "a raw timer"]
]

const files = (dir: string): Array<string> =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    if (name === "node_modules" || name === "dist" || name.startsWith(".")) return []
    if (statSync(path).isDirectory()) return files(path)
    return /\.(ts|mts|js|mjs)$/.test(name) ? [path] : []
  })

const packages = join(root, "packages")
const problems: Array<string> = []
for (const pkg of readdirSync(packages)) {
  const src = join(packages, pkg, "src")
  try {
    statSync(src)
  } catch {
    continue
  }
  for (const file of files(src)) {
    const rel = relative(root, file)
    if (rel in ALLOW) continue
    const lines = readFileSync(file, "utf8").split("\n")
    lines.forEach((line, i) => {
      const code = line.replace(/\/\/.*$/, "")
      if (/^\s*\*/.test(code)) return // JSDoc prose and examples
      for (const [pattern, what] of PATTERNS) {
        if (pattern.test(code)) problems.push(`${rel}:${i + 1}: ${what}\n    ${line.trim()}`)
      }
    })
  }
}

if (problems.length > 0) {
  console.error(`check-forks: ${problems.length} unowned fork(s) or raw timer(s) outside the edge files:\n`)
  console.error(problems.join("\n"))
  console.error(`\nFork into a scope the BotManager owns, or, for a true edge (entry point, callback bridge),`)
  console.error(`add the file to ALLOW in scripts/check-forks.ts with the reason.`)
  process.exit(1)
}
console.log("check-forks: no unowned forks or raw timers outside the edge files")
