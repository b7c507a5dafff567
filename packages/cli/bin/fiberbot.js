#!/usr/bin/env node
// The built CLI when there is one (published package), else its sources (in the workspace; Node 24
// strips the types).
import { existsSync } from "node:fs"

const dist = new URL("../dist/main.js", import.meta.url)
await import(existsSync(dist) ? dist.href : new URL("../src/main.ts", import.meta.url).href)
