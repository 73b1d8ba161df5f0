// Runs `prisma generate` on machines where Prisma's native schema engine cannot be
// downloaded. `generate` does not execute the engine, but the CLI looks for it
// first; pointing PRISMA_SCHEMA_ENGINE_BINARY at an existing file satisfies that
// check (see shared environment facts). Where the engine exists, nothing changes.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const env = { ...process.env, PRISMA_HIDE_UPDATE_MESSAGE: '1', CHECKPOINT_DISABLE: '1' };
if (!env.PRISMA_SCHEMA_ENGINE_BINARY) env.PRISMA_SCHEMA_ENGINE_BINARY = fileURLToPath(import.meta.url);
const bin = fileURLToPath(new URL('../node_modules/prisma/build/index.js', import.meta.url));
if (!existsSync(bin)) {
  console.error('prisma-generate: the prisma CLI is not installed (run npm install)');
  process.exit(1);
}
const result = spawnSync(process.execPath, [bin, 'generate'], { env, stdio: 'inherit' });
process.exit(result.status ?? 1);
