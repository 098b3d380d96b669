"""Prometheus metrics of a live 4-validator testnet, read with the Prometheus project's own
strict OpenMetrics parser (prometheus_client): the families and their types, the height
against eth_blockNumber, transactions counted exactly, gossip peers, and a killed validator
showing as missing voting power. Settings come from scripts/client-tests; the validator is
killed last, so this module runs after every other suite."""

import json
import os
import signal
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from web3 import Web3

NET = json.load(open(os.environ["TRELLIS_TESTNET"]))
NODES = NET["nodes"]
CHAIN_ID = str(NET["chain_id"])
KEY = os.environ["TRELLIS_KEY_METRICS"]
SINK = Web3.to_checksum_address("0x000000000000000000000000000000000000beef")
EVIDENCE = Web3.to_checksum_address("0x0000000000000000000000000000000000001001")


def scrape(node):
    """Every family of one node's page, parsed strictly (any format error raises)."""
    with urllib.request.urlopen(node["metrics"], timeout=10) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        text = response.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(families, family, sample=None, **labels):
    """Samples of `family` named `sample` (default: the family's name) with `labels`."""
    name = sample or family
    return [
        s
        for s in families[family].samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def value(families, family, sample=None, **labels):
    found = samples(families, family, sample, chain_id=CHAIN_ID, **labels)
    assert len(found) == 1, f"{family} {labels}: {found}"
    return found[0].value


def eventually(check, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def w3():
    w3 = Web3(Web3.HTTPProvider(NODES[0]["rpc"], request_kwargs={"timeout": 30}))
    assert w3.is_connected()
    return w3


def test_every_node_serves_the_families_with_their_types():
    expected = {
        "ethereum_blockchain_height": "gauge",
        "ethereum_best_known_block_number": "gauge",
        "ethereum_peer_count": "gauge",
        "trellis_chain_height": "gauge",
        "trellis_transactions": "counter",
        "trellis_blocks": "counter",
        "trellis_block_transactions": "histogram",
        "trellis_block_interval_seconds": "histogram",
        "trellis_finality_seconds": "histogram",
        "trellis_consensus_decided_round": "histogram",
        "trellis_commit_seconds": "histogram",
        "trellis_consensus_missing_voting_power": "gauge",
        "trellis_consensus_total_voting_power": "gauge",
        "trellis_validator_missed_signatures": "counter",
        "trellis_validator_last_signed_height": "gauge",
        "trellis_mempool_transactions": "gauge",
        "trellis_mempool_bytes": "gauge",
        "trellis_database_bytes": "gauge",
    }
    for node in NODES:
        families = scrape(node)
        for name, kind in expected.items():
            assert name in families, f"{name} missing at {node['metrics']}"
            assert families[name].type == kind, f"{name} is a {families[name].type}"
        assert value(families, "trellis_database_bytes") > 0
        assert value(families, "trellis_consensus_total_voting_power") == len(NODES)
        # The engine's own families (consensus, sync, WAL, libp2p) are on the same page.
        assert any(name.startswith("malachitebft_") for name in families), sorted(families)
    # libp2p's peer-score histograms (negative buckets) appear after a few gossip heartbeats;
    # the page must stay valid OpenMetrics with them (scrape parses strictly).
    eventually(
        lambda: "malachitebft_network_gossipsub_score_per_mesh" in scrape(NODES[0]),
        what="gossipsub peer scores",
    )


def test_the_height_is_the_height_json_rpc_reports(w3):
    for node in NODES:
        rpc = Web3(Web3.HTTPProvider(node["rpc"]))
        before = rpc.eth.block_number
        height = value(scrape(node), "trellis_chain_height")
        after = rpc.eth.block_number
        # The gauge is set as a block commits, a moment before JSON-RPC sees it.
        assert before <= height <= after + 1, (before, height, after)
        assert value(scrape(node), "ethereum_blockchain_height") >= height


def test_each_node_counts_its_three_gossip_peers():
    for node in NODES:
        eventually(
            lambda: value(scrape(node), "ethereum_peer_count") == len(NODES) - 1,
            what=f"3 peers at {node['metrics']}",
        )


def test_committed_transactions_are_counted_exactly(w3):
    account = w3.eth.account.from_key(KEY)
    # Nothing else sends now: the totals move only with what this test sends.
    start = scrape(NODES[0])
    start_height = value(start, "trellis_chain_height")
    start_total = value(start, "trellis_transactions", "trellis_transactions_total")
    nonce = w3.eth.get_transaction_count(account.address, "pending")
    sent = 25
    hashes = []
    for i in range(sent):
        signed = account.sign_transaction(
            {
                "chainId": int(CHAIN_ID),
                "nonce": nonce + i,
                "to": SINK,
                "value": 1,
                "gas": 21_000,
                "maxFeePerGas": w3.to_wei(2, "gwei"),
                "maxPriorityFeePerGas": 0,
            }
        )
        hashes.append(w3.eth.send_raw_transaction(signed.raw_transaction))
    last = max(
        w3.eth.wait_for_transaction_receipt(h, timeout=60, poll_latency=0.1).blockNumber
        for h in hashes
    )
    for node in NODES:
        families = eventually(
            lambda: (f := scrape(node)) and value(f, "trellis_chain_height") >= last and f,
            what=f"height {last} at {node['metrics']}",
        )
        if node is NODES[0]:
            height = value(families, "trellis_chain_height")
            total = value(families, "trellis_transactions", "trellis_transactions_total")
            in_blocks = sum(
                len(w3.eth.get_block(h)["transactions"])
                for h in range(int(start_height) + 1, int(height) + 1)
            )
            assert total - start_total == sent == in_blocks
        assert value(families, "trellis_mempool_transactions") == 0


def test_governance_and_service_levels_match_json_rpc():
    for node in NODES:
        rpc = Web3(Web3.HTTPProvider(node["rpc"]))
        config = rpc.provider.make_request("trellis_getGovernanceConfig", [])["result"]
        families = scrape(node)
        for family, key in [
            ("trellis_governance_organizations", "organizationCount"),
            ("trellis_governance_member_organizations", "memberCount"),
            ("trellis_governance_nodes", "nodeCount"),
            ("trellis_governance_frozen", "frozenCount"),
            ("trellis_governance_proposals", "proposalCount"),
            ("trellis_governance_audit_entries", "auditCount"),
        ]:
            assert families[family].type == "gauge"
            assert value(families, family) == int(config[key], 16), (family, config)
        assert value(families, "trellis_governance_nodes") == len(NODES)
        proposals = rpc.provider.make_request("trellis_getProposals", [0, 1000])["result"]
        pending = sum(1 for p in proposals if p["status"] == "pending")
        assert families["trellis_governance_proposals_pending"].type == "gauge"
        assert value(families, "trellis_governance_proposals_pending") == pending
        # The client suites notarized some before: ask the evidence contract how many.
        count = rpc.eth.call({"to": EVIDENCE, "data": Web3.keccak(text="count()")[:4]})
        assert value(families, "trellis_evidence_records") == int.from_bytes(count, "big")


def test_json_rpc_and_rest_requests_are_counted_by_method_and_outcome():
    node = NODES[1]
    rpc = Web3(Web3.HTTPProvider(node["rpc"]))
    before = scrape(node)
    calls = samples(before, "trellis_rpc_calls", "trellis_rpc_calls_total",
                    chain_id=CHAIN_ID, method="eth_blockNumber", outcome="ok")
    start = calls[0].value if calls else 0
    for _ in range(5):
        rpc.eth.block_number
    # A method the server does not have is counted as `unknown`, whatever its name.
    answer = rpc.provider.make_request("trellis_noSuchMethod", [])
    assert answer["error"]["code"] == -32601
    with urllib.request.urlopen(node["rpc"] + "/health", timeout=10) as response:
        assert response.status == 200
    after = scrape(node)
    assert value(after, "trellis_rpc_calls", "trellis_rpc_calls_total",
                 method="eth_blockNumber", outcome="ok") >= start + 5
    assert value(after, "trellis_rpc_calls", "trellis_rpc_calls_total",
                 method="unknown", outcome="-32601") >= 1
    assert not samples(after, "trellis_rpc_calls", "trellis_rpc_calls_total",
                       method="trellis_noSuchMethod")
    assert value(after, "trellis_rest_requests", "trellis_rest_requests_total",
                 route="/health", status="200") >= 1
    assert after["trellis_rpc_call_seconds"].type == "histogram"


def test_identifier_resolutions_are_counted_by_source():
    node = NODES[2]
    # An identifier nobody registered: the first answer comes from state, the next ones from
    # the resolution cache (until a block touches identifiers or the height moves on).
    for _ in range(20):
        try:
            urllib.request.urlopen(node["rpc"] + "/api/handles/ZZ.9/nobody", timeout=10)
            pytest.fail("an unregistered identifier resolved")
        except urllib.error.HTTPError as e:
            assert e.code == 404
    families = scrape(node)
    assert families["trellis_identifier_resolutions"].type == "counter"
    resolved = lambda source: value(families, "trellis_identifier_resolutions",
                                    "trellis_identifier_resolutions_total", source=source)
    assert resolved("state") >= 1
    assert resolved("cache") >= 1
    assert resolved("state") + resolved("cache") >= 20


def test_a_killed_validator_shows_as_missing_power():
    watcher = NODES[0]
    families = scrape(watcher)
    killed_at = value(families, "trellis_chain_height")
    os.kill(NODES[-1]["pid"], signal.SIGKILL)

    def stalled_validators():
        families = scrape(watcher)
        height = value(families, "trellis_chain_height")
        if height < killed_at + 6:
            return None
        last_signed = {
            s.labels["validator"]: s.value
            for s in samples(
                families, "trellis_validator_last_signed_height", chain_id=CHAIN_ID
            )
        }
        behind = [v for v, h in last_signed.items() if h <= killed_at + 1]
        return families, height, behind

    families, height, behind = eventually(
        stalled_validators, timeout=60, what="six blocks after the kill"
    )
    # Exactly one validator stopped signing; its power (1 of 4) is missing from every block
    # since, and its missed signatures grew with each of them.
    assert len(behind) == 1, behind
    assert value(families, "trellis_consensus_missing_voting_power") == 1
    missed = value(
        families,
        "trellis_validator_missed_signatures",
        "trellis_validator_missed_signatures_total",
        validator=behind[0],
    )
    assert missed >= height - killed_at - 1
