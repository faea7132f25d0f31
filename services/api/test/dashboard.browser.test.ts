import { randomBytes } from 'node:crypto'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { type Db, getOrder, insertOrders } from '@postgres-queue/db'
import { makeOrder, settleNow } from '@postgres-queue/testkit'
import t from 'tap'
import { listenApi, noBrowser, openBrowser, waitForText } from './browser.js'
import { playTraffic, setTheScene } from './dashboard-scene.js'

// The dashboard in a real browser, against the real api on a real database. Skipped, and says why,
// where Chromium is missing; .ci/run installs it, so CI always runs these.
if (noBrowser) t.comment(noBrowser)

/** An order that used its one attempt and failed: what the dashboard lists for redrive. */
async function failAnOrder(db: Db, error: string): Promise<number> {
  // Highest priority, so the claim takes this order before anything else pending.
  const [order] = await insertOrders(db, [makeOrder({ maxAttempts: 1, priority: 1000 })])
  await settleNow(db, { failed: [order!.id], error })
  return order!.id
}

t.test('the dashboard follows submissions and redrives a failed order', { skip: noBrowser }, async (t) => {
  const { db, url } = await listenApi(t, { maxConnections: 4 })
  const page = await (await openBrowser(t)).newPage()
  await page.goto(url)
  await waitForText(page, '#count-pending', '0')

  const submitted = await fetch(`${url}orders/batch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ orders: [makeOrder(), makeOrder(), makeOrder()] }),
  })
  t.equal(submitted.status, 201)
  await waitForText(page, '#count-pending', '3')
  t.pass('the pending count follows the submissions')

  const id = await failAnOrder(db, 'processor threw: card declined')
  const row = page.locator(`#failed-orders tr[data-order-id="${id}"]`)
  await row.getByText('processor threw: card declined').waitFor()
  await waitForText(page, '#count-failed', '1')
  t.pass('the failed order is listed with its error')

  await page.getByRole('button', { name: `Redrive order ${id}` }).click()
  await row.waitFor({ state: 'detached' })
  await waitForText(page, '#count-pending', '4')
  await waitForText(page, '#count-failed', '0')
  await page.getByText(`Order ${id} sent back to pending.`).waitFor()
  t.equal((await getOrder(db, id))?.status, 'pending', 'pending in the database too')

  const screenshot = path.join(os.tmpdir(), `postgres-queue-dashboard-${randomBytes(4).toString('hex')}.png`)
  await page.screenshot({ path: screenshot, fullPage: true })
  t.comment(`screenshot: ${screenshot}`)
})

t.test(
  'the dashboard lists pending orders with a cancel button, and finds an order by id',
  { skip: noBrowser },
  async (t) => {
    const { db, url } = await listenApi(t, { maxConnections: 4 })
    const [first, second] = await insertOrders(db, [makeOrder({ customerId: 'first-in-line' }), makeOrder()])
    const page = await (await openBrowser(t)).newPage()
    await page.goto(url)
    await waitForText(page, '#count-pending', '2')
    const row = page.locator(`#pending-orders tr[data-order-id="${first!.id}"]`)
    await row.getByText('first-in-line').waitFor()
    t.pass('the pending order is listed, oldest first')

    await page.getByRole('button', { name: `Cancel order ${first!.id}` }).click()
    await row.waitFor({ state: 'detached' })
    await page.getByText(`Order ${first!.id} cancelled.`).waitFor()
    await waitForText(page, '#count-pending', '1')
    await waitForText(page, '#count-cancelled', '1')
    t.equal((await getOrder(db, first!.id))?.status, 'cancelled', 'cancelled in the database too')

    const failed = await failAnOrder(db, 'processor threw: out of stock')
    await page.getByLabel('Order id').fill(String(failed))
    await page.getByRole('button', { name: 'Find' }).click()
    await waitForText(page, '#found-order dd[data-field="status"]', 'failed')
    await waitForText(page, '#found-order dd[data-field="last error"]', 'processor threw: out of stock')
    await page
      .locator('#found-actions')
      .getByRole('button', { name: `Redrive order ${failed}` })
      .click()
    await waitForText(page, '#found-order dd[data-field="status"]', 'pending')
    t.equal((await getOrder(db, failed))?.status, 'pending', 'redriven from the found order')

    await page.getByLabel('Order id').fill(String(second!.id + 1000))
    await page.getByRole('button', { name: 'Find' }).click()
    await page.getByText(`No order ${second!.id + 1000}.`).waitFor()
    t.pass('an unknown id says so')
  },
)

t.test('the dashboard shows a key blocked by a dead letter, and skips it', { skip: noBrowser }, async (t) => {
  const { db, url } = await listenApi(t, { maxConnections: 4 })
  const [head, next] = await insertOrders(db, [
    makeOrder({ orderingKey: 'acct-7', maxAttempts: 1 }),
    makeOrder({ orderingKey: 'acct-7' }),
  ])
  await settleNow(db, { failed: [head!.id], error: 'processor threw: card declined' })
  const page = await (await openBrowser(t)).newPage()
  await page.goto(url)
  await waitForText(page, '#count-waiting', '1')
  const row = page.locator('#blocked-keys tr[data-ordering-key="acct-7"]')
  await row.getByText(`order ${head!.id}, failed`).waitFor()
  await waitForText(page, '#blocked-summary', '1 key, 1 on a failed order')
  t.pass('the blocked key is listed with the order that blocks it')

  await page.getByRole('button', { name: `Skip order ${head!.id} of key acct-7` }).click()
  await row.waitFor({ state: 'detached' })
  await page.getByText(`Order ${head!.id} skipped: its key goes on without it.`).waitFor()
  await waitForText(page, '#count-waiting', '0')
  t.match(await getOrder(db, head!.id), { status: 'failed', skippedAt: Date })
  t.equal((await getOrder(db, next!.id))?.status, 'pending', 'the next order of the key is due')
})

t.test('with API_TOKEN set, the page asks for the token, then shows the queue', { skip: noBrowser }, async (t) => {
  const TOKEN = 'browser-test-token-0123456789'
  const { db, url } = await listenApi(t, { env: { API_TOKEN: TOKEN } })
  await insertOrders(db, [makeOrder(), makeOrder()])
  const page = await (await openBrowser(t)).newPage()
  await page.goto(url)

  const dialog = page.getByRole('dialog', { name: 'API token required' })
  await dialog.waitFor()
  await dialog.getByLabel('API token').fill('wrong-token-0123456789abcdef')
  await dialog.getByRole('button', { name: 'Use token' }).click()
  await dialog.getByText('The api refused the stored token.').waitFor()
  t.pass('a wrong token is refused and asked for again')

  await dialog.getByLabel('API token').fill(TOKEN)
  await dialog.getByRole('button', { name: 'Use token' }).click()
  await waitForText(page, '#count-pending', '2')
  t.notOk(await dialog.isVisible(), 'the dialog is gone')

  await page.reload()
  await waitForText(page, '#count-pending', '2')
  t.notOk(await dialog.isVisible(), 'the token is kept across reloads')
})

// The README's picture, made on demand: DASHBOARD_SCREENSHOT=docs/dashboard.png (from the repo root).
const screenshotTarget = process.env.DASHBOARD_SCREENSHOT
const noTarget = screenshotTarget ? false : 'set DASHBOARD_SCREENSHOT=docs/dashboard.png to draw the README screenshot'

t.test('draws the README screenshot of a queue in use', { skip: noBrowser || noTarget }, async (t) => {
  const { db, url } = await listenApi(t, { maxConnections: 4 })
  await setTheScene(db)
  const page = await (await openBrowser(t)).newPage()
  await page.setViewportSize({ width: 1440, height: 900 })
  await page.goto(url)
  await playTraffic(db, url, 45)
  await page.waitForTimeout(2500) // one more poll after the last tick
  const root = fileURLToPath(new URL('../../../', import.meta.url))
  const target = path.resolve(root, screenshotTarget!)
  await page.screenshot({ path: target, fullPage: true })
  t.comment(`screenshot: ${target}`)
})
