import { defineConfig } from "vitest/config"

// Workspace packages resolve to their TypeScript sources through the "@fiberbot/source" export
// condition, so tests never need a build first.
const conditions = ["@fiberbot/source", "node", "import", "module", "default"]

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: conditions } },
  test: {
    include: ["packages/*/test/**/*.test.ts", "scripts/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000
  }
})
