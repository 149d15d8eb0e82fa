"""Every code block of README.md, as a reader would paste it.

The convention the README follows:

- A ```python block runs as pasted. Each framework's snippet (the Flask, Django, Starlette and
  FastAPI sections) is driven with that framework's own test client through a purchase: nobody
  signed in is 401, signed in without a plan 402, a checkout through the mounted route and the
  simulator's signed webhook posted to the mounted webhook route give access, and a metered call
  is charged. The Django one is pasted into a project made by ``django-admin startproject``, in
  a subprocess (Django's settings are per process). A block defining ``test_`` functions runs
  under pytest; any other block is executed in an empty folder.
- A ```python block that cannot run as pasted (a real Stripe key, a module of your own) is
  preceded by ``<!-- not-run: why -->``: it is only compiled, and its imports imported.
- A ```bash block is for your shell and is not run here; the example apps' commands in it are
  the ones the browser tests start (tests/examples/_browser.py).
- A ```text block shows what a command prints; it is not run.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from licenzy_embed import Licenzy
from licenzy_embed.testing import StripeSimulator

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

FENCE = re.compile(r"^```(\w*)\s*$")
HEADING = re.compile(r"^#{2,6} (.+?)\s*$")
NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(.+?)\s*-->$")
FRAMEWORKS = ("Flask", "Django", "Starlette", "FastAPI")


@dataclass(frozen=True)
class Block:
    section: str  # the heading the block is under
    index: int  # its place among the section's blocks of the same language
    line: int  # of its opening fence
    lang: str
    code: str
    not_run: str | None  # the reason given by a <!-- not-run: … --> marker

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.section.lower()).strip("-")
        return f"{slug}-{self.index}"


def read_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    section, marker, previous = "", None, ""
    lines = text.splitlines()
    number = 0
    while number < len(lines):
        line = lines[number]
        fence = FENCE.match(line)
        if fence:
            start, body = number + 1, []
            number += 1
            while number < len(lines) and not lines[number].startswith("```"):
                body.append(lines[number])
                number += 1
            lang = fence.group(1)
            index = sum(1 for b in blocks if b.section == section and b.lang == lang)
            blocks.append(Block(section, index, start, lang, "\n".join(body) + "\n",
                                marker if previous == "marker" else None))
            previous = "block"
        elif line.strip():
            heading, found = HEADING.match(line), NOT_RUN.match(line.strip())
            if heading:
                section = heading.group(1)
            marker = found.group(1) if found else marker
            previous = "marker" if found else "text"
        number += 1
    return blocks


BLOCKS = read_blocks(README.read_text(encoding="utf-8"))
PYTHON = [b for b in BLOCKS if b.lang == "python"]

# Blocks of sections this test covers but whose text is kept elsewhere, that do not run as
# pasted yet: each is an expected failure, strict, so that the fix turns it into a failure
# that asks for its line here to go.
KNOWN_BROKEN: dict[tuple[str, str], str] = {}


def params(kind: str, blocks: list[Block]) -> list[Any]:
    return [pytest.param(b, id=b.id, marks=[pytest.mark.xfail(
                strict=True, reason=KNOWN_BROKEN[(kind, b.id)])]
                if (kind, b.id) in KNOWN_BROKEN else [])
            for b in blocks]


def test_the_readme_has_the_blocks_this_test_runs() -> None:
    sections = {b.section for b in PYTHON}
    assert set(FRAMEWORKS) <= sections
    assert "Quick start" in sections
    for block in BLOCKS:
        assert block.lang in ("python", "bash", "text"), \
            f"README.md:{block.line}: say which language"


def test_every_not_run_marker_stands_before_a_python_block() -> None:
    text = README.read_text(encoding="utf-8").splitlines()
    markers = [n for n, line in enumerate(text) if NOT_RUN.match(line.strip())]
    marked = [b for b in BLOCKS if b.not_run is not None]
    assert len(markers) == len(marked), "a not-run marker must directly precede its block"
    assert all(b.lang == "python" for b in marked)


# --------------------------------------------------------------------------- imports
def _own_modules(tree: ast.Module, block: Block) -> set[str]:
    """Top-level packages the block itself creates (the Django block's ``myproject``)."""
    return set(re.findall(r"^# (\w+)/\w+\.py", block.code, flags=re.MULTILINE))


@pytest.mark.parametrize("block", params("imports", PYTHON))
def test_each_python_block_compiles_and_its_imports_import(block: Block) -> None:
    tree = ast.parse(block.code, filename=f"README.md:{block.line}")
    own = _own_modules(tree, block)
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
            if module and module.split(".")[0] in own:
                continue
            exec(compile(ast.Module([node], []), f"README.md:{block.line}", "exec"), {})


# --------------------------------------------------------------------------- running
@dataclass(frozen=True)
class Http:
    """One framework's test client, reduced to what the purchase needs."""

    get: Callable[[str], tuple[int, Any]]
    post: Callable[[str, Any], tuple[int, Any]]  # a JSON body (or None)
    webhook: Callable[[bytes, str], Any]  # the simulator's transport to the webhook route


def buy_and_use(http: Http, lz: Licenzy, sign_in: Callable[[], str]) -> None:
    """Refused until signed in and paid; a checkout through the route, completed by a signed
    webhook posted to the route, gives access; a metered call is charged 10 units."""
    assert http.get("/report")[0] == 401
    subject = sign_in()
    assert http.get("/report")[0] == 402
    simulator = StripeSimulator.for_licenzy(lz)
    simulator.deliver_with(http.webhook)
    status, session = http.post("/billing/checkout", {"product_code": "PRO_MONTHLY"})
    assert status == 200, session
    assert session["subject_ref"] == subject
    assert http.get("/report")[0] == 402  # checkout alone grants nothing
    simulator.complete_checkout(session["session_id"])  # DeliveryFailed on a non-2xx answer
    status, body = http.get("/report")
    assert status == 200, body
    assert http.post("/generate", None)[0] == 200
    assert [e.usage_remaining for e in lz.entitlements(subject)] == [990]


def _namespace(block: Block) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": f"readme_{block.id.replace('-', '_')}"}
    exec(compile(block.code, f"README.md:{block.line}", "exec"), namespace)
    return namespace


def run_flask(block: Block, tmp_path: Path) -> None:
    namespace = _namespace(block)
    client = namespace["app"].test_client()

    def get(path: str) -> tuple[int, Any]:
        answer = client.get(path)
        return answer.status_code, answer.get_json()

    def post(path: str, body: Any) -> tuple[int, Any]:
        answer = client.post(path, json=body)
        return answer.status_code, answer.get_json()

    def sign_in() -> str:
        assert client.post("/login", data={"name": "alice"}).status_code == 200
        return "alice"

    buy_and_use(Http(get, post, lambda payload, signature: client.post(
        "/billing/webhooks/stripe", data=payload,
        headers={"Stripe-Signature": signature, "Content-Type": "application/json"})),
        namespace["lz"], sign_in)


def run_asgi(block: Block, tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    namespace = _namespace(block)
    with TestClient(namespace["app"]) as client:
        def get(path: str) -> tuple[int, Any]:
            answer = client.get(path)
            return answer.status_code, answer.json()

        def post(path: str, body: Any) -> tuple[int, Any]:
            answer = client.post(path, json=body)
            return answer.status_code, answer.json()

        def sign_in() -> str:
            assert client.post("/login", params={"name": "alice"}).status_code == 200
            return "alice"

        buy_and_use(Http(get, post, lambda payload, signature: client.post(
            "/billing/webhooks/stripe", content=payload,
            headers={"Stripe-Signature": signature, "Content-Type": "application/json"})),
            namespace["lz"], sign_in)


DJANGO_CHECK = """
import json, os, sys
sys.path.insert(0, {root!r})
os.environ["DJANGO_SETTINGS_MODULE"] = "myproject.settings"
import django
django.setup()
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.test.utils import setup_test_environment
from licenzy_embed.integrations.django import get_licenzy
from tests.test_readme import Http, buy_and_use

setup_test_environment()
call_command("migrate", verbosity=0)
user = User.objects.create_user("alice", password="pw")
client = Client()

def get(path):
    answer = client.get(path)
    return answer.status_code, json.loads(answer.content)

def post(path, body):
    answer = client.post(path, data=json.dumps(body), content_type="application/json")
    return answer.status_code, json.loads(answer.content)

def sign_in():
    answer = client.post("/accounts/login/", {{"username": "alice", "password": "pw"}})
    assert answer.status_code == 302, answer.status_code  # LoginView signed alice in
    return str(user.pk)

buy_and_use(Http(get, post, lambda payload, signature: client.post(
    "/billing/webhooks/stripe", data=payload, content_type="application/json",
    headers={{"Stripe-Signature": signature}})), get_licenzy(), sign_in)
assert get("/report-view")[0] == 200
print("django snippet ok")
"""


def run_django(block: Block, tmp_path: Path) -> None:
    """Paste the block into a fresh ``startproject``: its files by their ``# myproject/…``
    headings, the settings and URL lines at the end of the generated files."""
    project = tmp_path / "site"
    project.mkdir()
    subprocess.run([sys.executable, "-m", "django", "startproject", "myproject", str(project)],
                   check=True)
    parts = re.split(r"^# (myproject/\w+\.py).*$", block.code, flags=re.MULTILINE)
    assert parts[0].strip() == "", "the Django block starts with its first file's name"
    for name, code in zip(parts[1::2], parts[2::2], strict=True):
        path = project / name
        existing = path.read_text() if path.exists() else ""
        path.write_text(existing + "\n" + code)
    (project / "check.py").write_text(DJANGO_CHECK.format(root=str(ROOT)))
    result = subprocess.run([sys.executable, "-W", "error", "check.py"], cwd=project,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "django snippet ok" in result.stdout


def run_pytest(block: Block, tmp_path: Path) -> None:
    (tmp_path / "test_block.py").write_text(block.code)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "-W", "error", "test_block.py"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def run_plain(block: Block, tmp_path: Path) -> None:
    _namespace(block)


RUNNERS: dict[str, Callable[[Block, Path], None]] = {
    "Flask": run_flask,
    "Django": run_django,
    "Starlette": run_asgi,
    "FastAPI": run_asgi,
}


def runner(block: Block) -> Callable[[Block, Path], None]:
    if block.section in RUNNERS:
        return RUNNERS[block.section]
    if re.search(r"^def test_", block.code, flags=re.MULTILINE):
        return run_pytest
    return run_plain


@pytest.mark.parametrize("block", params("runs", [b for b in PYTHON if b.not_run is None]))
def test_each_python_block_runs_as_pasted(block: Block, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a block may create files (a SQLite database)
    runner(block)(block, tmp_path)


# --------------------------------------------------------------------------- example apps
def test_the_example_apps_list_gives_the_commands_the_browser_tests_run() -> None:
    from tests.examples._browser import COMMANDS

    listed = next(b for b in BLOCKS if b.section == "Example apps" and b.lang == "bash")
    commands = [line.split("#")[0].strip() for line in listed.code.splitlines()]
    for name, command in COMMANDS.items():
        assert command in commands, f"{name}: {command!r} is not in the Example apps list"
    text = README.read_text(encoding="utf-8")
    for section, path in (("Django", "example_apps/django_project/"),
                          ("Starlette", "example_apps/starlette_app.py"),
                          ("FastAPI", "example_apps/fastapi_app.py")):
        body = text.split(f"### {section}\n", 1)[1].split("\n### ", 1)[0]
        assert f"]({path})" in body, f"the {section} section links its example app"
        assert COMMANDS[section.lower()] in body, f"the {section} section gives its command"


def test_the_readme_links_files_that_exist() -> None:
    text = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\(((?!https?:|#)[^)\s]+)\)", text)
    assert links
    missing = [link for link in links if not (ROOT / link.split("#")[0]).exists()]
    assert missing == []


def test_django_snippet_check_is_valid_python() -> None:
    # The driver above is a format string; a typo in it would only show in the subprocess.
    compile(DJANGO_CHECK.format(root="/"), "DJANGO_CHECK", "exec")


def test_blocks_parse_with_their_sections_and_markers() -> None:
    blocks = read_blocks("## A\n\n<!-- not-run: needs a key -->\n```python\nx = 1\n```\n"
                         "\n```python\ny = 2\n```\n### B\n```bash\nls\n```\n")
    assert [(b.section, b.index, b.lang, b.not_run, b.code) for b in blocks] == [
        ("A", 0, "python", "needs a key", "x = 1\n"),
        ("A", 1, "python", None, "y = 2\n"),
        ("B", 0, "bash", None, "ls\n"),
    ]
    assert json.dumps([b.id for b in blocks]) == '["a-0", "a-1", "b-0"]'
