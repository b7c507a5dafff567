/**
 * The leaky bot: four handlers making the classic mistakes, and their fixed versions.
 *
 * - `/ticker` starts a ticker and never stops it;
 * - `/enqueue` puts a job on an unbounded queue that nobody drains, and waits for its result;
 * - `/wait` waits for an answer with no deadline;
 * - `/subscribe` registers a callback with an event source and never removes it.
 *
 * The leaky versions fork their work into a scope that nobody closes (the shape of "fire and
 * forget" once `forkDetach` is banned): the fiber outlives the handler run that started it, one
 * more per update. The guard catches them: the watchdog sees the slope, the dump names the tasks,
 * a diff shows the growing groups, the breaker pauses intake. The fixed versions keep the work in
 * the run's own scope, bound the queue and drain it, and put a deadline on every wait, so the fiber
 * count stays flat however many updates come. `close` ends the leaked fibers (a test needs it; a
 * real process would carry them until it died).
 */
import { Deferred, Effect, Exit, Queue, Scope } from "effect"
import { EventEmitter } from "node:events"
import { type Adapter, Bot, Router, Supervisor } from "@fiberbot/core"

export interface LeakyBot {
  readonly bot: Bot.Bot
  /** Listeners currently registered on the event source (the callback leak shows here too). */
  readonly listeners: () => number
  /** Jobs waiting on the queue. */
  readonly queued: () => number
  /** Ticks counted by every ticker started so far. */
  readonly ticks: () => number
  /** Ends whatever the leaky handlers left behind. */
  readonly close: Effect.Effect<void>
}

export const make = (options: {
  readonly fixed: boolean
  readonly adapters: ReadonlyArray<Adapter.Adapter>
  readonly name?: string
}): Effect.Effect<LeakyBot> =>
  Effect.gen(function*() {
    // Where the leaky handlers put their background work: a scope the bot does not own.
    const leaked = yield* Scope.make()
    const events = new EventEmitter()
    events.setMaxListeners(0)
    const jobs = options.fixed ? yield* Queue.dropping<Deferred.Deferred<string>>(100) : yield* Queue.unbounded<Deferred.Deferred<string>>()
    const answers = yield* Deferred.make<string>() // nobody ever answers
    let ticks = 0
    const tick = Effect.sync(() => {
      ticks++
    })
    const inBackground = <A, E>(effect: Effect.Effect<A, E>) => Effect.asVoid(Effect.forkIn(effect, leaked))

    const leaky = Router.empty
      // Mistake 1: a ticker started per update and never stopped.
      .command("ticker", () => inBackground(Effect.forever(Effect.andThen(Effect.sleep("1 second"), tick))))
      // Mistake 2: an unbounded queue nobody drains; each update waits for a result that never comes.
      .command("enqueue", () =>
        Effect.gen(function*() {
          const result = yield* Deferred.make<string>()
          yield* Queue.offer(jobs, result)
          yield* inBackground(Deferred.await(result))
        }))
      // Mistake 3: a wait with no deadline.
      .command("wait", () => inBackground(Deferred.await(answers)))
      // Mistake 4: a callback registered and never removed.
      .command("subscribe", () =>
        inBackground(Effect.callback<void>((resume) => {
          events.on("done", () => resume(Effect.void))
        })))

    const fixed = Router.empty
      // The ticker lives in the run's scope: it stops when the run ends.
      .command("ticker", () =>
        Effect.gen(function*() {
          yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep("1 second"), tick)))
          yield* Effect.sleep("3 seconds")
        }))
      // A bounded queue (it answers "full" instead of growing), drained by a supervised worker, and
      // the wait for the result has a deadline.
      .command("enqueue", () =>
        Effect.gen(function*() {
          const result = yield* Deferred.make<string>()
          if (!(yield* Queue.offer(jobs, result))) return yield* Effect.logWarning("job queue full, dropped")
          yield* Effect.timeoutOption(Deferred.await(result), "5 seconds")
        }))
      .command("wait", () => Effect.timeoutOption(Deferred.await(answers), "5 seconds"))
      // The callback is removed when the wait ends, by answer, deadline or interruption.
      .command("subscribe", () =>
        Effect.timeoutOption(
          Effect.callback<void>((resume) => {
            const listener = () => resume(Effect.void)
            events.on("done", listener)
            return Effect.sync(() => events.off("done", listener))
          }),
          "5 seconds"
        ))

    const drainer = Supervisor.child("drain-jobs", Effect.forever(Effect.flatMap(Queue.take(jobs), (d) => Deferred.succeed(d, "done"))))

    return {
      bot: Bot.make({
        name: options.name ?? (options.fixed ? "fixed" : "leaky"),
        adapters: options.adapters,
        router: options.fixed ? fixed : leaky,
        workers: options.fixed ? [drainer] : [],
        options: { handlerTimeout: "10 seconds" }
      }),
      listeners: () => events.listenerCount("done"),
      queued: () => Queue.sizeUnsafe(jobs),
      ticks: () => ticks,
      close: Scope.close(leaked, Exit.void)
    }
  })

// Run it: `node --conditions=@fiberbot/source src/leaky-bot.ts [--fixed] [--seconds N]`. Simulated
// users send the four commands every 200 ms; watch the watchdog trip (about 30 s) and look at
// the debug server's /debug/fibers?debug=1, /debug/fibers/diff and /metrics while it runs.
if (import.meta.main) {
  const fixedVersion = process.argv.includes("--fixed")
  const secondsArg = process.argv.indexOf("--seconds")
  const seconds = secondsArg >= 0 ? Number(process.argv[secondsArg + 1]) : undefined
  const { BotManager, DebugServer, Main } = await import("@fiberbot/core")
  const { TestAdapter } = await import("@fiberbot/core/testing")
  const commands = ["/ticker", "/enqueue", "/wait", "/subscribe"]
  Main.runMain(
    Effect.gen(function*() {
      const manager = yield* BotManager
      const chat = yield* TestAdapter.make({ name: "memory" })
      const leaky = yield* make({ fixed: fixedVersion, adapters: [chat.adapter] })
      yield* manager.start(leaky.bot)
      let n = 0
      yield* manager.start(Bot.make({
        name: "users",
        workers: [Supervisor.periodic("send", Effect.gen(function*() {
          const answer = yield* chat.message(`user-${n % 5}`, commands[n++ % commands.length]!)
          if (answer !== "accepted") yield* Effect.logWarning(`the leaky bot answered ${answer}`)
        }), "200 millis")]
      }))
      if (seconds !== undefined && Number.isFinite(seconds)) yield* Effect.sleep(`${seconds} seconds`)
      yield* leaky.close
    }),
    {
      stopWhenDone: seconds !== undefined,
      shutdownDeadline: "5 seconds",
      services: DebugServer.layerGuarded({
        watchdog: { interval: "1 second", slopes: [{ window: "30 seconds", perSecond: 2, level: "critical" }], quiet: "30 seconds" },
        heapSnapshots: false
      })
    }
  )
}
