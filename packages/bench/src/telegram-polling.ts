// fiberbot:edge a benchmark process entry point
/**
 * telegram-polling: time to drain queued updates by long polling, per-chat order kept.
 *
 * Each round queues `--updates` messages (default 10,000) over `--chats` chats (default 200) in a
 * fresh testkit Telegram emulator, then starts one side and measures until every update was
 * handled: fiberbot's Telegram adapter (at-least-once offsets, per-chat order by the dispatcher)
 * and grammY's @grammyjs/runner with `sequentialize` by chat (what grammY recommends for
 * concurrent, ordered polling). Both handlers do the same small async step and check that each
 * chat's updates arrive in order. Sides alternate first place each round. Prints each run, the
 * medians and their ratio; the last line is one JSON object.
 *
 * Options: --updates N, --chats N, --rounds N (default 5).
 */
import { Effect } from "effect"
import { Bot as GrammyBot } from "grammy"
import { run as runGrammy, sequentialize } from "@grammyjs/runner"
import { Bot, BotManager, Logging, Router } from "@fiberbot/core"
import { Telegram } from "@fiberbot/adapters/telegram"
import { Emulator } from "@fiberbot/testkit/telegram"
import { arg, median } from "./args.ts"

const updates = arg("updates", 10_000)
const chats = arg("chats", 200)
const rounds = arg("rounds", 5)
const only = process.argv.includes("--only-fiberbot") ? "fiberbot" : undefined

/** Tracks per-chat order and completion; `done` resolves when every update was handled. */
const makeSink = () => {
  const last = new Map<number, number>()
  let handled = 0
  let outOfOrder = 0
  let resolve: () => void = () => {}
  const done = new Promise<void>((r) => {
    resolve = r
  })
  return {
    done,
    outOfOrder: () => outOfOrder,
    record: (chat: number, id: number) => {
      if ((last.get(chat) ?? 0) > id) outOfOrder++
      last.set(chat, id)
      if (++handled === updates) resolve()
    }
  }
}

const fill = (emu: Emulator.Emulator) => {
  for (let i = 0; i < updates; i++) emu.sendMessage({ chatId: 1 + (i % chats), text: `m${i}` })
}

// The same small async step on both sides: a macrotask hop, as a handler awaiting I/O would.
const hop = () => new Promise<void>((r) => setImmediate(r))

const fiberbotRun = (delivery: "at-least-once" | "at-most-once") => Effect.scoped(Effect.gen(function*() {
  const emu = yield* Emulator.make()
  fill(emu)
  const sink = makeSink()
  const tg = Telegram.make({ token: emu.token, apiRoot: emu.apiRoot, flood: false, polling: { timeout: 1, delivery } })
  const manager = yield* BotManager
  const bot = Bot.make({
    name: "poll-bench",
    adapters: [tg.adapter],
    router: Router.empty.on("message", (ctx) =>
      Effect.andThen(Effect.promise(hop), Effect.sync(() => sink.record(Number(ctx.update.key), Number(ctx.update.id))))),
    options: { concurrency: 500, metrics: false }
  })
  const t0 = performance.now()
  yield* manager.start(bot)
  yield* Effect.promise(() => sink.done)
  const ms = performance.now() - t0
  yield* manager.stop("poll-bench", { deadline: "5 seconds" })
  return { ms, outOfOrder: sink.outOfOrder(), polls: emu.calls("getUpdates").length }
}))

const grammyRun = Effect.scoped(Effect.gen(function*() {
  const emu = yield* Emulator.make()
  fill(emu)
  const sink = makeSink()
  const bot = new GrammyBot(emu.token, { client: { apiRoot: emu.apiRoot } })
  bot.use(sequentialize((ctx) => String(ctx.chat?.id)))
  bot.on("message", async (ctx) => {
    await hop()
    sink.record(ctx.chat.id, ctx.update.update_id)
  })
  const t0 = performance.now()
  const handle = runGrammy(bot)
  yield* Effect.promise(() => sink.done)
  const ms = performance.now() - t0
  yield* Effect.promise(() => handle.stop())
  return { ms, outOfOrder: sink.outOfOrder(), polls: emu.calls("getUpdates").length }
}))


const main = Effect.gen(function*() {
  console.log(`telegram-polling: drain ${updates.toLocaleString("en")} queued updates over ${chats} chats, ${rounds} rounds`)
  yield* fiberbotRun("at-least-once")
  yield* fiberbotRun("at-most-once")
  if (only === undefined) yield* grammyRun
  const sides = ["fiberbot", "fiberbot-amo", "grammy"] as const
  const times: Record<(typeof sides)[number], Array<number>> = { fiberbot: [], "fiberbot-amo": [], grammy: [] }
  let disorder = 0
  for (let r = 0; r < rounds; r++) {
    // rotate which side goes first, so drift (GC, JIT, other load) hits all alike
    const order = [...sides.slice(r % 3), ...sides.slice(0, r % 3)]
    for (const side of order) {
      if (only !== undefined && side === "grammy") continue
      globalThis.gc?.()
      const res = yield* (side === "fiberbot" ? fiberbotRun("at-least-once") : side === "fiberbot-amo" ? fiberbotRun("at-most-once") : grammyRun)
      disorder += res.outOfOrder
      times[side].push(res.ms)
      console.log(`  round ${r + 1} ${side.padEnd(12)} ${Math.round(res.ms)} ms (${Math.round(updates / (res.ms / 1000)).toLocaleString("en")} updates/s, ${res.polls} getUpdates, ${res.outOfOrder} out of order)`)
    }
  }
  const fb = times.fiberbot
  const amo = times["fiberbot-amo"]
  const gr = times.grammy
  const result = {
    bench: "telegram-polling",
    updates,
    chats,
    rounds,
    fiberbotMs: Math.round(median(fb)),
    fiberbotAtMostOnceMs: Math.round(median(amo)),
    grammyRunnerMs: gr.length === 0 ? undefined : Math.round(median(gr)),
    fiberbotPerSec: Math.round(updates / (median(fb) / 1000)),
    grammyRunnerPerSec: Math.round(updates / (median(gr) / 1000)),
    ratioVsGrammyRunner: gr.length === 0 ? undefined : Number((median(gr) / median(fb)).toFixed(3)),
    ratioAtMostOnceVsGrammyRunner: gr.length === 0 ? undefined : Number((median(gr) / median(amo)).toFixed(3)),
    outOfOrder: disorder,
    delivery: { fiberbot: "at-least-once", fiberbotAtMostOnce: "at-most-once", grammyRunner: "at-most-once (confirms on fetch)" },
    node: process.version
  }
  console.log(`fiberbot at-least-once: ${result.fiberbotMs} ms (median)`)
  console.log(`fiberbot at-most-once:  ${result.fiberbotAtMostOnceMs} ms (median)`)
  console.log(`grammY runner:          ${result.grammyRunnerMs} ms (median)`)
  console.log(`runner time / fiberbot time: ${result.ratioVsGrammyRunner} (at-least-once), ${result.ratioAtMostOnceVsGrammyRunner} (at-most-once); > 1 means fiberbot is faster`)
  console.log(JSON.stringify(result))
})

Effect.runPromise(main.pipe(Effect.provide(BotManager.layer), Effect.provide(Logging.layer({ level: "warn" })))).catch((error) => {
  console.error(error)
  process.exitCode = 1
})
