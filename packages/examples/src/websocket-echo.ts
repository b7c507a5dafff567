/**
 * The WebSocket echo/chat bot of the playground: a bot on the raw WebSocket server adapter.
 *
 * Every text message is echoed back to its connection; `/all <text>` is broadcast to every open
 * connection; `/rtt` answers the last measured ping round trip; open and close are logged.
 * `makeWebSocketEcho()` builds the adapter and the bot; the playground starts the bot with the
 * BotManager and connects its built-in client to `server.url()`.
 */
import { Duration, Effect } from "effect"
import { Bot, Router } from "@fiberbot/core"
import { Server } from "@fiberbot/adapters/websocket"

export interface WebSocketEcho {
  readonly bot: Bot.Bot
  readonly server: Server.WebSocketServerAdapter
}

export const makeWebSocketEcho = (options: {
  readonly port?: number
  readonly heartbeat?: Duration.Input
  readonly name?: string
} = {}): WebSocketEcho => {
  const server = Server.make({ port: options.port ?? 0, heartbeat: options.heartbeat ?? "5 seconds" })
  const router = Router.empty
    .on("open", (ctx) => Effect.logInfo(`connection ${ctx.update.key} opened`))
    .on("close", (ctx) => Effect.logInfo(`connection ${ctx.update.key} closed (${String((ctx.update.payload as Server.LifecyclePayload).code)})`))
    .command("all", (ctx) =>
      Effect.flatMap(server.broadcast(`${ctx.update.key} says: ${ctx.command?.args ?? ""}`), (n) => Effect.logInfo(`broadcast to ${n} connections`)))
    .command("rtt", (ctx) => {
      const rtt = server.rtt(ctx.update.key)
      return ctx.reply(rtt === undefined ? "no ping answered yet" : `round trip ${rtt.toFixed(2)} ms`)
    })
    .on("message", (ctx) => ctx.reply(`echo: ${ctx.text ?? `(${(ctx.update.payload as Server.MessagePayload).data.length} bytes)`}`))
  const bot = Bot.make({
    name: options.name ?? "ws-echo",
    adapters: [server.adapter],
    router,
    options: { handlerTimeout: "5 seconds", concurrency: 1000 }
  })
  return { bot, server }
}
