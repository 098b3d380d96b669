"""web3.py against Trellis: deploy an ERC-20, transfer with EIP-1559 and legacy transactions,
read events through eth_getLogs and a WebSocket subscription, call views, catch reverts and
estimate gas. Connection settings come from scripts/client-tests."""

import asyncio
import json
import os
from pathlib import Path

import pytest
from web3 import AsyncWeb3, Web3
from web3.exceptions import ContractLogicError
from web3.providers.persistent import WebSocketProvider

RPC = os.environ["TRELLIS_RPC"]
WS = RPC.replace("http", "ws", 1)
CHAIN_ID = int(os.environ["TRELLIS_CHAIN_ID"])
KEY = os.environ["TRELLIS_KEY_WEB3PY"]
SINK = Web3.to_checksum_address("0x000000000000000000000000000000000000dead")
SUPPLY = 1_000_000 * 10**18
ARTIFACT = json.loads(
    (Path(__file__).resolve().parents[3] / "contracts" / "artifacts" / "TrellisToken.json").read_text()
)


@pytest.fixture(scope="module")
def w3():
    w3 = Web3(Web3.HTTPProvider(RPC, request_kwargs={"timeout": 30}))
    assert w3.is_connected()
    return w3


def send(w3, account, tx):
    tx.setdefault("chainId", CHAIN_ID)
    tx.setdefault("nonce", w3.eth.get_transaction_count(account.address, "pending"))
    signed = account.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.1)


async def first_transfer_over_websocket(address, started: asyncio.Event):
    async with AsyncWeb3(WebSocketProvider(WS)) as aw3:
        sub = await aw3.eth.subscribe("logs", {"address": address})
        started.set()
        async for message in aw3.socket.process_subscriptions():
            if message["subscription"] == sub:
                return message["result"]


def test_erc20_lifecycle(w3):
    account = w3.eth.account.from_key(KEY)
    assert w3.eth.chain_id == CHAIN_ID

    factory = w3.eth.contract(abi=ARTIFACT["abi"], bytecode=ARTIFACT["bytecode"])
    deploy = factory.constructor("Trellis Token", "TRL", SUPPLY).build_transaction(
        {"from": account.address, "nonce": w3.eth.get_transaction_count(account.address, "pending")}
    )
    receipt = send(w3, account, deploy)
    assert receipt.status == 1
    token = w3.eth.contract(address=receipt.contractAddress, abi=ARTIFACT["abi"])
    assert token.functions.symbol().call() == "TRL"
    assert token.functions.balanceOf(account.address).call() == SUPPLY

    loop = asyncio.new_event_loop()
    started = asyncio.Event()
    listener = loop.create_task(first_transfer_over_websocket(token.address, started))
    loop.run_until_complete(asyncio.wait_for(started.wait(), 30))

    gas = token.functions.transfer(SINK, 10).estimate_gas({"from": account.address})
    assert 21_000 < gas < 100_000

    dynamic = token.functions.transfer(SINK, 10).build_transaction(
        {"from": account.address, "maxFeePerGas": 0, "maxPriorityFeePerGas": 0, "gas": gas}
    )
    r1559 = send(w3, account, dynamic)
    assert r1559.status == 1 and r1559.type == 2

    legacy = token.functions.transfer(SINK, 5).build_transaction(
        {"from": account.address, "gasPrice": 0, "gas": gas}
    )
    r_legacy = send(w3, account, legacy)
    assert r_legacy.status == 1 and r_legacy.type == 0

    assert token.functions.balanceOf(SINK).call() == 15
    events = token.events.Transfer().get_logs(from_block=receipt.blockNumber)
    assert [e.args.value for e in events] == [SUPPLY, 10, 5]

    streamed = loop.run_until_complete(asyncio.wait_for(listener, 30))
    assert streamed["address"].lower() == token.address.lower()
    loop.close()

    with pytest.raises(ContractLogicError, match="insufficient balance"):
        token.functions.transfer(SINK, SUPPLY * 2).call({"from": account.address})
