/**
 * Templates: the files of a new bot project, as plain strings built from the options.
 *
 * The project is small on purpose: `src/bot.ts` (the bot: router with a scoped handler, one
 * supervised worker), `src/main.ts` (the entry point with graceful shutdown), `test/bot.test.ts`
 * (the bot against an offline adapter, ending with the leak assertion), config files, `.env.example`
 * and a README. Each adapter adds its own pieces through an `AdapterTemplate`.
 */

export type AdapterKind = "telegram" | "discord" | "websocket"

export const adapterKinds: ReadonlyArray<AdapterKind> = ["websocket", "telegram", "discord"]

export type PackageManager = "pnpm" | "npm"

/** Where the project gets the @fiberbot packages from. */
export type Source =
  | { readonly _tag: "Registry"; readonly version: string }
  | { readonly _tag: "Tarballs"; readonly dir: string }

export interface ProjectOptions {
  readonly name: string
  readonly adapters: ReadonlyArray<AdapterKind>
  readonly packageManager: PackageManager
  readonly source: Source
}

/** What one adapter contributes to the project. */
export interface AdapterTemplate {
  readonly kind: AdapterKind
  /** Import lines for src/main.ts. */
  readonly mainImports: ReadonlyArray<string>
  /** Statements in main that build the adapter into a const named `<kind>Adapter`. */
  readonly mainSetup: string
  /** Environment variables it reads: name and what for. */
  readonly env: ReadonlyArray<readonly [string, string]>
  readonly readme: string
  /** `test/<kind>.test.ts`: the bot against the adapter's offline emulator. */
  readonly test: string
}

const PACKAGES = ["@fiberbot/core", "@fiberbot/adapters", "@fiberbot/testkit"] as const

const tarball = (dir: string, pkg: string) => `file:${dir.replace(/\/$/, "")}/${pkg.replace("@", "").replace("/", "-")}-0.1.0.tgz`

const dependency = (source: Source, pkg: (typeof PACKAGES)[number]) =>
  source._tag === "Registry" ? `^${source.version}` : tarball(source.dir, pkg)

export const packageJson = (o: ProjectOptions): string => {
  const run = o.packageManager === "pnpm" ? "pnpm" : "npm run"
  const json = {
    name: o.name,
    version: "0.1.0",
    private: true,
    type: "module",
    engines: { node: ">=24" },
    scripts: {
      start: "node src/main.ts",
      dev: "node --watch src/main.ts",
      test: "vitest run",
      typecheck: "tsc --noEmit",
      check: `${run} typecheck && ${run} test`
    },
    dependencies: {
      "@fiberbot/core": dependency(o.source, "@fiberbot/core"),
      // the emulators are what `start` runs against when no token is set, not only what tests use
      ...(o.adapters.length > 0
        ? { "@fiberbot/adapters": dependency(o.source, "@fiberbot/adapters"), "@fiberbot/testkit": dependency(o.source, "@fiberbot/testkit") }
        : {}),
      effect: "4.1.0"
    },
    devDependencies: {
      "@effect/vitest": "4.0.5",
      "@types/node": "^24.10.0",
      typescript: "7.0.2",
      vitest: "5.1.1"
    }
  }
  // npm reads overrides from package.json; pnpm from pnpm-workspace.yaml (see `pnpmWorkspace`).
  const overrides = tarballOverrides(o)
  return JSON.stringify(overrides !== undefined && o.packageManager === "npm" ? { ...json, overrides } : json, null, 2) + "\n"
}

/** With tarballs, @fiberbot/adapters and @fiberbot/testkit must find @fiberbot/core there too. */
const tarballOverrides = (o: ProjectOptions): Record<string, string> | undefined => {
  const source = o.source
  return source._tag === "Tarballs" ? Object.fromEntries(PACKAGES.map((p) => [p, tarball(source.dir, p)])) : undefined
}

/** `pnpm-workspace.yaml` for a pnpm project that takes @fiberbot from tarballs, else `undefined`. */
export const pnpmWorkspace = (o: ProjectOptions): string | undefined => {
  const overrides = tarballOverrides(o)
  if (overrides === undefined || o.packageManager !== "pnpm") return undefined
  return ["overrides:", ...Object.entries(overrides).map(([k, v]) => `  "${k}": "${v}"`)].join("\n") + "\n"
}

export const tsconfig = (): string =>
  JSON.stringify(
    {
      compilerOptions: {
        target: "ES2023",
        lib: ["ES2023"],
        module: "NodeNext",
        moduleResolution: "NodeNext",
        types: ["node"],
        strict: true,
        exactOptionalPropertyTypes: true,
        noUncheckedIndexedAccess: true,
        verbatimModuleSyntax: true,
        erasableSyntaxOnly: true,
        allowImportingTsExtensions: true,
        noEmit: true,
        skipLibCheck: true
      },
      include: ["src", "test"]
    },
    null,
    2
  ) + "\n"

export const gitignore = (): string => "node_modules/\n.env\n*.heapsnapshot\n"

export const botTs = (): string => `/**
 * The bot: what it answers and what it runs in the background. Adapters are passed in, so the
 * same bot runs on the real network (src/main.ts) and offline in tests (test/bot.test.ts).
 */
import { Effect } from "effect"
import { Adapter, Bot, Router, Supervisor } from "@fiberbot/core"

export const router = Router.empty
  .command("start", (ctx) => ctx.reply("Hello! Send me anything and I will echo it."))
  .command("slow", (ctx) =>
    Effect.gen(function*() {
      // A handler is a scoped effect: what it acquires is released when the run ends
      // (success, failure, timeout or the bot stopping).
      yield* Effect.acquireRelease(Effect.logInfo("slow: acquired"), () => Effect.logInfo("slow: released"))
      yield* Effect.sleep("1 second")
      yield* ctx.reply("done, slowly")
    }))
  .on("message", (ctx) => ctx.reply(\`echo: \${ctx.text ?? ""}\`))

export const makeBot = (adapters: ReadonlyArray<Adapter.Adapter>) =>
  Bot.make({
    name: "bot",
    adapters,
    router,
    workers: [
      // A supervised worker: restarted with backoff if it fails, stopped with the bot.
      Supervisor.periodic("heartbeat", Effect.logInfo("still alive"), "1 minute")
    ],
    options: { handlerTimeout: "30 seconds", concurrency: 100 }
  })
`

export const mainTs = (o: ProjectOptions, templates: ReadonlyArray<AdapterTemplate>): string => {
  const imports = [...new Set(templates.flatMap((t) => t.mainImports))].join("\n")
  const setups = templates.map((t) => t.mainSetup).join("\n")
  const adapters = templates.length === 0 ? "chat.adapter" : templates.map((t) => `${t.kind}Adapter`).join(", ")
  return `/**
 * The entry point: starts the bot and stops it gracefully on Ctrl-C or SIGTERM (within 10 s; a
 * second signal exits at once). ${o.name}
 */
import { Effect${templates.length > 0 ? ", Redacted" : ""} } from "effect"
import { BotManager, Main } from "@fiberbot/core"
${templates.length === 0 ? `import { TestAdapter } from "@fiberbot/core/testing"\n` : ""}${imports}
import { makeBot } from "./bot.ts"

Main.runMain(
  Effect.gen(function*() {
${templates.length === 0 ? `    // No network adapter chosen: an in-memory chat that you can drive from code.
    const chat = yield* TestAdapter.make()
    yield* chat.message("me", "/start")
` : setups}
    const manager = yield* BotManager
    yield* manager.start(makeBot([${adapters}]))
    yield* Effect.logInfo("bot started")
  }),
  { shutdownDeadline: "10 seconds" }
)
`
}

export const botTest = (): string => `import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { BotManager } from "@fiberbot/core"
import { LeakCheck, TestAdapter } from "@fiberbot/core/testing"
import { makeBot } from "../src/bot.ts"

describe("bot", () => {
  it.effect("answers /start and echoes, and leaves nothing running after stop", () =>
    LeakCheck.verify(Effect.gen(function*() {
      const manager = yield* BotManager
      const chat = yield* TestAdapter.make()
      yield* manager.start(makeBot([chat.adapter]))
      yield* chat.message("alice", "/start")
      assert.include((yield* chat.nextReply).message.text, "Hello")
      yield* chat.message("alice", "hi")
      assert.strictEqual((yield* chat.nextReply).message.text, "echo: hi")
      const report = yield* manager.stop("bot")
      assert.isTrue(report.withinDeadline)
    })).pipe(Effect.provide(BotManager.layer)))
})
`

export const envExample = (templates: ReadonlyArray<AdapterTemplate>): string =>
  [
    "# Copy to .env and fill in. Without tokens the bot runs against the offline emulators.",
    "LOG_LEVEL=info",
    ...templates.flatMap((t) => t.env.map(([name, what]) => `# ${what}\n${name}=`))
  ].join("\n") + "\n"

export const readme = (o: ProjectOptions, templates: ReadonlyArray<AdapterTemplate>): string => {
  const pm = o.packageManager
  const run = pm === "pnpm" ? "pnpm" : "npm run"
  return `# ${o.name}

A bot built on [fiberbot](https://github.com/): every loop, connection and handler it runs is owned by
one BotManager, so stopping it stops everything within a deadline.

## Commands

\`\`\`sh
${pm} install
${pm === "pnpm" ? "pnpm test" : "npm test"}          # the bot against offline adapters, with the leak assertion
${run} typecheck
${pm === "pnpm" ? "pnpm start" : "npm start"}         # run it (Node 24); Ctrl-C stops it gracefully
${run} dev           # restart on change
\`\`\`

## Layout

- \`src/bot.ts\`: the router (a scoped handler, commands) and a supervised worker
- \`src/main.ts\`: the entry point with graceful shutdown
- \`test/bot.test.ts\`: tests that end with \`LeakCheck.verify\`
- \`.env.example\`: the settings it reads
${templates.map((t) => `\n${t.readme}`).join("")}`
}
