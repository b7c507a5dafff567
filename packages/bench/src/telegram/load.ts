/**
 * The webhook load generator shared by every side of the telegram-webhook benchmark: `total`
 * distinct message updates over `chats` chats, POSTed by `concurrency` keep-alive workers, the
 * secret header included, each request waiting for its answer before the next.
 */
import { Agent, request } from "undici"

export interface LoadResult {
  readonly ok: number
  readonly failed: number
}

export const updateBody = (id: number, chats: number) =>
  JSON.stringify({
    update_id: id,
    message: {
      message_id: id,
      date: 1_700_000_000,
      chat: { id: 1 + (id % chats), type: "private", first_name: "u" },
      from: { id: 1 + (id % chats), is_bot: false, first_name: "u" },
      text: `hello ${id}`
    }
  })

export const post = async (options: {
  readonly url: string
  readonly total: number
  readonly chats: number
  readonly concurrency: number
  readonly secret: string
  readonly firstId: number
}): Promise<LoadResult> => {
  const agent = new Agent({ connections: options.concurrency, keepAliveTimeout: 10_000 })
  let next = 0
  let ok = 0
  let failed = 0
  const worker = async () => {
    while (next < options.total) {
      const id = options.firstId + next++
      try {
        const r = await request(options.url, {
          method: "POST",
          dispatcher: agent,
          headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": options.secret },
          body: updateBody(id, options.chats)
        })
        await r.body.dump()
        if (r.statusCode === 200) ok++
        else failed++
      } catch {
        failed++
      }
    }
  }
  await Promise.all(Array.from({ length: options.concurrency }, worker))
  await agent.close()
  return { ok, failed }
}
