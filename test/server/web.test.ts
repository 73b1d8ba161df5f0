// The dashboard's files: built from the sources when missing, served with a strict
// Content-Security-Policy, nothing outside the build directory reachable.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { ensureWebBuilt, webBuildNeeded } from '../../src/server/web.js';
import { startTestServer, type TestServer } from './helpers.js';

describe('dashboard files', () => {
  let dir: string;
  let s: TestServer;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'um-web-test-'));
  });
  afterAll(async () => {
    await s?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('builds the page when it is missing, and not again when it is current', async () => {
    expect(await webBuildNeeded(dir)).toBe(true);
    await ensureWebBuilt(createLogger({ level: 'silent' }), dir);
    expect(await webBuildNeeded(dir)).toBe(false);
  });

  it('serves the page with a strict CSP, the bundle, and nothing outside the build directory', async () => {
    s = await startTestServer({ label: 'web_files', webDir: dir });
    const page = await fetch(`${s.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'self'/);
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    const html = await page.text();
    expect(html).toContain('data-testid="signin-form"');
    expect(html).toContain('/assets/app.js');
    expect(html).not.toMatch(/https?:\/\//);

    const js = await fetch(`${s.url}/assets/app.js`);
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect((await js.text()).length).toBeGreaterThan(1_000);
    expect((await fetch(`${s.url}/assets/style.css`)).headers.get('content-type')).toMatch(/^text\/css/);

    for (const path of [
      '/assets/..%2f..%2fpackage.json',
      '/assets/%2e%2e/index.html',
      '/assets/nope.js',
      '/assets/x.txt',
    ]) {
      const res = await fetch(`${s.url}${path}`);
      expect({ path, status: res.status }).toEqual({ path, status: 404 });
    }
  });
});
