// viem against Trellis: deploy an ERC-20, transfer with EIP-1559 and legacy transactions,
// read events through eth_getLogs and a WebSocket subscription, call views, catch reverts,
// estimate gas.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPublicClient, createWalletClient, defineChain, http, webSocket } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { RPC, WS, CHAIN_ID, artifact, SINK, SUPPLY } from "./env.mjs";

const chain = defineChain({
  id: CHAIN_ID,
  name: "Trellis",
  nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
  rpcUrls: { default: { http: [RPC], webSocket: [WS] } },
});
const account = privateKeyToAccount(process.env.TRELLIS_KEY_VIEM);
const publicClient = createPublicClient({ chain, transport: http(RPC) });
const wallet = createWalletClient({ account, chain, transport: http(RPC) });
const { abi, bytecode } = artifact("TrellisToken");

test("viem: ERC-20 lifecycle", async () => {
  assert.equal(await publicClient.getChainId(), CHAIN_ID);
  const deployHash = await wallet.deployContract({ abi, bytecode, args: ["Trellis Token", "TRL", SUPPLY] });
  const deployed = await publicClient.waitForTransactionReceipt({ hash: deployHash });
  assert.equal(deployed.status, "success");
  const address = deployed.contractAddress;
  const token = { address, abi };

  assert.equal(await publicClient.readContract({ ...token, functionName: "symbol" }), "TRL");
  assert.equal(await publicClient.readContract({ ...token, functionName: "balanceOf", args: [account.address] }), SUPPLY);

  const wsClient = createPublicClient({ chain, transport: webSocket(WS) });
  const streamed = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no Transfer event over WebSocket")), 30_000);
    const unwatch = wsClient.watchContractEvent({
      ...token,
      eventName: "Transfer",
      onLogs: (logs) => {
        clearTimeout(timer);
        unwatch();
        resolve(logs);
      },
      onError: reject,
    });
  });
  // Give the subscription a moment to be registered before the transfer lands.
  await new Promise((r) => setTimeout(r, 500));

  const gas = await publicClient.estimateContractGas({ ...token, functionName: "transfer", args: [SINK, 10n], account });
  assert.ok(gas > 21_000n && gas < 100_000n, `estimated ${gas}`);

  const h1559 = await wallet.writeContract({ ...token, functionName: "transfer", args: [SINK, 10n] });
  const r1559 = await publicClient.waitForTransactionReceipt({ hash: h1559 });
  assert.equal(r1559.status, "success");
  assert.equal(r1559.type, "eip1559");

  const hLegacy = await wallet.writeContract({ ...token, functionName: "transfer", args: [SINK, 5n], type: "legacy" });
  const rLegacy = await publicClient.waitForTransactionReceipt({ hash: hLegacy });
  assert.equal(rLegacy.status, "success");
  assert.equal(rLegacy.type, "legacy");

  assert.equal(await publicClient.readContract({ ...token, functionName: "balanceOf", args: [SINK] }), 15n);

  const events = await publicClient.getContractEvents({ ...token, eventName: "Transfer", fromBlock: deployed.blockNumber });
  assert.equal(events.length, 3);
  assert.equal(events[2].args.value, 5n);

  const fromSocket = await streamed;
  assert.ok(fromSocket.length >= 1);
  assert.equal(fromSocket[0].eventName, "Transfer");
  await wsClient.transport.getRpcClient().then((c) => c.close());

  await assert.rejects(
    publicClient.simulateContract({ ...token, functionName: "transfer", args: [SINK, SUPPLY * 2n], account }),
    (e) => /insufficient balance/.test(e.message),
  );
});
