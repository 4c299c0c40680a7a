"""The dashboard in real headless Chromium (Debian's, driven by Playwright).

Against test servicers on real gRPC servers (monitor, catalog, processing, batch), every panel is
checked: no console errors, the CPU figure updates, services and alerts show, thumbnails load,
and a batch started through the API shows its progress bar reaching 100%. Against the real suite
processes the page must load cleanly too, the CPU figure update and a batch's progress reaching
100% included.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

from mediasuite.batch.v1 import batch_service_pb2_grpc, catalog_service_pb2_grpc
from mediasuite.monitor.v1 import monitor_service_pb2_grpc
from mediasuite.processing.v1 import processing_service_pb2_grpc
from tests.conftest import ServerFactory
from tests.support.batch import jpeg
from tests.support.gateway import (
    ColourThumbnails,
    LiveMonitor,
    SmallCatalog,
    StepBatches,
    binding,
    make,
    running_gateway,
)
from tests.support.processes import free_port, service_process
from tests.support.redis import SHARED_URL, delete_prefix, unique_prefix

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HAVE_CHROMIUM = CHROMIUM.exists()
SCREENSHOTS = Path(os.environ.get("MEDIASUITE_STATE_DIR", "var")) / "screenshots"

pytestmark = pytest.mark.slow


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert HAVE_CHROMIUM, "Chromium is missing: run `make browser` (apt-get install chromium)"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Console:
    errors: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.errors.append(message.text)

        page.on("console", on_console)
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))


async def _cpu_updates(page: Page) -> None:
    # expect() polls from Playwright's own world: the page's CSP forbids eval, so no wait_for_function
    cpu = page.locator("#cpu-value")
    await expect(cpu).to_have_text(re.compile(r"^[0-9.]+%$"), timeout=10_000)
    first = await cpu.text_content()
    await expect(cpu).not_to_have_text(first or "", timeout=10_000)
    samples = await page.get_attribute("#cpu-chart", "data-samples")
    assert samples is not None
    assert int(samples) >= 2


async def test_dashboard_with_every_panel_live(grpc_server: ServerFactory, browser: Browser) -> None:
    monitor = make(LiveMonitor)
    bindings = [
        binding(
            "mediasuite.monitor.v1.MonitorService",
            monitor_service_pb2_grpc.add_MonitorServiceServicer_to_server,
            monitor,
        ),
        binding(
            "mediasuite.batch.v1.CatalogService",
            catalog_service_pb2_grpc.add_CatalogServiceServicer_to_server,
            make(SmallCatalog),
        ),
        binding(
            "mediasuite.processing.v1.ProcessingService",
            processing_service_pb2_grpc.add_ProcessingServiceServicer_to_server,
            make(ColourThumbnails),
        ),
        binding(
            "mediasuite.batch.v1.BatchService",
            batch_service_pb2_grpc.add_BatchServiceServicer_to_server,
            make(StepBatches),
        ),
    ]
    async with (
        grpc_server(bindings) as server,
        running_gateway(
            {"monitor": server.address, "batch": server.address, "processing": server.address}
        ) as gateway,
    ):
        page = await browser.new_page()
        console = Console()
        console.watch(page)
        await page.goto(gateway.url + "/", wait_until="load")

        await _cpu_updates(page)
        assert await page.text_content("#live-state") == "live (WebSocket)"
        assert (await page.text_content("#memory-value") or "").endswith("%")

        await page.wait_for_selector("#health-rows tr[data-component='processing']")
        assert (
            await page.text_content("#health-rows tr[data-component='processing'] td:nth-child(2)") == "down"
        )
        assert await page.text_content("#health-score") == "health: 82 GOOD"
        await page.wait_for_selector("#alert-list li[data-alert-id='cpu-high']")
        assert "CPU above 85%" in (await page.text_content("#alert-list") or "")

        await expect(page.locator("#thumb-grid img[data-loaded='true']")).to_have_count(6, timeout=10_000)
        widths = await page.eval_on_selector_all("#thumb-grid img", "imgs => imgs.map(i => i.naturalWidth)")
        assert widths == [48] * 6, "real PNGs decoded by the browser"

        async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
            started = await client.post(
                "/v1/batches",
                json={
                    "spec": {
                        "label": "tag holiday",
                        "catalog": {"action": "CATALOG_ACTION_TAG", "tags": ["holiday"]},
                    }
                },
            )
        assert started.status_code == 200, started.text
        batch_id = started.json()["batch"]["id"]
        bar = f"#batch-list li[data-batch-id='{batch_id}'] progress"
        await page.wait_for_selector(bar, timeout=10_000)
        await page.wait_for_selector(f"{bar}[data-percent='100']", timeout=20_000)
        assert await page.eval_on_selector(bar, "b => b.value") == 100

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)

        docs = await browser.new_page()
        console.watch(docs)
        await docs.goto(gateway.url + "/docs", wait_until="load")
        await docs.wait_for_selector("details.op")
        count = await docs.eval_on_selector_all("details.op", "nodes => nodes.length")
        assert count == len(gateway.table.routes)
        await docs.screenshot(path=str(SCREENSHOTS / "docs.png"))
        errors = list(console.errors)
        await page.close()  # before the gateway stops: the page polls until then
        await docs.close()
    assert errors == []


@contextlib.contextmanager
def real_suite(tmp_path: Path) -> Iterator[str]:
    # A small library for the batch to import, the shared Redis under a prefix of this test's own.
    media, derived = tmp_path / "media", tmp_path / "derived"
    media.mkdir()
    for index in range(6):  # at the top: the dashboard test imports the root, not recursively
        (media / f"img{index}.jpg").write_bytes(jpeg(index))
    prefix = unique_prefix("dashboard")
    env = {
        "processing": {"PROCESSING_MEDIA_ROOT": str(media), "PROCESSING_DERIVED_ROOT": str(derived)},
        "batch": {
            "REDIS_URL": SHARED_URL,
            "BATCH_KEY_PREFIX": prefix,
            "BATCH_MEDIA_ROOT": str(media),
            "BATCH_DERIVED_ROOT": str(derived),
        },
    }
    with contextlib.ExitStack() as stack:
        stack.callback(delete_prefix, SHARED_URL, prefix)
        addresses: dict[str, str] = {}
        for name in ("cache", "processing", "batch", "monitor"):
            extra = {**env.get(name, {}), **addresses}  # each knows the processes started before it
            addresses[f"{name.upper()}_ADDR"] = stack.enter_context(
                service_process(name, tmp_path, **extra)
            ).address
        http = f"127.0.0.1:{free_port()}"
        stack.enter_context(service_process("gateway", tmp_path, GATEWAY_HTTP_LISTEN=http, **addresses))
        yield f"http://{http}"


async def test_dashboard_against_the_real_suite(tmp_path: Path, browser: Browser) -> None:
    with real_suite(tmp_path) as url:
        page = await browser.new_page()
        console = Console()
        console.watch(page)
        await page.goto(url + "/", wait_until="load")
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            metrics = await client.get("/v1/monitor/metrics:current")
            assert metrics.status_code == 200, metrics.text
            await _cpu_updates(page)
            started = await client.post(
                "/v1/batches", json={"spec": {"label": "e2e", "importDirectory": {"directory": ""}}}
            )
            assert started.status_code == 200, started.text
            batch_id = started.json()["batch"]["id"]
            await page.wait_for_selector(
                f"#batch-list li[data-batch-id='{batch_id}'] progress[data-percent='100']", timeout=60_000
            )
        await page.wait_for_timeout(500)
        errors = list(console.errors)
        await page.close()
    assert errors == []  # Chromium logs every failed fetch too: every service answers here
