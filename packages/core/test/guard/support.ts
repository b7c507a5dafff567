import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import type { BotManager } from "@fiberbot/core"
import { settle } from "../helpers.ts"

/** Stops `name` under TestClock: hung handlers are interrupted at once; fails if the stop was late. */
export const stopNow = (manager: BotManager["Service"], name: string) =>
  Effect.gen(function*() {
    const stopping = yield* Effect.forkChild(manager.stop(name, { deadline: "1 second", drain: "1 millis" }))
    yield* settle()
    yield* TestClock.adjust("1 second")
    const report = yield* Fiber.join(stopping)
    if (!report.withinDeadline) return yield* Effect.die(new Error(`stop was late: ${report.unfinished.join(", ")}`))
    return report
  })
