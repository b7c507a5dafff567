// fiberbot:edge a benchmark process entry point
/**
 * telegram-webhook: updates/s through a webhook whose handler replies.
 *
 * One load generator (`telegram/load.ts`: keep-alive workers POSTing distinct message updates
 * with the secret header) drives three webhook servers in turn, each replying with
 * `sendMessage` to the same kind of testkit Telegram emulator: fiberbot's Telegram adapter in
 * webhook mode, grammY's `webhookCallback(bot, "http")` on node:http, and Telegraf's
 * `webhookCallback(path, { secretToken })` on node:http. A run ends when every update was
 * acknowledged and every reply reached the emulator. Sides rotate first place each round. Prints
 * each run, the medians and the ratios; the last line is one JSON object.
 *
 * Options: --updates N (default 10000), --chats N (200), --concurrency N (64), --rounds N (5).
 */
import { Effect, Redacted } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { Bot as GrammyBot, webhookCallback } from "grammy"
import { Telegraf } from "telegraf"
import { Bot, BotManager, Logging, Router } from "@fiberbot/core"
import { Telegram } from "@fiberbot/adapters/telegram"
import { Emulator } from "@fiberbot/testkit/telegram"
import { post } from "./telegram/load.ts"
import { arg, median } from "./args.ts"

const updates = arg("updates", 10_000)
const chats = arg("chats", 200)
const concurrency = arg("concurrency", 64)
const rounds = arg("rounds", 5)
const only = process.argv.includes("--only-fiberbot")
const secret = "bench-secret"
// Given to grammY and Telegraf so neither calls getMe inside the measured runs.
const me = {
  id: 123456, is_bot: true as const, first_name: "Emulated", username: "emulated_bot", can_join_groups: true,
  can_read_all_group_messages: false, supports_inline_queries: false, can_connect_to_business: false, has_main_web_app: false,
  has_topics_enabled: false, allows_users_to_create_topics: false, can_manage_bots: false, supports_join_request_queries: false
}

interface RunResult {
  readonly ms: number
  readonly failed: number
}

/** Loads `url`, then waits until the emulator has every reply. */
const drive = (emu: Emulator.Emulator, url: string) =>
  Effect.gen(function*() {
    const t0 = performance.now()
    const load = yield* Effect.promise(() => post({ url, total: updates, chats, concurrency, secret, firstId: 1 }))
    yield* emu.waitForSent(updates, { timeout: "120 seconds" })
    return { ms: performance.now() - t0, failed: load.failed }
  })

const listen = (handler: Http.RequestListener) =>
  Effect.acquireRelease(
    Effect.callback<Http.Server>((resume) => {
      const server = Http.createServer({ keepAliveTimeout: 10_000 }, handler)
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.callback<void>((resume) => {
        server.close(() => resume(Effect.void))
        server.closeAllConnections()
      })
  )

const fiberbotRun: Effect.Effect<RunResult, unknown, BotManager> = Effect.scoped(Effect.gen(function*() {
  const emu = yield* Emulator.make()
  const tg = Telegram.make({
    token: emu.token,
    apiRoot: emu.apiRoot,
    flood: false,
    webhook: { secretToken: Redacted.make(secret) }
  })
  const manager = yield* BotManager
  yield* manager.start(Bot.make({
    name: "hook-bench",
    adapters: [tg.adapter],
    router: Router.empty.on("message", (ctx) => ctx.reply(`echo: ${ctx.text}`)),
    options: { concurrency: 500, metrics: false, intake: { capacity: 10_000 } }
  }))
  const { port } = tg.status().address!
  const result = yield* drive(emu, `http://127.0.0.1:${port}/telegram`)
  yield* manager.stop("hook-bench", { deadline: "5 seconds" })
  return result
}))

const grammyRun: Effect.Effect<RunResult, unknown> = Effect.scoped(Effect.gen(function*() {
  const emu = yield* Emulator.make()
  const bot = new GrammyBot(emu.token, { client: { apiRoot: emu.apiRoot }, botInfo: me })
  bot.on("message", (ctx) => ctx.reply(`echo: ${ctx.message.text}`).then(() => undefined))
  const handle = webhookCallback(bot, "http", { secretToken: secret })
  const server = yield* listen((req, res) => void handle(req, res))
  return yield* drive(emu, `http://127.0.0.1:${(server.address() as AddressInfo).port}/`)
}))

const telegrafRun: Effect.Effect<RunResult, unknown> = Effect.scoped(Effect.gen(function*() {
  const emu = yield* Emulator.make()
  const bot = new Telegraf(emu.token, { telegram: { apiRoot: emu.apiRoot, webhookReply: false } })
  bot.botInfo = me
  bot.on("message", (ctx) => ctx.reply(`echo: ${"text" in ctx.message ? ctx.message.text : ""}`).then(() => undefined))
  const handle = bot.webhookCallback("/telegraf", { secretToken: secret })
  const server = yield* listen((req, res) => void handle(req, res))
  return yield* drive(emu, `http://127.0.0.1:${(server.address() as AddressInfo).port}/telegraf`)
}))


const main = Effect.gen(function*() {
  console.log(`telegram-webhook: ${updates.toLocaleString("en")} updates over ${chats} chats, ${concurrency} connections, replying handler, ${rounds} rounds`)
  const sides = ["fiberbot", "grammy", "telegraf"] as const
  const runs = { fiberbot: fiberbotRun, grammy: grammyRun, telegraf: telegrafRun }
  for (const side of sides) if (!only || side === "fiberbot") yield* runs[side] // warm-up
  const rates: Record<(typeof sides)[number], Array<number>> = { fiberbot: [], grammy: [], telegraf: [] }
  let failed = 0
  for (let r = 0; r < rounds; r++) {
    const order = [...sides.slice(r % 3), ...sides.slice(0, r % 3)]
    for (const side of order) {
      if (only && side !== "fiberbot") continue
      globalThis.gc?.()
      const res = yield* runs[side]
      failed += res.failed
      const rate = updates / (res.ms / 1000)
      rates[side].push(rate)
      console.log(`  round ${r + 1} ${side.padEnd(8)} ${Math.round(rate).toLocaleString("en")} updates/s (${Math.round(res.ms)} ms, ${res.failed} failed)`)
    }
  }
  const result = {
    bench: "telegram-webhook",
    updates,
    chats,
    concurrency,
    rounds,
    fiberbotPerSec: Math.round(median(rates.fiberbot)),
    grammyPerSec: Math.round(median(rates.grammy)),
    telegrafPerSec: Math.round(median(rates.telegraf)),
    ratioVsGrammy: Number((median(rates.fiberbot) / median(rates.grammy)).toFixed(3)),
    ratioVsTelegraf: Number((median(rates.fiberbot) / median(rates.telegraf)).toFixed(3)),
    failedRequests: failed,
    node: process.version
  }
  console.log(`fiberbot: ${result.fiberbotPerSec.toLocaleString("en")} updates/s (median)`)
  console.log(`grammY:   ${result.grammyPerSec.toLocaleString("en")} updates/s (median)`)
  console.log(`Telegraf: ${result.telegrafPerSec.toLocaleString("en")} updates/s (median)`)
  console.log(`fiberbot / grammY ${result.ratioVsGrammy}, fiberbot / Telegraf ${result.ratioVsTelegraf} (> 1 means fiberbot is faster)`)
  console.log(JSON.stringify(result))
})

Effect.runPromise(main.pipe(Effect.provide(BotManager.layer), Effect.provide(Logging.layer({ level: "warn" })))).catch((error) => {
  console.error(error)
  process.exitCode = 1
})
