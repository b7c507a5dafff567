// Promise 1 of the design: no fiber without an owner. Fails when code outside the edge files
// starts an unowned fiber or a raw timer. Runs first in `pnpm test`.
import { readdirSync, readFileSync, statSync } from "node:fs"
import { join, relative } from "node:path"

// Edge files: process entry points and the places that hand work back from outside callbacks.
// Each says why it may, either here or with a first-lines marker `// fiberbot:edge <reason>`.
export const ALLOW: Record<string, string> = {
  "packages/core/src/Main.ts": "the process entry point: starts the runtime, hard-exit timer after the shutdown deadline"
}

const EDGE_MARKER = /^\/\/ fiberbot:edge \S/m
// A line that starts fibers whose owner the line's own comment names (a dispatcher's set, say).
const OWNED_MARKER = /\/\/ fiberbot:owned \S/

const PATTERNS: ReadonlyArray<[RegExp, string]> = [
  [/\bEffect\.forkDetach\b/, "Effect.forkDetach (fork into a scope: forkScoped, forkIn, FiberSet)"],
  [/\bEffect\.runFork\b/, "Effect.runFork (use FiberSet.runtime to hand callback work to a scope)"],
  [/\bEffect\.runForkWith\b/, "Effect.runForkWith (its fibers need an owner: say which on the line, `// fiberbot:owned <by what>`)"],
  [/\bEffect\.runPromise\b/, "Effect.runPromise (only at the process edge)"],
  [/(?<![\w.])setTimeout\s*\(/, "setTimeout (use Effect.sleep, Schedule or a timeout)"],
  [/(?<![\w.])setInterval\s*\(/, "setInterval (use Effect.repeat with a Schedule)"],
  [/\b(?:globalThis|window)\.set(?:Timeout|Interval)\b/, "a raw timer"]
]

const sourceFiles = (dir: string): Array<string> =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    if (name === "node_modules" || name === "dist" || name.startsWith(".")) return []
    if (statSync(path).isDirectory()) return sourceFiles(path)
    return /\.(ts|mts|js|mjs)$/.test(name) ? [path] : []
  })

/** Every unowned fork or raw timer in the `src` folders of `root`'s packages outside `allow`. */
export const scan = (root: string, allow: Record<string, string> = ALLOW): Array<string> => {
  const problems: Array<string> = []
  const packages = join(root, "packages")
  for (const pkg of readdirSync(packages)) {
    const src = join(packages, pkg, "src")
    try {
      statSync(src)
    } catch {
      continue
    }
    for (const file of sourceFiles(src)) {
      const rel = relative(root, file)
      if (rel in allow) continue
      const text = readFileSync(file, "utf8")
      if (EDGE_MARKER.test(text.split("\n").slice(0, 5).join("\n"))) continue
      text.split("\n").forEach((line, i) => {
        if (OWNED_MARKER.test(line)) return
        const code = line.replace(/\/\/.*$/, "")
        if (/^\s*(\*|\/\*\*)/.test(code)) return // doc comments and their examples
        for (const [pattern, what] of PATTERNS) {
          if (pattern.test(code)) problems.push(`${rel}:${i + 1}: ${what}\n    ${line.trim()}`)
        }
      })
    }
  }
  return problems
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const problems = scan(new URL("..", import.meta.url).pathname)
  if (problems.length > 0) {
    console.error(`check-forks: ${problems.length} unowned fork(s) or raw timer(s) outside the edge files:\n`)
    console.error(problems.join("\n"))
    console.error(`\nFork into a scope the BotManager owns, or, for a true edge (entry point, callback bridge),`)
    console.error(`mark the file with a first line \`// fiberbot:edge <why>\`.`)
    process.exit(1)
  }
  console.log("check-forks: no unowned forks or raw timers outside the edge files")
}
