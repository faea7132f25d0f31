// A small line chart drawn as SVG: enough for a few series over a time window, no library needed.

const SVG = 'http://www.w3.org/2000/svg'
const WIDTH = 600
const HEIGHT = 220
const MARGIN = { top: 10, right: 12, bottom: 22, left: 44 }

function element(name, attributes, text) {
  const node = document.createElementNS(SVG, name)
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value))
  if (text !== undefined) node.textContent = text
  return node
}

/** A round step for the y axis: 1, 2 or 5 times a power of ten, so labels read well. */
function niceMax(value) {
  if (value <= 4) return 4
  const power = 10 ** Math.floor(Math.log10(value))
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power
  return 10 * power
}

/**
 * Draws `series` ([{ className, points: [[timeMs, value], ...] }]) into `svg` over [from, to].
 * The y axis starts at 0 and ends at a round number above the highest value.
 */
export function drawChart(svg, { series, from, to, xLabels }) {
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.points.map(([, v]) => v))))
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom
  const x = (t) => MARGIN.left + ((t - from) / (to - from)) * plotWidth
  const y = (v) => MARGIN.top + plotHeight - (v / max) * plotHeight

  const nodes = []
  for (const fraction of [0, 0.5, 1]) {
    const value = max * fraction
    const grid = { class: 'grid', x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(value), y2: y(value) }
    nodes.push(element('line', grid))
    const label = Number.isInteger(value) ? value.toLocaleString() : value.toFixed(1)
    nodes.push(element('text', { x: MARGIN.left - 6, y: y(value) + 4, 'text-anchor': 'end' }, label))
  }
  nodes.push(element('text', { x: MARGIN.left, y: HEIGHT - 6 }, xLabels[0]))
  nodes.push(element('text', { x: WIDTH - MARGIN.right, y: HEIGHT - 6, 'text-anchor': 'end' }, xLabels[1]))
  for (const { className, points } of series) {
    const visible = points.filter(([t]) => t >= from && t <= to)
    if (visible.length === 0) continue
    const coordinates = visible.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ')
    nodes.push(element('polyline', { class: className, points: coordinates }))
  }
  svg.replaceChildren(...nodes)
}
