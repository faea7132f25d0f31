import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { freePort } from '@postgres-queue/devkit'
import { type BrowserContext, chromium, type Page } from 'playwright-core'
import { startApi, type TestApi, type TestApiOptions } from './helpers.js'

interface Teardown {
  teardown(fn: () => unknown): void
}

/** Debian's chromium package; CI installs it (.ci/run). */
const CHROMIUM = '/usr/bin/chromium'

/** Why the browser tests cannot run here, or false when they can. */
export const noBrowser: string | false = existsSync(CHROMIUM)
  ? false
  : `${CHROMIUM} is missing (apt-get install chromium): the browser tests are skipped`

/**
 * Without the background-networking flags, Chromium keeps calling Google's services, and in a
 * closed network floods it with refused connections.
 */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

/** Headless Chromium with a fresh profile (so no token survives from another test), closed and removed in teardown. */
export async function openBrowser(t: Teardown): Promise<BrowserContext> {
  const profile = await mkdtemp(path.join(os.tmpdir(), 'postgres-queue-chromium-'))
  t.teardown(() => rm(profile, { recursive: true, force: true }))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1440, height: 1000 },
  })
  t.teardown(() => context.close())
  return context
}

/** The api listening on a free port of 127.0.0.1, as a browser reaches it. */
export async function listenApi(t: Teardown, options: TestApiOptions = {}): Promise<TestApi & { url: string }> {
  const api = await startApi(t, options)
  const port = await freePort()
  await api.app.listen({ port, host: '127.0.0.1' })
  return { ...api, url: `http://127.0.0.1:${port}/` }
}

/** Waits until the element `selector` reads exactly `text` (the page polls every 2 s). */
export async function waitForText(page: Page, selector: string, text: string, timeout = 10_000): Promise<void> {
  const exactly = new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`)
  await page.locator(selector, { hasText: exactly }).waitFor({ timeout })
}
