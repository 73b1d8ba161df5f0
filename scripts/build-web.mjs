// `npm run build:web`: bundles the dashboard (src/dashboard/web, plain TypeScript)
// with esbuild into dist-web/ (or --out DIR). The server runs this by itself when
// dist-web is missing or stale. Files are replaced atomically (write, then rename),
// so a server answering while a build runs never serves half a file.
import { copyFile, mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const src = join(root, 'src', 'dashboard', 'web');
const outFlag = process.argv.indexOf('--out');
const out = resolve(
  outFlag > 0 && process.argv[outFlag + 1] ? process.argv[outFlag + 1] : join(root, 'dist-web'),
);

const result = await build({
  entryPoints: [join(src, 'main.ts')],
  bundle: true,
  format: 'esm',
  target: 'es2020',
  minify: true,
  sourcemap: 'linked',
  outfile: join(out, 'assets', 'app.js'),
  write: false,
  logLevel: 'warning',
});

const tag = `.tmp-${process.pid}`;
const place = async (path, write) => {
  await mkdir(dirname(path), { recursive: true });
  await write(path + tag);
  await rename(path + tag, path);
};
for (const f of result.outputFiles) await place(f.path, (tmp) => writeFile(tmp, f.contents));
await place(join(out, 'assets', 'style.css'), (tmp) => copyFile(join(src, 'style.css'), tmp));
// index.html last: its mtime marks a complete build (see src/server/web.ts).
await place(join(out, 'index.html'), (tmp) => copyFile(join(src, 'index.html'), tmp));
console.log(`dashboard built into ${out}`);
