"""The `hookyard` command, run as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

from hookyard.config import Settings
from hookyard.runtime import Runtime
from tests.conftest import process_env
from tests.support import EVENT_FIELDS, accept, free_port, hookyard, start_server, wait_for


def test_events_list_show_replay(settings: Settings, runtime: Runtime) -> None:
    [bad] = accept(runtime, "poison")
    accept(runtime, "effects", 2)
    runtime.make_worker().drain()
    env = process_env(settings)
    listed = json.loads(hookyard(env, "events", "list", "--json").stdout)
    assert [e["status"] for e in listed] == ["done", "done", "failed"]
    assert set(listed[0]) >= EVENT_FIELDS
    only_failed = json.loads(hookyard(env, "events", "list", "--json", "--status", "failed").stdout)
    assert [e["id"] for e in only_failed] == [bad]
    shown = json.loads(hookyard(env, "events", "show", str(bad), "--json").stdout)
    assert (
        shown["last_error"].startswith("ValueError") and shown["payload"]["type"] == "invoice.paid"
    )
    table = hookyard(env, "events", "list").stdout
    assert "poison" in table and "failed" in table
    replayed = hookyard(env, "events", "replay", str(bad), "--json")
    assert json.loads(replayed.stdout) == {"replayed": 1}
    assert hookyard(env, "events", "show", "99999").returncode == 1


def test_sources_list_and_migrate(settings: Settings) -> None:
    env = process_env(settings)
    assert hookyard(env, "migrate").returncode == 0
    sources = json.loads(hookyard(env, "sources", "list", "--json").stdout)
    assert {
        "name": "hubspot",
        "provider": "hubspot",
        "path": "/webhooks/hubspot/company",
        "tenant": None,
    } in sources


def test_a_bad_sources_file_is_a_clear_error(settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[source]]\nname = "x"\nprovider = "nope"\n')
    result = hookyard(process_env(settings, HOOKYARD_SOURCES=bad), "sources", "list")
    assert result.returncode == 2
    assert "unknown provider 'nope'" in result.stderr


def test_serve_with_demo_sources_and_simulate_every_provider(
    settings: Settings, tmp_path: Path
) -> None:
    """The quick start: no sources file, secrets generated once, the simulator signs with them."""
    env = process_env(settings)
    del env["HOOKYARD_SOURCES"]
    del env["HOOKYARD_ADMIN_TOKEN"]
    server, base = start_server(env, tmp_path / "serve.log")
    try:
        assert "HOOKYARD_GENERIC_SECRET=whsec_" in server.output()
        secrets_file = Path(env["HOOKYARD_DEMO_SECRETS_FILE"])
        assert secrets_file.stat().st_mode & 0o777 == 0o600
        for provider, event in [
            ("generic", "invoice.paid"),
            ("hubspot", "company.propertyChange"),
            ("meta", "message_template_quality_update"),
            ("c2s", "on_close_lead"),
            ("tcr", "MNO_CAMPAIGN_OPERATION_APPROVED"),
        ]:
            result = hookyard(env, "simulate", provider, event, "--count", "3", "--url", base)
            assert result.returncode == 0, result.stdout + result.stderr
            assert "200x3" in result.stdout
        admin = dict(
            line.split("=", 1) for line in secrets_file.read_text().splitlines() if "=" in line
        )["HOOKYARD_ADMIN_TOKEN"]
        import httpx

        def all_finished() -> bool:
            items = httpx.get(
                base + "/api/v1/events", headers={"Authorization": f"Bearer {admin}"}
            ).json()["items"]
            return len(items) == 15 and all(e["status"] in ("done", "ignored") for e in items)

        wait_for(all_finished)
        campaigns = json.loads(
            hookyard(env, "events", "list", "--json", "--source", "tcr-campaigns").stdout
        )
        assert len(campaigns) == 3  # the simulator picks the TCR path by event category
    finally:
        server.stop()
    # A second start reuses the kept secrets and prints none.
    server, base = start_server(env, tmp_path / "serve2.log")
    try:
        assert "Generated demo secrets" not in server.output()
        assert hookyard(env, "simulate", "generic", "--url", base).returncode == 0
    finally:
        server.stop()


def test_serve_with_demo_platforms_repairs_a_lost_webhook(
    settings: Settings, tmp_path: Path
) -> None:
    """`scripts/serve`: the fake platforms run beside the gateway, subscribed to it; a change
    whose webhook is lost is found and applied by reconciliation."""
    import httpx

    env = process_env(settings)
    del env["HOOKYARD_SOURCES"]
    port = free_port()
    server, base = start_server(env, tmp_path / "demo.log", "--demo-platforms", port=port)
    fakes = f"http://127.0.0.1:{port + 100}"
    admin = {"Authorization": f"Bearer {env['HOOKYARD_ADMIN_TOKEN']}"}
    try:
        wait_for(lambda: "seeded TCR brand BDEMO01" in server.output())
        out = server.output()
        assert "handshake ok" in out and "TCR CAMPAIGN webhooks -> /webhooks/tcr/campaigns" in out
        lost = httpx.put(
            fakes + "/tcr/_fake/campaigns/CDEMO01/operationStatus/10035",
            json={"status": "APPROVED", "deliver": False},
        )
        assert lost.status_code == 200
        runs = httpx.post(base + "/api/v1/reconciliations/tcr", headers=admin, timeout=30).json()
        drift = {(d["entity"], d["theirs"]) for r in runs["runs"] for d in r["drift"]}
        assert ("campaign:CDEMO01/mno:10035", "APPROVED") in drift

        def applied() -> bool:
            events = httpx.get(
                base + "/api/v1/events", headers=admin, params={"source": "tcr-campaigns"}
            ).json()["items"]
            return any(
                e["origin"] == "polling"
                and e["event_type"] == "MNO_CAMPAIGN_OPERATION_APPROVED"
                and e["status"] == "done"
                for e in events
            )

        wait_for(applied)
        created = httpx.post(
            base + "/api/v1/customers",
            headers=admin | {"X-Customer-ID": "demo"},  # the demo's tenant
            json={"company_name": "Ringer"},
        ).json()
        assert created["sync"] == "synced"  # pushed to the fake HubSpot
    finally:
        server.stop()


def test_an_operator_bootstraps_tenants_users_and_keys(
    settings: Settings, runtime: Runtime
) -> None:
    from fastapi.testclient import TestClient

    from hookyard.app import create_app

    env = process_env(settings)
    assert hookyard(env, "tenants", "create", "acme", "--ban", "AC000000001").returncode == 0
    assert hookyard(env, "tenants", "create", "acme").returncode == 1  # exists
    made = hookyard(
        env, "users", "create", "ops@acme.example.com", "--role", "admin", "--tenant", "acme",
        "--api-key", "ops",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    key = made.stdout.split("API key (shown once): ")[1].strip()
    wrong = hookyard(env, "users", "create", "root@example.com", "--role", "superadmin",
                     "--tenant", "acme")  # fmt: skip
    assert wrong.returncode == 2 and "a superadmin belongs to no tenant" in wrong.stderr
    assert "ops@acme.example.com" in hookyard(env, "users", "list").stdout
    with TestClient(create_app(runtime, run_workers=False)) as api:
        me = api.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"}).json()
    assert (me["role"], me["tenant"], me["via"]) == ("admin", "acme", "api_key")
