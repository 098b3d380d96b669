// The built-in explorer in a real browser (Debian's Chromium driven by Playwright) against a
// live 4-validator testnet after a real scenario run through the CLI: an organisation joins,
// a file is notarized, a prefix is delegated and an identifier registered, a DID created, an
// account frozen. Pages must agree with JSON-RPC, search must reach each object, the audit
// CSV must match trellis_auditLog, no page may log a console error, and every page must
// work with JavaScript disabled. Screenshots go to $TRELLIS_ARTIFACTS.
//
// Settings come from scripts/test-explorer: TRELLIS_TESTNET (testnet.json), TRELLIS_BIN,
// CHROMIUM, TRELLIS_ARTIFACTS.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const net = JSON.parse(readFileSync(process.env.TRELLIS_TESTNET, "utf8"));
const rpc = net.nodes[0].rpc;
const bin = process.env.TRELLIS_BIN;
const artifacts = process.env.TRELLIS_ARTIFACTS;
mkdirSync(artifacts, { recursive: true });

let browser;
const scenario = {};

async function call(method, params = []) {
  const response = await fetch(rpc, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  const body = await response.json();
  if (body.error) throw new Error(`${method}: ${body.error.message}`);
  return body.result;
}

function cli(...args) {
  return execFileSync(bin, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

async function nextBlocks(n = 2) {
  const start = Number(await call("eth_blockNumber"));
  for (let i = 0; i < 300; i++) {
    if (Number(await call("eth_blockNumber")) >= start + n) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("the chain does not advance");
}

/** Proposes as dev account 0 and has dev accounts 1 and 2 approve (3 of the 4 members),
 * then `cosigners` (supervisors' admins). */
async function passed(proposal, cosigners = []) {
  const out = cli("gov", "propose", "--rpc", rpc, "--dev-account", "0", ...proposal);
  const id = out.match(/proposal (\d+) created/)[1];
  for (const voter of ["1", "2", ...cosigners]) cli("gov", "vote", "--rpc", rpc, "--dev-account", voter, id);
  await nextBlocks();
  return id;
}

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM,
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  // A regulator joins (a supervisor: it reads everything and co-signs freezes).
  const regulator = cli("keys", "dev", "--index", "12").match(/address:\s+(0x[0-9a-fA-F]{40})/)[1];
  await passed(["add-org", "--id", "regulator", "--name", "Market Regulator",
    "--admin", regulator, "--supervisor", "--no-member"]);
  const file = join(artifacts, "certificate-of-origin.txt");
  writeFileSync(file, "certificate of origin #42");
  scenario.digest = "0x" + createHash("sha256").update("certificate of origin #42").digest("hex");
  cli("evidence", "submit", "--rpc", rpc, "--dev-account", "1", file);
  await passed(["delegate-prefix", "--prefix", "MA.156", "--org", "org0"]);
  cli("id", "register", "--rpc", rpc, "--dev-account", "0", "MA.156/lot-1", "URL=https://example.com/lot-1");
  const created = cli("did", "create", "--rpc", rpc, "--dev-account", "3");
  scenario.did = created.match(/did:trellis:\d+:0x[0-9a-fA-F]{40}/)[0];
  scenario.frozen = "0x00000000000000000000000000000000000f0f0f";
  await passed(["freeze", "--target", scenario.frozen], ["12"]);
  const logs = await call("eth_getLogs", [{ fromBlock: "0x0", address: "0x0000000000000000000000000000000000001001" }]);
  scenario.evidenceTx = logs[0].transactionHash;
  scenario.evidenceBlock = Number(logs[0].blockNumber);
  scenario.chainId = Number(await call("eth_chainId"));
});

after(async () => {
  await browser?.close();
});

/** A page opened in a fresh context, failing on any console error or failed request. */
async function open(path, { javaScript = true, shot } = {}) {
  const context = await browser.newContext({ javaScriptEnabled: javaScript });
  const page = await context.newPage();
  const errors = [];
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("requestfailed", (r) => errors.push(`request failed: ${r.url()}`));
  const response = await page.goto(rpc + path);
  if (shot) await page.screenshot({ path: join(artifacts, `${shot}${javaScript ? "" : "-nojs"}.png`), fullPage: true });
  return { page, response, errors, close: () => context.close() };
}

for (const javaScript of [true, false]) {
  const mode = javaScript ? "" : " (JavaScript disabled)";

  test(`every page renders and agrees with JSON-RPC${mode}`, async () => {
    const height = scenario.evidenceBlock;
    const block = await call("eth_getBlockByNumber", ["0x" + height.toString(16), false]);
    const certificate = await call("trellis_getCommitCertificate", ["0x" + height.toString(16)]);

    const home = await open("/explorer", { javaScript, shot: "home" });
    assert.equal(home.response.status(), 200);
    assert.match(await home.page.textContent("h1"), new RegExp(`Chain ${scenario.chainId}`));
    assert.ok(Number(await home.page.textContent("#height")) >= height);
    assert.deepEqual(home.errors, []);
    await home.close();

    const b = await open(`/explorer/block/${height}`, { javaScript, shot: "block" });
    assert.equal(await b.page.textContent("#block-hash"), block.hash);
    const signers = await b.page.$$eval("#signers li", (items) => items.map((i) => i.textContent));
    assert.deepEqual(signers.sort(), certificate.signatures.map((s) => s.validator).sort());
    assert.ok(block.transactions.length >= 1);
    assert.equal(await b.page.locator("#transactions tbody tr").count(), block.transactions.length);
    assert.deepEqual(b.errors, []);
    await b.close();

    const receipt = await call("eth_getTransactionReceipt", [scenario.evidenceTx]);
    const tx = await open(`/explorer/tx/${scenario.evidenceTx}`, { javaScript, shot: "transaction" });
    assert.equal(await tx.page.textContent("#tx-status"), receipt.status === "0x1" ? "success" : "failed (reverted)");
    assert.equal((await tx.page.textContent("#tx-from")).toLowerCase(), receipt.from.toLowerCase());
    assert.ok((await tx.page.textContent(".event-name")).includes("EvidenceSubmitted"));
    assert.deepEqual(tx.errors, []);
    await tx.close();

    // The sender's page lists the notarization in its transaction history.
    const from = await open(`/explorer/address/${receipt.from}`, { javaScript, shot: "address" });
    const history = await from.page.$$eval("#history tbody tr td.mono a", (as) => as.map((a) => a.textContent));
    assert.ok(history.includes(scenario.evidenceTx), history.join());
    assert.deepEqual(from.errors, []);
    await from.close();

    const frozen = await open(`/explorer/address/${scenario.frozen}`, { javaScript, shot: "address-frozen" });
    assert.equal(await frozen.page.textContent("#frozen"), "yes");
    assert.equal(await frozen.page.textContent("#balance"),
      BigInt(await call("eth_getBalance", [scenario.frozen, "latest"])).toString());
    await frozen.close();

    // The notarized file's page, its proof checked in the page with the SDK's verifier.
    const { page: ev, errors: evErrors, close: evClose } = await open("/explorer", { javaScript });
    await ev.fill("input[name=q]", `sha256:${scenario.digest}`);
    await Promise.all([ev.waitForNavigation(), ev.click("button[type=submit]")]);
    assert.ok(ev.url().includes("/explorer/evidence/"), ev.url());
    assert.match(await ev.textContent("#verified"), /^Verified against \d+ validator signatures at height \d+\.$/);
    await ev.screenshot({ path: join(artifacts, `evidence${javaScript ? "" : "-nojs"}.png`), fullPage: true });
    assert.deepEqual(evErrors, []);
    await evClose();

    const orgs = await open("/explorer/organizations", { javaScript, shot: "organizations" });
    const listed = await orgs.page.$$eval("#organizations tbody tr td:first-child", (c) => c.map((x) => x.textContent));
    const expected = (await call("trellis_getOrganizations", [0, 1000])).map((o) => o.id);
    assert.deepEqual(listed.sort(), expected.sort());
    assert.ok(listed.includes("regulator"));
    assert.equal(await orgs.page.locator("#nodes tbody tr").count(), net.nodes.length);
    await orgs.close();

    const proposals = await open("/explorer/proposals", { javaScript, shot: "proposals" });
    const statuses = await proposals.page.$$eval("#proposals .status", (c) => c.map((x) => x.textContent));
    const rpcProposals = await call("trellis_getProposals", [0, 1000]);
    assert.deepEqual(statuses, rpcProposals.map((p) => p.status).reverse());
    await proposals.close();

    const frozenList = await open("/explorer/frozen", { javaScript, shot: "frozen" });
    assert.ok((await frozenList.page.textContent("#frozen")).toLowerCase().includes(scenario.frozen));
    // Who co-signed the freeze: the regulator, a supervisor.
    assert.equal((await frozenList.page.textContent("#frozen .cosigners")).trim(), "regulator");
    await frozenList.close();
    const frozenCsv = await (await fetch(rpc + "/explorer/frozen.csv")).text();
    assert.ok(frozenCsv.trim().split("\n")[1].toLowerCase().startsWith(scenario.frozen));
    assert.ok(frozenCsv.trim().endsWith(",regulator"));

    const supervision = await open("/explorer/supervision", { javaScript, shot: "supervision" });
    assert.match(await supervision.page.textContent("#readiness"), /^Live: height \d+/);
    assert.equal(await supervision.page.locator("#validators tbody tr").count(), net.nodes.length);
    const uptimes = await supervision.page.$$eval("#validators .uptime", (c) => c.map((x) => x.textContent));
    assert.ok(uptimes.every((u) => /^\d+ \(\d+%\)$/.test(u)), uptimes.join(", "));
    assert.deepEqual(supervision.errors, []);
    await supervision.close();

    const audit = await open("/explorer/audit", { javaScript, shot: "audit" });
    const actions = await audit.page.$$eval("#audit .action", (c) => c.map((x) => x.textContent));
    const log = await call("trellis_auditLog", [0, 1000]);
    assert.deepEqual(actions, log.map((e) => e.action).reverse());
    await audit.close();
  });

  test(`search reaches each object${mode}`, async () => {
    const targets = [
      [String(scenario.evidenceBlock), `/explorer/block/${scenario.evidenceBlock}`],
      [scenario.evidenceTx, `/explorer/tx/${scenario.evidenceTx}`],
      [scenario.frozen, `/explorer/address/${scenario.frozen}`],
      ["MA.156/lot-1", "/explorer/identifier/MA.156/lot-1"],
    ];
    const did = `did:trellis:${scenario.chainId}:`;
    targets.push([scenario.did, `/explorer/did/${scenario.did}`]);
    const { page, close } = await open("/explorer", { javaScript });
    for (const [query, path] of targets) {
      await page.goto(rpc + "/explorer");
      await page.fill("input[name=q]", query);
      await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
      assert.ok(page.url().toLowerCase().startsWith((rpc + path).toLowerCase()),
        `${query} led to ${page.url()}, not ${path}`);
    }
    // The identifier's and the DID's pages check their proofs and agree with the resolvers.
    const handle = await (await fetch(rpc + "/api/handles/MA.156/lot-1")).json();
    await page.goto(rpc + "/explorer/identifier/MA.156/lot-1");
    assert.match(await page.textContent("#verified"), /^Verified against \d+ validator signatures/);
    assert.ok((await page.textContent("#values")).includes(handle.values[0].data.value));
    await page.screenshot({ path: join(artifacts, `identifier${javaScript ? "" : "-nojs"}.png`), fullPage: true });
    const resolution = await (await fetch(rpc + "/1.0/identifiers/" + scenario.did)).json();
    await page.goto(rpc + "/explorer/did/" + scenario.did);
    assert.match(await page.textContent("#verified"), /^Verified against \d+ validator signatures/);
    assert.deepEqual(JSON.parse(await page.textContent("#did-document")), resolution.didDocument);
    await page.screenshot({ path: join(artifacts, `did${javaScript ? "" : "-nojs"}.png`), fullPage: true });
    await close();
  });
}

test("the audit CSV matches trellis_auditLog", async () => {
  const csv = await (await fetch(rpc + "/explorer/audit.csv")).text();
  writeFileSync(join(artifacts, "audit.csv"), csv);
  const [header, ...rows] = csv.trim().split("\n");
  assert.equal(header, "seq,blockNumber,blockHash,transactionHash,action,org,actor,detail");
  const log = await call("trellis_auditLog", [0, 1000]);
  assert.equal(rows.length, log.length);
  const exported = await (await fetch(rpc + "/explorer/audit.json")).json();
  for (const [i, entry] of log.entries()) {
    assert.equal(exported[i].seq, Number(entry.seq));
    assert.equal(exported[i].action, entry.action);
    assert.equal(exported[i].detail, entry.detail);
    assert.equal(exported[i].blockNumber, Number(entry.blockNumber));
    assert.ok(rows[i].startsWith(`${Number(entry.seq)},${Number(entry.blockNumber)},`));
  }
});
