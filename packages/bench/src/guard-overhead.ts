// fiberbot:edge a benchmark process entry point
/**
 * guard-overhead: what the whole guard costs on the hot path.
 *
 * No-op updates (over 1,000 ordering keys) go through intake, dispatcher and handler of a bot on
 * the in-memory adapter in three set-ups, in rotating order each round, in this one process after
 * a warm-up of each:
 * - `off`: no fiber registry, no watchdog, no metrics scrape;
 * - `guard` (the issue's definition): fiber registry, the watchdog sampling every second and the
 *   Prometheus collector scraped every second, bot options at their defaults;
 * - `full`: `guard` plus the intake breaker recording every handler outcome and admission permits.
 * Prints each run; the last line is one JSON object with the figures. Goal: guard / off >= 0.95.
 *
 * On a shared machine wall-clock throughput swings with other processes' load, so each run also
 * measures the process CPU time it used (`process.cpuUsage`), and the ratios are taken per round
 * (the runs of one round are next to each other in time) and then the median of those: `ratio` is
 * the median per-round guard/off ratio of updates per CPU-second, `wallRatio` the same on wall time,
 * `fullRatio` / `fullWallRatio` the same for full/off.
 *
 * Options: --updates N (default 100000), --rounds N (default 7), --keys N (default 1000).
 */
import { Deferred, Effect, Layer, Schedule } from "effect"
import { Bot, BotManager, Logging, Metrics, Watchdog } from "@fiberbot/core"
import { TestAdapter } from "@fiberbot/core/testing"
import { arg, median } from "./args.ts"
import { countingRouter } from "./counting.ts"

const updates = arg("updates", 100_000)
const rounds = arg("rounds", 7)
const keys = arg("keys", 1000)

/** One run: a fresh manager and bot; returns updates handled per second. */
type Setup = "off" | "guard" | "full"

const run = (setup: Setup) =>
  Effect.scoped(Effect.gen(function*() {
    const manager = yield* BotManager
    const test = yield* TestAdapter.make()
    const { done, router } = yield* countingRouter(updates)
    const bot = Bot.make({
      name: "bench",
      adapters: [test.adapter],
      router,
      options: {
        concurrency: 500,
        intake: { capacity: 1000, policy: "backpressure" },
        // Above what intake + dispatcher can hold, so it counts every update but never says busy here.
        ...(setup === "full" ? { breaker: { minimumCalls: 100 }, admission: { limit: 2000 } } : {})
      }
    })
    yield* manager.start(bot)
    if (setup !== "off") {
      const watchdog = yield* Watchdog.make({ interval: "1 second" })
      const metrics = Metrics.makeCollector(manager, { watchdog })
      yield* Effect.forkScoped(Effect.repeat(metrics.render, Schedule.spaced("1 second")))
    }
    const cpu0 = process.cpuUsage()
    const started = performance.now()
    for (let i = 0; i < updates; i++) {
      const answer = yield* test.send({ key: `chat-${i % keys}`, kind: "message", text: "x" })
      if (answer !== "accepted") throw new Error(`update ${i} was answered ${answer}`)
    }
    yield* Deferred.await(done)
    const seconds = (performance.now() - started) / 1000
    const cpu = process.cpuUsage(cpu0)
    const cpuSeconds = (cpu.user + cpu.system) / 1e6
    const report = yield* manager.stop("bench", { deadline: "5 seconds" })
    if (!report.withinDeadline) throw new Error(`bench bot did not stop: ${report.unfinished.join(", ")}`)
    return { wall: updates / seconds, cpu: updates / cpuSeconds }
  })).pipe(Effect.provide(Layer.fresh(BotManager.layerWith({ fiberRegistry: setup !== "off" }))))


const setups: ReadonlyArray<Setup> = ["off", "guard", "full"]

const main = Effect.gen(function*() {
  console.log(`guard-overhead: ${updates} no-op updates over ${keys} keys, ${rounds} rounds of off / guard / full (rotating order)`)
  for (const setup of setups) yield* run(setup)
  const wall: Record<Setup, Array<number>> = { off: [], guard: [], full: [] }
  const ratios = { guardCpu: [] as Array<number>, guardWall: [] as Array<number>, fullCpu: [] as Array<number>, fullWall: [] as Array<number> }
  for (let r = 0; r < rounds; r++) {
    // rotate the order, so drift (GC, JIT, CPU frequency, other processes) hits each alike
    const order = setups.map((_, i) => setups[(i + r) % setups.length]!)
    const round = {} as Record<Setup, { wall: number; cpu: number }>
    for (const setup of order) {
      globalThis.gc?.()
      const rate = yield* run(setup)
      round[setup] = rate
      wall[setup].push(rate.wall)
      console.log(
        `  round ${r + 1} ${setup.padEnd(5)} ${Math.round(rate.wall).toLocaleString("en")} updates/s, ` +
          `${Math.round(rate.cpu).toLocaleString("en")} updates per CPU-second`
      )
    }
    ratios.guardCpu.push(round.guard.cpu / round.off.cpu)
    ratios.guardWall.push(round.guard.wall / round.off.wall)
    ratios.fullCpu.push(round.full.cpu / round.off.cpu)
    ratios.fullWall.push(round.full.wall / round.off.wall)
  }
  const r3 = (x: number) => Number(x.toFixed(3))
  const result = {
    bench: "guard-overhead",
    updates,
    keys,
    rounds,
    offPerSec: Math.round(median(wall.off)),
    guardPerSec: Math.round(median(wall.guard)),
    fullPerSec: Math.round(median(wall.full)),
    ratio: r3(median(ratios.guardCpu)),
    wallRatio: r3(median(ratios.guardWall)),
    fullRatio: r3(median(ratios.fullCpu)),
    fullWallRatio: r3(median(ratios.fullWall)),
    goal: 0.95,
    guard: "registry + watchdog(1s) + metrics scrape(1s); full adds breaker outcomes + admission",
    node: process.version
  }
  console.log(`guard/off, median per round: ${result.ratio} per CPU-second, ${result.wallRatio} wall (goal >= ${result.goal})`)
  console.log(`full/off,  median per round: ${result.fullRatio} per CPU-second, ${result.fullWallRatio} wall`)
  console.log(JSON.stringify(result))
})

Effect.runPromise(main.pipe(Effect.provide(Logging.layer({ level: "warn" })))).catch((error) => {
  console.error(error)
  process.exitCode = 1
})
