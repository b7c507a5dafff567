/**
 * @fiberbot/adapters/telegram: the Telegram Bot API adapter (long polling and webhooks over
 * undici), its typed client, flood control and update decoding.
 */
export * as Client from "./Client.ts"
export * as Decode from "./Decode.ts"
export * as FloodControl from "./FloodControl.ts"
export * as Offsets from "./Offsets.ts"
export * as Polling from "./Polling.ts"
export * as Telegram from "./Telegram.ts"
export * as TelegramError from "./TelegramError.ts"
export * as Webhook from "./Webhook.ts"
export { InputFile } from "./Client.ts"
