// fiberbot:edge a benchmark process entry point
/**
 * dispatch-overhead: what the fiber registry costs on the hot path.
 *
 * 100,000 no-op updates (over 1,000 ordering keys) go through intake, dispatcher and handler of a
 * bot on the in-memory adapter, with the fiber registry on and off, in alternating runs in this one
 * process (after a warm-up of each). Prints each run, then the median throughput of each side and
 * their ratio; the last line is one JSON object with the figures. Goal: on / off >= 0.95.
 *
 * Options: --updates N (default 100000), --rounds N (default 7), --keys N (default 1000).
 */
import { Deferred, Effect, Layer } from "effect"
import { Bot, BotManager, Logging } from "@fiberbot/core"
import { TestAdapter } from "@fiberbot/core/testing"
import { arg, median } from "./args.ts"
import { countingRouter } from "./counting.ts"

const updates = arg("updates", 100_000)
const rounds = arg("rounds", 7)
const keys = arg("keys", 1000)

/** One run: a fresh manager and bot; returns updates handled per second. */
const run = (registry: boolean) =>
  Effect.gen(function*() {
    const manager = yield* BotManager
    const test = yield* TestAdapter.make()
    const { done, router } = yield* countingRouter(updates)
    const bot = Bot.make({
      name: "bench",
      adapters: [test.adapter],
      router,
      options: { concurrency: 500, intake: { capacity: 1000, policy: "backpressure" } }
    })
    yield* manager.start(bot)
    const started = performance.now()
    for (let i = 0; i < updates; i++) {
      yield* test.send({ key: `chat-${i % keys}`, kind: "message", text: "x" })
    }
    yield* Deferred.await(done)
    const seconds = (performance.now() - started) / 1000
    const report = yield* manager.stop("bench", { deadline: "5 seconds" })
    if (!report.withinDeadline) throw new Error(`bench bot did not stop: ${report.unfinished.join(", ")}`)
    return updates / seconds
  }).pipe(Effect.provide(Layer.fresh(BotManager.layerWith({ fiberRegistry: registry }))))


const main = Effect.gen(function*() {
  console.log(`dispatch-overhead: ${updates} no-op updates over ${keys} keys, ${rounds} rounds each, registry on vs off (alternating)`)
  yield* run(true)
  yield* run(false)
  const on: Array<number> = []
  const off: Array<number> = []
  for (let r = 0; r < rounds; r++) {
    // alternate which side goes first, so drift (GC, JIT, CPU frequency) hits both alike
    const order = r % 2 === 0 ? [true, false] : [false, true]
    for (const registry of order) {
      globalThis.gc?.()
      const rate = yield* run(registry)
      ;(registry ? on : off).push(rate)
      console.log(`  round ${r + 1} registry=${registry ? "on " : "off"} ${Math.round(rate).toLocaleString("en")} updates/s`)
    }
  }
  const result = {
    bench: "dispatch-overhead",
    updates,
    keys,
    rounds,
    onPerSec: Math.round(median(on)),
    offPerSec: Math.round(median(off)),
    ratio: Number((median(on) / median(off)).toFixed(3)),
    goal: 0.95,
    node: process.version
  }
  console.log(`registry on:  ${result.onPerSec.toLocaleString("en")} updates/s (median)`)
  console.log(`registry off: ${result.offPerSec.toLocaleString("en")} updates/s (median)`)
  console.log(`ratio on/off: ${result.ratio} (goal >= ${result.goal})`)
  console.log(JSON.stringify(result))
})

Effect.runPromise(main.pipe(Effect.provide(Logging.layer({ level: "warn" })))).catch((error) => {
  console.error(error)
  process.exitCode = 1
})
