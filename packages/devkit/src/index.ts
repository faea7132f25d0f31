export { checkDocumentedMetrics, servedMetrics } from './documented-metrics.js'
export { createEffectsTable, effectCounts, recordEffect } from './effects.js'
export { makeOrder } from './fixtures.js'
export { type Cluster, type ClusterOptions, freePort, startCluster, stopCluster } from './postgres-cluster.js'
export {
  type InstalledPackage,
  installedPackages,
  type ProductionPackages,
  packageId,
  productionPackages,
} from './production-packages.js'
export { settleNow } from './settle.js'
export { createTestDatabase, openTestDb, startPrivateCluster } from './test-database.js'
export { type WaitForOptions, waitFor } from './wait-for.js'
