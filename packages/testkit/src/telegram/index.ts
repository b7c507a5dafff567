/**
 * The Telegram Bot API emulator: a loopback server with fault injection and a user side, for
 * testing Telegram bots offline.
 */
export * as Emulator from "./Emulator.ts"
