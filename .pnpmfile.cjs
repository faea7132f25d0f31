// drizzle-orm declares every driver it supports as an optional peer (about forty), and pnpm resolves
// an optional peer from any project of the workspace that happens to have it (pnpm issue 13989): the
// bench's pg and @types/pg, pg-boss's @opentelemetry/api. `pnpm deploy --prod` then ships those in
// the production images, though nothing there imports them. The product uses one driver, postgres.
const drizzlePeersWeUse = new Set(['postgres'])

function readPackage(pkg) {
  if (pkg.name === 'drizzle-orm') {
    for (const peer of Object.keys(pkg.peerDependencies ?? {})) {
      if (drizzlePeersWeUse.has(peer)) continue
      delete pkg.peerDependencies[peer]
      if (pkg.peerDependenciesMeta) delete pkg.peerDependenciesMeta[peer]
    }
  }
  return pkg
}

module.exports = { hooks: { readPackage } }
