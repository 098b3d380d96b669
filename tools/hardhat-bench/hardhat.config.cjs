// Hardhat's in-process node configured to accept the same pre-signed workload as Trellis:
// chain id 1337, zero base fee (the workload signs gas price 0), and the Trellis dev
// account 0 funded, since the load tool pays for its senders from it.

const devKey = process.env.TRELLIS_DEV_KEY;
if (!devKey) throw new Error("TRELLIS_DEV_KEY is not set; run through scripts/bench-vs-hardhat");

module.exports = {
  networks: {
    hardhat: {
      chainId: 1337,
      initialBaseFeePerGas: 0,
      gasPrice: 0,
      blockGasLimit: 1_000_000_000,
      accounts: [{ privateKey: devKey, balance: "1000000000000000000000000" }],
      // Interval mining with a mempool: automine cannot queue the out-of-order nonces that
      // concurrent JSON-RPC batches deliver.
      mining: { auto: false, interval: 100, mempool: { order: "fifo" } },
    },
  },
};
