// Drives the daemon's web UI in headless Chromium (playwright-core):
// adds a torrent by magnet link through the page, opens its page, waits
// for it to finish and for the piece map to fill, and saves a screenshot.
// Usage: node webui.mjs URL MAGNET SCREENSHOT
import { chromium } from 'playwright-core';

const [url, link, shot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
try {
  // A phone-sized window: the page must work there.
  const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
  page.on('pageerror', (e) => { console.error('page error: ' + e.message); process.exitCode = 1; });
  await page.goto(url);
  await page.fill('#magnet', link);
  await page.click('#add-magnet button');
  await page.waitForSelector('#list tbody tr', { timeout: 30000 });
  await page.click('#list tbody tr td');
  await page.waitForFunction(() => {
    const cell = document.querySelector('#list tbody tr td:nth-child(3)');
    return cell && cell.textContent.startsWith('seeding');
  }, null, { timeout: 60000 });
  await page.waitForFunction(() => {
    const c = document.getElementById('pieces');
    if (document.getElementById('detail').hidden || !c.width) return false;
    const d = c.getContext('2d').getImageData(0, Math.floor(c.height / 2), c.width, 1).data;
    for (let i = 0; i < d.length; i += 4) if (!(d[i + 1] > d[i] + 30)) return false;
    return true;
  }, null, { timeout: 15000 });
  const files = await page.textContent('#files tbody');
  await page.screenshot({ path: shot, fullPage: true });
  console.log('ok ' + files.trim());
} finally {
  await browser.close();
}
