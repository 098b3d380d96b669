"""The monitoring kit against a real Prometheus server scraping a 4-validator testnet: every
query of deploy/grafana/trellis-dashboard.json returns data, and stopping two of the four
validators fires TrellisHeightStalled from deploy/prometheus/alerts.yml. Settings come from
scripts/test-monitoring; the validators are stopped last."""

import json
import os
import signal
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from web3 import Web3

PROMETHEUS = os.environ["PROMETHEUS_URL"]
NET = json.load(open(os.environ["TRELLIS_TESTNET"]))
NODES = NET["nodes"]
DASHBOARD = json.load(open(os.environ["TRELLIS_DASHBOARD"]))
KEY = os.environ["TRELLIS_KEY_MONITORING"]


def api(path, **params):
    url = f"{PROMETHEUS}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params, doseq=True)
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


def eventually(check, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(1)


def firing(name):
    return [
        a
        for a in api("alerts")["alerts"]
        if a["labels"]["alertname"] == name and a["state"] == "firing"
    ]


@pytest.fixture(scope="module", autouse=True)
def activity():
    """Every node scraped, some transfers committed and one refused, rate windows filled."""
    eventually(
        lambda: (targets := api("targets")["activeTargets"])
        and len(targets) == len(NODES)
        and all(t["health"] == "up" for t in targets),
        timeout=60,
        what="all four nodes scraped",
    )
    w3 = Web3(Web3.HTTPProvider(NODES[0]["rpc"], request_kwargs={"timeout": 30}))
    account = w3.eth.account.from_key(KEY)
    nonce = w3.eth.get_transaction_count(account.address, "pending")
    raws = [
        account.sign_transaction(
            {
                "chainId": NET["chain_id"],
                "nonce": nonce + i,
                "to": Web3.to_checksum_address("0x000000000000000000000000000000000000c0de"),
                "value": 1,
                "gas": 21_000,
                "maxFeePerGas": w3.to_wei(2, "gwei"),
                "maxPriorityFeePerGas": 0,
            }
        ).raw_transaction
        for i in range(10)
    ]
    hashes = [w3.eth.send_raw_transaction(raw) for raw in raws]
    for h in hashes:
        w3.eth.wait_for_transaction_receipt(h, timeout=60, poll_latency=0.1)
    with pytest.raises(Exception, match="nonce too low"):
        w3.eth.send_raw_transaction(raws[0])
    with urllib.request.urlopen(NODES[0]["rpc"] + "/health", timeout=10) as response:
        assert response.status == 200
    assert readiness(NODES[0]) == (200, [])
    time.sleep(20)


def readiness(node):
    """`/health/ready`: its status and the reasons it gives."""
    try:
        with urllib.request.urlopen(node["rpc"] + "/health/ready", timeout=10) as response:
            return response.status, json.load(response)["reasons"]
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)["reasons"]


def test_every_dashboard_query_returns_data():
    variable = next(v for v in DASHBOARD["templating"]["list"] if v["name"] == "chain_id")
    assert variable["definition"] == "label_values(trellis_chain_height, chain_id)"
    chains = api("label/chain_id/values", **{"match[]": "trellis_chain_height"})
    assert chains == [str(NET["chain_id"])]
    queries = [
        (panel["title"], target["expr"])
        for panel in DASHBOARD["panels"]
        for target in panel["targets"]
    ]
    assert len(queries) >= 21
    for title, expr in queries:
        promql = expr.replace("$chain_id", ".*").replace("$__rate_interval", "30s")
        result = api("query", query=promql)["result"]
        assert result, f"panel {title!r}: no data for {promql}"


def test_stopping_two_of_four_validators_fires_the_stalled_height_alert():
    assert not firing("TrellisHeightStalled"), "a healthy network is not stalled"
    for node in NODES[2:]:
        os.kill(node["pid"], signal.SIGKILL)
    # The two survivors both stall: half the power cannot commit. Their last blocks (and so
    # their alerts) may be a scrape or two apart: wait for both.
    survivors = {n["metrics"].removeprefix("http://").removesuffix("/metrics") for n in NODES[:2]}

    def both_firing():
        alerts = firing("TrellisHeightStalled")
        instances = {a["labels"]["instance"] for a in alerts}
        return alerts if survivors <= instances else None

    alerts = eventually(
        both_firing,
        timeout=240,
        what=f"TrellisHeightStalled to fire on both survivors {sorted(survivors)}",
    )
    assert all(a["labels"]["severity"] == "critical" for a in alerts)
    # Load balancers see the same: a survivor is not ready, and says why.
    status, reasons = eventually(
        lambda: (lambda r: r if r[0] == 503 else None)(readiness(NODES[0])),
        timeout=60,
        what="/health/ready to answer 503 on a survivor",
    )
    assert any(r.startswith("stalled: no block committed") for r in reasons), reasons
