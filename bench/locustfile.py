"""Load for bench_load.py: 20 clients without think time against one endpoint, chosen by BENCH_TARGET.

health  -> GET /healthz (the same server's trivial request, with its one database round trip)
bedside -> POST /api/v1/custody/scan-verify, cycling through real (wristband, bag) pairs that must MATCH
weight  -> POST /api/v1/patients/<id>/weights as a clinician: the simplest authenticated write of one audited
           record, a reference of the bedside check's own shape (shown for information, no bound), for patients
           with no bag to scan (bench_load.weighable_patients)

Every response time (ms) is written to BENCH_TIMES at the end, so that bench_load takes exact p50/p99 over all
the blocks of one endpoint's load (locust's own CSV gives each block's percentiles, which cannot be merged).
"""
from __future__ import annotations

import itertools
import json
import os

from locust import FastHttpUser, constant, events, task

TARGET = os.environ.get("BENCH_TARGET", "health")
_setup = json.loads(open(os.environ["BENCH_SETUP"]).read()) if os.environ.get("BENCH_SETUP") else {}
_pairs = itertools.cycle(_setup.get("pairs") or [["-", "-"]])
_patients = itertools.cycle(_setup.get("patients") or [0])
_times: list[float] = []


@events.request.add_listener
def _timed(response_time: float, **_: object) -> None:
    _times.append(response_time)


@events.quitting.add_listener
def _write_times(**_: object) -> None:
    if os.environ.get("BENCH_TIMES"):
        with open(os.environ["BENCH_TIMES"], "w") as handle:
            json.dump(_times, handle)


class Client(FastHttpUser):
    wait_time = constant(0)

    @task
    def request(self) -> None:
        if TARGET == "health":
            self.client.get("/healthz", name="healthz")
            return
        if TARGET == "weight":
            with self.client.post(f"/api/v1/patients/{next(_patients)}/weights", name="weight",
                                  json={"weight_kg": "62.5", "measured_on": _setup["measured_on"],
                                        "weight_confirmed": True},  # checked: far from the last
                                  headers={"Authorization": f"Bearer {_setup['clinician']}"},
                                  catch_response=True) as answer:
                if answer.status_code != 201:
                    answer.failure(f"{answer.status_code}: weight not recorded")
            return
        wristband, bag = next(_pairs)
        with self.client.post("/api/v1/custody/scan-verify", json={"wristband": wristband, "bag": bag},
                              headers={"Authorization": f"Bearer {_setup['token']}"}, name="scan-verify",
                              catch_response=True) as answer:
            if answer.status_code != 200 or (answer.json() or {}).get("result") != "MATCHES":
                answer.failure(f"{answer.status_code}: not MATCHES")
