/**
 * The echo bot of the playground: a scoped handler, a command, a middleware and a supervised
 * worker, on any adapter.
 */
import { Duration, Effect } from "effect"
import { Adapter, Bot, Router, Supervisor } from "@fiberbot/core"

/** Logs how long each handler run took: middleware wraps the handler effect. */
const timing: Router.Middleware = (ctx, next) =>
  Effect.gen(function*() {
    const started = Date.now()
    yield* next
    yield* Effect.logDebug(`handled ${ctx.update.kind} ${ctx.update.id} in ${Date.now() - started} ms`)
  })

export const router = Router.empty
  .use(timing)
  .command("start", (ctx) => ctx.reply("hi! send me anything and I will echo it; /slow takes a while"))
  .command("slow", (ctx) =>
    Effect.gen(function*() {
      // A resource held for the run: released when the run ends, even on timeout or stop.
      yield* Effect.acquireRelease(Effect.logInfo("slow: acquired a connection"), () => Effect.logInfo("slow: released it"))
      yield* Effect.sleep("1500 millis")
      yield* ctx.reply("that took a while")
    }))
  .on("message", (ctx) => ctx.reply(`echo: ${ctx.text ?? ""}`))

export const makeEcho = (adapter: Adapter.Adapter, options?: { readonly statsEvery?: Duration.Input }) =>
  Bot.make({
    name: "echo",
    adapters: [adapter],
    router,
    workers: [
      Supervisor.periodic("stats", Effect.logInfo("echo is alive"), options?.statsEvery ?? "10 seconds")
    ],
    options: { handlerTimeout: "5 seconds", concurrency: 100 }
  })
