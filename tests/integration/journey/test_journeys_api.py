"""/v1/journeys: publish, read, pause/resume, dry run, funnel, runs, experiment readout;
permissions, scope and problems that write nothing."""

from __future__ import annotations

from typing import Any

from tests.integration.journey.test_journeys import NOTICE, pump
from tests.itest import assert_problem, counts, new_member
from tests.support import api_client

WIN_BACK: dict[str, Any] = {
    "key": "win_back",
    "name": "召回",
    "entry": {"event": "member.created"},
    "steps": [
        {
            "id": "ab",
            "type": "split",
            "experiment": "wb_offer",
            "variants": [
                {"name": "control", "weight": 50, "next": "end"},
                {"name": "sms", "weight": 50},
            ],
        },
        {"id": "nudge", "type": "action", "action": "send_message", "params": NOTICE},
    ],
}


def put(client: Any, key: str, journey: dict[str, Any], idem: str) -> Any:
    return client.put(
        f"/v1/journeys/{key}", json={"journey": journey}, headers={"Idempotency-Key": idem}
    )


def test_publish_read_pause_resume_and_runs(world: Any, client: Any) -> None:
    r = put(client, "win_back", WIN_BACK, "p1")
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["key"], body["status"], body["version"]) == ("win_back", "active", 1)
    assert [n["id"] for n in body["graph"]] == ["ab", "nudge"]
    assert body["graph"][0]["edges"] == [
        {"label": "control 50", "to": "end"},
        {"label": "sms 50", "to": "nudge"},
    ]
    listed = client.get("/v1/journeys").json()
    assert listed["version"] == 1 and [i["key"] for i in listed["items"]] == ["win_back"]
    ids = [new_member(client, f"1380000000{n}") for n in range(4)]
    pump(world.db)
    f = client.get("/v1/journeys/win_back/funnel").json()
    assert f["entered"] == 4 and f["steps"][0]["passed"] == 4
    runs = client.get("/v1/journeys/win_back/runs").json()["items"]
    assert sorted(r["member_id"] for r in runs) == ids
    detail = client.get(f"/v1/journey-runs/{runs[0]['id']}").json()
    assert detail["steps"][0]["step"] == "ab"
    assert detail["steps"][0]["outcome"] == detail["variants"]["wb_offer"]
    r = client.post("/v1/journeys/win_back/pause", headers={"Idempotency-Key": "x1"})
    assert r.status_code == 200 and r.json()["status"] == "paused"
    r = client.post("/v1/journeys/win_back/resume", headers={"Idempotency-Key": "x2"})
    assert r.status_code == 200 and r.json()["status"] == "active"
    readout = client.get("/v1/journeys/win_back/experiments/wb_offer").json()
    assert [g["name"] for g in readout["groups"]] == ["control", "sms"]
    dry = client.post("/v1/journeys/win_back/dry-run", json={"member_id": ids[0]})
    assert dry.status_code == 200, dry.text
    assert dry.json()["enters"] is False  # re-entry "never": the member has been on it
    assert dry.json()["why"].startswith("re-entry never")


def test_dry_run_of_a_draft_for_a_new_member(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000009")
    before = counts(world.db)
    draft = {**WIN_BACK, "key": "draft"}
    r = client.post("/v1/journeys/draft/dry-run", json={"member_id": mid, "journey": draft})
    assert r.status_code == 200, r.text
    steps = r.json()["steps"]
    assert steps[0]["step"] == "ab" and "hash(wb_offer" in steps[0]["why"]
    assert counts(world.db) == before


def test_problems_write_nothing(world: Any, client: Any) -> None:
    put(client, "win_back", WIN_BACK, "p1")
    before = counts(world.db)
    bad = {
        **WIN_BACK,
        "steps": [
            {
                **WIN_BACK["steps"][0],
                "variants": [
                    {"name": "x", "weight": 1, "next": "nowhere"},
                    {"name": "control", "weight": 1},
                ],
            }
        ],
    }
    assert_problem(
        put(client, "win_back", bad, "p2"),
        422,
        "document_invalid",
        "journey.steps.0.variants.0.next",
    )
    assert_problem(put(client, "other", WIN_BACK, "p3"), 422, "document_invalid", "journey.key")
    bad_params = {
        **WIN_BACK,
        "steps": [
            WIN_BACK["steps"][0],
            {**WIN_BACK["steps"][1], "params": {"template": "notice", "channel": "fax"}},
        ],
    }
    assert_problem(
        put(client, "win_back", bad_params, "p4"),
        422,
        "document_invalid",
        "journey.steps.1.params.channel",
    )
    assert_problem(client.get("/v1/journeys/nope"), 404, "journey_not_found")
    assert_problem(client.post("/v1/journeys/nope/pause", headers={"Idempotency-Key": "z"}), 404)
    assert_problem(client.get("/v1/journeys/win_back/experiments/nope"), 404)
    assert_problem(client.get("/v1/journeys/win_back/runs?colour=red"), 422)
    assert_problem(client.get("/v1/journey-runs/999"), 404, "journey_run_not_found")
    assert counts(world.db) == before


def test_read_only_keys_cannot_publish_or_pause_and_stores_see_their_runs(
    world: Any, client: Any
) -> None:
    put(client, "win_back", WIN_BACK, "p1")
    sh = new_member(client, "13800000001", home_store="sh1")
    gz = new_member(client, "13800000002", home_store="gz1")
    pump(world.db)
    before = counts(world.db)
    with api_client(world.db, world.keys["hq-read"]) as ro:
        assert ro.get("/v1/journeys/win_back").status_code == 200
        assert_problem(put(ro, "win_back", WIN_BACK, "q1"), 403)
        assert_problem(
            ro.post("/v1/journeys/win_back/pause", headers={"Idempotency-Key": "q2"}), 403
        )
    assert counts(world.db) == before
    with api_client(world.db, world.keys["sh1"]) as store:
        runs = store.get("/v1/journeys/win_back/runs").json()["items"]
        assert [r["member_id"] for r in runs] == [sh]
        other = client.get(f"/v1/journeys/win_back/runs?member_id={gz}").json()["items"][0]
        assert_problem(store.get(f"/v1/journey-runs/{other['id']}"), 404)
        assert_problem(store.post("/v1/journeys/win_back/dry-run", json={"member_id": gz}), 404)
        assert store.get("/v1/journeys/win_back/funnel").json()["entered"] == 1
