// Opens the Admin UI certificates page in headless Chromium with a client certificate and
// prints what the page rendered as one JSON line on stdout. Each line read on stdin reloads
// the page and prints one more JSON line. At the end of stdin the browser closes.
//
//   NODE_EXTRA_CA_CERTS=certs/ca.crt node certificates-page.mjs \
//     --url https://127.0.0.1:8080/#/reports/certificates/local \
//     --cert certs/client.root.crt --key certs/client.root.key --ca certs/ca.crt \
//     [--screenshot page.png]
//
// Playwright presents the client certificate itself: Chromium talks to a local proxy inside
// this Node.js process, and the proxy makes the TLS connection to the server. That proxy
// verifies the server's certificate with Node.js's trust store, so the test CA must be in
// NODE_EXTRA_CA_CERTS, which Node.js reads only at start-up. `--ca` names the same file so a
// missing variable is reported here instead of as an unverified certificate.
//
// Output: {"title", "error", "alerts", "sections": [{"heading", "alerts", "certificates":
// [{label: value}]}], "pageErrors", "failedRequests"}. `error` is the text of a failed load,
// `alerts` the messages shown in red, and each certificate maps the labels of its table to
// their values.

import { createInterface } from "node:readline";
import { resolve } from "node:path";
import { parseArgs } from "node:util";

import { chromium } from "playwright-core";

const CHROMIUM = "/usr/bin/chromium";
const RENDER_TIMEOUT_MS = 15000;

// Flags that stop Chromium's own background requests (component updates, sync and others). A test
// needs none of them, and on a machine without internet access they fail many at a time.
// Playwright adds a new, empty --user-data-dir itself and removes it when the browser closes.
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

function fail(message) {
  process.stderr.write(`certificates-page: ${message}\n`);
  process.exit(2);
}

function readOptions() {
  const { values } = parseArgs({
    options: {
      url: { type: "string" },
      cert: { type: "string" },
      key: { type: "string" },
      ca: { type: "string" },
      screenshot: { type: "string" },
    },
  });
  for (const name of ["url", "cert", "key", "ca"]) {
    if (!values[name]) fail(`missing --${name}`);
  }
  const trusted = process.env.NODE_EXTRA_CA_CERTS;
  if (!trusted || resolve(trusted) !== resolve(values.ca)) {
    fail(
      `NODE_EXTRA_CA_CERTS is ${JSON.stringify(trusted ?? "")}, expected ${values.ca}; ` +
        "set it to the CA file when starting node",
    );
  }
  return values;
}

// Collects, inside the page, the headings, tables and red messages of #content in document
// order. When the TLS connection to the server fails, Playwright's proxy serves its own error
// text in place of the page, so a document without #content reports its whole text as the
// error.
function collectRendered() {
  const content = document.getElementById("content");
  if (!content) {
    return { title: document.title, error: document.body.innerText, alerts: [], sections: [] };
  }
  const result = {
    title: document.getElementById("title").textContent,
    error: content.classList.contains("error") ? content.textContent : null,
    alerts: [],
    sections: [],
  };
  let section = null;
  for (const element of content.children) {
    if (element.tagName === "H2") {
      section = { heading: element.textContent, alerts: [], certificates: [] };
      result.sections.push(section);
    } else if (element.tagName === "P" && element.classList.contains("error")) {
      (section ? section.alerts : result.alerts).push(element.textContent);
    } else if (element.tagName === "TABLE" && section) {
      const certificate = {};
      for (const tableRow of element.rows) {
        const label = tableRow.querySelector("th");
        const value = tableRow.querySelector("td");
        if (label && value) certificate[label.textContent] = value.textContent;
      }
      section.certificates.push(certificate);
    }
  }
  return result;
}

// Records the page's uncaught exceptions and console errors, and every request that failed
// or got an HTTP error status. Chromium also logs each failed request on the console, and
// those messages are left out because the request list names the URL.
function watchProblems(page) {
  const problems = { pageErrors: [], failedRequests: [] };
  page.on("pageerror", (error) => problems.pageErrors.push(String(error)));
  page.on("console", (message) => {
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
      problems.pageErrors.push(message.text());
    }
  });
  page.on("requestfailed", (request) => {
    problems.failedRequests.push(`${request.url()}: ${request.failure()?.errorText}`);
  });
  page.on("response", (response) => {
    if (response.status() >= 400) {
      problems.failedRequests.push(`${response.url()}: HTTP ${response.status()}`);
    }
  });
  return problems;
}

// Waits until the page replaced its "Loading…" text, then returns what it shows along with
// the problems recorded since the last call.
async function readRendered(page, problems) {
  await page.waitForFunction(
    () => {
      const content = document.getElementById("content");
      return !content || content.textContent !== "Loading…";
    },
    null,
    { timeout: RENDER_TIMEOUT_MS },
  );
  const rendered = await page.evaluate(collectRendered);
  rendered.pageErrors = problems.pageErrors.splice(0);
  rendered.failedRequests = problems.failedRequests.splice(0);
  return rendered;
}

function print(rendered) {
  process.stdout.write(JSON.stringify(rendered) + "\n");
}

async function main() {
  const options = readOptions();
  const origin = new URL(options.url).origin;
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
  });
  try {
    const context = await browser.newContext({
      clientCertificates: [{ origin, certPath: options.cert, keyPath: options.key }],
      ignoreHTTPSErrors: false,
    });
    const page = await context.newPage();
    const problems = watchProblems(page);

    await page.goto(options.url, { waitUntil: "load" });
    const first = await readRendered(page, problems);
    // The screenshot is written before the first line, so a reader of stdout finds it.
    if (options.screenshot) {
      await page.screenshot({ path: options.screenshot, fullPage: true });
    }
    print(first);

    for await (const _line of createInterface({ input: process.stdin })) {
      await page.reload({ waitUntil: "load" });
      print(await readRendered(page, problems));
    }
  } finally {
    await browser.close();
  }
}

main().catch((error) => fail(error.stack || String(error)));
