"""The README's quickstart and the guides in docs/ are executed, as a reader would follow them.

One reader's machine (tests/support/walkthrough.py) for the whole module: the suite is started with
the documents' own commands (`make run`, then `OTEL_TRACES_EXPORTER=console ... make run` for the
guides that need traces: two starts in all), every command is typed into one terminal in order,
and every output block marked `doc: output` must match what the command printed. Blocks for a
cluster are checked against the rendered manifests; files the reader writes (alert rules, an
overlay, a PrometheusRule) are checked by the loader or renderer that would read them.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.async_api import async_playwright, expect

from gateway.auth import hash_key
from services.cli.suite import suite_environment
from services.monitor.rules import DEFAULT_RULES, load_rules
from tests.e2e.test_dashboard import ARGS, CHROMIUM, SCREENSHOTS
from tests.support.docs import Block, blocks, commands, matches, section
from tests.support.k8s import K8S, kubectl, rendered
from tests.support.processes import BASH, base_env
from tests.support.redis import SHARED_URL, delete_prefix
from tests.support.walkthrough import ROOT, Walkthrough

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

README = ROOT / "README.md"
DOCS = ROOT / "docs"
QUICKSTART_START = "## Quickstart"
# Placeholders in the span table of the tracing guide, and what they stand for in span names.
_PLACEHOLDERS = {
    "<Service>": r"\w+",
    "<Rpc>": r"\w+",
    "<task>": r"[a-z_]+",
    "<route>": r"/v1/\S+",
    "<COMMAND>": r"[A-Z]+",
}


def quickstart() -> list[Block]:
    """The README's quickstart blocks."""
    text = README.read_text()
    start = text.index(QUICKSTART_START)
    end = text.index("\n## ", start + 1)
    first_line = text[:start].count("\n") + 1
    return blocks(text[start:end], first_line)


def guide(name: str) -> list[Block]:
    """The blocks of one guide in docs/."""
    return blocks((DOCS / name).read_text())


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walkthrough]:
    reader = Walkthrough(tmp_path_factory.mktemp("reader"))
    try:
        yield reader
    finally:
        reader.close()
        # The catalog the suite kept in the shared Redis (its prefix is derived from the library).
        delete_prefix(SHARED_URL, suite_environment({}, reader.state)["BATCH_KEY_PREFIX"])


def live_metric_names(walk: Walkthrough) -> set[str]:
    """Series names the running suite's monitor serves on /metrics."""
    url = f"http://{walk.addresses['MONITOR_HTTP_LISTEN']}/metrics"
    with urllib.request.urlopen(url, timeout=30) as reply:
        text = reply.read().decode()
    return {
        line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")
    }


def ensure_suite(walk: Walkthrough) -> None:
    """A suite is running (the quickstart's, when none is)."""
    if walk.started is None:
        (start,) = [b for b in quickstart() if b.kind == "start-suite"]
        walk.start(start.text.strip(), "quickstart")
        _paste_key(walk)


def _paste_key(walk: Walkthrough) -> None:
    assert walk.started is not None
    code, out = walk.run(walk.started.key_export())  # what the README says to paste
    assert code == 0, out


# ---- checks of files the reader writes, and of commands for a cluster


class Site:
    """A copy of deploy/k8s the reader edits (an overlay of their own), rendered with kubectl."""

    def __init__(self, root: Path) -> None:
        self.root = root / "repo"
        shutil.copytree(K8S, self.root / "deploy" / "k8s")

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        assert relative.startswith("deploy/k8s/"), f"{relative}: files the guide writes live in deploy/k8s"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
        return path

    def render(self, directory: str) -> list[Any]:
        done = subprocess.run(
            [kubectl(), "kustomize", str(self.root / directory)], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"kubectl kustomize {directory}:\n{done.stderr}"
        return [d for d in yaml.safe_load_all(done.stdout) if d]


_KINDS = {
    "deployment": "Deployment",
    "deployments": "Deployment",
    "deploy": "Deployment",
    "statefulset": "StatefulSet",
    "sts": "StatefulSet",
    "svc": "Service",
    "service": "Service",
    "hpa": "HorizontalPodAutoscaler",
    "configmap": "ConfigMap",
    "cm": "ConfigMap",
    "pdb": "PodDisruptionBudget",
    "secret": "Secret",
}
_PROMQL_WORDS = {"by", "sum", "max", "min", "avg", "rate", "increase", "and", "or", "unless", "on", "without"}
_VARIANTS_BY_NAMESPACE = {"mediasuite": "overlays/prod", "mediasuite-dev": "overlays/dev"}


def check_kubectl(block: Block, site: Site) -> None:
    """Each kubectl command names what the manifests define: its namespace, objects and ports."""
    for command in commands(block):
        argv = shlex.split(command, comments=True)
        assert argv, command
        if argv[0] != "kubectl":
            continue  # e.g. a `mediactl` typed through a port-forward: run by the sh blocks
        namespace = argv[argv.index("-n") + 1] if "-n" in argv else ""
        rest = [a for i, a in enumerate(argv[1:], 1) if a != "-n" and argv[i - 1] != "-n"]
        if "-k" in rest:
            directory = rest[rest.index("-k") + 1]
            site.render(directory)
            continue
        assert namespace in _VARIANTS_BY_NAMESPACE, f"{command}: namespace {namespace!r} is not an overlay's"
        objects = rendered(_VARIANTS_BY_NAMESPACE[namespace])
        words = [a for a in rest[1:] if not a.startswith("-")]
        for index, word in enumerate(words):
            kind_text, slash, name = word.partition("/")
            if slash and kind_text in _KINDS:
                found = objects.get(_KINDS[kind_text], name)
            elif kind_text in _KINDS and index + 1 < len(words) and not slash:
                found = objects.get(_KINDS[kind_text], words[index + 1])
                name = words[index + 1]
            else:
                continue
            assert found is not None, f"{command}: no {_KINDS[kind_text]} {name} in {namespace}"
            if rest[0] == "port-forward":
                ports = {str(p["port"]) for p in found["spec"]["ports"]}
                forwarded = [w.split(":")[-1] for w in words[index + 1 :] if re.fullmatch(r"\d+(:\d+)?", w)]
                assert forwarded, command
                for remote in forwarded:
                    assert remote in ports, f"{command}: {name} has ports {sorted(ports)}, not {remote}"


def _metric(name: str) -> str:
    return name.replace(".", "_")


def check_alert_rules(block: Block, site: Site, walk: Walkthrough) -> None:
    """Rules the monitor loads, on series the running suite makes."""
    path = site.write(block.arg.split()[1], block.text)
    rules = load_rules(path)
    assert rules
    live = live_metric_names(walk)
    for rule in rules:
        assert _metric(rule.metric) in live, (
            f"{block.arg}: {rule.name} watches {rule.metric}, which no one makes"
        )


def check_kustomization(block: Block, site: Site) -> None:
    """The reader's overlay renders, and ships the alert rules file beside it."""
    path = site.write(block.arg.split()[1], block.text)
    objects: list[Any] = site.render(str(path.parent.relative_to(site.root)))
    rules_file = path.parent / "alert-rules.yaml"
    if rules_file.exists():
        (configmap,) = [
            o
            for o in objects
            if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("monitor-alert-rules")
        ]
        assert configmap["data"]["alert-rules.yaml"].strip() == rules_file.read_text().strip()


def check_prometheus_rules(block: Block, walk: Walkthrough) -> None:
    """Every series a Prometheus rule reads is one the monitor serves."""
    document = yaml.safe_load(block.text)
    live = live_metric_names(walk)
    exprs = [rule["expr"] for group in document["spec"]["groups"] for rule in group["rules"]]
    assert exprs
    for expr in exprs:
        bare = re.sub(r"\{[^}]*\}", "", expr)  # label matchers are not series
        names = set(re.findall(r"\b([a-z][a-z0-9_]*)\b", bare))
        names -= {
            "by",
            "sum",
            "max",
            "min",
            "avg",
            "rate",
            "increase",
            "and",
            "or",
            "unless",
            "on",
            "without",
        }
        assert names, expr
        assert names <= live, f"{expr}: {sorted(names - live)} not served by the monitor"


# ---- playing a document


def play(walk: Walkthrough, doc: Path, found: list[Block], site: Site | None = None) -> dict[str, int]:
    """Run a document's blocks in order; counts of each kind handled."""
    counts: dict[str, int] = {}
    last_output: str | None = None
    for block in found:
        where = block.where(doc)
        counts[block.kind] = counts.get(block.kind, 0) + 1
        if block.kind == "illustrative":
            assert block.arg, f"{where}: an illustrative block says why it is not run"
        elif block.kind == "start-suite":
            command = block.text.strip()
            if walk.started is None or walk.started.command != command:
                walk.start(command, doc.stem)
                _paste_key(walk)
            last_output = walk.started.output() if walk.started else ""
        elif block.kind == "output":
            assert last_output is not None, f"{where}: an output block follows a command"
            problem = matches(walk.swap(block.text), last_output)
            assert problem is None, f"{where}: {problem}\n--- what the command printed:\n{last_output}"
        elif block.kind == "file":
            (walk.work / block.arg).write_text(walk.swap(block.text) + "\n")
        elif block.kind == "kubectl":
            assert site is not None, where
            check_kubectl(block, site)
        elif block.kind == "check":
            assert site is not None, where
            checker = block.arg.split()[0]
            if checker == "alert-rules":
                check_alert_rules(block, site, walk)
            elif checker == "kustomization":
                check_kustomization(block, site)
            elif checker == "prometheus-rules":
                check_prometheus_rules(block, walk)
            else:
                raise AssertionError(f"{where}: no checker called {checker!r}")
        elif block.kind == "run":
            assert block.lang in ("sh", "bash"), f"{where}: a {block.lang or 'plain'} block must be marked"
            last_output = ""
            for command in commands(block):
                code, printed = walk.run(command)
                assert code == 0, f"{where}: `{command}` exited {code}:\n{printed}"
                last_output += printed
        else:
            raise AssertionError(f"{where}: unknown directive doc: {block.kind}")
    return counts


# ---- the documents


def test_the_readme_quickstart_runs_as_written(walk: Walkthrough) -> None:
    found = quickstart()
    assert found[0].kind == "start-suite", "the quickstart starts the suite first"
    walk.stop()  # the quickstart's own start, from an empty library
    counts = play(walk, README, found)
    assert counts.get("output", 0) >= 6, counts
    assert walk.started is not None
    assert walk.started.command == "make run"


def test_the_banner_shows_a_key_once_stored_hashed_and_commands_that_work_as_printed(
    walk: Walkthrough,
) -> None:
    ensure_suite(walk)
    assert walk.started is not None
    output = walk.started.output()
    export = walk.started.key_export()
    key = export.partition("=")[2]
    assert key.startswith("msk_")
    assert output.count(key) == 1, "the key is printed once"
    keys_file = walk.state / "gateway" / "api-keys"
    stored = keys_file.read_text()
    assert key not in stored
    assert f"local-admin:admin:{hash_key(key)}" in stored
    assert keys_file.stat().st_mode & 0o777 == 0o600

    tried = walk.started.try_next()
    assert len(tried) == 3
    assert sum(c.startswith("curl ") for c in tried) == 1
    # As printed, from the directory `make run` was started in, in a shell that knows only the key.
    env = {k: v for k, v in base_env().items() if not k.endswith("_ADDR")}
    env["COLUMNS"] = "120"
    outputs = []
    for command in tried:
        done = subprocess.run(
            [BASH, "-c", f"set -o pipefail\n{export}\n{command}"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        outputs.append(done.stdout)
    if "catalog query" in tried[0]:  # the sample's examples
        assert "sample/problems/underexposed.jpg" in outputs[0]
        assert "QUALITY_ISSUE_KIND_BLURRY" in outputs[1]
        assert '"count":"38"' in outputs[2]


async def test_the_dashboard_shows_the_first_run(walk: Walkthrough) -> None:
    """What a newcomer sees after the first `make run`: with the printed key pasted in, the services
    serving, the three sample batches done, and thumbnails of the sample (from the cache)."""
    ensure_suite(walk)
    assert walk.started is not None
    key = walk.started.key_export().partition("=")[2]
    url = f"http://{walk.addresses['GATEWAY_HTTP_LISTEN']}/"
    assert CHROMIUM.exists(), "Chromium is missing: run `make browser` (apt-get install chromium)"
    errors: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(url)
            await expect(page.locator("#key-form")).to_be_visible(timeout=15_000)  # a key is required
            await page.fill("#key-input", key)
            await page.click("#key-form button")
            batches = page.locator("#batch-list li")
            for label in ("sample: import", "sample: thumbnails", "sample: quality"):
                item = batches.filter(has_text=label)
                await expect(item).to_have_count(1, timeout=15_000)
                await expect(item.locator("progress")).to_have_attribute("data-percent", "100")
            await expect(page.locator("#health-rows tr")).to_have_count(4, timeout=15_000)
            await expect(page.locator("#health-rows td.ok")).to_have_count(4)
            thumbnails = page.locator("#thumb-grid img[data-loaded='true']")
            await expect(thumbnails).to_have_count(24, timeout=30_000)  # the page's first 24 items
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SCREENSHOTS / "first-run.png"), full_page=True)
        finally:
            await browser.close()
    assert not errors, errors


def test_the_default_alert_rules_watch_series_the_suite_makes(walk: Walkthrough) -> None:
    """What "what to watch" relies on: every default rule has a series to watch."""
    ensure_suite(walk)
    live = live_metric_names(walk)
    for rule in DEFAULT_RULES:
        assert _metric(rule.metric) in live, f"{rule.name} watches {rule.metric}, which no process exports"


def test_operating_on_kubernetes(walk: Walkthrough, tmp_path: Path) -> None:
    ensure_suite(walk)  # stands in for the cluster's monitor behind a port-forward
    site = Site(tmp_path)
    doc = DOCS / "operating-on-kubernetes.md"
    counts = play(walk, doc, guide(doc.name), site)
    assert counts.get("kubectl", 0) >= 3
    assert counts.get("check", 0) >= 3
    assert "deploy/k8s/README.md" in doc.read_text(), "deployment details are linked, not repeated"


def test_calling_mediasuite_from_your_service(walk: Walkthrough) -> None:
    doc = DOCS / "calling-from-your-service.md"
    counts = play(walk, doc, guide(doc.name))
    assert counts.get("file", 0) >= 2
    assert counts.get("output", 0) >= 3


def test_tracing_a_slow_request(walk: Walkthrough) -> None:
    doc = DOCS / "tracing-a-slow-request.md"
    text = doc.read_text()
    play(walk, doc, blocks(text))
    # Every span the guide explains is one the suite made in this walkthrough.
    table = section(text, "<!-- span-table -->", "<!-- end span-table -->")
    explained = re.findall(r"^\| `([^`]+)`", table, flags=re.M)
    assert len(explained) >= 6
    code, listing = walk.run(
        'cat "$MEDIASUITE_STATE_DIR"/log/*.log | grep -o \'^{"name": "[^"]*"\' | sort -u'
    )
    assert code == 0, listing
    made = {line.removeprefix('{"name": "').rstrip('"') for line in listing.splitlines()}
    for name in explained:
        pattern = re.escape(name)
        for placeholder, matching in _PLACEHOLDERS.items():
            pattern = pattern.replace(re.escape(placeholder), matching)
        assert any(re.fullmatch(pattern, m) for m in made), f"{name}: no such span in {sorted(made)}"
