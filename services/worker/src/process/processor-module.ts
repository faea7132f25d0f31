import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { ConfigError } from '@postgres-queue/runtime'
import type { OrderProcessor } from '../processor.js'

/**
 * The processor WORKER_PROCESSOR names: its module's `processor` export, or its default export. A
 * path (absolute, or relative to the working directory) is loaded as a file; anything else as a
 * package, as `import` would find it. A module that cannot be loaded, or that exports no function
 * under either name, is a configuration error: the process says why and exits 2.
 */
export async function loadProcessor(specifier: string): Promise<OrderProcessor> {
  const isPath = specifier.startsWith('.') || path.isAbsolute(specifier)
  const target = isPath ? pathToFileURL(path.resolve(specifier)).href : specifier
  let module: { processor?: unknown; default?: unknown }
  try {
    module = (await import(target)) as typeof module
  } catch (err) {
    throw new ConfigError([`WORKER_PROCESSOR=${specifier} could not be loaded: ${(err as Error).message}`])
  }
  const processor = typeof module.processor === 'function' ? module.processor : module.default
  if (typeof processor !== 'function') {
    throw new ConfigError([
      `WORKER_PROCESSOR=${specifier} exports no processor: export a function as \`processor\` (or as the default export)`,
    ])
  }
  return processor as OrderProcessor
}
