// The traceability example through viem: register a product, record steps, hand it over,
// and check that only the current holder may record.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPublicClient, createWalletClient, defineChain, http, keccak256, toHex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { RPC, CHAIN_ID, artifact } from "./env.mjs";

const chain = defineChain({
  id: CHAIN_ID,
  name: "Trellis",
  nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
  rpcUrls: { default: { http: [RPC] } },
});
const maker = privateKeyToAccount(process.env.TRELLIS_KEY_VIEM);
const shipper = privateKeyToAccount(process.env.TRELLIS_KEY_ETHERS);
const publicClient = createPublicClient({ chain, transport: http(RPC) });
const asMaker = createWalletClient({ account: maker, chain, transport: http(RPC) });
const asShipper = createWalletClient({ account: shipper, chain, transport: http(RPC) });
const { abi, bytecode } = artifact("Traceability");

async function mined(hash) {
  const receipt = await publicClient.waitForTransactionReceipt({ hash });
  assert.equal(receipt.status, "success");
  return receipt;
}

test("viem: product traceability with handover", async () => {
  const deployed = await mined(await asMaker.deployContract({ abi, bytecode }));
  const trace = { address: deployed.contractAddress, abi };
  const product = keccak256(toHex(`pump-${Date.now()}`));
  const certificate = keccak256(toHex("certificate of origin"));

  await mined(await asMaker.writeContract({ ...trace, functionName: "register", args: [product, certificate] }));
  await mined(
    await asMaker.writeContract({ ...trace, functionName: "record", args: [product, "inspected", certificate] }),
  );
  await assert.rejects(
    publicClient.simulateContract({
      ...trace,
      functionName: "record",
      args: [product, "shipped", certificate],
      account: shipper,
    }),
    (e) => /caller does not hold the product/.test(e.message),
  );
  await mined(await asMaker.writeContract({ ...trace, functionName: "handOver", args: [product, shipper.address] }));
  await mined(
    await asShipper.writeContract({ ...trace, functionName: "record", args: [product, "shipped", certificate] }),
  );

  assert.equal(await publicClient.readContract({ ...trace, functionName: "holderOf", args: [product] }), shipper.address);
  assert.equal(await publicClient.readContract({ ...trace, functionName: "stepCount", args: [product] }), 3n);
  const last = await publicClient.readContract({ ...trace, functionName: "stepAt", args: [product, 2n] });
  assert.equal(last.action, "shipped");
  assert.equal(last.actor, shipper.address);
  const steps = await publicClient.getContractEvents({
    ...trace,
    eventName: "StepRecorded",
    args: { productId: product },
    fromBlock: deployed.blockNumber,
  });
  assert.deepEqual(
    steps.map((s) => s.args.action),
    ["registered", "inspected", "shipped"],
  );
});
