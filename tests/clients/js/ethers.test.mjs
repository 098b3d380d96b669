// ethers v6 against Trellis: the same ERC-20 scenario through ethers' provider, wallet and
// contract abstractions, including a WebSocketProvider event listener.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ethers } from "ethers";
import { RPC, WS, CHAIN_ID, artifact, SINK, SUPPLY } from "./env.mjs";

const network = new ethers.Network("trellis", CHAIN_ID);
// ethers caches identical requests for 250 ms by default, longer than a Trellis block takes:
// without `cacheTimeout: -1` a second transaction right after a receipt reuses a stale nonce.
const provider = new ethers.JsonRpcProvider(RPC, network, {
  staticNetwork: network,
  pollingInterval: 100,
  cacheTimeout: -1,
});
const wallet = new ethers.Wallet(process.env.TRELLIS_KEY_ETHERS, provider);
const { abi, bytecode } = artifact("TrellisToken");

test("ethers: ERC-20 lifecycle", async () => {
  assert.equal((await provider.getNetwork()).chainId, BigInt(CHAIN_ID));
  const factory = new ethers.ContractFactory(abi, bytecode, wallet);
  const token = await factory.deploy("Trellis Token", "TRL", SUPPLY);
  await token.waitForDeployment();
  const address = await token.getAddress();
  assert.equal(await token.symbol(), "TRL");
  assert.equal(await token.balanceOf(wallet.address), SUPPLY);

  const wsProvider = new ethers.WebSocketProvider(WS, network, { staticNetwork: network });
  const watched = new ethers.Contract(address, abi, wsProvider);
  const streamed = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no Transfer event over WebSocket")), 30_000);
    watched.on("Transfer", (from, to, value) => {
      clearTimeout(timer);
      resolve({ from, to, value });
    });
  });
  await new Promise((r) => setTimeout(r, 500));

  const gas = await token.transfer.estimateGas(SINK, 10n);
  assert.ok(gas > 21_000n && gas < 100_000n, `estimated ${gas}`);

  const tx1559 = await token.transfer(SINK, 10n, { type: 2 });
  const r1559 = await tx1559.wait();
  assert.equal(r1559.status, 1);
  assert.equal(r1559.type, 2);

  const txLegacy = await token.transfer(SINK, 5n, { type: 0, gasPrice: 0n });
  const rLegacy = await txLegacy.wait();
  assert.equal(rLegacy.status, 1);
  assert.equal(rLegacy.type, 0);

  assert.equal(await token.balanceOf(SINK), 15n);
  const events = await token.queryFilter(token.filters.Transfer(), r1559.blockNumber - 1);
  assert.ok(events.length >= 2);
  assert.equal(events.at(-1).args.value, 5n);

  const event = await streamed;
  assert.equal(event.to, SINK);
  await watched.removeAllListeners();
  await wsProvider.destroy();

  await assert.rejects(token.transfer.staticCall(SINK, SUPPLY * 2n), (e) => {
    assert.equal(e.code, "CALL_EXCEPTION");
    assert.match(e.reason ?? e.message, /insufficient balance/);
    return true;
  });
  provider.destroy();
});
