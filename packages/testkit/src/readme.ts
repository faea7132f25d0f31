import { readFile } from 'node:fs/promises'

const README = new URL('../../../README.md', import.meta.url)

/**
 * The README's fenced code block in `language` that contains `marker`, as a reader would copy it: the
 * tests of the README's examples run exactly what it shows. Throws if there is none, or more than one.
 */
export async function readmeCodeBlock(language: string, marker: string): Promise<string> {
  const readme = await readFile(README, 'utf8')
  const blocks = [...readme.matchAll(/^( *)```(\w+)\n([\s\S]*?)^\1```$/gm)]
    .filter(([, , lang, code]) => lang === language && code?.includes(marker))
    .map(([, indent, , code]) => (code ?? '').replace(new RegExp(`^${indent}`, 'gm'), ''))
  if (blocks.length !== 1)
    throw new Error(`README: ${blocks.length} ${language} blocks contain ${JSON.stringify(marker)}`)
  return blocks[0] as string
}
