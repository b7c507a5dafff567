// fiberbot:edge a benchmark process entry point
/**
 * ws-leak: the leak-churn experiment.
 *
 * 1,000 concurrent connections (a separate load-generator process) churn against a fiberbot echo
 * bot for the whole run: each lives a short random time and then closes cleanly, vanishes
 * (`socket.destroy()`), stops reading while it sends, or stops answering pings. Then the load stops,
 * we wait for quiet, and compare with the baseline taken before the run: live fibers of the bot
 * (from the manager's fiber registry), sockets the server still holds, heap after forced GC.
 * Goal: residualFibers = 0, residualSockets = 0, heapGrowthPct < 10. The last line is one JSON object.
 *
 * Options: --seconds N (default 60), --connections N (default 1000).
 */
import { Effect, Exit, Fiber, Scope } from "effect"
import { BotManager, Logging } from "@fiberbot/core"
import { Server } from "@fiberbot/adapters/websocket"
import { LoadGen } from "@fiberbot/testkit/websocket"
import { arg, echoBot, heapAfterGc, round } from "./ws/common.ts"

const seconds = arg("seconds", 60)
const connections = arg("connections", 1000)

const main = Effect.gen(function*() {
  const manager = yield* BotManager
  const ws = Server.make({
    heartbeat: "1 second",
    closeTimeout: "1 second",
    maxConnections: 5000,
    outbound: { policy: "close", capacity: 64, grace: "1 second", highWaterMark: 256 * 1024 }
  })
  yield* manager.start(echoBot(ws))
  const botFibers = () => manager.registry.snapshot({ bot: "ws-echo" }).total
  const baseFibers = botFibers()
  const baseHeap = heapAfterGc()
  console.log(`ws-leak: ${connections} connections churned for ${seconds}s against ${ws.url()}; baseline ${baseFibers} fibers, heap ${(baseHeap / 1e6).toFixed(1)} MB`)

  const scope = yield* Scope.make()
  const load = yield* LoadGen.spawn({ url: ws.url()!, mode: "churn", connections, seconds, rate: 4, lifeMs: [200, 2000] }).pipe(Scope.provide(scope))
  let peak = 0
  const watch = yield* Effect.forkChild(Effect.forever(Effect.andThen(Effect.sleep("1 second"), Effect.sync(() => {
    const s = ws.stats()
    peak = Math.max(peak, s.open)
    console.log(`  open=${s.open} opened=${s.opened} in=${s.messagesIn} out=${s.messagesOut} fibers=${botFibers()} codes=${JSON.stringify(s.closeCodes)}`)
  }))))
  const result = yield* load.result
  yield* Scope.close(scope, Exit.void)

  // quiet: every server-side connection should be gone within the heartbeat + close timeouts
  const quietStarted = performance.now()
  while ((ws.stats().open > 0 || ws.stats().sockets > 0 || botFibers() > baseFibers) && performance.now() - quietStarted < 10_000) {
    yield* Effect.sleep("100 millis")
  }
  yield* Effect.sleep("500 millis")
  yield* Fiber.interrupt(watch)
  const heap = heapAfterGc()
  const stats = ws.stats()
  const residualFibers = botFibers() - baseFibers
  const figures = {
    bench: "ws-leak",
    seconds,
    connections,
    connectionsOpened: stats.opened,
    messagesEchoed: stats.messagesOut,
    peakOpen: peak,
    endings: { clean: result["clean"], destroy: result["destroy"], neverRead: result["never-read"], noPong: result["no-pong"] },
    closeCodes: stats.closeCodes,
    terminated: stats.terminated,
    quietMs: Math.round(performance.now() - quietStarted),
    residualFibers,
    residualSockets: stats.sockets,
    residualConnections: stats.open,
    heapBaselineMB: round(baseHeap / 1e6, 1),
    heapAfterMB: round(heap / 1e6, 1),
    heapGrowthPct: round(((heap - baseHeap) / baseHeap) * 100, 1),
    goals: { residualFibers: 0, residualSockets: 0, heapGrowthPct: 10 },
    node: process.version
  }
  if (residualFibers > 0) console.log(manager.registry.snapshot({ bot: "ws-echo" }))
  yield* manager.stop("ws-echo", { deadline: "5 seconds" })
  console.log(`opened ${figures.connectionsOpened} connections, echoed ${figures.messagesEchoed} messages`)
  console.log(`residual: ${residualFibers} fibers, ${stats.sockets} sockets; heap ${figures.heapBaselineMB} -> ${figures.heapAfterMB} MB (${figures.heapGrowthPct}%)`)
  console.log(JSON.stringify(figures))
})

Effect.runPromise(main.pipe(Effect.provide(BotManager.layer), Effect.provide(Logging.layer({ level: "warn" })))).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
