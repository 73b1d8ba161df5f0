// The dashboard's files: built by esbuild (scripts/build-web.mjs) into dist-web/ and
// served here. When dist-web is missing or older than the sources (a fresh clone,
// a pull), the server builds it before listening, so `npm start` just works.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { Logger } from '../logger.js';
import { HttpError } from './errors.js';

/** The checkout's root: the nearest directory above this file with a package.json. */
export function projectRoot(from = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${from}`);
    dir = up;
  }
  return dir;
}

export const defaultWebDir = () => join(projectRoot(), 'dist-web');
const sourceDir = () => join(projectRoot(), 'src', 'dashboard', 'web');

async function newestMtime(dir: string): Promise<number> {
  let newest = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? await newestMtime(p) : (await stat(p)).mtimeMs);
  }
  return newest;
}

/** True when the built page is missing or older than its sources. */
export async function webBuildNeeded(outDir = defaultWebDir()): Promise<boolean> {
  const built = await stat(join(outDir, 'index.html')).catch(() => undefined);
  if (!built) return true;
  if (!existsSync(sourceDir())) return false; // an image may ship dist-web without the sources
  return (await newestMtime(sourceDir())) > built.mtimeMs;
}

/** Runs scripts/build-web.mjs (a child process: esbuild stays out of the server's memory). */
export function buildWeb(outDir = defaultWebDir()): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const script = join(projectRoot(), 'scripts', 'build-web.mjs');
    const child = spawn(process.execPath, [script, '--out', outDir], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0
        ? resolvePromise()
        : reject(new Error(`building the dashboard failed (exit ${code}): ${stderr}`)),
    );
  });
}

export async function ensureWebBuilt(logger: Logger, outDir = defaultWebDir()): Promise<void> {
  if (!(await webBuildNeeded(outDir))) return;
  logger.info({ outDir }, 'building the dashboard');
  await buildWeb(outDir);
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.map': 'application/json',
};

/** Nothing outside is reachable from the page, and nothing outside may frame or script it. */
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join('; ');

export function registerWebRoutes(app: FastifyInstance, webDir = defaultWebDir()): void {
  const root = resolve(webDir);
  const send = async (file: string) => {
    const path = resolve(root, file);
    if (!path.startsWith(root + sep)) throw new HttpError(404, 'not_found', 'no such file');
    const type = TYPES[extname(path)];
    if (!type) throw new HttpError(404, 'not_found', 'no such file');
    const body = await readFile(path).catch(() => {
      throw new HttpError(404, 'not_found', `no such file (is the dashboard built? npm run build:web)`);
    });
    return { body, type };
  };

  app.get('/', async (_req, reply) => {
    const { body, type } = await send('index.html');
    reply
      .header('content-type', type)
      .header('cache-control', 'no-cache')
      .header('content-security-policy', CSP)
      .header('x-frame-options', 'DENY')
      .header('referrer-policy', 'no-referrer');
    return body;
  });

  app.get<{ Params: { '*': string } }>('/assets/*', async (req, reply) => {
    const { body, type } = await send(join('assets', req.params['*']));
    reply.header('content-type', type).header('cache-control', 'no-cache');
    return body;
  });
}
