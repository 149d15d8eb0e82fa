"""example_apps/flask_app.py: the URLs it gives Stripe exist, on the port its docstring runs it."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "example_apps"


def test_success_and_cancel_urls_answer_on_the_documented_port(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LICENZY_DATABASE_URL", f"sqlite:///{tmp_path / 'example.db'}")
    for name in ("STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET", "APP_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.delitem(sys.modules, "billing", raising=False)
    spec = importlib.util.spec_from_file_location("example_flask_app", EXAMPLES / "flask_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lz = module.billing.lz
    try:
        documented = re.search(r"flask --app flask_app run --port (\d+)", module.__doc__)
        assert documented is not None
        client = module.app.test_client()
        for url in (lz.success_url, lz.cancel_url):
            parts = urlsplit(url)
            assert parts.port == int(documented.group(1))
            answer = client.get(parts.path)
            assert answer.status_code == 200, url
        assert client.get("/billing/success").get_json()["status"] == "processing"
        client.post("/login?user=alice")
        assert client.get("/report").status_code == 402  # landing there granted nothing
    finally:
        lz.store.close()
